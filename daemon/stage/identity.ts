/**
 * A stage's identity, and finding a committed stage with the same one (content-hash driven reuse).
 *
 * identity = keyed BLAKE2b-256 (the repository's content-hash key) of the canonical JSON of: the command,
 * the engine, the image and its digest, the profile's name and digest, and each declared input's path with
 * the content id of what HEAD holds there (a file's object id, a directory's tree id, null when absent).
 * Keyed like every content id, so an identity printed or stored tells nobody without the key anything about
 * the inputs' content or paths. Inputs are read from the committed snapshot (HEAD); while sessions hold
 * uncommitted changes, inputs that are files are hashed from the working tree instead (a file's id is the
 * same either way, so an unchanged file keeps its identity), directories still come from HEAD.
 */
import { lstat } from 'node:fs/promises';
import { isNodeError } from '../errors.js';
import { hashWorkingFile } from '../versioning/working-files.js';
import { canonicalJson } from '../store/canonical-json.js';
import { hashBuffer, type ObjectId } from '../store/content-hash.js';
import type { ProvenanceInput } from '../store/manifest-schema.js';
import { history } from '../store/refs.js';
import type { Versioning } from '../versioning/context.js';
import { SnapshotReader, type AnyEntry } from '../versioning/snapshot-walk.js';

export interface IdentityParts {
  command: readonly string[];
  engine: string;
  image: string | null;
  imageDigest: string | null;
  profile: string;
  profileDigest: string;
  inputs: readonly { path: string; id: string | null }[];
}

/** The id of what a snapshot entry holds (its object, tree, or keyed hash of a symlink target). */
function entryId(v: Versioning, e: AnyEntry | undefined): string | null {
  if (e === undefined) return null;
  if (e.type === 'file') return e.object;
  if (e.type === 'dir') return e.tree;
  return hashBuffer(v.keys.contentHash, Buffer.from(`symlink:${e.target}`, 'utf8'));
}

/** The content ids of `paths` in snapshot `head` (null ids for paths it does not hold, or no snapshot). */
export async function inputIds(v: Versioning, head: ObjectId | null, paths: readonly string[]): Promise<{ path: string; id: string | null }[]> {
  if (head === null) return paths.map((path) => ({ path, id: null }));
  const reader = new SnapshotReader(v.manifests);
  const snap = await v.manifests.getSnapshot(head);
  return Promise.all(paths.map(async (path) => ({ path, id: entryId(v, await reader.lookup(snap.tree, path)) })));
}

/** `ids` with each input that is a regular file in the working tree re-hashed from it (missing: null). */
export async function workingFileIds(v: Versioning, ids: readonly { path: string; id: string | null }[]): Promise<{ path: string; id: string | null }[]> {
  const out: { path: string; id: string | null }[] = [];
  for (const i of ids) {
    try {
      const loc = await v.tree.locate(`/${i.path}`);
      out.push((await lstat(loc.rawPath)).isFile() ? { path: i.path, id: (await hashWorkingFile(v, loc)).id } : i);
    } catch (e) {
      if (!(isNodeError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR'))) throw e;
      out.push({ path: i.path, id: null });
    }
  }
  return out;
}

export function stageIdentity(v: Versioning, parts: IdentityParts): ObjectId {
  const text = canonicalJson({
    kind: 'dvfs stage identity',
    v: 1,
    command: [...parts.command],
    engine: parts.engine,
    image: parts.image,
    imageDigest: parts.imageDigest,
    profile: parts.profile,
    profileDigest: parts.profileDigest,
    inputs: parts.inputs.map((i) => ({ path: i.path, id: i.id })),
  });
  return hashBuffer(v.keys.contentHash, Buffer.from(text, 'utf8'));
}

/**
 * Provenance inputs: each path with its content id, and the snapshot it was read from when HEAD holds that
 * content (`committed`: HEAD's ids; an id from the working tree that differs names no snapshot).
 */
export function provenanceInputs(head: ObjectId | null, ids: readonly { path: string; id: string | null }[], committed: readonly { path: string; id: string | null }[] = ids): ProvenanceInput[] {
  return ids.map((i, n) => ({
    path: i.path,
    ...(i.id === null ? {} : { object: i.id as ObjectId }),
    ...(head !== null && i.id !== null && committed[n]?.id === i.id ? { snapshot: head } : {}),
  }));
}

/** A committed run of a stage: the snapshot that holds it and the outputs it declared. */
export interface CommittedStage {
  snapshot: ObjectId;
  outputs: string[];
}

/**
 * Every stage identity with a successful run (or reuse) committed from `head` back, mapped to its newest
 * one. One walk of the history serves all the runs of a --glob fan-out.
 */
export async function committedStages(v: Versioning, head: ObjectId | null): Promise<Map<ObjectId, CommittedStage>> {
  const found = new Map<ObjectId, CommittedStage>();
  for await (const { id, snapshot } of history(v.manifests, head)) {
    const stage = snapshot.provenance.stage;
    if (!stage || found.has(stage.identity)) continue;
    if (stage.status === 'reused' || (stage.status === 'ran' && snapshot.provenance.exitStatus === 0)) found.set(stage.identity, { snapshot: id, outputs: stage.outputs });
  }
  return found;
}

/**
 * Whether HEAD still holds every output the committed run declared (reuse needs its outputs; a fan-out's
 * runs share output directories, so HEAD holding more than one run wrote is expected).
 */
export async function outputsPresent(v: Versioning, head: ObjectId, outputs: readonly string[]): Promise<boolean> {
  return (await inputIds(v, head, outputs)).every((o) => o.id !== null);
}
