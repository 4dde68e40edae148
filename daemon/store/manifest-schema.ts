/**
 * What trees and snapshots are, how they are checked, and their canonical plaintext.
 *
 * Everything read back from a repository is hostile until checked: the checkers below accept exactly the
 * shapes dvfs writes (no unknown fields, names that are single path components, entries sorted bytewise and
 * unique, sizes/modes/times in range, lengths bounded) and throw SchemaError otherwise. The store turns that
 * into IntegrityError on reading and into E_USAGE on writing.
 *
 * Plaintext = canonicalJson({ kind, v: 1, ...fields }) (see canonical-json.ts).
 */
import { DvfsError } from '../errors.js';
import { isObjectId, type ObjectId } from './content-hash.js';
import { canonicalJson, type JsonObject, type JsonValue } from './canonical-json.js';

export const MANIFEST_FORMAT_VERSION = 1;
export type ManifestKind = 'tree' | 'snapshot';

export interface FileEntry {
  type: 'file';
  name: string;
  /** Permission bits (0..0o7777); the type is `type`. */
  mode: number;
  /** Plaintext size in bytes. */
  size: number;
  mtimeMs: number;
  object: ObjectId;
}
export interface DirEntry {
  type: 'dir';
  name: string;
  mode: number;
  mtimeMs: number;
  tree: ObjectId;
}
export interface SymlinkEntry {
  type: 'symlink';
  name: string;
  mode: number;
  mtimeMs: number;
  target: string;
}
export type TreeEntry = FileEntry | DirEntry | SymlinkEntry;

/** One directory: entries sorted by the UTF-8 bytes of their names, names unique. */
export interface Tree {
  entries: TreeEntry[];
}

export interface ProvenanceInput {
  path: string;
  snapshot?: ObjectId;
  object?: ObjectId;
}

export const STAGE_STATUSES = ['ran', 'failed', 'reused'] as const;
export type StageStatus = (typeof STAGE_STATUSES)[number];

/** What `dvfs run` adds to a stage's provenance (daemon/stage/). */
export interface StageProvenance {
  /** The stage identity: keyed hash of command, image digest, profile and input content ids. */
  identity: ObjectId;
  status: StageStatus;
  /** Container engine (docker, podman, bubblewrap, sarus, apptainer, none). */
  engine: string;
  /** Runs of the command (1 + retries used). */
  attempts: number;
  /** Declared outputs (repository paths the stage owns). */
  outputs: string[];
  /** SHA-256 of the merged profile. */
  profileDigest: string;
  /** The --glob pattern this run was one match of. */
  glob?: string;
  /** Why the stage failed when its command did not say (daemon died, engine missing...). */
  error?: string;
}

/** One task of an array job committed together with its siblings (`tasks` of a Provenance). */
export interface TaskProvenance {
  arrayIndex: number;
  status?: StageStatus;
  exitStatus?: number;
  /** The session the task's writes were recorded in. */
  session?: string;
}

/** How a snapshot came about (a workflow stage run, a container image...). All optional. */
export interface Provenance {
  command?: string[];
  exitStatus?: number;
  jobId?: string;
  arrayIndex?: number;
  image?: string;
  imageDigest?: string;
  profile?: string;
  inputs?: ProvenanceInput[];
  host?: string;
  startedAt?: string;
  finishedAt?: string;
  reusedFrom?: ObjectId;
  stage?: StageProvenance;
  /** Array jobs: every task committed in this snapshot, with how it ended. */
  tasks?: TaskProvenance[];
}

export interface SessionMark {
  id: string;
  seq: number;
  /** When the session began and (if it had) ended: sessions whose lifetimes overlap can conflict. */
  startedAt: string;
  finishedAt?: string;
}

export interface SnapshotStats {
  files: number;
  bytes: number;
  added: number;
  changed: number;
  removed: number;
  bytesHashed: number;
}

export interface Snapshot {
  tree: ObjectId;
  /** First parent = the previous snapshot of the same line of work. */
  parents: ObjectId[];
  message: string;
  /** ISO 8601. */
  time: string;
  author: string;
  session?: string;
  /** The session journals merged into this snapshot, each up to record `seq` (crash recovery marks by it). */
  sessions?: SessionMark[];
  provenance: Provenance;
  stats: SnapshotStats;
}

/** Limits on what a manifest may hold (beyond them it is refused as corrupt or hostile). */
export const LIMITS = {
  nameBytes: 255,
  targetBytes: 4095,
  pathBytes: 4096,
  treeEntries: 4_000_000,
  parents: 256,
  shortString: 4096,
  longString: 1 << 20,
  listItems: 100_000,
  /** |mtimeMs| as far as Date goes. */
  timeMs: 8.64e15,
} as const;

