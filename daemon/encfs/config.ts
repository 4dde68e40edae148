/**
 * `.encfs6.xml`: the EncFS V6 volume configuration (a boost-serialization XML archive). Reads every field
 * with EncFS 1.9's lookup-by-name rules, writes them in the order boost-based readers expect, and knows the
 * `standard` and `paranoia` presets as `encfs` 1.9.5 creates them.
 */
import { DvfsError } from '../errors.js';
import { childElement, escapeXml, parseXml, XmlSyntaxError, type XmlElement } from '../util/xml.js';
import { cipherGeometry, isCipherName, type CipherName } from './cipher.js';
import { checkNameInterface, isNameAlg, type NameAlgName } from './names.js';

export const CONFIG_FILE_NAME = '.encfs6.xml';

export interface Interface<N extends string> {
  name: N;
  major: number;
  minor: number;
}

export interface EncfsConfig {
  /** Config sub-version (20100713 for current volumes). */
  subVersion: number;
  creator: string;
  cipherAlg: Interface<CipherName>;
  nameAlg: Interface<NameAlgName>;
  /** Key size in bits. */
  keySize: number;
  /** File block size in bytes, MAC header included. */
  blockSize: number;
  plainData: boolean;
  uniqueIV: boolean;
  chainedNameIV: boolean;
  externalIVChaining: boolean;
  blockMACBytes: number;
  blockMACRandBytes: number;
  allowHoles: boolean;
  encodedKeyData: Buffer;
  saltData: Buffer;
  kdfIterations: number;
  desiredKDFDuration: number;
}

export type Preset = 'standard' | 'paranoia';

export const PRESETS: Record<Preset, Omit<EncfsConfig, 'encodedKeyData' | 'saltData' | 'kdfIterations' | 'creator' | 'subVersion'>> = {
  standard: {
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
    desiredKDFDuration: 500,
  },
  paranoia: {
    cipherAlg: { name: 'ssl/aes', major: 3, minor: 0 },
    nameAlg: { name: 'nameio/block', major: 4, minor: 0 },
    keySize: 256,
    blockSize: 1024,
    plainData: false,
    uniqueIV: true,
    chainedNameIV: true,
    externalIVChaining: true,
    blockMACBytes: 8,
    blockMACRandBytes: 0,
    allowHoles: true,
    desiredKDFDuration: 3000,
  },
};

export const CURRENT_SUBVERSION = 20100713;

function configError(path: string, message: string, hint?: string): DvfsError {
  return new DvfsError('E_CONFIG', message, { path, ...(hint === undefined ? {} : { hint }) });
}

