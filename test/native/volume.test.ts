// dvfs-native volume config: creation, reopening, wrong password, and every kind of config damage.
import t from 'tap';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sodium from 'sodium-native';
import { DvfsError } from '../../daemon/errors.js';
import { NATIVE_CONFIG_FILE } from '../../daemon/native/config.js';
import { DIRIV_FILE } from '../../daemon/native/names.js';
import { createNativeVolume, isNativeVolume, openNativeVolume } from '../../daemon/native/tree.js';
import { CHEAP, PASSWORD, errorOf, tempDir } from './native-helpers.js';

/** The config file as JSON, loosely typed so tests can damage it. */
interface ConfigDoc {
  format: unknown;
  version: unknown;
  chunkSize: unknown;
  kdf: { alg: unknown; opslimit: unknown; salt: string };
  masterKey?: { nonce: string; sealed: string };
  mac: string;
}

function code(e: unknown): string {
  return e instanceof DvfsError ? e.code : `not a DvfsError: ${String(e)}`;
}

t.test('create, reopen, contents survive', async (t) => {
  const root = join(await tempDir(t), 'vol');
  const tree = await createNativeVolume(root, PASSWORD, { ...CHEAP, chunkSize: 1000 });
  t.equal(tree.format, 'native');
  t.equal(tree.root, root);
  t.equal(tree.layout.chunkSize, 1000);
  const configPath = join(root, NATIVE_CONFIG_FILE);
  t.equal((await stat(configPath)).mode & 0o777, 0o600, 'config is mode 0600');
  t.equal((await stat(join(root, DIRIV_FILE))).size, 16, 'root directory IV');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
  t.same(Object.keys(config).sort(), ['chunkSize', 'format', 'kdf', 'mac', 'masterKey', 'version']);
  t.equal(config.chunkSize, 1000);
  t.ok(await isNativeVolume(root));
  t.notOk(await isNativeVolume(await tempDir(t)));

  const f = await tree.openContent(await tree.locate('f'), { create: true });
  await f.write(0, Buffer.from('persisted '.repeat(500)));
  await f.close();
  tree.dispose();

  const again = await openNativeVolume(root, PASSWORD);
  t.teardown(() => again.dispose());
  t.equal(again.layout.chunkSize, 1000, 'chunk size read back');
  const g = await again.openContent(await again.locate('f'), { readOnly: true });
  t.equal((await g.read(0, 5000)).toString(), 'persisted '.repeat(500), 'contents read back after reopening');
  await g.close();

  t.equal(code(await errorOf(createNativeVolume(root, PASSWORD, CHEAP))), 'E_EXISTS', 'refuses a non-empty directory');
  t.equal(code(await errorOf(createNativeVolume(join(root, 'x'), PASSWORD, { ...CHEAP, chunkSize: 10 }))), 'E_CONFIG', 'refuses a silly chunk size');
});

t.test('a disposed tree refuses to seal anything', async (t) => {
  const root = join(await tempDir(t), 'vol');
  const tree = await createNativeVolume(root, PASSWORD, CHEAP);
  const f = await tree.openContent(await tree.locate('f'), { create: true });
  await f.write(0, Buffer.from('before'));
  tree.dispose();
  t.equal(code(await errorOf(f.write(0, Buffer.from('after')))), 'E_IO', 'write after dispose');
  t.equal(code(await errorOf(f.read(0, 6))), 'E_IO', 'read after dispose');
  t.equal(code(await errorOf(tree.locate('x'))), 'E_IO', 'names after dispose');
  await f.close();
  const again = await openNativeVolume(root, PASSWORD);
  t.teardown(() => again.dispose());
  const g = await again.openContent(await again.locate('f'), { readOnly: true });
  t.equal((await g.read(0, 100)).toString(), 'before', 'nothing was written under a wiped key');
  await g.close();
});

