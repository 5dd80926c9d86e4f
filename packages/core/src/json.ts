/**
 * Strict JSON parsing and the two canonical JSON forms used for signing.
 *
 * Why not JSON.parse: it silently keeps the last of duplicate keys, accepts lone
 * UTF-16 surrogates and rounds integers beyond 2^53. Each of those lets two
 * parsers disagree about what was signed (uptane-standard.md A19), so metadata
 * and manifests go through `parseJson` below, which refuses them.
 *
 * Why not only @tufjs/canonical-json: it has no jsoncpp (aktualizr) form, it
 * does not refuse floats with a typed error, and building arrays of fragments
 * is slower than one pass. Our `tuf` form is property-tested byte for byte
 * against it (json.test.ts).
 */
import { JsonError } from './errors.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export interface ParseOptions {
  /** Maximum nesting of arrays and objects (default 64). */
  readonly maxDepth?: number;
  /** Refuse any number that is not a safe integer (default true: signed metadata has no floats). */
  readonly integersOnly?: boolean;
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes UTF-8 strictly (invalid sequences are an error, a BOM is refused). */
export function decodeUtf8(bytes: Uint8Array): string {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch (err) {
    throw new JsonError('input is not valid UTF-8', { cause: err });
  }
  if (text.charCodeAt(0) === 0xfeff) throw new JsonError('a byte order mark is not allowed');
  return text;
}

/** Parses strict JSON from bytes or text. Throws JsonError on anything ambiguous. */
export function parseJson(input: Uint8Array | string, options: ParseOptions = {}): JsonValue {
  const text = typeof input === 'string' ? input : decodeUtf8(input);
  const parser = new Parser(text, options.maxDepth ?? 64, options.integersOnly ?? true);
  return parser.parseDocument();
}

/**
 * Parses a strict JSON object and also returns the exact source text of one
 * of its top-level members' values (e.g. `signed`), so that signatures can be
 * checked over the bytes received when they are already canonical.
 */
export function parseJsonWithMember(
  input: Uint8Array | string,
  member: string,
  options: ParseOptions = {},
): { value: JsonValue; memberText: string | undefined } {
  const text = typeof input === 'string' ? input : decodeUtf8(input);
  const parser = new Parser(text, options.maxDepth ?? 64, options.integersOnly ?? true, member);
  const value = parser.parseDocument();
  return { value, memberText: parser.capturedText() };
}

class Parser {
  private pos = 0;
  private captured: [number, number] | undefined;
  constructor(
    private readonly s: string,
    private readonly maxDepth: number,
    private readonly integersOnly: boolean,
    /** A top-level member whose value's source span is recorded. */
    private readonly captureKey?: string,
  ) {}

  capturedText(): string | undefined {
    return this.captured ? this.s.slice(this.captured[0], this.captured[1]) : undefined;
  }

  parseDocument(): JsonValue {
    this.skipWs();
    const value = this.parseValue(0);
    this.skipWs();
    if (this.pos !== this.s.length) this.fail('unexpected data after the JSON value');
    return value;
  }

  private fail(message: string): never {
    throw new JsonError(`${message} at offset ${this.pos}`);
  }

  private skipWs(): void {
    const s = this.s;
    let p = this.pos;
    for (;;) {
      const c = s.charCodeAt(p);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else break;
    }
    this.pos = p;
  }

