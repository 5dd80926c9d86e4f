import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalize as tufjsCanonicalize } from '@tufjs/canonical-json';
import {
  canonicalString,
  canonicalize,
  cloneStrictJson,
  compareCodePoints,
  parseJson,
  referenceCanonicalString,
  serializeJson,
  type JsonValue,
} from './json.js';
import { JsonError } from './errors.js';

describe('canonical JSON', () => {
  describe('uptane (aktualizr/jsoncpp) form', () => {
    it('sorts keys, drops whitespace and prints integers plainly', () => {
      expect(canonicalString({ b: 1, a: [true, null, 'x'], c: { z: -5, y: 0 } }, 'uptane')).toBe('{"a":[true,null,"x"],"b":1,"c":{"y":0,"z":-5}}');
    });

    it('escapes quotes, backslashes and controls the jsoncpp way, keeping / and DEL raw', () => {
      expect(canonicalString('a"b\\c\b\f\n\r\t\u0001\u001f/\u007f', 'uptane')).toBe('"a\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f/\u007f"');
    });

    it('escapes every non-ASCII code unit as lowercase \\uXXXX, astral characters as surrogate pairs', () => {
      expect(canonicalString('é€😀', 'uptane')).toBe('"\\u00e9\\u20ac\\ud83d\\ude00"');
      expect(Buffer.from(canonicalize({ k: 'ü' }, 'uptane')).toString('latin1')).toBe('{"k":"\\u00fc"}');
    });

    it('sorts keys by code point (bytewise UTF-8), unlike UTF-16 order', () => {
      const obj = { '\uffff': 1, '😀': 2, a: 3 };
      expect(canonicalString(obj, 'uptane')).toBe('{"a":3,"\\uffff":1,"\\ud83d\\ude00":2}');
      expect(canonicalString(obj, 'tuf')).toBe('{"a":3,"😀":2,"\uffff":1}');
    });

    it('matches the device-api.md example bytes', () => {
      const doc = {
        signed: { _type: 'Targets', expires: '2026-09-01T12:00:00Z', version: 7, targets: {}, custom: { correlationId: 'urn:here-ota:mtu:1' } },
        signatures: [{ keyid: 'ab', method: 'ed25519', sig: 'Qm9=' }],
      };
      expect(canonicalString(doc, 'uptane')).toBe(
        '{"signatures":[{"keyid":"ab","method":"ed25519","sig":"Qm9="}],"signed":{"_type":"Targets","custom":{"correlationId":"urn:here-ota:mtu:1"},"expires":"2026-09-01T12:00:00Z","targets":{},"version":7}}',
      );
    });
  });

  describe('tuf (OLPC) form', () => {
    it('escapes only quotes and backslashes', () => {
      expect(canonicalString('a"b\\c\n\té', 'tuf')).toBe('"a\\"b\\\\c\n\té"');
    });

    it('equals @tufjs/canonical-json on random documents', () => {
      const json = fc.letrec((tie) => ({
        value: fc.oneof(
          { depthSize: 'small' },
          fc.string({ unit: 'grapheme' }),
          fc.string(),
          fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
          fc.boolean(),
          fc.constant(null),
          fc.array(tie('value'), { maxLength: 5 }),
          fc.dictionary(fc.string(), tie('value'), { maxKeys: 5 }),
        ),
      })).value;
      fc.assert(
        fc.property(json, (v) => {
          expect(Buffer.from(canonicalize(v, 'tuf')).toString('utf8')).toBe(tufjsCanonicalize(v));
        }),
        { numRuns: 2000 },
      );
    });
  });

  describe('both forms', () => {
    it.each(['tuf', 'uptane'] as const)('%s refuses floats, NaN, unsafe integers and non-JSON values', (form) => {
      for (const bad of [1.5, Number.NaN, Infinity, 2 ** 53, undefined, () => 1, new Date(0), 10n]) {
        expect(() => canonicalize({ x: bad }, form)).toThrow(JsonError);
      }
    });

    it.each(['tuf', 'uptane'] as const)('%s output parses back to the same value', (form) => {
      fc.assert(
        fc.property(fc.jsonValue({ noUnicodeString: false }), (v) => {
          fc.pre(!containsFloat(v));
          // The OLPC form writes control characters raw, which is not JSON; only the uptane form is JSON for every input.
          fc.pre(form === 'uptane' || !hasControlChar(v));
          expect(parseJson(canonicalize(v, form))).toEqual(normalizeZero(v));
        }),
        { numRuns: 500 },
      );
    });
  });

  describe('the fast path agrees with the reference encoder', () => {
    // Keys and strings chosen to hit every case the fast path must hand over: index-like keys, non-ASCII,
    // astral characters, controls, backslashes before escape letters, and lone surrogates.
    const piece = fc.constantFrom(
      'a',
      'B',
      '0',
      '7',
      '10',
      '9',
      '-1',
      '01',
      '4294967295',
      'é',
      '\uffff',
      '\ue000',
      '😀',
      '\n',
      '\u0001',
      '\u007f',
      '\\',
      '\\u',
      '\\n',
      '"',
      '/',
      '\u2028',
      '__proto__',
      'toJSON',
      '\ud800',
      '\udc00',
    );
    const str = fc.array(piece, { maxLength: 4 }).map((a) => a.join(''));
    const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'small', maxDepth: 4 },
        str,
        fc.integer({ min: -1000, max: 1000 }),
        fc.constantFrom(0, -0, Number.MAX_SAFE_INTEGER, true, false, null),
        fc.array(tie('v'), { maxLength: 4 }),
        fc.dictionary(str, tie('v'), { maxKeys: 5 }),
      ),
    })).v;

    it.each(['tuf', 'uptane'] as const)('%s: canonicalString equals referenceCanonicalString, or both throw JsonError', (form) => {
      fc.assert(
        fc.property(value, (v) => {
          let expected: string | JsonError;
          try {
            expected = referenceCanonicalString(v, form);
          } catch (err) {
            expect(err).toBeInstanceOf(JsonError);
            expected = err as JsonError;
          }
          if (expected instanceof JsonError) expect(() => canonicalString(v, form)).toThrow(JsonError);
          else expect(canonicalString(v, form)).toBe(expected);
        }),
        { numRuns: 3000 },
      );
    });

    it('serializeJson equals the reference serialization', () => {
      fc.assert(
        fc.property(value, (v) => {
          let ok = true;
          try {
            referenceCanonicalString(v, 'uptane');
          } catch {
            ok = false;
          }
          fc.pre(ok);
          expect(Buffer.from(serializeJson(v, 'uptane')).toString()).toBe(referenceCanonicalString(v, 'uptane'));
          const tuf = Buffer.from(serializeJson(v, 'tuf')).toString();
          expect(parseJson(tuf)).toEqual(normalizeZero(v));
        }),
        { numRuns: 2000 },
      );
    });

    it('orders index-like keys as strings, not numerically as the engine does', () => {
      expect(canonicalString({ 9: 1, 10: 2, a: 3 }, 'uptane')).toBe('{"10":2,"9":1,"a":3}');
      expect(canonicalString({ 9: 1, 10: 2, a: 3 }, 'tuf')).toBe('{"10":2,"9":1,"a":3}');
    });
  });

  describe('serializeJson (what repositories serve)', () => {
    it('is the canonical form in uptane, and in tuf equals OLPC except that controls are escaped, so it is always JSON', () => {
      fc.assert(
        fc.property(fc.jsonValue({ noUnicodeString: false }), (v) => {
          fc.pre(!containsFloat(v));
          expect(serializeJson(v, 'uptane')).toEqual(canonicalize(v, 'uptane'));
          const tuf = serializeJson(v, 'tuf');
          expect(parseJson(tuf)).toEqual(normalizeZero(v));
          if (!hasControlChar(v)) expect(Buffer.from(tuf).equals(Buffer.from(canonicalize(v, 'tuf')))).toBe(true);
        }),
        { numRuns: 500 },
      );
    });

    it('escapes a PEM key the JSON way in tuf', () => {
      expect(Buffer.from(serializeJson({ public: '-----BEGIN\nX\n' }, 'tuf')).toString()).toBe('{"public":"-----BEGIN\\nX\\n"}');
      expect(() => serializeJson(['\ud800'], 'tuf')).toThrow(JsonError);
    });
  });

  it('compareCodePoints agrees with comparing UTF-8 bytes', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (a, b) => {
        const byBytes = Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
        expect(Math.sign(compareCodePoints(a, b))).toBe(byBytes);
      }),
    );
  });
});

