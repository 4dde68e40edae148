// .encfs6.xml: read what stock EncFS writes, write what it reads, and refuse bad files with the file, the
// line where known, and the cause.
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, serializeConfig, PRESETS } from '../../daemon/encfs/config.js';
import { EncfsVolume } from '../../daemon/encfs/volume.js';
import { DvfsError } from '../../daemon/errors.js';

const STOCK_STANDARD = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE boost_serialization>
<boost_serialization signature="serialization::archive" version="7">
    <cfg class_id="0" tracking_level="0" version="20">
        <version>20100713</version>
        <creator>EncFS 1.9.5</creator>
        <cipherAlg class_id="1" tracking_level="0" version="0">
            <name>ssl/aes</name>
            <major>3</major>
            <minor>0</minor>
        </cipherAlg>
        <nameAlg>
            <name>nameio/block</name>
            <major>4</major>
            <minor>0</minor>
        </nameAlg>
        <keySize>192</keySize>
        <blockSize>1024</blockSize>
        <plainData>0</plainData>
        <uniqueIV>1</uniqueIV>
        <chainedNameIV>1</chainedNameIV>
        <externalIVChaining>0</externalIVChaining>
        <blockMACBytes>0</blockMACBytes>
        <blockMACRandBytes>0</blockMACRandBytes>
        <allowHoles>1</allowHoles>
        <encodedKeySize>44</encodedKeySize>
        <encodedKeyData>
+qPhkOEwsxhmeghgGYlexofVLdT39dHDAW0MSNV0xPoeMa4qBihM1X9FdD4=
</encodedKeyData>
        <saltLen>20</saltLen>
        <saltData>
tccFKejCQQ9w0b9oEaATUZ0eFWE=
</saltData>
        <kdfIterations>1389869</kdfIterations>
        <desiredKDFDuration>500</desiredKDFDuration>
    </cfg>
