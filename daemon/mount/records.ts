/**
 * Where a mount's daemon keeps its state. Each mount has a record (pid, control socket, log, repository)
 * in the repository's run directory (`REPO/.dvfs/run/`, or a per-user state directory for plain EncFS
 * volumes) and an index entry keyed by mountpoint in the per-user state directory, so `dvfs umount MNT`
 * and `dvfs status MNT` find it from the mountpoint alone. Directories are 0700, files 0600.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Repository } from '../repo/repository.js';

export interface MountRecord {
  id: string;
  pid: number;
  mountpoint: string;
  repo: string;
  /** The ciphertext directory being served. */
  tree: string;
  format: 'encfs' | 'native';
  socket: string;
  log: string;
  runDir: string;
  readOnly: boolean;
  startedAt: string;
  /** The session recording this mount's changes (REPO/.dvfs/sessions/<id>); null: none (read-only, bare volume). */
  session: string | null;
  /** The snapshot served read-only (dvfs mount --snapshot); null: the working tree. */
  snapshot?: string | null;
}

export function stateDir(): string {
  if (process.env['DVFS_STATE_DIR']) return resolve(process.env['DVFS_STATE_DIR']);
  const base = process.env['XDG_STATE_HOME'] || join(homedir(), '.local', 'state');
  return join(base, 'dvfs');
}

const hash = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 16);

export function mountId(mountpoint: string): string {
  return hash(resolve(mountpoint));
}

export function runDirFor(repo: Repository): string {
  return repo.kind === 'dvfs' ? join(repo.root, '.dvfs', 'run') : join(stateDir(), 'run', hash(repo.tree));
}

/** Unix socket paths are limited to 107 bytes; sockets live in a short per-user directory. */
export function socketPathFor(id: string): string {
  const base = process.env['XDG_RUNTIME_DIR'] || '/tmp';
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return join(base, `dvfs-${uid}`, `${id}.sock`);
}

function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}

const indexPath = (mountpoint: string): string => join(stateDir(), 'mounts', `${mountId(mountpoint)}.json`);

export function saveRecord(record: MountRecord): void {
  ensureDir(record.runDir);
  ensureDir(join(stateDir(), 'mounts'));
  writeJsonAtomic(join(record.runDir, `${record.id}.json`), record);
  writeJsonAtomic(indexPath(record.mountpoint), record);
}

export function findRecord(mountpoint: string): MountRecord | null {
  try {
    return JSON.parse(readFileSync(indexPath(mountpoint), 'utf8')) as MountRecord;
  } catch {
    return null;
  }
}

export function removeRecord(record: MountRecord): void {
  rmSync(join(record.runDir, `${record.id}.json`), { force: true });
  const indexed = findRecord(record.mountpoint);
  if (indexed && indexed.pid === record.pid) rmSync(indexPath(record.mountpoint), { force: true });
  rmSync(record.socket, { force: true });
}

export function prepareRunFiles(repo: Repository, mountpoint: string): { id: string; runDir: string; socket: string; log: string } {
  const id = mountId(mountpoint);
  const runDir = runDirFor(repo);
  ensureDir(runDir);
  const socket = socketPathFor(id);
  ensureDir(join(socket, '..'));
  return { id, runDir, socket, log: join(runDir, `${id}.log`) };
}
