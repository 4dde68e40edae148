// Manifests: round trips, stable ids (with a known answer), and that anything damaged, moved, of the wrong kind
// or hostile (correctly sealed with the key, but malformed) is refused with an IntegrityError naming the id.
import t, { type Test } from 'tap';
import { chmod, mkdir, readFile, rename, stat, truncate, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import sodium from 'sodium-native';
import { DvfsError, IntegrityError } from '../../daemon/errors.js';
import { hashBuffer, type ObjectId } from '../../daemon/store/content-hash.js';
import { deriveRepoKeys } from '../../daemon/store/keys.js';
import {
  makeTree,
  ManifestIntegrityError,
  ManifestStore,
  type ManifestKind,
  type Snapshot,
  type Tree,
  type TreeEntry,
} from '../../daemon/store/manifests.js';
import { errorOf, SECRET, snapshotOf, tempRepo, type TestRepo } from './store-helpers.js';

const ID_A = 'a'.repeat(64) as ObjectId;
const ID_B = 'b'.repeat(64) as ObjectId;
const EMPTY_TREE_ID = '8c741d87102b6dfa2b70886998ac20420fb351436f5d6b7bea89e9f8a0d1bf55';

const sampleEntries: TreeEntry[] = [
  { type: 'file', name: 'é', mode: 0o600, size: 3, mtimeMs: 1714564800123.5, object: ID_A },
  { type: 'dir', name: 'Zeta', mode: 0o755, mtimeMs: 0, tree: ID_B },
  { type: 'symlink', name: 'alpha', mode: 0o777, mtimeMs: -1000, target: '../x/y' },
  { type: 'file', name: '日本', mode: 0o4755, size: 2 ** 40, mtimeMs: 1, object: ID_B },
  { type: 'file', name: 'A b.txt', mode: 0, size: 0, mtimeMs: 2, object: ID_A },
];

const fullSnapshot = (tree: ObjectId): Snapshot =>
  snapshotOf(tree, [ID_A, ID_B], 'stage 3: align\nmulti-line', {
    session: 'sess-1',
    provenance: {
      command: ['bwa', 'mem', '-t', '8', 'ref.fa', 'r1.fq'],
      exitStatus: 0,
      jobId: '123456',
      arrayIndex: 7,
      image: 'docker://biocontainers/bwa:0.7.17',
      imageDigest: 'sha256:' + 'c'.repeat(64),
      profile: 'slurm',
      inputs: [{ path: 'ref.fa', snapshot: ID_A }, { path: 'r1.fq', object: ID_B }, { path: 'notes' }],
      host: 'node17',
      startedAt: '2024-05-01T11:00:00Z',
      finishedAt: '2024-05-01T11:59:59.5+02:00',
      reusedFrom: ID_B,
    },
    stats: { files: 10, bytes: 12345, added: 3, changed: 2, removed: 1, bytesHashed: 999 },
  });

t.test('round trips and stable ids', async (t) => {
  const repo = await tempRepo(t);
  const tree = makeTree(sampleEntries);
  t.same(
    tree.entries.map((e) => e.name),
    ['A b.txt', 'Zeta', 'alpha', 'é', '日本'],
    'makeTree sorts names bytewise',
  );
  const tid = await repo.manifests.putTree(tree);
  t.same(await repo.manifests.getTree(tid), tree, 'tree round trip');
  t.equal(repo.manifests.treeId(tree), tid, 'treeId predicts the id');
  const file = repo.manifests.path(tid);
  const st = await stat(file);
  t.equal(st.mode & 0o777, 0o444, 'stored read-only');
  t.equal(await repo.manifests.putTree(makeTree([...sampleEntries].reverse())), tid, 'same tree, same id');
  t.equal((await stat(file)).mtimeMs, st.mtimeMs, 'an existing manifest is not rewritten');

  const snap = fullSnapshot(tid);
  const sid = await repo.manifests.putSnapshot(snap);
  t.same(await repo.manifests.getSnapshot(sid), snap, 'snapshot round trip');
  t.equal(repo.manifests.snapshotId(snap), sid);
  t.not(sid, tid);
  const minimal = snapshotOf(tid, [], '');
  t.same(await repo.manifests.getSnapshot(await repo.manifests.putSnapshot(minimal)), minimal, 'minimal snapshot');

  const m = await repo.manifests.get(sid);
  t.equal(m.kind, 'snapshot');
  t.equal((await repo.manifests.get(tid)).kind, 'tree');

  // Known answer for the empty tree (independent BLAKE2b); same id from another store with the same key,
  // another id under another key.
  const emptyId = await repo.manifests.putTree({ entries: [] });
  t.equal(emptyId, EMPTY_TREE_ID, 'known answer: empty tree');
  const again = new ManifestStore(repo.root, deriveRepoKeys(Buffer.from(SECRET)).manifest);
  t.equal(again.treeId(tree), tid, 'ids depend only on the key and the contents');
  const other = new ManifestStore(repo.root, deriveRepoKeys(Buffer.alloc(32, 9)).manifest);
  t.not(other.treeId(tree), tid, 'another key gives another id');
  t.rejects(other.getTree(tid), IntegrityError, 'and cannot read the manifests');

  const ids: ObjectId[] = [];
  for await (const id of repo.manifests.ids()) ids.push(id);
  t.equal(ids.length, 4);
  t.ok(await repo.manifests.remove(emptyId));
  t.notOk(await repo.manifests.has(emptyId));
  const missing = await errorOf(repo.manifests.getTree(emptyId));
  t.ok(missing instanceof DvfsError && missing.code === 'E_NOTFOUND', 'missing manifest: E_NOTFOUND');
});

async function expectCorrupt(t: Test, repo: TestRepo, p: Promise<unknown>, id: ObjectId, what: string, why?: RegExp): Promise<void> {
  const e = await errorOf(p);
  if (!(e instanceof ManifestIntegrityError)) {
    t.fail(`${what}: expected ManifestIntegrityError, got ${String(e)}`);
    return;
  }
  t.equal(e.manifestId, id, `${what}: names the id`);
  t.ok(e.message.includes(id) && e.message.includes(repo.root), `${what}: message names id and repository`);
  t.equal(e.code, 'E_INTEGRITY');
  if (why !== undefined) t.match(e.message, why, `${what}: ${e.message.slice(e.message.indexOf(': ') + 2)}`);
}

t.test('damaged, moved and mistyped manifests', async (t) => {
  const repo = await tempRepo(t);
  const tid = await repo.manifests.putTree(makeTree(sampleEntries));
  const sid = await repo.manifests.putSnapshot(fullSnapshot(tid));
  const path = repo.manifests.path(tid);
  const good = await readFile(path);
  await chmod(path, 0o644);
  for (const at of [0, 23, 24, 40, good.length - 17, good.length - 1]) {
    const bad = Buffer.from(good);
    bad.writeUInt8(bad.readUInt8(at) ^ 0x01, at);
    await writeFile(path, bad);
    await expectCorrupt(t, repo, repo.manifests.getTree(tid), tid, `byte ${at} flipped`, /authentication failed/);
  }
  await writeFile(path, good.subarray(0, 30));
  await expectCorrupt(t, repo, repo.manifests.getTree(tid), tid, 'truncated', /shorter than any manifest/);
  await writeFile(path, good.subarray(0, good.length - 1));
  await expectCorrupt(t, repo, repo.manifests.getTree(tid), tid, 'one byte short');
  await writeFile(path, good);
  t.ok(await repo.manifests.getTree(tid), 'restored');

  // The snapshot file moved under the tree's id: authentic, but not what the id says.
  const fakeId = ('0' + tid.slice(1)) as ObjectId;
  await mkdir(dirname(repo.manifests.path(fakeId)), { recursive: true });
  await rename(path, repo.manifests.path(fakeId));
  await expectCorrupt(t, repo, repo.manifests.getTree(fakeId), fakeId, 'renamed', /do not match the id/);
  await expectCorrupt(t, repo, repo.manifests.get(fakeId), fakeId, 'renamed (any kind)', /do not match the id/);

  await expectCorrupt(t, repo, repo.manifests.getTree(sid), sid, 'a snapshot read as a tree', /not a tree/);
  await rename(repo.manifests.path(fakeId), path);
  await expectCorrupt(t, repo, repo.manifests.getSnapshot(tid), tid, 'a tree read as a snapshot', /not a snapshot/);
  await truncate(path, 0);
  await expectCorrupt(t, repo, repo.manifests.get(tid), tid, 'empty file');
});

/** Seals an arbitrary plaintext exactly as the store does (the documented construction) and files it under its id. */
async function plant(repo: TestRepo, kind: ManifestKind, plaintext: Buffer | string): Promise<ObjectId> {
  const label = (s: string): Buffer => {
    const k = Buffer.alloc(32);
    sodium.crypto_generichash(k, Buffer.from(s), repo.keys.manifest);
    return k;
  };
  const plain = Buffer.from(plaintext);
  const id = hashBuffer(label('dvfs manifest id v1'), plain);
  const nonce = Buffer.alloc(24);
  sodium.randombytes_buf(nonce);
  const ct = Buffer.alloc(plain.length + 16);
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(ct, plain, Buffer.from(`dvfs manifest v1 ${kind}`), null, nonce, label('dvfs manifest seal v1'));
  const path = repo.manifests.path(id);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, Buffer.concat([nonce, ct]));
  return id;
}

