/**
 * The peers of the published benchmark's DVC setup, with git-annex in DVC's place (both hash every file and
 * keep a copy of it in a local object store, then push one object per file):
 *   plain  the stage writes into a git-annex working tree; commit = `git annex add sim/stage-N` + `git commit`
 *   encfs  the stage mounts stock EncFS (ciphertext in the working tree's encrypt/, mount outside it), writes,
 *          unmounts — as async-encfs-dvc's encfs_mount_and_run does —; commit = `git annex add encrypt`
 *          + `git commit` (the ciphertext is versioned, as DVC versioned it there)
 * Push: `git annex copy --to swift -J4` to an S3 special remote on the same Swift (one bucket per run).
 * Files stay unlocked (annex.addunlocked, annex.thin: hard links, no copy), so the next stage reads regular
 * files, as DVC's default cache links left them. Stages run one after the other on this host.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SwiftServer } from '../../test/helpers/swift.js';
import { peerEnvironment, removeTree } from '../lib/peers.js';
import { isMounted, run, waitFor } from '../lib/proc.js';
import { fuseUnmount, lazyUnmount } from '../lib/volumes.js';
import type { StageSpec } from './payload.js';
import { s3Env } from './services.js';
import { parseWriterReport, stageDir, writerArgs, type Pipeline, type StageTimes } from './variant.js';

export const PAYLOAD_JS = fileURLToPath(new URL('./payload.js', import.meta.url));
const TIMEOUT_MS = 4 * 3600 * 1000;

export interface AnnexOptions {
  kind: 'plain' | 'encfs';
  dir: string;
  swift: SwiftServer;
  bucket: string;
  password: string;
  /** Parallel transfers of `git annex copy` (dvfs push uses 4 connections). */
  jobs: number;
}

export class AnnexPipeline implements Pipeline {
  readonly variant: 'plain' | 'encfs';
  private readonly repo: string;
  private readonly raw: string;
  private readonly mnt: string;
  private env: NodeJS.ProcessEnv = {};

  constructor(private readonly o: AnnexOptions) {
    this.variant = o.kind;
    this.repo = join(o.dir, 'repo');
    this.raw = join(this.repo, 'encrypt');
    this.mnt = join(o.dir, 'mnt');
  }

  /** Where the stages write: the working tree, or the EncFS mount. */
  private get data(): string {
    return this.o.kind === 'plain' ? this.repo : this.mnt;
  }

  private git(args: string[], okCodes?: number[]): ReturnType<typeof run> {
    return run('git', args, { cwd: this.repo, env: this.env, timeoutMs: TIMEOUT_MS, ...(okCodes === undefined ? {} : { okCodes }) });
  }

  async prepare(): Promise<void> {
    mkdirSync(this.repo, { recursive: true });
    this.env = s3Env(this.o.swift, await peerEnvironment(join(this.o.dir, 'home')));
    await this.git(['init', '-q']);
    await this.git(['annex', 'init', '-q', `iterative-sim-${this.o.kind}`]);
    for (const [k, v] of [
      ['annex.addunlocked', 'true'],
      ['annex.thin', 'true'],
      // The S3 endpoint is on loopback, which git-annex refuses by default.
      ['annex.security.allowed-ip-addresses', 'all'],
    ] as const) {
      await this.git(['config', k, v]);
    }
    const port = new URL(this.o.swift.endpoint).port;
    // Swift's s3api with git-annex's S3 client: signature v2 (v4 derives the region from the host name) and
    // path-style requests; the bucket is made by initremote.
    await this.git(['annex', 'initremote', 'swift', 'type=S3', 'encryption=none', 'host=127.0.0.1', `port=${port}`, 'protocol=http', 'requeststyle=path', `bucket=${this.o.bucket}`, 'datacenter=US']);
    if (this.o.kind === 'encfs') {
      mkdirSync(this.raw, { recursive: true });
      mkdirSync(this.mnt, { recursive: true });
      // Creating the volume mounts it; the stages mount it again each.
      await run('encfs', ['--standard', '--stdinpass', this.raw, this.mnt], { timeoutMs: 120_000, input: `${this.o.password}\n` });
      await this.unmount();
    }
  }

  private async mount(): Promise<void> {
    await run('encfs', ['--stdinpass', this.raw, this.mnt], { timeoutMs: 120_000, input: `${this.o.password}\n` });
    if (!(await waitFor(() => isMounted(this.mnt), 30_000))) throw new Error(`encfs: ${this.mnt} is not mounted after encfs returned`);
  }

  private async unmount(): Promise<void> {
    await fuseUnmount(this.mnt);
  }

  private async stage(spec: StageSpec): Promise<{ stage: number; write: number }> {
    const t0 = performance.now();
    if (this.o.kind === 'encfs') await this.mount();
    const after = spec.stage > 1 ? join(this.data, stageDir(spec.stage - 1)) : null;
    const w = await run(process.execPath, [PAYLOAD_JS, ...writerArgs(spec, join(this.data, stageDir(spec.stage)), after)], { timeoutMs: TIMEOUT_MS });
    if (this.o.kind === 'encfs') await this.unmount();
    const stage = (performance.now() - t0) / 1000;
    return { stage, write: parseWriterReport(w.stdout, `${this.o.kind} stage ${spec.stage}`).writeSeconds };
  }

  private async commit(spec: StageSpec): Promise<number> {
    const add = await this.git(['annex', 'add', '--quiet', this.o.kind === 'plain' ? stageDir(spec.stage) : 'encrypt']);
    const commit = await this.git(['commit', '-q', '-m', `stage ${spec.stage}`]);
    return add.seconds + commit.seconds;
  }

  async runStages(specs: StageSpec[]): Promise<StageTimes[]> {
    const out: StageTimes[] = [];
    for (const spec of specs) {
      const s = await this.stage(spec);
      out.push({ ...s, commit: await this.commit(spec) });
    }
    return out;
  }

  async push(): Promise<number> {
    return (await this.git(['annex', 'copy', '--to', 'swift', '--quiet', `-J${this.o.jobs}`])).seconds;
  }

  notes(): Record<string, string> {
    return { push: `git annex copy --to swift -J${this.o.jobs} (S3 special remote, one object per file)` };
  }

  async dispose(): Promise<void> {
    if (this.o.kind === 'encfs' && isMounted(this.mnt)) await lazyUnmount(this.mnt);
    await removeTree(this.o.dir, true).catch(() => undefined);
  }
}
