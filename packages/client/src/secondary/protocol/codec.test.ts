import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import * as asn1js from 'asn1js';
import {
  DEFAULT_MESSAGE_LIMITS,
  KEY_TYPE,
  MESSAGE_TAGS,
  MESSAGE_TYPES,
  RESULT_CODE,
  REPO_TYPE,
  decodeMessage,
  encodeMessage,
  expectMessage,
  keyTypeName,
  maxSizeForTag,
  messageLimits,
} from './codec.js';
import type { IpUptaneMessage } from './codec.js';
import { IpUptaneError } from './errors.js';
import { UptaneError } from '@uptide/core';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IpUptaneError);
    return (err as IpUptaneError).reason;
  }
  throw new Error('did not throw');
}

/**
 * Hand-computed from the schema (explicit tagging: [n] is 0xA0|n wrapping the
 * message SEQUENCE), and each one checked against the DER output of asn1c
 * 0.9.28 compiled from ipuptane_message.asn1 with aktualizr's flags.
 */
const VECTORS: { name: string; hex: string; msg: IpUptaneMessage }[] = [
  { name: 'getInfoReq', hex: 'a002 3000', msg: { type: 'getInfoReq' } },
  {
    name: 'getInfoResp',
    // [1] { UTF8 "sec1", UTF8 "hw", ENUM 0, OCTETS "ab" }
    hex: 'a113 3011 0c0473656331 0c026877 0a0100 04026162',
    msg: { type: 'getInfoResp', ecuSerial: 'sec1', hwId: 'hw', keyType: KEY_TYPE.ed25519, key: 'ab' },
  },
  {
    name: 'getInfoResp with keyType unknownKey(255), which needs a leading zero',
    hex: 'a10e 300c 0c0173 0c0168 0a0200ff 0400',
    msg: { type: 'getInfoResp', ecuSerial: 's', hwId: 'h', keyType: KEY_TYPE.unknown, key: '' },
  },
  { name: 'versionReq 2', hex: 'b105 3003 020102', msg: { type: 'versionReq', version: 2 } },
  { name: 'versionResp 128', hex: 'b206 3004 02020080', msg: { type: 'versionResp', version: 128 } },
  { name: 'rootVerReq image', hex: 'b305 3003 0a0101', msg: { type: 'rootVerReq', repotype: REPO_TYPE.image } },
  { name: 'rootVerResp -1', hex: 'b405 3003 0201ff', msg: { type: 'rootVerResp', version: -1 } },
  {
    name: 'installResp2 unknown(-1) with empty description',
    hex: 'b007 3005 0a01ff 0400',
    msg: { type: 'installResp2', result: RESULT_CODE.unknown, description: '' },
  },
  {
    name: 'putRootResp needCompletion',
    hex: 'b609 3007 0a0115 04026f6b',
    msg: { type: 'putRootResp', result: RESULT_CODE.needCompletion, description: 'ok' },
  },
  {
    name: 'putMetaReq2 with one Image role and an empty Director collection',
    hex: 'ae12 3010 300c 300a 0404726f6f74 04027b7d 3000',
    msg: { type: 'putMetaReq2', imageRepo: [{ role: 'root', json: utf8('{}') }], directorRepo: [] },
  },
  { name: 'manifestResp', hex: 'a306 3004 04027b7d', msg: { type: 'manifestResp', manifest: utf8('{}') } },
  {
    name: 'putMetaReq (v1)',
    hex: 'a418 3016 300c 040161 040162 040163 040164 3006 040165 040166',
    msg: {
      type: 'putMetaReq',
      image: { root: utf8('a'), timestamp: utf8('b'), snapshot: utf8('c'), targets: utf8('d') },
      director: { root: utf8('e'), targets: utf8('f') },
    },
  },
  { name: 'putMetaResp (v1) failure', hex: 'a505 3003 0a0101', msg: { type: 'putMetaResp', result: 1 } },
];

