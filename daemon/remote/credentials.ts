/**
 * S3 credentials, looked up in this order:
 *
 * 1. the file named by the URL's `credentials=` parameter (an explicit choice wins);
 * 2. the environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
 * 3. the shared credentials file: AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials, when it exists.
 *
 * A credentials file is INI (`[profile]` sections of `key = value`, `#`/`;` comments), read from the section
 * named by the URL's `profile=`, else AWS_PROFILE, else "default", and must be a regular file owned by the
 * current user and not accessible to group or others (mode 0600 or stricter): anything looser is refused with
 * E_CONFIG naming the file and its mode, before a byte of it is read.
 */
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DvfsError, isNodeError } from '../errors.js';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface CredentialLookup {
  /** From the URL's credentials= (absolute path). */
  file?: string;
  /** From the URL's profile=. */
  profile?: string;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Defaults to os.homedir(). */
  home?: string;
}

export interface ResolvedCredentials {
  credentials: S3Credentials;
  /** Where they came from ("environment" or the file and profile), for messages. */
  source: string;
}

/** Parses INI text into sections of key -> value (keys lowercased; lines before any section go to ""). */
export function parseIni(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let section = new Map<string, string>();
  out.set('', section);
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[\s*(?:profile\s+)?([^\]]*?)\s*\]$/.exec(line);
    if (head !== null) {
      const name = head[1] ?? '';
      section = out.get(name) ?? new Map<string, string>();
      out.set(name, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    section.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  }
  return out;
}

/**
 * Checks that a credentials file is private (a regular file, owned by this user, no group/other bits).
 * Returns false when it does not exist; throws E_CONFIG when it is unsafe.
 */
export async function checkCredentialsFile(path: string): Promise<boolean> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    if (isNodeError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return false;
    throw e;
  }
  if (!st.isFile()) throw new DvfsError('E_CONFIG', 'S3 credentials file is not a regular file', { path });
  const mode = st.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new DvfsError('E_CONFIG', `S3 credentials file is accessible to group or others (mode ${mode.toString(8).padStart(4, '0')}): refusing to use it`, {
      path,
      hint: `run: chmod 600 ${path}`,
    });
  }
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new DvfsError('E_CONFIG', `S3 credentials file belongs to uid ${st.uid}, not to you (uid ${uid}): refusing to use it`, { path });
  }
  return true;
}

/** Reads one profile of a credentials file (checking its permissions first). */
export async function readCredentialsFile(path: string, profile: string): Promise<S3Credentials> {
  if (!(await checkCredentialsFile(path))) throw new DvfsError('E_CONFIG', 'S3 credentials file does not exist', { path });
  const ini = parseIni(await readFile(path, 'utf8'));
  const sec = ini.get(profile);
  if (sec === undefined || sec.size === 0) {
    const have = [...ini.keys()].filter((k) => k !== '');
    throw new DvfsError('E_CONFIG', `S3 credentials file has no profile [${profile}]`, {
      path,
      hint: have.length === 0 ? 'add [default] with aws_access_key_id and aws_secret_access_key' : `profiles there: ${have.join(', ')}`,
    });
  }
  const accessKeyId = sec.get('aws_access_key_id');
  const secretAccessKey = sec.get('aws_secret_access_key');
  if (accessKeyId === undefined || accessKeyId === '' || secretAccessKey === undefined || secretAccessKey === '') {
    throw new DvfsError('E_CONFIG', `profile [${profile}] of the S3 credentials file lacks aws_access_key_id or aws_secret_access_key`, { path });
  }
  const sessionToken = sec.get('aws_session_token');
  return { accessKeyId, secretAccessKey, ...(sessionToken === undefined || sessionToken === '' ? {} : { sessionToken }) };
}

/** Finds S3 credentials (see the module comment); E_CONFIG when there are none or they are unsafe. */
export async function resolveS3Credentials(lookup: CredentialLookup = {}): Promise<ResolvedCredentials> {
  const env = lookup.env ?? process.env;
  const profile = lookup.profile ?? nonEmpty(env.AWS_PROFILE) ?? 'default';
  if (lookup.file !== undefined) {
    return { credentials: await readCredentialsFile(lookup.file, profile), source: `${lookup.file} [${profile}]` };
  }
  const id = nonEmpty(env.AWS_ACCESS_KEY_ID);
  const secret = nonEmpty(env.AWS_SECRET_ACCESS_KEY);
  if (id !== undefined || secret !== undefined) {
    if (id === undefined || secret === undefined) {
      throw new DvfsError('E_CONFIG', `${id === undefined ? 'AWS_ACCESS_KEY_ID' : 'AWS_SECRET_ACCESS_KEY'} is not set, but ${id === undefined ? 'AWS_SECRET_ACCESS_KEY' : 'AWS_ACCESS_KEY_ID'} is`, {
        hint: 'set both, or neither (and use a credentials file)',
      });
    }
    const token = nonEmpty(env.AWS_SESSION_TOKEN);
    return { credentials: { accessKeyId: id, secretAccessKey: secret, ...(token === undefined ? {} : { sessionToken: token }) }, source: 'environment' };
  }
  const file = nonEmpty(env.AWS_SHARED_CREDENTIALS_FILE) ?? join(lookup.home ?? homedir(), '.aws', 'credentials');
  if (await checkCredentialsFile(file)) {
    return { credentials: await readCredentialsFile(file, profile), source: `${file} [${profile}]` };
  }
  throw new DvfsError('E_CONFIG', 'no S3 credentials found', {
    hint: `set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write them to ${file} (mode 0600) or a file named by credentials=/PATH in the remote URL`,
  });
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}
