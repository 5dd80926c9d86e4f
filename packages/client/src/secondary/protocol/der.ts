/**
 * A small, strict DER TLV layer: exactly the subset of X.690 that the
 * IP-Secondary schema needs (SEQUENCE, SEQUENCE OF, OCTET STRING, UTF8String,
 * INTEGER, ENUMERATED and explicit context tags).
 *
 * Why hand-written and not asn1js (3.1.0, installed in this package):
 * - asn1js decodes BER leniently (indefinite lengths, non-minimal lengths and
 *   integers, constructed strings), so DER strictness would need a second pass
 *   over its object tree anyway;
 * - it materialises a generic object tree of every element it meets (bounded in
 *   depth, but not in count), where a schema-driven reader never descends
 *   further than the schema (at most five levels here) and steps over unknown
 *   elements by their headers alone;
 * - it reports failures as strings on result objects, where we need one typed
 *   error with an offset and a field path;
 * - the TCP framing must parse a TLV header incrementally before the body has
 *   arrived, which is this module's `readHeader`.
 * asn1js is still used, in the tests, as an independent oracle for our bytes.
 *
 * Everything here works on plain Uint8Arrays and never throws anything but
 * IpUptaneError.
 */
import { IpUptaneError } from './errors.js';

export const CLASS_UNIVERSAL = 0;
export const CLASS_APPLICATION = 1;
export const CLASS_CONTEXT = 2;
export const CLASS_PRIVATE = 3;

/** Identifier octets of the universal types the schema uses (all single-byte). */
export const ID_INTEGER = 0x02;
export const ID_OCTET_STRING = 0x04;
export const ID_ENUMERATED = 0x0a;
export const ID_UTF8_STRING = 0x0c;
export const ID_SEQUENCE = 0x30;

/** Longest identifier we parse: one byte plus four base-128 bytes (tag numbers below 2^28). */
const MAX_TAG_BYTES = 5;
/** Longest length field we parse: one byte plus four bytes (lengths below 2^32). */
const MAX_LENGTH_BYTES = 5;
/** A TLV header never needs more than this many bytes. */
export const MAX_HEADER_BYTES = MAX_TAG_BYTES + MAX_LENGTH_BYTES;

export interface TlvHeader {
  readonly tagClass: number;
  readonly constructed: boolean;
  readonly tagNumber: number;
  /** Bytes taken by the identifier and length octets. */
  readonly headerLength: number;
  /** Bytes of content. */
  readonly length: number;
}

function bad(message: string, offset: number, path?: string): IpUptaneError {
  return new IpUptaneError('BAD_MESSAGE', message, { offset, ...(path === undefined ? {} : { path }) });
}

/**
 * Parses the TLV header at `offset`. Returns undefined when the bytes in
 * [offset, end) are a valid prefix of a header but not all of it (the framing
 * then waits for more); throws on anything DER forbids.
 */
export function readHeader(buf: Uint8Array, offset: number, end: number, path?: string): TlvHeader | undefined {
  let pos = offset;
  if (pos >= end) return undefined;
  const first = buf[pos++]!;
  const tagClass = first >> 6;
  const constructed = (first & 0x20) !== 0;
  let tagNumber = first & 0x1f;
  if (tagNumber === 0x1f) {
    // High-tag-number form: base-128, most significant group first.
    tagNumber = 0;
    for (let i = 0; ; i++) {
      if (pos >= end) return undefined;
      if (i >= MAX_TAG_BYTES - 1) throw bad('tag number too large', offset, path);
      const b = buf[pos++]!;
      if (i === 0 && b === 0x80) throw bad('non-minimal tag number', offset, path);
      tagNumber = tagNumber * 128 + (b & 0x7f);
      if ((b & 0x80) === 0) break;
    }
    if (tagNumber < 0x1f) throw bad('high-tag-number form for a low tag number', offset, path);
  }
  if (pos >= end) return undefined;
  const l0 = buf[pos++]!;
  let length: number;
  if (l0 < 0x80) {
    length = l0;
  } else if (l0 === 0x80) {
    throw bad('indefinite length is not DER', offset, path);
  } else {
    const n = l0 & 0x7f;
    if (n > MAX_LENGTH_BYTES - 1) throw bad(`length of ${n} octets is too large`, offset, path);
    if (pos + n > end) return undefined;
    if (buf[pos] === 0) throw bad('non-minimal length (leading zero)', offset, path);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos++]!;
    if (length < 0x80) throw bad('non-minimal length (long form for a short length)', offset, path);
  }
  return { tagClass, constructed, tagNumber, headerLength: pos - offset, length };
}

/**
 * A cursor over the content of one constructed element of a complete message.
 * Every read checks that the element fits inside its parent.
 */
export class DerReader {
  private pos: number;

  constructor(
    private readonly buf: Uint8Array,
    start: number,
    private readonly end: number,
    readonly path: string,
  ) {
    this.pos = start;
  }

  get offset(): number {
    return this.pos;
  }

  atEnd(): boolean {
    return this.pos >= this.end;
  }

