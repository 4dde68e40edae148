/**
 * How to carry a journal summary over to a path-keyed copy of the start tree (the repository index, a
 * snapshot being built): an ordered list of subtree moves, subtree removals and entry puts that turns the
 * start tree into the tree the records describe.
 *
 * Summary entries name two trees: `removed` paths and `origin`s are paths of the start tree, the other
 * entries' paths are paths of the tree now. Applying them one by one in place would clash (a directory
 * renamed and then a file below it removed names the file by its old path; `mv a t; mv b a; mv t b` swaps),
 * so the plan first moves every renamed origin aside to a staging path (deepest first, so a moved-out child
 * leaves its parent before the parent moves), then removes what is gone (translated into the staging area
 * where it went along), then moves the staged subtrees to their new paths (parents first), and last puts
 * the entries whose content or metadata is new.
 *
 *   for (const step of applyPlan(summary)) {
 *     if (step.op === 'move') await index.rename(step.from, step.to);        // replaces what is at `to`
 *     else if (step.op === 'remove') await index.remove(step.path).catch(ignoreNotFound);
 *     else await index.batch([{ type: 'put', path: step.entry.path, entry: await entryFor(step.entry) }]);
 *   }
 *   await index.setSnapshot(newSnapshotId);
 *
 * A `move` whose source is not in the tree (a path the journal assumed but the tree lacks) can be skipped.
 */
import type { JournalSummary, SummaryEntry } from './journal.js';

export type ApplyStep = { op: 'move'; from: string; to: string } | { op: 'remove'; path: string } | { op: 'put'; entry: SummaryEntry };

/** The default staging directory: a top-level name no FUSE path can have (it starts with \x01). */
export const STAGE_DIR = '/\x01dvfs-stage';

const depth = (p: string): number => (p === '/' ? 0 : p.split('/').length - 1);

const under = (p: string, dir: string): boolean => p.startsWith(dir === '/' ? '/' : dir + '/');

export function applyPlan(summary: JournalSummary, stageDir = STAGE_DIR): ApplyStep[] {
  const steps: ApplyStep[] = [];
  const renamed = summary.entries.filter((e) => e.status === 'renamed' && e.origin !== null);
  // 1. Stage renamed origins, deepest first.
  const staged = renamed
    .map((e, i) => ({ entry: e, origin: e.origin as string, stage: `${stageDir}/${i}` }))
    .sort((a, b) => depth(b.origin) - depth(a.origin));
  for (const s of staged) steps.push({ op: 'move', from: s.origin, to: s.stage });
  // 2. Remove what is gone, where it is now: under the deepest staged origin containing it, or in place.
  const translate = (p: string): string => {
    for (const s of staged) if (under(p, s.origin)) return s.stage + p.slice(s.origin.length);
    return p;
  };
  for (const e of summary.entries) {
    if (e.status === 'removed' || e.replaced) steps.push({ op: 'remove', path: translate(e.path) });
  }
  // 3. Move staged subtrees to their new paths, parents first.
  for (const s of [...staged].sort((a, b) => depth(a.entry.path) - depth(b.entry.path))) steps.push({ op: 'move', from: s.stage, to: s.entry.path });
  // 4. New content and metadata.
  for (const e of summary.entries) {
    if (e.status === 'removed') continue;
    if (e.status === 'renamed' && !e.content && !e.meta) continue;
    steps.push({ op: 'put', entry: e });
  }
  return steps;
}
