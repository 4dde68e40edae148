// A commit of many changes, streamed and applied in small chunks, gives the snapshot tree the in-memory,
// one-batch path gives for the same working tree: the same repository (copied before the commit) is
// committed both ways and the root tree ids compared. Then a second session that changes and adds files.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dvfs, type CliResult } from '../helpers/cli.js';

function ok(t: Test, r: CliResult, what: string): CliResult {
  t.equal(r.status, 0, `${what} (${r.stderr.trim().slice(0, 300)})`);
  return r;
}

interface Commit {
  snapshot: string;
  nothingToCommit: boolean;
  added: number;
  changed: number;
  files: number;
  filesHashed: number;
}

async function source(dir: string, round: number): Promise<void> {
  // 5 directories (one nested) x 40 files, a quarter empty; round 2 rewrites some and adds others.
  for (let d = 0; d < 5; d++) {
    const sub = join(dir, `d${d}`, ...(d === 4 ? ['inner'] : []));
    await mkdir(sub, { recursive: true });
    for (let i = 0; i < 40; i++) {
      if (round === 2 && i % 3 !== 0) continue;
      await writeFile(join(sub, `f${i}`), i % 4 === 0 ? '' : `round ${round} dir ${d} file ${i}\n`.repeat(1 + (i % 5)));
    }
    if (round === 2) await writeFile(join(sub, 'new'), `added in round 2 to ${d}\n`);
  }
}

t.test('streamed, chunked commit = in-memory commit (same tree), two rounds', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-chunks-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pw = join(dir, 'pw');
  await writeFile(pw, 'chunked commit test password\n', { mode: 0o600 });
  const env = { DVFS_PASSWORD_FILE: pw, DVFS_NO_PROGRESS: '1' };
  const streamedEnv = { ...env, DVFS_COMMIT_STREAM_ABOVE: '0', DVFS_COMMIT_CHUNK: '7' };
  const memoryEnv = { ...env, DVFS_COMMIT_STREAM_ABOVE: '1000000' };
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  ok(t, dvfs(['init', a, '--mode', 'encfs', '--kdf-iterations', '1000'], { env }), 'init');
  const tree = (repo: string): string => (JSON.parse(ok(t, dvfs(['show', repo, 'HEAD', '--json'], { env }), 'show').out) as { tree: string }).tree;

  for (const round of [1, 2]) {
    const src = join(dir, `src${round}`);
    await source(src, round);
    ok(t, dvfs(['put', a, src, '/data'], { env }), `put round ${round}`);
    // The same repository, session journal and working tree, committed two ways.
    await rm(b, { recursive: true, force: true });
    execFileSync('cp', ['-a', a, b]);
    const sa = JSON.parse(ok(t, dvfs(['commit', a, '--json', '-m', `r${round}`], { env: streamedEnv }), `streamed commit ${round}`).out) as Commit;
    const sb = JSON.parse(ok(t, dvfs(['commit', b, '--json', '-m', `r${round}`], { env: memoryEnv }), `in-memory commit ${round}`).out) as Commit;
    t.equal(sa.nothingToCommit, false);
    t.equal(tree(a), tree(b), `round ${round}: same root tree`);
    for (const k of ['added', 'changed', 'files', 'filesHashed'] as const) t.equal(sa[k], sb[k], `round ${round}: same ${k}`);
    if (round === 1) t.equal(sa.files, 200, '200 files');
    else t.ok(sa.added + sa.changed >= 75, `round 2: 5 x 14 files rewritten and 5 added (added ${sa.added}, changed ${sa.changed})`);
    // What the index now says matches the working tree: a rescan finds nothing.
    const rescan = JSON.parse(ok(t, dvfs(['commit', a, '--rescan', '--json'], { env }), 'rescan').out) as Commit;
    t.equal(rescan.nothingToCommit, true, `round ${round}: the chunked commit left the index matching the tree`);
  }
  ok(t, dvfs(['verify', a], { env }), 'verify');
  t.same(execFileSync('ls', ['-A', join(a, '.dvfs')]).toString().split('\n').filter((n) => n.startsWith('commit-scratch')), [], 'no scratch database left');
});