  /** The next element's header and content bounds; advances past it. */
  next(path: string = this.path): { header: TlvHeader; start: number; end: number } {
    const at = this.pos;
    const header = readHeader(this.buf, at, this.end, path);
    if (header === undefined) throw new IpUptaneError('TRUNCATED', `truncated element header at ${path}`, { offset: at, path });
    const start = at + header.headerLength;
    const end = start + header.length;
    if (end > this.end) throw new IpUptaneError('TRUNCATED', `element at ${path} is longer than its container`, { offset: at, path });
    this.pos = end;
    return { header, start, end };
  }

  /** The next element, which must carry the single-byte identifier `id`. */
  expect(id: number, what: string, path: string): { start: number; end: number } {
    const at = this.pos;
    if (this.atEnd()) throw bad(`missing ${what} at ${path}`, at, path);
    const { header, start, end } = this.next(path);
    const actual = (header.tagClass << 6) | (header.constructed ? 0x20 : 0) | header.tagNumber;
    if (header.tagNumber > 30 || actual !== id) {
      throw bad(`expected ${what} at ${path}, found tag class ${header.tagClass} number ${header.tagNumber}`, at, path);
    }
    return { start, end };
  }

  sub(start: number, end: number, path: string): DerReader {
    return new DerReader(this.buf, start, end, path);
  }

  /** The underlying buffer, for reading small contents in place. */
  bytesView(): Uint8Array {
    return this.buf;
  }

  bytes(start: number, end: number): Uint8Array {
    // A copy, so that callers may keep a field without pinning the whole message.
    return this.buf.slice(start, end);
  }

  /**
   * Skips extension additions (elements after the last known field of an
   * extensible SEQUENCE), as X.680 requires of a decoder and as asn1c does.
   * Each must still be a well-formed TLV inside the parent.
   */
  skipExtensions(allow: boolean): void {
    if (!this.atEnd() && !allow) throw bad(`unexpected element after the last field of ${this.path}`, this.pos, this.path);
    while (!this.atEnd()) this.next(`${this.path}.<extension>`);
  }

  /** The reader must be exhausted (no trailing bytes inside a non-extensible element). */
  finish(): void {
    if (!this.atEnd()) throw bad(`trailing bytes in ${this.path}`, this.pos, this.path);
  }
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

export function decodeUtf8(bytes: Uint8Array, offset: number, path: string): string {
  try {
    return utf8Decoder.decode(bytes);
  } catch (err) {
    throw new IpUptaneError('BAD_MESSAGE', `invalid UTF-8 at ${path}`, { offset, path, cause: err });
  }
}

/** True when the string has no lone surrogate (which UTF-8 cannot carry; TextEncoder would silently replace it). */
export function isWellFormedString(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return false;
    }
  }
  return true;
}

export function encodeUtf8(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

/** Decodes a DER INTEGER or ENUMERATED content: minimal two's complement, within the safe-integer range. */
export function decodeInteger(buf: Uint8Array, start: number, end: number, path: string): number {
  const n = end - start;
  if (n === 0) throw bad(`empty integer at ${path}`, start, path);
  if (n > 8) throw bad(`integer at ${path} is too large`, start, path);
  const b0 = buf[start]!;
  if (n > 1) {
    const b1 = buf[start + 1]!;
    if ((b0 === 0x00 && (b1 & 0x80) === 0) || (b0 === 0xff && (b1 & 0x80) !== 0)) throw bad(`non-minimal integer at ${path}`, start, path);
  }
  let v = BigInt(b0 & 0x80 ? b0 - 256 : b0);
  for (let i = start + 1; i < end; i++) v = (v << 8n) | BigInt(buf[i]!);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw bad(`integer at ${path} is outside the safe range`, start, path);
  return Number(v);
}

/** Minimal two's-complement content octets of a safe integer. */
export function encodeIntegerContent(value: number): Uint8Array {
  let v = BigInt(value);
  const out: number[] = [];
  // Emit bytes least significant first until the remaining value is pure sign extension of the last byte's top bit.
  for (;;) {
    const byte = Number(v & 0xffn);
    out.push(byte);
    v >>= 8n;
    if ((v === 0n && (byte & 0x80) === 0) || (v === -1n && (byte & 0x80) !== 0)) break;
  }
  return Uint8Array.from(out.reverse());
}

export function encodeLength(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const bytes: number[] = [];
  for (let v = length; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Uint8Array.from([0x80 | bytes.length, ...bytes]);
}

/**
 * Encoded elements are kept as lists of parts and concatenated once at the
 * end, so nesting costs no copies of large contents (metadata, image chunks).
 */
export interface Encoded {
  readonly parts: readonly Uint8Array[];
  readonly length: number;
}

export function tlv(id: number, contents: readonly Encoded[]): Encoded {
  let length = 0;
  for (const c of contents) length += c.length;
  const header = Uint8Array.from([id, ...encodeLength(length)]);
  const parts: Uint8Array[] = [header];
  for (const c of contents) parts.push(...c.parts);
  return { parts, length: header.length + length };
}

export function primitive(id: number, content: Uint8Array): Encoded {
  const header = Uint8Array.from([id, ...encodeLength(content.length)]);
  return { parts: [header, content], length: header.length + content.length };
}

export function concat(e: Encoded): Uint8Array {
  const out = new Uint8Array(e.length);
  let pos = 0;
  for (const p of e.parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
