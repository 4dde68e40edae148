/**
 * Command-line parsing: `--name value`, `--name=value`, boolean flags, repeatable options, `--` to end
 * options, and help text generated from the same declarations.
 */
import { DvfsError } from '../daemon/errors.js';

export interface OptionSpec {
  name: string;
  /** 'boolean' options take no value. */
  type: 'string' | 'boolean';
  description: string;
  /** Placeholder shown in help, e.g. FILE. */
  value?: string;
  repeatable?: boolean;
  /** Environment variable consulted when the option is absent. */
  env?: string;
  short?: string;
  choices?: readonly string[];
}

export interface ParsedArgs {
  positionals: string[];
  /** Everything after `--`. */
  rest: string[];
  strings: Map<string, string[]>;
  flags: Set<string>;
}

export const COMMON_OPTIONS: OptionSpec[] = [
  { name: 'help', short: 'h', type: 'boolean', description: 'show this help' },
  { name: 'json', type: 'boolean', description: 'print machine-readable JSON' },
];

export function parseArgs(argv: string[], specs: OptionSpec[]): ParsedArgs {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short as string, s]));
  const out: ParsedArgs = { positionals: [], rest: [], strings: new Map(), flags: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      out.rest = argv.slice(i + 1);
      break;
    }
    let spec: OptionSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
      spec = byName.get(name);
      if (!spec) throw new DvfsError('E_USAGE', `unknown option --${name}`, { hint: 'see --help' });
    } else if (arg.startsWith('-') && arg.length === 2) {
      spec = byShort.get(arg.slice(1));
      if (!spec) throw new DvfsError('E_USAGE', `unknown option ${arg}`, { hint: 'see --help' });
    } else {
      out.positionals.push(arg);
      continue;
    }
    if (spec.type === 'boolean') {
      if (inline !== undefined) throw new DvfsError('E_USAGE', `option --${spec.name} takes no value`);
      out.flags.add(spec.name);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new DvfsError('E_USAGE', `option --${spec.name} needs a value (${spec.value ?? 'VALUE'})`);
    }
    if (spec.choices && !spec.choices.includes(value)) {
      throw new DvfsError('E_USAGE', `--${spec.name} must be one of ${spec.choices.join(', ')} (got '${value}')`);
    }
    const list = out.strings.get(spec.name) ?? [];
    if (list.length > 0 && !spec.repeatable) throw new DvfsError('E_USAGE', `option --${spec.name} given twice`);
    list.push(value);
    out.strings.set(spec.name, list);
  }
  for (const spec of specs) {
    if (spec.env && !out.strings.has(spec.name) && process.env[spec.env]) {
      out.strings.set(spec.name, [process.env[spec.env] as string]);
    }
  }
  return out;
}

export function optionString(args: ParsedArgs, name: string): string | undefined {
  return args.strings.get(name)?.[0];
}

export function optionInt(args: ParsedArgs, name: string): number | undefined {
  const v = optionString(args, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new DvfsError('E_USAGE', `--${name} must be a whole number (got '${v}')`);
  return Number(v);
}

export function formatOptions(specs: OptionSpec[]): string {
  const rows = specs.map((s) => {
    const flag = `${s.short ? `-${s.short}, ` : '    '}--${s.name}${s.type === 'string' ? ` ${s.value ?? 'VALUE'}` : ''}`;
    const extra = [s.choices ? `one of: ${s.choices.join(', ')}` : '', s.env ? `env ${s.env}` : '', s.repeatable ? 'repeatable' : '']
      .filter(Boolean)
      .join('; ');
    return [flag, extra ? `${s.description} (${extra})` : s.description] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  return rows.map(([f, d]) => `  ${f.padEnd(width)}${d}`).join('\n');
}
