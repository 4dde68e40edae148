/**
 * What a mount profile is, and the checker that turns a parsed YAML value into one.
 *
 * A profile describes one kind of workflow stage: which subtrees of the repository it reads and which it owns
 * (with `{stage}`, `{run}`, `{job_id}`, `{input}` placeholders), the repository's expected encryption mode,
 * mount options, the container engine with its image and where the mount appears inside, extra binds and
 * environment, SLURM options (consumed by the SLURM integration), and the commit, failure and push policies.
 *
 * The YAML spelling uses snake_case keys; the typed object uses camelCase. Every field is optional in a file:
 * missing ones come from the repository defaults and then from BUILT_IN_DEFAULTS (see load.ts). checkProfile
 * checks the merged value and reports each problem with the key path it concerns; load.ts turns the key path
 * into file:line.
 */
import { PLACEHOLDERS } from './placeholders.js';

export const ENGINES = ['docker', 'podman', 'bubblewrap', 'sarus', 'apptainer', 'none'] as const;
export type EngineName = (typeof ENGINES)[number];
export const COMMIT_POLICIES = ['on-success', 'always', 'never'] as const;
export type CommitPolicy = (typeof COMMIT_POLICIES)[number];
export const FAILURE_ACTIONS = ['keep', 'discard', 'cancel-dependents'] as const;
export type FailureAction = (typeof FAILURE_ACTIONS)[number];
export const ENCRYPTION_MODES = ['inherit', 'encfs', 'native'] as const;
export type EncryptionMode = (typeof ENCRYPTION_MODES)[number];

/** SLURM options of a stage (the SLURM integration turns them into sbatch arguments). */
export interface SlurmOptions {
  partition: string | null;
  nodes: number | null;
  ntasks: number | null;
  /** sbatch --time syntax, e.g. "01:30:00" or "2-00:00:00". */
  time: string | null;
  /** Extra sbatch arguments, passed as they are. */
  extraArgs: string[];
}

export interface BindSpec {
  source: string;
  target: string;
  readOnly: boolean;
}

export interface ContainerSpec {
  engine: EngineName;
  /** Image reference (docker/podman/sarus), .sif file (apptainer) or root filesystem directory (bubblewrap). */
  image: string | null;
  /** Where the mount appears inside the container (engine none: ignored, the host path is used). */
  target: string;
  binds: BindSpec[];
  env: Record<string, string>;
  /** Arguments for the engine binary before its `run`/`exec` subcommand (e.g. podman --root DIR). */
  engineArgs: string[];
  /** Extra arguments of the run subcommand (before the image). */
  runArgs: string[];
}

export interface Profile {
  name: string;
  description: string;
  /** Where it was read from (a file, or "built-in"). */
  source: string;
  layout: { reads: string[]; writes: string[] };
  encryption: EncryptionMode;
  mount: { readOnly: boolean; allowOther: boolean; xattr: boolean };
  container: ContainerSpec;
  slurm: SlurmOptions;
  commit: CommitPolicy;
  failure: { retry: number; onFailure: FailureAction };
  /** Remote to push to after a commit, or null. */
  push: string | null;
}

/** A problem found in a profile: the key path ([] = the document) and what is wrong. */
export interface ProfileProblem {
  path: (string | number)[];
  message: string;
}

export class ProfileProblems extends Error {
  constructor(readonly problems: ProfileProblem[]) {
    super(problems.map((p) => `${p.path.join('.') || '(document)'}: ${p.message}`).join('; '));
    this.name = 'ProfileProblems';
  }
}

type Obj = { [k: string]: unknown };
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const KEYS: Record<string, readonly string[]> = {
  '': ['name', 'description', 'layout', 'encryption', 'mount', 'container', 'slurm', 'commit', 'failure', 'push'],
  layout: ['reads', 'writes'],
  mount: ['read_only', 'allow_other', 'xattr'],
  container: ['engine', 'image', 'target', 'binds', 'env', 'engine_args', 'run_args'],
  slurm: ['partition', 'nodes', 'ntasks', 'time', 'extra_args'],
  failure: ['retry', 'on_failure'],
  bind: ['source', 'target', 'read_only'],
};

const SLURM_TIME = /^(?:\d+-)?\d{1,2}(?::\d{2}){0,2}$|^\d+$/;
const PLACEHOLDER = /\{([^{}]*)\}/g;

class Checker {
  readonly problems: ProfileProblem[] = [];

  fail(path: (string | number)[], message: string): void {
    this.problems.push({ path, message });
  }

  obj(v: unknown, path: (string | number)[], keys: readonly string[]): Obj {
    if (v === undefined || v === null) return {};
    if (!isObj(v)) {
      this.fail(path, 'must be a mapping');
      return {};
    }
    for (const k of Object.keys(v)) if (!keys.includes(k)) this.fail([...path, k], `unknown key (expected one of: ${keys.join(', ')})`);
    return v;
  }

