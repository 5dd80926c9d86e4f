/**
 * Signing goes through the `Signer` interface so that online keys held by the
 * server, offline key files of the CLI and, later, HSM/KMS signers plug in the
 * same way. Key files are encrypted with a passphrase (scrypt + AES-256-GCM).
 */
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  generateKeyPair as generateKeyPairCb,
  randomBytes,
  scryptSync,
  sign as cryptoSign,
  constants,
  type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';
import { UptaneError, UnsupportedAlgorithmError } from '../errors.js';
import type { JsonObject, JsonValue } from '../json.js';
import { fromBase64, toBase64 } from '../encoding.js';
import { expectInteger, expectObject, expectString } from '../metadata/guard.js';
import { PublicKey, type Dialect } from './keys.js';

export interface Signer {
  /** The public half, used to compute key ids and to list the key in a Root. */
  readonly publicKey: PublicKey;
  /** Signs bytes (canonical JSON of a `signed` payload). */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

export type KeyType = 'ed25519' | 'rsa2048' | 'rsa3072' | 'rsa4096' | 'ecdsa-p256';
export const KEY_TYPES: readonly KeyType[] = ['ed25519', 'rsa2048', 'rsa3072', 'rsa4096', 'ecdsa-p256'];

export function isKeyType(s: string): s is KeyType {
  return (KEY_TYPES as readonly string[]).includes(s);
}

/** A signer holding a private key in process memory. */
export class LocalSigner implements Signer {
  readonly publicKey: PublicKey;
  constructor(
    readonly privateKey: KeyObject,
    dialect: Dialect,
  ) {
    if (privateKey.type !== 'private') throw new UptaneError('BAD_KEY', 'LocalSigner needs a private key');
    this.publicKey = PublicKey.fromKeyObject(createPublicKey(privateKey), dialect);
  }

