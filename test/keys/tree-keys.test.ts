// The keys a stage runner hands its mount daemon instead of the password (daemon/keys/tree-keys.ts): through
// the pipe encoding they open the same tree, with the same epoch keys, in both formats, before and after a
// key rotation; a damaged grant is refused; wiping the handed-over copies leaves the opened tree working.
import t, { type Test } from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { epochKeysOf } from '../../daemon/keys/epoch-keys.js';
import { decodeTreeKeys, encodeTreeKeys, keysOfTree, wipeTreeKeys, type TreeKeysWire } from '../../daemon/keys/tree-keys.js';
import { treeKeyOf } from '../../daemon/keys/unlock.js';
import { quietLog } from '../../daemon/quiet-log.js';
import { openTree } from '../../daemon/repo/open-tree.js';
import { locateRepository } from '../../daemon/repo/repository.js';
import { PlainView } from '../../daemon/vfs/plain-view.js';
import { keyWorkspace, ok } from './keys-helpers.js';

const PASSWORD = 'the repository password';

for (const mode of ['encfs', 'native'] as const) {
  t.test(`${mode}: handed-over keys open the tree the password opens`, async (t) => {
    const ws = await keyWorkspace(t, `tree-keys-${mode}`);
    const repo = join(ws.dir, 'repo');
    ok(t, ws.withPassword(['init', repo, '--mode', mode, ...(mode === 'encfs' ? ['--kdf-iterations', '1000'] : ['--kdf-profile', 'min'])]), 'init');
    await writeFile(join(ws.dir, 'a'), 'epoch zero\n');
    ok(t, ws.withPassword(['put', repo, join(ws.dir, 'a'), '/a']), 'put');
    ok(t, ws.withPassword(['commit', repo, '-m', 'one']), 'commit');

    const check = async (t: Test, rotated: boolean): Promise<void> => {
      const r = await locateRepository(repo);
      const byPassword = await openTree(r, Buffer.from(PASSWORD), quietLog);
      const keys = keysOfTree(byPassword);
      const wire = JSON.parse(JSON.stringify(encodeTreeKeys(keys))) as TreeKeysWire;
      t.notMatch(JSON.stringify(wire), PASSWORD, 'the password itself is not handed over');
      const handed = decodeTreeKeys(wire);
      const byKeys = await openTree(r, handed, quietLog);
      wipeTreeKeys(handed);
      wipeTreeKeys(keys);
      t.ok(treeKeyOf(byKeys).equals(treeKeyOf(byPassword)), 'the same volume key');
      t.equal((await new PlainView(byKeys).readFile('/a')).toString(), 'epoch zero\n', 'reads what the password reads, after the copies were wiped');
      const want = epochKeysOf(byPassword);
      const got = epochKeysOf(byKeys);
      if (rotated) {
        t.same([got?.current, got?.held], [want?.current, want?.held], 'the same current epoch and held epochs');
        const a = got?.repoKeys();
        const b = want?.repoKeys();
        t.ok(a !== undefined && b !== undefined && Buffer.from(a.manifest).equals(Buffer.from(b.manifest)), 'the same store keys of the current epoch');
      } else {
        t.equal(got, undefined, 'no epoch keys where the password opened none (keys from the volume)');
      }
      byKeys.dispose?.();
      byPassword.dispose?.();
    };
    t.test('no key epochs', (t) => check(t, false));
    t.test('after a rotation', async (t) => {
      ok(t, ws.withPassword(['key', 'rotate', repo]), 'rotate');
      await check(t, true);
    });
    t.test('a damaged grant is refused', async (t) => {
      const byPassword = await openTree(await locateRepository(repo), Buffer.from(PASSWORD), quietLog);
      const keys = keysOfTree(byPassword);
      const wire = encodeTreeKeys(keys);
      wipeTreeKeys(keys);
      byPassword.dispose?.();
      t.ok(wire.grants.length > 0, 'the rotated repository hands over grants');
      t.throws(() => decodeTreeKeys({ ...wire, grants: [Buffer.from('not a grant').toString('base64')] }), /damaged key grant/);
    });
  });
}
