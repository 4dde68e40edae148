/**
 * The versioning tools the commit benchmark compares dvfs with, each behind one interface: make a fresh
 * repository around a directory of files (untimed), then record its current state (timed, whole processes,
 * Node-free), and say afterwards (untimed) what the recording did.
 *
 *   git-annex  `git init` + `git annex init`, then `git annex add . && git commit -q -m MSG`
 *   datalad    `datalad create --force`, then `datalad save -m MSG`
 *   restic     `restic init` (local repository, RESTIC_PASSWORD_FILE), then `restic backup -q --json DIR`
 *   sha256sum  `find DIR -type f -exec sha256sum {} +`: re-hashing every file, the floor of a tool that
 *              keeps no state between runs
 *
 * Peers run with a private HOME (git identity set there with `git config --global`, caches below it), so
 * the user's configuration neither leaks in nor gets touched. Missing tools are installed with apt-get when
 * allowed (root, Debian); otherwise the caller is told why, to say so loudly.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommandError, run, which, type RunResult } from './proc.js';

export type CommitPeer = 'git-annex' | 'datalad' | 'restic' | 'sha256sum';
export const COMMIT_PEERS: CommitPeer[] = ['git-annex', 'datalad', 'restic', 'sha256sum'];

/** The three recordings each tool makes, in order. */
export type CommitStep = 'first' | 'changed' | 'nochange';

const REQUIRED: Record<CommitPeer, { binaries: string[]; packages: string[] }> = {
  'git-annex': { binaries: ['git', 'git-annex'], packages: ['git', 'git-annex'] },
  datalad: { binaries: ['git', 'git-annex', 'datalad'], packages: ['git', 'git-annex', 'datalad'] },
  restic: { binaries: ['restic'], packages: ['restic'] },
  sha256sum: { binaries: ['find', 'sha256sum'], packages: ['findutils', 'coreutils'] },
};

export interface PeerAvailability {
  peer: CommitPeer;
  ok: boolean;
  version?: string;
  /** Why the peer cannot run (missing and not installable). */
  reason?: string;
  /** Packages this run installed for it. */
  installed?: string[];
}

export interface EnsureOptions {
  /** Try `apt-get install -y` for missing tools (needs root and apt-get). */
  install: boolean;
  log: (line: string) => void;
}

const missingBinaries = (peer: CommitPeer): string[] => REQUIRED[peer].binaries.filter((b) => which(b) === null);

async function aptInstall(packages: string[], log: (line: string) => void): Promise<string | null> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): Promise<RunResult> =>
    run('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { timeoutMs: 1_800_000, env });
  log(`installing ${packages.join(' ')} with apt-get`);
  try {
    await install();
    return null;
  } catch (e) {
    // A stale package list is the usual cause: refresh it once and retry.
    log(`apt-get install failed (${(e as Error).message.slice(0, 200)}); running apt-get update and retrying`);
    try {
      await run('apt-get', ['update'], { timeoutMs: 600_000, env });
      await install();
      return null;
    } catch (e2) {
      return (e2 as Error).message.slice(0, 400);
    }
  }
}

/**
 * Checks each peer's programs, installs what is missing when allowed, and returns what can run (with its
 * version) and, for the rest, why not.
 */
export async function ensurePeers(peers: CommitPeer[], o: EnsureOptions): Promise<PeerAvailability[]> {
  const out: PeerAvailability[] = [];
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  for (const peer of peers) {
    const a: PeerAvailability = { peer, ok: true };
    let missing = missingBinaries(peer);
    if (missing.length > 0) {
      const pkgs = REQUIRED[peer].packages;
      if (!o.install) a.reason = `not found: ${missing.join(', ')} (installing disabled by --no-install; apt-get install -y ${pkgs.join(' ')})`;
      else if (!root) a.reason = `not found: ${missing.join(', ')} and not root, so cannot apt-get install -y ${pkgs.join(' ')}`;
      else if (which('apt-get') === null) a.reason = `not found: ${missing.join(', ')} and there is no apt-get to install ${pkgs.join(' ')}`;
      else {
        const err = await aptInstall(pkgs, o.log);
        missing = missingBinaries(peer);
        if (err !== null) a.reason = `not found: ${missing.join(', ')}; apt-get install -y ${pkgs.join(' ')} failed: ${err}`;
        else if (missing.length > 0) a.reason = `apt-get installed ${pkgs.join(' ')} but ${missing.join(', ')} is still not in PATH`;
        else a.installed = pkgs;
      }
      if (a.reason !== undefined) a.ok = false;
    }
    if (a.ok) a.version = await versionOf(peer);
    out.push(a);
  }
  return out;
}

async function firstLine(cmd: string, args: string[]): Promise<string> {
  try {
    const r = await run(cmd, args, { timeoutMs: 60_000 });
    return (r.stdout + r.stderr).trim().split('\n')[0] ?? cmd;
  } catch (e) {
    return `unknown (${(e as Error).message.slice(0, 100)})`;
  }
}