describe('DER vectors', () => {
  for (const v of VECTORS) {
    it(`encodes and decodes ${v.name}`, () => {
      expect(hex(encodeMessage(v.msg))).toBe(v.hex.replace(/\s+/g, ''));
      expect(decodeMessage(unhex(v.hex))).toEqual(v.msg);
    });
  }

  it('encodes a 1024-byte uploadDataReq chunk with two-byte long-form lengths', () => {
    const data = new Uint8Array(1024).map((_, i) => i & 0xff);
    const bytes = encodeMessage({ type: 'uploadDataReq', data });
    // [10] len 1032 { SEQUENCE len 1028 { OCTET STRING len 1024 } }
    expect(hex(bytes.subarray(0, 12))).toBe('aa820408' + '30820404' + '04820400');
    expect(bytes.length).toBe(4 + 4 + 4 + 1024);
    expect(bytes.subarray(12)).toEqual(data);
  });

  it('gives every alternative its context tag [0]..[22]', () => {
    expect(MESSAGE_TYPES).toHaveLength(23);
    MESSAGE_TYPES.forEach((t, i) => expect(MESSAGE_TAGS[t]).toBe(i));
  });

  it('names the key types as aktualizr casts them', () => {
    expect([0, 1, 2, 3, 255].map(keyTypeName)).toEqual(['ED25519', 'RSA2048', 'RSA3072', 'RSA4096', undefined]);
  });
});

// ---------------------------------------------------------------------------
// Property-based round trips of every alternative

const text = fc.string({ unit: 'binary', maxLength: 24 });
const bytes = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 100, maxLength: 1500 }));
const int = fc.oneof(fc.integer({ min: -300, max: 70000 }), fc.maxSafeInteger(), fc.constant(Number.MIN_SAFE_INTEGER), fc.constant(-(2 ** 31)));
const metaList = fc.array(fc.record({ role: text, json: bytes }), { maxLength: 6 });
const resultDesc = <T extends string>(type: T) => fc.record({ type: fc.constant(type), result: int, description: text });

const messageArb: fc.Arbitrary<IpUptaneMessage> = fc.oneof(
  fc.record({ type: fc.constant('getInfoReq' as const) }),
  fc.record({ type: fc.constant('getInfoResp' as const), ecuSerial: text, hwId: text, keyType: int, key: text }),
  fc.record({ type: fc.constant('manifestReq' as const) }),
  fc.record({ type: fc.constant('manifestResp' as const), manifest: bytes }),
  fc.record({
    type: fc.constant('putMetaReq' as const),
    image: fc.record({ root: bytes, timestamp: bytes, snapshot: bytes, targets: bytes }),
    director: fc.record({ root: bytes, targets: bytes }),
  }),
  fc.record({ type: fc.constant('putMetaResp' as const), result: int }),
  fc.record({ type: fc.constant('sendFirmwareReq' as const), firmware: bytes }),
  fc.record({ type: fc.constant('sendFirmwareResp' as const), result: int }),
  fc.record({ type: fc.constant('installReq' as const), hash: text }),
  fc.record({ type: fc.constant('installResp' as const), result: int }),
  fc.record({ type: fc.constant('uploadDataReq' as const), data: bytes }),
  resultDesc('uploadDataResp' as const),
  fc.record({ type: fc.constant('downloadOstreeRevReq' as const), tlsCred: bytes }),
  resultDesc('downloadOstreeRevResp' as const),
  fc.record({ type: fc.constant('putMetaReq2' as const), imageRepo: metaList, directorRepo: metaList }),
  resultDesc('putMetaResp2' as const),
  resultDesc('installResp2' as const),
  fc.record({ type: fc.constant('versionReq' as const), version: int }),
  fc.record({ type: fc.constant('versionResp' as const), version: int }),
  fc.record({ type: fc.constant('rootVerReq' as const), repotype: int }),
  fc.record({ type: fc.constant('rootVerResp' as const), version: int }),
  fc.record({ type: fc.constant('putRootReq' as const), repotype: int, json: bytes }),
  resultDesc('putRootResp' as const),
);

