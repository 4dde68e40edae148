/**
 * Logging: pino JSON lines, to a file for a daemon (mode 0600) or pretty on a terminal. Callers log paths,
 * errnos and sizes — never plaintext data or key material.
 */
import { openSync } from 'node:fs';
import pino, { type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  /** Append JSON lines to this file (created 0600). */
  file?: string;
  /** Pretty, human-readable output on stdout (only when it is a TTY). */
  pretty?: boolean;
  level?: string;
  name?: string;
}

export function createLogger(options: LogOptions = {}): Logger {
  const base = { name: options.name ?? 'dvfs', level: options.level ?? process.env['DVFS_LOG_LEVEL'] ?? 'info' };
  if (options.pretty && process.stdout.isTTY) {
    return pino(base, pino.transport({ target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } }));
  }
  if (options.file) {
    const fd = openSync(options.file, 'a', 0o600);
    return pino(base, pino.destination({ fd, sync: false }));
  }
  return pino(base, pino.destination({ fd: 2, sync: true }));
}

/** A logger that drops everything (library use, tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