async function versionOf(peer: CommitPeer): Promise<string> {
  switch (peer) {
    case 'git-annex':
      return `git-annex ${await firstLine('git', ['annex', 'version', '--raw'])} (${await firstLine('git', ['--version'])})`;
    case 'datalad':
      return `${await firstLine('datalad', ['--version'])} (git-annex ${await firstLine('git', ['annex', 'version', '--raw'])})`;
    case 'restic':
      return firstLine('restic', ['version']);
    case 'sha256sum':
      return firstLine('sha256sum', ['--version']);
  }
}

// ---------------------------------------------------------------------------------------------------------
// A private HOME for the peers

/**
 * Makes `home` a HOME for the peers: a git identity (`git config --global` there, never in the user's own
 * HOME) and caches below it. Returns the environment to run the peers with.
 */
export async function peerEnvironment(home: string): Promise<NodeJS.ProcessEnv> {
  mkdirSync(join(home, '.config'), { recursive: true });
  mkdirSync(join(home, '.cache'), { recursive: true });
  const name = 'dvfs commit bench';
  const email = 'bench@dvfs.invalid';
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_CACHE_HOME: join(home, '.cache'),
    GIT_AUTHOR_NAME: name,
    GIT_AUTHOR_EMAIL: email,
    GIT_COMMITTER_NAME: name,
    GIT_COMMITTER_EMAIL: email,
    GIT_CONFIG_NOSYSTEM: '1',
    LC_ALL: 'C',
  };
  for (const k of Object.keys(env)) if (k.startsWith('RESTIC_') || k.startsWith('DATALAD_') || k === 'GIT_DIR' || k === 'GIT_WORK_TREE') delete env[k];
  if (which('git') !== null) {
    for (const [k, v] of [
      ['user.name', name],
      ['user.email', email],
      ['init.defaultBranch', 'main'],
      ['advice.detachedHead', 'false'],
    ] as Array<[string, string]>) {
      await run('git', ['config', '--global', k, v], { timeoutMs: 30_000, env });
    }
  }
  return env;
}

// ---------------------------------------------------------------------------------------------------------
// Workspaces

/** What one timed recording took and did. */
export interface PeerStepResult {
  /** Wall seconds of the recording's processes, spawn to exit (summed when there are two). */
  seconds: number;
  /** What the tool did, as far as it says (restic's summary) or as read back afterwards (untimed). */
  summary: Record<string, number | string | boolean | null>;
}

export interface PeerWorkspace {
  readonly peer: CommitPeer;
  /** The directory holding the files the tool records (filled by the caller before prepare()). */
  readonly tree: string;
  /** Untimed: create the repository around (or next to) the tree. */
  prepare(): Promise<void>;
  /** Timed: record the tree's current state. */
  record(step: CommitStep, message: string): Promise<PeerStepResult>;
}

export interface WorkspaceOptions {
  env: NodeJS.ProcessEnv;
  /** Time limit of one recording. */
  timeoutMs: number;
}

/**
 * A workspace for `peer` in `dir` (created if needed): the files go in `dir/tree`; repositories that live
 * outside the tree (restic's) go next to it.
 */
export function newPeerWorkspace(peer: CommitPeer, dir: string, o: WorkspaceOptions): PeerWorkspace {
  mkdirSync(dir, { recursive: true });
  switch (peer) {
    case 'git-annex':
      return new GitAnnexWorkspace(peer, dir, o);
    case 'datalad':
      return new DataladWorkspace(peer, dir, o);
    case 'restic':
      return new ResticWorkspace(peer, dir, o);
    case 'sha256sum':
      return new Sha256Workspace(peer, dir, o);
  }
}

abstract class Workspace implements PeerWorkspace {
  readonly tree: string;
  constructor(
    readonly peer: CommitPeer,
    readonly dir: string,
    protected readonly o: WorkspaceOptions,
  ) {
    this.tree = join(dir, 'tree');
  }
  abstract prepare(): Promise<void>;
  abstract record(step: CommitStep, message: string): Promise<PeerStepResult>;

  protected run(cmd: string, args: string[], extra: { okCodes?: number[]; env?: NodeJS.ProcessEnv; stdout?: 'pipe' | 'ignore' } = {}): Promise<RunResult> {
    return run(cmd, args, { timeoutMs: this.o.timeoutMs, cwd: this.tree, env: extra.env ?? this.o.env, okCodes: extra.okCodes, stdout: extra.stdout });
  }
}

/** git-based peers: what the last recording committed, read back untimed. */
abstract class GitWorkspace extends Workspace {
  protected async head(): Promise<string | null> {
    const r = await this.run('git', ['rev-parse', '-q', '--verify', 'HEAD'], { okCodes: [0, 1] });
    return r.code === 0 ? r.stdout.trim() : null;
  }