/** Walks an asn1js tree and checks that it only uses definite lengths (asn1js reports what it parsed). */
function asn1jsParse(bytes: Uint8Array): asn1js.AsnType {
  const parsed = asn1js.fromBER(bytes.slice().buffer);
  expect(parsed.offset).toBe(bytes.length);
  expect(parsed.result.error).toBe('');
  return parsed.result;
}

describe('round trips', () => {
  it('decode(encode(m)) equals m for every alternative', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const enc = encodeMessage(m);
        expect(decodeMessage(enc, { allowExtensions: false })).toEqual(m);
        // Deterministic: DER has one encoding per value.
        expect(encodeMessage(decodeMessage(enc))).toEqual(enc);
      }),
      { numRuns: 1500 },
    );
  });

  it('asn1js, an independent parser, reads our bytes as [n] { SEQUENCE } with the same tag', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const root = asn1jsParse(encodeMessage(m));
        expect(root.idBlock.tagClass).toBe(3); // context-specific
        expect(root.idBlock.isConstructed).toBe(true);
        expect(root.idBlock.tagNumber).toBe(MESSAGE_TAGS[m.type]);
        const inner = (root as asn1js.Constructed).valueBlock.value;
        expect(inner).toHaveLength(1);
        expect(inner[0]).toBeInstanceOf(asn1js.Sequence);
      }),
      { numRuns: 300 },
    );
  });

  it('matches what asn1js builds for the same values', () => {
    const ctx = (n: number, value: asn1js.AsnType[]) =>
      new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: n }, value: [new asn1js.Sequence({ value })] });
    const octets = (b: Uint8Array) => new asn1js.OctetString({ valueHex: b.slice().buffer });
    const built = ctx(1, [
      new asn1js.Utf8String({ value: 'ecu-ü-1' }),
      new asn1js.Utf8String({ value: 'hw' }),
      new asn1js.Enumerated({ value: 3 }),
      octets(utf8('-----BEGIN PUBLIC KEY-----\n')),
    ]);
    const ours = encodeMessage({ type: 'getInfoResp', ecuSerial: 'ecu-ü-1', hwId: 'hw', keyType: KEY_TYPE.rsa4096, key: '-----BEGIN PUBLIC KEY-----\n' });
    expect(hex(ours)).toBe(hex(new Uint8Array(built.toBER())));

    const meta = (role: string, json: string) => new asn1js.Sequence({ value: [octets(utf8(role)), octets(utf8(json))] });
    const built2 = ctx(14, [
      new asn1js.Sequence({ value: [meta('root', '{"a":1}'), meta('targets', '{}')] }),
      new asn1js.Sequence({ value: [meta('root', 'x'.repeat(300))] }),
    ]);
    const ours2 = encodeMessage({
      type: 'putMetaReq2',
      imageRepo: [
        { role: 'root', json: utf8('{"a":1}') },
        { role: 'targets', json: utf8('{}') },
      ],
      directorRepo: [{ role: 'root', json: utf8('x'.repeat(300)) }],
    });
    expect(hex(ours2)).toBe(hex(new Uint8Array(built2.toBER())));

    const built3 = ctx(18, [new asn1js.Integer({ value: -129 })]);
    expect(hex(encodeMessage({ type: 'versionResp', version: -129 }))).toBe(hex(new Uint8Array(built3.toBER())));
  });

  it('keeps the exact bytes of metadata and of strings (no BOM stripping, no normalisation)', () => {
    const json = new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d, 0xff, 0x00]); // BOM, "{}", invalid UTF-8, NUL: bytes are bytes
    const m: IpUptaneMessage = { type: 'putRootReq', repotype: REPO_TYPE.director, json };
    expect(decodeMessage(encodeMessage(m))).toEqual(m);
    const s: IpUptaneMessage = { type: 'installReq', hash: '\uFEFFfirmware-é.bin' };
    expect(decodeMessage(encodeMessage(s))).toEqual(s);
  });

  it('returns copies, not views into the input', () => {
    const enc = encodeMessage({ type: 'uploadDataReq', data: new Uint8Array([1, 2, 3]) });
    const dec = decodeMessage(enc) as { data: Uint8Array };
    enc.fill(0);
    expect(Array.from(dec.data)).toEqual([1, 2, 3]);
  });
});

