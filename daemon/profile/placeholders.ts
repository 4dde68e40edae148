/**
 * Placeholders in profile paths and commands: `{stage}` (the profile's name), `{run}` (this run's id),
 * `{job_id}` (SLURM_JOB_ID, or "local" outside SLURM) and `{input}` (the path a `--glob` matched).
 */
import { DvfsError } from '../errors.js';

export const PLACEHOLDERS = ['stage', 'run', 'job_id', 'input'] as const;
export type PlaceholderName = (typeof PLACEHOLDERS)[number];
export type PlaceholderValues = Partial<Record<PlaceholderName, string>>;

/** `text` with every known placeholder replaced; a placeholder without a value is an error naming it. */
export function expandPlaceholders(text: string, values: PlaceholderValues, where: string): string {
  return text.replace(/\{([a-z_]+)\}/g, (whole, name: string) => {
    if (!(PLACEHOLDERS as readonly string[]).includes(name)) return whole;
    const value = values[name as PlaceholderName];
    if (value === undefined) {
      throw new DvfsError('E_USAGE', `${where} uses {${name}}, which has no value here`, {
        hint: name === 'input' ? '{input} is the path a --glob matched: run with --glob PATTERN' : `give {${name}} a value`,
      });
    }
    return value;
  });
}

/** Whether `text` mentions a placeholder. */
export function hasPlaceholder(text: string, name: PlaceholderName): boolean {
  return text.includes(`{${name}}`);
}
