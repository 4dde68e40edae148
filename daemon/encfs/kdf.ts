/**
 * User-key derivation from a password: PBKDF2-HMAC-SHA1 for salted V6 configs, and the salt-less legacy
 * BytesToKey (16 rounds of SHA-1) used by V4/V5 and early V6 configs.
 */
import { createHash, pbkdf2, pbkdf2Sync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { DvfsError } from '../errors.js';

export function derivePbkdf2(password: Buffer, salt: Buffer, iterations: number, length: number): Promise<Buffer> {
  checkPassword(password);
  return new Promise((resolve, reject) => {
    pbkdf2(password, salt, iterations, length, 'sha1', (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** EncFS's BytesToKey: D1 = SHA1^16(pw), Di = SHA1^16(D(i-1) || pw); key||iv is the prefix of D1||D2||… */
export function deriveLegacy(password: Buffer, length: number): Buffer {
  checkPassword(password);
  const out: Buffer[] = [];
  let have = 0;
  let prev: Buffer | null = null;
  while (have < length) {
    let d: Buffer = createHash('sha1')
      .update(prev === null ? password : Buffer.concat([prev, password]))
      .digest();
    for (let r = 1; r < 16; r++) d = createHash('sha1').update(d).digest();
    out.push(d);
    have += d.length;
    prev = d;
  }
  return Buffer.concat(out).subarray(0, length);
}

/**
 * Picks an iteration count whose PBKDF2 takes about `targetMs` on this machine, the way EncFS times it:
 * start at 1000, quadruple while far too fast, then scale once it is within reach.
 */
export function timeIterations(targetMs: number, length: number): number {
  let iterations = 1000;
  const salt = Buffer.alloc(20, 1);
  for (;;) {
    const start = performance.now();
    pbkdf2Sync('dvfs-timing', salt, iterations, length, 'sha1');
    const delta = Math.max(performance.now() - start, 0.001);
    if (delta < targetMs / 8) iterations *= 4;
    else if (delta < (5 * targetMs) / 6) iterations = Math.round((iterations * targetMs) / delta);
    else return iterations;
  }
}

function checkPassword(password: Buffer): void {
  if (password.length === 0) {
    throw new DvfsError('E_PASSWORD', 'the password is empty', { hint: 'put the password in the password file' });
  }
}
