// Child process for the journal crash test: appends records in groups of GROUP, flushes each group (one
// synced batch), reports "flushed <seq>" on stdout, and goes on until it is killed.
//   node crash-child.js JOURNAL_DIR GROUP
import { createHash } from 'node:crypto';
import { SessionJournal } from '../../daemon/journal/journal.js';

const [dir, groupArg] = process.argv.slice(2);
if (!dir || !groupArg) throw new Error('usage: crash-child.js JOURNAL_DIR GROUP');
const GROUP = Number(groupArg);
// No timer batches and no size-triggered ones: every batch is exactly one group, written by flush().
const j = await SessionJournal.create(dir, { sessionId: 'crash', repoId: 'r', mountpoint: '/m', startedAt: new Date().toISOString(), baseSnapshot: null, host: 'h', pid: process.pid }, { flushIntervalMs: 3_600_000, maxPending: 1_000_000 });
for (let g = 0; ; g++) {
  for (let i = 0; i < GROUP; i++) {
    const seq = j.lastSeq + 1;
    const hash = createHash('sha256').update(String(seq)).digest('hex');
    if (j.write(`/g${g}/f${seq}`, { hash, size: seq }) !== seq) throw new Error('sequence out of step');
  }
  await j.flush();
  process.stdout.write(`flushed ${j.lastSeq}\n`);
}
