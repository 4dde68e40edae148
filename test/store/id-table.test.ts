// IdTable: the compact (type, id) table behind push's object list and the remote's PackIndex — lookups,
// duplicates, values, insertion order across chunk and slot-array growth, and refusal of malformed ids.
import t from 'tap';
import { createHash } from 'node:crypto';
import { IdTable } from '../../daemon/store/id-table.js';
import type { ObjectId } from '../../daemon/store/object-id.js';
import { PackIndex } from '../../daemon/remote/pack-index.js';

const idOf = (n: number): ObjectId => createHash('sha256').update(`object ${n}`).digest('hex') as ObjectId;

t.test('add, find and read back 50 000 ids (several chunks, many slot-array doublings)', async (t) => {
  const table = new IdTable(2);
  const n = 50_000;
  let misplaced = 0;
  for (let i = 0; i < n; i++) {
    const { row, added } = table.add(1 + (i % 2), idOf(i));
    if (!added || row !== i) misplaced++;
    table.setValue(row, 0, i);
    table.setValue(row, 1, 0xffff_ffff - i);
  }
  t.equal(misplaced, 0, 'each new id added at the next row');
  t.equal(table.size, n);
  let bad = 0;
  for (let i = 0; i < n; i += 7) {
    const row = table.find(1 + (i % 2), idOf(i));
    if (row !== i || table.id(row) !== idOf(i) || table.code(row) !== 1 + (i % 2) || table.value(row, 0) !== i || table.value(row, 1) !== 0xffff_ffff - i) bad++;
  }
  t.equal(bad, 0, 'every id found at its row with its code and values');
  t.equal(table.find(2 - (0 % 2), idOf(0)), -1, 'the same id under the other type code is another key');
  t.equal(table.find(1, idOf(n + 1)), -1, 'an id never added is absent');
});

t.test('duplicates are not added again', async (t) => {
  const table = new IdTable();
  t.same(table.add(1, idOf(1)), { row: 0, added: true });
  t.same(table.add(1, idOf(2)), { row: 1, added: true });
  t.same(table.add(1, idOf(1)), { row: 0, added: false });
  t.equal(table.size, 2);
  t.ok(table.has(1, idOf(2)));
});

t.test('malformed ids and rows out of range are refused', async (t) => {
  const table = new IdTable(1);
  t.throws(() => table.add(1, 'ABC' as ObjectId), /not an object id/);
  t.throws(() => table.find(1, idOf(1).toUpperCase() as ObjectId), /not an object id/);
  t.throws(() => table.id(0), RangeError);
  table.add(1, idOf(1));
  t.throws(() => table.value(0, 1), RangeError, 'no second value word');
  t.throws(() => table.value(1, 0), RangeError, 'no second row');
  t.throws(() => new IdTable(17), RangeError);
});

t.test('PackIndex on IdTable: packed and large-blob locations, order, data names', async (t) => {
  const index = new PackIndex();
  const pack = (c: string): string => c.repeat(64);
  t.ok(index.add({ type: 'object', id: idOf(1), loc: { kind: 'pack', pack: pack('a'), offset: 0, length: 100 } }));
  t.ok(index.add({ type: 'manifest', id: idOf(1), loc: { kind: 'pack', pack: pack('b'), offset: 4_000_000_000, length: 41 } }));
  t.ok(index.add({ type: 'object', id: idOf(2), loc: { kind: 'blob', blob: pack('c'), size: 2 ** 40 } }));
  t.notOk(index.add({ type: 'object', id: idOf(1), loc: { kind: 'pack', pack: pack('d'), offset: 5, length: 50 } }), 'first placement wins');
  t.equal(index.size, 3);
  t.same(index.get('object', idOf(1)), { kind: 'pack', pack: pack('a'), offset: 0, length: 100 });
  t.same(index.get('manifest', idOf(1)), { kind: 'pack', pack: pack('b'), offset: 4_000_000_000, length: 41 });
  t.same(index.get('object', idOf(2)), { kind: 'blob', blob: pack('c'), size: 2 ** 40 });
  t.equal(index.get('manifest', idOf(2)), undefined);
  t.same(
    [...index.records()].map((r) => [r.type, r.id]),
    [
      ['object', idOf(1)],
      ['manifest', idOf(1)],
      ['object', idOf(2)],
    ],
    'records in the order added',
  );
  t.same([...index.dataNames()].sort(), [pack('a'), pack('b'), pack('c')]);
});