const fileEntry = (name: string, extra: object = {}): object => ({ type: 'file', name, mode: 420, size: 1, mtimeMs: 0, object: ID_A, ...extra });
/** Canonical JSON of a tree body (keys sorted), without validation. */
const treeText = (entries: object[], extra: object = {}): string => {
  const sortKeys = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sortKeys) : typeof v === 'object' && v !== null ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, sortKeys(x)])) : v;
  return JSON.stringify(sortKeys({ kind: 'tree', v: 1, entries, ...extra }));
};

t.test('hostile trees are refused', async (t) => {
  const repo = await tempRepo(t);
  const ok = await plant(repo, 'tree', treeText([fileEntry('a'), fileEntry('b')]));
  t.same((await repo.manifests.getTree(ok)).entries.map((e) => e.name), ['a', 'b'], 'the planting itself works');

  const cases: [string, string | Buffer, RegExp][] = [
    ['name with /', treeText([fileEntry('a/b')]), /contains "\/"/],
    ['name ..', treeText([fileEntry('..')]), /not a valid entry name/],
    ['name .', treeText([fileEntry('.')]), /not a valid entry name/],
    ['empty name', treeText([fileEntry('')]), /empty/],
    ['NUL in name', treeText([fileEntry('a\0b')]), /NUL/],
    ['name too long', treeText([fileEntry('x'.repeat(256))]), /longer than 255/],
    ['lone surrogate', treeText([fileEntry('a\ud800')]), /not valid Unicode/],
    ['duplicates', treeText([fileEntry('a'), fileEntry('a')]), /duplicate/],
    ['unsorted', treeText([fileEntry('b'), fileEntry('a')]), /not sorted/],
    ['unsorted bytewise', treeText([fileEntry('é'), fileEntry('z')]), /not sorted/],
    ['negative size', treeText([fileEntry('a', { size: -1 })]), /size/],
    ['fractional size', treeText([fileEntry('a', { size: 1.5 })]), /size/],
    ['absurd size', treeText([fileEntry('a', { size: 2 ** 60 })]), /size/],
    ['absurd mode', treeText([fileEntry('a', { mode: 0o170000 })]), /mode/],
    ['negative mode', treeText([fileEntry('a', { mode: -1 })]), /mode/],
    ['mtime out of range', treeText([fileEntry('a', { mtimeMs: 1e300 })]), /mtimeMs/],
    ['bad object id', treeText([fileEntry('a', { object: ID_A.toUpperCase() })]), /not an object id/],
    ['path in object id', treeText([fileEntry('a', { object: '../../../../etc/passwd' })]), /not an object id/],
    ['unknown entry type', treeText([{ type: 'fifo', name: 'p', mode: 0, mtimeMs: 0 }]), /unknown entry type/],
    ['unknown field', treeText([fileEntry('a', { setuid: true })]), /unknown field/],
    ['empty symlink target', treeText([{ type: 'symlink', name: 'l', mode: 0, mtimeMs: 0, target: '' }]), /target: empty/],
    ['dir without tree', treeText([{ type: 'dir', name: 'd', mode: 0, mtimeMs: 0 }]), /tree: not an object id/],
    ['entries not a list', treeText([], { entries: {} }), /not an array/],
    ['wrong kind field', treeText([]).replace('"kind":"tree"', '"kind":"snapshot"'), /kind is "snapshot"/],
    ['future version', treeText([], { v: 2 }), /unsupported manifest version/],
    ['extra top-level field', treeText([], { note: 'x' }), /unknown field/],
    ['not canonical (whitespace)', treeText([fileEntry('a')]).replace(',', ', '), /canonical/],
    ['not canonical (key order)', JSON.stringify({ v: 1, kind: 'tree', entries: [] }), /canonical/],
    ['not canonical (number form)', treeText([fileEntry('a')]).replace('"size":1', '"size":1.0'), /canonical/],
    ['not JSON', '{"kind":"tree",', /not JSON/],
    ['deep nesting', '['.repeat(100_000) + ']'.repeat(100_000), /not (JSON|a JSON object)/],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0x7d]), /malformed/],
  ];
  for (const [what, text, why] of cases) {
    const id = await plant(repo, 'tree', text);
    await expectCorrupt(t, repo, repo.manifests.getTree(id), id, what, why);
  }
  // A tree's plaintext sealed as a snapshot: the tag binds the kind.
  const asSnapshot = await plant(repo, 'snapshot', treeText([fileEntry('a')]));
  await expectCorrupt(t, repo, repo.manifests.getTree(asSnapshot), asSnapshot, 'sealed under the snapshot AD', /authentication failed/);
  await expectCorrupt(t, repo, repo.manifests.getSnapshot(asSnapshot), asSnapshot, 'tree JSON as a snapshot', /kind is "tree"/);
});

