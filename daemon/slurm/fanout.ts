/**
 * `dvfs slurm submit --glob PATTERN`: one stage job per match. At submit time the pattern is matched against
 * HEAD (as `dvfs run --glob` does on the node), and a match is left out when the stage already has a
 * committed result for it: the stage identity `dvfs run` computes (command, engine, image and its digest,
 * profile and its digest, input contents) is found in history and HEAD still holds its outputs. Each job
 * gets the match as an exact pattern, so on the node the stage runner fans out to that one path, with the
 * same placeholders (`{input}`), environment (DVFS_INPUT) and reuse check as `dvfs run --glob`.
 *
 * A match whose command or inputs use `{run}` or `{job_id}` (known only on the node) cannot have a result
 * known in advance: it is always submitted.
 */
import { listSessions, newSessionId } from '../journal/sessions.js';
import { DvfsError } from '../errors.js';
import { quietLog } from '../quiet-log.js';
import type { Credential } from '../keys/unlock.js';
import { loadProfile } from '../profile/load.js';
import { expandPlaceholders, hasPlaceholder, type PlaceholderValues } from '../profile/placeholders.js';
import type { EngineName } from '../profile/schema.js';
import { openTree } from '../repo/open-tree.js';
import { locateRepository } from '../repo/repository.js';
import { readHead } from '../store/refs.js';
import { openVersioning, requireVersionedRepo } from '../versioning/context.js';
import { SnapshotReader } from '../versioning/snapshot-walk.js';
import { globSnapshot } from '../stage/glob.js';
import { committedStages, inputIds, outputsPresent, stageIdentity, workingFileIds } from '../stage/identity.js';
import { imageDigest } from '../stage/image-digest.js';
import { normaliseOutput } from './conflicts.js';

export interface FanoutRequest {
  repo: string;
  command: string[];
  profile: string | null;
  engine: EngineName | null;
  image: string | null;
  inputs: string[];
  /** --output as given (replaces the profile's layout.writes). */
  outputs: string[];
  glob: string;
}

export interface GlobMatch {
  /** The matched repository path. */
  path: string;
  /** The pattern that matches this path alone (what the match's job runs with). */
  pattern: string;
  /** The paths the match's job owns: the outputs with `{stage}` and `{input}` filled in. */
  outputs: string[];
  /** The snapshot holding the stage's committed result for this match, or null when it must run. */
  committed: string | null;
}

/** A glob pattern matching exactly `path` (its metacharacters each made a one-character set). */
export function exactPattern(path: string): string {
  return path.replace(/[*?[]/g, (c) => `[${c}]`);
}

/**
 * An owned output of one match: placeholders known at submit time filled in, and a path that still depends
 * on the node (`{run}`, `{job_id}`) cut back to the directory above it, so it owns at least that much.
 */
function matchOutput(output: string, values: PlaceholderValues): string {
  const parts = output.split('/');
  const known = parts.findIndex((p) => /\{(run|job_id)\}/.test(p));
  const kept = known < 0 ? parts : parts.slice(0, known);
  return normaliseOutput(expandPlaceholders(kept.join('/'), values, 'an output'));
}

function usesNodeOnlyValues(texts: readonly string[]): boolean {
  return texts.some((t) => hasPlaceholder(t, 'run') || hasPlaceholder(t, 'job_id'));
}

export async function planFanout(req: FanoutRequest, credential: Credential): Promise<GlobMatch[]> {
  const repo = await locateRepository(req.repo);
  requireVersionedRepo(repo);
  const overrides = {
    container: { ...(req.engine === null ? {} : { engine: req.engine }), ...(req.image === null ? {} : { image: req.image }) },
    layout: { ...(req.inputs.length > 0 ? { reads: req.inputs } : {}), ...(req.outputs.length > 0 ? { writes: req.outputs } : {}) },
  };
  const { profile, digest } = await loadProfile(req.profile ?? undefined, { repoRoot: repo.root, overrides });
  const head = await readHead(repo.root);
  if (head === null) throw new DvfsError('E_NOTFOUND', 'no snapshot yet: --glob matches committed paths', { path: repo.root, hint: 'commit the inputs first (dvfs commit REPO)' });
  const digestOfImage = await imageDigest(profile.container.engine, profile.container.image, profile.container.engineArgs);
  const tree = await openTree(repo, credential, quietLog);
  const v = openVersioning(repo, tree);
  try {
    const matches = await globSnapshot(new SnapshotReader(v.manifests), (await v.manifests.getSnapshot(head)).tree, req.glob);
    const committed = await committedStages(v, head);
    const uncommitted = (await listSessions(repo.root)).some((s) => s.info.state !== 'committed');
    const nodeOnly = usesNodeOnlyValues([...req.command, ...profile.layout.reads]);
    const plan: GlobMatch[] = [];
    for (const path of matches) {
      const values: PlaceholderValues = { stage: profile.name, input: path };
      const outputs = [...new Set(profile.layout.writes.map((o) => matchOutput(o, values)))];
      let done: string | null = null;
      if (!nodeOnly) {
        // as the stage runner computes it for this match (daemon/stage/runner.ts)
        const withRun = { ...values, run: newSessionId() };
        const inputs = [...new Set([...profile.layout.reads.map((p, i) => normaliseOutput(expandPlaceholders(p, withRun, `layout.reads[${i}]`))), path])];
        const command = req.command.map((a, i) => expandPlaceholders(a, withRun, `command argument ${i + 1}`));
        const committedIds = await inputIds(v, head, inputs);
        const ids = uncommitted ? await workingFileIds(v, committedIds) : committedIds;
        const identity = stageIdentity(v, { command, engine: profile.container.engine, image: profile.container.image, imageDigest: digestOfImage, profile: profile.name, profileDigest: digest, inputs: ids });
        const found = committed.get(identity);
        if (found !== undefined && (await outputsPresent(v, head, found.outputs))) done = found.snapshot;
      }
      plan.push({ path, pattern: exactPattern(path), outputs, committed: done });
    }
    return plan;
  } finally {
    v.close();
    tree.dispose?.();
  }
}
