/**
 * Errors that dvfs reports to people. Every one carries a stable code, the file it concerns (when there is
 * one) and, where we know it, a hint saying how to fix the problem. The CLI prints them as one line.
 */
export type DvfsErrorCode =
  | 'E_USAGE'
  | 'E_PASSWORD'
  | 'E_CONFIG'
  | 'E_UNSUPPORTED'
  | 'E_INTEGRITY'
  | 'E_NAME'
  | 'E_NAMETOOLONG'
  | 'E_NOTFOUND'
  | 'E_EXISTS'
  | 'E_NOTDIR'
  | 'E_ISDIR'
  | 'E_BUSY'
  | 'E_CONFLICT'
  | 'E_IO';

export interface DvfsErrorOptions {
  path?: string;
  hint?: string;
  cause?: unknown;
}

export class DvfsError extends Error {
  readonly code: DvfsErrorCode;
  readonly path: string | undefined;
  readonly hint: string | undefined;

  constructor(code: DvfsErrorCode, message: string, options: DvfsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DvfsError';
    this.code = code;
    this.path = options.path;
    this.hint = options.hint;
  }

  /** One line for a terminal: "<path>: <message> (<hint>)". */
  oneLine(): string {
    const where = this.path === undefined ? '' : `${this.path}: `;
    const hint = this.hint === undefined ? '' : ` (${this.hint})`;
    return `${where}${this.message}${hint}`;
  }
}

/** A block whose authentication failed or whose ciphertext cannot be what the format produces. */
export class IntegrityError extends DvfsError {
  readonly block: number | undefined;
  constructor(message: string, options: DvfsErrorOptions & { block?: number } = {}) {
    super('E_INTEGRITY', message, options);
    this.name = 'IntegrityError';
    this.block = options.block;
  }
}

export function isNodeError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string';
}
