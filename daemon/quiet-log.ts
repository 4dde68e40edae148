/**
 * What opening a tree logs (an entry a rename could not re-encode goes to `error`), and a sink that drops
 * it. One-shot processes that log nothing (CLI commands, the SLURM stage job, finish) pass {@link quietLog}
 * and so never load pino, which costs them tens of milliseconds of start-up; a daemon passes its logger.
 */
import type { Logger } from './log.js';

export type ErrorLog = Pick<Logger, 'error'>;

export const quietLog: ErrorLog = { error: () => undefined };