describe('parseJson (strict)', () => {
  it('parses ordinary JSON exactly like JSON.parse', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        fc.pre(!containsFloat(v));
        const text = JSON.stringify(v, null, 1);
        expect(parseJson(text)).toEqual(JSON.parse(text));
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    ['duplicate keys', '{"a":1,"a":2}'],
    ['a float', '{"a":1.0}'],
    ['an exponent', '[1e2]'],
    ['an integer beyond 2^53', '[9007199254740993]'],
    ['negative zero', '[-0]'],
    ['a lone high surrogate', '["\\ud800"]'],
    ['a lone low surrogate', '["\\udc00x"]'],
    ['a trailing comma', '[1,]'],
    ['a leading zero', '[01]'],
    ['trailing garbage', '{} x'],
    ['single quotes', "{'a':1}"],
    ['a raw control character', '["a\u0001"]'],
    ['an invalid escape', '["\\x41"]'],
    ['an empty document', ''],
    ['an unterminated string', '"abc'],
  ])('refuses %s', (_name, text) => {
    expect(() => parseJson(text)).toThrow(JsonError);
  });

  it('refuses invalid UTF-8 and a byte order mark', () => {
    expect(() => parseJson(Uint8Array.from([0x22, 0xff, 0x22]))).toThrow(JsonError);
    expect(() => parseJson(Uint8Array.from([0xef, 0xbb, 0xbf, 0x31]))).toThrow(JsonError);
  });

  it('bounds nesting depth', () => {
    expect(() => parseJson('['.repeat(65) + ']'.repeat(65))).toThrow(/nesting/);
    expect(parseJson('['.repeat(64) + ']'.repeat(64))).toBeDefined();
    expect(() => parseJson('['.repeat(100_000))).toThrow(JsonError);
  });

  it('keeps a "__proto__" key as data without touching the prototype', () => {
    const v = parseJson('{"__proto__":{"polluted":true}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('decodes escapes, including surrogate pairs', () => {
    expect(parseJson('["\\u00e9\\ud83d\\ude00\\/\\n"]')).toEqual(['é😀/\n']);
  });

  it('allows floats only when asked', () => {
    expect(parseJson('[1.5]', { integersOnly: false })).toEqual([1.5]);
  });
});