/** Parses and validates `.encfs6.xml` text. `path` is used in error messages. */
export function parseConfig(xml: string, path: string): EncfsConfig {
  let root: XmlElement;
  try {
    root = parseXml(xml);
  } catch (e) {
    if (e instanceof XmlSyntaxError) {
      throw configError(`${path}:${e.line}`, `not valid XML: ${e.message.replace(/^line \d+: /, '')}`, 'restore the file from a backup');
    }
    throw e;
  }
  if (root.name !== 'boost_serialization') {
    throw configError(path, `root element is <${root.name}>, expected <boost_serialization>`, 'is this an EncFS V6 config?');
  }
  const cfg = childElement(root, 'cfg') ?? childElement(root, 'config');
  if (!cfg) throw configError(path, 'no <cfg> element inside <boost_serialization>');

  const at = (el: XmlElement): string => `${path}:${el.line}`;
  const required = (name: string, parent: XmlElement = cfg): XmlElement => {
    const el = childElement(parent, name);
    if (!el) throw configError(`${path}:${parent.line}`, `missing <${name}>`);
    return el;
  };
  const int = (name: string, dflt?: number, parent: XmlElement = cfg): number => {
    const el = childElement(parent, name);
    if (!el) {
      if (dflt === undefined) throw configError(`${path}:${parent.line}`, `missing <${name}>`);
      return dflt;
    }
    const text = el.text.trim();
    if (!/^[+-]?\d+$/.test(text)) throw configError(at(el), `<${name}> is '${text}', expected an integer`);
    return Number(text);
  };
  const bool = (name: string, dflt: boolean): boolean => int(name, dflt ? 1 : 0) !== 0;
  const b64 = (name: string, declaredLen: number | undefined): Buffer => {
    const el = required(name);
    const text = el.text.replace(/\s+/g, '').replace(/=+$/, '');
    if (!/^[A-Za-z0-9+/]*$/.test(text)) throw configError(at(el), `<${name}> is not base64`);
    const bytes = Buffer.from(text, 'base64');
    if (declaredLen !== undefined && bytes.length !== declaredLen) {
      throw configError(at(el), `<${name}> holds ${bytes.length} bytes but its declared size is ${declaredLen}`);
    }
    return bytes;
  };
  const iface = <N extends string>(name: string, guard: (s: string) => s is N, what: string): Interface<N> => {
    const el = required(name);
    const algName = required('name', el).text.trim();
    if (!guard(algName)) {
      throw new DvfsError('E_UNSUPPORTED', `unsupported ${what} '${algName}'`, { path: at(el) });
    }
    return { name: algName, major: int('major', undefined, el), minor: int('minor', 0, el) };
  };

  // Version: the <version> child, else the cfg element's version attribute (boost <= 1.41 wrote it there).
  const versionEl = childElement(cfg, 'version');
  const rawVersion = versionEl ? Number(versionEl.text.trim()) : Number(cfg.attributes['version']);
  if (!Number.isFinite(rawVersion)) throw configError(path, 'missing config version');
  let subVersion: number;
  if (rawVersion === 20 || rawVersion >= 20100713) subVersion = rawVersion === 20 ? CURRENT_SUBVERSION : rawVersion;
  else if (rawVersion === 26800) subVersion = 20080816;
  else if (rawVersion === 26797) subVersion = 20080813;
  else subVersion = rawVersion;
  if (subVersion < 20080813) {
    throw new DvfsError('E_UNSUPPORTED', `config version ${rawVersion} is older than EncFS V6`, { path });
  }

  const cipherAlg = iface('cipherAlg', isCipherName, 'cipher');
  const nameAlg = iface('nameAlg', isNameAlg, 'name codec');
  checkNameInterface(nameAlg.name, nameAlg.major, path);
  const keySize = int('keySize', 0);
  const geometry = cipherGeometry({ name: cipherAlg.name, major: cipherAlg.major, keySize }, path);
  const encodedKeySize = int('encodedKeySize');
  if (encodedKeySize !== 4 + geometry.keyLen + geometry.ivLen) {
    throw configError(path, `encodedKeySize is ${encodedKeySize}, expected ${4 + geometry.keyLen + geometry.ivLen} for ${cipherAlg.name} ${geometry.keyBits}`);
  }
  const hasSalt = subVersion >= 20080816;
  const config: EncfsConfig = {
    subVersion,
    creator: childElement(cfg, 'creator')?.text.trim() ?? '',
    cipherAlg,
    nameAlg,
    keySize: geometry.keyBits,
    blockSize: int('blockSize'),
    plainData: bool('plainData', false),
    uniqueIV: bool('uniqueIV', false),
    chainedNameIV: bool('chainedNameIV', false),
    externalIVChaining: bool('externalIVChaining', false),
    blockMACBytes: int('blockMACBytes', 0),
    blockMACRandBytes: int('blockMACRandBytes', 0),
    allowHoles: bool('allowHoles', false),
    encodedKeyData: b64('encodedKeyData', encodedKeySize),
    saltData: hasSalt ? b64('saltData', int('saltLen')) : Buffer.alloc(0),
    kdfIterations: hasSalt ? int('kdfIterations') : 16,
    desiredKDFDuration: int('desiredKDFDuration', 500),
  };
  validateConfig(config, path);
  return config;
}

