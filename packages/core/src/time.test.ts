import { describe, expect, it } from 'vitest';
import { expiresIn, formatExpires, parseExpires } from './time.js';
import { FormatError } from './errors.js';

describe('expires', () => {
  it('parses exactly YYYY-MM-DDTHH:MM:SSZ', () => {
    expect(parseExpires('2026-09-01T12:00:00Z')).toBe(Date.UTC(2026, 8, 1, 12));
    expect(parseExpires('2028-02-29T23:59:59Z')).toBe(Date.UTC(2028, 1, 29, 23, 59, 59));
  });

  it('refuses every other spelling (aktualizr rejects them) and impossible dates', () => {
    for (const bad of [
      '2026-09-01T12:00:00.000Z',
      '2026-09-01T12:00:00+00:00',
      '2026-09-01T12:00:00',
      '2026-09-01 12:00:00Z',
      '2026-9-01T12:00:00Z',
      '2026-09-01T12:00:00z',
      '2026-02-30T00:00:00Z',
      '2027-02-29T00:00:00Z',
      '2026-13-01T00:00:00Z',
      '2026-01-01T24:00:00Z',
      '2026-01-01T23:60:00Z',
      '',
    ]) {
      let err: unknown;
      try {
        parseExpires(bad, 'signed.expires');
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(FormatError);
      expect((err as FormatError).path).toBe('signed.expires');
    }
  });

  it('formats without milliseconds (toISOString would give 24 characters)', () => {
    expect(formatExpires(Date.UTC(2026, 0, 2, 3, 4, 5, 678))).toBe('2026-01-02T03:04:05Z');
    expect(formatExpires(new Date('2026-01-02T03:04:05.999Z'))).toBe('2026-01-02T03:04:05Z');
    expect(expiresIn(new Date('2026-01-01T00:00:00.500Z'), 86400)).toBe('2026-01-02T00:00:00Z');
    expect(formatExpires(0)).toHaveLength(20);
  });
});
