/** The shape every CLI command has: declared options (for parsing and help) and a run function. */
import type { OptionSpec, ParsedArgs } from './args.js';

export interface CommandContext {
  args: ParsedArgs;
  json: boolean;
  /** Human-readable progress and notes go to stderr, so stdout stays clean for data and JSON. */
  note(message: string): void;
  out: NodeJS.WritableStream;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Longer help: what the command does, examples. */
  details?: string;
  options: OptionSpec[];
  run(ctx: CommandContext): Promise<number | void>;
}
