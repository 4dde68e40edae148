/**
 * Remote locks, after restic's: `locks/<64 hex>` files, one per holder, named by 32 random bytes and sealed
 * under the config key:
 *
 *   file = nonce (24) || XChaCha20-Poly1305(config key, nonce, "dvfs remote lock v1 " || name, JSON) || tag (16)
 *   JSON = {"exclusive":bool,"purpose":"push","host":"node17","pid":1234,"time":"<ISO, refreshed>"}
 *
 * Pushes take shared locks (concurrent appends are safe: packs have random names, index files keyed-hash
 * names, so writers never overwrite each other); whatever deletes data (prune, gc) takes an exclusive one.
 * A lock conflicts with every other lock when either is exclusive. Neither S3 nor Swift has conditional
 * writes, so acquiring is "look, write, look again": a conflicting lock seen on the second look makes the
 * newcomer withdraw its own (both may withdraw; retry later). A lock whose time is older than `staleMs`
 * (default 30 min; holders refresh every 5 min) is stale and ignored (removeStaleLocks deletes them), which
 * assumes clocks roughly agree. A lock file that does not open is an integrity error: it is never ignored.
 */
import { hostname } from 'node:os';
import { DvfsError } from '../errors.js';
import { isNotFound, type Backend } from './backend.js';
import { open, seal, type RemoteKeys } from './keys.js';
import { isName, LOCKS_PREFIX, newName, RemoteIntegrityError } from './layout.js';

export const LOCK_LABEL = 'dvfs remote lock v1';
export const DEFAULT_STALE_MS = 30 * 60 * 1000;
export const DEFAULT_REFRESH_MS = 5 * 60 * 1000;

export interface LockInfo {
  exclusive: boolean;
  purpose: string;
  host: string;
  pid: number;
  time: string;
}

export interface HeldLockInfo extends LockInfo {
  name: string;
}

export function lockKey(name: string): string {
  if (!isName(name)) throw new DvfsError('E_USAGE', `not a lock name: ${JSON.stringify(name)}`);
  return `${LOCKS_PREFIX}${name}`;
}

const lockAd = (name: string): Buffer => Buffer.from(`${LOCK_LABEL} ${name}`, 'ascii');

export function sealLock(keys: RemoteKeys, name: string, info: LockInfo): Buffer {
  return seal(keys.config, lockAd(name), Buffer.from(JSON.stringify(info), 'utf8'));
}

export function openLock(keys: RemoteKeys, location: string, name: string, data: Buffer): LockInfo {
  const key = lockKey(name);
  const fail = (why: string): RemoteIntegrityError => new RemoteIntegrityError(location, key, `lock: ${why}`);
  const plain = data.length > 64 * 1024 ? null : open(keys.config, lockAd(name), data);
  if (plain === null) throw fail('authentication failed (damaged, forged, renamed, or from another repository)');
  let o: unknown;
  try {
    o = JSON.parse(plain.toString('utf8'));
  } catch {
    throw fail('not JSON');
  }
  const v = o as Partial<LockInfo>;
  if (typeof v !== 'object' || v === null || typeof v.exclusive !== 'boolean' || typeof v.purpose !== 'string' || typeof v.host !== 'string' || typeof v.pid !== 'number' || typeof v.time !== 'string') {
    throw fail('malformed');
  }
  return { exclusive: v.exclusive, purpose: v.purpose, host: v.host, pid: v.pid, time: v.time };
}

/**
 * Every lock on the remote (locks deleted while listing are skipped), but `own`: a lock the caller holds and
 * knows, so it is not read back. The others are read in parallel.
 */
export async function listLocks(backend: Backend, keys: RemoteKeys, own: string | null = null): Promise<HeldLockInfo[]> {
  const names: string[] = [];
  for await (const { key } of backend.list(LOCKS_PREFIX)) {
    const name = key.slice(LOCKS_PREFIX.length);
    if (isName(name) && name !== own) names.push(name);
  }
  const read = await Promise.all(
    names.map(async (name): Promise<HeldLockInfo | null> => {
      let data: Buffer;
      try {
        data = await backend.get(lockKey(name));
      } catch (e) {
        if (isNotFound(e)) return null;
        throw e;
      }
      return { name, ...openLock(keys, backend.location, name, data) };
    }),
  );
  return read.filter((l): l is HeldLockInfo => l !== null);
}