// ---------------------------------------------------------------------------
// Strictness

describe('strict decoding', () => {
  it('skips extension additions after known fields (as asn1c does), or refuses them when asked', () => {
    // versionReq { version 2, <extension INTEGER 5> }
    const withExt = unhex('b108 3006 020102 020105');
    expect(decodeMessage(withExt)).toEqual({ type: 'versionReq', version: 2 });
    expect(reasonOf(() => decodeMessage(withExt, { allowExtensions: false }))).toBe('BAD_MESSAGE');
    // An empty getInfoReq SEQUENCE with an extension element.
    expect(decodeMessage(unhex('a004 3002 0500'))).toEqual({ type: 'getInfoReq' });
    // Extensions inside a collection item.
    expect(decodeMessage(unhex('ae10 300e 300a 3008 040172 040178 0500 3000'))).toEqual({
      type: 'putMetaReq2',
      imageRepo: [{ role: 'r', json: utf8('x') }],
      directorRepo: [],
    });
  });

  it('reports an unknown CHOICE alternative as UNKNOWN_MESSAGE', () => {
    expect(reasonOf(() => decodeMessage(unhex('b702 3000')))).toBe('UNKNOWN_MESSAGE'); // [23]
    expect(reasonOf(() => decodeMessage(unhex('bf8100 02 3000')))).toBe('UNKNOWN_MESSAGE'); // [128], high-tag-number form
  });

  const bad: [string, string, string][] = [
    ['empty input', '', 'TRUNCATED'],
    ['universal SEQUENCE at the top', '3000', 'BAD_MESSAGE'],
    ['primitive context tag', '8000', 'BAD_MESSAGE'],
    ['application class', '6002 3000', 'BAD_MESSAGE'],
    ['indefinite length', 'a080 3000 0000', 'BAD_MESSAGE'],
    ['non-minimal long length', 'a08102 3000', 'BAD_MESSAGE'],
    ['long form with a leading zero', 'a0820002 3000', 'BAD_MESSAGE'],
    ['length of length too large', 'a0850000000002 3000', 'BAD_MESSAGE'],
    ['high-tag-number form for a low tag', 'bf0102 3000', 'BAD_MESSAGE'],
    ['non-minimal high tag', 'bf808000 02 3000', 'BAD_MESSAGE'],
    ['truncated body', 'a003 3000', 'TRUNCATED'],
    ['inner length past its container', 'a002 3001', 'TRUNCATED'],
    ['trailing bytes after the message', 'a002 3000 00', 'BAD_MESSAGE'],
    ['two elements inside the explicit tag', 'a004 3000 3000', 'BAD_MESSAGE'],
    ['wrong inner type', 'a002 3100', 'BAD_MESSAGE'],
    ['missing field', 'b102 3000', 'BAD_MESSAGE'],
    ['INTEGER where ENUMERATED is due', 'b305 3003 020101', 'BAD_MESSAGE'],
    ['empty INTEGER', 'b104 3002 0200', 'BAD_MESSAGE'],
    ['non-minimal INTEGER 0x0001', 'b106 3004 02020001', 'BAD_MESSAGE'],
    ['non-minimal INTEGER 0xff80', 'b106 3004 0202ff80', 'BAD_MESSAGE'],
    ['INTEGER beyond the safe range', 'b10d 300b 0209 010000000000000000', 'BAD_MESSAGE'],
    ['INTEGER 2^53', 'b10b 3009 0207 20000000000000', 'BAD_MESSAGE'],
    ['constructed OCTET STRING (BER, not DER)', 'aa07 3005 2403 040100', 'BAD_MESSAGE'],
    ['OCTET STRING where UTF8String is due', 'a10d 300b 0401 73 0c0168 0a0100 0400', 'BAD_MESSAGE'],
    ['invalid UTF-8 in ecuSerial', 'a10d 300b 0c01ff 0c0168 0a0100 0400', 'BAD_MESSAGE'],
    ['invalid UTF-8 in a description', 'b008 3006 0a0100 0401c0', 'BAD_MESSAGE'],
    ['collection that is not a SEQUENCE OF', 'ae06 3004 0400 3000', 'BAD_MESSAGE'],
    ['collection item with one field', 'ae0a 3008 3004 3002 0400 3000', 'BAD_MESSAGE'],
  ];
  for (const [name, input, reason] of bad) {
    it(`refuses ${name} (${reason})`, () => {
      expect(reasonOf(() => decodeMessage(unhex(input)))).toBe(reason);
    });
  }

  it('enforces size limits per message type before looking at the body', () => {
    const small = encodeMessage({ type: 'getInfoResp', ecuSerial: 'x'.repeat(2000), hwId: 'h', keyType: 0, key: '' });
    expect(reasonOf(() => decodeMessage(small, { limits: 1000 }))).toBe('MESSAGE_TOO_LARGE');
    expect(decodeMessage(small, { limits: 4000 }).type).toBe('getInfoResp');
    // A header that claims 100 MiB is refused without the body being present.
    const err = (() => {
      try {
        decodeMessage(unhex('ae84 06400000'));
      } catch (e) {
        return e as IpUptaneError;
      }
      return undefined;
    })();
    expect(err?.reason).toBe('MESSAGE_TOO_LARGE');
    expect(err?.code).toBe('ENDLESS_DATA');
    expect(err).toBeInstanceOf(UptaneError);
    // Defaults: metadata carriers get 16 MiB, everything else 1 MiB.
    expect(maxSizeForTag(DEFAULT_MESSAGE_LIMITS, MESSAGE_TAGS.putMetaReq2)).toBe(16 * 1024 * 1024);
    expect(maxSizeForTag(DEFAULT_MESSAGE_LIMITS, MESSAGE_TAGS.uploadDataReq)).toBe(1024 * 1024);
    expect(maxSizeForTag(DEFAULT_MESSAGE_LIMITS, 99)).toBe(1024 * 1024);
    expect(maxSizeForTag(messageLimits({ maxMessageSize: 5000 }), MESSAGE_TAGS.putMetaReq2)).toBe(5000);
  });

  it('never recurses into skipped elements, however deeply they nest', () => {
    // getInfoReq whose SEQUENCE carries one extension element made of 200,000 nested SEQUENCEs.
    const depth = 200_000;
    const headers: Uint8Array[] = [];
    let len = 0;
    for (let i = 0; i < depth; i++) {
      const h = Uint8Array.from([0x30, ...lengthBytes(len)]);
      headers.push(h);
      len += h.length;
    }
    const seqHeader = Uint8Array.from([0x30, ...lengthBytes(len)]);
    const outerLen = seqHeader.length + len;
    const top = Uint8Array.from([0xa0, ...lengthBytes(outerLen)]);
    const out = new Uint8Array(top.length + outerLen);
    out.set(top, 0);
    out.set(seqHeader, top.length);
    let pos = top.length + seqHeader.length;
    for (let i = headers.length - 1; i >= 0; i--) {
      out.set(headers[i]!, pos);
      pos += headers[i]!.length;
    }
    expect(pos).toBe(out.length);
    expect(decodeMessage(out, { limits: 4 * 1024 * 1024 })).toEqual({ type: 'getInfoReq' });
  });
});