  /** Timed recording between two untimed looks at HEAD; says whether it made a commit and of how many paths. */
  protected async recordAround(timed: () => Promise<number>): Promise<PeerStepResult> {
    const before = await this.head();
    const seconds = await timed();
    const after = await this.head();
    const summary: PeerStepResult['summary'] = { commitCreated: after !== null && after !== before, pathsInCommit: null, commits: null };
    if (after !== null) {
      if (after !== before) {
        const d = await this.run('git', ['diff-tree', '--root', '-r', '--name-only', '--no-commit-id', 'HEAD']);
        summary['pathsInCommit'] = d.stdout.split('\n').filter((l) => l.length > 0).length;
      } else summary['pathsInCommit'] = 0;
      const c = await this.run('git', ['rev-list', '--count', 'HEAD']);
      summary['commits'] = Number(c.stdout.trim());
    }
    return { seconds, summary };
  }
}

class GitAnnexWorkspace extends GitWorkspace {
  async prepare(): Promise<void> {
    await this.run('git', ['init', '-q']);
    await this.run('git', ['annex', 'init', '-q', 'commit-bench']);
  }
  async record(_step: CommitStep, message: string): Promise<PeerStepResult> {
    return this.recordAround(async () => {
      const add = await this.run('git', ['annex', 'add', '.', '--quiet']);
      // `git commit` exits 1 when there is nothing to commit (the no-change step): that is a result, not a failure.
      const commit = await this.run('git', ['commit', '-q', '-m', message], { okCodes: [0, 1] });
      if (commit.code === 1 && !/nothing( added)? to commit|no changes added/i.test(commit.stdout + commit.stderr)) {
        throw new CommandError(`git commit -q -m ${message}: exit code 1: ${(commit.stdout + commit.stderr).trim().slice(0, 300)}`, commit);
      }
      return add.seconds + commit.seconds;
    });
  }
}

class DataladWorkspace extends GitWorkspace {
  async prepare(): Promise<void> {
    await run('datalad', ['create', '--force', this.tree], { timeoutMs: this.o.timeoutMs, env: this.o.env, cwd: this.dir });
  }
  async record(_step: CommitStep, message: string): Promise<PeerStepResult> {
    return this.recordAround(async () => (await this.run('datalad', ['save', '-m', message])).seconds);
  }
}

class ResticWorkspace extends Workspace {
  private readonly repo = join(this.dir, 'restic-repo');
  private readonly pwFile = join(this.dir, 'restic-password');
  private env(): NodeJS.ProcessEnv {
    return { ...this.o.env, RESTIC_REPOSITORY: this.repo, RESTIC_PASSWORD_FILE: this.pwFile };
  }
  async prepare(): Promise<void> {
    writeFileSync(this.pwFile, 'commit-bench-password\n', { mode: 0o600 });
    await run('restic', ['init', '-q'], { timeoutMs: this.o.timeoutMs, env: this.env(), cwd: this.dir });
  }
  async record(): Promise<PeerStepResult> {
    const r = await this.run('restic', ['backup', '-q', '--json', this.tree], { env: this.env() });
    const summary: PeerStepResult['summary'] = {};
    // With -q --json restic prints one summary object (status lines are suppressed).
    for (const line of r.stdout.split('\n').reverse()) {
      if (!line.startsWith('{')) continue;
      try {
        const j = JSON.parse(line) as Record<string, unknown>;
        if (j['message_type'] !== 'summary') continue;
        for (const k of ['files_new', 'files_changed', 'files_unmodified', 'data_added', 'total_bytes_processed', 'total_duration', 'snapshot_id']) {
          const v = j[k];
          if (typeof v === 'number' || typeof v === 'string') summary[k] = v;
        }
        break;
      } catch {
        /* not JSON */
      }
    }
    return { seconds: r.seconds, summary };
  }
}

class Sha256Workspace extends Workspace {
  async prepare(): Promise<void> {}
  async record(): Promise<PeerStepResult> {
    // One sha256sum per batch of paths, like find | xargs sha256sum, without a shell.
    const r = await this.run('find', ['.', '-type', 'f', '-exec', 'sha256sum', '{}', '+'], { stdout: 'ignore' });
    return { seconds: r.seconds, summary: {} };
  }
}

/**
 * Removes a directory tree that may hold read-only parts (git-annex write-protects its object store):
 * `chmod -R u+w`, then `rm -rf --one-file-system`.
 */
export async function removeTree(dir: string, duringAbort = false): Promise<void> {
  await run('chmod', ['-R', 'u+w', dir], { timeoutMs: 600_000, duringAbort, okCodes: [0, 1] });
  await run('rm', ['-rf', '--one-file-system', dir], { timeoutMs: 1_800_000, duringAbort });
}
