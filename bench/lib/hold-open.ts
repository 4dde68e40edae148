/**
 * Child process of the mount benchmark: opens up to COUNT regular files found under DIR (read-write, in
 * sorted order), reads the first 4 KiB of each, prints `READY <n>` and keeps every descriptor open until its
 * standard input ends or it gets SIGTERM. Used to measure a FUSE daemon's memory with many open files.
 *
 *   node dist/bench/lib/hold-open.js DIR COUNT
 */
import { closeSync, openSync, readSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

function collect(dir: string, want: number, out: string[]): void {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (out.length >= want) return;
    const p = join(dir, e.name);
    if (e.isDirectory()) collect(p, want, out);
    else if (e.isFile()) out.push(p);
  }
}

function main(): void {
  const [dir, countArg] = process.argv.slice(2);
  const count = Number(countArg);
  if (!dir || !Number.isInteger(count) || count < 1) {
    process.stderr.write('usage: hold-open DIR COUNT\n');
    process.exit(2);
  }
  const files: string[] = [];
  collect(dir, count, files);
  const fds: number[] = [];
  const buf = Buffer.alloc(4096);
  for (const f of files) {
    const fd = openSync(f, 'r+');
    fds.push(fd);
    readSync(fd, buf, 0, buf.length, 0);
  }
  const done = (): void => {
    for (const fd of fds) closeSync(fd);
    process.exit(0);
  };
  process.on('SIGTERM', done);
  process.stdin.on('end', done);
  process.stdin.on('error', done);
  process.stdout.write(`READY ${fds.length}\n`);
  process.stdin.resume();
}

main();
