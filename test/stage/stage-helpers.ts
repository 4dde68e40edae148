/** Shared by the stage tests: a repository with committed inputs, and `dvfs run --json` parsed. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { StageResult } from '../../daemon/stage/runner.js';
import type { CliResult } from '../helpers/cli.js';
import { initRepo, workspace, type Workspace } from '../helpers/mount.js';

export interface StageRepo {
  ws: Workspace;
  repo: string;
  /** Writes `files` (path → content) into the working tree with dvfs put and commits them. */
  commitFiles(files: Record<string, string>, message?: string): void;
}

export function stageRepo(t: Test, label: string, files: Record<string, string> = { 'raw/a/t1': 'alpha\n', 'raw/b/t1': 'beta\n' }): StageRepo {
  const ws = workspace(t, label);
  const repo = initRepo(ws, 'repo');
  let n = 0;
  const commitFiles = (fs: Record<string, string>, message = 'inputs'): void => {
    const src = join(ws.dir, `src${n++}`);
    for (const [p, content] of Object.entries(fs)) {
      mkdirSync(join(src, p, '..'), { recursive: true });
      writeFileSync(join(src, p), content);
    }
    for (const p of Object.keys(fs)) {
      const r = ws.cli(['put', repo, join(src, p), p]);
      if (r.status !== 0) throw new Error(`dvfs put ${p}: ${r.stderr}`);
    }
    const c = ws.cli(['commit', repo, '-m', message]);
    if (c.status !== 0) throw new Error(`dvfs commit: ${c.stderr}`);
  };
  commitFiles(files);
  return { ws, repo, commitFiles };
}

/** Parses JSON printed by the CLI; fails the test (with stdout and stderr) when it is not JSON. */
function parseJson<T>(t: Test, r: CliResult, what: string): T {
  try {
    return JSON.parse(r.out) as T;
  } catch {
    t.fail(`${what}: no JSON on stdout (exit ${r.status}): ${JSON.stringify(r.out.slice(0, 300))} ${r.stderr.trim().slice(0, 600)}`);
    throw new Error(`${what}: no JSON`);
  }
}

/** `dvfs run --json` (one run). */
export const parseRun = (t: Test, r: CliResult, what: string): StageResult => parseJson<StageResult>(t, r, what);

export interface GlobRun {
  glob: string;
  ran: number;
  reused: number;
  failed: number;
  runs: StageResult[];
}

/** `dvfs run --glob ... --json`. */
export const parseGlobRun = (t: Test, r: CliResult, what: string): GlobRun => parseJson<GlobRun>(t, r, what);

/** `dvfs show REPO REF --json`, parsed. */
export function showJson(ws: Workspace, repo: string, ref: string): { id: string; message: string; provenance: import('../../daemon/store/manifest-schema.js').Provenance } {
  const r = ws.cli(['show', repo, ref, '--json']);
  if (r.status !== 0) throw new Error(`dvfs show ${ref}: ${r.stderr}`);
  return JSON.parse(r.out) as { id: string; message: string; provenance: import('../../daemon/store/manifest-schema.js').Provenance };
}