  private parseValue(depth: number): JsonValue {
    const c = this.s.charCodeAt(this.pos);
    switch (c) {
      case 0x7b: // {
        return this.parseObject(depth + 1);
      case 0x5b: // [
        return this.parseArray(depth + 1);
      case 0x22: // "
        return this.parseString();
      case 0x74: // t
        return this.literal('true', true);
      case 0x66: // f
        return this.literal('false', false);
      case 0x6e: // n
        return this.literal('null', null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.parseNumber();
        if (Number.isNaN(c)) this.fail('unexpected end of input');
        return this.fail(`unexpected character ${JSON.stringify(this.s[this.pos])}`);
    }
  }

  private literal<T extends JsonValue>(word: string, value: T): T {
    if (this.s.startsWith(word, this.pos)) {
      this.pos += word.length;
      return value;
    }
    return this.fail('invalid literal');
  }

  private parseObject(depth: number): JsonObject {
    if (depth > this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`);
    this.pos++; // {
    const obj: JsonObject = {};
    this.skipWs();
    if (this.s.charCodeAt(this.pos) === 0x7d) {
      this.pos++;
      return obj;
    }
    for (;;) {
      if (this.s.charCodeAt(this.pos) !== 0x22) this.fail('expected a string key');
      const key = this.parseString();
      if (Object.prototype.hasOwnProperty.call(obj, key)) this.fail(`duplicate key ${JSON.stringify(key)}`);
      this.skipWs();
      if (this.s.charCodeAt(this.pos) !== 0x3a) this.fail('expected ":"');
      this.pos++;
      this.skipWs();
      const start = this.pos;
      const value = this.parseValue(depth);
      if (depth === 1 && key === this.captureKey) this.captured = [start, this.pos];
      if (key === '__proto__') {
        // A plain assignment would replace the prototype; define an own property instead.
        Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
      } else {
        obj[key] = value;
      }
      this.skipWs();
      const c = this.s.charCodeAt(this.pos);
      if (c === 0x2c) {
        this.pos++;
        this.skipWs();
        continue;
      }
      if (c === 0x7d) {
        this.pos++;
        return obj;
      }
      this.fail('expected "," or "}"');
    }
  }

  private parseArray(depth: number): JsonValue[] {
    if (depth > this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`);
    this.pos++; // [
    const arr: JsonValue[] = [];
    this.skipWs();
    if (this.s.charCodeAt(this.pos) === 0x5d) {
      this.pos++;
      return arr;
    }
    for (;;) {
      arr.push(this.parseValue(depth));
      this.skipWs();
      const c = this.s.charCodeAt(this.pos);
      if (c === 0x2c) {
        this.pos++;
        this.skipWs();
        continue;
      }
      if (c === 0x5d) {
        this.pos++;
        return arr;
      }
      this.fail('expected "," or "]"');
    }
  }

  private parseString(): string {
    const s = this.s;
    let p = this.pos + 1;
    const start = p;
    // Fast path: no escapes, no control characters, no surrogates.
    for (;;) {
      const c = s.charCodeAt(p);
      if (c === 0x22) {
        this.pos = p + 1;
        return s.slice(start, p);
      }
      if (c === 0x5c || c < 0x20 || (c >= 0xd800 && c <= 0xdfff) || Number.isNaN(c)) break;
      p++;
    }
    let out = s.slice(start, p);
    for (;;) {
      const c = s.charCodeAt(p);
      if (Number.isNaN(c)) {
        this.pos = p;
        this.fail('unterminated string');
      }
      if (c === 0x22) {
        this.pos = p + 1;
        return out;
      }
      if (c < 0x20) {
        this.pos = p;
        this.fail('control character in string');
      }
      if (c === 0x5c) {
        const e = s.charCodeAt(p + 1);
        p += 2;
        switch (e) {
          case 0x22:
            out += '"';
            break;
          case 0x5c:
            out += '\\';
            break;
          case 0x2f:
            out += '/';
            break;
          case 0x62:
            out += '\b';
            break;
          case 0x66:
            out += '\f';
            break;
          case 0x6e:
            out += '\n';
            break;
          case 0x72:
            out += '\r';
            break;
          case 0x74:
            out += '\t';
            break;
          case 0x75: {
            const unit = this.hex4(p);
            p += 4;
            if (unit >= 0xd800 && unit <= 0xdbff) {
              // A high surrogate must be followed by an escaped low surrogate.
              if (s.charCodeAt(p) !== 0x5c || s.charCodeAt(p + 1) !== 0x75) {
                this.pos = p;
                this.fail('lone surrogate in string');
              }
              const low = this.hex4(p + 2);
              if (low < 0xdc00 || low > 0xdfff) {
                this.pos = p;
                this.fail('lone surrogate in string');
              }
              p += 6;
              out += String.fromCharCode(unit, low);
            } else if (unit >= 0xdc00 && unit <= 0xdfff) {
              this.pos = p;
              this.fail('lone surrogate in string');
            } else {
              out += String.fromCharCode(unit);
            }
            break;
          }
          default:
            this.pos = p - 1;
            this.fail('invalid escape');
        }
        continue;
      }
      // Raw surrogates come only from valid UTF-8 input as proper pairs; a string
      // passed in directly may hold lone ones, which we refuse the same way.
      if (c >= 0xd800 && c <= 0xdbff) {
        const low = s.charCodeAt(p + 1);
        if (!(low >= 0xdc00 && low <= 0xdfff)) {
          this.pos = p;
          this.fail('lone surrogate in string');
        }
        out += s.slice(p, p + 2);
        p += 2;
        continue;
      }
      if (c >= 0xdc00 && c <= 0xdfff) {
        this.pos = p;
        this.fail('lone surrogate in string');
      }
      // Copy a run of plain characters at once.
      const runStart = p;
      p++;
      for (;;) {
        const d = s.charCodeAt(p);
        if (d === 0x22 || d === 0x5c || d < 0x20 || (d >= 0xd800 && d <= 0xdfff) || Number.isNaN(d)) break;
        p++;
      }
      out += s.slice(runStart, p);
    }
  }

  private hex4(p: number): number {
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const c = this.s.charCodeAt(p + i);
      let d: number;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
      else {
        this.pos = p;
        return this.fail('invalid \\u escape');
      }
      v = (v << 4) | d;
    }
    return v;
  }

