/**
 * The stage record: what `dvfs run` learned about one run (its provenance with the stage identity, exit
 * status and times) and the policies that decide its commit. It is kept next to the run's session
 * (`.dvfs/sessions/<id>/stage.sealed`) until that session is committed, so a run with --defer-commit can be
 * committed later by `dvfs commit` or commitDeferredStages (deferred.ts).
 *
 * It names input and output paths and the command, so it is sealed (XChaCha20-Poly1305 under a key derived
 * from the manifest key, the session id as associated data): nothing under `.dvfs` names a file in the clear.
 */
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import sodium from 'sodium-native';
import { IntegrityError } from '../errors.js';
import { checkProvenance, type Provenance } from '../store/manifest-schema.js';
import { writeFileAtomic } from '../store/durable.js';
import { keyedHash, open, seal } from '../remote/keys.js';
import type { CommitPolicy, FailureAction } from '../profile/schema.js';
import type { Versioning } from '../versioning/context.js';

export const STAGE_RECORD_FILE = 'stage.sealed';
const LABEL = 'dvfs stage record v1';

export interface StageRecord {
  provenance: Provenance;
  commit: CommitPolicy;
  onFailure: FailureAction;
  /** Remote to push to after the commit, or null. */
  push: string | null;
  message: string;
}

function withKey<T>(v: Versioning, fn: (key: Buffer) => T): T {
  const key = keyedHash(v.keys.manifest, Buffer.from(LABEL, 'ascii'));
  try {
    return fn(key);
  } finally {
    sodium.sodium_memzero(key);
  }
}

const ad = (sessionId: string): Buffer => Buffer.from(`${LABEL}\0${sessionId}`, 'utf8');

export function hasStageRecord(sessionDir: string): boolean {
  return existsSync(join(sessionDir, STAGE_RECORD_FILE));
}

export async function saveStageRecord(v: Versioning, sessionDir: string, sessionId: string, record: StageRecord): Promise<void> {
  const sealed = withKey(v, (key) => seal(key, ad(sessionId), Buffer.from(JSON.stringify(record), 'utf8')));
  await writeFileAtomic(join(sessionDir, STAGE_RECORD_FILE), sealed, { mode: 0o600 });
}

export async function loadStageRecord(v: Versioning, sessionDir: string, sessionId: string): Promise<StageRecord> {
  const file = join(sessionDir, STAGE_RECORD_FILE);
  const sealed = await readFile(file);
  const text = withKey(v, (key) => open(key, ad(sessionId), sealed));
  if (text === null) throw new IntegrityError('the stage record does not open under this repository\'s key (damaged or not from this session)', { path: file });
  const raw = JSON.parse(text.toString('utf8')) as Partial<StageRecord>;
  return {
    provenance: checkProvenance(raw.provenance),
    commit: raw.commit ?? 'on-success',
    onFailure: raw.onFailure ?? 'keep',
    push: raw.push ?? null,
    message: raw.message ?? '',
  };
}

export async function dropStageRecord(sessionDir: string): Promise<void> {
  await rm(join(sessionDir, STAGE_RECORD_FILE), { force: true });
}
