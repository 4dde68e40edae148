// Name codecs: round trips for every codec and chaining mode, limits, and clear errors for names that cannot
// be decoded (EncFS hides those silently; dvfs reports them).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { EncfsCipher } from '../../daemon/encfs/cipher.js';
import { makeNameCodec, PathCodec, type NameAlgName } from '../../daemon/encfs/names.js';
import { rng } from '../helpers/rng.js';

const CODECS: [NameAlgName, number][] = [
  ['nameio/block', 4],
  ['nameio/block', 3],
  ['nameio/block', 2],
  ['nameio/block32', 4],
  ['nameio/stream', 2],
  ['nameio/stream', 1],
  ['nameio/stream', 0],
  ['nameio/null', 1],
];

const cipher = new EncfsCipher({ name: 'ssl/aes', major: 3, keySize: 192 }, randomBytes(40));

t.test('round trips of random paths for every codec, chained and not', async (t) => {
  const r = rng(99);
  const alphabet = 'abcXYZ019 _-.,+=()[]{}éü日本😀';
  for (const [alg, major] of CODECS) {
    for (const chained of [true, false]) {
      const paths = new PathCodec(makeNameCodec(alg, major, cipher), chained);
      for (let i = 0; i < 40; i++) {
        const comps = Array.from({ length: r.int(4) + 1 }, () => {
          let s = '';
          const n = r.int(20) + 1;
          for (let j = 0; j < n; j++) s += [...alphabet][r.int([...alphabet].length)];
          return s === '.' || s === '..' ? 'x' : s;
        });
        const plain = comps.join('/');
        const enc = paths.encodePath(plain);
        if (alg !== 'nameio/null') t.notMatch(enc.cipher, /[^/,\-0-9A-Za-z]/, 'encoded names use only the name alphabet');
        const dec = paths.decodePath(enc.cipher);
        t.equal(dec.plain, plain, `${alg} ${major} chained=${chained} (seed 99 case ${i})`);
        t.equal(dec.iv, enc.iv, 'decoding reaches the same chain IV');
      }
    }
  }
});

t.test('chaining: the same name encodes differently in different directories', async (t) => {
  const chained = new PathCodec(makeNameCodec('nameio/block', 4, cipher), true);
  const a = chained.encodePath('a/x').cipher.split('/')[1];
  const b = chained.encodePath('b/x').cipher.split('/')[1];
  t.not(a, b);
  const flat = new PathCodec(makeNameCodec('nameio/block', 4, cipher), false);
  t.equal(flat.encodePath('a/x').cipher.split('/')[1], flat.encodePath('b/x').cipher.split('/')[1]);
  t.throws(() => chained.decodeName(a as string, chained.encodePath('b').iv), { code: 'E_NAME', message: /cannot decode encrypted name/ }, 'a name moved to another directory does not decode');
});

t.test('dot entries pass through; symlink targets', async (t) => {
  const paths = new PathCodec(makeNameCodec('nameio/block', 4, cipher), true);
  t.equal(paths.encodePath('../x/./y').cipher.split('/').slice(0, 1).join(), '..');
  t.equal(paths.decodeLinkTarget(paths.encodeLinkTarget('/etc/hostname')), '/etc/hostname');
  t.match(paths.encodeLinkTarget('/etc/hostname'), /^\+[^/]+$/, 'absolute target = "+" and one unchained name');
  t.equal(paths.decodeLinkTarget(paths.encodeLinkTarget('../one')), '../one');
  t.equal(paths.decodeLinkTarget(paths.encodeLinkTarget('b/c/deep.txt')), 'b/c/deep.txt');
});

t.test('name length limits match EncFS (NAME_MAX 255)', async (t) => {
  const expected: Record<string, number> = { 'nameio/block': 175, 'nameio/block32': 143, 'nameio/stream': 189 };
  for (const [alg, max] of Object.entries(expected)) {
    const paths = new PathCodec(makeNameCodec(alg as NameAlgName, 4 - (alg === 'nameio/stream' ? 2 : 0), cipher), true);
    t.equal(paths.names.maxNameBytes, max, `${alg} max`);
    const longest = paths.encodePath('n'.repeat(max)).cipher;
    t.ok(longest.length <= 255, `${alg}: a ${max}-byte name encodes to ${longest.length} chars`);
    t.throws(() => paths.encodePath('n'.repeat(max + 1)), { code: 'E_NAME', message: /bytes long/ }, `${alg}: one byte more is refused`);
  }
});

t.test('undecodable names give clear errors, never garbage or a crash', async (t) => {
  const r = rng(5);
  for (const [alg, major] of CODECS.filter(([a]) => a !== 'nameio/null')) {
    const paths = new PathCodec(makeNameCodec(alg, major, cipher), true);
    t.throws(() => paths.decodeName('desktop.ini', 0n), { code: 'E_NAME' }, `${alg}: a foreign name with '.'`);
    t.throws(() => paths.decodeName('ab', 0n), { code: 'E_NAME' }, `${alg}: too short`);
    const good = paths.encodeName('hello-world.txt', 0n).cipher;
    let refused = 0;
    for (let i = 0; i < 50; i++) {
      const chars = [...good];
      const pos = r.int(chars.length - 1);
      chars[pos] = chars[pos] === 'A' ? 'B' : 'A';
      const mutated = chars.join('');
      try {
        const back = paths.decodeName(mutated, 0n).name;
        // The 16-bit checksum lets ~1/65536 mutations through; they must still not claim the original name.
        t.not(back, 'hello-world.txt');
      } catch (e) {
        t.match(e, { code: 'E_NAME', message: /cannot decode encrypted name/ });
        refused++;
      }
    }
    t.ok(refused >= 48, `${alg}: mutated names are refused (${refused}/50, seed 5)`);
  }
  const wrongKey = new PathCodec(makeNameCodec('nameio/block', 4, new EncfsCipher({ name: 'ssl/aes', major: 3, keySize: 192 }, randomBytes(40))), true);
  const right = new PathCodec(makeNameCodec('nameio/block', 4, cipher), true);
  t.throws(() => wrongKey.decodeName(right.encodeName('file', 0n).cipher, 0n), { code: 'E_NAME' }, 'a wrong key is refused');
});
