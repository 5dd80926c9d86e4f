import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { FrameReader } from './framing.js';
import { encodeMessage, messageLimits } from './codec.js';
import type { IpUptaneMessage } from './codec.js';
import { IpUptaneError } from './errors.js';

const MESSAGES: IpUptaneMessage[] = [
  { type: 'getInfoReq' },
  { type: 'versionReq', version: 2 },
  { type: 'uploadDataReq', data: new Uint8Array(1024).fill(7) },
  { type: 'putMetaReq2', imageRepo: [{ role: 'targets', json: new Uint8Array(70_000).fill(0x20) }], directorRepo: [] },
  { type: 'installReq', hash: 'fw.bin' },
];

function concatAll(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IpUptaneError);
    return (err as IpUptaneError).reason;
  }
  throw new Error('did not throw');
}

describe('FrameReader', () => {
  const encoded = MESSAGES.map((m) => encodeMessage(m));
  const stream = concatAll(encoded);

  it('splits a stream into exactly the messages, whatever the chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 200 }), (sizes) => {
        const r = new FrameReader();
        const frames: Uint8Array[] = [];
        let pos = 0;
        let i = 0;
        while (pos < stream.length) {
          const n = sizes[i++ % sizes.length]!;
          r.push(stream.subarray(pos, pos + n));
          pos += n;
          for (let f = r.shift(); f; f = r.shift()) frames.push(f);
        }
        // Buffer comparison: toEqual on large typed arrays is slow.
        expect(frames.length).toBe(encoded.length);
        frames.forEach((f, k) => expect(Buffer.from(f).equals(encoded[k]!)).toBe(true));
        expect(r.hasPartial).toBe(false);
      }),
      { numRuns: 100 },
    );
  });

  it('works one byte at a time, and reports progress', () => {
    const r = new FrameReader();
    const one = encoded[2]!;
    for (let i = 0; i < one.length - 1; i++) r.push(one.subarray(i, i + 1));
    expect(r.hasPartial).toBe(true);
    expect(r.progress).toEqual({ received: one.length - 1, total: one.length });
    expect(r.shift()).toBeUndefined();
    r.push(one.subarray(one.length - 1));
    expect(r.shift()).toEqual(one);
  });

  it('refuses garbage at the first byte', () => {
    const r = new FrameReader();
    expect(reasonOf(() => r.push(new TextEncoder().encode('GET / HTTP/1.1\r\n')))).toBe('BAD_MESSAGE');
    // It stays failed.
    expect(reasonOf(() => r.push(encodeMessage({ type: 'getInfoReq' })))).toBe('BAD_MESSAGE');
  });

  it('refuses an oversized message from its header alone, before the body arrives', () => {
    const r = new FrameReader(messageLimits({ maxMessageSize: 4096, defaultTypeSize: 2048 }));
    // uploadDataReq [10] announcing 3000 content bytes: over its 2048 limit.
    const err = (() => {
      try {
        r.push(Uint8Array.from([0xaa, 0x82, 0x0b, 0xb8]));
      } catch (e) {
        return e as IpUptaneError;
      }
      return undefined;
    })();
    expect(err?.reason).toBe('MESSAGE_TOO_LARGE');
    expect(err?.code).toBe('ENDLESS_DATA');
    // A putMetaReq2 of the same size is fine under a per-type limit.
    const r2 = new FrameReader(messageLimits({ maxMessageSize: 4096, defaultTypeSize: 2048, maxSizeByType: { putMetaReq2: 4096 } }));
    r2.push(Uint8Array.from([0xae, 0x82, 0x0b, 0xb8]));
    expect(r2.hasPartial).toBe(true);
  });

  it('refuses an indefinite length and over-long length fields', () => {
    expect(reasonOf(() => new FrameReader().push(Uint8Array.from([0xa0, 0x80])))).toBe('BAD_MESSAGE');
    expect(reasonOf(() => new FrameReader().push(Uint8Array.from([0xa0, 0x88, 1, 2, 3, 4, 5, 6, 7, 8])))).toBe('BAD_MESSAGE');
  });

  it('never throws anything but IpUptaneError on random input, and never buffers more than a header before the limit check', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { maxLength: 20 }), (chunks) => {
        const r = new FrameReader(messageLimits(4096));
        for (const c of chunks) {
          try {
            r.push(c);
          } catch (err) {
            expect(err).toBeInstanceOf(IpUptaneError);
            return;
          }
          expect(r.progress.total ?? 0).toBeLessThanOrEqual(4096);
          expect(r.progress.received).toBeLessThanOrEqual(4096);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
