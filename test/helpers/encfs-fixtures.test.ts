import t from 'tap'
import { createHash } from 'node:crypto'
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import path from 'node:path'
import { FIXTURE_PRESETS, copyEncfsFixture, fixturePassword, readManifest } from './encfs-fixtures.js'
import { encfsAvailable, tmpDir, withStockMount } from './stock-encfs.js'

const unavailable = encfsAvailable()
if (unavailable !== null) {
  console.error(`\n!!! SKIPPING stock-encfs mounts of the fixtures: ${unavailable}\n`)
}
const skipMount = unavailable === null ? false : `stock encfs unavailable: ${unavailable}`

function walk(root: string, rel = ''): string[] {
  const out: string[] = []
  for (const name of readdirSync(path.join(root, rel))) {
    const r = rel === '' ? name : `${rel}/${name}`
    out.push(r)
    if (lstatSync(path.join(root, r)).isDirectory()) out.push(...walk(root, r))
  }
  return out.sort()
}

t.test('password file', async (t) => {
  const pw = fixturePassword()
  t.equal(pw, 'dvfs-fixture-password', 'known password, no trailing newline')
})

for (const preset of FIXTURE_PRESETS) {
  t.test(`${preset}: manifest and committed ciphertext agree`, async (t) => {
    const m = readManifest(preset)
    const b = m.plainBlockSize
    t.equal(m.preset, preset)
    t.equal(b, preset === 'standard' ? 1024 : 1016, 'plaintext block size')
    const byPath = new Map(m.entries.map((e) => [e.path, e]))
    const expectSize = (p: string, size: number): void => {
      t.equal(byPath.get(p)?.size, size, `${p} has size ${size}`)
    }
    expectSize('empty', 0)
    expectSize('one', 1)
    expectSize('block-minus-1', b - 1)
    expectSize('block', b)
    expectSize('block-plus-1', b + 1)
    expectSize('big', 1024 * 1024 + 7)
    expectSize('sparse', 64 * 1024 + 1)
    expectSize('truncated', 0)
    t.equal(byPath.get('truncated')?.rawSize, 8, 'truncated file keeps its 8-byte header')
    t.equal(byPath.get('emptydir')?.type, 'dir')
    t.equal(byPath.get('a/b/c/deep.txt')?.type, 'file')
    t.equal(byPath.get('a/link-rel')?.target, 'b/c/deep.txt')
    t.equal(byPath.get('a/link-up')?.target, '../one')
    t.equal(byPath.get('abs-link')?.target, '/etc/hostname')
    const long = m.entries.filter((e) => e.path.length === 175 && /^[\x20-\x7e]+$/.test(e.path))
    t.equal(long.length, 1, 'one 175-character ASCII name')
    for (const n of ['données-été.txt', '日本語.bin', 'emoji-😀.txt']) t.ok(byPath.has(n), `non-ASCII name ${n}`)

    const dir = tmpDir(t, `fixture-${preset}`)
    const raw = copyEncfsFixture(preset, path.join(dir, 'raw'))
    for (const e of m.entries) {
      const st = lstatSync(path.join(raw, ...e.raw.split('/')))
      const kind = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other'
      t.equal(kind, e.type, `raw ${e.type} for ${e.path}`)
      if (e.type === 'file') t.equal(st.size, e.rawSize, `raw size of ${e.path}`)
      if (e.type !== 'symlink') t.equal((st.mode & 0o7777).toString(8).padStart(4, '0'), e.mode, `mode of ${e.path}`)
    }
    const rawEntries = walk(raw).filter((p) => p !== '.encfs6.xml')
    t.same(rawEntries, m.entries.map((e) => e.raw).sort(), 'copied raw tree matches the manifest exactly')
  })

  t.test(`${preset}: stock encfs decrypts the fixture to the manifest`, { skip: skipMount }, async (t) => {
    const m = readManifest(preset)
    const dir = tmpDir(t, `fixture-mount-${preset}`)
    const raw = copyEncfsFixture(preset, path.join(dir, 'raw'))
    const mnt = path.join(dir, 'mnt')
    await withStockMount(raw, mnt, fixturePassword(), (mnt) => {
      t.same(walk(mnt), m.entries.map((e) => e.path).sort(), 'same plaintext paths')
      for (const e of m.entries) {
        const p = path.join(mnt, ...e.path.split('/'))
        const st = lstatSync(p)
        t.equal((st.mode & 0o7777).toString(8).padStart(4, '0'), e.mode, `mode of ${e.path}`)
        if (e.type === 'dir') {
          t.ok(st.isDirectory(), `${e.path} is a directory`)
        } else if (e.type === 'symlink') {
          t.ok(st.isSymbolicLink(), `${e.path} is a symlink`)
          t.equal(readlinkSync(p), e.target, `target of ${e.path}`)
        } else {
          t.ok(st.isFile(), `${e.path} is a file`)
          t.equal(st.size, e.size, `size of ${e.path}`)
          t.equal(createHash('sha256').update(readFileSync(p)).digest('hex'), e.sha256, `sha256 of ${e.path}`)
        }
      }
    })
  })
}
