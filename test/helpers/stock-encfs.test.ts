import t from 'tap'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import {
  ENCFS_CONFIG_NAME,
  createStockVolume,
  encfsAvailable,
  isMounted,
  mountStock,
  stockEncfsVersion,
  tmpDir,
  unmountStock,
  withStockMount,
} from './stock-encfs.js'

const unavailable = encfsAvailable()
if (unavailable !== null) {
  // loud: this also shows up in test/run.sh's SKIPPED list
  console.error(`\n!!! SKIPPING stock encfs helper tests: ${unavailable}\n`)
}
const skip = unavailable === null ? false : `stock encfs unavailable: ${unavailable}`

/** All regular files below `dir`, recursively (raw ciphertext view). */
function walkFiles(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...walkFiles(p))
    else if (e.isFile()) out.push(p)
  }
  return out
}

function allNames(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    out.push(e.name)
    if (e.isDirectory()) out.push(...allNames(path.join(dir, e.name)))
  }
  return out
}

const PASSWORD = 'helper test pässword'

t.test('stock encfs version', { skip }, async (t) => {
  const v = stockEncfsVersion()
  t.ok(v, 'encfs --version prints something')
  t.comment(`stock encfs: ${v}`)
})

t.test('standard volume: create, write, unmount, remount, read back', { skip }, async (t) => {
  const dir = tmpDir(t, 'standard')
  const raw = path.join(dir, 'raw')
  const mnt = path.join(dir, 'mnt')
  const marker = `DVFS-PLAINTEXT-MARKER-${randomBytes(8).toString('hex')}`
  const binary = randomBytes(5000)

  await createStockVolume(raw, mnt, PASSWORD, 'standard')
  t.ok(isMounted(mnt), 'volume is mounted after creation')
  writeFileSync(path.join(mnt, 'hello-plain.txt'), `${marker}\n`.repeat(20))
  mkdirSync(path.join(mnt, 'sub-plain'))
  writeFileSync(path.join(mnt, 'sub-plain', 'data.bin'), binary)
  await unmountStock(mnt)
  t.notOk(isMounted(mnt), 'unmounted')
  t.same(readdirSync(mnt), [], 'mount point is empty once unmounted')

  const cfgPath = path.join(raw, ENCFS_CONFIG_NAME)
  t.ok(existsSync(cfgPath), `${ENCFS_CONFIG_NAME} exists in the raw dir`)
  const cfg = readFileSync(cfgPath, 'utf8')
  t.match(cfg, /<creator>EncFS 1\.9\.\d+<\/creator>/, 'written by stock EncFS 1.9')
  t.match(cfg, /<blockSize>1024<\/blockSize>/, 'standard preset block size')
  t.match(cfg, /<blockMACBytes>0<\/blockMACBytes>/, 'standard preset has no block MAC')

  const names = allNames(raw)
  t.equal(names.filter((n) => n !== ENCFS_CONFIG_NAME).length, 3, 'raw dir holds 2 files + 1 dir')
  t.notOk(names.some((n) => /plain|hello|data/.test(n)), 'no plaintext names in the raw dir')
  const sample = binary.subarray(1000, 1032)
  for (const f of walkFiles(raw)) {
    const bytes = readFileSync(f)
    t.equal(bytes.indexOf(marker), -1, `no plaintext marker in ${path.relative(raw, f)}`)
    t.equal(bytes.indexOf(sample), -1, `no plaintext binary sample in ${path.relative(raw, f)}`)
  }

  const read = await withStockMount(raw, mnt, PASSWORD, (m) => ({
    text: readFileSync(path.join(m, 'hello-plain.txt'), 'utf8'),
    bin: readFileSync(path.join(m, 'sub-plain', 'data.bin')),
    mounted: isMounted(m),
  }))
  t.ok(read.mounted, 'mounted inside withStockMount')
  t.equal(read.text, `${marker}\n`.repeat(20), 'text file reads back')
  t.ok(read.bin.equals(binary), 'binary file reads back')
  t.notOk(isMounted(mnt), 'withStockMount unmounted afterwards')

  await t.rejects(mountStock(raw, mnt, 'wrong password'), /password|exited/i, 'wrong password is refused')
  t.notOk(isMounted(mnt), 'no mount left after a refused password')

  await t.rejects(
    withStockMount(raw, mnt, PASSWORD, () => {
      throw new Error('boom inside')
    }),
    /boom inside/,
    'errors from fn propagate',
  )
  t.notOk(isMounted(mnt), 'withStockMount unmounts even when fn throws')
})

t.test('a leftover mount on the mount point is replaced', { skip }, async (t) => {
  const dir = tmpDir(t, 'leftover')
  const raw = path.join(dir, 'raw')
  const mnt = path.join(dir, 'mnt')
  await createStockVolume(raw, mnt, PASSWORD, 'standard')
  writeFileSync(path.join(mnt, 'f'), 'x')
  // simulate a crashed test that never unmounted: mount again on top
  await mountStock(raw, mnt, PASSWORD)
  t.ok(isMounted(mnt), 'mounted again')
  t.equal(readFileSync(path.join(mnt, 'f'), 'utf8'), 'x', 'content visible')
  await unmountStock(mnt)
  t.notOk(isMounted(mnt), 'fully unmounted (no stacked mount left)')
  await unmountStock(mnt) // idempotent
})

t.test('tmpDir teardown unmounts and removes', { skip }, async (t) => {
  let dir = ''
  let mnt = ''
  await t.test('leaves a mount behind', async (t) => {
    dir = tmpDir(t, 'teardown')
    mnt = path.join(dir, 'mnt')
    await createStockVolume(path.join(dir, 'raw'), mnt, PASSWORD, 'standard')
    writeFileSync(path.join(mnt, 'left-behind'), 'data')
    t.ok(isMounted(mnt), 'mounted inside the subtest')
  })
  t.notOk(isMounted(mnt), 'teardown unmounted it')
  t.notOk(existsSync(dir), 'teardown removed the temp dir')
})

t.test('paranoia volume: create and remount', { skip }, async (t) => {
  const dir = tmpDir(t, 'paranoia')
  const raw = path.join(dir, 'raw')
  const mnt = path.join(dir, 'mnt')
  await createStockVolume(raw, mnt, PASSWORD, 'paranoia')
  const content = randomBytes(3000)
  writeFileSync(path.join(mnt, 'p.bin'), content)
  await unmountStock(mnt)
  const cfg = readFileSync(path.join(raw, ENCFS_CONFIG_NAME), 'utf8')
  t.match(cfg, /<blockMACBytes>8<\/blockMACBytes>/, 'paranoia preset has an 8-byte block MAC')
  t.match(cfg, /<externalIVChaining>1<\/externalIVChaining>/, 'paranoia preset chains file IVs to names')
  const rawFiles = walkFiles(raw).filter((f) => path.basename(f) !== ENCFS_CONFIG_NAME)
  t.equal(rawFiles.length, 1, 'one raw file')
  const rawFile = rawFiles[0]
  if (rawFile !== undefined) {
    // 8-byte file header + 3 blocks each carrying an 8-byte MAC header
    t.equal(statSync(rawFile).size, 8 + 3000 + 3 * 8, 'raw size = header + data + per-block MACs')
  }
  const back = await withStockMount(raw, mnt, PASSWORD, (m) => readFileSync(path.join(m, 'p.bin')))
  t.ok(back.equals(content), 'content reads back')
})