describe('cloneStrictJson', () => {
  it('copies JSON values deeply, keeping "__proto__" keys as data', () => {
    const input = parseJson('{"a":[1,{"b":null}],"__proto__":{"x":true}}');
    const copy = cloneStrictJson(input);
    expect(copy).toEqual(input);
    expect((copy as Record<string, JsonValue>)['a']).not.toBe((input as Record<string, JsonValue>)['a']);
    expect(Object.keys(copy as object)).toEqual(['a', '__proto__']);
  });

  it('refuses what our parser would never produce', () => {
    const arrayProto = {};
    Object.setPrototypeOf(arrayProto, []);
    for (const bad of [1.5, -0, 2 ** 53, undefined, () => 1, new Date(0), 10n, '\ud800', { k: new Map() }, arrayProto, Symbol('s')]) {
      expect(() => cloneStrictJson(bad), String(typeof bad)).toThrow(JsonError);
    }
    let deep: unknown = 1;
    for (let i = 0; i < 70; i++) deep = [deep];
    expect(() => cloneStrictJson(deep)).toThrow(JsonError);
  });
});

function containsFloat(v: unknown): boolean {
  if (typeof v === 'number') return !Number.isSafeInteger(v);
  if (Array.isArray(v)) return v.some(containsFloat);
  if (v && typeof v === 'object') return Object.values(v).some(containsFloat);
  return false;
}

function normalizeZero(v: unknown): JsonValue {
  if (typeof v === 'number') return Object.is(v, -0) ? 0 : v;
  if (Array.isArray(v)) return v.map(normalizeZero);
  if (v && typeof v === 'object') {
    const out: Record<string, JsonValue> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === '__proto__') Object.defineProperty(out, k, { value: normalizeZero(x), enumerable: true, writable: true, configurable: true });
      else out[k] = normalizeZero(x);
    }
    return out;
  }
  return v as JsonValue;
}

function hasControlChar(v: unknown): boolean {
  // eslint-disable-next-line no-control-regex
  const ctl = /[\u0000-\u001f]/;
  if (typeof v === 'string') return ctl.test(v);
  if (Array.isArray(v)) return v.some(hasControlChar);
  if (v && typeof v === 'object') return Object.entries(v).some(([k, x]) => ctl.test(k) || hasControlChar(x));
  return false;
}
