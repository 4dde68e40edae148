/** What the key tests share: a workspace with Alice (password holder + identity) and Bob (identity only). */
import type { Test } from 'tap';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dvfs, type CliResult } from '../helpers/cli.js';

export interface KeyWorkspace {
  dir: string;
  pwFile: string;
  /** Runs dvfs with the password (Alice as the password holder). */
  withPassword(args: string[], extra?: NodeJS.ProcessEnv): CliResult;
  /** Runs dvfs as the holder of `identity` only: no password anywhere in the environment. */
  as(identity: string, args: string[], extra?: NodeJS.ProcessEnv): CliResult;
}

/** Argon2id at its minimum cost for identities and keyring roots (tests only; the default is interactive). */
export const FAST_KDF = { DVFS_KEY_KDF: '1:8192' };

export async function keyWorkspace(t: Test, label: string): Promise<KeyWorkspace> {
  const dir = await mkdtemp(join(tmpdir(), `dvfs-keys-${label}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pwFile = join(dir, 'password');
  await writeFile(pwFile, 'the repository password\n', { mode: 0o600 });
  const base = { ...FAST_KDF, DVFS_NO_PROGRESS: '1', XDG_CONFIG_HOME: join(dir, 'config'), DVFS_PASSWORD_FILE: '', DVFS_IDENTITY: '' };
  return {
    dir,
    pwFile,
    withPassword: (args, extra = {}) => dvfs(args, { env: { ...base, DVFS_PASSWORD_FILE: pwFile, ...extra } }),
    as: (identity, args, extra = {}) => dvfs(args, { env: { ...base, DVFS_IDENTITY: identity, ...extra } }),
  };
}

export function ok(t: Test, r: CliResult, what: string): CliResult {
  t.equal(r.status, 0, `${what}${r.status === 0 ? '' : ` (${r.stderr.trim().slice(0, 500)})`}`);
  return r;
}

export function fails(t: Test, r: CliResult, pattern: RegExp, what: string): CliResult {
  t.not(r.status, 0, `${what}: refused`);
  t.match(r.stderr, pattern, `${what}: ${r.stderr.trim().slice(0, 300)}`);
  t.ok(r.stderr.split('\n').some((line) => /^dvfs: /.test(line) && pattern.test(line)), `${what}: the error is one line`);
  return r;
}

/** Every regular file below `dir` (recursive). */
export async function filesBelow(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true, recursive: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** Files below `dir` whose bytes contain `secret` raw, in hex or in base64/base64url. */
export async function filesHolding(dir: string, secret: Buffer): Promise<string[]> {
  const needles = [secret, Buffer.from(secret.toString('hex')), Buffer.from(secret.toString('base64')), Buffer.from(secret.toString('base64url'))];
  const hits: string[] = [];
  for (const f of await filesBelow(dir)) {
    const data = await readFile(f).catch(() => Buffer.alloc(0));
    if (needles.some((n) => data.includes(n))) hits.push(f);
  }
  return hits;
}

/** The 32-byte seed in an (unprotected) identity file. */
export async function identitySeed(path: string): Promise<Buffer> {
  const doc = JSON.parse(await readFile(path, 'utf8')) as { seed: string };
  return Buffer.from(doc.seed, 'base64');
}
