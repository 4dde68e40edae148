/** What SLURM's environment says about the job a stage or commit runs in (SLURM_JOB_ID, array task). */
import type { Provenance } from '../store/manifest-schema.js';

/** jobId (the array's job id for array tasks) and arrayIndex, as far as the environment gives them. */
export function slurmProvenance(env: NodeJS.ProcessEnv = process.env): Pick<Provenance, 'jobId' | 'arrayIndex'> {
  const p: Pick<Provenance, 'jobId' | 'arrayIndex'> = {};
  const job = env['SLURM_ARRAY_JOB_ID'] ?? env['SLURM_JOB_ID'];
  if (job) p.jobId = job;
  const task = Number(env['SLURM_ARRAY_TASK_ID']);
  if (env['SLURM_ARRAY_TASK_ID'] && Number.isSafeInteger(task) && task >= 0) p.arrayIndex = task;
  return p;
}
