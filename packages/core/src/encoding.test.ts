import { describe, expect, it } from 'vitest';
import { fromBase64, fromHex, hexEquals, isHex, toBase64, toHex } from './encoding.js';
import { FormatError } from './errors.js';

describe('strict hex and base64', () => {
  it('round-trips and refuses malformed input with FormatError naming the field', () => {
    const bytes = new Uint8Array([0, 1, 0xfe, 0xff]);
    expect(toHex(bytes)).toBe('0001feff');
    expect(Buffer.from(fromHex('0001FEFF')).equals(Buffer.from(bytes))).toBe(true);
    expect(toBase64(bytes)).toBe('AAH+/w==');
    expect(Buffer.from(fromBase64('AAH+/w==')).equals(Buffer.from(bytes))).toBe(true);
    for (const bad of ['0', 'zz', '0x00', ' 00']) {
      const err = (() => {
        try {
          fromHex(bad, 'signatures[0].sig');
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(FormatError);
      expect((err as FormatError).path).toBe('signatures[0].sig');
    }
    // Unpadded, URL-safe alphabet, whitespace and stray characters are refused (Buffer would accept them all).
    for (const bad of ['AAH+/w', 'AAH-_w==', 'AAH+ /w==', 'AAH+/w==\n', 'A===']) expect(() => fromBase64(bad)).toThrow(FormatError);
    expect(isHex('') && isHex('aB') && !isHex('abc')).toBe(true);
  });

  it('compares hex digests case-insensitively', () => {
    expect(hexEquals('abcdef', 'ABCDEF')).toBe(true);
    expect(hexEquals('abcdef', 'abcdee')).toBe(false);
    expect(hexEquals('abcd', 'abcdef')).toBe(false);
  });
});