/** Checks the field combinations EncFS would refuse or could not have written. */
export function validateConfig(c: EncfsConfig, path: string): void {
  const { cipherBlockSize } = cipherGeometry({ name: c.cipherAlg.name, major: c.cipherAlg.major, keySize: c.keySize }, path);
  if (c.blockSize < 64 || c.blockSize > 4096 || c.blockSize % cipherBlockSize !== 0) {
    throw configError(path, `blockSize ${c.blockSize} is not a multiple of ${cipherBlockSize} between 64 and 4096`);
  }
  if (c.blockMACBytes < 0 || c.blockMACBytes > 8) throw configError(path, `blockMACBytes ${c.blockMACBytes} is outside 0..8`);
  if (c.blockMACRandBytes < 0 || c.blockMACBytes + c.blockMACRandBytes >= c.blockSize) {
    throw configError(path, `blockMACRandBytes ${c.blockMACRandBytes} does not fit the block`);
  }
  if (c.kdfIterations < 1) throw configError(path, `kdfIterations ${c.kdfIterations} must be at least 1`);
  if (c.plainData) {
    throw new DvfsError('E_UNSUPPORTED', 'plainData volumes (encfs --insecure) store contents unencrypted', {
      path,
      hint: 'dvfs only works on encrypted volumes',
    });
  }
}

/** Serialises a config the way EncFS 1.9.5 writes it (field order matters to boost-based readers). */
export function serializeConfig(c: EncfsConfig): string {
  const b64 = (b: Buffer): string => `\n${b.toString('base64')}\n`;
  const encodedKeySize = c.encodedKeyData.length;
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE boost_serialization>',
    '<boost_serialization signature="serialization::archive" version="7">',
    '    <cfg class_id="0" tracking_level="0" version="20">',
    `        <version>${c.subVersion}</version>`,
    `        <creator>${escapeXml(c.creator)}</creator>`,
    '        <cipherAlg class_id="1" tracking_level="0" version="0">',
    `            <name>${c.cipherAlg.name}</name>`,
    `            <major>${c.cipherAlg.major}</major>`,
    `            <minor>${c.cipherAlg.minor}</minor>`,
    '        </cipherAlg>',
    '        <nameAlg>',
    `            <name>${c.nameAlg.name}</name>`,
    `            <major>${c.nameAlg.major}</major>`,
    `            <minor>${c.nameAlg.minor}</minor>`,
    '        </nameAlg>',
    `        <keySize>${c.keySize}</keySize>`,
    `        <blockSize>${c.blockSize}</blockSize>`,
    ...(c.plainData ? ['        <plainData>1</plainData>'] : []),
    `        <uniqueIV>${+c.uniqueIV}</uniqueIV>`,
    `        <chainedNameIV>${+c.chainedNameIV}</chainedNameIV>`,
    `        <externalIVChaining>${+c.externalIVChaining}</externalIVChaining>`,
    `        <blockMACBytes>${c.blockMACBytes}</blockMACBytes>`,
    `        <blockMACRandBytes>${c.blockMACRandBytes}</blockMACRandBytes>`,
    `        <allowHoles>${+c.allowHoles}</allowHoles>`,
    `        <encodedKeySize>${encodedKeySize}</encodedKeySize>`,
    `        <encodedKeyData>${b64(c.encodedKeyData)}</encodedKeyData>`,
    `        <saltLen>${c.saltData.length}</saltLen>`,
    `        <saltData>${b64(c.saltData)}</saltData>`,
    `        <kdfIterations>${c.kdfIterations}</kdfIterations>`,
    `        <desiredKDFDuration>${c.desiredKDFDuration}</desiredKDFDuration>`,
    '    </cfg>',
    '</boost_serialization>',
    '',
  ];
  return lines.join('\n');
}