  private parseNumber(): number {
    const s = this.s;
    const start = this.pos;
    let p = start;
    if (s.charCodeAt(p) === 0x2d) p++;
    const first = s.charCodeAt(p);
    if (first === 0x30) {
      p++;
    } else if (first >= 0x31 && first <= 0x39) {
      while (isDigit(s.charCodeAt(p))) p++;
    } else {
      this.pos = p;
      this.fail('invalid number');
    }
    let integral = true;
    if (s.charCodeAt(p) === 0x2e) {
      integral = false;
      p++;
      if (!isDigit(s.charCodeAt(p))) {
        this.pos = p;
        this.fail('invalid number');
      }
      while (isDigit(s.charCodeAt(p))) p++;
    }
    const e = s.charCodeAt(p);
    if (e === 0x65 || e === 0x45) {
      integral = false;
      p++;
      const sign = s.charCodeAt(p);
      if (sign === 0x2b || sign === 0x2d) p++;
      if (!isDigit(s.charCodeAt(p))) {
        this.pos = p;
        this.fail('invalid number');
      }
      while (isDigit(s.charCodeAt(p))) p++;
    }
    const text = s.slice(start, p);
    const value = Number(text);
    if (this.integersOnly) {
      if (!integral) this.fail(`non-integer number ${text}`);
      if (!Number.isSafeInteger(value)) this.fail(`integer ${text} is beyond 2^53`);
      if (Object.is(value, -0)) this.fail('negative zero');
    } else if (!Number.isFinite(value) || (integral && !Number.isSafeInteger(value))) {
      this.fail(`number ${text} cannot be represented exactly`);
    }
    this.pos = p;
    return value;
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/**
 * A deep copy of a value that must be JSON as our parser would produce it:
 * plain objects (any `__proto__` key kept as data), arrays, well-formed
 * strings, safe integers, booleans and null. Parsers given an in-memory value
 * use it so that the model and the signed bytes come from one private copy the
 * caller cannot change afterwards.
 */
export function cloneStrictJson(value: unknown, options: { maxDepth?: number } = {}): JsonValue {
  return strictCopy(value, 0, options.maxDepth ?? 64);
}

function strictCopy(value: unknown, depth: number, maxDepth: number): JsonValue {
  switch (typeof value) {
    case 'string':
      if (hasLoneSurrogate(value)) throw new JsonError('lone surrogate in string');
      return value;
    case 'number':
      if (!Number.isSafeInteger(value) || Object.is(value, -0)) throw new JsonError(`only safe integers are allowed, got ${String(value)}`);
      return value;
    case 'boolean':
      return value;
    case 'object': {
      if (value === null) return null;
      if (depth >= maxDepth) throw new JsonError(`nesting deeper than ${maxDepth}`);
      if (Array.isArray(value)) {
        if (Object.getPrototypeOf(value) !== Array.prototype) throw new JsonError('not a plain JSON array');
        const out: JsonValue[] = new Array<JsonValue>(value.length);
        for (let i = 0; i < value.length; i++) out[i] = strictCopy(value[i], depth + 1, maxDepth);
        return out;
      }
      if (!isPlainObject(value)) throw new JsonError('not a plain JSON object');
      const out: JsonObject = {};
      for (const k of Object.keys(value)) {
        if (hasLoneSurrogate(k)) throw new JsonError('lone surrogate in key');
        const v = strictCopy((value as Record<string, unknown>)[k], depth + 1, maxDepth);
        if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
        else out[k] = v;
      }
      return out;
    }
    default:
      throw new JsonError(`a value of type ${typeof value} is not JSON`);
  }
}

/**
 * The two canonical forms (device-api.md §2.9):
 * - `tuf`: OLPC canonical JSON as securesystemslib and @tufjs/canonical-json
 *   produce it: keys sorted by UTF-16 code units, only `"` and `\` escaped,
 *   everything else raw UTF-8.
 * - `uptane`: what aktualizr re-serializes with jsoncpp before verifying: keys
 *   sorted bytewise (by code point), short escapes for `\b\f\n\r\t`, other
 *   controls and every non-ASCII code unit as lowercase `\uXXXX`. Output is
 *   pure ASCII, so it equals OTA CE's circe form whenever strings are ASCII.
 */
export type CanonicalForm = 'tuf' | 'uptane';

/** Canonical JSON as a string. Refuses floats, unsafe integers and non-JSON values. */
export function canonicalString(value: unknown, form: CanonicalForm): string {
  return fastCanonical(value, form, false) ?? referenceCanonicalString(value, form);
}

/**
 * The canonical forms written by a direct recursive encoder: the definition
 * that canonicalString must always equal (it is the fallback of the fast path
 * and the reference of its tests).
 */
export function referenceCanonicalString(value: unknown, form: CanonicalForm): string {
  return form === 'tuf' ? tufValue(value, 0) : uptaneValue(value, 0);
}

/** Canonical JSON as UTF-8 bytes (what gets signed and hashed). */
export function canonicalize(value: unknown, form: CanonicalForm): Uint8Array {
  const text = canonicalString(value, form);
  return Buffer.from(text, 'utf8');
}

// --- Fast path -------------------------------------------------------------------------------------
//
// Encoding a 10,000-target file key by key in JavaScript, and flattening the
// long string that builds, is several times slower than the engine's
// JSON.stringify. Documents a repository serves are canonical already, so their
// parsed objects list keys in canonical order: for those we check the order and
// every value (as the reference encoder would) and let JSON.stringify write the
// text. Its output is the canonical form except in cases we detect and hand to
// the reference encoder: keys that look like array indices (engines enumerate
// those first, in numeric order), lone surrogates (JSON.stringify escapes them,
// we refuse them), control characters in the tuf form (OLPC writes them raw);
// for the uptane form, non-ASCII characters are escaped afterwards exactly as
// jsoncpp does (each UTF-16 code unit as lowercase \uXXXX). Values not in
// canonical order (a model's toJSON output) go to the reference encoder: copying
// them into order first measured slower (bench/core).

const INDEX_LIKE = /^(?:0|[1-9][0-9]*)$/;
const NON_ASCII_G = /[\u0080-\uffff]/g;
const NON_ASCII = /[\u0080-\uffff]/;
const ESCAPE_IN_OUTPUT = /\\[ubfnrt]/;

class NotFast extends Error {}

function fastCanonical(value: unknown, form: CanonicalForm, escapeControls: boolean): string | undefined {
  try {
    if (!inCanonicalOrder(value, 0, form)) return undefined;
  } catch (err) {
    // The reference encoder gives the precise error (or handles what this path cannot).
    if (err instanceof NotFast) return undefined;
    throw err;
  }
  const out = JSON.stringify(value);
  if (form === 'tuf') {
    // Any escape other than \" and \\ means a control character or lone surrogate (or a literal backslash
    // before one of these letters, which the reference encoder handles just as well).
    if (!escapeControls && ESCAPE_IN_OUTPUT.test(out)) return undefined;
    if (escapeControls && out.includes('\\ud')) return undefined;
    return out;
  }
  if (out.includes('\\ud')) return undefined; // a possible lone surrogate
  return NON_ASCII.test(out) ? out.replace(NON_ASCII_G, escapeUnit) : out;
}

function escapeUnit(c: string): string {
  const u = c.charCodeAt(0);
  return '\\u' + HEX[(u >> 12) & 15] + HEX[(u >> 8) & 15] + HEX[(u >> 4) & 15] + HEX[u & 15];
}

/** Whether every object of a valid value already lists its keys in canonical order (throws NotFast on invalid values). */
function inCanonicalOrder(value: unknown, depth: number, form: CanonicalForm): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      if (!Number.isSafeInteger(value)) throw new NotFast();
      return true;
    case 'object': {
      if (value === null) return true;
      if (depth > MAX_CANONICAL_DEPTH) throw new NotFast();
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!inCanonicalOrder(value[i], depth + 1, form)) return false;
        return true;
      }
      if (!isPlainObject(value)) throw new NotFast();
      const keys = Object.keys(value);
      let prev: string | undefined;
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i] as string;
        const c = k.charCodeAt(0);
        if (c >= 0x30 && c <= 0x39 && INDEX_LIKE.test(k)) throw new NotFast();
        if (prev !== undefined && (form === 'uptane' ? compareCodePoints(prev, k) >= 0 : prev >= k)) return false;
        prev = k;
        if (!inCanonicalOrder((value as Record<string, unknown>)[k], depth + 1, form)) return false;
      }
      return true;
    }
    default:
      throw new NotFast();
  }
}