  str(v: unknown, path: (string | number)[]): string | null {
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string' || v.length === 0) {
      this.fail(path, 'must be a non-empty string');
      return null;
    }
    return v;
  }

  bool(v: unknown, path: (string | number)[], fallback: boolean): boolean {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') {
      this.fail(path, 'must be true or false');
      return fallback;
    }
    return v;
  }

  int(v: unknown, path: (string | number)[], min: number, max: number): number | null {
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      this.fail(path, `must be a whole number in ${min}..${max}`);
      return null;
    }
    return v;
  }

  strings(v: unknown, path: (string | number)[]): string[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.fail(path, 'must be a list of strings');
      return [];
    }
    return v.flatMap((s, i) => {
      const r = this.str(typeof s === 'number' ? String(s) : s, [...path, i]);
      return r === null ? [] : [r];
    });
  }

  choice<T extends string>(v: unknown, path: (string | number)[], choices: readonly T[], fallback: T): T {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
      this.fail(path, `must be one of: ${choices.join(', ')} (got ${JSON.stringify(v)})`);
      return fallback;
    }
    return v as T;
  }

  placeholders(s: string, path: (string | number)[]): void {
    for (const m of s.matchAll(PLACEHOLDER)) {
      if (!(PLACEHOLDERS as readonly string[]).includes(m[1] ?? '')) this.fail(path, `unknown placeholder {${m[1]}} (known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(', ')})`);
    }
  }

  repoPath(s: string, path: (string | number)[]): string {
    this.placeholders(s, path);
    const parts = s.split('/').filter((c) => c !== '' && c !== '.');
    if (parts.includes('..')) this.fail(path, 'must not contain ".."');
    if (parts.length === 0) this.fail(path, 'must name a subtree, not the whole repository');
    return parts.join('/');
  }
}

/** Whether one repository path is the other or lies below it ('a/b' and 'a/b/c' overlap; 'a/b' and 'a/bc' do not). */
export function pathsOverlap(a: string, b: string): boolean {
  const literal = (p: string): string => p.replace(/\{[^{}]*\}.*$/, '');
  // A placeholder can expand to anything: compare only what comes before the first one, by whole components.
  const la = literal(a);
  const lb = literal(b);
  const prefix = (x: string, y: string, full: boolean): boolean => (full ? x === y || y.startsWith(x + '/') : y.startsWith(x));
  return prefix(la, lb, la === a) || prefix(lb, la, lb === b);
}

/**
 * Checks a (merged) profile value and returns the typed profile, or throws ProfileProblems listing every
 * problem with its key path.
 */
