// dvfs-native names, directories, renames and symlink targets through the CryptoTree interface.
import t from 'tap';
import { lstat, mkdir, readdir, readFile, readlink, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DvfsError, IntegrityError } from '../../daemon/errors.js';
import { DIRIV_FILE, MAX_LINK_TARGET_BYTES, MAX_NAME_BYTES } from '../../daemon/native/names.js';
import { openNativeVolume, type NativeCtx, type NativeTree } from '../../daemon/native/tree.js';
import type { CryptoTree, Location } from '../../daemon/vfs/crypto-tree.js';
import { errorOf, newVolume, PASSWORD } from './native-helpers.js';

/** The plaintext listing of a directory, as the frontend builds it. */
async function list(tree: CryptoTree<NativeCtx>, path: string): Promise<string[]> {
  const dir = await tree.locate(path);
  const names: string[] = [];
  for (const cipherName of await readdir(dir.rawPath)) {
    const name = tree.decodeEntry(dir, cipherName);
    if (name !== null) names.push(name);
  }
  return names.sort();
}

async function put(tree: NativeTree, path: string, text: string): Promise<void> {
  const f = await tree.openContent(await tree.locate(path), { create: true });
  await f.write(0, Buffer.from(text));
  await f.close();
}

async function get(tree: NativeTree, path: string): Promise<string> {
  const f = await tree.openContent(await tree.locate(path), { readOnly: true });
  try {
    return (await f.read(0, await f.size())).toString();
  } finally {
    await f.close();
  }
}

function nameError(e: unknown): DvfsError | null {
  return e instanceof DvfsError && e.code === 'E_NAME' ? e : null;
}

t.test('names: round trip, non-ASCII, maximum length', async (t) => {
  const tree = await newVolume(t);
  t.equal(tree.maxNameBytes, MAX_NAME_BYTES);
  t.equal(MAX_NAME_BYTES, 151, 'encodings of the longest names fit NAME_MAX');
  const longest = 'é'.repeat(75) + 'x'; // 151 bytes
  const names = ['a', 'hello world.txt', 'Ünïcödé – ✓', '日本語のファイル名', '🙂 emoji', ' leading space', 'x'.repeat(MAX_NAME_BYTES), longest, '-_~!@#$%^&()+='];
  const root = await tree.locate('');
  for (const name of names) {
    const loc = await tree.child(root, name);
    const cipher = loc.rawPath.slice(tree.root.length + 1);
    t.ok(/^[A-Za-z0-9_-]+$/.test(cipher), `${JSON.stringify(name)}: base64url only`);
    t.ok(cipher.length <= 255, `${JSON.stringify(name)}: ${cipher.length} <= 255 characters`);
    t.equal(tree.decodeEntry(root, cipher), name, `${JSON.stringify(name)} round-trips`);
    t.equal((await tree.child(root, name)).rawPath, loc.rawPath, 'deterministic');
    await put(tree, name, `content of ${name}`);
  }
  t.same(await list(tree, ''), [...names].sort(), 'listing decodes every name');
  const reopened = await openNativeVolume(tree.root, PASSWORD);
  t.teardown(() => reopened.dispose());
  t.same(await list(reopened, ''), [...names].sort(), 'a reopened volume lists the same names');
  t.equal(await get(reopened, longest), `content of ${longest}`);

  const tooLong = await errorOf(tree.locate('y'.repeat(MAX_NAME_BYTES + 1)));
  t.match(tooLong, { code: 'E_NAMETOOLONG', message: /152 bytes long/ }, '152-byte name: E_NAMETOOLONG (the frontend answers ENAMETOOLONG)');
  t.match(await errorOf(tree.locate('é'.repeat(76))), { code: 'E_NAMETOOLONG' }, '152 bytes of UTF-8: E_NAMETOOLONG');
});