/**
 * Deterministic JSON that is always valid JSON, for the bytes a repository
 * serves (and that snapshot/timestamp hashes cover). In the uptane form this is
 * the canonical form itself (jsoncpp escapes controls). OLPC canonical JSON,
 * though, writes control characters raw, so a TUF document holding a PEM key
 * (with newlines) would not be JSON at all; the tuf form here keeps OLPC's key
 * order and compactness but escapes strings the way JSON.stringify does. For
 * documents without control characters both tuf outputs are byte-identical.
 */
export function serializeJson(value: unknown, form: CanonicalForm): Uint8Array {
  const text = fastCanonical(value, form, true) ?? (form === 'tuf' ? tufValue(value, 0, true) : uptaneValue(value, 0));
  return Buffer.from(text, 'utf8');
}

const MAX_CANONICAL_DEPTH = 128;

function checkNumber(n: number): string {
  if (!Number.isSafeInteger(n)) {
    throw new JsonError(`canonical JSON allows only safe integers, got ${String(n)}`);
  }
  return Object.is(n, -0) ? '0' : String(n);
}

function badValue(value: unknown): never {
  throw new JsonError(`canonical JSON cannot encode a value of type ${typeof value}`);
}

function tufValue(value: unknown, depth: number, escapeControls = false): string {
  switch (typeof value) {
    case 'string':
      return escapeControls ? jsonString(value) : tufString(value);
    case 'number':
      return checkNumber(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (depth > MAX_CANONICAL_DEPTH) throw new JsonError('value nested too deeply');
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          out += tufValue(value[i], depth + 1, escapeControls);
        }
        return out + ']';
      }
      if (!isPlainObject(value)) return badValue(value);
      const keys = Object.keys(value).sort();
      let out = '{';
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i] as string;
        if (i > 0) out += ',';
        out += (escapeControls ? jsonString(k) : tufString(k)) + ':' + tufValue((value as Record<string, unknown>)[k], depth + 1, escapeControls);
      }
      return out + '}';
    }
    default:
      return badValue(value);
  }
}

