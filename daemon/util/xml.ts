/**
 * A small, strict XML reader: enough for configuration files (elements, attributes, text, the five
 * predefined entities and numeric references; declarations, DOCTYPE, comments and CDATA are understood).
 * Errors carry the 1-based line number so callers can say where a file is broken.
 */
export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  /** Concatenated text directly inside this element. */
  text: string;
  line: number;
}

export class XmlSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'XmlSyntaxError';
  }
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };

function decodeEntities(s: string, line: number): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (_m, ref: string) => {
    if (ref.startsWith('#x')) return String.fromCodePoint(parseInt(ref.slice(2), 16));
    if (ref.startsWith('#')) return String.fromCodePoint(parseInt(ref.slice(1), 10));
    const v = ENTITIES[ref];
    if (v === undefined) throw new XmlSyntaxError(`unknown entity &${ref};`, line);
    return v;
  });
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&${Object.keys(ENTITIES).find((k) => ENTITIES[k] === c) ?? 'amp'};`);
}

export function parseXml(source: string): XmlElement {
  let pos = 0;
  let line = 1;
  const advance = (to: number): void => {
    for (let i = pos; i < to; i++) if (source.charCodeAt(i) === 10) line++;
    pos = to;
  };
  const expectEnd = (marker: string, what: string): number => {
    const end = source.indexOf(marker, pos);
    if (end < 0) throw new XmlSyntaxError(`unterminated ${what}`, line);
    return end;
  };

  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  while (pos < source.length) {
    const lt = source.indexOf('<', pos);
    if (lt < 0) {
      addText(source.slice(pos));
      advance(source.length);
      break;
    }
    if (lt > pos) {
      addText(source.slice(pos, lt));
      advance(lt);
    }
    if (source.startsWith('<?', pos)) {
      advance(expectEnd('?>', 'processing instruction') + 2);
    } else if (source.startsWith('<!--', pos)) {
      advance(expectEnd('-->', 'comment') + 3);
    } else if (source.startsWith('<![CDATA[', pos)) {
      const end = expectEnd(']]>', 'CDATA section');
      addRawText(source.slice(pos + 9, end));
      advance(end + 3);
    } else if (source.startsWith('<!', pos)) {
      advance(expectEnd('>', 'declaration') + 1);
    } else if (source.startsWith('</', pos)) {
      const end = expectEnd('>', 'closing tag');
      const name = source.slice(pos + 2, end).trim();
      const open = stack.pop();
      if (!open) throw new XmlSyntaxError(`closing tag </${name}> without an open element`, line);
      if (open.name !== name) throw new XmlSyntaxError(`</${name}> closes <${open.name}> (opened on line ${open.line})`, line);
      advance(end + 1);
    } else {
      const end = expectEnd('>', 'tag');
      let body = source.slice(pos + 1, end);
      const selfClosing = body.endsWith('/');
      if (selfClosing) body = body.slice(0, -1);
      const m = /^([A-Za-z_][\w.:-]*)/.exec(body);
      if (!m || m[1] === undefined) throw new XmlSyntaxError('malformed tag', line);
      const element: XmlElement = { name: m[1], attributes: {}, children: [], text: '', line };
      const attrRe = /\s+([A-Za-z_][\w.:-]*)\s*=\s*("([^"]*)"|'([^']*)')/gy;
      attrRe.lastIndex = m[1].length;
      let a: RegExpExecArray | null;
      let consumed = m[1].length;
      while ((a = attrRe.exec(body)) !== null) {
        element.attributes[a[1] as string] = decodeEntities(a[3] ?? a[4] ?? '', line);
        consumed = attrRe.lastIndex;
      }
      if (body.slice(consumed).trim().length > 0) throw new XmlSyntaxError(`malformed attributes in <${element.name}>`, line);
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(element);
      else if (root === null) root = element;
      else throw new XmlSyntaxError('more than one root element', line);
      if (!selfClosing) stack.push(element);
      advance(end + 1);
    }
  }
  const open = stack[stack.length - 1];
  if (open) throw new XmlSyntaxError(`element <${open.name}> is never closed (opened on line ${open.line})`, line);
  if (root === null) throw new XmlSyntaxError('no root element', line);
  return root;

  function addText(raw: string): void {
    addRawText(decodeEntities(raw, line));
  }
  function addRawText(text: string): void {
    const parent = stack[stack.length - 1];
    if (parent) parent.text += text;
    else if (text.trim().length > 0) throw new XmlSyntaxError('text outside the root element', line);
  }
}

export function childElement(parent: XmlElement, name: string): XmlElement | undefined {
  return parent.children.find((c) => c.name === name);
}
