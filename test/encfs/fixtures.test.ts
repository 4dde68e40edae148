// Known answers from volumes made once by stock EncFS 1.9.5 (test/fixtures/encfs): dvfs decodes every name,
// content, symlink and size exactly as the stock mount showed them when the fixture was recorded.
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EncfsVolume, type Entry } from '../../daemon/encfs/volume.js';
import { copyEncfsFixture, FIXTURE_PRESETS, fixturePassword, readManifest } from '../helpers/encfs-fixtures.js';

async function walk(volume: EncfsVolume, dir: string, out: Map<string, Entry>): Promise<number> {
  const { entries, undecodable } = await volume.list(dir);
  for (const e of entries) {
    const path = dir === '' ? e.name : `${dir}/${e.name}`;
    out.set(path, e);
    if (e.type === 'dir') await walk(volume, path, out);
  }
  return undecodable.length;
}

for (const preset of FIXTURE_PRESETS) {
  t.test(`stock ${preset} fixture: every entry decodes to the recorded plaintext`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), `dvfs-fixture-${preset}-`));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const root = join(dir, 'raw');
    copyEncfsFixture(preset, root);
    const manifest = readManifest(preset);
    const volume = await EncfsVolume.open(root, Buffer.from(fixturePassword()));
    t.equal(volume.content.dataBlockSize, manifest.plainBlockSize, 'user block size');
    const seen = new Map<string, Entry>();
    t.equal(await walk(volume, '', seen), 0, 'no undecodable entries');
    t.same([...seen.keys()].sort(), manifest.entries.map((e) => e.path).sort(), 'same set of paths as the stock mount');
    for (const m of manifest.entries) {
      const e = seen.get(m.path);
      if (!e) continue;
      t.equal(e.type, m.type, `${m.path}: type`);
      t.equal(volume.paths.encodePath(m.path).cipher, m.raw, `${m.path}: dvfs encodes the name exactly as stock encfs did`);
      t.equal(e.mode.toString(8).padStart(4, '0'), m.mode, `${m.path}: mode`);
      if (m.type === 'file') {
        t.equal(e.size, m.size, `${m.path}: size`);
        const data = await volume.readFile(m.path);
        t.equal(createHash('sha256').update(data).digest('hex'), m.sha256, `${m.path}: contents`);
        t.equal(volume.content.rawSize(data.length, m.rawSize !== undefined && m.rawSize > 0), m.rawSize, `${m.path}: raw size arithmetic`);
      } else if (m.type === 'symlink') {
        t.equal(await volume.readlink(m.path), m.target, `${m.path}: symlink target`);
        t.equal(e.size, m.size, `${m.path}: symlink size = decoded target length`);
      }
    }
  });
}