export function checkProfile(value: unknown, name: string, source: string): Profile {
  const c = new Checker();
  const top = c.obj(value, [], KEYS[''] as readonly string[]);
  const layout = c.obj(top['layout'], ['layout'], KEYS['layout'] as readonly string[]);
  const reads = c.strings(layout['reads'], ['layout', 'reads']).map((s, i) => c.repoPath(s, ['layout', 'reads', i]));
  const writes = c.strings(layout['writes'], ['layout', 'writes']).map((s, i) => c.repoPath(s, ['layout', 'writes', i]));
  writes.forEach((w, i) => {
    writes.forEach((o, j) => {
      if (j > i && pathsOverlap(w, o)) c.fail(['layout', 'writes', j], `owned path "${o}" overlaps owned path "${w}" (layout.writes[${i}]): each path has one owner`);
    });
    reads.forEach((r, j) => {
      if (pathsOverlap(w, r)) c.fail(['layout', 'reads', j], `read path "${r}" overlaps owned path "${w}": a stage must not read what it writes (its identity would follow its own outputs)`);
    });
  });
  const mount = c.obj(top['mount'], ['mount'], KEYS['mount'] as readonly string[]);
  const container = c.obj(top['container'], ['container'], KEYS['container'] as readonly string[]);
  const engine = c.choice(container['engine'], ['container', 'engine'], ENGINES, 'none');
  const image = c.str(container['image'], ['container', 'image']);
  if (engine !== 'none' && image === null) c.fail(['container', 'image'], `engine ${engine} needs an image (container.image, or --image on the command line)`);
  const target = c.str(container['target'], ['container', 'target']) ?? '/data';
  if (!target.startsWith('/')) c.fail(['container', 'target'], 'must be an absolute path inside the container');
  const binds: BindSpec[] = [];
  if (container['binds'] !== undefined && container['binds'] !== null) {
    if (!Array.isArray(container['binds'])) c.fail(['container', 'binds'], 'must be a list of {source, target, read_only}');
    else
      container['binds'].forEach((b, i) => {
        const at = ['container', 'binds', i];
        const o = c.obj(b, at, KEYS['bind'] as readonly string[]);
        const source = c.str(o['source'], [...at, 'source']);
        const bindTarget = c.str(o['target'], [...at, 'target']);
        if (source === null || !source.startsWith('/')) c.fail([...at, 'source'], 'needs an absolute host path');
        if (bindTarget === null || !bindTarget.startsWith('/')) c.fail([...at, 'target'], 'needs an absolute path inside the container');
        if (source !== null && bindTarget !== null) binds.push({ source, target: bindTarget, readOnly: c.bool(o['read_only'], [...at, 'read_only'], false) });
      });
  }
  const env: Record<string, string> = {};
  const rawEnv = container['env'];
  if (rawEnv !== undefined && rawEnv !== null && !isObj(rawEnv)) c.fail(['container', 'env'], 'must be a mapping of NAME: value');
  for (const [k, v] of Object.entries(isObj(rawEnv) ? rawEnv : {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) c.fail(['container', 'env', k], 'is not a valid environment variable name');
    else if (k === 'DVFS_MOUNT') c.fail(['container', 'env', k], 'is set by dvfs run (the mount as the command sees it)');
    else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') env[k] = String(v);
    else c.fail(['container', 'env', k], 'must be a string');
  }
  const slurm = c.obj(top['slurm'], ['slurm'], KEYS['slurm'] as readonly string[]);
  const time = slurm['time'] === undefined || slurm['time'] === null ? null : c.str(typeof slurm['time'] === 'number' ? String(slurm['time']) : slurm['time'], ['slurm', 'time']);
  if (time !== null && !SLURM_TIME.test(time)) c.fail(['slurm', 'time'], `"${time}" is not a SLURM time (MM, HH:MM:SS or D-HH:MM:SS)`);
  const failure = c.obj(top['failure'], ['failure'], KEYS['failure'] as readonly string[]);
  const profile: Profile = {
    name: c.str(top['name'], ['name']) ?? name,
    description: c.str(top['description'], ['description']) ?? '',
    source,
    layout: { reads, writes },
    encryption: c.choice(top['encryption'], ['encryption'], ENCRYPTION_MODES, 'inherit'),
    mount: {
      readOnly: c.bool(mount['read_only'], ['mount', 'read_only'], false),
      allowOther: c.bool(mount['allow_other'], ['mount', 'allow_other'], false),
      xattr: c.bool(mount['xattr'], ['mount', 'xattr'], false),
    },
    container: {
      engine,
      image,
      target,
      binds,
      env,
      engineArgs: c.strings(container['engine_args'], ['container', 'engine_args']),
      runArgs: c.strings(container['run_args'], ['container', 'run_args']),
    },
    slurm: {
      partition: c.str(slurm['partition'], ['slurm', 'partition']),
      nodes: c.int(slurm['nodes'], ['slurm', 'nodes'], 1, 100_000),
      ntasks: c.int(slurm['ntasks'], ['slurm', 'ntasks'], 1, 10_000_000),
      time,
      extraArgs: c.strings(slurm['extra_args'], ['slurm', 'extra_args']),
    },
    commit: c.choice(top['commit'], ['commit'], COMMIT_POLICIES, 'on-success'),
    failure: {
      retry: c.int(failure['retry'], ['failure', 'retry'], 0, 100) ?? 0,
      onFailure: c.choice(failure['on_failure'], ['failure', 'on_failure'], FAILURE_ACTIONS, 'keep'),
    },
    push: top['push'] === 'none' ? null : c.str(top['push'], ['push']),
  };
  if (profile.mount.readOnly && writes.length > 0) c.fail(['mount', 'read_only'], 'a read-only mount cannot own paths (layout.writes)');
  if (c.problems.length > 0) throw new ProfileProblems(c.problems);
  return profile;
}

/** The profile as YAML-shaped data (snake_case keys): what `dvfs profile show` prints and what identity hashes. */
export function profileDocument(p: Profile): Obj {
  return {
    name: p.name,
    description: p.description,
    layout: { reads: p.layout.reads, writes: p.layout.writes },
    encryption: p.encryption,
    mount: { read_only: p.mount.readOnly, allow_other: p.mount.allowOther, xattr: p.mount.xattr },
    container: {
      engine: p.container.engine,
      image: p.container.image,
      target: p.container.target,
      binds: p.container.binds.map((b) => ({ source: b.source, target: b.target, read_only: b.readOnly })),
      env: p.container.env,
      engine_args: p.container.engineArgs,
      run_args: p.container.runArgs,
    },
    slurm: { partition: p.slurm.partition, nodes: p.slurm.nodes, ntasks: p.slurm.ntasks, time: p.slurm.time, extra_args: p.slurm.extraArgs },
    commit: p.commit,
    failure: { retry: p.failure.retry, on_failure: p.failure.onFailure },
    push: p.push ?? 'none',
  };
}
