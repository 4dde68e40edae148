/**
 * One mount: opens the repository's tree, serves it through FUSE, answers the control socket, records
 * itself in the run directory, and on `unmount`, SIGTERM or SIGINT flushes, unmounts and exits cleanly.
 * A writable mount of a dvfs repository also runs a session (versioning.ts): its journal records every
 * change, and the control socket can list (`changes`) and commit them (`commit`).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { DvfsError } from '../errors.js';
import { CtlBusyError } from '../ctl/protocol.js';
import { startCtlServer, type CtlServer } from '../ctl/server.js';
import { Frontend } from '../fuse/frontend.js';
import { mountFuse, type MountedFuse } from '../fuse/mount.js';
import { specialFiles } from '../fuse/special-files.js';
import type { Logger } from '../log.js';
import { openTree, type Credential } from '../repo/open-tree.js';
import { wipeTreeKeys, type TreeKeys } from '../keys/tree-keys.js';
import { locateRepository, type Repository } from '../repo/repository.js';
import { mountState } from './mountinfo.js';
import { prepareRunFiles, removeRecord, saveRecord, type MountRecord } from './records.js';
import { MountVersioning } from './versioning.js';
import { rm } from 'node:fs/promises';
import { readHead } from '../store/refs.js';
import { memoryMiB } from '../util/memory.js';
import { openVersioning, requireVersionedRepo } from '../versioning/context.js';
import type { CryptoTree } from '../vfs/crypto-tree.js';

/** How long `unmount` waits for in-flight releases before calling the mount busy. */
const RELEASE_GRACE_MS = 2_000;

export interface SessionSpec {
  repo: string;
  mountpoint: string;
  readOnly: boolean;
  allowOther: boolean;
  /** Pass extended attributes through (default false: see FrontendOptions.xattr). */
  xattr?: boolean;
  /** Serve this snapshot (id, prefix, HEAD~N) read-only instead of the working tree. */
  snapshot?: string;
}

export interface Session {
  record: MountRecord;
  /** Resolves once the session has unmounted and cleaned up. */
  done: Promise<void>;
  shutdown(reason: string): Promise<void>;
}

export type RunFiles = ReturnType<typeof prepareRunFiles>;

/** Finds the repository and lays out the mount's run files (so the caller can open the log first). */
export async function prepareSession(spec: SessionSpec): Promise<{ repo: Repository; run: RunFiles }> {
  const repo = await locateRepository(spec.repo);
  return { repo, run: prepareRunFiles(repo, spec.mountpoint) };
}

/**
 * Whether RLIMIT_CORE is already 0, soft and hard (as the launcher's `ulimit -c 0` leaves it), read from
 * /proc/self/limits; false when that cannot be read.
 */
export function coreDumpsOff(limits: string | null = readLimits()): boolean {
  const m = /^Max core file size\s+(\S+)\s+(\S+)/m.exec(limits ?? '');
  return m?.[1] === '0' && m[2] === '0';
}

function readLimits(): string | null {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
}

/**
 * A daemon holds keys and plaintext in memory: it must never dump core. Node cannot set rlimits itself, so
 * util-linux prlimit does it for this process — unless the launcher already did (spawning prlimit costs
 * every mount a fork and exec); if that is impossible the caller is told (and logs it).
 */
export function disableCoreDumps(): string | null {
  if (coreDumpsOff()) return null;
  const r = spawnSync('prlimit', ['--pid', String(process.pid), '--core=0:0'], { stdio: 'ignore', timeout: 5_000 });
  if (r.error) return `prlimit unavailable (${r.error.message})`;
  return r.status === 0 ? null : `prlimit exited with ${r.status}`;
}

/** Assembles the read-only view of snapshot `ref` (see versioning/snapshot-view.ts). */
async function openView(repo: Repository, workingTree: CryptoTree, ref: string, password: Buffer | Credential | TreeKeys, logger: Logger): Promise<{ tree: CryptoTree; dir: string; id: string }> {
  requireVersionedRepo(repo);
  // only snapshot mounts load these
  const [{ resolveSnapshot }, { createSnapshotView }] = await Promise.all([import('../versioning/snapshot-walk.js'), import('../versioning/snapshot-view.js')]);
  const v = openVersioning(repo, workingTree);
  try {
    const { id } = await resolveSnapshot(v.manifests, await readHead(repo.root), ref);
    const view = await createSnapshotView(v, id, (root) => openTree({ ...repo, tree: root, encfsRoot: repo.format === 'encfs' ? root : null }, password, logger));
    logger.info({ snapshot: id }, 'serving a snapshot read-only');
    return { ...view, id };
  } finally {
    v.close();
  }
}

