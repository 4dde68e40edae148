/**
 * YAML text to a value that can say where each key path is (file:line:column), for profile problems. Its
 * own module: the yaml package loads only when a profile file is actually parsed (see load.ts's cache).
 */
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import { DvfsError } from '../errors.js';

/** A parsed YAML file that can say where a key path is. */
export interface YamlSource {
  file: string;
  value: unknown;
  /** "FILE:LINE:COL" of the node at `path` (or, unless `exact`, of its nearest ancestor), or null. */
  locate(path: (string | number)[], exact?: boolean): string | null;
}

/** Parses YAML text; syntax errors throw E_CONFIG naming file:line:column. */
export function parseYaml(text: string, file: string): YamlSource {
  const lines = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): string => {
    const p = lines.linePos(offset);
    return `${file}:${p.line}:${p.col}`;
  };
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const where = e ? at(e.pos[0]) : file;
    const message = (e?.message ?? 'invalid YAML').split('\n')[0] ?? 'invalid YAML';
    throw new DvfsError('E_CONFIG', `bad YAML: ${message}${doc.errors.length > 1 ? ` (and ${doc.errors.length - 1} more)` : ''}`, { path: where, hint: 'fix the YAML syntax at that line' });
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 }) as unknown;
  } catch (e) {
    // An alias to no anchor, or too many aliases (a "billion laughs" document): the yaml package throws here.
    throw new DvfsError('E_CONFIG', `bad YAML: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`, { path: file, hint: 'define every *alias with an &anchor before it, and do not nest aliases deeply' });
  }
  return {
    file,
    value,
    locate(path, exact = false) {
      for (let n = path.length; n >= (exact ? path.length : 0); n--) {
        const node: unknown = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
        if (isNode(node) && node.range) return at(node.range[0]);
      }
      return null;
    },
  };
}