t.test('hostile snapshots are refused', async (t) => {
  const repo = await tempRepo(t);
  const base = JSON.parse(JSON.stringify({ kind: 'snapshot', v: 1, ...snapshotOf(ID_A, [ID_B], 'm') })) as { [k: string]: unknown };
  const text = (patch: object): string => {
    const o = { ...base, ...patch } as { [k: string]: unknown };
    const sorted = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(sorted) : typeof v === 'object' && v !== null ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, sorted(x)])) : v;
    return JSON.stringify(sorted(o));
  };
  const good = await plant(repo, 'snapshot', text({}));
  t.equal((await repo.manifests.getSnapshot(good)).message, 'm', 'the planting itself works');
  const cases: [string, string, RegExp][] = [
    ['bad time', text({ time: 'yesterday' }), /ISO 8601/],
    ['duplicate parents', text({ parents: [ID_B, ID_B] }), /duplicate parent/],
    ['bad parent', text({ parents: ['HEAD'] }), /not an object id/],
    ['negative stat', text({ stats: { files: -1, bytes: 0, added: 0, changed: 0, removed: 0, bytesHashed: 0 } }), /stats.files/],
    ['missing stat', text({ stats: { files: 1 } }), /stats.bytes/],
    ['provenance field of the wrong type', text({ provenance: { command: 'rm -rf /' } }), /command: not an array/],
    ['unknown provenance field', text({ provenance: { secret: 1 } }), /unknown field/],
    ['input path with NUL', text({ provenance: { inputs: [{ path: 'a\0' }] } }), /NUL/],
  ];
  for (const [what, body, why] of cases) {
    const id = await plant(repo, 'snapshot', body);
    await expectCorrupt(t, repo, repo.manifests.getSnapshot(id), id, what, why);
  }
});

