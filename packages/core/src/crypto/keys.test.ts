import { describe, expect, it } from 'vitest';
import { constants, createPublicKey, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import { PublicKey, PublicKeyCache, checkKeyId } from './keys.js';
import { signSync } from './signer.js';
import { FormatError, KeyError, UnsupportedAlgorithmError } from '../errors.js';
import type { JsonObject } from '../json.js';
import { ed25519Key, fixtureKey, type FixtureKey } from '../testing/builders.js';

// RFC 8032 §7.1, test 1: public key and the signature of the empty message.
const RFC8032_PUBLIC = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const RFC8032_SIG_EMPTY = 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';

// Key ids computed independently with OpenSSL and sha256sum (see the commit that added them):
// uptane = sha256(DER SPKI); tuf = sha256(OLPC canonical {"keytype","keyval":{"public"},"scheme"}).
const VECTORS = {
  ed25519Uptane: '06e3fd8fda29bb60ab59557de61edb0aecdb231134be30e75b455f8e1b792fa9',
  ed25519Tuf: '74c181c7ad8a0855d4b55e44d2ba87aabdddb196832571f15f92fece332e4916',
  rsa2048AUptane: 'c96541b14b9d55a8018ea728a28e5aea0ce183de49cd419519a846fab9ec0b44',
  rsa2048ATuf: '2dcdba14b7e76ad277017c4d94cd058245a9bab179280f267001c7cb4496b332',
  ecP256Tuf: '37dbcc2070e524317e40e7d55ccfb69600d3cca41fd8cadec092f8a1919dd9b0',
};

function pem(name: FixtureKey): string {
  return createPublicKey(fixtureKey(name)).export({ format: 'pem', type: 'spki' }).toString();
}

const data = Buffer.from('{"_type":"Targets","version":1}', 'utf8');

describe('PublicKey: parsing per dialect', () => {
  it('reads an OTA CE Ed25519 key (upper-case keytype) and computes the SPKI key id', () => {
    const key = PublicKey.fromJSON({ keytype: 'ED25519', keyval: { public: RFC8032_PUBLIC } }, 'uptane');
    expect(key.algorithm).toBe('ed25519');
    expect(key.spki().subarray(0, 12).toString('hex')).toBe('302a300506032b6570032100');
    expect(key.keyId('uptane')).toBe(VECTORS.ed25519Uptane);
  });

  it('accepts the keytype in any case in the uptane dialect, and upper-case hex (aktualizr writes it) with the same key id', () => {
    const key = PublicKey.fromJSON({ keytype: 'ed25519', keyval: { public: RFC8032_PUBLIC.toUpperCase() } }, 'uptane');
    expect(key.keyId('uptane')).toBe(VECTORS.ed25519Uptane);
    expect(key.toJSON()).toEqual({ keytype: 'ed25519', keyval: { public: RFC8032_PUBLIC.toUpperCase() } });
  });

  it('computes the TUF key id over the canonical key object', () => {
    const key = PublicKey.fromJSON({ keytype: 'ed25519', scheme: 'ed25519', keyval: { public: RFC8032_PUBLIC } }, 'tuf');
    expect(key.keyId('tuf')).toBe(VECTORS.ed25519Tuf);
    // The key material is the same, so the dialect-independent fingerprint is the OTA CE id.
    expect(key.fingerprint()).toBe(VECTORS.ed25519Uptane);
  });

  it('computes RSA key ids in both dialects (fixed vectors)', () => {
    const p = pem('RSA_2048_A');
    expect(PublicKey.fromJSON({ keytype: 'RSA', keyval: { public: p } }, 'uptane').keyId('uptane')).toBe(VECTORS.rsa2048AUptane);
    expect(PublicKey.fromJSON({ keytype: 'rsa', scheme: 'rsassa-pss-sha256', keyval: { public: p } }, 'tuf').keyId('tuf')).toBe(VECTORS.rsa2048ATuf);
    const fromKo = PublicKey.fromKeyObject(createPublicKey(fixtureKey('RSA_2048_A')), 'tuf');
    expect(fromKo.toJSON()).toEqual({ keytype: 'rsa', scheme: 'rsassa-pss-sha256', keyval: { public: p } });
    expect(fromKo.keyId('tuf')).toBe(VECTORS.rsa2048ATuf);
  });

  it('computes the ECDSA P-256 key id in the tuf dialect', () => {
    const key = PublicKey.fromKeyObject(createPublicKey(fixtureKey('EC_P256')), 'tuf');
    expect(key.toJSON()).toEqual({ keytype: 'ecdsa', scheme: 'ecdsa-sha2-nistp256', keyval: { public: pem('EC_P256') } });
    expect(key.keyId('tuf')).toBe(VECTORS.ecP256Tuf);
    const alt = PublicKey.fromJSON({ keytype: 'ecdsa-sha2-nistp256', scheme: 'ecdsa-sha2-nistp256', keyval: { public: pem('EC_P256') } }, 'tuf');
    expect(alt.algorithm).toBe('ecdsa-p256');
  });

  it('refuses ECDSA in the uptane dialect (aktualizr rejects it)', () => {
    expect(() => PublicKey.fromKeyObject(createPublicKey(fixtureKey('EC_P256')), 'uptane')).toThrow(UnsupportedAlgorithmError);
    for (const keytype of ['ECPRIME256V1', 'ecdsa', 'ecdsa-sha2-nistp256']) {
      const err = catchError(() => PublicKey.fromJSON({ keytype, keyval: { public: pem('EC_P256') } }, 'uptane'));
      expect(err).toBeInstanceOf(UnsupportedAlgorithmError);
      expect((err as UnsupportedAlgorithmError).code).toBe('UNSUPPORTED_ALGORITHM');
      expect((err as UnsupportedAlgorithmError).path).toBe('key.keytype');
    }
  });

  it('refuses keytype/scheme pairs the tuf dialect does not define', () => {
    for (const [keytype, scheme] of [
      ['ed25519', 'rsassa-pss-sha256'],
      ['rsa', 'rsassa-pkcs1v15-sha256'],
      ['ED25519', 'ed25519'],
      ['ecdsa', 'ecdsa-sha2-nistp384'],
    ] as const) {
      expect(() => PublicKey.fromJSON({ keytype, scheme, keyval: { public: RFC8032_PUBLIC } }, 'tuf')).toThrow(UnsupportedAlgorithmError);
    }
    // The scheme is required in the tuf dialect.
    const err = catchError(() => PublicKey.fromJSON({ keytype: 'ed25519', keyval: { public: RFC8032_PUBLIC } }, 'tuf'));
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).path).toBe('key.scheme');
  });

  it('accepts RSA 2048, 3072 and 4096 in the uptane dialect and refuses other sizes', () => {
    for (const name of ['RSA_2048_A', 'RSA_3072', 'RSA_4096'] as const) {
      expect(PublicKey.fromJSON({ keytype: 'RSA', keyval: { public: pem(name) } }, 'uptane').algorithm).toBe('rsa');
    }
    for (const dialect of ['uptane', 'tuf'] as const) {
      const err = catchError(() =>
        PublicKey.fromJSON({ keytype: dialect === 'uptane' ? 'RSA' : 'rsa', scheme: 'rsassa-pss-sha256', keyval: { public: pem('RSA_1024') } }, dialect, 'k'),
      );
      expect(err).toBeInstanceOf(KeyError);
      expect((err as KeyError).code).toBe('BAD_KEY');
      expect((err as KeyError).path).toBe('k.keyval.public');
    }
  });

  it('refuses malformed key values with KeyError naming the field', () => {
    const cases: Array<[JsonObject, 'uptane' | 'tuf']> = [
      [{ keytype: 'ED25519', keyval: { public: RFC8032_PUBLIC.slice(1) } }, 'uptane'],
      [{ keytype: 'ED25519', keyval: { public: 'zz' + RFC8032_PUBLIC.slice(2) } }, 'uptane'],
      [{ keytype: 'ED25519', keyval: { public: pem('RSA_2048_A') } }, 'uptane'],
      [{ keytype: 'RSA', keyval: { public: '-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----\n' } }, 'uptane'],
      [{ keytype: 'RSA', keyval: { public: pem('EC_P256') } }, 'uptane'],
      [{ keytype: 'ecdsa', scheme: 'ecdsa-sha2-nistp256', keyval: { public: pem('EC_P384') } }, 'tuf'],
      [{ keytype: 'ecdsa', scheme: 'ecdsa-sha2-nistp256', keyval: { public: pem('RSA_2048_A') } }, 'tuf'],
      // A private key where the public one belongs must not be silently turned into its public half.
      [{ keytype: 'RSA', keyval: { public: fixtureKey('RSA_2048_A').export({ format: 'pem', type: 'pkcs8' }).toString() } }, 'uptane'],
    ];
    for (const [json, dialect] of cases) {
      const err = catchError(() => PublicKey.fromJSON(json, dialect, 'signed.keys["x"]'));
      expect(err, JSON.stringify(json).slice(0, 60)).toBeInstanceOf(KeyError);
      expect((err as KeyError).path).toBe('signed.keys["x"].keyval.public');
    }
  });

  it('refuses a malformed key object with FormatError naming the field', () => {
    const cases: Array<[JsonObject | null, string]> = [
      [null, 'key'],
      [{ keyval: { public: RFC8032_PUBLIC } }, 'key.keytype'],
      [{ keytype: 'ED25519' }, 'key.keyval'],
      [{ keytype: 'ED25519', keyval: {} }, 'key.keyval.public'],
      [{ keytype: 'ED25519', keyval: { public: 5 } }, 'key.keyval.public'],
      [{ keytype: 'ED25519', keyval: { public: RFC8032_PUBLIC }, scheme: 7 }, 'key.scheme'],
    ];
    for (const [json, path] of cases) {
      const err = catchError(() => PublicKey.fromJSON(json, 'uptane'));
      expect(err).toBeInstanceOf(FormatError);
      expect((err as FormatError).path).toBe(path);
    }
  });

  it('keeps unknown fields, and the TUF key id covers them (as securesystemslib hashed keyid_hash_algorithms)', () => {
    const json = { keytype: 'ed25519', scheme: 'ed25519', keyid_hash_algorithms: ['sha256', 'sha512'], keyval: { public: RFC8032_PUBLIC, x: 1 } };
    const key = PublicKey.fromJSON(json, 'tuf');
    expect(key.toJSON()).toEqual(json);
    expect(key.keyId('tuf')).not.toBe(VECTORS.ed25519Tuf);
    expect(key.fingerprint()).toBe(VECTORS.ed25519Uptane);
  });
});

