/**
 * PKCS#12 (RFC 7292): what `POST /devices` returns to aktualizr and what
 * credentials.zip carries as `autoprov_credentials.p12`.
 *
 * aktualizr reads it with OpenSSL's `PKCS12_parse(p12, "")`: the private key,
 * the certificate that matches it, and every other certificate as "CA". It
 * stores those CA certificates as its trust anchor for the gateway
 * (CURLOPT_CAINFO) and appends them to its client certificate file, so the bag
 * must hold the **server CA** (or TLS to the gateway fails) and the device CA
 * (the client chain). Without any CA aktualizr refuses the credentials.
 *
 * What we write is what `openssl pkcs12 -export` of OpenSSL 3 writes by
 * default, minus certificate encryption: the key in a pkcs8ShroudedKeyBag
 * encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC, 2048 iterations),
 * certificates in a plain data bag (they are public; this also keeps old
 * OpenSSL builds without PBES2-for-bags happy), and an HMAC-SHA256 integrity
 * MAC. OpenSSL 1.0.2 and later read all of it. The password is empty.
 *
 * The parser reads that, what OpenSSL 1.x and 3.x write (PBES2 with AES or
 * 3DES, PKCS#12 PBE with 3DES or 40-bit RC2), and unencrypted bags. It is meant
 * for the device client too; it only needs node:crypto, node-forge (for RC2)
 * and the DER helpers.
 */
import type { X509Certificate } from 'node:crypto';
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  pbkdf2Sync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import forge from 'node-forge';
import { bmp, children, content, ctx, expectTag, octets, oid, readOid, readTlv, seq, setOf, smallInteger, TAG, whole, type Tlv, nullValue } from './der.js';
import { PkiError } from './errors.js';
import { spkiDer, toPrivateKey } from './keys.js';
import { derToPem, pemCertificates, toX509 } from './x509.js';

/** Bound on PBKDF2 / KDF iterations we accept, so a hostile file cannot pin a CPU. */
export const MAX_PKCS12_ITERATIONS = 1_000_000;

/** aktualizr caps POST responses at 64 KiB (device-api.md §1.2). */
export const AKTUALIZR_MAX_P12_BYTES = 64 * 1024;

const P12 = {
  data: '1.2.840.113549.1.7.1',
  encryptedData: '1.2.840.113549.1.7.6',
  keyBag: '1.2.840.113549.1.12.10.1.1',
  shroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  pbeSha1TripleDes: '1.2.840.113549.1.12.1.3',
  pbeSha1Rc2_40: '1.2.840.113549.1.12.1.6',
} as const;

const DIGESTS: Record<string, { name: string; length: number; block: number }> = {
  '1.3.14.3.2.26': { name: 'sha1', length: 20, block: 64 },
  '2.16.840.1.101.3.4.2.4': { name: 'sha224', length: 28, block: 64 },
  '2.16.840.1.101.3.4.2.1': { name: 'sha256', length: 32, block: 64 },
  '2.16.840.1.101.3.4.2.2': { name: 'sha384', length: 48, block: 128 },
  '2.16.840.1.101.3.4.2.3': { name: 'sha512', length: 64, block: 128 },
};
const SHA256_OID = '2.16.840.1.101.3.4.2.1';
const HMAC_SHA256_OID = '1.2.840.113549.2.9';
const AES_256_CBC_OID = '2.16.840.1.101.3.4.1.42';

const HMAC_PRFS: Record<string, string> = {
  '1.2.840.113549.2.7': 'sha1',
  '1.2.840.113549.2.8': 'sha224',
  '1.2.840.113549.2.9': 'sha256',
  '1.2.840.113549.2.10': 'sha384',
  '1.2.840.113549.2.11': 'sha512',
};

