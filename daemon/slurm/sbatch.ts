/**
 * The two batch jobs of a stage, as sbatch arguments and script text (the script goes to sbatch on stdin):
 *
 * - the stage job runs `dvfs slurm stage REPO --entry E` on the node (mount, run, unmount, record), with the
 *   resources of the profile's `slurm:` section / the command line, `--comment dvfs:E:REPO` so a site
 *   epilog finds the entry, and `afterok` + `--kill-on-invalid-dep=yes` on the finalize jobs of the stages
 *   it follows (a failed predecessor cancels it instead of leaving it pending forever);
 * - the finalize job (`--dependency=afterany:<stage>`) runs `dvfs slurm finish REPO --entry E`, which
 *   commits per policy and records the final state; it exits non-zero unless the stage completed, which is
 *   what makes the followers' afterok fail.
 *
 * Both scripts name node and the CLI by absolute path: SLURM jobs and hooks may run with a minimal PATH.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { logsDir, type JobEntry } from './registry.js';

/** The `slurm:` part of a mount profile, or the same given on the command line. */
export interface SlurmResources {
  partition?: string;
  nodes?: string;
  ntasks?: string;
  time?: string;
  /** Further sbatch arguments, passed through as they are (`--mem=4G`, `--gres=gpu:1`...). */
  extra?: string[];
}

export const DVFS_CLI = fileURLToPath(new URL('../../../cli/dvfs.js', import.meta.url));

/** The comment that ties a job to its entry: `dvfs:<entry>:<repo>` (no secrets: every user can read it). */
export function jobComment(entry: string, repo: string): string {
  return `dvfs:${entry}:${repo}`;
}

/** Entry and repository of a job comment made by {@link jobComment}, or null for other jobs. */
export function parseJobComment(comment: string | undefined): { entry: string; repo: string } | null {
  const m = /^dvfs:([0-9A-Za-z-]+):(\/.*)$/.exec(comment?.trim() ?? '');
  return m?.[1] !== undefined && m[2] !== undefined ? { entry: m[1], repo: m[2] } : null;
}

/** POSIX shell single-quoting. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function resourceArgs(r: SlurmResources): string[] {
  const args: string[] = [];
  if (r.partition !== undefined) args.push(`--partition=${r.partition}`);
  if (r.nodes !== undefined) args.push(`--nodes=${r.nodes}`);
  if (r.ntasks !== undefined) args.push(`--ntasks=${r.ntasks}`);
  if (r.time !== undefined) args.push(`--time=${r.time}`);
  return args;
}

function script(description: string, argv: string[]): string {
  return ['#!/bin/sh', `# ${description} (written by dvfs slurm submit)`, `exec ${argv.map(shellQuote).join(' ')}`, ''].join('\n');
}

export interface BatchJob {
  args: string[];
  script: string;
}

/** Stage names become job names: `dvfs-<stage>`. */
function jobName(prefix: string, stage: string): string {
  return `${prefix}${stage.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 100)}`;
}

export function stageJob(entry: JobEntry, resources: SlurmResources, afterFinalizeIds: readonly string[]): BatchJob {
  // --no-requeue: a stage hit by a node failure ends NODE_FAIL and its finalize job settles its session per
  // policy; a requeued one would run again over the same run record while its first session was left behind.
  const args = ['--parsable', `--job-name=${jobName('dvfs-', entry.stage)}`, `--comment=${jobComment(entry.entry, entry.repo)}`, '--no-requeue', ...resourceArgs(resources)];
  if (entry.array !== null) args.push(`--array=${entry.array}`);
  if (afterFinalizeIds.length > 0) args.push(`--dependency=afterok:${afterFinalizeIds.join(':')}`, '--kill-on-invalid-dep=yes');
  args.push(...(resources.extra ?? []));
  return { args, script: script(`dvfs stage job: ${entry.stage}`, [process.execPath, DVFS_CLI, 'slurm', 'stage', entry.repo, '--entry', entry.entry]) };
}

/** The option that names how a job unlocks: its password file or its identity file. */
export function unlockArgs(entry: Pick<JobEntry, 'passwordFile' | 'identityFile'>): string[] {
  if (entry.passwordFile !== null) return ['--password-file', entry.passwordFile];
  if (entry.identityFile !== null) return ['--identity', entry.identityFile];
  return [];
}

export function finalizeJob(entry: JobEntry, resources: SlurmResources, stageJobId: string): BatchJob {
  const args = [
    '--parsable',
    `--job-name=${jobName('dvfs-finish-', entry.stage)}`,
    `--dependency=afterany:${stageJobId}`,
    '--ntasks=1',
    `--output=${join(logsDir(entry.repo), 'finish-%j.out')}`,
  ];
  if (resources.partition !== undefined) args.push(`--partition=${resources.partition}`);
  return {
    args,
    script: script(`dvfs finalize job of ${entry.stage}`, [process.execPath, DVFS_CLI, 'slurm', 'finish', entry.repo, '--entry', entry.entry, '--stage-job', stageJobId, ...unlockArgs(entry)]),
  };
}