describe('PublicKey: signatures', () => {
  it('verifies the RFC 8032 test vector and rejects a flipped bit', () => {
    const key = PublicKey.fromJSON({ keytype: 'ED25519', keyval: { public: RFC8032_PUBLIC } }, 'uptane');
    const sig = Buffer.from(RFC8032_SIG_EMPTY, 'hex');
    expect(key.verify(new Uint8Array(0), sig, 'ed25519')).toBe(true);
    sig[0] = (sig[0] as number) ^ 1;
    expect(key.verify(new Uint8Array(0), sig, 'ed25519')).toBe(false);
  });

  it.each([
    ['ed25519', 'uptane'],
    ['RSA_2048_A', 'uptane'],
    ['RSA_3072', 'uptane'],
    ['RSA_4096', 'uptane'],
    ['RSA_2048_A', 'tuf'],
    ['EC_P256', 'tuf'],
  ] as const)('signs and verifies with %s (%s)', (name, dialect) => {
    const priv = name === 'ed25519' ? ed25519Key('sign-verify') : fixtureKey(name);
    const key = PublicKey.fromKeyObject(createPublicKey(priv), dialect);
    const sig = signSync(priv, data);
    expect(key.verify(data, sig, key.defaultMethod(dialect))).toBe(true);
    expect(key.verify(Buffer.concat([data, Buffer.from(' ')]), sig, key.defaultMethod(dialect))).toBe(false);
    // Round trip through the wire form keeps verifying.
    expect(PublicKey.fromJSON(key.toJSON(), dialect).verify(data, sig, key.defaultMethod(dialect))).toBe(true);
  });

  it('signs RSA-PSS with salt 32 (what ota-tuf verifies) and verifies any salt length, including 0 and the maximum', () => {
    const priv = fixtureKey('RSA_2048_A');
    const key = PublicKey.fromKeyObject(createPublicKey(priv), 'uptane');
    const ours = signSync(priv, data);
    const pub = createPublicKey(priv);
    expect(cryptoVerify('sha256', data, { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, ours)).toBe(true);
    expect(cryptoVerify('sha256', data, { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 20 }, ours)).toBe(false);
    for (const saltLength of [0, 20, constants.RSA_PSS_SALTLEN_MAX_SIGN]) {
      const sig = cryptoSign('sha256', data, { key: priv, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength });
      expect(key.verify(data, sig, 'rsassa-pss'), `salt ${saltLength}`).toBe(true);
    }
    // PKCS#1 v1.5 is not PSS.
    const v15 = cryptoSign('sha256', data, { key: priv, padding: constants.RSA_PKCS1_PADDING });
    expect(key.verify(data, v15, 'rsassa-pss-sha256')).toBe(false);
  });

  it('accepts the method names aktualizr and OTA CE use, in any case, and nothing that does not fit the key', () => {
    const ed = PublicKey.fromKeyObject(createPublicKey(ed25519Key('m')), 'uptane');
    const edSig = signSync(ed25519Key('m'), data);
    expect(ed.verify(data, edSig, 'ED25519')).toBe(true);
    expect(ed.verify(data, edSig, 'rsassa-pss')).toBe(false);
    expect(ed.verify(data, edSig)).toBe(true);
    const rsa = PublicKey.fromKeyObject(createPublicKey(fixtureKey('RSA_2048_A')), 'uptane');
    const rsaSig = signSync(fixtureKey('RSA_2048_A'), data);
    for (const m of ['rsassa-pss', 'rsassa-pss-sha256', 'RSASSA-PSS', 'RsaSsa-Pss-Sha256']) expect(rsa.verify(data, rsaSig, m)).toBe(true);
    for (const m of ['ed25519', 'rsassa-pkcs1v15', 'rsa', '']) expect(rsa.verify(data, rsaSig, m)).toBe(false);
    const ec = PublicKey.fromKeyObject(createPublicKey(fixtureKey('EC_P256')), 'tuf');
    expect(ec.verify(data, signSync(fixtureKey('EC_P256'), data), 'ed25519')).toBe(false);
  });

  it('returns false, never throws, for signature bytes of any shape', () => {
    for (const name of ['RSA_2048_A', 'EC_P256'] as const) {
      const key = PublicKey.fromKeyObject(createPublicKey(fixtureKey(name)), 'tuf');
      for (const sig of [new Uint8Array(0), new Uint8Array(1), new Uint8Array(64), new Uint8Array(256).fill(0xff), new Uint8Array(1000)]) {
        expect(key.verify(data, sig)).toBe(false);
      }
    }
    const ed = PublicKey.fromKeyObject(createPublicKey(ed25519Key('x')), 'uptane');
    for (const sig of [new Uint8Array(0), new Uint8Array(63), new Uint8Array(65)]) expect(ed.verify(data, sig)).toBe(false);
  });

  it('compares keys by material whatever their spelling', () => {
    const a = PublicKey.fromJSON({ keytype: 'ED25519', keyval: { public: RFC8032_PUBLIC } }, 'uptane');
    const b = PublicKey.fromJSON({ keytype: 'ed25519', scheme: 'ed25519', keyval: { public: RFC8032_PUBLIC.toUpperCase() } }, 'tuf');
    expect(a.equals(b)).toBe(true);
    expect(a.equals(PublicKey.fromKeyObject(createPublicKey(ed25519Key('other')), 'uptane'))).toBe(false);
  });
});

describe('PublicKeyCache', () => {
  it('returns the same parsed key for the same wire form and evicts the least recently used', () => {
    const cache = new PublicKeyCache(2);
    const k = (seed: string): JsonObject => PublicKey.fromKeyObject(createPublicKey(ed25519Key(seed)), 'uptane').toJSON();
    const a = cache.get(k('a'), 'uptane');
    expect(cache.get(k('a'), 'uptane')).toBe(a);
    cache.get(k('b'), 'uptane');
    cache.get(k('a'), 'uptane'); // a is now the most recent
    cache.get(k('c'), 'uptane'); // evicts b
    expect(cache.size).toBe(2);
    expect(cache.get(k('a'), 'uptane')).toBe(a);
    // A malformed key still fails the way fromJSON does.
    expect(() => cache.get({ keytype: 'ED25519', keyval: { public: 'x' } }, 'uptane')).toThrow(KeyError);
    expect(() => cache.get({ keytype: 'ED25519' }, 'uptane')).toThrow(FormatError);
  });
});

describe('checkKeyId', () => {
  it('accepts 64 hex characters only', () => {
    expect(() => checkKeyId(VECTORS.ed25519Uptane, 'k')).not.toThrow();
    expect(() => checkKeyId(VECTORS.ed25519Uptane.toUpperCase(), 'k')).not.toThrow();
    for (const bad of ['', 'ab', VECTORS.ed25519Uptane + '0', 'g'.repeat(64)]) {
      const err = catchError(() => checkKeyId(bad, 'signed.roles.root.keyids[0]'));
      expect(err).toBeInstanceOf(FormatError);
      expect((err as FormatError).path).toBe('signed.roles.root.keyids[0]');
    }
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}
