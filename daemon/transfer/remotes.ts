/**
 * The remotes a repository knows by name: `REPO/.dvfs/remotes.json`, `{ "<name>": "<url>" }`, 0600. URLs
 * hold no secrets (credentials come from the environment or a 0600 credentials file named in the URL).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DvfsError, isNodeError } from '../errors.js';
import { META_DIR } from '../repo/layout.js';
import { writeFileAtomic } from '../store/durable.js';
import { parseRemoteUrl, formatRemoteUrl } from '../remote/url.js';

export const REMOTES_FILE = 'remotes.json';
export const DEFAULT_REMOTE = 'origin';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const pathOf = (repoRoot: string): string => join(repoRoot, META_DIR, REMOTES_FILE);

export async function readRemotes(repoRoot: string): Promise<Record<string, string>> {
  try {
    const v = JSON.parse(await readFile(pathOf(repoRoot), 'utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    const out: Record<string, string> = {};
    for (const [k, url] of Object.entries(v)) if (typeof url === 'string') out[k] = url;
    return out;
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') return {};
    throw new DvfsError('E_CONFIG', `unreadable remotes file: ${(e as Error).message}`, { path: pathOf(repoRoot), hint: 'fix or delete it, then dvfs remote add again' });
  }
}

export async function addRemote(repoRoot: string, name: string, url: string): Promise<string> {
  if (!NAME_RE.test(name)) throw new DvfsError('E_USAGE', `bad remote name ${JSON.stringify(name)}`, { hint: 'letters, digits, . _ - (up to 64)' });
  const canonical = formatRemoteUrl(parseRemoteUrl(url));
  const remotes = await readRemotes(repoRoot);
  if (remotes[name] !== undefined && remotes[name] !== canonical) {
    throw new DvfsError('E_EXISTS', `remote ${name} already points at ${remotes[name]}`, { hint: `dvfs remote remove REPO ${name} first` });
  }
  remotes[name] = canonical;
  await writeFileAtomic(pathOf(repoRoot), Buffer.from(JSON.stringify(remotes, null, 2) + '\n'), { mode: 0o600 });
  return canonical;
}

export async function removeRemote(repoRoot: string, name: string): Promise<void> {
  const remotes = await readRemotes(repoRoot);
  if (remotes[name] === undefined) throw new DvfsError('E_NOTFOUND', `no remote named ${name}`, { hint: 'see dvfs remote list REPO' });
  delete remotes[name];
  await writeFileAtomic(pathOf(repoRoot), Buffer.from(JSON.stringify(remotes, null, 2) + '\n'), { mode: 0o600 });
}

/** A remote name (from remotes.json) or a URL given directly. */
export async function resolveRemote(repoRoot: string, nameOrUrl: string | undefined): Promise<string> {
  const given = nameOrUrl ?? DEFAULT_REMOTE;
  if (given.includes(':') || given.startsWith('/')) return formatRemoteUrl(parseRemoteUrl(given));
  const url = (await readRemotes(repoRoot))[given];
  if (url === undefined) {
    throw new DvfsError('E_NOTFOUND', `no remote named ${given}`, { hint: `add one with: dvfs remote add REPO ${given} file:///path (or s3://BUCKET?endpoint=...)` });
  }
  return url;
}
