/**
 * Access to the committed stock-EncFS known-answer fixtures in
 * test/fixtures/encfs (made by make-fixtures.sh with stock encfs 1.9.5).
 *
 * Always work on a copy ({@link copyEncfsFixture}): git cannot store the
 * volumes' empty directories or exact permissions, so the copy restores them
 * from the manifest, and tests can then mount or modify it freely.
 */
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export type FixturePreset = 'standard' | 'paranoia'
export const FIXTURE_PRESETS: readonly FixturePreset[] = ['standard', 'paranoia']

export interface ManifestEntry {
  /** Plaintext path relative to the volume root, '/'-separated. */
  path: string
  type: 'file' | 'dir' | 'symlink'
  /** st_size as seen through the mount (absent for directories). */
  size?: number
  /** Permission bits as an octal string, e.g. "0644". */
  mode: string
  /** Hex SHA-256 of the plaintext (files only). */
  sha256?: string
  /** Symlink target as seen through the mount (symlinks only). */
  target?: string
  /** Ciphertext path relative to the raw directory. */
  raw: string
  /** st_size of the ciphertext entry (absent for directories). */
  rawSize?: number
}

export interface FixtureManifest {
  preset: FixturePreset
  stockEncfs: string | null
  passwordFile: string
  blockSize: number
  blockMACBytes: number
  plainBlockSize: number
  entries: ManifestEntry[]
}

/** The repository root (the directory holding package.json and test/). */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'test', 'fixtures'))) return dir
    const up = path.dirname(dir)
    if (up === dir) throw new Error('cannot locate the dvfs repository root from ' + import.meta.url)
    dir = up
  }
}

export function encfsFixturesDir(): string {
  return path.join(repoRoot(), 'test', 'fixtures', 'encfs')
}

/** The fixture volumes' password (test/fixtures/encfs/password.txt). */
export function fixturePassword(): string {
  return readFileSync(path.join(encfsFixturesDir(), 'password.txt'), 'utf8')
}

export function readManifest(preset: FixturePreset): FixtureManifest {
  const p = path.join(encfsFixturesDir(), `${preset}.manifest.json`)
  return JSON.parse(readFileSync(p, 'utf8')) as FixtureManifest
}

/**
 * Copy the raw (ciphertext) fixture volume to `destDir` (created if needed;
 * should be empty), restoring empty directories and permission bits from the
 * manifest. Returns `destDir`.
 */
export function copyEncfsFixture(preset: FixturePreset, destDir: string): string {
  const src = path.join(encfsFixturesDir(), preset)
  if (!existsSync(path.join(src, '.encfs6.xml'))) throw new Error(`fixture volume ${src} is missing`)
  mkdirSync(destDir, { recursive: true })
  cpSync(src, destDir, { recursive: true, verbatimSymlinks: true, errorOnExist: true, force: false })
  const manifest = readManifest(preset)
  for (const e of manifest.entries) {
    const p = path.join(destDir, ...e.raw.split('/'))
    if (e.type === 'dir') mkdirSync(p, { recursive: true })
  }
  for (const e of manifest.entries) {
    if (e.type === 'symlink') continue
    chmodSync(path.join(destDir, ...e.raw.split('/')), parseInt(e.mode, 8))
  }
  return destDir
}