function isStale(info: LockInfo, now: number, staleMs: number): boolean {
  const t = Date.parse(info.time);
  return !Number.isFinite(t) || now - t > staleMs;
}

export interface LockOptions {
  exclusive?: boolean;
  purpose?: string;
  staleMs?: number;
  /** Clock (tests). */
  now?: () => number;
}

export class RemoteLock {
  private timer: NodeJS.Timeout | null = null;
  private released = false;
  private refreshing: Promise<void> | null = null;

  private constructor(
    private readonly backend: Backend,
    private readonly keys: RemoteKeys,
    readonly name: string,
    private info: LockInfo,
    private readonly now: () => number,
  ) {}

  /**
   * Takes a lock, or fails with E_BUSY naming who holds a conflicting one. The keys must stay valid until
   * release().
   */
  static async acquire(backend: Backend, keys: RemoteKeys, options: LockOptions = {}): Promise<RemoteLock> {
    const now = options.now ?? Date.now;
    const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
    const exclusive = options.exclusive ?? false;
    const conflict = (others: HeldLockInfo[], self: string | null): HeldLockInfo | undefined =>
      others.find((o) => o.name !== self && !isStale(o, now(), staleMs) && (exclusive || o.exclusive));
    const busy = (o: HeldLockInfo): DvfsError =>
      new DvfsError('E_BUSY', `remote ${backend.location} is locked${o.exclusive ? ' exclusively' : ''} by ${o.purpose} on ${o.host} (pid ${o.pid}, since ${o.time})`, {
        hint: `wait for it to finish; a lock not refreshed for ${Math.round(staleMs / 60000)} minutes counts as stale`,
      });
    // Write first, then look: of two takers whose locks conflict, at least one sees the other's lock after
    // writing its own (a look before writing would only save a put when busy, and costs every taker a list).
    const name = newName();
    const info: LockInfo = { exclusive, purpose: options.purpose ?? 'dvfs', host: hostname(), pid: process.pid, time: new Date(now()).toISOString() };
    const data = sealLock(keys, name, info);
    await backend.put(lockKey(name), data, data.length);
    const after = conflict(await listLocks(backend, keys, name), name);
    if (after !== undefined) {
      await backend.delete([lockKey(name)]);
      throw busy(after);
    }
    return new RemoteLock(backend, keys, name, info, now);
  }

  /** Rewrites the lock with the current time (keeps it from going stale). */
  async refresh(): Promise<void> {
    if (this.released) return;
    this.info = { ...this.info, time: new Date(this.now()).toISOString() };
    const data = sealLock(this.keys, this.name, this.info);
    const p = this.backend.put(lockKey(this.name), data, data.length);
    this.refreshing = p;
    try {
      await p;
    } finally {
      if (this.refreshing === p) this.refreshing = null;
    }
  }

  /** Refreshes every `intervalMs` in the background until release(); failures go to `onError`. */
  keepFresh(intervalMs = DEFAULT_REFRESH_MS, onError: (e: unknown) => void = () => undefined): void {
    if (this.timer !== null || this.released) return;
    this.timer = setInterval(() => void this.refresh().catch(onError), intervalMs);
    this.timer.unref();
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    // A refresh in flight would put the lock back after the delete.
    await this.refreshing?.catch(() => undefined);
    await this.backend.delete([lockKey(this.name)]);
  }
}

/** Deletes stale locks; returns their names. */
export async function removeStaleLocks(backend: Backend, keys: RemoteKeys, options: { staleMs?: number; now?: () => number } = {}): Promise<string[]> {
  const now = (options.now ?? Date.now)();
  const stale = (await listLocks(backend, keys)).filter((l) => isStale(l, now, options.staleMs ?? DEFAULT_STALE_MS)).map((l) => l.name);
  if (stale.length > 0) await backend.delete(stale.map(lockKey));
  return stale;
}