</boost_serialization>
`;

t.test('parses a stock 1.9.5 standard config, every field', async (t) => {
  const c = parseConfig(STOCK_STANDARD, 'std.xml');
  t.same(
    { ...c, encodedKeyData: c.encodedKeyData.toString('hex'), saltData: c.saltData.toString('base64') },
    {
      subVersion: 20100713,
      creator: 'EncFS 1.9.5',
      cipherAlg: { name: 'ssl/aes', major: 3, minor: 0 },
      nameAlg: { name: 'nameio/block', major: 4, minor: 0 },
      keySize: 192,
      blockSize: 1024,
      plainData: false,
      uniqueIV: true,
      chainedNameIV: true,
      externalIVChaining: false,
      blockMACBytes: 0,
      blockMACRandBytes: 0,
      allowHoles: true,
      encodedKeyData: 'faa3e190e130b318667a086019895ec687d52dd4f7f5d1c3016d0c48d574c4fa1e31ae2a06284cd57f45743e',
      saltData: 'tccFKejCQQ9w0b9oEaATUZ0eFWE=',
      kdfIterations: 1389869,
      desiredKDFDuration: 500,
    },
  );
});

t.test('serialize → parse is the identity, and the element order is the boost order', async (t) => {
  const c = parseConfig(STOCK_STANDARD, 'std.xml');
  const again = parseConfig(serializeConfig(c), 'again.xml');
  t.same(again, c);
  const out = serializeConfig(c);
  const order = [...out.matchAll(/^ {8}<(\w+)/gm)].map((m) => m[1]);
  t.same(order, ['version', 'creator', 'cipherAlg', 'nameAlg', 'keySize', 'blockSize', 'uniqueIV', 'chainedNameIV', 'externalIVChaining', 'blockMACBytes', 'blockMACRandBytes', 'allowHoles', 'encodedKeySize', 'encodedKeyData', 'saltLen', 'saltData', 'kdfIterations', 'desiredKDFDuration']);
  t.notMatch(out, /plainData/, 'plainData is omitted unless set (boost-based readers reject it)');
});

t.test('tolerates the 1.7 boost layout: tabs, CRLF, no plainData, reordered fields', async (t) => {
  const old = STOCK_STANDARD.replace(/ {4}/g, '\t').replace(/\n/g, '\r\n').replace(/\s*<plainData>0<\/plainData>/, '').replace('<major>4</major>', '<major>3</major>');
  const moved = old.replace(/(\s*<keySize>192<\/keySize>)/, '').replace('<blockSize>', '<keySize>192</keySize><blockSize>');
  const c = parseConfig(moved, 'old.xml');
  t.equal(c.keySize, 192);
  t.equal(c.nameAlg.major, 3);
});

t.test('bad configs are refused with the file, line and cause', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['truncated XML', STOCK_STANDARD.slice(0, 900), /bad\.xml:\d+: not valid XML: /],
    ['not EncFS', '<?xml version="1.0"?><html></html>', /expected <boost_serialization>/],
    ['unknown cipher', STOCK_STANDARD.replace('ssl/aes', 'ssl/des'), /unsupported cipher 'ssl\/des'/],
    ['future cipher major', STOCK_STANDARD.replace('<major>3</major>', '<major>4</major>'), /unsupported cipher interface ssl\/aes major 4/],
    ['unknown name codec', STOCK_STANDARD.replace('nameio/block', 'nameio/rot13'), /unsupported name codec 'nameio\/rot13'/],
    ['bad key size', STOCK_STANDARD.replace('<encodedKeySize>44', '<encodedKeySize>52'), /encodedKeySize is 52, expected 44/],
    ['short key data', STOCK_STANDARD.replace('+qPhkOEws', 'qPhkOEws'), /encodedKeyData> holds \d+ bytes but its declared size is 44/],
    ['non-integer', STOCK_STANDARD.replace('<blockSize>1024', '<blockSize>lots'), /<blockSize> is 'lots', expected an integer/],
    ['odd block size', STOCK_STANDARD.replace('<blockSize>1024', '<blockSize>1000'), /blockSize 1000 is not a multiple of 16/],
    ['insecure volume', STOCK_STANDARD.replace('<plainData>0', '<plainData>1'), /plainData volumes/],
  ];
  for (const [what, xml, message] of cases) {
    let error: unknown = null;
    try {
      parseConfig(xml, 'bad.xml');
    } catch (e) {
      error = e;
    }
    t.type(error, DvfsError, `${what}: refused`);
    const line = error instanceof DvfsError ? error.oneLine() : '';
    t.match(line, message, `${what}: ${line}`);
    t.match(line, /^bad\.xml/, `${what}: names the file`);
  }
});

t.test('volume open: missing config, wrong password', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await t.rejects(EncfsVolume.open(dir, Buffer.from('x')), { code: 'E_NOTFOUND', message: /no EncFS config here/ });
  const vol = join(dir, 'vol');
  await EncfsVolume.create(vol, Buffer.from('right'), { preset: 'paranoia', kdfIterations: 1000 });
  await t.rejects(EncfsVolume.open(vol, Buffer.from('wrong')), { code: 'E_PASSWORD', message: /wrong password/ });
  const opened = await EncfsVolume.open(vol, Buffer.from('right'));
  t.same({ ...opened.config, encodedKeyData: null, saltData: null, kdfIterations: 0, creator: '', subVersion: 0 }, { ...PRESETS.paranoia, encodedKeyData: null, saltData: null, kdfIterations: 0, creator: '', subVersion: 0 });
  const xml = await readFile(join(vol, '.encfs6.xml'), 'utf8');
  await writeFile(join(vol, '.encfs6.xml'), xml.replace('<kdfIterations>1000', '<kdfIterations>1001'));
  await t.rejects(EncfsVolume.open(vol, Buffer.from('right')), { code: 'E_PASSWORD' }, 'a changed iteration count derives another key');
});
