/**
 * Child process of the mount benchmark: creates COUNT files of KIB KiB each under DIR, PER_DIR files per
 * subdirectory (DIR/d000/f00000, ...), each with one open, one write of the whole file and one close, like
 * `cp` does for files of this size. The data comes from a random pool generated before the first file.
 *
 *   node dist/bench/lib/make-files.js DIR COUNT KIB [PER_DIR]
 *
 * Prints nothing on success; any error ends the process with a non-zero code and the message on stderr.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

function main(): void {
  const [dir, countArg, kibArg, perDirArg] = process.argv.slice(2);
  const count = Number(countArg);
  const kib = Number(kibArg);
  const perDir = perDirArg === undefined ? 1000 : Number(perDirArg);
  if (!dir || !Number.isInteger(count) || count < 0 || !(kib >= 0) || !Number.isInteger(perDir) || perDir < 1) {
    process.stderr.write('usage: make-files DIR COUNT KIB [PER_DIR]\n');
    process.exit(2);
  }
  const size = Math.round(kib * 1024);
  const slack = 64 * 1024;
  const pool = randomBytes(size + slack);
  const dirs = Math.max(1, Math.ceil(count / perDir));
  const dWidth = Math.max(3, String(dirs - 1).length);
  const fWidth = Math.max(5, String(Math.max(0, count - 1)).length);
  mkdirSync(dir, { recursive: true });
  let sub = '';
  for (let i = 0; i < count; i++) {
    if (i % perDir === 0) {
      sub = join(dir, `d${String(i / perDir).padStart(dWidth, '0')}`);
      mkdirSync(sub);
    }
    const fd = openSync(join(sub, `f${String(i).padStart(fWidth, '0')}`), 'wx', 0o644);
    try {
      // A different slice of the pool per file, so no two files hold the same bytes.
      const off = (i * 4099) % slack;
      let done = 0;
      while (done < size) done += writeSync(fd, pool, off + done, size - done);
    } finally {
      closeSync(fd);
    }
  }
}

main();
