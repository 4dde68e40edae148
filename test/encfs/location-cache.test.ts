// EncfsTree's location cache is bounded: with a limit of 8 it never holds more, and every path still resolves
// to the same raw path and IV as through a tree with the default limit (and after the cache was emptied).
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EncfsVolume } from '../../daemon/encfs/volume.js';
import { EncfsTree, LOCATION_CACHE_LIMIT } from '../../daemon/encfs/tree.js';

t.test('a small cache evicts and gives the same locations', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-loccache-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const volume = await EncfsVolume.create(join(dir, 'vol'), Buffer.from('loc-cache-pw'), { kdfIterations: 1000 });
  const small = new EncfsTree(volume, () => undefined, 8);
  const big = new EncfsTree(volume);
  const paths: string[] = [];
  for (let d = 0; d < 5; d++) for (let f = 0; f < 20; f++) paths.push(`/d${d}/sub/f${f}`);
  let maxCached = 0;
  let differ = 0;
  for (let round = 0; round < 2; round++) {
    for (const p of paths) {
      const a = small.locateSync(p);
      const b = big.locateSync(p);
      if (a.rawPath !== b.rawPath || a.ctx !== b.ctx || a.plainPath !== b.plainPath) differ++;
      maxCached = Math.max(maxCached, small.cachedLocations);
    }
  }
  t.equal(differ, 0, 'same raw path, IV and plain path for all 200 lookups');
  t.ok(maxCached <= 8, `the small cache never held more than 8 (max ${maxCached})`);
  t.ok(big.cachedLocations > 8 && big.cachedLocations <= LOCATION_CACHE_LIMIT, 'the default cache kept them');
  t.not(small.locateSync('/d0/sub/f0').rawPath, small.locateSync('/d0/sub/f1').rawPath, 'distinct names, distinct raw paths');
});