t.test('wrong password', async (t) => {
  const root = join(await tempDir(t), 'vol');
  (await createNativeVolume(root, PASSWORD, CHEAP)).dispose();
  const e = await errorOf(openNativeVolume(root, Buffer.from('not the password')));
  t.equal(code(e), 'E_PASSWORD');
  t.equal((e as DvfsError).path, join(root, NATIVE_CONFIG_FILE), 'names the config file');
  t.equal(code(await errorOf(openNativeVolume(root, Buffer.alloc(0)))), 'E_PASSWORD', 'empty password');
});

t.test('config damage is detected', async (t) => {
  const root = join(await tempDir(t), 'vol');
  (await createNativeVolume(root, PASSWORD, CHEAP)).dispose();
  const configPath = join(root, NATIVE_CONFIG_FILE);
  const original = await readFile(configPath, 'utf8');
  const edit = async (change: (c: ConfigDoc) => void): Promise<unknown> => {
    const c = JSON.parse(original) as ConfigDoc;
    change(c);
    await writeFile(configPath, JSON.stringify(c));
    return errorOf(openNativeVolume(root, PASSWORD).then((tree) => tree.dispose()));
  };
  const b64flip = (s: string): string => {
    const b = Buffer.from(s, 'base64');
    b[0]! ^= 1;
    return b.toString('base64');
  };

  t.equal(await edit(() => undefined), null, 'an unchanged config opens');
  const changed = await edit((c) => (c.chunkSize = 8192));
  t.equal(code(changed), 'E_CONFIG', 'chunk size changed: E_CONFIG (MAC)');
  t.match((changed as DvfsError).message, /MAC/);
  t.equal((changed as DvfsError).path, configPath, 'names the config file');
  t.equal(code(await edit((c) => (c.mac = b64flip(c.mac)))), 'E_CONFIG', 'MAC changed');
  t.equal(code(await edit((c) => (c.chunkSize = 1 << 30))), 'E_CONFIG', 'chunk size out of range');
  t.equal(code(await edit((c) => (c.chunkSize = '4096'))), 'E_CONFIG', 'chunk size not a number');
  t.equal(code(await edit((c) => (c.version = 2))), 'E_UNSUPPORTED', 'unknown version');
  t.equal(code(await edit((c) => (c.format = 'gocryptfs'))), 'E_CONFIG', 'other format');
  t.equal(code(await edit((c) => (c.kdf.opslimit = 10_000))), 'E_CONFIG', 'absurd opslimit refused before hashing');
  t.equal(code(await edit((c) => (c.kdf.alg = 'scrypt'))), 'E_CONFIG', 'unknown kdf');
  t.equal(code(await edit((c) => (c.kdf.salt = 'AAAA'))), 'E_CONFIG', 'short salt');
  t.equal(code(await edit((c) => delete c.masterKey)), 'E_CONFIG', 'missing key');
  // KDF inputs and the sealed key are bound by the password-derived key: they fail as a wrong password.
  t.equal(code(await edit((c) => (c.kdf.opslimit = sodium.crypto_pwhash_OPSLIMIT_MIN + 1))), 'E_PASSWORD', 'opslimit changed');
  t.equal(code(await edit((c) => (c.kdf.salt = b64flip(c.kdf.salt)))), 'E_PASSWORD', 'salt changed');
  t.equal(code(await edit((c) => (c.masterKey!.sealed = b64flip(c.masterKey!.sealed)))), 'E_PASSWORD', 'sealed key changed');

  await writeFile(configPath, '{ not json');
  t.equal(code(await errorOf(openNativeVolume(root, PASSWORD))), 'E_CONFIG', 'not JSON');
  await rm(configPath);
  const missing = await errorOf(openNativeVolume(root, PASSWORD));
  t.equal(code(missing), 'E_NOTFOUND', 'missing config');
  t.equal((missing as DvfsError).path, configPath);
  t.ok((missing as DvfsError).hint, 'with a hint');

  await writeFile(configPath, original);
  await rm(join(root, DIRIV_FILE), { force: true });
  t.equal(code(await errorOf(openNativeVolume(root, PASSWORD))), 'E_CONFIG', 'missing root directory IV');
  await mkdir(join(root, 'unrelated'));
});