export class SchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaError';
  }
}

function fail(message: string): never {
  throw new SchemaError(message);
}

type Record_ = { [key: string]: unknown };

function record(v: unknown, where: string, allowed: readonly string[]): Record_ {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${where}: not an object`);
  const o = v as Record_;
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) fail(`${where}: unknown field ${JSON.stringify(k.slice(0, 64))}`);
  }
  return o;
}

function list(v: unknown, where: string, max: number): unknown[] {
  if (!Array.isArray(v)) fail(`${where}: not an array`);
  if (v.length > max) fail(`${where}: ${v.length} items (at most ${max})`);
  return v;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function str(v: unknown, where: string, maxBytes: number, options: { nonEmpty?: boolean; noNul?: boolean } = {}): string {
  if (typeof v !== 'string') fail(`${where}: not a string`);
  if (v.length > maxBytes || Buffer.byteLength(v, 'utf8') > maxBytes) fail(`${where}: longer than ${maxBytes} bytes`);
  if (LONE_SURROGATE.test(v)) fail(`${where}: not valid Unicode`);
  if (options.nonEmpty === true && v.length === 0) fail(`${where}: empty`);
  if (options.noNul === true && v.includes('\0')) fail(`${where}: contains NUL`);
  return v;
}

function int(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fail(`${where}: not an integer in ${min}..${max}`);
  return v;
}

function id(v: unknown, where: string): ObjectId {
  if (!isObjectId(v)) fail(`${where}: not an object id`);
  return v;
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

function time(v: unknown, where: string): string {
  const s = str(v, where, 64);
  if (!ISO_TIME.test(s) || Number.isNaN(Date.parse(s))) fail(`${where}: not an ISO 8601 time`);
  return s;
}

/** A single path component: 1..255 UTF-8 bytes, not "." or "..", no "/" and no NUL. */
export function checkName(v: unknown, where: string): string {
  const name = str(v, where, LIMITS.nameBytes, { nonEmpty: true, noNul: true });
  if (name === '.' || name === '..') fail(`${where}: ${JSON.stringify(name)} is not a valid entry name`);
  if (name.includes('/')) fail(`${where}: entry name contains "/"`);
  return name;
}

const ENTRY_FIELDS = {
  file: ['type', 'name', 'mode', 'size', 'mtimeMs', 'object'],
  dir: ['type', 'name', 'mode', 'mtimeMs', 'tree'],
  symlink: ['type', 'name', 'mode', 'mtimeMs', 'target'],
} as const;

function checkEntry(v: unknown, where: string): TreeEntry {
  if (typeof v !== 'object' || v === null) fail(`${where}: not an object`);
  const type = (v as Record_)['type'];
  if (type !== 'file' && type !== 'dir' && type !== 'symlink') fail(`${where}: unknown entry type`);
  const o = record(v, where, ENTRY_FIELDS[type]);
  const name = checkName(o['name'], `${where}.name`);
  const at = `${where} (${JSON.stringify(name)})`;
  const mode = int(o['mode'], `${at}.mode`, 0, 0o7777);
  const mt = o['mtimeMs'];
  if (typeof mt !== 'number' || !Number.isFinite(mt) || Math.abs(mt) > LIMITS.timeMs) fail(`${at}.mtimeMs: not a time`);
  switch (type) {
    case 'file':
      return { type, name, mode, size: int(o['size'], `${at}.size`, 0, Number.MAX_SAFE_INTEGER), mtimeMs: mt, object: id(o['object'], `${at}.object`) };
    case 'dir':
      return { type, name, mode, mtimeMs: mt, tree: id(o['tree'], `${at}.tree`) };
    case 'symlink':
      return { type, name, mode, mtimeMs: mt, target: str(o['target'], `${at}.target`, LIMITS.targetBytes, { nonEmpty: true, noNul: true }) };
  }
}

/** Compares entry names by their UTF-8 bytes. */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Checks a tree (without `kind` / `v`): entries valid, sorted bytewise, unique. */
export function checkTree(v: unknown, where = 'tree'): Tree {
  const o = record(v, where, ['entries']);
  const raw = list(o['entries'], `${where}.entries`, LIMITS.treeEntries);
  const entries: TreeEntry[] = [];
  let prev: Buffer | null = null;
  raw.forEach((e, i) => {
    const entry = checkEntry(e, `${where}.entries[${i}]`);
    const bytes = Buffer.from(entry.name, 'utf8');
    if (prev !== null) {
      const c = Buffer.compare(prev, bytes);
      if (c === 0) fail(`${where}: duplicate entry name ${JSON.stringify(entry.name)}`);
      if (c > 0) fail(`${where}: entries not sorted by name (${JSON.stringify(entry.name)} at ${i})`);
    }
    prev = bytes;
    entries.push(entry);
  });
  return { entries };
}

/** Trees made by makeTree: already checked, so storing them does not check 10 000 entries twice. */
const checkedTrees = new WeakSet<Tree>();

/** Sorts entries by name bytewise (a new array) and checks the result (E_USAGE when invalid); for building trees. */
export function makeTree(entries: readonly TreeEntry[]): Tree {
  try {
    const keyed = entries.map((e) => ({ key: Buffer.from(e.name, 'utf8'), e }));
    keyed.sort((a, b) => Buffer.compare(a.key, b.key));
    const tree = checkTree({ entries: keyed.map((k) => k.e) });
    checkedTrees.add(tree);
    return tree;
  } catch (e) {
    if (e instanceof SchemaError) throw new DvfsError('E_USAGE', `invalid tree: ${e.message}`, { cause: e });
    throw e;
  }
}

/** `tree` itself when makeTree made it (unchanged since: trees are not to be mutated), else checkTree(tree). */
export function checkedTree(tree: Tree): Tree {
  return checkedTrees.has(tree) ? tree : checkTree(tree);
}

function opt<T>(o: Record_, key: string, check: (v: unknown, where: string) => T, where: string): T | undefined {
  return o[key] === undefined ? undefined : check(o[key], `${where}.${key}`);
}

const short = (v: unknown, where: string): string => str(v, where, LIMITS.shortString);

function checkInput(v: unknown, where: string): ProvenanceInput {
  const o = record(v, where, ['path', 'snapshot', 'object']);
  const input: ProvenanceInput = { path: str(o['path'], `${where}.path`, LIMITS.pathBytes, { nonEmpty: true, noNul: true }) };
  const snapshot = opt(o, 'snapshot', id, where);
  const object = opt(o, 'object', id, where);
  if (snapshot !== undefined) input.snapshot = snapshot;
  if (object !== undefined) input.object = object;
  return input;
}

function checkTask(v: unknown, where: string): TaskProvenance {
  const o = record(v, where, ['arrayIndex', 'status', 'exitStatus', 'session']);
  const task: TaskProvenance = { arrayIndex: int(o['arrayIndex'], `${where}.arrayIndex`, 0, 2 ** 31 - 1) };
  const status = o['status'];
  if (status !== undefined) {
    if (typeof status !== 'string' || !(STAGE_STATUSES as readonly string[]).includes(status)) fail(`${where}.status: not one of ${STAGE_STATUSES.join(', ')}`);
    task.status = status as StageStatus;
  }
  const exitStatus = opt(o, 'exitStatus', (x, w) => int(x, w, -(2 ** 31), 2 ** 31 - 1), where);
  const session = opt(o, 'session', short, where);
  if (exitStatus !== undefined) task.exitStatus = exitStatus;
  if (session !== undefined) task.session = session;
  return task;
}

function checkStage(v: unknown, where: string): StageProvenance {
  const o = record(v, where, ['identity', 'status', 'engine', 'attempts', 'outputs', 'profileDigest', 'glob', 'error']);
  const status = o['status'];
  if (typeof status !== 'string' || !(STAGE_STATUSES as readonly string[]).includes(status)) fail(`${where}.status: not one of ${STAGE_STATUSES.join(', ')}`);
  const stage: StageProvenance = {
    identity: id(o['identity'], `${where}.identity`),
    status: status as StageStatus,
    engine: short(o['engine'], `${where}.engine`),
    attempts: int(o['attempts'], `${where}.attempts`, 0, 1000),
    outputs: list(o['outputs'], `${where}.outputs`, LIMITS.listItems).map((x, i) => str(x, `${where}.outputs[${i}]`, LIMITS.pathBytes, { nonEmpty: true, noNul: true })),
    profileDigest: short(o['profileDigest'], `${where}.profileDigest`),
  };
  const glob = opt(o, 'glob', short, where);
  const error = opt(o, 'error', short, where);
  if (glob !== undefined) stage.glob = glob;
  if (error !== undefined) stage.error = error;
  return stage;
}

export function checkProvenance(v: unknown, where = 'provenance'): Provenance {
  const o = record(v, where, ['command', 'exitStatus', 'jobId', 'arrayIndex', 'image', 'imageDigest', 'profile', 'inputs', 'host', 'startedAt', 'finishedAt', 'reusedFrom', 'stage', 'tasks']);
  const p: Provenance = {};
  const command = opt(o, 'command', (x, w) => list(x, w, LIMITS.listItems).map((a, i) => str(a, `${w}[${i}]`, LIMITS.longString)), where);
  const exitStatus = opt(o, 'exitStatus', (x, w) => int(x, w, -(2 ** 31), 2 ** 31 - 1), where);
  const jobId = opt(o, 'jobId', short, where);
  const arrayIndex = opt(o, 'arrayIndex', (x, w) => int(x, w, 0, 2 ** 31 - 1), where);
  const image = opt(o, 'image', short, where);
  const imageDigest = opt(o, 'imageDigest', short, where);
  const profile = opt(o, 'profile', short, where);
  const inputs = opt(o, 'inputs', (x, w) => list(x, w, LIMITS.listItems).map((a, i) => checkInput(a, `${w}[${i}]`)), where);
  const host = opt(o, 'host', short, where);
  const startedAt = opt(o, 'startedAt', time, where);
  const finishedAt = opt(o, 'finishedAt', time, where);
  const reusedFrom = opt(o, 'reusedFrom', id, where);
  if (command !== undefined) p.command = command;
  if (exitStatus !== undefined) p.exitStatus = exitStatus;
  if (jobId !== undefined) p.jobId = jobId;
  if (arrayIndex !== undefined) p.arrayIndex = arrayIndex;
  if (image !== undefined) p.image = image;
  if (imageDigest !== undefined) p.imageDigest = imageDigest;
  if (profile !== undefined) p.profile = profile;
  if (inputs !== undefined) p.inputs = inputs;
  if (host !== undefined) p.host = host;
  if (startedAt !== undefined) p.startedAt = startedAt;
  if (finishedAt !== undefined) p.finishedAt = finishedAt;
  if (reusedFrom !== undefined) p.reusedFrom = reusedFrom;
  const stage = opt(o, 'stage', checkStage, where);
  if (stage !== undefined) p.stage = stage;
  const tasks = opt(o, 'tasks', (x, w) => list(x, w, LIMITS.listItems).map((a, i) => checkTask(a, `${w}[${i}]`)), where);
  if (tasks !== undefined) p.tasks = tasks;
  return p;
}

function checkStats(v: unknown, where: string): SnapshotStats {
  const o = record(v, where, ['files', 'bytes', 'added', 'changed', 'removed', 'bytesHashed']);
  const n = (k: string): number => int(o[k], `${where}.${k}`, 0, Number.MAX_SAFE_INTEGER);
  return { files: n('files'), bytes: n('bytes'), added: n('added'), changed: n('changed'), removed: n('removed'), bytesHashed: n('bytesHashed') };
}

/** Checks a snapshot (without `kind` / `v`). */
export function checkSnapshot(v: unknown, where = 'snapshot'): Snapshot {
  const o = record(v, where, ['tree', 'parents', 'message', 'time', 'author', 'session', 'sessions', 'provenance', 'stats']);
  const parents = list(o['parents'], `${where}.parents`, LIMITS.parents).map((p, i) => id(p, `${where}.parents[${i}]`));
  if (new Set(parents).size !== parents.length) fail(`${where}.parents: duplicate parent`);
  const s: Snapshot = {
    tree: id(o['tree'], `${where}.tree`),
    parents,
    message: str(o['message'], `${where}.message`, LIMITS.longString),
    time: time(o['time'], `${where}.time`),
    author: short(o['author'], `${where}.author`),
    provenance: checkProvenance(o['provenance'], `${where}.provenance`),
    stats: checkStats(o['stats'], `${where}.stats`),
  };
  const session = opt(o, 'session', short, where);
  if (session !== undefined) s.session = session;
  if (o['sessions'] !== undefined) {
    s.sessions = list(o['sessions'], `${where}.sessions`, LIMITS.listItems).map((m, i) => {
      const at = `${where}.sessions[${i}]`;
      const r = record(m, at, ['id', 'seq', 'startedAt', 'finishedAt']);
      const mark: SessionMark = { id: short(r['id'], `${at}.id`), seq: int(r['seq'], `${at}.seq`, 0, Number.MAX_SAFE_INTEGER), startedAt: time(r['startedAt'], `${at}.startedAt`) };
      if (r['finishedAt'] !== undefined) mark.finishedAt = time(r['finishedAt'], `${at}.finishedAt`);
      return mark;
    });
  }
  return s;
}

function entryJson(e: TreeEntry): JsonObject {
  switch (e.type) {
    case 'file':
      return { type: e.type, name: e.name, mode: e.mode, size: e.size, mtimeMs: e.mtimeMs, object: e.object };
    case 'dir':
      return { type: e.type, name: e.name, mode: e.mode, mtimeMs: e.mtimeMs, tree: e.tree };
    case 'symlink':
      return { type: e.type, name: e.name, mode: e.mode, mtimeMs: e.mtimeMs, target: e.target };
  }
}

function provenanceJson(p: Provenance): JsonObject {
  return {
    ...p,
    command: p.command,
    inputs: p.inputs?.map((i): JsonObject => ({ path: i.path, snapshot: i.snapshot, object: i.object })),
    stage: p.stage && {
      identity: p.stage.identity,
      status: p.stage.status,
      engine: p.stage.engine,
      attempts: p.stage.attempts,
      outputs: p.stage.outputs,
      profileDigest: p.stage.profileDigest,
      glob: p.stage.glob,
      error: p.stage.error,
    },
    tasks: p.tasks?.map((t): JsonObject => ({ arrayIndex: t.arrayIndex, status: t.status, exitStatus: t.exitStatus, session: t.session })),
  };
}

/** JSON of a number exactly as canonicalJson writes it (-0 as 0). */
const num = (n: number): string => JSON.stringify(n);

/**
 * canonicalJson of one entry, written directly (keys in sorted order): trees reach millions of entries, and
 * the generic writer costs several times more. A test checks both agree.
 */
function entryText(e: TreeEntry): string {
  const head = `{"mode":${num(e.mode)},"mtimeMs":${num(e.mtimeMs)},"name":${JSON.stringify(e.name)},`;
  switch (e.type) {
    case 'file':
      return `${head}"object":"${e.object}","size":${num(e.size)},"type":"file"}`;
    case 'dir':
      return `${head}"tree":"${e.tree}","type":"dir"}`;
    case 'symlink':
      return `${head}"target":${JSON.stringify(e.target)},"type":"symlink"}`;
  }
}

/** The canonical plaintext of a checked tree (= canonicalJson({ kind: 'tree', v, entries })). */
export function encodeTree(tree: Tree): string {
  return `{"entries":[${tree.entries.map(entryText).join(',')}],"kind":"tree","v":${MANIFEST_FORMAT_VERSION}}`;
}

/** The generic form of encodeTree (for tests: both must agree byte for byte). */
export function encodeTreeGeneric(tree: Tree): string {
  return canonicalJson({ kind: 'tree', v: MANIFEST_FORMAT_VERSION, entries: tree.entries.map(entryJson) });
}

/** The canonical plaintext of a checked snapshot. */
export function encodeSnapshot(s: Snapshot): string {
  const body: { [k: string]: JsonValue | undefined } = {
    kind: 'snapshot',
    v: MANIFEST_FORMAT_VERSION,
    tree: s.tree,
    parents: s.parents,
    message: s.message,
    time: s.time,
    author: s.author,
    session: s.session,
    sessions: s.sessions?.map((m): JsonObject => ({ id: m.id, seq: m.seq, startedAt: m.startedAt, finishedAt: m.finishedAt })),
    provenance: provenanceJson(s.provenance),
    stats: { ...s.stats },
  };
  return canonicalJson(body);
}

export type DecodedManifest = { kind: 'tree'; tree: Tree } | { kind: 'snapshot'; snapshot: Snapshot };

/**
 * Parses and checks a manifest plaintext of the expected kind, and requires it to be in canonical form (so
 * every accepted plaintext is exactly what encodeTree / encodeSnapshot write for what it decodes to).
 */
export function decodeManifest(text: string, kind: ManifestKind): DecodedManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    fail(`not JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail('not a JSON object');
  const { kind: k, v, ...rest } = parsed as Record_;
  if (k !== kind) fail(`kind is ${JSON.stringify(k)}, expected ${JSON.stringify(kind)}`);
  if (v !== MANIFEST_FORMAT_VERSION) fail(`unsupported manifest version ${JSON.stringify(v)}`);
  const decoded: DecodedManifest = kind === 'tree' ? { kind, tree: checkTree(rest) } : { kind, snapshot: checkSnapshot(rest) };
  const again = decoded.kind === 'tree' ? encodeTree(decoded.tree) : encodeSnapshot(decoded.snapshot);
  if (again !== text) fail('not in canonical form');
  return decoded;
}
