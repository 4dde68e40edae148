// Fuzzing the text parsers of files and messages a hostile or damaged source can hand dvfs: .encfs6.xml,
// the native volume config, the keyring (parse + signature check), mount profiles (YAML + schema) and
// control-socket requests. Each must end in its own typed error, never another exception.
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { loadIdentity, writeIdentityFile } from '../../daemon/keys/identity-file.js';
import { join } from 'node:path';
import { DvfsError } from '../../daemon/errors.js';
import { parseConfig } from '../../daemon/encfs/config.js';
import { NATIVE_CONFIG_FILE, parseNativeConfig } from '../../daemon/native/config.js';
import { Identity } from '../../daemon/keys/identity.js';
import { newKeyring, parseKeyring, serializeKeyring, signEpoch, signSlot, verifyKeyring, type Keyring } from '../../daemon/keys/keyring.js';
import { newPwhashParams } from '../../daemon/keys/pwhash.js';
import { SHIPPED_PROFILES_DIR } from '../../daemon/profile/load.js';
import { parseYaml } from '../../daemon/profile/yaml-source.js';
import { checkProfile, ProfileProblems } from '../../daemon/profile/schema.js';
import { MAX_LINE, parseRequest } from '../../daemon/ctl/protocol.js';
import { dvfs, REPO_ROOT } from '../helpers/cli.js';
import { fuzz, fuzzCases } from './harness.js';

/** A request parseRequest answered with { error } (what the server sends back). */
class Refused extends Error {}

const isDvfsError = (e: unknown): boolean => e instanceof DvfsError;

t.test('.encfs6.xml', async (t) => {
  const samples = await Promise.all(['standard', 'paranoia'].map((p) => readFile(join(REPO_ROOT, 'test/fixtures/encfs', p, '.encfs6.xml'))));
  await fuzz(t, { name: '.encfs6.xml', samples, parse: (b) => parseConfig(b.toString('utf8'), '/fuzz/.encfs6.xml'), expected: isDvfsError });
});

t.test('native volume config', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-fuzz-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'pw'), 'fuzz password\n', { mode: 0o600 });
  const init = dvfs(['init', join(dir, 'repo'), '--mode', 'native', '--kdf-profile', 'min'], { env: { DVFS_PASSWORD_FILE: join(dir, 'pw') } });
  t.equal(init.status, 0, `init a native repository for a sample config (${init.stderr.trim()})`);
  const sample = await readFile(join(dir, 'repo', 'tree', NATIVE_CONFIG_FILE));
  await fuzz(t, { name: 'native config', samples: [sample], parse: (b) => parseNativeConfig(b.toString('utf8'), '/fuzz/.dvfs-native.json'), expected: isDvfsError });
});

t.test('keyring (parse and verify)', async (t) => {
  const root = Identity.generate();
  const k = newKeyring(root, newPwhashParams({ opslimit: 1, memlimit: 8192 }));
  k.epochs.push(signEpoch(k, root, 1, '2026-01-01T00:00:00.000Z'));
  const bare = serializeKeyring(k);
  const member = Identity.generate();
  k.slots.push(signSlot(k, root, { epoch: 1, name: 'alice', public: member.publicKey, addedAt: '2026-01-02T00:00:00.000Z', sealed: randomBytes(120) }));
  member.destroy();
  const sample = serializeKeyring(k);
  // What the signatures vouch for: the members and the epochs (the KDF cost of the password slot is not
  // signed; a changed cost only makes unlocking fail or slower, bounded by the parser).
  const vouched = (x: Keyring): string => JSON.stringify({ members: verifyKeyring(x, 'sample').map((m) => [m.name, m.public.encoded, m.epochs]), epochs: x.epochs.map((e) => [e.epoch, e.createdAt, e.by.encoded]), id: x.id });
  const canonical = vouched(k);
  const vouchedBare = vouched(parseKeyring(bare, 'bare'));
  await fuzz(t, {
    name: 'keyring',
    samples: [sample, bare],
    parse: (b) => {
      const parsed = parseKeyring(b, '/fuzz/keyring.json');
      verifyKeyring(parsed, '/fuzz/keyring.json');
      return parsed;
    },
    expected: isDvfsError,
    // Splices can rebuild the other (valid) sample; anything else that verifies is a forgery.
    accepted: (_input, parsed) => ([canonical, vouchedBare].includes(vouched(parsed)) ? null : 'a keyring with changed members or epochs verified'),
  });
  root.destroy();
});

t.test('mount profiles (YAML and schema)', async (t) => {
  const samples = await Promise.all(['local', 'simulation', 'ml-training', 'preprocessing'].map((n) => readFile(join(SHIPPED_PROFILES_DIR, `${n}.yaml`))));
  await fuzz(t, {
    name: 'mount profile',
    samples,
    parse: (b) => checkProfile(parseYaml(b.toString('utf8'), '/fuzz/p.yaml').value, 'fuzz', '/fuzz/p.yaml'),
    expected: (e) => e instanceof DvfsError || e instanceof ProfileProblems,
  });
});

t.test('control-socket requests', async (t) => {
  const samples = [
    '{"op":"status"}',
    '{"op":"commit","message":"m","author":"a","force":true,"provenance":{"command":["x"],"exitStatus":0,"inputs":[{"path":"/a"}]}}',
    '{"op":"unmount","force":false}',
    '{"op":"changes"}',
  ].map((s) => Buffer.from(s));
  await fuzz(t, {
    name: 'ctl request',
    samples,
    // parseRequest answers malformed requests with { error } rather than throwing: any throw is a bug.
    parse: (b) => {
      const line = b.toString('utf8');
      if (line.length > MAX_LINE) throw new Refused('too long');
      const r = parseRequest(line);
      if ('error' in r) throw new Refused(r.error);
      return r;
    },
    expected: (e) => e instanceof Refused && typeof e.message === 'string' && e.message.length > 0,
  });
});

t.test('YAML aliases the fuzzer found: unresolved, and a "billion laughs" document', async (t) => {
  const laughs = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`)].join('\n');
  for (const [label, text] of [['unresolved alias', 'description: *nowhere\n'], ['alias bomb', laughs]] as const) {
    let thrown: unknown = null;
    try {
      parseYaml(text, '/fuzz/p.yaml');
    } catch (e) {
      thrown = e;
    }
    t.ok(thrown instanceof DvfsError, `${label}: a DvfsError`);
    if (thrown instanceof DvfsError) t.equal(thrown.code, 'E_CONFIG', `${label}: E_CONFIG naming the file`);
  }
});

t.test('identity files (key slots of members)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-fuzz-id-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const me = Identity.generate();
  const expected = me.publicKey.encoded;
  const path = join(dir, 'id');
  await writeIdentityFile(path, me, 'me');
  me.destroy();
  const sample = await readFile(path);
  await fuzz(
    t,
    {
      name: 'identity file',
      samples: [sample],
      parse: async (b) => {
        await writeFile(path, b, { mode: 0o600 });
        const { identity } = await loadIdentity(path, () => Promise.resolve(null));
        const got = identity.publicKey.encoded;
        identity.destroy();
        return got;
      },
      expected: isDvfsError,
      // The seed must derive the stored public key: a file that loads is the same identity.
      accepted: (_input, got) => (got === expected ? null : 'a changed identity file loaded as another key'),
    },
    Math.max(1, Math.floor(fuzzCases() / 5)),
  );
});
