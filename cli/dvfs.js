#!/usr/bin/env node
// dvfs launcher: runs the compiled CLI from dist/. `npm install` (or `npm run build`) compiles it.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('dvfs: not built yet: run `npm install` (or `npm run build`) in the dvfs checkout\n');
  process.exit(1);
}
await import(entry.href);
