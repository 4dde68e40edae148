/**
 * Extended attributes (passed through to the ciphertext file) and fifos: system calls Node does not have,
 * served by the native addon. Without the addon, xattrs answer ENOTSUP and fifos are made by `mkfifo(1)`.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { loadNativeCodecModule, type NativeFsOps } from '../encfs/native-codec.js';
import { FsError } from './errno.js';

export interface SpecialFiles {
  getxattr(rawPath: string, name: string): Promise<Buffer | null>;
  setxattr(rawPath: string, name: string, value: Buffer, flags: number): Promise<void>;
  listxattr(rawPath: string): Promise<string[]>;
  removexattr(rawPath: string, name: string): Promise<void>;
  mkfifo(rawPath: string, mode: number): Promise<void>;
}

const run = promisify(execFile);

class NativeSpecialFiles implements SpecialFiles {
  constructor(private readonly ops: NativeFsOps) {}
  async getxattr(rawPath: string, name: string): Promise<Buffer | null> {
    return this.ops.lgetxattr(rawPath, name);
  }
  async setxattr(rawPath: string, name: string, value: Buffer, flags: number): Promise<void> {
    this.ops.lsetxattr(rawPath, name, value, flags);
  }
  async listxattr(rawPath: string): Promise<string[]> {
    return this.ops.llistxattr(rawPath);
  }
  async removexattr(rawPath: string, name: string): Promise<void> {
    this.ops.lremovexattr(rawPath, name);
  }
  async mkfifo(rawPath: string, mode: number): Promise<void> {
    this.ops.mkfifo(rawPath, mode);
  }
}

class FallbackSpecialFiles implements SpecialFiles {
  async getxattr(): Promise<Buffer | null> {
    throw new FsError('ENOTSUP', 'extended attributes need the native addon');
  }
  async setxattr(): Promise<void> {
    throw new FsError('ENOTSUP', 'extended attributes need the native addon');
  }
  async listxattr(): Promise<string[]> {
    return [];
  }
  async removexattr(): Promise<void> {
    throw new FsError('ENOTSUP', 'extended attributes need the native addon');
  }
  async mkfifo(rawPath: string, mode: number): Promise<void> {
    await run('mkfifo', ['-m', (mode & 0o7777).toString(8), '--', rawPath]);
  }
}

export function specialFiles(): SpecialFiles {
  const ops = loadNativeCodecModule()?.fs;
  return ops ? new NativeSpecialFiles(ops) : new FallbackSpecialFiles();
}