const TUF_ESCAPE = /["\\]/;
function tufString(s: string): string {
  if (!TUF_ESCAPE.test(s)) return '"' + s + '"';
  return '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

// eslint-disable-next-line no-control-regex
const JSON_NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
function jsonString(s: string): string {
  if (!JSON_NEEDS_ESCAPE.test(s)) return '"' + s + '"';
  if (hasLoneSurrogate(s)) throw new JsonError('lone surrogate in string');
  return JSON.stringify(s);
}

function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c > 0xdbff) return true;
    const low = s.charCodeAt(i + 1);
    if (!(low >= 0xdc00 && low <= 0xdfff)) return true;
    i++;
  }
  return false;
}

function uptaneValue(value: unknown, depth: number): string {
  switch (typeof value) {
    case 'string':
      return uptaneString(value);
    case 'number':
      return checkNumber(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (depth > MAX_CANONICAL_DEPTH) throw new JsonError('value nested too deeply');
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          out += uptaneValue(value[i], depth + 1);
        }
        return out + ']';
      }
      if (!isPlainObject(value)) return badValue(value);
      const keys = Object.keys(value).sort(compareCodePoints);
      let out = '{';
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i] as string;
        if (i > 0) out += ',';
        out += uptaneString(k) + ':' + uptaneValue((value as Record<string, unknown>)[k], depth + 1);
      }
      return out + '}';
    }
    default:
      return badValue(value);
  }
}

