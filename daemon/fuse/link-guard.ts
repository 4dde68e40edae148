/**
 * Keeps mutations away from ciphertext shared with the object store. Commit hard-links working files into
 * `REPO/.dvfs` (objects, or frozen markers), so an open file whose ciphertext has st_nlink > 1 — more precisely,
 * more links than the one working-tree name the mount knows of (none once it was unlinked) — is re-encrypted into
 * a fresh file (copy-on-write.ts) before its first mutation, and the mutation goes to the copy.
 *
 * Checking nlink costs an fstat, so the answer is cached per open file, tagged with an epoch: commit bumps the
 * epoch (`filesLinked`) after linking files, and every open file checks again before its next mutation. A file
 * that gains its first writer checks again too (commit may have linked it while nobody was writing it).
 *
 * Mutations of one file pass through `mutate`, which also counts those in flight: a copy waits for them to
 * finish (they were checked in an earlier epoch and write to the old content), and mutations that arrive during
 * a copy wait for it, then go to the copy.
 */
import type { Logger } from '../log.js';
import type { CryptoTree, FileContent } from '../vfs/crypto-tree.js';
import { detachCopy } from './copy-on-write.js';
import type { OpenFiles, SharedFile } from './open-files.js';
import type { SpecialFiles } from './special-files.js';

interface GuardState {
  /** The epoch in which the file was last found exclusive (or made so); -1: check before the next mutation. */
  checkedEpoch: number;
  /** A check (and maybe a copy) in progress; mutations wait for it. */
  pending: Promise<void> | null;
  inflight: number;
  /** Resolved when `inflight` drops to 0. */
  idle: (() => void)[];
}

export interface LinkGuardStats {
  copiesOnWrite: number;
  bytesCopiedOnWrite: number;
}

export class LinkGuard {
  private epoch = 0;
  private readonly states = new WeakMap<SharedFile, GuardState>();
  private readonly counters: LinkGuardStats = { copiesOnWrite: 0, bytesCopiedOnWrite: 0 };

  constructor(
    private readonly tree: CryptoTree,
    private readonly files: OpenFiles,
    private readonly logger: Logger,
    /** Off for bare volumes: nothing links their files anywhere, and user hard links must keep working. */
    private readonly enabled: boolean,
    private readonly xattrs?: SpecialFiles,
  ) {}

  stats(): LinkGuardStats {
    return { ...this.counters };
  }

  /** Commit linked working files into the store: every open file checks again before its next mutation. */
  filesLinked(): void {
    this.epoch++;
  }

  /** The file is known to be exclusive now (just created, nlink 1): no fstat before its first write. */
  markExclusive(shared: SharedFile): void {
    this.stateOf(shared).checkedEpoch = this.epoch;
  }

  /** The file gained its first writer: check it again before its next mutation. */
  recheck(shared: SharedFile): void {
    this.stateOf(shared).checkedEpoch = -1;
  }

  /**
   * Runs `fn` on the file's content once it is safe to mutate. `opPath`: the plaintext path FUSE gave with the
   * operation (where a copy is put, if the file is still there). `keep`: the mutation truncates the file to this
   * size (0: nothing needs copying); undefined for writes.
   */
  async mutate<T>(shared: SharedFile, opPath: string, keep: number | undefined, fn: (content: FileContent) => Promise<T>): Promise<T> {
    if (this.enabled) {
      const s = this.stateOf(shared);
      for (;;) {
        if (s.pending !== null) {
          await s.pending;
          continue;
        }
        if (s.checkedEpoch === this.epoch) break;
        const p = this.check(shared, s, opPath, keep).finally(() => {
          if (s.pending === p) s.pending = null;
        });
        s.pending = p;
        await p;
      }
      // Counted from here on, with no await since the check: a later copy waits for this mutation.
      s.inflight++;
      try {
        return await fn(shared.content);
      } finally {
        if (--s.inflight === 0) for (const wake of s.idle.splice(0)) wake();
      }
    }
    return fn(shared.content);
  }

  private stateOf(shared: SharedFile): GuardState {
    let s = this.states.get(shared);
    if (!s) {
      s = { checkedEpoch: -1, pending: null, inflight: 0, idle: [] };
      this.states.set(shared, s);
    }
    return s;
  }

  private async check(shared: SharedFile, s: GuardState, opPath: string, keep: number | undefined): Promise<void> {
    const epoch = this.epoch;
    if (s.inflight > 0) await new Promise<void>((wake) => s.idle.push(wake));
    const st = await shared.content.rawStats();
    // Links beyond the one the mount knows of (its tracked path) are someone else's: the store's, typically.
    // An open file unlinked from the tree knows none, so its last link being the store's is caught too.
    const known = shared.path === null ? 0 : 1;
    if (st.nlink > known) await this.copy(shared, opPath, keep);
    s.checkedEpoch = epoch;
  }

  private async copy(shared: SharedFile, opPath: string, keep: number | undefined): Promise<void> {
    const old = shared.content;
    // Read at each look: renames move `shared.path` while the copy is made. None: the mount saw it unlinked.
    const paths = (): string[] => (shared.path === null ? [] : [opPath, shared.path]);
    const copy = await detachCopy(this.tree, old, paths, { ...(keep === undefined ? {} : { keep }), ...(this.xattrs ? { xattrs: this.xattrs } : {}) });
    this.files.replaceContent(shared, copy.content, copy.ino);
    if (!copy.placed) shared.path = null;
    this.counters.copiesOnWrite++;
    this.counters.bytesCopiedOnWrite += copy.bytesCopied;
    this.logger.debug({ bytes: copy.bytesCopied, placed: copy.placed }, 'copy-on-write: a file linked into the store was re-encrypted before its first change');
    // Reads that already hold the old content finish first: close() waits for them.
    await old.close();
  }
}
