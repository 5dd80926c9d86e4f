/**
 * Public keys and signature verification, in both wire dialects.
 *
 * - uptane (OTA CE / aktualizr): keytype `ED25519` (64 hex chars) or `RSA`
 *   (PEM SubjectPublicKeyInfo, 2048/3072/4096 bits); key id = SHA-256 of the
 *   DER SubjectPublicKeyInfo; signatures carry a `method`.
 * - tuf (TUF 1.0): keytype/scheme pairs `ed25519`/`ed25519`, `rsa`/`rsassa-pss-sha256`,
 *   `ecdsa`(or `ecdsa-sha2-nistp256`)/`ecdsa-sha2-nistp256`; key id = SHA-256 of
 *   the canonical key object.
 *
 * Parsed Node KeyObjects are cached on the PublicKey instance, so verifying with
 * a parsed Root (or a server's cached inventory key) never re-parses PEM.
 */
import { createHash, createPublicKey, constants, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { FormatError, KeyError, UnsupportedAlgorithmError } from '../errors.js';
import { canonicalize, type JsonObject, type JsonValue } from '../json.js';
import { fromHex, toHex } from '../encoding.js';
import { expectObject, expectString, pickUnrecognized } from '../metadata/guard.js';

export type Dialect = 'uptane' | 'tuf';
export type KeyAlgorithm = 'ed25519' | 'rsa' | 'ecdsa-p256';

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const RSA_SIZES_UPTANE = new Set([2048, 3072, 4096]);

export class PublicKey {
  /** keytype exactly as it appears on the wire (kept for lossless re-serialization). */
  readonly keytype: string;
  /** TUF scheme, as on the wire; absent in the uptane dialect. */
  readonly scheme: string | undefined;
  /** keyval.public exactly as on the wire. */
  readonly public: string;
  readonly algorithm: KeyAlgorithm;
  readonly unrecognized: JsonObject;
  readonly keyvalUnrecognized: JsonObject;
  private keyObjectCache: KeyObject | undefined;
  private spkiCache: Buffer | undefined;
  private fingerprintCache: string | undefined;
  private readonly keyIdCache = new Map<Dialect, string>();

  private constructor(init: {
    keytype: string;
    scheme: string | undefined;
    public: string;
    algorithm: KeyAlgorithm;
    unrecognized?: JsonObject;
    keyvalUnrecognized?: JsonObject;
    keyObject?: KeyObject;
  }) {
    this.keytype = init.keytype;
    this.scheme = init.scheme;
    this.public = init.public;
    this.algorithm = init.algorithm;
    this.unrecognized = init.unrecognized ?? {};
    this.keyvalUnrecognized = init.keyvalUnrecognized ?? {};
    this.keyObjectCache = init.keyObject;
  }

  /** Parses a key object of a Root, a delegation or an ECU registration. */
  static fromJSON(value: JsonValue | undefined, dialect: Dialect, path = 'key'): PublicKey {
    const obj = expectObject(value, path);
    const keytype = expectString(obj['keytype'], `${path}.keytype`);
    const keyval = expectObject(obj['keyval'], `${path}.keyval`);
    const pub = expectString(keyval['public'], `${path}.keyval.public`);
    let scheme: string | undefined;
    let algorithm: KeyAlgorithm;
    if (dialect === 'uptane') {
      const kt = keytype.toLowerCase();
      if (kt === 'ed25519') algorithm = 'ed25519';
      else if (kt === 'rsa') algorithm = 'rsa';
      else throw new UnsupportedAlgorithmError(`${path}.keytype ${JSON.stringify(keytype)} is not supported (ED25519 or RSA)`, { path: `${path}.keytype` });
      if (obj['scheme'] !== undefined) scheme = expectString(obj['scheme'], `${path}.scheme`);
    } else {
      scheme = expectString(obj['scheme'], `${path}.scheme`);
      if (keytype === 'ed25519' && scheme === 'ed25519') algorithm = 'ed25519';
      else if (keytype === 'rsa' && scheme === 'rsassa-pss-sha256') algorithm = 'rsa';
      else if ((keytype === 'ecdsa' || keytype === 'ecdsa-sha2-nistp256') && scheme === 'ecdsa-sha2-nistp256') algorithm = 'ecdsa-p256';
      else
        throw new UnsupportedAlgorithmError(`${path}: keytype ${JSON.stringify(keytype)} with scheme ${JSON.stringify(scheme)} is not supported`, {
          path: `${path}.keytype`,
        });
    }
    const key = new PublicKey({
      keytype,
      scheme,
      public: pub,
      algorithm,
      unrecognized: pickUnrecognized(obj, dialect === 'uptane' ? ['keytype', 'keyval', 'scheme'] : ['keytype', 'keyval', 'scheme']),
      keyvalUnrecognized: pickUnrecognized(keyval, ['public']),
    });
    // Parse eagerly so that a malformed key fails the document that carries it.
    key.keyObject(path, dialect);
    return key;
  }

  /** Builds the wire form of a Node public KeyObject. */
  static fromKeyObject(keyObject: KeyObject, dialect: Dialect): PublicKey {
    const type = keyObject.asymmetricKeyType;
    if (type === 'ed25519') {
      const der = keyObject.export({ format: 'der', type: 'spki' });
      const raw = toHex(der.subarray(ED25519_SPKI_PREFIX.length));
      return new PublicKey({
        keytype: dialect === 'uptane' ? 'ED25519' : 'ed25519',
        scheme: dialect === 'uptane' ? undefined : 'ed25519',
        public: raw,
        algorithm: 'ed25519',
        keyObject,
      });
    }
    const pem = keyObject.export({ format: 'pem', type: 'spki' }).toString();
    if (type === 'rsa') {
      return new PublicKey({
        keytype: dialect === 'uptane' ? 'RSA' : 'rsa',
        scheme: dialect === 'uptane' ? undefined : 'rsassa-pss-sha256',
        public: pem,
        algorithm: 'rsa',
        keyObject,
      });
    }
    if (type === 'ec' && keyObject.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
      if (dialect === 'uptane') throw new UnsupportedAlgorithmError('ECDSA keys exist only in the tuf dialect (aktualizr rejects them)');
      return new PublicKey({ keytype: 'ecdsa', scheme: 'ecdsa-sha2-nistp256', public: pem, algorithm: 'ecdsa-p256', keyObject });
    }
    throw new UnsupportedAlgorithmError(`unsupported key type ${String(type)}`);
  }

  /** The Node KeyObject for this key (parsed once, then cached). */
  keyObject(path = 'key', dialect?: Dialect): KeyObject {
    if (this.keyObjectCache) return this.keyObjectCache;
    let ko: KeyObject;
    try {
      if (this.algorithm === 'ed25519') {
        if (!/^[0-9a-fA-F]{64}$/.test(this.public)) throw new KeyError(`${path}.keyval.public must be 64 hex characters for ed25519`);
        ko = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, fromHex(this.public)]), format: 'der', type: 'spki' });
      } else {
        // Only a SubjectPublicKeyInfo PEM, as aktualizr (PEM_read_bio_PUBKEY) and tuf-js read it: Node would
        // otherwise also accept a private key or a certificate here and quietly derive a public key from it.
        if (!/^-----BEGIN PUBLIC KEY-----\r?\n/.test(this.public))
          throw new KeyError(`${path}.keyval.public must be a PEM "PUBLIC KEY" (SubjectPublicKeyInfo)`);
        ko = createPublicKey({ key: this.public, format: 'pem' });
      }
    } catch (err) {
      if (err instanceof KeyError) throw new KeyError(err.message, { path: `${path}.keyval.public` });
      throw new KeyError(`${path}.keyval.public cannot be parsed as a ${this.algorithm} public key`, { path: `${path}.keyval.public`, cause: err });
    }
    if (this.algorithm === 'rsa') {
      if (ko.asymmetricKeyType !== 'rsa') throw new KeyError(`${path}.keyval.public is not an RSA key`, { path: `${path}.keyval.public` });
      const bits = ko.asymmetricKeyDetails?.modulusLength ?? 0;
      // aktualizr treats other sizes as an unknown key type; the tuf dialect accepts any size from 2048 up.
      if (dialect === 'uptane' ? !RSA_SIZES_UPTANE.has(bits) : bits < 2048) {
        throw new KeyError(`${path}: RSA keys must be 2048, 3072 or 4096 bits, got ${bits}`, { path: `${path}.keyval.public` });
      }
    } else if (this.algorithm === 'ecdsa-p256') {
      if (ko.asymmetricKeyType !== 'ec' || ko.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
        throw new KeyError(`${path}.keyval.public is not a P-256 key`, { path: `${path}.keyval.public` });
      }
    }
    this.keyObjectCache = ko;
    return ko;
  }

  /** DER SubjectPublicKeyInfo; identical for equal keys whatever their wire spelling. */
  spki(): Buffer {
    if (!this.spkiCache) this.spkiCache = this.keyObject().export({ format: 'der', type: 'spki' });
    return this.spkiCache;
  }

  /** A dialect-independent fingerprint of the key material, for counting unique keys. */
  fingerprint(): string {
    // Cached: threshold checks ask for it once per signature.
    if (this.fingerprintCache === undefined) this.fingerprintCache = createHash('sha256').update(this.spki()).digest('hex');
    return this.fingerprintCache;
  }

  /** The key id as the dialect computes it. */
  keyId(dialect: Dialect): string {
    let id = this.keyIdCache.get(dialect);
    if (id === undefined) {
      id = dialect === 'uptane' ? this.fingerprint() : createHash('sha256').update(canonicalize(this.toJSON(), 'tuf')).digest('hex');
      this.keyIdCache.set(dialect, id);
    }
    return id;
  }

  toJSON(): JsonObject {
    const out: JsonObject = { ...this.unrecognized, keytype: this.keytype, keyval: { ...this.keyvalUnrecognized, public: this.public } };
    if (this.scheme !== undefined) out['scheme'] = this.scheme;
    return out;
  }

  /** Default signature method name for this key in a dialect's signature objects. */
  defaultMethod(dialect: Dialect): string | undefined {
    if (dialect === 'tuf') return undefined;
    return this.algorithm === 'ed25519' ? 'ed25519' : 'rsassa-pss-sha256';
  }

  /**
   * Verifies one signature. `method` is the signature object's method (uptane
   * dialect); a method that does not fit the key type never verifies.
   * Returns false for any invalid signature; never throws on bad signature bytes.
   */
  verify(data: Uint8Array, signature: Uint8Array, method?: string): boolean {
    if (method !== undefined && !methodFits(this.algorithm, method)) return false;
    const key = this.keyObject();
    try {
      switch (this.algorithm) {
        case 'ed25519':
          return cryptoVerify(null, data, key, signature);
        case 'rsa':
          // aktualizr signs with salt 32 but verifies any salt length; so do we.
          return cryptoVerify('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature);
        case 'ecdsa-p256':
          return cryptoVerify('sha256', data, { key, dsaEncoding: 'der' }, signature);
      }
    } catch {
      return false;
    }
  }

  /**
   * The same check as `verify`, run in libuv's thread pool (Node's callback
   * form of crypto.verify), so that a server can check many signatures while
   * its event loop keeps serving requests.
   */
  verifyAsync(data: Uint8Array, signature: Uint8Array, method?: string): Promise<boolean> {
    if (method !== undefined && !methodFits(this.algorithm, method)) return Promise.resolve(false);
    const key = this.keyObject();
    return new Promise((resolve) => {
      const done = (err: Error | null, ok: boolean) => resolve(err === null && ok);
      try {
        switch (this.algorithm) {
          case 'ed25519':
            cryptoVerify(null, data, key, signature, done);
            return;
          case 'rsa':
            cryptoVerify('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature, done);
            return;
          case 'ecdsa-p256':
            cryptoVerify('sha256', data, { key, dsaEncoding: 'der' }, signature, done);
            return;
        }
      } catch {
        resolve(false);
      }
    });
  }

  equals(other: PublicKey): boolean {
    return this.spki().equals(other.spki());
  }
}

function methodFits(algorithm: KeyAlgorithm, method: string): boolean {
  const m = method.toLowerCase();
  switch (algorithm) {
    case 'ed25519':
      return m === 'ed25519';
    case 'rsa':
      return m === 'rsassa-pss' || m === 'rsassa-pss-sha256';
    case 'ecdsa-p256':
      return m === 'ecdsa-sha2-nistp256';
  }
}

/**
 * A bounded cache of parsed public keys by their wire form, for servers that
 * verify many ECU signatures with inventory keys. Owned by the caller (no global).
 */
export class PublicKeyCache {
  private readonly map = new Map<string, PublicKey>();
  constructor(private readonly capacity = 10_000) {}

  get(json: JsonObject, dialect: Dialect): PublicKey {
    const keytype = json['keytype'];
    const keyval = json['keyval'];
    const pub = keyval && typeof keyval === 'object' && !Array.isArray(keyval) ? keyval['public'] : undefined;
    if (typeof keytype !== 'string' || typeof pub !== 'string') return PublicKey.fromJSON(json, dialect);
    const cacheKey = `${dialect}\u0000${keytype}\u0000${String(json['scheme'] ?? '')}\u0000${pub}`;
    let key = this.map.get(cacheKey);
    if (key) {
      // Refresh recency.
      this.map.delete(cacheKey);
      this.map.set(cacheKey, key);
      return key;
    }
    key = PublicKey.fromJSON(json, dialect);
    this.map.set(cacheKey, key);
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
    return key;
  }

  get size(): number {
    return this.map.size;
  }
}

/** Throws a FormatError unless s is a lowercase or uppercase 64-hex key id. */
export function checkKeyId(s: string, path: string): void {
  if (!/^[0-9a-fA-F]{64}$/.test(s)) throw new FormatError(`${path} must be a 64-character hex key id`, { path });
}
