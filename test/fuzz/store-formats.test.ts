// Fuzzing the binary and JSON formats of the snapshot store and the remote: manifest plaintexts (the schema
// checker), pack files (table + every entry) and pack index files (sealed, and their plaintext decoder).
// Authenticated formats must refuse every changed byte: a mutated input that opens is "wrong plaintext".
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { decodeManifest, encodeSnapshot, encodeTree, makeTree, SchemaError } from '../../daemon/store/manifest-schema.js';
import { hashBuffer, type ObjectId } from '../../daemon/store/content-hash.js';
import { deriveRemoteKeys, wipeRemoteKeys } from '../../daemon/remote/keys.js';
import { RemoteIntegrityError } from '../../daemon/remote/layout.js';
import { openEntry, PackWriter, parsePackTable } from '../../daemon/remote/pack.js';
import { decodeIndex, encodeIndex, openIndexFile, sealIndexFile, type IndexRecord } from '../../daemon/remote/pack-index.js';
import { repoKeys } from '../remote/pack-helpers.js';
import { fuzz, onlyUnchanged } from './harness.js';

const KEY = Buffer.alloc(32, 3);
const idOf = (s: string): ObjectId => hashBuffer(KEY, Buffer.from(s));

t.test('manifest plaintexts (trees and snapshots)', async (t) => {
  const tree = makeTree([
    { type: 'file', name: 'a.txt', mode: 0o644, size: 12, mtimeMs: 1_700_000_000_123.5, object: idOf('a') },
    { type: 'dir', name: 'sub', mode: 0o755, mtimeMs: 0, tree: idOf('t') },
    { type: 'symlink', name: 'ln', mode: 0o777, mtimeMs: -5, target: '../x' },
    { type: 'file', name: 'ünï', mode: 0o600, size: 0, mtimeMs: 1, object: idOf('b') },
  ]);
  const snapshot = encodeSnapshot({
    tree: idOf('t'),
    parents: [idOf('p1'), idOf('p2')],
    message: 'msg "quoted"\n',
    time: '2026-01-01T00:00:00.000Z',
    author: 'me',
    session: 's1',
    sessions: [{ id: 's1', seq: 4, startedAt: '2026-01-01T00:00:00Z' }],
    provenance: { command: ['run', '-x'], exitStatus: 0, inputs: [{ path: '/in', snapshot: idOf('p1') }], stage: { identity: idOf('i'), status: 'ran', engine: 'none', attempts: 1, outputs: ['/out'], profileDigest: 'd' } },
    stats: { files: 1, bytes: 2, added: 3, changed: 4, removed: 5, bytesHashed: 6 },
  });
  const samples = [encodeTree(tree), encodeTree(makeTree([])), snapshot].map((s) => Buffer.from(s));
  await fuzz(t, {
    name: 'manifest',
    samples,
    parse: (b) => {
      const text = b.toString('utf8');
      return decodeManifest(text, text.includes('"kind":"snapshot"') ? 'snapshot' : 'tree');
    },
    expected: (e) => e instanceof SchemaError,
    // Canonical form is required: whatever decodes must be exactly what the encoder writes for it.
    accepted: (input, m) => ((m.kind === 'tree' ? encodeTree(m.tree) : encodeSnapshot(m.snapshot)) === input.toString('utf8') ? null : 'a non-canonical manifest was accepted'),
  });
});

t.test('pack files (table and entries)', async (t) => {
  const keys = deriveRemoteKeys(repoKeys(t));
  t.teardown(() => wipeRemoteKeys(keys));
  const packs = [1, 3].map((n) => {
    const w = new PackWriter(keys);
    for (let i = 0; i < n; i++) w.add(i % 2 === 0 ? 'object' : 'manifest', idOf(`e${i}`), randomBytes(20 + i * 50));
    return w.finish();
  });
  for (const p of packs) {
    await fuzz(t, {
      name: `pack of ${p.entries.length}`,
      samples: [p.data],
      parse: (b) => {
        const entries = parsePackTable(keys, 'fuzz://remote', p.name, b, b.length);
        return entries.map((e) => openEntry(keys, 'fuzz://remote', p.name, e, b.subarray(e.offset, e.offset + e.length)));
      },
      expected: (e) => e instanceof RemoteIntegrityError,
      accepted: onlyUnchanged,
    });
  }
});

t.test('pack index files (sealed, and the plaintext decoder)', async (t) => {
  const keys = deriveRemoteKeys(repoKeys(t));
  t.teardown(() => wipeRemoteKeys(keys));
  const pack = randomBytes(32).toString('hex');
  const records: IndexRecord[] = [
    { type: 'object', id: idOf('o1'), loc: { kind: 'pack', pack, offset: 0, length: 100 } },
    { type: 'manifest', id: idOf('m1'), loc: { kind: 'pack', pack, offset: 100, length: 60 } },
    { type: 'object', id: idOf('big'), loc: { kind: 'blob', blob: randomBytes(32).toString('hex'), size: 123_456_789 } },
  ];
  const sealed = sealIndexFile(keys, records, [randomBytes(32).toString('hex')]);
  await fuzz(t, {
    name: 'sealed index file',
    samples: [sealed.data],
    parse: (b) => openIndexFile(keys, 'fuzz://remote', sealed.name, b),
    expected: (e) => e instanceof RemoteIntegrityError,
    accepted: onlyUnchanged,
  });
  // The decoder only ever sees authenticated plaintext, but must still fail cleanly (its own plain Error,
  // which openIndexFile wraps) rather than read out of bounds (RangeError) or trip over undefined (TypeError).
  await fuzz(t, {
    name: 'index plaintext',
    samples: [encodeIndex(records), encodeIndex([]), encodeIndex(records.slice(0, 1), [pack])],
    parse: (b) => decodeIndex(b),
    expected: (e) => e instanceof Error && e.constructor === Error,
  });
});
