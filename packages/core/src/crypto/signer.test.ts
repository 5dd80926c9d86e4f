import { describe, expect, it } from 'vitest';
import { createPublicKey, randomBytes } from 'node:crypto';
import {
  KEY_TYPES,
  LocalSigner,
  decryptPrivateKey,
  deriveKey,
  encryptPrivateKey,
  generatePrivateKey,
  isKeyType,
  keyTypeOf,
  openBytes,
  privateKeyFromPem,
  privateKeyToPem,
  sealBytes,
} from './signer.js';
import { PublicKey } from './keys.js';
import { UptaneError, UnsupportedAlgorithmError } from '../errors.js';
import type { JsonObject } from '../json.js';
import { ed25519Key, fixtureKey } from '../testing/builders.js';

// Small scrypt cost: the format is what is under test, not the work factor.
const FAST = { scryptN: 1 << 10 };

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof UptaneError) return err.code;
    return `not an UptaneError: ${String(err)}`;
  }
  return 'no error';
}

describe('LocalSigner', () => {
  it('signs with a private key and exposes the public half in the chosen dialect', async () => {
    const signer = new LocalSigner(fixtureKey('RSA_2048_A'), 'uptane');
    expect(signer.publicKey.keytype).toBe('RSA');
    const data = Buffer.from('payload');
    expect(signer.publicKey.verify(data, await signer.sign(data), 'rsassa-pss')).toBe(true);
    expect(new LocalSigner(fixtureKey('RSA_2048_A'), 'tuf').publicKey.keytype).toBe('rsa');
  });

  it('refuses a public key', () => {
    expect(codeOf(() => new LocalSigner(createPublicKey(ed25519Key('a')), 'uptane'))).toBe('BAD_KEY');
  });

  it('refuses an ECDSA key in the uptane dialect', () => {
    expect(() => new LocalSigner(fixtureKey('EC_P256'), 'uptane')).toThrow(UnsupportedAlgorithmError);
  });
});

describe('key generation and types', () => {
  it.each(['ed25519', 'ecdsa-p256', 'rsa2048'] as const)('generates %s keys of the right type', async (type) => {
    const key = await generatePrivateKey(type);
    expect(keyTypeOf(key)).toBe(type);
  });

  it('names the type of fixture keys and refuses sizes and curves we do not support', () => {
    expect(keyTypeOf(fixtureKey('RSA_3072'))).toBe('rsa3072');
    expect(keyTypeOf(fixtureKey('RSA_4096'))).toBe('rsa4096');
    expect(codeOf(() => keyTypeOf(fixtureKey('RSA_1024')))).toBe('UNSUPPORTED_ALGORITHM');
    expect(codeOf(() => keyTypeOf(fixtureKey('EC_P384')))).toBe('UNSUPPORTED_ALGORITHM');
    expect(KEY_TYPES.every(isKeyType)).toBe(true);
    expect(isKeyType('rsa1024')).toBe(false);
  });
});

