/**
 * Canonical JSON: one byte string per value, so that equal manifests get equal ids.
 *
 * - object keys sorted by UTF-16 code units (every key dvfs writes is ASCII, where that is bytewise order);
 *   properties whose value is undefined are left out;
 * - no whitespace; strings and numbers exactly as JSON.stringify writes them (shortest round-trip numbers,
 *   -0 written as 0); NaN and the infinities are refused;
 * - arrays keep their order.
 *
 * A reader checks canonical form by re-serialising what it parsed and comparing with the bytes it read.
 */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | JsonObject;
export interface JsonObject {
  readonly [key: string]: JsonValue | undefined;
}

function write(v: JsonValue, out: string[]): void {
  if (v === null || typeof v === 'boolean') {
    out.push(String(v));
  } else if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new RangeError(`canonical JSON cannot hold ${v}`);
    out.push(JSON.stringify(v));
  } else if (typeof v === 'string') {
    out.push(JSON.stringify(v));
  } else if (Array.isArray(v)) {
    out.push('[');
    (v as readonly JsonValue[]).forEach((item, i) => {
      if (i > 0) out.push(',');
      write(item, out);
    });
    out.push(']');
  } else {
    const obj = v as JsonObject;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    out.push('{');
    keys.forEach((k, i) => {
      if (i > 0) out.push(',');
      out.push(JSON.stringify(k), ':');
      write(obj[k] as JsonValue, out);
    });
    out.push('}');
  }
}

export function canonicalJson(v: JsonValue): string {
  const out: string[] = [];
  write(v, out);
  return out.join('');
}
