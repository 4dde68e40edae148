/** Helpers of the load tests: the CLI run without blocking (so many commands run at once), tree listings. */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CLI_PATH, REPO_ROOT, type CliResult } from '../helpers/cli.js';

/** Runs the real CLI as a child process and resolves when it exits (like dvfs() in helpers/cli.ts). */
export function dvfsAsync(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const childEnv = { ...process.env, ...env };
    delete childEnv['DVFS_DEBUG'];
    const child = spawn(process.execPath, [CLI_PATH, ...args], { env: childEnv, cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => {
      const stdout = Buffer.concat(out);
      resolve({ status: status ?? -1, stdout, stderr, out: stdout.toString() });
    });
  });
}

/** Every regular file below `dir` (relative path → SHA-256 of its bytes), sorted by path. */
export function treeHashes(dir: string): Map<string, string> {
  const files = readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
  return new Map(files.map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]));
}