  sign(data: Uint8Array): Promise<Uint8Array> {
    return Promise.resolve(signSync(this.privateKey, data));
  }
}

/** Signs with a private KeyObject: Ed25519, RSA-PSS-SHA256 with salt 32 (as aktualizr and ota-tuf), or ECDSA P-256 (DER). */
export function signSync(privateKey: KeyObject, data: Uint8Array): Uint8Array {
  switch (privateKey.asymmetricKeyType) {
    case 'ed25519':
      return cryptoSign(null, data, privateKey);
    case 'rsa':
      return cryptoSign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    case 'ec':
      return cryptoSign('sha256', data, { key: privateKey, dsaEncoding: 'der' });
    default:
      throw new UnsupportedAlgorithmError(`cannot sign with a ${String(privateKey.asymmetricKeyType)} key`);
  }
}

const generateKeyPairAsync = promisify(generateKeyPairCb);

/** Generates a private key of a type (RSA in the thread pool, so the event loop keeps running). */
export async function generatePrivateKey(type: KeyType): Promise<KeyObject> {
  switch (type) {
    case 'ed25519':
      return (await generateKeyPairAsync('ed25519')).privateKey;
    case 'rsa2048':
    case 'rsa3072':
    case 'rsa4096':
      return (await generateKeyPairAsync('rsa', { modulusLength: Number(type.slice(3)), publicExponent: 0x10001 })).privateKey;
    case 'ecdsa-p256':
      return (await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' })).privateKey;
  }
}

/** The KeyType of a private key. */
export function keyTypeOf(key: KeyObject): KeyType {
  switch (key.asymmetricKeyType) {
    case 'ed25519':
      return 'ed25519';
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength;
      if (bits === 2048 || bits === 3072 || bits === 4096) return `rsa${bits}`;
      throw new UnsupportedAlgorithmError(`RSA keys must have 2048, 3072 or 4096 bits, not ${String(bits)}`);
    }
    case 'ec':
      if (key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ecdsa-p256';
      break;
    default:
      break;
  }
  throw new UnsupportedAlgorithmError(`unsupported key type ${String(key.asymmetricKeyType)}`);
}

// --- Encrypted key files -----------------------------------------------------

export const KEY_FILE_FORMAT = 'uptide-private-key';

/** scrypt cost for key files: about 100 ms and 32 MiB, per OWASP's minimum for interactive use. */
const SCRYPT = { N: 1 << 15, r: 8, p: 1 } as const;

export interface EncryptedKeyOptions {
  /** Override scrypt cost (tests use a small N to stay fast). */
  readonly scryptN?: number;
}

/**
 * Seals a private key with a passphrase. The public key is stored in clear (so
 * `uptide keys list` can show ids without the passphrase) and is bound to the
 * ciphertext as additional authenticated data.
 */
export function encryptPrivateKey(privateKey: KeyObject, passphrase: string, options: EncryptedKeyOptions = {}): JsonObject {
  if (passphrase.length === 0) throw new UptaneError('BAD_PASSPHRASE', 'a passphrase is required to encrypt a private key');
  const keytype = keyTypeOf(privateKey);
  const pub = PublicKey.fromKeyObject(createPublicKey(privateKey), keytype === 'ecdsa-p256' ? 'tuf' : 'uptane');
  const salt = randomBytes(16);
  const N = options.scryptN ?? SCRYPT.N;
  const kek = scryptSync(passphrase.normalize('NFC'), salt, 32, { N, r: SCRYPT.r, p: SCRYPT.p, maxmem: 256 * N * SCRYPT.r });
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, iv);
  cipher.setAAD(Buffer.from(pub.public, 'utf8'));
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const ciphertext = Buffer.concat([cipher.update(der), cipher.final()]);
  return {
    format: KEY_FILE_FORMAT,
    version: 1,
    keytype,
    public: pub.public,
    kdf: { name: 'scrypt', N, r: SCRYPT.r, p: SCRYPT.p, salt: toBase64(salt) },
    cipher: { name: 'aes-256-gcm', iv: toBase64(iv), tag: toBase64(cipher.getAuthTag()) },
    ciphertext: toBase64(ciphertext),
  };
}

/** Opens a key file sealed by encryptPrivateKey. A wrong passphrase is a BAD_PASSPHRASE error. */
export function decryptPrivateKey(file: JsonValue, passphrase: string): KeyObject {
  const obj = expectObject(file, 'keyfile');
  if (obj['format'] !== KEY_FILE_FORMAT) throw new UptaneError('BAD_KEY', `not an ${KEY_FILE_FORMAT} file`);
  const kdf = expectObject(obj['kdf'], 'keyfile.kdf');
  const cipherInfo = expectObject(obj['cipher'], 'keyfile.cipher');
  if (kdf['name'] !== 'scrypt' || cipherInfo['name'] !== 'aes-256-gcm') throw new UnsupportedAlgorithmError('unsupported key file encryption');
  const N = expectInteger(kdf['N'], 'keyfile.kdf.N', 2);
  const r = expectInteger(kdf['r'], 'keyfile.kdf.r', 1);
  const p = expectInteger(kdf['p'], 'keyfile.kdf.p', 1);
  // scrypt needs N to be a power of two; bounds keep a hostile file from costing minutes or gigabytes.
  if (N > 1 << 20 || (N & (N - 1)) !== 0 || r > 32 || p > 16) throw new UptaneError('BAD_KEY', 'key file scrypt parameters are out of range');
  const salt = fromBase64(expectString(kdf['salt'], 'keyfile.kdf.salt'), 'keyfile.kdf.salt');
  const iv = fromBase64(expectString(cipherInfo['iv'], 'keyfile.cipher.iv'), 'keyfile.cipher.iv');
  const tag = fromBase64(expectString(cipherInfo['tag'], 'keyfile.cipher.tag'), 'keyfile.cipher.tag');
  const ciphertext = fromBase64(expectString(obj['ciphertext'], 'keyfile.ciphertext'), 'keyfile.ciphertext');
  const pub = expectString(obj['public'], 'keyfile.public');
  // GCM with a 12-byte iv and the full 16-byte tag, as written by encryptPrivateKey; anything else is not our file.
  if (iv.byteLength !== 12 || tag.byteLength !== 16) throw new UptaneError('BAD_KEY', 'key file iv or tag has the wrong length');
  const kek = scryptSync(passphrase.normalize('NFC'), salt, 32, { N, r, p, maxmem: 256 * N * r + 1024 });
  const decipher = createDecipheriv('aes-256-gcm', kek, iv);
  decipher.setAAD(Buffer.from(pub, 'utf8'));
  decipher.setAuthTag(tag);
  let der: Buffer;
  try {
    der = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch (err) {
    throw new UptaneError('BAD_PASSPHRASE', 'wrong passphrase, or the key file was modified', { cause: err });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw new UptaneError('BAD_KEY', 'the key file does not hold a PKCS#8 private key', { cause: err });
  }
  // The clear public key is what `keys list` shows; it must be the half of the sealed private key.
  const type = keyTypeOf(key);
  if (PublicKey.fromKeyObject(createPublicKey(key), type === 'ecdsa-p256' ? 'tuf' : 'uptane').public !== pub) {
    throw new UptaneError('BAD_KEY', 'the public key of the key file does not match its private key');
  }
  return key;
}

/** Seals arbitrary bytes with an already-derived 32-byte key (servers derive it once at start). */
export function sealBytes(key: Uint8Array, plaintext: Uint8Array, aad: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return ['v1', toBase64(iv), toBase64(cipher.getAuthTag()), toBase64(ct)].join('.');
}

export function openBytes(key: Uint8Array, sealed: string, aad: string): Uint8Array {
  const parts = sealed.split('.');
  if (parts.length !== 4 || parts[0] !== 'v1') throw new UptaneError('BAD_KEY', 'sealed value has an unknown format');
  const iv = fromBase64(parts[1] as string, 'sealed.iv');
  const tag = fromBase64(parts[2] as string, 'sealed.tag');
  const ct = fromBase64(parts[3] as string, 'sealed.ciphertext');
  if (iv.byteLength !== 12 || tag.byteLength !== 16) throw new UptaneError('BAD_KEY', 'sealed value has an iv or tag of the wrong length');
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ct), decipher.final()]);
  } catch (err) {
    throw new UptaneError('BAD_PASSPHRASE', 'cannot decrypt: wrong passphrase or modified data', { cause: err });
  }
}

/** Derives a 32-byte sealing key from a passphrase and a salt (scrypt). */
export function deriveKey(passphrase: string, salt: Uint8Array, scryptN: number = SCRYPT.N): Uint8Array {
  return scryptSync(passphrase.normalize('NFC'), salt, 32, { N: scryptN, r: SCRYPT.r, p: SCRYPT.p, maxmem: 256 * scryptN * SCRYPT.r + 1024 });
}

/** Serializes a private key as unencrypted PKCS#8 PEM (for device identity keys that live in protected storage). */
export function privateKeyToPem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'pkcs8' }).toString();
}

export function privateKeyFromPem(pem: string): KeyObject {
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new UptaneError('BAD_KEY', 'cannot parse the private key PEM', { cause: err });
  }
}
