import { readHead } from '../../daemon/store/refs.js';
import { resolveSnapshot } from '../../daemon/versioning/snapshot-walk.js';
import type { Command } from '../command.js';
import { humanBytes, printJson } from '../format.js';
import { positional, VOLUME_OPTIONS } from '../open.js';
import { openStore, versionedRepo } from '../versioning.js';

const usage = 'dvfs show REPO SNAPSHOT [--json]';

export const showCommand: Command = {
  name: 'show',
  summary: 'show one snapshot: message, author, statistics and provenance (job, command, image, inputs)',
  usage,
  details: 'SNAPSHOT is an id, a unique prefix of 4+ hex digits, HEAD or HEAD~N.',
  options: [...VOLUME_OPTIONS],
  async run(ctx) {
    const repo = await versionedRepo(positional(ctx, 0, 'REPO', usage));
    const ref = positional(ctx, 1, 'SNAPSHOT', usage);
    const v = await openStore(ctx, repo);
    try {
      const { id, snapshot: s } = await resolveSnapshot(v.manifests, await readHead(repo.root), ref);
      if (ctx.json) return printJson(ctx.out, { id, ...s });
      const p = s.provenance;
      const lines = [
        `snapshot ${id}`,
        `parents:  ${s.parents.join(', ') || '(none)'}`,
        `time:     ${s.time}`,
        `author:   ${s.author}`,
        `message:  ${s.message}`,
        ...(s.session ? [`session:  ${s.session}`] : []),
        `contents: ${s.stats.files} files, ${humanBytes(s.stats.bytes)}; ${s.stats.added} added, ${s.stats.changed} changed, ${s.stats.removed} removed; ${humanBytes(s.stats.bytesHashed)} hashed`,
        'provenance:',
        ...(p.command ? [`  command:    ${p.command.join(' ')}`] : []),
        ...(p.exitStatus !== undefined ? [`  exit:       ${p.exitStatus}`] : []),
        ...(p.jobId ? [`  slurm job:  ${p.jobId}${p.arrayIndex !== undefined ? ` (array index ${p.arrayIndex})` : ''}`] : []),
        ...(p.tasks ?? []).map((k) => `  task:       ${k.arrayIndex}${k.status ? ` ${k.status}` : ''}${k.exitStatus !== undefined ? ` (exit ${k.exitStatus})` : ''}`),
        ...(p.image ? [`  image:      ${p.image}${p.imageDigest ? ` @ ${p.imageDigest}` : ''}`] : []),
        ...(p.profile ? [`  profile:    ${p.profile}`] : []),
        ...(p.host ? [`  host:       ${p.host}`] : []),
        ...(p.startedAt ? [`  started:    ${p.startedAt}`] : []),
        ...(p.finishedAt ? [`  finished:   ${p.finishedAt}`] : []),
        ...(p.inputs ?? []).map((i) => `  input:      ${i.path}${i.snapshot ? ` @ ${i.snapshot.slice(0, 12)}` : ''}${i.object ? ` (object ${i.object.slice(0, 12)})` : ''}`),
        ...(p.stage
          ? [
              `  stage:      ${p.stage.status} in ${p.stage.engine}${p.stage.attempts > 1 ? ` (${p.stage.attempts} attempts)` : ''}, identity ${p.stage.identity.slice(0, 16)}`,
              ...p.stage.outputs.map((o) => `  output:     ${o}`),
              ...(p.stage.glob ? [`  glob:       ${p.stage.glob}`] : []),
              ...(p.stage.error ? [`  error:      ${p.stage.error}`] : []),
            ]
          : []),
        ...(p.reusedFrom ? [`  reused:     outputs of ${p.reusedFrom.slice(0, 12)}`] : []),
      ];
      if (lines.at(-1) === 'provenance:') lines.push('  (none recorded)');
      ctx.out.write(lines.join('\n') + '\n');
    } finally {
      v.close();
    }
  },
};
