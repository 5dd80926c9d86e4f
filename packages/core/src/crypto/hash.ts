/** Hash functions allowed in `hashes` objects, and helpers to compute and compare them. */
import { createHash, type Hash } from 'node:crypto';
import { hexEquals } from '../encoding.js';

/** Names as they appear in metadata `hashes` objects. sha256 comes first: aktualizr and OTA CE need it. */
export const SUPPORTED_HASHES = ['sha256', 'sha512'] as const;
export type HashAlgorithm = (typeof SUPPORTED_HASHES)[number];

export function isSupportedHash(name: string): name is HashAlgorithm {
  return (SUPPORTED_HASHES as readonly string[]).includes(name);
}

export function digestHex(algorithm: HashAlgorithm, data: Uint8Array): string {
  return createHash(algorithm).update(data).digest('hex');
}

/** Computes every supported hash of some bytes. */
export function computeHashes(data: Uint8Array, algorithms: readonly HashAlgorithm[] = SUPPORTED_HASHES): Record<HashAlgorithm, string> {
  const out = {} as Record<HashAlgorithm, string>;
  for (const a of algorithms) out[a] = digestHex(a, data);
  return out;
}

/**
 * Hashes a stream of chunks with several algorithms at once and counts bytes,
 * for uploads on the server and downloads on the device.
 */
export class MultiHasher {
  private readonly hashes: Array<[HashAlgorithm, Hash]>;
  private bytes = 0;
  constructor(algorithms: readonly HashAlgorithm[] = SUPPORTED_HASHES) {
    this.hashes = algorithms.map((a) => [a, createHash(a)]);
  }
  update(chunk: Uint8Array): void {
    this.bytes += chunk.byteLength;
    for (const [, h] of this.hashes) h.update(chunk);
  }
  get length(): number {
    return this.bytes;
  }
  digest(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [a, h] of this.hashes) out[a] = h.digest('hex');
    return out;
  }
}

/**
 * Checks computed hashes against expected ones. Every expected hash whose
 * algorithm we support must match; at least one must be supported.
 * Returns the name of the first mismatching algorithm, or undefined when all match.
 */
export function firstHashMismatch(expected: Readonly<Record<string, string>>, actual: Readonly<Record<string, string>>): string | undefined {
  let checked = 0;
  for (const [alg, want] of Object.entries(expected)) {
    if (!isSupportedHash(alg)) continue;
    const got = actual[alg];
    if (got === undefined || !hexEquals(got, want)) return alg;
    checked++;
  }
  return checked === 0 ? '(no supported hash)' : undefined;
}