function lengthBytes(n: number): number[] {
  if (n < 0x80) return [n];
  const b: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) b.unshift(v % 256);
  return [0x80 | b.length, ...b];
}

describe('encoding refuses what the schema cannot carry', () => {
  const cases: [string, unknown][] = [
    ['an unknown type', { type: 'rebootReq' }],
    ['a missing field', { type: 'versionReq' }],
    ['a fractional integer', { type: 'versionReq', version: 1.5 }],
    ['an unsafe integer', { type: 'versionReq', version: 2 ** 60 }],
    ['a string where bytes are due', { type: 'uploadDataReq', data: 'abc' }],
    ['bytes where a string is due', { type: 'installReq', hash: utf8('x') }],
    ['a lone surrogate', { type: 'installReq', hash: 'a\uD800b' }],
    ['a collection that is not an array', { type: 'putMetaReq2', imageRepo: {}, directorRepo: [] }],
    ['a collection item without json', { type: 'putMetaReq2', imageRepo: [{ role: 'root' }], directorRepo: [] }],
    [
      'a v1 image bundle without snapshot',
      { type: 'putMetaReq', image: { root: utf8(''), timestamp: utf8(''), targets: utf8('') }, director: { root: utf8(''), targets: utf8('') } },
    ],
  ];
  for (const [name, value] of cases) {
    it(`refuses ${name}`, () => {
      expect(reasonOf(() => encodeMessage(value as IpUptaneMessage))).toBe('BAD_ARGUMENT');
    });
  }

  it('can check the limit of the receiving side', () => {
    expect(reasonOf(() => encodeMessage({ type: 'uploadDataReq', data: new Uint8Array(2000) }, { limits: 1500 }))).toBe('MESSAGE_TOO_LARGE');
  });
});