// Anything outside printable ASCII, plus `"` and `\`, needs escaping in the jsoncpp form.
// eslint-disable-next-line no-control-regex
const UPTANE_NEEDS_ESCAPE = /["\\\u0000-\u001f\u0080-\uffff]/;
const HEX = '0123456789abcdef';

function uptaneString(s: string): string {
  if (!UPTANE_NEEDS_ESCAPE.test(s)) return '"' + s + '"';
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c < 0x20 || c >= 0x80) {
      if (c >= 0xd800 && c <= 0xdfff) {
        // Only proper surrogate pairs may be escaped; a lone one has no UTF-8 form.
        const isHigh = c <= 0xdbff;
        const partner = isHigh ? s.charCodeAt(i + 1) : s.charCodeAt(i - 1);
        const ok = isHigh ? partner >= 0xdc00 && partner <= 0xdfff : partner >= 0xd800 && partner <= 0xdbff;
        if (!ok) throw new JsonError('lone surrogate in string');
      }
      out += '\\u' + HEX[(c >> 12) & 15] + HEX[(c >> 8) & 15] + HEX[(c >> 4) & 15] + HEX[c & 15];
    } else out += s[i];
  }
  return out + '"';
}

/** Orders strings by Unicode code point, which equals the bytewise order of their UTF-8 forms. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (astral code points) sort after every BMP code unit in code-point order.
    if (x >= 0xd800 && x <= 0xdfff) x += 0x10000;
    if (y >= 0xd800 && y <= 0xdfff) y += 0x10000;
    return x - y;
  }
  return a.length - b.length;
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** True when a string is in Unicode Normalization Form C (uptane-standard.md §2.2). */
export function isNfc(s: string): boolean {
  return s === s.normalize('NFC');
}
