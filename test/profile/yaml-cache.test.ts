// The parsed-profile cache of a repository (REPO/.dvfs/run/yaml, load.ts): a profile loads the same from the
// cache as from its YAML, an edited file is parsed anew, a damaged cache entry is ignored, a cached profile
// with problems is still reported with FILE:LINE:COL, and values JSON cannot hold are never cached.
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DvfsError } from '../../daemon/errors.js';
import { loadProfile, yamlCacheDir } from '../../daemon/profile/load.js';

const root = mkdtempSync(join(tmpdir(), 'dvfs-yaml-cache-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const profiles = join(root, '.dvfs', 'profiles');
mkdirSync(profiles, { recursive: true });
const cache = yamlCacheDir(root);
const entryOf = (text: string): string => join(cache, `${createHash('sha256').update(text).digest('hex')}.json`);

function profile(text: string): void {
  writeFileSync(join(profiles, 'p.yaml'), text);
}

async function refusal(): Promise<string> {
  try {
    await loadProfile('p', { repoRoot: root });
  } catch (e) {
    return e instanceof DvfsError ? e.oneLine() : String(e);
  }
  return '(loaded)';
}

t.test('the cached value loads the same profile, with the same digest', async (t) => {
  const text = 'description: cached\ncontainer:\n  engine: none\nlayout:\n  writes: [out]\nfailure:\n  retry: 2\n';
  profile(text);
  const first = await loadProfile('p', { repoRoot: root });
  t.ok(existsSync(entryOf(text)), 'the parsed value was cached under the hash of the text');
  const second = await loadProfile('p', { repoRoot: root });
  t.same(second, first, 'same profile and digest from the cache');
  t.equal(second.profile.failure.retry, 2);
  const fresh = await loadProfile(join(profiles, 'p.yaml'), { repoRoot: null });
  t.equal(fresh.digest, first.digest, 'and the same digest as a load without any cache');
});

t.test('an edited profile is parsed anew', async (t) => {
  profile('description: edited\ncontainer:\n  engine: none\nfailure:\n  retry: 5\n');
  t.equal((await loadProfile('p', { repoRoot: root })).profile.failure.retry, 5);
});

t.test('a damaged cache entry is ignored and rewritten', async (t) => {
  const text = 'description: damaged cache\ncontainer:\n  engine: none\n';
  profile(text);
  mkdirSync(cache, { recursive: true });
  writeFileSync(entryOf(text), '{"value": {"descr');
  t.equal((await loadProfile('p', { repoRoot: root })).profile.description, 'damaged cache');
  t.equal((await loadProfile('p', { repoRoot: root })).profile.description, 'damaged cache', 'and loads from the rewritten entry');
});

t.test('a cached profile with a problem is still reported at FILE:LINE:COL', async (t) => {
  profile('description: bad\ncontainer:\n  engine: none\nfailure:\n  retry: many\n');
  const first = await refusal();
  t.match(first, /p\.yaml:5:\d+: failure\.retry/, 'first load: located');
  t.equal(await refusal(), first, 'second load (value cached): the same located message');
});

t.test('values JSON cannot hold are not cached', async (t) => {
  const text = 'description: infinite\ncontainer:\n  engine: none\nfailure:\n  retry: .inf\n';
  profile(text);
  const before = existsSync(cache) ? readdirSync(cache).length : 0;
  t.match(await refusal(), /failure\.retry/, 'refused (retry is not a number of tries)');
  t.notOk(existsSync(entryOf(text)), 'no cache entry: .inf would come back as null');
  t.equal(existsSync(cache) ? readdirSync(cache).length : 0, before);
});