t.test('names: tampering and foreign entries do not decode', async (t) => {
  const tree = await newVolume(t);
  await tree.mkdir(await tree.locate('a'), 0o755);
  await tree.mkdir(await tree.locate('b'), 0o755);
  const a = await tree.locate('a');
  const b = await tree.locate('b');
  const inA = await tree.child(a, 'same-name');
  const inB = await tree.child(b, 'same-name');
  const cipherA = inA.rawPath.slice(a.rawPath.length + 1);
  const cipherB = inB.rawPath.slice(b.rawPath.length + 1);
  t.not(cipherA, cipherB, 'the same name encodes differently in two directories');
  t.ok(nameError(await errorOf((async () => tree.decodeEntry(b, cipherA))())), "a's entry does not decode in b (moved entries are detected)");

  const flip = (s: string, i: number): string => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  for (const [what, bad] of [
    ['first character', flip(cipherA, 0)],
    ['middle character', flip(cipherA, 30)],
    ['last character', flip(cipherA, cipherA.length - 2)],
    ['truncated', cipherA.slice(0, -4)],
    ['extended', `${cipherA}AAAA`],
    ['padded base64', `${cipherA}=`],
    ['non-canonical last character', cipherA.slice(0, -1) + String.fromCharCode(cipherA.charCodeAt(cipherA.length - 1) ^ 1)],
    ['garbage', 'not-an-encrypted-name'],
    ['too short', 'AAAA'],
    ['plain name with a dot', 'notes.txt'],
  ] as const) {
    if (bad === cipherA) continue;
    const e = nameError(await errorOf((async () => tree.decodeEntry(a, bad))()));
    t.ok(e, `${what}: E_NAME`);
  }
  // Hidden entries are the format's own.
  t.equal(tree.decodeEntry(a, DIRIV_FILE), null, 'directory IV hidden');
  t.equal(tree.decodeEntry(await tree.locate(''), '.dvfs-native.json'), null, 'config hidden');
  t.equal(tree.decodeEntry(a, '.dvfs-tmp-123'), null, 'temporaries hidden');
  t.same(await list(tree, ''), ['a', 'b'], 'root lists only the directories');

  // A tampered directory IV makes every entry undecodable, never wrongly decoded.
  await put(tree, 'a/f', 'x');
  const fresh = await openNativeVolume(tree.root, PASSWORD);
  t.teardown(() => fresh.dispose());
  await writeFile(join(a.rawPath, DIRIV_FILE), Buffer.alloc(16, 1)).catch(async () => {
    // the IV file is read-only; replace it
    await rename(join(a.rawPath, DIRIV_FILE), join(a.rawPath, '.dvfs-old'));
    await writeFile(join(a.rawPath, DIRIV_FILE), Buffer.alloc(16, 1));
  });
  const freshA = await fresh.locate('a');
  const entries = (await readdir(freshA.rawPath)).filter((n) => !n.startsWith('.'));
  t.equal(entries.length, 1);
  t.ok(nameError(await errorOf((async () => fresh.decodeEntry(freshA, entries[0]!))())), 'entry under a changed directory IV: E_NAME');
});

