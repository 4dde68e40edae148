// Child process for the index crash test: builds snapshot "old" (/old/0..OLD-1), then, after printing
// "updating", replaces it by snapshot "new" (/new/0..NEW-1) in one multi-batch update; then exits.
//   node index-child.js INDEX_DIR OLD NEW
import { RepoIndex, type IndexOp } from '../../daemon/index/repo-index.js';

const [dir, oldArg, newArg] = process.argv.slice(2);
if (!dir || !oldArg || !newArg) throw new Error('usage: index-child.js INDEX_DIR OLD NEW');
const entry = (i: number) => ({ kind: 'file' as const, object: i.toString(16).padStart(64, '0'), size: i, mode: 0o100644, mtimeMs: i, raw: { ino: i, size: i, mtimeMs: i } });
const index = await RepoIndex.open(dir, { chunk: 500 });
const old: IndexOp[] = [];
for (let i = 0; i < Number(oldArg); i++) old.push({ type: 'put', path: `/old/${i}`, entry: entry(i) });
await index.batch(old, { snapshot: 'old' });
process.stdout.write('updating\n');
await index.remove('/old');
const ops: IndexOp[] = [];
for (let i = 0; i < Number(newArg); i++) ops.push({ type: 'put', path: `/new/${i}`, entry: entry(i) });
await index.batch(ops, { snapshot: 'new' });
await index.close();
