/** Runs the real dvfs CLI (cli/dvfs.js → dist/cli/main.js) as a child process, as a user would. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI_PATH = fileURLToPath(new URL('../../../cli/dvfs.js', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface CliResult {
  status: number;
  stdout: Buffer;
  stderr: string;
  /** stdout as text. */
  out: string;
}

export function dvfs(args: string[], options: { env?: NodeJS.ProcessEnv; input?: Buffer; cwd?: string } = {}): CliResult {
  const env = { ...process.env, ...options.env };
  delete env['DVFS_DEBUG'];
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], {
    env,
    input: options.input ?? Buffer.alloc(0),
    cwd: options.cwd ?? REPO_ROOT,
    maxBuffer: 1 << 30,
  });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString(), out: r.stdout.toString() };
}
