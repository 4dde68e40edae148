/**
 * Finding, reading and merging mount profiles.
 *
 * Where a profile named P comes from, first match wins: a path (P contains "/" or ends in .yaml/.yml), then
 * the repository's own `REPO/.dvfs/profiles/P.yaml`, then the shipped `mount-profiles/P.yaml`.
 *
 * What a stage gets, later layers overriding earlier ones (mappings merge key by key, lists and scalars
 * replace): the built-in defaults (schema.ts), the repository defaults `REPO/.dvfs/profiles/defaults.yaml`,
 * the profile, then the command line (`--engine`, `--image`, `--input`, `--output`).
 *
 * Bad YAML and schema problems are reported as `FILE:LINE:COLUMN: key.path: what is wrong`, every problem
 * at once (E_CONFIG).
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { DvfsError, isNodeError } from '../errors.js';
import { checkProfile, profileDocument, ProfileProblems, type Profile } from './schema.js';
import { readTextIfExists, writeFileAtomic } from '../store/durable.js';
import type { YamlSource } from './yaml-source.js';

export const SHIPPED_PROFILES_DIR = fileURLToPath(new URL('../../../mount-profiles/', import.meta.url));
export const REPO_PROFILES_DIR = join('.dvfs', 'profiles');
export const DEFAULTS_FILE = 'defaults.yaml';
export const DEFAULT_PROFILE = 'local';

type Obj = { [k: string]: unknown };
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parsed profile YAML by content, `REPO/.dvfs/run/yaml/<sha256 of the text>.json`: a stage job reads the
 * value instead of loading the yaml package (tens of milliseconds of every job's start-up). Content-addressed,
 * so an edited file is parsed anew; a value JSON cannot hold exactly (`.inf`, `.nan`) is never cached.
 */
export function yamlCacheDir(repoRoot: string): string {
  return join(repoRoot, '.dvfs', 'run', 'yaml');
}

/** A cached layer knows no line numbers: a profile with problems is loaded again without the cache. */
type Layer = YamlSource & { cached?: true };

async function readYaml(file: string, cacheDir: string | null): Promise<Layer | null> {
  const text = await readTextIfExists(file);
  if (text === null) return null;
  const key = cacheDir === null ? null : join(cacheDir, `${createHash('sha256').update(text).digest('hex')}.json`);
  const cached = key === null ? null : await readTextIfExists(key).catch(() => null);
  if (cached !== null) {
    try {
      const { value } = JSON.parse(cached) as { value: unknown };
      return { file, value, locate: () => null, cached: true };
    } catch {
      // a torn or foreign cache file: parse the YAML and write it again
    }
  }
  const { parseYaml } = await import('./yaml-source.js');
  const parsed = parseYaml(text, file);
  if (key !== null && cacheDir !== null && isDeepStrictEqual(JSON.parse(JSON.stringify({ value: parsed.value })), { value: parsed.value })) {
    await mkdir(cacheDir, { recursive: true, mode: 0o700 })
      .then(() => writeFileAtomic(key, Buffer.from(JSON.stringify({ value: parsed.value }))))
      .catch(() => undefined); // a cache that cannot be written only costs the next job the parse
  }
  return parsed;
}

/** `over` laid on `base`: mappings merge key by key, everything else (lists too) replaces; undefined keeps base. */
export function mergeLayers(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (isObj(base) && isObj(over)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = mergeLayers(base[k], v);
    return out;
  }
  return over;
}

/** Where the profile called `name` lives (see the module header), or null. */
export async function findProfileFile(name: string, repoRoot: string | null): Promise<string | null> {
  if (name.includes('/') || /\.ya?ml$/.test(name)) return name;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new DvfsError('E_USAGE', `'${name}' is not a profile name`, { hint: 'names are letters, digits, ".", "_" and "-"; or give a path to a .yaml file' });
  const candidates = [...(repoRoot ? [join(repoRoot, REPO_PROFILES_DIR, `${name}.yaml`)] : []), join(SHIPPED_PROFILES_DIR, `${name}.yaml`)];
  for (const file of candidates) {
    try {
      await readFile(file);
      return file;
    } catch (e) {
      if (!(isNodeError(e) && e.code === 'ENOENT')) throw e;
    }
  }
  return null;
}