t.test('directories: mkdir, locate errors, rmdir, rename keeps children decodable', async (t) => {
  const tree = await newVolume(t);
  await tree.mkdir(await tree.locate('top'), 0o750);
  const top = await tree.locate('top');
  t.equal((await stat(top.rawPath)).mode & 0o777, 0o750, 'mode applied');
  t.equal((await stat(join(top.rawPath, DIRIV_FILE))).size, 16, 'directory IV file created');
  await tree.mkdir(await tree.locate('top/sub'), 0o500); // no owner write: the IV file still goes in
  t.equal((await stat((await tree.locate('top/sub')).rawPath)).mode & 0o777, 0o500);
  await tree.mkdir(await tree.locate('top/dir'), 0o755);
  await tree.mkdir(await tree.locate('top/dir/deep'), 0o755);
  await put(tree, 'top/dir/deep/file.txt', 'deep content');
  await put(tree, 'top/dir/f', 'f content');
  t.equal(((await errorOf(tree.mkdir(await tree.locate('top'), 0o755))) as NodeJS.ErrnoException).code, 'EEXIST', 'mkdir of an existing dir: EEXIST');

  t.equal(((await errorOf(tree.locate('missing/x'))) as DvfsError).code, 'E_NOTFOUND', 'below a missing directory: E_NOTFOUND');
  t.equal(((await errorOf(tree.locate('top/dir/f/x'))) as DvfsError).code, 'E_NOTDIR', 'below a file: E_NOTDIR');

  // rename a directory: one raw rename, children (cached and uncached) still decode.
  const rawDeepBefore = (await tree.locate('top/dir/deep/file.txt')).rawPath;
  await tree.rename(await tree.locate('top/dir'), await tree.locate('moved'), async () => undefined);
  t.same(await list(tree, ''), ['moved', 'top']);
  t.same(await list(tree, 'moved'), ['deep', 'f']);
  t.equal(await get(tree, 'moved/deep/file.txt'), 'deep content', 'file below the renamed directory reads');
  const tail = (p: string): string => p.split('/').slice(-2).join('/');
  t.equal(tail((await tree.locate('moved/deep/file.txt')).rawPath), tail(rawDeepBefore), 'no entry below was re-encoded');
  const fresh = await openNativeVolume(tree.root, PASSWORD);
  t.teardown(() => fresh.dispose());
  t.same(await list(fresh, 'moved/deep'), ['file.txt'], 'a fresh tree (no cache) decodes the renamed subtree');
  t.equal(((await errorOf(tree.locate('top/dir/deep'))) as DvfsError).code, 'E_NOTFOUND', 'the old path is gone');

  // rmdir: ENOTEMPTY with entries; removes the IV file with the directory otherwise.
  t.equal(((await errorOf(tree.rmdir(await tree.locate('moved')))) as NodeJS.ErrnoException).code, 'ENOTEMPTY');
  t.ok(await lstat(join((await tree.locate('moved')).rawPath, DIRIV_FILE)), 'IV file kept after a failed rmdir');
  await tree.rmdir(await tree.locate('top/sub'));
  t.same(await list(tree, 'top'), [], 'rmdir removed a read-only empty directory');
  // rmdir + mkdir of the same name: new IV, cache must not keep the old one.
  await tree.mkdir(await tree.locate('top/sub'), 0o755);
  await put(tree, 'top/sub/new', 'n');
  t.same(await list(fresh, 'top/sub'), ['new'], 'recreated directory decodes with its new IV');

  // rename over an empty directory replaces it; over a non-empty one: ENOTEMPTY.
  await tree.mkdir(await tree.locate('empty'), 0o755);
  await tree.rename(await tree.locate('moved'), await tree.locate('empty'), async () => undefined);
  t.same(await list(tree, 'empty'), ['deep', 'f'], 'directory renamed over an empty directory');
  t.equal(await get(tree, 'empty/deep/file.txt'), 'deep content');
  t.equal(((await errorOf(tree.rename(await tree.locate('top'), await tree.locate('empty'), async () => undefined))) as NodeJS.ErrnoException).code, 'ENOTEMPTY');
  t.same(await list(tree, 'top'), ['sub'], 'source intact after a failed rename');

  // files: rename is raw (contents are not bound to paths), hard links work.
  await tree.rename(await tree.locate('empty/f'), await tree.locate('top/sub/g'), async () => undefined);
  t.equal(await get(tree, 'top/sub/g'), 'f content');
  t.equal(tree.hardLinks, true);
});

t.test('decodeEntry without a prior lookup loads the directory IV', async (t) => {
  const tree = await newVolume(t);
  await tree.mkdir(await tree.locate('d'), 0o755);
  await put(tree, 'd/x', '1');
  const fresh = await openNativeVolume(tree.root, PASSWORD);
  t.teardown(() => fresh.dispose());
  const d: Location<NativeCtx> = await fresh.locate('d');
  t.equal(d.ctx.dirIV, null, 'locate does not read the last directory IV');
  const names = (await readdir(d.rawPath)).map((n) => fresh.decodeEntry(d, n)).filter((n) => n !== null);
  t.same(names, ['x'], 'decodeEntry falls back to reading it');
  t.ok(d.ctx.dirIV, 'and keeps it in the location');
  await writeFile(join(d.rawPath, 'garbage'), 'x');
  await mkdir(join(tree.root, 'rawdir')); // a directory without an IV file
  const e = await errorOf(fresh.locate('rawdir-does-not-decode'));
  t.equal(e, null, 'locating a child of the root needs only the root IV');
  const rawLoc: Location<NativeCtx> = { plainPath: 'rawdir', rawPath: join(tree.root, 'rawdir'), ctx: { dirIV: null } };
  t.ok((await errorOf(fresh.child(rawLoc, 'x'))) instanceof IntegrityError, 'a directory without an IV file: IntegrityError');
});

