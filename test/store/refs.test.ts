// HEAD and history: atomic replacement (leftover temp files from a crash are ignored; a writer killed at
// random moments always leaves a valid HEAD), corrupt HEAD reported, first-parent history newest first.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { IntegrityError } from '../../daemon/errors.js';
import type { ObjectId } from '../../daemon/store/content-hash.js';
import { headPath, history, readHead, writeHead } from '../../daemon/store/refs.js';
import { commit, errorOf, snapshotOf, tempRepo } from './store-helpers.js';

const REFS_MODULE = fileURLToPath(new URL('../../daemon/store/refs.js', import.meta.url));
const ID1 = '1'.repeat(64) as ObjectId;
const ID2 = '2'.repeat(64) as ObjectId;

t.test('write and read HEAD', async (t) => {
  const repo = await tempRepo(t);
  t.equal(await readHead(repo.root), null, 'no HEAD yet');
  await writeHead(repo.root, ID1);
  t.equal(await readHead(repo.root), ID1);
  t.equal(await readFile(headPath(repo.root), 'utf8'), `${ID1}\n`);
  await writeHead(repo.root, ID2);
  t.equal(await readHead(repo.root), ID2);
  t.same((await readdir(join(repo.root, '.dvfs'))).filter((n) => n.includes('HEAD')), ['HEAD'], 'no temp files left');
});

t.test('a crash before the rename leaves the old HEAD', async (t) => {
  const repo = await tempRepo(t);
  await writeHead(repo.root, ID1);
  // What a writer killed mid-way leaves behind: temp files, one torn.
  await writeFile(join(repo.root, '.dvfs', '.HEAD.4242-00112233aabbccdd.tmp'), ID2.slice(0, 20));
  await writeFile(join(repo.root, '.dvfs', '.HEAD.4243-00112233aabbccdd.tmp'), `${ID2}\n`);
  t.equal(await readHead(repo.root), ID1, 'HEAD still the old one');
  await writeHead(repo.root, ID2);
  t.equal(await readHead(repo.root), ID2, 'later writes still work');
});

t.test('a writer killed at random moments never tears HEAD', async (t) => {
  const repo = await tempRepo(t);
  await writeHead(repo.root, ID1);
  const script = `
    const { writeHead } = await import(${JSON.stringify(REFS_MODULE)});
    const ids = [${JSON.stringify(ID1)}, ${JSON.stringify(ID2)}];
    process.stdout.write('ready\\n');
    for (let i = 0; ; i++) await writeHead(process.argv[1], ids[i % 2]);
  `;
  for (let round = 0; round < 4; round++) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, repo.root], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await sleep(20 + round * 25);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const head = await readHead(repo.root);
    t.ok(head === ID1 || head === ID2, `round ${round}: HEAD is a complete id`);
  }
});

t.test('a damaged HEAD is an integrity error', async (t) => {
  const repo = await tempRepo(t);
  for (const text of ['', ID1.slice(1), `${ID1}\n\n`, 'ref: refs/heads/main\n', 'A'.repeat(64)]) {
    await writeFile(headPath(repo.root), text);
    const e = await errorOf(readHead(repo.root));
    t.ok(e instanceof IntegrityError && e.path === headPath(repo.root), `${JSON.stringify(text.slice(0, 20))} refused`);
  }
});

t.test('history follows first parents, newest first', async (t) => {
  const repo = await tempRepo(t);
  const a = await commit(repo, { 'f': 'one' }, [], 'a');
  const side = await commit(repo, { 'f': 'side' }, [a.snapshot], 'side');
  const b = await commit(repo, { 'f': 'two' }, [a.snapshot], 'b');
  const merge = await repo.manifests.putSnapshot(snapshotOf(b.tree, [b.snapshot, side.snapshot], 'merge'));
  const walked: string[] = [];
  for await (const h of history(repo.manifests, merge)) walked.push(h.snapshot.message);
  t.same(walked, ['merge', 'b', 'a'], 'second parents are not followed');
  const limited: ObjectId[] = [];
  for await (const h of history(repo.manifests, merge, { limit: 2 })) limited.push(h.id);
  t.same(limited, [merge, b.snapshot]);
  let none = 0;
  for await (const _ of history(repo.manifests, null)) none++;
  t.equal(none, 0, 'no HEAD, no history');
  // A broken link ends the walk with its error.
  await repo.manifests.remove(a.snapshot);
  const seen: string[] = [];
  const e = await errorOf(
    (async () => {
      for await (const h of history(repo.manifests, merge)) seen.push(h.snapshot.message);
    })(),
  );
  t.same(seen, ['merge', 'b']);
  t.match(e, { code: 'E_NOTFOUND' });
});
