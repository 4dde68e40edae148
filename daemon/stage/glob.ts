/**
 * `dvfs run --glob PATTERN`: the repository paths of a snapshot that a pattern matches. Patterns are
 * slash-separated; in a component `*` matches any run of characters but "/", `?` one character and `[...]` a
 * set; a whole component `**` matches any number of directories. Matching walks only the directories the
 * pattern can reach.
 */
import { DvfsError } from '../errors.js';
import type { ObjectId } from '../store/content-hash.js';
import type { SnapshotReader } from '../versioning/snapshot-walk.js';

function componentRegex(c: string): RegExp {
  let re = '';
  for (let i = 0; i < c.length; i++) {
    const ch = c[i] as string;
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = c.indexOf(']', i + 2);
      if (end < 0) throw new DvfsError('E_USAGE', `glob '${c}': "[" without "]"`);
      const body = c.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\');
      re += `[${body}]`;
      i = end;
    } else re += ch.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Splits and checks a pattern (relative, no "." or ".." components). */
export function parseGlob(pattern: string): string[] {
  const parts = pattern.split('/').filter((p) => p !== '');
  if (parts.length === 0) throw new DvfsError('E_USAGE', 'empty --glob pattern');
  if (parts.some((p) => p === '.' || p === '..')) throw new DvfsError('E_USAGE', `--glob '${pattern}' must not contain "." or ".." components`);
  parts.forEach((p) => p !== '**' && componentRegex(p));
  return parts;
}

/** Every path ('a/b/c', sorted) below tree `root` matching `pattern`. */
export async function globSnapshot(reader: SnapshotReader, root: ObjectId, pattern: string): Promise<string[]> {
  const parts = parseGlob(pattern);
  const out = new Set<string>();
  const visit = async (tree: ObjectId, base: string, rest: readonly string[]): Promise<void> => {
    const [head, ...tail] = rest;
    if (head === undefined) return;
    if (head === '**') {
      await visit(tree, base, tail);
      if (tail.length === 0) return;
      for (const e of (await reader.tree(tree)).entries) if (e.type === 'dir') await visit(e.tree, `${base}${e.name}/`, rest);
      return;
    }
    const re = componentRegex(head);
    for (const e of (await reader.tree(tree)).entries) {
      if (!re.test(e.name)) continue;
      if (tail.length === 0) out.add(`${base}${e.name}`);
      else if (e.type === 'dir') await visit(e.tree, `${base}${e.name}/`, tail);
    }
  };
  await visit(root, '', parts);
  return [...out].sort();
}
