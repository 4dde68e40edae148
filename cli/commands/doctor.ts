import { doctor } from '../../daemon/doctor/doctor.js';
import type { Finding } from '../../daemon/doctor/findings.js';
import { runDirFor } from '../../daemon/mount/records.js';
import type { Command } from '../command.js';
import { printJson } from '../format.js';
import { positional } from '../open.js';
import { versionedRepo } from '../versioning.js';

const usage = 'dvfs doctor REPO [--repair] [--json]';

function line(f: Finding): string {
  const state = f.repaired === undefined ? (f.repairable ? 'repairable' : 'action needed') : f.repaired === true ? 'repaired' : f.repaired;
  return `${f.kind}: ${f.path}\n  ${f.problem}\n  fix: ${f.fix} [${state}]`;
}

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'find (and with --repair fix) what crashes left: stale mounts and locks, orphaned sessions, temp files',
  usage,
  details:
    'Looks for mounts whose daemon is dead, a repository lock held by a dead process, sessions whose daemon died\n' +
    'before their changes were committed, leftover temporary files in the stores, snapshot views of dead daemons\n' +
    'and staging directories of interrupted init/clone next to the repository. --repair fixes what is safe\n' +
    '(temporary files only under the repository lock and while no daemon serves it); orphaned sessions are never\n' +
    'deleted: dvfs commit REPO commits them. Exit status 1 when something still needs attention. No password needed.',
  options: [{ name: 'repair', type: 'boolean', description: 'fix what is safe to fix, and report what was done' }],
  async run(ctx) {
    const repo = await versionedRepo(positional(ctx, 0, 'REPO', usage));
    const report = await doctor(repo.root, runDirFor(repo), { repair: ctx.args.flags.has('repair') });
    if (ctx.json) printJson(ctx.out, report);
    else if (report.findings.length === 0) ctx.out.write(`${repo.root}: nothing to fix\n`);
    else ctx.out.write(`${report.findings.map(line).join('\n')}\n${report.findings.length} finding(s), ${report.repaired} repaired, ${report.remaining} left\n`);
    return report.remaining > 0 ? 1 : 0;
  },
};