describe('encrypted key files', () => {
  it.each([
    ['ed25519', () => ed25519Key('file')],
    ['rsa2048', () => fixtureKey('RSA_2048_A')],
    ['ecdsa-p256', () => fixtureKey('EC_P256')],
  ] as const)('round-trips a %s key', (type, make) => {
    const key = make();
    const file = encryptPrivateKey(key, 'correct horse', FAST);
    expect(file['keytype']).toBe(type);
    expect(file['format']).toBe('uptide-private-key');
    // The public key is readable without the passphrase.
    const pub = PublicKey.fromKeyObject(createPublicKey(key), type === 'ecdsa-p256' ? 'tuf' : 'uptane');
    expect(file['public']).toBe(pub.public);
    const back = decryptPrivateKey(JSON.parse(JSON.stringify(file)) as JsonObject, 'correct horse');
    expect(back.export({ format: 'der', type: 'pkcs8' }).equals(key.export({ format: 'der', type: 'pkcs8' }))).toBe(true);
  });

  it('refuses a wrong passphrase with BAD_PASSPHRASE', () => {
    const file = encryptPrivateKey(ed25519Key('file'), 'right', FAST);
    expect(codeOf(() => decryptPrivateKey(file, 'wrong'))).toBe('BAD_PASSPHRASE');
    expect(codeOf(() => decryptPrivateKey(file, ''))).toBe('BAD_PASSPHRASE');
  });

  it('normalizes the passphrase to NFC (é typed composed or decomposed opens the same file)', () => {
    const file = encryptPrivateKey(ed25519Key('file'), 'caf\u00e9', FAST);
    expect(() => decryptPrivateKey(file, 'cafe\u0301')).not.toThrow();
  });

  it('refuses an empty passphrase when sealing', () => {
    expect(codeOf(() => encryptPrivateKey(ed25519Key('file'), '', FAST))).toBe('BAD_PASSPHRASE');
  });

  it('refuses a file whose public key was replaced (it is bound to the ciphertext)', () => {
    const file = encryptPrivateKey(ed25519Key('file'), 'pw', FAST);
    const other = PublicKey.fromKeyObject(createPublicKey(ed25519Key('attacker')), 'uptane').public;
    const code = codeOf(() => decryptPrivateKey({ ...file, public: other }, 'pw'));
    expect(['BAD_PASSPHRASE', 'BAD_KEY']).toContain(code);
  });

  it('refuses modified ciphertext, tag or iv', () => {
    const file = encryptPrivateKey(ed25519Key('file'), 'pw', FAST);
    const flip = (b64: string): string => {
      const b = Buffer.from(b64, 'base64');
      b[0] = (b[0] as number) ^ 1;
      return b.toString('base64');
    };
    const cipher = file['cipher'] as JsonObject;
    expect(codeOf(() => decryptPrivateKey({ ...file, ciphertext: flip(file['ciphertext'] as string) }, 'pw'))).toBe('BAD_PASSPHRASE');
    expect(codeOf(() => decryptPrivateKey({ ...file, cipher: { ...cipher, tag: flip(cipher['tag'] as string) } }, 'pw'))).toBe('BAD_PASSPHRASE');
    expect(codeOf(() => decryptPrivateKey({ ...file, cipher: { ...cipher, iv: flip(cipher['iv'] as string) } }, 'pw'))).toBe('BAD_PASSPHRASE');
  });

  it('refuses malformed files with typed errors, never a TypeError or RangeError', () => {
    const file = encryptPrivateKey(ed25519Key('file'), 'pw', FAST);
    const kdf = file['kdf'] as JsonObject;
    const cipher = file['cipher'] as JsonObject;
    const cases: Array<[JsonObject | string | null, string]> = [
      [null, 'MALFORMED_METADATA'],
      ['text', 'MALFORMED_METADATA'],
      [{ ...file, format: 'something-else' }, 'BAD_KEY'],
      [{ ...file, kdf: { ...kdf, name: 'pbkdf2' } }, 'UNSUPPORTED_ALGORITHM'],
      [{ ...file, cipher: { ...cipher, name: 'aes-128-cbc' } }, 'UNSUPPORTED_ALGORITHM'],
      [{ ...file, kdf: { ...kdf, N: 1 << 21 } }, 'BAD_KEY'],
      [{ ...file, kdf: { ...kdf, N: 1000 } }, 'BAD_KEY'], // not a power of two
      [{ ...file, kdf: { ...kdf, N: 'many' } }, 'MALFORMED_METADATA'],
      [{ ...file, kdf: { ...kdf, salt: '***' } }, 'MALFORMED_METADATA'],
      [{ ...file, cipher: { ...cipher, tag: 'AAAA' } }, 'BAD_KEY'], // 3-byte tag
      [{ ...file, cipher: { ...cipher, iv: '' } }, 'BAD_KEY'],
      [{ ...file, ciphertext: 5 } as unknown as JsonObject, 'MALFORMED_METADATA'],
      [{ ...file, public: undefined } as unknown as JsonObject, 'MALFORMED_METADATA'],
    ];
    for (const [f, code] of cases)
      expect(
        codeOf(() => decryptPrivateKey(f, 'pw')),
        JSON.stringify(f).slice(0, 80),
      ).toBe(code);
  });
});

describe('sealing bytes', () => {
  it('opens what it sealed with the same key and associated data only', () => {
    const key = deriveKey('server secret', Buffer.from('salt-salt-salt'), 1 << 10);
    expect(key.byteLength).toBe(32);
    const secret = randomBytes(48);
    const sealed = sealBytes(key, secret, 'keys/targets');
    expect(Buffer.from(openBytes(key, sealed, 'keys/targets')).equals(secret)).toBe(true);
    expect(codeOf(() => openBytes(key, sealed, 'keys/root'))).toBe('BAD_PASSPHRASE');
    expect(codeOf(() => openBytes(deriveKey('other', Buffer.from('salt-salt-salt'), 1 << 10), sealed, 'keys/targets'))).toBe('BAD_PASSPHRASE');
  });

  it('refuses malformed sealed values with typed errors', () => {
    const key = deriveKey('k', Buffer.from('salt'), 1 << 10);
    const [v, iv, , ct] = sealBytes(key, Buffer.from('x'), 'a').split('.');
    for (const bad of ['', 'v2.a.b.c', 'v1.a.b', `${v}.${iv}.AAAA.${ct}`, `${v}.***.AAAA.${ct}`]) {
      expect(
        codeOf(() => openBytes(key, bad, 'a')),
        bad,
      ).not.toMatch(/^not an UptaneError|^no error/);
    }
  });
});

describe('PEM private keys', () => {
  it('round-trips and refuses garbage with BAD_KEY', () => {
    const pem = privateKeyToPem(ed25519Key('pem'));
    expect(privateKeyFromPem(pem).asymmetricKeyType).toBe('ed25519');
    expect(codeOf(() => privateKeyFromPem('-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n'))).toBe('BAD_KEY');
  });
});
