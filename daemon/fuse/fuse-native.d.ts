// Types for the parts of fuse-native 2.2 that dvfs uses (the package ships none).
declare module 'fuse-native' {
  export interface FuseStat {
    mode: number;
    uid: number;
    gid: number;
    size: number;
    dev?: number;
    nlink?: number;
    ino?: number;
    rdev?: number;
    blksize?: number;
    blocks?: number;
    atime: Date | number;
    mtime: Date | number;
    ctime: Date | number;
  }

  export interface FuseStatfs {
    bsize: number;
    frsize: number;
    blocks: number;
    bfree: number;
    bavail: number;
    files: number;
    ffree: number;
    favail: number;
    fsid: number;
    flag: number;
    namemax: number;
  }

  type Done = (err: number) => void;

  export interface FuseOperations {
    init?(cb: Done): void;
    access?(path: string, mode: number, cb: Done): void;
    statfs?(path: string, cb: (err: number, statfs?: FuseStatfs) => void): void;
    getattr?(path: string, cb: (err: number, stat?: FuseStat) => void): void;
    fgetattr?(path: string, fd: number, cb: (err: number, stat?: FuseStat) => void): void;
    flush?(path: string, fd: number, cb: Done): void;
    fsync?(path: string, datasync: boolean, fd: number, cb: Done): void;
    fsyncdir?(path: string, datasync: boolean, fd: number, cb: Done): void;
    readdir?(path: string, cb: (err: number, names?: string[], stats?: FuseStat[]) => void): void;
    truncate?(path: string, size: number, cb: Done): void;
    ftruncate?(path: string, fd: number, size: number, cb: Done): void;
    utimens?(path: string, atime: number, mtime: number, cb: Done): void;
    readlink?(path: string, cb: (err: number, linkname?: string) => void): void;
    chown?(path: string, uid: number, gid: number, cb: Done): void;
    chmod?(path: string, mode: number, cb: Done): void;
    mknod?(path: string, mode: number, dev: number, cb: Done): void;
    setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Done): void;
    getxattr?(path: string, name: string, position: number, cb: (err: number, value?: Buffer | null) => void): void;
    listxattr?(path: string, cb: (err: number, list?: string[]) => void): void;
    removexattr?(path: string, name: string, cb: Done): void;
    open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
    opendir?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
    read?(path: string, fd: number, buffer: Buffer, length: number, position: number, cb: (bytesRead: number) => void): void;
    write?(path: string, fd: number, buffer: Buffer, length: number, position: number, cb: (bytesWritten: number) => void): void;
    release?(path: string, fd: number, cb: Done): void;
    releasedir?(path: string, fd: number, cb: Done): void;
    create?(path: string, mode: number, cb: (err: number, fd?: number) => void): void;
    unlink?(path: string, cb: Done): void;
    rename?(src: string, dest: string, cb: Done): void;
    link?(src: string, dest: string, cb: Done): void;
    symlink?(target: string, path: string, cb: Done): void;
    mkdir?(path: string, mode: number, cb: Done): void;
    rmdir?(path: string, cb: Done): void;
  }

  export interface FuseOptions {
    force?: boolean;
    mkdir?: boolean;
    timeout?: number | false;
    debug?: boolean;
    allowOther?: boolean;
    allowRoot?: boolean;
    autoUnmount?: boolean;
    defaultPermissions?: boolean;
    maxRead?: number;
    fsname?: string;
    subtype?: string;
    kernelCache?: boolean;
    autoCache?: boolean;
    entryTimeout?: number;
    attrTimeout?: number;
    acAttrTimeout?: number;
    noforget?: boolean;
  }

  export default class Fuse {
    constructor(mnt: string, ops: FuseOperations, opts?: FuseOptions);
    readonly mnt: string;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static isConfigured(cb: (err: Error | null, configured: boolean) => void): void;
    /** Builds the "-o..." option string handed to libfuse; dvfs extends it. */
    protected _fuseOptions(): string;
  }
}