t.test('writing malformed manifests is a usage error', async (t) => {
  const repo = await tempRepo(t);
  const bad: [string, Tree][] = [
    ['unsorted', { entries: [fileEntry('b'), fileEntry('a')] as TreeEntry[] }],
    ['duplicate', { entries: [fileEntry('a'), fileEntry('a')] as TreeEntry[] }],
    ['slash', { entries: [fileEntry('x/y')] as TreeEntry[] }],
    ['dot-dot', { entries: [fileEntry('..')] as TreeEntry[] }],
  ];
  for (const [what, tree] of bad) {
    const e = await errorOf(repo.manifests.putTree(tree));
    t.ok(e instanceof DvfsError && e.code === 'E_USAGE', `${what}: E_USAGE (${String(e)})`);
  }
  t.throws(() => makeTree([fileEntry('a') as TreeEntry, fileEntry('a') as TreeEntry]), DvfsError, 'makeTree refuses duplicates');
  const e = await errorOf(repo.manifests.putSnapshot({ ...snapshotOf(ID_A, [], 'x'), time: 'now' }));
  t.ok(e instanceof DvfsError && e.code === 'E_USAGE', 'bad snapshot time');
  let count = 0;
  for await (const _ of repo.manifests.ids()) count++;
  t.equal(count, 0, 'nothing was stored');
});

t.test('the direct tree encoder writes exactly the canonical JSON', async (t) => {
  const { encodeTree, encodeTreeGeneric } = await import('../../daemon/store/manifest-schema.js');
  const names = ['a', 'Z', 'é', '日本', 'quote"back\\slash', 'tab\there', 'ctl\u0001', '\u2028sep', 'emoji 🚀', '-0'];
  const entries: TreeEntry[] = [];
  names.forEach((name, i) => {
    const kind = i % 3;
    if (kind === 0) entries.push({ type: 'file', name, mode: 0o644, size: i * 1000, mtimeMs: 1_700_000_000_123.456 + i, object: ID_A });
    else if (kind === 1) entries.push({ type: 'dir', name, mode: 0o755, mtimeMs: -0, tree: ID_B });
    else entries.push({ type: 'symlink', name, mode: 0o777, mtimeMs: 1e-7, target: `../t "${name}"` });
  });
  const tree = makeTree(entries);
  t.equal(encodeTree(tree), encodeTreeGeneric(tree), 'same bytes');
  t.equal(encodeTree(makeTree([])), encodeTreeGeneric(makeTree([])), 'empty tree too');
});