export interface LoadOptions {
  /** The repository whose profiles and defaults apply (null: shipped profiles only). */
  repoRoot: string | null;
  /** Command-line overrides, in the YAML shape (e.g. { container: { engine: 'podman' } }). */
  overrides?: Obj;
}

/** A loaded profile and the SHA-256 of its merged content (part of a stage's identity). */
export interface LoadedProfile {
  profile: Profile;
  digest: string;
}

function reportProblems(e: ProfileProblems, layers: YamlSource[], fallbackFile: string): DvfsError {
  const lines = e.problems.map((p) => {
    const key = p.path.join('.') || '(document)';
    // The layer that set the value (the last one holding the key), else where its parent is in the profile.
    const exact = [...layers].reverse().map((l) => l.locate(p.path, true)).find((w) => w !== null);
    const where = exact ?? layers.at(-1)?.locate(p.path) ?? `${fallbackFile} (command line)`;
    return `${where}: ${key}: ${p.message}`;
  });
  return new DvfsError('E_CONFIG', `invalid profile:\n  ${lines.join('\n  ')}`, { hint: 'see mount-profiles/README.md for the fields' });
}

/** Loads, merges and checks profile `name` (default: the shipped `local` profile). */
export async function loadProfile(name: string | undefined, options: LoadOptions): Promise<LoadedProfile> {
  return loadLayers(name, options, options.repoRoot === null ? null : yamlCacheDir(options.repoRoot));
}

async function loadLayers(name: string | undefined, options: LoadOptions, cacheDir: string | null): Promise<LoadedProfile> {
  const wanted = name ?? DEFAULT_PROFILE;
  const file = await findProfileFile(wanted, options.repoRoot);
  if (file === null) {
    const known = (await listProfiles(options.repoRoot)).map((p) => p.name);
    throw new DvfsError('E_NOTFOUND', `no profile named '${wanted}'`, { hint: `known profiles: ${known.join(', ') || '(none)'}; or give a path to a .yaml file` });
  }
  const own = await readYaml(file, cacheDir);
  if (own === null) throw new DvfsError('E_NOTFOUND', 'profile file not found', { path: file });
  const layers: Layer[] = [];
  const defaults = options.repoRoot ? await readYaml(join(options.repoRoot, REPO_PROFILES_DIR, DEFAULTS_FILE), cacheDir) : null;
  if (defaults) layers.push(defaults);
  layers.push(own);
  let merged: unknown = {};
  for (const l of layers) {
    if (l.value !== null && l.value !== undefined && !isObj(l.value)) throw new DvfsError('E_CONFIG', 'a profile must be a YAML mapping', { path: `${l.file}:1:1` });
    merged = mergeLayers(merged, l.value);
  }
  merged = mergeLayers(merged, options.overrides);
  const profileName = basename(file).replace(/\.ya?ml$/, '');
  let profile: Profile;
  try {
    profile = checkProfile(merged, profileName, file);
  } catch (e) {
    if (e instanceof ProfileProblems && layers.some((l) => l.cached)) return loadLayers(name, options, null);
    if (e instanceof ProfileProblems) throw reportProblems(e, layers, file);
    throw e;
  }
  const digest = createHash('sha256').update(JSON.stringify(profileDocument(profile))).digest('hex');
  return { profile, digest };
}

export interface ProfileListing {
  name: string;
  source: string;
  description: string;
  /** Why it does not load, or null. */
  error: string | null;
}

async function yamlNames(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f) && f !== DEFAULTS_FILE).sort();
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') return [];
    throw e;
  }
}

/** Every profile the repository (if any) and the shipped directory offer; the repository's win on name clashes. */
export async function listProfiles(repoRoot: string | null): Promise<ProfileListing[]> {
  const out = new Map<string, ProfileListing>();
  const dirs = [SHIPPED_PROFILES_DIR, ...(repoRoot ? [join(repoRoot, REPO_PROFILES_DIR)] : [])];
  for (const dir of dirs) {
    for (const f of await yamlNames(dir)) {
      const file = join(dir, f);
      const name = f.replace(/\.ya?ml$/, '');
      try {
        const { profile } = await loadProfile(file, { repoRoot });
        out.set(name, { name, source: file, description: profile.description, error: null });
      } catch (e) {
        out.set(name, { name, source: file, description: '', error: e instanceof DvfsError ? e.oneLine() : String(e) });
      }
    }
  }
  return [...out.values()].sort((a, b) => a.name.localeCompare(b.name));
}