t.test('symlink targets', async (t) => {
  const tree = await newVolume(t);
  for (const target of ['../a/b', '/abs/path/ü', 'x', 'a'.repeat(MAX_LINK_TARGET_BYTES)]) {
    const stored = tree.encodeLinkTarget(target);
    t.ok(/^[A-Za-z0-9_-]+$/.test(stored) && stored.length <= 4095, 'stored as base64url within PATH_MAX');
    t.equal(tree.decodeLinkTarget(stored), target, `${target.slice(0, 20)} round-trips`);
    t.not(tree.encodeLinkTarget(target), stored, 'random nonce: encodings differ');
  }
  const link = await tree.locate('link');
  await symlink(tree.encodeLinkTarget('../target'), link.rawPath);
  t.equal(tree.decodeLinkTarget(await readlink(link.rawPath)), '../target');
  const stored = tree.encodeLinkTarget('secret/target');
  const bad = stored.slice(0, 10) + (stored[10] === 'A' ? 'B' : 'A') + stored.slice(11);
  t.ok((() => { try { tree.decodeLinkTarget(bad); return false; } catch (e) { return e instanceof IntegrityError; } })(), 'tampered target: IntegrityError');
  t.ok((() => { try { tree.decodeLinkTarget('../plain'); return false; } catch (e) { return e instanceof IntegrityError; } })(), 'unsealed target: IntegrityError');
  const long = nameError((() => { try { tree.encodeLinkTarget('a'.repeat(MAX_LINK_TARGET_BYTES + 1)); return null; } catch (e) { return e; } })());
  t.match(long?.message ?? '', /bytes long/, 'too long a target: E_NAME (ENAMETOOLONG)');
});

t.test('no plaintext at rest', async (t) => {
  const tree = await newVolume(t, 512);
  const marker = 'PLAINTEXT-MARKER-7f3a';
  await tree.mkdir(await tree.locate(`dir-${marker}`), 0o755);
  const f = await tree.openContent(await tree.locate(`dir-${marker}/file-${marker}`), { create: true });
  const body = Buffer.from(`${marker}\n`.repeat(2000));
  await f.write(0, body);
  await f.close();
  await symlink(tree.encodeLinkTarget(`../${marker}`), (await tree.locate(`link-${marker}`)).rawPath);
  const needle = Buffer.from(marker);
  const hits: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const p = join(dir, name);
      if (name.includes(marker)) hits.push(`name ${p}`);
      const st = await lstat(p);
      if (st.isDirectory()) await walk(p);
      else if (st.isSymbolicLink()) {
        if ((await readlink(p)).includes(marker)) hits.push(`link ${p}`);
      } else if ((await readFile(p)).includes(needle)) hits.push(`content ${p}`);
    }
  };
  await walk(tree.root);
  t.same(hits, [], 'the marker appears nowhere in the ciphertext directory');
  // Identical plaintext chunks seal differently (random nonces).
  const raw = await readFile((await tree.locate(`dir-${marker}/file-${marker}`)).rawPath);
  const chunk = (i: number): Buffer => raw.subarray(18 + i * 552, 18 + (i + 1) * 552);
  const plainChunk = (i: number): Buffer => body.subarray(i * 512, (i + 1) * 512);
  t.ok(plainChunk(0).equals(plainChunk(11)), 'chunks 0 and 11 hold the same plaintext');
  t.notOk(chunk(0).subarray(24).equals(chunk(11).subarray(24)), 'but different ciphertext');
  t.equal(await get(tree, `dir-${marker}/file-${marker}`), body.toString());
});
