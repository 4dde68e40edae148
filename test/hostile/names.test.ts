// A collaborator holding an EncFS volume key can encrypt any bytes as a "name". Names that are really paths
// (or ".", "..", empty, or holding NUL) must be refused when decoded, so they never reach readdir, commit or
// restore. (dvfs-native checks the same in its own decoder.)
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { DvfsError } from '../../daemon/errors.js';
import { EncfsCipher } from '../../daemon/encfs/cipher.js';
import { makeNameCodec, PathCodec, type NameAlgName } from '../../daemon/encfs/names.js';

const cipher = new EncfsCipher({ name: 'ssl/aes', major: 3, keySize: 192 }, randomBytes(40));
const CODECS: [NameAlgName, number][] = [
  ['nameio/block', 4],
  ['nameio/block32', 4],
  ['nameio/stream', 2],
];
const HOSTILE = ['a/b', '../../etc/passwd', '/abs', '..', '.', 'nul\0byte'];

for (const [alg, major] of CODECS) {
  t.test(`${alg}: forged names that are paths are refused`, async (t) => {
    for (const chained of [true, false]) {
      const codec = makeNameCodec(alg, major, cipher);
      const paths = new PathCodec(codec, chained);
      for (const name of HOSTILE) {
        const forged = codec.encode(Buffer.from(name, 'utf8'), chained ? { iv: 5n } : null);
        let thrown: unknown = null;
        try {
          paths.decodeName(forged, 5n);
        } catch (e) {
          thrown = e;
        }
        t.ok(thrown instanceof DvfsError && thrown.code === 'E_NAME', `${JSON.stringify(name)} (chained=${chained}): E_NAME`);
      }
      t.equal(paths.decodeName(paths.encodeName('fine name', 5n).cipher, 5n).name, 'fine name', 'an honest name still decodes');
    }
  });
}
