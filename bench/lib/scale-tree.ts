/** The shape of the scale benchmark's tree: where file i lives and how big it is (shared by its writers). */

/** Directory and file name of file `i` of a tree of `files` files, `perDir` per directory. */
export function scaleFileName(files: number, perDir: number, i: number): { dir: string; file: string } {
  const dirs = Math.max(1, Math.ceil(files / perDir));
  const dWidth = Math.max(4, String(dirs - 1).length);
  const fWidth = Math.max(7, String(Math.max(0, files - 1)).length);
  return { dir: `d${String(Math.floor(i / perDir)).padStart(dWidth, '0')}`, file: `f${String(i).padStart(fWidth, '0')}` };
}

/** Size of file `i`: every fourth file is empty, the others 32 B .. 4 KiB, spread evenly. */
export function scaleFileSize(i: number): number {
  return i % 4 === 0 ? 0 : 32 + ((i * 7919) % 4065);
}

/** Total bytes of a tree of `files` files. */
export function scaleTreeBytes(files: number): number {
  let n = 0;
  for (let i = 0; i < files; i++) n += scaleFileSize(i);
  return n;
}