const PBES2_CIPHERS: Record<string, { name: string; keyLength: number }> = {
  '2.16.840.1.101.3.4.1.2': { name: 'aes-128-cbc', keyLength: 16 },
  '2.16.840.1.101.3.4.1.22': { name: 'aes-192-cbc', keyLength: 24 },
  '2.16.840.1.101.3.4.1.42': { name: 'aes-256-cbc', keyLength: 32 },
  '1.2.840.113549.3.7': { name: 'des-ede3-cbc', keyLength: 24 },
};

// ---------------------------------------------------------------- key derivation

/**
 * The PKCS#12 password encoding: BMPString with a two-byte terminator. `null`
 * is the "no password" form (zero bytes), which OpenSSL also tries when the
 * password is empty, because producers disagree on how to encode "".
 */
function bmpPassword(password: string | null): Buffer {
  if (password === null) return Buffer.alloc(0);
  const b = Buffer.from(`${password}\0`, 'utf16le');
  return b.swap16();
}

/** RFC 7292 Appendix B.2 key derivation (for the MAC key and PKCS#12 PBE), with native hashing. */
export function pkcs12Kdf(password: string | null, salt: Buffer, id: 1 | 2 | 3, iterations: number, length: number, digest = 'sha256'): Buffer {
  const info = Object.values(DIGESTS).find((d) => d.name === digest);
  if (info === undefined) throw new PkiError('UNSUPPORTED_ALGORITHM', `PKCS#12 KDF digest ${digest}`);
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_PKCS12_ITERATIONS)
    throw new PkiError('BAD_ARGUMENT', 'PKCS#12 iteration count out of range');
  const v = info.block;
  const u = info.length;
  const pass = bmpPassword(password);
  const repeat = (src: Buffer): Buffer => {
    const out = Buffer.alloc(v * Math.ceil(src.length / v));
    for (let i = 0; i < out.length; i++) out[i] = src[i % src.length] as number;
    return out;
  };
  const D = Buffer.alloc(v, id);
  const I = Buffer.concat([repeat(salt), repeat(pass)]);
  const blocks: Buffer[] = [];
  for (let produced = 0; produced < length; produced += u) {
    let A = createHash(digest).update(D).update(I).digest();
    for (let r = 1; r < iterations; r++) A = createHash(digest).update(A).digest();
    blocks.push(A);
    // I_j = (I_j + B + 1) mod 2^(8v), B = A repeated to v bytes.
    for (let j = 0; j < I.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = (I[j + k] as number) + (A[k % u] as number) + carry;
        I[j + k] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
  return Buffer.concat(blocks).subarray(0, length);
}

// ---------------------------------------------------------------- building

export interface BuildPkcs12Input {
  /** The private key (PEM or KeyObject) of `certPem`. */
  readonly key: string | KeyObject;
  /** The client certificate. */
  readonly certPem: string;
  /**
   * CA certificates, issuer of `certPem` first: for aktualizr, the namespace's
   * device CA and the server CA (its trust anchor for the gateway).
   */
  readonly caPems: readonly string[];
  /** Default empty, as aktualizr expects. */
  readonly password?: string;
  /** friendlyName of the key and certificate (e.g. the device id). */
  readonly friendlyName?: string;
  /** PBKDF2 and MAC iterations (default 2048, as OpenSSL). */
  readonly iterations?: number;
}

function attributes(localKeyId: Buffer, friendlyName: string | undefined): Buffer {
  const attrs = [seq(oid(P12.localKeyId), setOf(octets(localKeyId)))];
  if (friendlyName !== undefined) attrs.push(seq(oid(P12.friendlyName), setOf(bmp(friendlyName))));
  return setOf(...attrs);
}

const dataContentInfo = (payload: Buffer): Buffer => seq(oid(P12.data), ctx(0, true, octets(payload)));
const certBag = (der: Buffer, attrs?: Buffer): Buffer =>
  seq(oid(P12.certBag), ctx(0, true, seq(oid(P12.x509Certificate), ctx(0, true, octets(der)))), ...(attrs ? [attrs] : []));

/** Builds a DER PKCS#12 with the key, its certificate and the CA certificates. */
export function buildPkcs12(input: BuildPkcs12Input): Buffer {
  const password = input.password ?? '';
  const iterations = input.iterations ?? 2048;
  const key = toPrivateKey(input.key);
  const [leaf, ...extra] = pemCertificates(input.certPem);
  if (leaf === undefined) throw new PkiError('BAD_ARGUMENT', 'certPem holds no certificate');
  const leafCert = toX509(leaf);
  if (!spkiDer(leafCert.publicKey).equals(spkiDer(key))) throw new PkiError('BAD_KEY', 'the private key does not belong to the certificate');
  const cas = [...extra, ...input.caPems.flatMap((p) => pemCertificates(p))];
  for (const ca of cas) toX509(ca); // refuse garbage early, with a typed error
  if (cas.length === 0) throw new PkiError('BAD_ARGUMENT', 'at least one CA certificate is needed (aktualizr refuses credentials without one)');

  // localKeyID = SHA-1 of the certificate, as OpenSSL sets it; it pairs the key with its certificate.
  const localKeyId = createHash('sha1').update(leaf).digest();
  const attrs = attributes(localKeyId, input.friendlyName);

  const certContents = seq(certBag(leaf, attrs), ...cas.map((c) => certBag(c)));
  const keyContents = seq(seq(oid(P12.shroudedKeyBag), ctx(0, true, encryptPrivateKeyInfo(key, password, iterations)), attrs));
  const authSafe = seq(dataContentInfo(certContents), dataContentInfo(keyContents));

  const macSalt = randomBytes(8);
  const macKey = pkcs12Kdf(password, macSalt, 3, iterations, 32, 'sha256');
  const mac = createHmac('sha256', macKey).update(authSafe).digest();
  const macData = seq(seq(seq(oid(SHA256_OID), nullValue()), octets(mac)), octets(macSalt), smallInteger(iterations));
  const pfx = seq(smallInteger(3), dataContentInfo(authSafe), macData);
  if (pfx.length >= AKTUALIZR_MAX_P12_BYTES) throw new PkiError('BAD_ARGUMENT', `the PKCS#12 is ${pfx.length} bytes; aktualizr accepts less than 64 KiB`);
  return pfx;
}

/** EncryptedPrivateKeyInfo with PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC (OpenSSL 3's default scheme), password as UTF-8. */
function encryptPrivateKeyInfo(key: KeyObject, password: string, iterations: number): Buffer {
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const dk = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', dk, iv);
  const plain = key.export({ type: 'pkcs8', format: 'der' });
  const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
  const pbkdf2Params = seq(octets(salt), smallInteger(iterations), seq(oid(HMAC_SHA256_OID), nullValue()));
  const algId = seq(oid(P12.pbes2), seq(seq(oid(P12.pbkdf2), pbkdf2Params), seq(oid(AES_256_CBC_OID), octets(iv))));
  return seq(algId, octets(encrypted));
}

// ---------------------------------------------------------------- parsing

export interface Pkcs12Contents {
  readonly privateKey: KeyObject;
  /** PKCS#8 PEM. */
  readonly keyPem: string;
  /** The certificate whose public key matches the private key. */
  readonly cert: X509Certificate;
  readonly certPem: string;
  /** Every other certificate, in file order (aktualizr treats them all as CAs). */
  readonly caCerts: readonly X509Certificate[];
  readonly caPems: readonly string[];
}

/** OCTET STRING content, also in BER's constructed form (some producers split it). */
function octetContent(t: Tlv): Buffer {
  if (t.tag === TAG.OCTET_STRING || t.tag === 0x80) return content(t);
  if (t.tag === 0x24 || t.tag === 0xa0) return Buffer.concat(children(t).map((c) => octetContent(c)));
  throw new PkiError('BAD_ARGUMENT', 'malformed PKCS#12: expected an OCTET STRING');
}

function explicit0(t: Tlv | undefined, what: string): Tlv {
  const [inner] = children(expectTag(t, 0xa0, `[0] ${what}`));
  if (inner === undefined) throw new PkiError('BAD_ARGUMENT', `malformed PKCS#12: empty ${what}`);
  return inner;
}

function readInt(t: Tlv | undefined, what: string): number {
  const b = content(expectTag(t, TAG.INTEGER, what));
  if (b.length > 4) throw new PkiError('BAD_ARGUMENT', `malformed PKCS#12: ${what} too large`);
  return b.reduce((n, x) => n * 256 + x, 0);
}

/** Decrypts password-based encryption given its AlgorithmIdentifier. */
function pbeDecrypt(algId: Tlv, data: Buffer, password: string | null): Buffer {
  const [algOid, params] = children(expectTag(algId, TAG.SEQUENCE, 'AlgorithmIdentifier'));
  const alg = readOid(expectTag(algOid, TAG.OID, 'algorithm'));
  try {
    if (alg === P12.pbes2) {
      const [kdf, scheme] = children(expectTag(params, TAG.SEQUENCE, 'PBES2-params'));
      const [kdfOid, kdfParams] = children(expectTag(kdf, TAG.SEQUENCE, 'keyDerivationFunc'));
      if (readOid(expectTag(kdfOid, TAG.OID, 'kdf')) !== P12.pbkdf2) throw new PkiError('UNSUPPORTED_ALGORITHM', 'PBES2 key derivation other than PBKDF2');
      const kp = children(expectTag(kdfParams, TAG.SEQUENCE, 'PBKDF2-params'));
      const salt = content(expectTag(kp[0], TAG.OCTET_STRING, 'salt'));
      const iterations = readInt(kp[1], 'iterationCount');
      if (iterations < 1 || iterations > MAX_PKCS12_ITERATIONS) throw new PkiError('BAD_ARGUMENT', 'PBKDF2 iteration count out of range');
      const prfAlg = kp.find((t, i) => i >= 2 && t.tag === TAG.SEQUENCE);
      const prf = prfAlg === undefined ? 'sha1' : HMAC_PRFS[readOid(children(prfAlg)[0] as Tlv)];
      const [encOid, ivTlv] = children(expectTag(scheme, TAG.SEQUENCE, 'encryptionScheme'));
      const cipher = PBES2_CIPHERS[readOid(expectTag(encOid, TAG.OID, 'cipher'))];
      if (prf === undefined || cipher === undefined) throw new PkiError('UNSUPPORTED_ALGORITHM', 'unsupported PBES2 PRF or cipher');
      const key = pbkdf2Sync(Buffer.from(password ?? '', 'utf8'), salt, iterations, cipher.keyLength, prf);
      const d = createDecipheriv(cipher.name, key, content(expectTag(ivTlv, TAG.OCTET_STRING, 'iv')));
      return Buffer.concat([d.update(data), d.final()]);
    }
    if (alg === P12.pbeSha1TripleDes || alg === P12.pbeSha1Rc2_40) {
      const [saltTlv, iterTlv] = children(expectTag(params, TAG.SEQUENCE, 'pkcs-12PbeParams'));
      const salt = content(expectTag(saltTlv, TAG.OCTET_STRING, 'salt'));
      const iterations = readInt(iterTlv, 'iterations');
      if (alg === P12.pbeSha1TripleDes) {
        const key = pkcs12Kdf(password, salt, 1, iterations, 24, 'sha1');
        const iv = pkcs12Kdf(password, salt, 2, iterations, 8, 'sha1');
        const d = createDecipheriv('des-ede3-cbc', key, iv);
        return Buffer.concat([d.update(data), d.final()]);
      }
      // RC2 is gone from OpenSSL 3's default provider; forge still has it. OpenSSL 1.x encrypted certificate bags this way.
      const key = pkcs12Kdf(password, salt, 1, iterations, 5, 'sha1');
      const iv = pkcs12Kdf(password, salt, 2, iterations, 8, 'sha1');
      const rc2 = forge.rc2.createDecryptionCipher(forge.util.createBuffer(key.toString('binary')), 40);
      rc2.start(forge.util.createBuffer(iv.toString('binary')));
      rc2.update(forge.util.createBuffer(data.toString('binary')));
      if (!rc2.finish()) throw new PkiError('BAD_PASSPHRASE', 'RC2 decryption failed (wrong password?)');
      return Buffer.from(rc2.output.getBytes(), 'binary');
    }
  } catch (err) {
    if (err instanceof PkiError) throw err;
    throw new PkiError('BAD_PASSPHRASE', 'cannot decrypt the PKCS#12 contents (wrong password?)', { cause: err });
  }
  throw new PkiError('UNSUPPORTED_ALGORITHM', `PKCS#12 encryption ${alg} is not supported`);
}

interface RawBag {
  readonly kind: 'key' | 'cert';
  readonly der: Buffer;
}

function readSafeContents(der: Buffer, password: string | null, out: RawBag[], depth = 0): void {
  if (depth > 2) throw new PkiError('BAD_ARGUMENT', 'malformed PKCS#12: nested safeContents too deep');
  for (const bag of children(expectTag(readTlv(der), TAG.SEQUENCE, 'SafeContents'))) {
    const [idTlv, valueTlv] = children(expectTag(bag, TAG.SEQUENCE, 'SafeBag'));
    const id = readOid(expectTag(idTlv, TAG.OID, 'bagId'));
    const value = explicit0(valueTlv, 'bagValue');
    if (id === P12.keyBag) {
      out.push({ kind: 'key', der: Buffer.from(whole(value)) });
    } else if (id === P12.shroudedKeyBag) {
      const [algId, enc] = children(expectTag(value, TAG.SEQUENCE, 'EncryptedPrivateKeyInfo'));
      out.push({ kind: 'key', der: pbeDecrypt(expectTag(algId, TAG.SEQUENCE, 'encryptionAlgorithm'), octetContent(enc as Tlv), password) });
    } else if (id === P12.certBag) {
      const [certId, certValue] = children(expectTag(value, TAG.SEQUENCE, 'CertBag'));
      if (readOid(expectTag(certId, TAG.OID, 'certId')) !== P12.x509Certificate) continue; // SDSI certificates: nothing we can use
      out.push({ kind: 'cert', der: octetContent(explicit0(certValue, 'certValue')) });
    } else if (id === '1.2.840.113549.1.12.10.1.6') {
      readSafeContents(Buffer.from(whole(value)), password, out, depth + 1); // safeContentsBag
    }
    // crlBag and secretBag are ignored.
  }
}

/**
 * Parses a PKCS#12 (default password empty): verifies the MAC, decrypts, and
 * returns the key, the certificate that matches it, and the other certificates.
 */
export function parsePkcs12(der: Uint8Array, password = ''): Pkcs12Contents {
  const buf = Buffer.from(der);
  let pfxParts: Tlv[];
  let authSafe: Buffer;
  try {
    const top = readTlv(buf);
    if (top.end !== buf.length) throw new PkiError('BAD_ARGUMENT', 'trailing bytes after the PKCS#12');
    pfxParts = children(expectTag(top, TAG.SEQUENCE, 'PFX'));
    if (readInt(pfxParts[0], 'version') !== 3) throw new PkiError('BAD_ARGUMENT', 'PKCS#12 version must be 3');
    const [ctype, ccontent] = children(expectTag(pfxParts[1], TAG.SEQUENCE, 'authSafe'));
    if (readOid(expectTag(ctype, TAG.OID, 'contentType')) !== P12.data)
      throw new PkiError('UNSUPPORTED_ALGORITHM', 'only password-integrity PKCS#12 is supported');
    authSafe = octetContent(explicit0(ccontent, 'authSafe content'));
  } catch (err) {
    if (err instanceof PkiError) throw err;
    throw new PkiError('BAD_ARGUMENT', 'malformed PKCS#12', { cause: err });
  }

  // Integrity. With an empty password, try both encodings of "" (see bmpPassword), as OpenSSL does.
  let effective: string | null = password;
  const macData = pfxParts[2];
  if (macData !== undefined) {
    const [digestInfo, saltTlv, iterTlv] = children(expectTag(macData, TAG.SEQUENCE, 'MacData'));
    const [algId, macTlv] = children(expectTag(digestInfo, TAG.SEQUENCE, 'DigestInfo'));
    const digestOid = readOid(children(expectTag(algId, TAG.SEQUENCE, 'digestAlgorithm'))[0] as Tlv);
    const digest = DIGESTS[digestOid];
    if (digest === undefined) throw new PkiError('UNSUPPORTED_ALGORITHM', `PKCS#12 MAC digest ${digestOid}`);
    const salt = content(expectTag(saltTlv, TAG.OCTET_STRING, 'macSalt'));
    const iterations = iterTlv === undefined ? 1 : readInt(iterTlv, 'iterations');
    const expected = content(expectTag(macTlv, TAG.OCTET_STRING, 'mac'));
    const candidates: (string | null)[] = password === '' ? ['', null] : [password];
    const ok = candidates.find((p) => {
      const mac = createHmac(digest.name, pkcs12Kdf(p, salt, 3, iterations, digest.length, digest.name))
        .update(authSafe)
        .digest();
      return mac.length === expected.length && timingSafeEqual(mac, expected);
    });
    if (ok === undefined) throw new PkiError('BAD_PASSPHRASE', 'the PKCS#12 MAC does not verify: wrong password or corrupted file');
    effective = ok;
  }

  const bags: RawBag[] = [];
  try {
    for (const ci of children(expectTag(readTlv(authSafe), TAG.SEQUENCE, 'AuthenticatedSafe'))) {
      const [ctype, ccontent] = children(expectTag(ci, TAG.SEQUENCE, 'ContentInfo'));
      const type = readOid(expectTag(ctype, TAG.OID, 'contentType'));
      if (type === P12.data) {
        readSafeContents(octetContent(explicit0(ccontent, 'data')), effective, bags);
      } else if (type === P12.encryptedData) {
        const [, eci] = children(expectTag(explicit0(ccontent, 'encryptedData'), TAG.SEQUENCE, 'EncryptedData'));
        const [, alg, encrypted] = children(expectTag(eci, TAG.SEQUENCE, 'EncryptedContentInfo'));
        if (encrypted === undefined) continue; // "detached" content: nothing here
        readSafeContents(pbeDecrypt(expectTag(alg, TAG.SEQUENCE, 'contentEncryptionAlgorithm'), octetContent(encrypted), effective), effective, bags);
      } else {
        throw new PkiError('UNSUPPORTED_ALGORITHM', `PKCS#12 content type ${type} (public-key privacy) is not supported`);
      }
    }
  } catch (err) {
    if (err instanceof PkiError) throw err;
    throw new PkiError('BAD_ARGUMENT', 'malformed PKCS#12 contents', { cause: err });
  }

  const keys = bags.filter((b) => b.kind === 'key');
  if (keys.length !== 1) throw new PkiError('BAD_ARGUMENT', `the PKCS#12 holds ${keys.length} private keys; expected exactly one`);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: (keys[0] as RawBag).der, format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw new PkiError('BAD_KEY', 'the PKCS#12 private key cannot be read', { cause: err });
  }
  const keySpki = spkiDer(privateKey);
  const certs = bags.filter((b) => b.kind === 'cert').map((b) => toX509(b.der));
  const leafIndex = certs.findIndex((c) => spkiDer(c.publicKey).equals(keySpki));
  if (leafIndex < 0) throw new PkiError('BAD_ARGUMENT', 'the PKCS#12 holds no certificate for its private key');
  const cert = certs[leafIndex] as X509Certificate;
  const caCerts = certs.filter((_, i) => i !== leafIndex);
  return {
    privateKey,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    cert,
    certPem: derToPem(cert.raw, 'CERTIFICATE'),
    caCerts,
    caPems: caCerts.map((c) => derToPem(c.raw, 'CERTIFICATE')),
  };
}
