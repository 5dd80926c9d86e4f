import { describe, expect, it } from 'vitest';
import { MultiHasher, SUPPORTED_HASHES, computeHashes, digestHex, firstHashMismatch, isSupportedHash } from './hash.js';

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const ABC_SHA256 = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
const ABC_SHA512 = 'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f';

describe('hashes', () => {
  it('computes sha256 and sha512 (FIPS 180-2 vectors)', () => {
    expect(digestHex('sha256', new Uint8Array(0))).toBe(EMPTY_SHA256);
    expect(computeHashes(Buffer.from('abc'))).toEqual({ sha256: ABC_SHA256, sha512: ABC_SHA512 });
    expect(computeHashes(Buffer.from('abc'), ['sha256'])).toEqual({ sha256: ABC_SHA256 });
    expect(SUPPORTED_HASHES[0]).toBe('sha256');
    expect(isSupportedHash('sha256') && isSupportedHash('sha512') && !isSupportedHash('md5') && !isSupportedHash('SHA256')).toBe(true);
  });

  it('hashes a stream of chunks like the whole', () => {
    const h = new MultiHasher();
    for (const c of ['a', '', 'bc']) h.update(Buffer.from(c));
    expect(h.length).toBe(3);
    expect(h.digest()).toEqual({ sha256: ABC_SHA256, sha512: ABC_SHA512 });
  });

  it('checks every supported expected hash, case-insensitively, and needs at least one', () => {
    const actual = computeHashes(Buffer.from('abc'));
    expect(firstHashMismatch({ sha256: ABC_SHA256.toUpperCase() }, actual)).toBeUndefined();
    expect(firstHashMismatch({ sha256: ABC_SHA256, sha512: ABC_SHA512 }, actual)).toBeUndefined();
    // Unknown algorithms are skipped, but they cannot be the only ones.
    expect(firstHashMismatch({ sha256: ABC_SHA256, blake3: 'ff' }, actual)).toBeUndefined();
    expect(firstHashMismatch({ blake3: 'ff' }, actual)).toBe('(no supported hash)');
    expect(firstHashMismatch({}, actual)).toBe('(no supported hash)');
    expect(firstHashMismatch({ sha256: ABC_SHA256, sha512: EMPTY_SHA256 }, actual)).toBe('sha512');
    expect(firstHashMismatch({ sha256: EMPTY_SHA256 }, actual)).toBe('sha256');
    expect(firstHashMismatch({ sha512: ABC_SHA512 }, { sha256: ABC_SHA256 })).toBe('sha512');
  });
});
