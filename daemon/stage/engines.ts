/**
 * Command lines of the container engines a stage can run in. Pure functions: a StageLaunch in, the program,
 * its arguments and its extra environment out (tested as generated argv; podman, docker and bubblewrap also
 * run for real in test/stage).
 *
 * Every engine binds the mount (the FUSE mountpoint on the host) at the profile's target, starts the command
 * there (working directory) and sets DVFS_MOUNT to the target as the command sees it. Engine `none` runs the
 * command on the host, in the mount. Choices that matter on these machines (see CONTAINERS.md):
 * - docker/podman get `--mount type=bind,...` (docker's `-v` silently creates a missing source: a typo would
 *   send plaintext to an unencrypted directory), `--pull=never` (no registry lookups), `--network=none`
 *   (unless run_args choose a network) and `--rm`.
 * - bubblewrap binds the image (a root filesystem directory) read-only at /, with fresh /proc, /dev, /tmp,
 *   private namespaces, --die-with-parent and a clean environment.
 * - sarus and apptainer run the payload as the calling user: the mount needs allow_other unless that user
 *   mounted it (the profile's mount.allow_other).
 */
import { DvfsError } from '../errors.js';
import type { BindSpec, EngineName } from '../profile/schema.js';

export interface StageLaunch {
  engine: EngineName;
  image: string | null;
  /** The FUSE mount on the host. */
  mountpoint: string;
  /** Where the mount appears inside the container. */
  target: string;
  binds: readonly BindSpec[];
  env: Readonly<Record<string, string>>;
  engineArgs: readonly string[];
  runArgs: readonly string[];
  command: readonly string[];
  /** Container name (docker/podman), unique per run. */
  name: string;
}

export interface EngineInvocation {
  file: string;
  args: string[];
  /** Working directory of the spawned program (engine none: the mount). */
  cwd: string | null;
  /** Variables added to the spawned program's environment. */
  env: Record<string, string>;
  /** The path the command sees the mount at (DVFS_MOUNT). */
  mountInside: string;
}

export const ENGINE_PROGRAMS: Record<EngineName, string> = {
  docker: 'docker',
  podman: 'podman',
  bubblewrap: 'bwrap',
  sarus: 'sarus',
  apptainer: 'apptainer',
  none: '',
};

const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function needImage(l: StageLaunch): string {
  if (l.image === null) throw new DvfsError('E_USAGE', `engine ${l.engine} needs an image`, { hint: 'set container.image in the profile or pass --image' });
  return l.image;
}

/** `--mount` values are comma-separated key=value lists: a comma in a path would change their meaning. */
function mountField(path: string, what: string): string {
  if (path.includes(',') || path.includes('=')) throw new DvfsError('E_USAGE', `${what} contains "," or "=", which the engine's --mount syntax cannot carry`, { path });
  return path;
}

function envPairs(env: Readonly<Record<string, string>>, target: string): [string, string][] {
  return [...Object.entries(env), ['DVFS_MOUNT', target]];
}

function ociRun(l: StageLaunch): EngineInvocation {
  const image = needImage(l);
  const args = [...l.engineArgs, 'run', '--rm', '--pull=never', `--name=${l.name}`];
  if (!l.runArgs.some((a) => /^--(network|net)(=|$)/.test(a))) args.push('--network=none');
  args.push(`--mount=type=bind,source=${mountField(l.mountpoint, 'the mountpoint')},destination=${mountField(l.target, 'the target')}`);
  for (const b of l.binds) args.push(`--mount=type=bind,source=${mountField(b.source, 'a bind source')},destination=${mountField(b.target, 'a bind target')}${b.readOnly ? ',readonly' : ''}`);
  args.push(`--workdir=${l.target}`);
  for (const [k, v] of envPairs(l.env, l.target)) args.push(`--env=${k}=${v}`);
  args.push(...l.runArgs, image, ...l.command);
  return { file: ENGINE_PROGRAMS[l.engine], args, cwd: null, env: {}, mountInside: l.target };
}

function bubblewrap(l: StageLaunch): EngineInvocation {
  const rootfs = needImage(l);
  if (!rootfs.startsWith('/')) throw new DvfsError('E_USAGE', 'the bubblewrap image is a root filesystem directory and must be an absolute path', { path: rootfs });
  const args = [...l.engineArgs, '--ro-bind', rootfs, '/', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp'];
  args.push('--bind', l.mountpoint, l.target);
  for (const b of l.binds) args.push(b.readOnly ? '--ro-bind' : '--bind', b.source, b.target);
  args.push('--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-net', '--die-with-parent', '--new-session', '--clearenv', '--setenv', 'PATH', SANDBOX_PATH);
  for (const [k, v] of envPairs(l.env, l.target)) args.push('--setenv', k, v);
  args.push('--chdir', l.target, ...l.runArgs, '--', ...l.command);
  return { file: ENGINE_PROGRAMS.bubblewrap, args, cwd: null, env: {}, mountInside: l.target };
}

function sarus(l: StageLaunch): EngineInvocation {
  const image = needImage(l);
  const args = [...l.engineArgs, 'run', `--mount=type=bind,source=${mountField(l.mountpoint, 'the mountpoint')},destination=${mountField(l.target, 'the target')}`];
  for (const b of l.binds) args.push(`--mount=type=bind,source=${mountField(b.source, 'a bind source')},destination=${mountField(b.target, 'a bind target')}${b.readOnly ? ',readonly' : ''}`);
  args.push(`--workdir=${l.target}`, ...l.runArgs, image, ...l.command);
  // Sarus passes the caller's environment into the container: the variables ride on the sarus process.
  return { file: ENGINE_PROGRAMS.sarus, args, cwd: null, env: Object.fromEntries(envPairs(l.env, l.target)), mountInside: l.target };
}

function apptainer(l: StageLaunch): EngineInvocation {
  const image = needImage(l);
  const binds = [`${l.mountpoint}:${l.target}`, ...l.binds.map((b) => `${b.source}:${b.target}${b.readOnly ? ':ro' : ''}`)];
  for (const b of binds) if (b.split(':').some((p) => p.includes(','))) throw new DvfsError('E_USAGE', 'a bind path contains ",", which apptainer --bind cannot carry', { path: b });
  const args = [...l.engineArgs, 'exec', '--bind', binds.join(','), '--pwd', l.target];
  for (const [k, v] of envPairs(l.env, l.target)) args.push('--env', `${k}=${v}`);
  args.push(...l.runArgs, image, ...l.command);
  return { file: ENGINE_PROGRAMS.apptainer, args, cwd: null, env: {}, mountInside: l.target };
}

function host(l: StageLaunch): EngineInvocation {
  const [file, ...args] = l.command;
  if (file === undefined) throw new DvfsError('E_USAGE', 'no command to run', { hint: 'give it after --: dvfs run REPO -- CMD ARGS...' });
  return { file, args, cwd: l.mountpoint, env: Object.fromEntries(envPairs(l.env, l.mountpoint)), mountInside: l.mountpoint };
}

/** The program to start for a stage, with its arguments and environment. */
export function engineInvocation(l: StageLaunch): EngineInvocation {
  if (l.command.length === 0) throw new DvfsError('E_USAGE', 'no command to run', { hint: 'give it after --: dvfs run REPO -- CMD ARGS...' });
  switch (l.engine) {
    case 'docker':
    case 'podman':
      return ociRun(l);
    case 'bubblewrap':
      return bubblewrap(l);
    case 'sarus':
      return sarus(l);
    case 'apptainer':
      return apptainer(l);
    case 'none':
      return host(l);
  }
}
