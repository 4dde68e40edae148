import { DvfsError } from '../../daemon/errors.js';
import type { Command } from '../command.js';
import { openRepoView, positional, VOLUME_OPTIONS, volumePath } from '../open.js';

const usage = 'dvfs cat REPO PATH [--password-file FILE]';
const CHUNK = 4 << 20;
const WHOLE_LIMIT = 64 << 20;

export const catCommand: Command = {
  name: 'cat',
  summary: 'write the plaintext of a file to stdout (no mount needed)',
  usage,
  details: 'Files up to 64 MiB are checked whole before output; larger ones stream in 4 MiB pieces. A tampered block (with block MACs) stops it with an integrity error naming the file and block.',
  options: VOLUME_OPTIONS,
  async run(ctx) {
    const { view } = await openRepoView(ctx, positional(ctx, 0, 'REPO', usage));
    const path = volumePath(positional(ctx, 1, 'PATH', usage));
    const st = await view.stat(path);
    if (st.type === 'dir') throw new DvfsError('E_ISDIR', 'is a directory', { path: path || '/', hint: 'use dvfs ls' });
    if (st.type === 'symlink') {
      throw new DvfsError('E_USAGE', `is a symlink to ${await view.readlink(path)}`, { path, hint: 'cat its target' });
    }
    const file = await view.openFile(path, { readOnly: true });
    try {
      const size = await file.size();
      // Files up to WHOLE_LIMIT are decoded (and so authenticated) completely before the first byte goes
      // out; larger ones stream, stopping at the first bad block.
      if (size <= WHOLE_LIMIT) {
        ctx.out.write(await file.read(0, size));
        return;
      }
      for (let pos = 0; pos < size; pos += CHUNK) {
        const chunk = await file.read(pos, CHUNK);
        if (!ctx.out.write(chunk)) await new Promise<void>((r) => ctx.out.once('drain', () => r()));
      }
    } finally {
      await file.close();
    }
  },
};
