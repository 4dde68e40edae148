/**
 * The mount daemon's V8 flags (launcher.ts): the memory defaults unless DVFS_DAEMON_NODE_FLAGS says otherwise
 * (empty: V8's own defaults); anything but `--flag` / `--flag=value` is refused before a daemon is spawned,
 * and the defaults are flags this Node accepts.
 */
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { DAEMON_NODE_FLAGS, daemonNodeFlags } from '../../daemon/mount/launcher.js';

t.test('defaults, override, empty, refusal', async (t) => {
  t.same(daemonNodeFlags({}), DAEMON_NODE_FLAGS, 'unset: the defaults');
  t.ok(DAEMON_NODE_FLAGS.some((f) => f.startsWith('--heap-growing-percent=')), 'the defaults fix the heap growing factor');
  t.same(daemonNodeFlags({ DVFS_DAEMON_NODE_FLAGS: '' }), [], 'empty: none');
  t.same(daemonNodeFlags({ DVFS_DAEMON_NODE_FLAGS: '  --optimize-for-size   --max-semi-space-size=4 ' }), ['--optimize-for-size', '--max-semi-space-size=4']);
  t.throws(() => daemonNodeFlags({ DVFS_DAEMON_NODE_FLAGS: '--optimize-for-size x' }), /DVFS_DAEMON_NODE_FLAGS: 'x' is not a --flag/);
  t.throws(() => daemonNodeFlags({ DVFS_DAEMON_NODE_FLAGS: '-e' }), /is not a --flag/);
  t.throws(() => daemonNodeFlags({ DVFS_DAEMON_NODE_FLAGS: '--require=/tmp/x;rm' }), /is not a --flag/);
});

t.test('node starts with the default flags', async (t) => {
  const r = spawnSync(process.execPath, [...DAEMON_NODE_FLAGS, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' });
  t.equal(r.stderr, '', 'no warning about an unknown flag');
  t.equal(r.stdout, 'ok');
});
