/**
 * Interrupts and cleanup, shared by the benchmarks. A benchmark starts through runMain(), registers what it
 * creates (mounted volumes, temp directories) and calls checkInterrupted() between steps; everything is then
 * undone once — at the end, on an error, or on the first SIGINT/SIGTERM/SIGHUP:
 *
 *   1st signal  stop: kill the running children, unmount every volume (cleanly, else by force), kill leftover
 *               processes naming or working in the temp directories, remove those; then exit 130
 *   2nd signal  say that cleanup is still under way
 *   3rd signal  exit 131 at once, without cleaning up
 */
import { existsSync, rmdirSync } from 'node:fs';
import { loud } from './log.js';
import { CommandError, isAborting, killActiveChildren, killQuietly, mountsUnder, pidsNaming, pidsWorkingIn, processAlive, sleep, waitFor } from './proc.js';
import { lazyUnmountAll, type Volume } from './volumes.js';

export interface BenchmarkSetup {
  /** Names the benchmark in the failure message (`<name> failed: …`). */
  name: string;
  log: (line: string) => void;
  /** What the first signal says is being undone, e.g. 'unmounting everything and removing the work directory'. */
  stopping: string;
  /** Removes one of the benchmark's directories; `duringAbort` in the final cleanup (see RunOptions). */
  removeDir: (dir: string, duringAbort: boolean) => Promise<void>;
}

let setup: BenchmarkSetup = {
  name: 'bench',
  log: (line) => process.stderr.write(`${line}\n`),
  stopping: 'cleaning up',
  removeDir: async () => {},
};
const liveVolumes = new Set<Volume>();
const tempDirs: string[] = [];
let createdBaseDir: string | null = null;
let cleanupPromise: Promise<void> | null = null;
let interrupted = false;
let signals = 0;

/** A volume to unmount (by force if need be) in the final cleanup, until finishVolume() is done with it. */
export function trackVolume(v: Volume): void {
  liveVolumes.add(v);
}

/** A directory the final cleanup removes (after unmounting what is below it and killing what uses it). */
export function addTempDir(dir: string): void {
  tempDirs.push(dir);
}

/** A base directory the benchmark created: removed at the end if it is empty then (other runs may share it). */
export function removeAtEndIfEmpty(dir: string): void {
  createdBaseDir = dir;
}

/**
 * Unmounts a volume (by force if the clean unmount fails) and removes its directory — unless the benchmark is
 * being interrupted: then the final cleanup owns everything. A directory still mounted is left to it too.
 */
export async function finishVolume(vol: Volume): Promise<void> {
  if (isAborting()) return;
  try {
    await vol.unmount();
  } catch (e) {
    setup.log(`${vol.peer}: unmount failed (${(e as Error).message}); forcing it`);
  }
  await vol.forceUnmount();
  liveVolumes.delete(vol);
  if (mountsUnder(vol.dir).length === 0) await setup.removeDir(vol.dir, false);
  else loud(`${vol.dir} is still mounted: left in place until the final cleanup`);
}

async function releaseAll(): Promise<void> {
  const { log, removeDir } = setup;
  killActiveChildren();
  for (const v of [...liveVolumes].reverse()) {
    await v.forceUnmount();
    liveVolumes.delete(v);
  }
  for (const dir of tempDirs) {
    if (!existsSync(dir)) continue;
    await lazyUnmountAll(dir);
    // Daemons naming our directories (encfs, gocryptfs, dvfs outliving their mount), and descendants of
    // killed children still working inside them (git-annex's helpers outlive a killed `git`): all started
    // by this benchmark.
    for (const pid of new Set([...pidsNaming(dir), ...pidsWorkingIn(dir)])) {
      if (await waitFor(() => !processAlive(pid), 3_000)) continue;
      log(`cleanup: killing leftover process ${pid}`);
      killQuietly(pid);
    }
    const left = mountsUnder(dir);
    if (left.length > 0) {
      loud(`cleanup: NOT removing ${dir}: still mounted: ${left.join(', ')} (detach with umount -l, then rm -rf ${dir})`);
      continue;
    }
    for (let attempt = 1; ; attempt++) {
      try {
        await removeDir(dir, true);
        break;
      } catch (e) {
        if (attempt < 3) {
          for (const pid of pidsWorkingIn(dir)) killQuietly(pid);
          await sleep(1_000);
          continue;
        }
        loud(`cleanup: could not remove ${dir}: ${(e as Error).message}`);
        break;
      }
    }
  }
  if (createdBaseDir !== null) {
    try {
      rmdirSync(createdBaseDir);
    } catch {
      /* not empty (another run's directory), or gone */
    }
  }
}

/** Undoes everything registered; runs once however often it is called (end, error, signal). */
export function cleanup(): Promise<void> {
  cleanupPromise ??= releaseAll().catch((e: unknown) => loud(`cleanup failed: ${(e as Error).message}`));
  return cleanupPromise;
}

function onSignal(sig: NodeJS.Signals): void {
  signals++;
  interrupted = true;
  if (signals === 1) {
    loud(`${sig}: stopping; ${setup.stopping} (Ctrl-C twice more to quit at once)`);
    void cleanup().then(() => process.exit(130));
  } else if (signals === 2) {
    loud('still cleaning up; one more signal quits without cleaning');
  } else {
    process.exit(131);
  }
}

/** From now on SIGINT, SIGTERM and SIGHUP stop the benchmark (see the top of this file). */
export function handleSignals(): void {
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
}

/** Throws CommandError('interrupted') once a signal came (or the children are being killed): no new work. */
export function checkInterrupted(): void {
  if (interrupted || isAborting()) throw new CommandError('interrupted');
}

/**
 * Runs the benchmark's main(): exit 0 when it returns, or clean up and exit 1 when it throws. After a signal
 * the signal handler cleans up and exits instead.
 */
export function runMain(s: BenchmarkSetup, main: () => Promise<void>): void {
  setup = s;
  main().then(
    () => {
      if (!interrupted) process.exit(0);
    },
    async (e: unknown) => {
      if (interrupted) return; // the signal handler cleans up and exits
      loud(`${setup.name} failed: ${(e as Error).message}`);
      await cleanup();
      process.exit(1);
    },
  );
}