export async function startSession(spec: SessionSpec, password: Buffer | Credential | TreeKeys, logger: Logger, prepared: { repo: Repository; run: RunFiles }): Promise<Session> {
  const { repo, run } = prepared;
  const coreProblem = disableCoreDumps();
  if (coreProblem) logger.warn({ err: coreProblem }, 'could not disable core dumps for the daemon');
  const state = mountState(spec.mountpoint);
  if (state !== 'not-mounted') {
    throw new DvfsError('E_EXISTS', `something is already mounted here (${state})`, { path: spec.mountpoint, hint: 'dvfs umount it first' });
  }
  const workingTree = await openTree(repo, password, logger);
  let view: { tree: CryptoTree; dir: string; id: string } | null = null;
  if (spec.snapshot !== undefined) {
    try {
      view = await openView(repo, workingTree, spec.snapshot, password, logger);
    } finally {
      workingTree.dispose?.();
    }
  }
  if (Buffer.isBuffer(password)) password.fill(0);
  else if (password.kind === 'password') password.password.fill(0);
  else if (password.kind === 'keys') wipeTreeKeys(password);
  else password.identity.destroy();
  const tree = view?.tree ?? workingTree;
  let versioning: MountVersioning | null = null;
  let noSession: string | null = null;
  if (view) noSession = `snapshot view ${view.id.slice(0, 12)}`;
  else if (spec.readOnly) noSession = 'read-only mount';
  else if (repo.kind !== 'dvfs') noSession = 'bare volume (not a dvfs repository: it cannot hold snapshots)';
  if (noSession === null) {
    try {
      versioning = await MountVersioning.start(repo, tree, spec.mountpoint, logger);
    } catch (e) {
      tree.dispose?.();
      throw e;
    }
  } else {
    logger.info({ reason: noSession }, 'no session: changes made through this mount are not recorded');
  }
  const frontend = new Frontend(tree, {
    readOnly: spec.readOnly || view !== null,
    xattr: spec.xattr ?? false,
    logger,
    special: specialFiles(),
    ...(versioning ? { recorder: versioning.recorder } : {}),
    // Commit links a repository's working files into its store (also a commit made while it is unmounted).
    copyOnWrite: repo.kind === 'dvfs',
  });
  let fuse: MountedFuse;
  try {
    fuse = await mountFuse(spec.mountpoint, frontend.operations(), { readOnly: spec.readOnly || view !== null, allowOther: spec.allowOther, fsname: `dvfs:${tree.format}` });
  } catch (e) {
    await versioning?.abandon().catch(() => undefined);
    tree.dispose?.();
    if (view) await rm(view.dir, { recursive: true, force: true });
    throw new DvfsError('E_IO', `FUSE mount failed: ${e instanceof Error ? e.message : String(e)}`, { path: spec.mountpoint, hint: 'is /dev/fuse available and the mountpoint an empty directory?' });
  }
  const record: MountRecord = {
    id: run.id,
    pid: process.pid,
    mountpoint: spec.mountpoint,
    repo: repo.root,
    tree: tree.root,
    format: tree.format,
    socket: run.socket,
    log: run.log,
    runDir: run.runDir,
    readOnly: spec.readOnly || view !== null,
    startedAt: new Date().toISOString(),
    session: versioning?.id ?? null,
    snapshot: view?.id ?? null,
  };
  let finished!: () => void;
  const done = new Promise<void>((r) => (finished = r));
  let closing: Promise<void> | null = null;
  let ctl: CtlServer | null = null;
  const sessionOf = (): MountVersioning => {
    if (versioning) return versioning;
    throw new DvfsError('E_UNSUPPORTED', `this mount records no changes (${noSession ?? 'no session'})`);
  };

  const shutdown = (reason: string): Promise<void> => {
    closing ??= (async () => {
      logger.info({ mountpoint: spec.mountpoint, reason }, 'unmounting');
      try {
        await frontend.flush();
      } catch (e) {
        logger.error({ err: e instanceof Error ? e.message : String(e) }, 'flush before unmount failed');
      }
      try {
        await fuse.unmount();
      } catch (e) {
        logger.error({ err: e instanceof Error ? e.message : String(e) }, 'FUSE unmount failed');
      }
      // The frontend's close records what is still open; then the journal can be finished.
      await frontend.close();
      try {
        await versioning?.end();
      } catch (e) {
        logger.error({ err: e instanceof DvfsError ? e.code : 'error' }, 'finishing the session journal failed (the next commit recovers it)');
      }
      tree.dispose?.();
      if (view) await rm(view.dir, { recursive: true, force: true }).catch(() => undefined);
      await ctl?.close();
      removeRecord(record);
      logger.info({ mountpoint: spec.mountpoint, ...frontend.stats() }, 'unmounted');
      finished();
    })();
    return closing;
  };

  ctl = await startCtlServer(run.socket, {
    status: async () => ({ ...record, ...frontend.stats(), memory: memoryMiB() }),
    flush: async () => {
      await frontend.flush();
      return {};
    },
    changes: async () => sessionOf().changes(),
    commit: async (request) => sessionOf().commit(request, { openForWrite: () => frontend.openForWrite(), filesLinked: () => frontend.filesLinked() }),
    unmount: async (request) => {
      // close(2) returns before the kernel's RELEASE reaches us: give just-closed files a moment to drain.
      for (let waited = 0; frontend.files.count > 0 && !request.force && waited < RELEASE_GRACE_MS; waited += 20) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const open = frontend.files.count;
      if (open > 0 && !request.force) {
        throw new CtlBusyError(`the mount is busy: ${open} open file handle${open === 1 ? '' : 's'} (close them, or detach anyway with dvfs umount --force; their processes then get ENOTCONN)`);
      }
      setImmediate(() => void shutdown(request.force ? 'control socket (forced)' : 'control socket'));
      return {};
    },
  });
  saveRecord(record);
  logger.info({ mountpoint: spec.mountpoint, repo: repo.root, format: tree.format, readOnly: spec.readOnly, pid: process.pid }, 'mounted');
  return { record, done, shutdown };
}