describe('expectMessage', () => {
  it('narrows to the expected type or throws UNEXPECTED_RESPONSE', () => {
    const m: IpUptaneMessage = { type: 'versionResp', version: 2 };
    expect(expectMessage(m, 'versionResp').version).toBe(2);
    expect(expectMessage(m, ['installResp2', 'versionResp']).type).toBe('versionResp');
    expect(reasonOf(() => expectMessage(m, 'getInfoResp'))).toBe('UNEXPECTED_RESPONSE');
  });
});

// ---------------------------------------------------------------------------
// Fuzzing: hostile bytes only ever produce IpUptaneError

function decodeOrTypedError(input: Uint8Array): void {
  try {
    const m = decodeMessage(input, { limits: 1 << 20 });
    // Whatever decodes must encode again.
    encodeMessage(m);
  } catch (err) {
    if (!(err instanceof IpUptaneError)) throw err;
    expect(err.code === 'MALFORMED_METADATA' || err.code === 'ENDLESS_DATA').toBe(true);
  }
}

describe('fuzzing', () => {
  it('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => decodeOrTypedError(b)),
      { numRuns: 5000 },
    );
  });

  it('random bytes behind a plausible top-level header', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 25 }), fc.uint8Array({ maxLength: 120 }), (tag, body) => {
        decodeOrTypedError(Uint8Array.from([0xa0 | Math.min(tag, 30), ...lengthBytes(body.length), ...body]));
      }),
      { numRuns: 5000 },
    );
  });

  it('mutations of valid messages: flipped bytes, truncation, insertion', () => {
    fc.assert(
      fc.property(messageArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), (m, flips, cut) => {
        const enc = encodeMessage(m);
        const flipped = enc.slice();
        for (const [i, v] of flips) flipped[i % flipped.length] = v;
        decodeOrTypedError(flipped);
        decodeOrTypedError(enc.subarray(0, cut % enc.length));
        const at = cut % (enc.length + 1);
        decodeOrTypedError(Uint8Array.from([...enc.subarray(0, at), flips[0]![1], ...enc.subarray(at)]));
      }),
      { numRuns: 3000 },
    );
  });
});
