/**
 * Child process of the scale benchmark: one writer of a pool. Writes its share of a tree of FILES files,
 * PER_DIR per directory (DIR/d0000/f0000000, ...): directory d belongs to writer d % WRITERS. A quarter of
 * the files are empty, the others hold 32 B .. 4 KiB of distinct bytes (the file's number, then a slice of a
 * random pool), each with one open, one write and one close.
 *
 *   node dist/bench/lib/scale-writer.js DIR FILES PER_DIR WRITER WRITERS
 *
 * Prints `files <n> bytes <b>` on success; any error ends the process with a non-zero code and the message
 * on stderr.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { scaleFileName, scaleFileSize } from './scale-tree.js';

function main(): void {
  const [dir, filesArg, perDirArg, writerArg, writersArg] = process.argv.slice(2);
  const files = Number(filesArg);
  const perDir = Number(perDirArg);
  const writer = Number(writerArg);
  const writers = Number(writersArg);
  if (!dir || ![files, perDir, writer, writers].every(Number.isInteger) || files < 0 || perDir < 1 || writers < 1 || writer < 0 || writer >= writers) {
    process.stderr.write('usage: scale-writer DIR FILES PER_DIR WRITER WRITERS\n');
    process.exit(2);
  }
  const pool = randomBytes(64 * 1024);
  const dirs = Math.ceil(files / perDir);
  let written = 0;
  let bytes = 0;
  for (let d = writer; d < dirs; d += writers) {
    const names = scaleFileName(files, perDir, d * perDir);
    mkdirSync(join(dir, names.dir), { recursive: true });
    for (let i = d * perDir; i < Math.min(files, (d + 1) * perDir); i++) {
      const rel = scaleFileName(files, perDir, i);
      const fd = openSync(join(dir, rel.dir, rel.file), 'wx', 0o644);
      try {
        const size = scaleFileSize(i);
        if (size > 0) {
          const buf = Buffer.alloc(size);
          buf.write(`${i}\n`);
          pool.copy(buf, 12, (i * 4099) % (pool.length - size), (i * 4099) % (pool.length - size) + size - 12);
          let done = 0;
          while (done < size) done += writeSync(fd, buf, done, size - done);
          bytes += size;
        }
      } finally {
        closeSync(fd);
      }
      written++;
    }
  }
  process.stdout.write(`files ${written} bytes ${bytes}\n`);
}

main();
