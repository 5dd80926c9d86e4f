/**
 * A small DER encoder and reader over Buffers.
 *
 * Why not forge's ASN.1 module: we embed DER produced elsewhere (Node's SPKI
 * export, a CA's subject Name) and must keep it byte for byte, and forge
 * re-encodes what it parses (binary strings, BIT STRING decoding). Certificates
 * are short and their structure fixed, so a few helpers are enough. The reader
 * runs once per TLS connection (client certificate identity), so it works on
 * Buffers without copying.
 */
import { PkiError } from './errors.js';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

// ---------------------------------------------------------------- encoding

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV with an arbitrary tag byte. */
export function tlv(tag: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export const seq = (...items: Uint8Array[]): Buffer => tlv(TAG.SEQUENCE, Buffer.concat(items));
/** A SET OF; DER wants its elements sorted by their encodings. */
export const setOf = (...items: Uint8Array[]): Buffer => tlv(TAG.SET, Buffer.concat([...items].sort((a, b) => Buffer.compare(a, b))));
export const octets = (b: Uint8Array): Buffer => tlv(TAG.OCTET_STRING, b);
export const nullValue = (): Buffer => Buffer.from([TAG.NULL, 0]);
export const boolTrue = (): Buffer => Buffer.from([TAG.BOOLEAN, 1, 0xff]);
export const utf8 = (s: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
export const ia5 = (s: string): Buffer => tlv(TAG.IA5_STRING, Buffer.from(s, 'ascii'));
/** BMPString (UCS-2 big-endian), as PKCS#12 friendlyName wants it. */
export function bmp(s: string): Buffer {
  const b = Buffer.from(s, 'utf16le');
  b.swap16();
  return tlv(TAG.BMP_STRING, b);
}
/** Context-specific tag `[n]`, constructed (EXPLICIT or a constructed IMPLICIT type) or primitive (IMPLICIT). */
export const ctx = (n: number, constructed: boolean, content: Uint8Array): Buffer => tlv(0x80 | (constructed ? 0x20 : 0) | n, content);
/** BIT STRING with no unused bits (signatures, keys). */
export const bitString = (b: Uint8Array): Buffer => tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), b]));

/** A non-negative INTEGER from its big-endian magnitude (a 0x00 is prepended when the top bit is set). */
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  let body = Buffer.from(magnitude.subarray(start));
  if (body.length === 0) body = Buffer.from([0]);
  if ((body[0] ?? 0) & 0x80) body = Buffer.concat([Buffer.from([0]), body]);
  return tlv(TAG.INTEGER, body);
}

export function smallInteger(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new PkiError('BAD_ARGUMENT', `not a small non-negative integer: ${n}`);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return unsignedInteger(Buffer.from(bytes));
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map((p) => Number(p));
  if (parts.length < 2 || parts.some((p) => !Number.isSafeInteger(p) || p < 0)) throw new PkiError('BAD_ARGUMENT', `bad OID ${dotted}`);
  const [first = 0, second = 0, ...rest] = parts;
  const out: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const chunk: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; seconds, always Zulu. */
export function time(d: Date): Buffer {
  const y = d.getUTCFullYear();
  const rest = `${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(TAG.UTC_TIME, Buffer.from(`${pad(y % 100)}${rest}`, 'ascii'));
  if (y < 0 || y > 9999) throw new PkiError('BAD_ARGUMENT', `date out of range: ${d.toISOString()}`);
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(`${pad(y, 4)}${rest}`, 'ascii'));
}

// ---------------------------------------------------------------- reading

/** One element: `tag`, and the offsets of its whole encoding and of its content in the shared buffer. */
export interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
  readonly buf: Buffer;
}

function malformed(what: string): PkiError {
  return new PkiError('BAD_ARGUMENT', `malformed DER: ${what}`);
}

/** Reads one element at `offset`, bounded by `limit`. Only definite lengths (DER). */
export function readTlv(buf: Buffer, offset = 0, limit = buf.length): Tlv {
  if (offset + 2 > limit) throw malformed('truncated header');
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw malformed('high tag numbers are not used here');
  let len = buf[offset + 1] as number;
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw malformed('indefinite or oversized length');
    if (p + n > limit) throw malformed('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[p + i] as number);
    p += n;
  }
  if (p + len > limit) throw malformed('content runs past its container');
  return { tag, start: offset, contentStart: p, end: p + len, buf };
}

/** The children of a constructed element, in order. */
export function children(t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = t.contentStart; p < t.end;) {
    const c = readTlv(t.buf, p, t.end);
    out.push(c);
    p = c.end;
  }
  return out;
}

export const content = (t: Tlv): Buffer => t.buf.subarray(t.contentStart, t.end);
export const whole = (t: Tlv): Buffer => t.buf.subarray(t.start, t.end);

export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined || t.tag !== tag) throw malformed(`expected ${what}`);
  return t;
}

/** Dotted form of an OID element. */
export function readOid(t: Tlv): string {
  const b = content(expectTag(t, TAG.OID, 'OBJECT IDENTIFIER'));
  const arcs: number[] = [];
  let v = 0;
  for (const byte of b) {
    v = v * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      arcs.push(v);
      v = 0;
    }
  }
  const [first = 0, ...rest] = arcs;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...rest].join('.');
}

/** Reads UTCTime / GeneralizedTime (whole seconds, `Z`) as a Date. */
export function readTime(t: Tlv): Date {
  const s = content(t).toString('ascii');
  let m: RegExpExecArray | null;
  let year: number;
  if (t.tag === TAG.UTC_TIME && (m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s))) {
    const yy = Number(m[1]);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
  } else if (t.tag === TAG.GENERALIZED_TIME && (m = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s))) {
    year = Number(m[1]);
  } else {
    throw malformed(`time ${JSON.stringify(s)}`);
  }
  const ms = Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  const d = new Date(ms);
  if (year < 100) d.setUTCFullYear(year); // Date.UTC maps two-digit years to 19xx
  return d;
}

/** Text of a directory string (UTF8String, PrintableString, IA5String; T61/BMP are refused: we never issue them). */
export function readDirectoryString(t: Tlv): string | undefined {
  switch (t.tag) {
    case TAG.UTF8_STRING:
      try {
        return new TextDecoder('utf-8', { fatal: true }).decode(content(t));
      } catch {
        return undefined;
      }
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
      return content(t).toString('latin1');
    default:
      return undefined;
  }
}
