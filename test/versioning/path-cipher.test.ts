// Opaque paths: deterministic, structure-preserving, authenticated, and revealing no name.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { PathCipher } from '../../daemon/store/path-cipher.js';
import { IntegrityError } from '../../daemon/errors.js';

t.test('round trip, determinism and structure', async (t) => {
  const c = new PathCipher(randomBytes(32));
  for (const p of ['/', '/a', '/a/b/c', '/ünïcødé/файл', '/' + 'x'.repeat(255)]) {
    const o = c.encodePath(p);
    t.equal(c.decodePath(o), p, `round trip ${p.slice(0, 20)}`);
    t.equal(c.encodePath(p), o, 'deterministic');
    t.equal(o.split('/').length, p === '/' ? 2 : p.split('/').length, 'same number of components');
  }
  t.equal(c.encodePath('a//b/'), c.encodePath('/a/b'), 'normalised');
  const dir = c.encodePath('/results');
  t.ok(c.encodePath('/results/x.h5').startsWith(dir + '/'), 'a child path extends its parent path');
  t.notMatch(c.encodePath('/results/secret-name'), /results|secret/, 'no name visible');
  t.throws(() => c.encodeName('a/b'), /not a path component/);
  t.throws(() => c.encodeName('..'), /not a path component/);
});

t.test('other keys and tampering are refused', async (t) => {
  const a = new PathCipher(randomBytes(32));
  const b = new PathCipher(randomBytes(32));
  const o = a.encodeName('data.bin');
  t.not(b.encodeName('data.bin'), o, 'keys give different names');
  t.throws(() => b.decodeName(o), IntegrityError, 'another key cannot decode');
  const raw = Buffer.from(o, 'base64url');
  raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 1;
  t.throws(() => a.decodeName(raw.toString('base64url')), IntegrityError, 'a flipped bit is detected');
  t.throws(() => a.decodeName('short'), IntegrityError, 'garbage is refused');
  a.dispose();
  b.dispose();
});
