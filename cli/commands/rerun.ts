import { DvfsError } from '../../daemon/errors.js';
import { findProfileFile } from '../../daemon/profile/load.js';
import { ENGINES, type EngineName } from '../../daemon/profile/schema.js';
import { readHead } from '../../daemon/store/refs.js';
import { resolveSnapshot } from '../../daemon/versioning/snapshot-walk.js';
import type { Command } from '../command.js';
import { positional } from '../open.js';
import { openStore, versionedRepo } from '../versioning.js';
import { RUN_OPTIONS, runFromContext } from './run.js';

const usage = 'dvfs rerun REPO SNAPSHOT [--defer-commit] [--json]';

export const rerunCommand: Command = {
  name: 'rerun',
  summary: 'run the stage a snapshot records again (same command, profile, engine, image, inputs, outputs)',
  usage,
  details:
    'Reads the provenance of SNAPSHOT (id, 4+ hex prefix, HEAD, HEAD~N) and runs its stage again as dvfs run\n' +
    '--force would, on the current inputs. Options given here override what was recorded.',
  options: [...RUN_OPTIONS, { name: 'defer-commit', type: 'boolean', description: 'record the run but do not commit (dvfs commit REPO does, later)' }],
  async run(ctx) {
    const repo = await versionedRepo(positional(ctx, 0, 'REPO', usage));
    const ref = positional(ctx, 1, 'SNAPSHOT', usage);
    const v = await openStore(ctx, repo);
    let provenance;
    try {
      provenance = (await resolveSnapshot(v.manifests, await readHead(repo.root), ref)).snapshot.provenance;
    } finally {
      v.close();
    }
    const stage = provenance.stage;
    if (!provenance.command || provenance.command.length === 0 || !stage) {
      throw new DvfsError('E_NOTFOUND', `snapshot ${ref} records no stage run`, { hint: 'dvfs show REPO SNAPSHOT shows its provenance; stages are recorded by dvfs run' });
    }
    const set = (name: string, value: string | undefined): void => {
      if (value !== undefined && !ctx.args.strings.has(name)) ctx.args.strings.set(name, [value]);
    };
    const profile = provenance.profile;
    if (profile !== undefined && (await findProfileFile(profile, repo.root)) !== null) set('profile', profile);
    else if (profile !== undefined) ctx.note(`dvfs: profile '${profile}' is not available here; rerunning with the local profile's policies`);
    if ((ENGINES as readonly string[]).includes(stage.engine)) set('engine', stage.engine as EngineName);
    set('image', provenance.image);
    if (!ctx.args.strings.has('input')) ctx.args.strings.set('input', (provenance.inputs ?? []).map((i) => i.path));
    if (!ctx.args.strings.has('output')) ctx.args.strings.set('output', stage.outputs);
    ctx.args.positionals.splice(1);
    return runFromContext(ctx, provenance.command, { force: true });
  },
};
