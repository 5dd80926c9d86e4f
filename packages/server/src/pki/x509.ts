/**
 * X.509 v3 certificates: building and signing (RFC 5280), and reading the few
 * fields we need back out of DER.
 *
 * The TBSCertificate is assembled with the DER helpers and signed by Node's
 * crypto. forge can only put RSA keys into certificates and signs in
 * JavaScript (tens of milliseconds per RSA-2048 signature, on the event loop);
 * building the DER ourselves lets certificates carry RSA or ECDSA keys, keeps a
 * CA's subject Name byte for byte in the issuer field (name chaining), and
 * signs natively in the thread pool. OpenSSL checks the result in the tests.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { createHash, randomBytes, sign as signCb, X509Certificate, type KeyObject } from 'node:crypto';
import {
  bitString,
  boolTrue,
  children,
  content,
  ctx,
  expectTag,
  nullValue,
  octets,
  oid,
  readDirectoryString,
  readOid,
  readTime,
  readTlv,
  seq,
  setOf,
  smallInteger,
  TAG,
  time,
  unsignedInteger,
  utf8,
  whole,
  type Tlv,
} from './der.js';
import { PkiError } from './errors.js';
import { keyIdentifier, spkiDer } from './keys.js';

export const OID = {
  commonName: '2.5.4.3',
  organizationalUnit: '2.5.4.11',
  organization: '2.5.4.10',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
} as const;

// ---------------------------------------------------------------- names

/** The subject attributes we issue. Values are UTF8String (PrintableString has no `_`). */
export interface NameSpec {
  readonly commonName: string;
  readonly organizationalUnit?: string;
  readonly organization?: string;
}

function attribute(type: string, value: string): Buffer {
  if (value.length === 0 || value.length > 64) throw new PkiError('BAD_ARGUMENT', `name attribute ${type} must have 1 to 64 characters`);
  return setOf(seq(oid(type), utf8(value)));
}

/** RDNSequence, most general first (O, OU, CN), one attribute per RDN. */
export function encodeName(name: NameSpec): Buffer {
  const rdns: Buffer[] = [];
  if (name.organization !== undefined) rdns.push(attribute(OID.organization, name.organization));
  if (name.organizationalUnit !== undefined) rdns.push(attribute(OID.organizationalUnit, name.organizationalUnit));
  rdns.push(attribute(OID.commonName, name.commonName));
  return seq(...rdns);
}

// ---------------------------------------------------------------- extensions

export interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  /** DER of the extension value (what goes inside extnValue's OCTET STRING). */
  readonly value: Buffer;
}

export function basicConstraints(ca: boolean, pathLen?: number): Extension {
  const parts: Buffer[] = [];
  if (ca) parts.push(boolTrue());
  if (ca && pathLen !== undefined) parts.push(smallInteger(pathLen));
  return { oid: OID.basicConstraints, critical: true, value: seq(...parts) };
}

const KEY_USAGE_BITS = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
} as const;
export type KeyUsage = keyof typeof KEY_USAGE_BITS;

/** keyUsage as a named BIT STRING: DER drops trailing zero bits (X.690 §11.2.2). */
export function keyUsage(usages: readonly KeyUsage[]): Extension {
  let byte = 0;
  for (const u of usages) byte |= 0x80 >> KEY_USAGE_BITS[u];
  if (byte === 0) throw new PkiError('BAD_ARGUMENT', 'keyUsage needs at least one bit');
  let unused = 0;
  while (!((byte >> unused) & 1)) unused++;
  return { oid: OID.keyUsage, critical: true, value: Buffer.from([TAG.BIT_STRING, 2, unused, byte]) };
}

export function extKeyUsage(oids: readonly string[]): Extension {
  return { oid: OID.extKeyUsage, critical: false, value: seq(...oids.map((o) => oid(o))) };
}

const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Splits host names and IP addresses, checks them, lower-cases names and drops duplicates. */
export function normalizeHosts(hosts: readonly string[]): { dns: string[]; ips: string[] } {
  const dns = new Set<string>();
  const ips = new Set<string>();
  for (const raw of hosts) {
    const h = raw.trim();
    const unbracketed = h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
    if (isIPv4(unbracketed) || isIPv6(unbracketed)) {
      ips.add(unbracketed.toLowerCase());
    } else if (h.length <= 253 && DNS_NAME.test(h.toLowerCase())) {
      dns.add(h.toLowerCase());
    } else {
      throw new PkiError('BAD_ARGUMENT', `not a host name or IP address: ${JSON.stringify(raw)}`);
    }
  }
  return { dns: [...dns], ips: [...ips] };
}

/** The 4 or 16 octets of an IP address (iPAddress in a SAN). */
export function ipToBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map((p) => Number(p)));
  if (!isIPv6(ip)) throw new PkiError('BAD_ARGUMENT', `not an IP address: ${ip}`);
  let text = ip.replace(/%.*$/, ''); // zone id
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const m = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (m !== null) {
    const [, prefix, a, b, c, d] = m.map(String);
    text = `${prefix}${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`;
  }
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const halves = text.split('::');
  const left = parse(halves[0] ?? '');
  const right = halves.length > 1 ? parse(halves[1] ?? '') : [];
  const groups = halves.length > 1 ? [...left, ...new Array<number>(Math.max(0, 8 - left.length - right.length)).fill(0), ...right] : left;
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) throw new PkiError('BAD_ARGUMENT', `not an IP address: ${ip}`);
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** subjectAltName with dNSName [2] and iPAddress [7] entries. */
export function subjectAltName(hosts: { dns: readonly string[]; ips: readonly string[] }): Extension {
  const names: Buffer[] = [];
  for (const d of hosts.dns) names.push(ctx(2, false, Buffer.from(d, 'ascii')));
  for (const ip of hosts.ips) {
    names.push(ctx(7, false, ipToBytes(ip)));
  }
  if (names.length === 0) throw new PkiError('BAD_ARGUMENT', 'subjectAltName needs at least one name');
  return { oid: OID.subjectAltName, critical: false, value: seq(...names) };
}

export function subjectKeyIdentifier(ski: Buffer): Extension {
  return { oid: OID.subjectKeyIdentifier, critical: false, value: octets(ski) };
}

export function authorityKeyIdentifier(issuerSki: Buffer): Extension {
  return { oid: OID.authorityKeyIdentifier, critical: false, value: seq(ctx(0, false, issuerSki)) };
}

// ---------------------------------------------------------------- building

export interface CertificateSpec {
  /** Positive serial number, big-endian magnitude. */
  readonly serial: Buffer;
  /** DER of the issuer Name: the CA certificate's subject, copied byte for byte (for self-signed, the subject). */
  readonly issuerName: Buffer;
  readonly subjectName: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subjectPublicKey: KeyObject;
  readonly extensions: readonly Extension[];
  readonly signingKey: KeyObject;
}

export interface BuiltCertificate {
  readonly der: Buffer;
  readonly pem: string;
}

function signatureAlgorithm(key: KeyObject): { algId: Buffer; digest: string } {
  if (key.asymmetricKeyType === 'rsa') return { algId: seq(oid(OID.sha256WithRSAEncryption), nullValue()), digest: 'sha256' };
  if (key.asymmetricKeyType === 'ec') {
    // RFC 5758 §3.2: ECDSA AlgorithmIdentifiers carry no parameters.
    if (key.asymmetricKeyDetails?.namedCurve === 'secp384r1') return { algId: seq(oid(OID.ecdsaWithSHA384)), digest: 'sha384' };
    return { algId: seq(oid(OID.ecdsaWithSHA256)), digest: 'sha256' };
  }
  throw new PkiError('BAD_KEY', `cannot sign certificates with ${key.asymmetricKeyType ?? 'this'} key`);
}

function signAsync(digest: string, data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => signCb(digest, data, key, (err, sig) => (err ? reject(err) : resolve(sig))));
}

/** Encodes and signs a certificate. Dates are truncated to whole seconds. */
export async function buildCertificate(spec: CertificateSpec): Promise<BuiltCertificate> {
  if (spec.notAfter.getTime() <= spec.notBefore.getTime()) throw new PkiError('BAD_ARGUMENT', 'notAfter must be after notBefore');
  const { algId, digest } = signatureAlgorithm(spec.signingKey);
  const extensions = spec.extensions.map((e) => seq(oid(e.oid), ...(e.critical ? [boolTrue()] : []), octets(e.value)));
  const tbs = seq(
    ctx(0, true, smallInteger(2)), // v3
    unsignedInteger(spec.serial),
    algId,
    spec.issuerName,
    seq(time(truncateToSeconds(spec.notBefore)), time(truncateToSeconds(spec.notAfter))),
    spec.subjectName,
    spkiDer(spec.subjectPublicKey),
    ...(extensions.length > 0 ? [ctx(3, true, seq(...extensions))] : []),
  );
  const signature = await signAsync(digest, tbs, spec.signingKey);
  const der = seq(tbs, algId, bitString(signature));
  return { der, pem: derToPem(der, 'CERTIFICATE') };
}

export function truncateToSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

/** 128 random bits as a positive serial (RFC 5280 allows up to 20 octets; CA/B asks for ≥ 64 random bits). */
export function randomSerial(): Buffer {
  for (;;) {
    const b = randomBytes(16);
    if (b.some((x) => x !== 0)) return b;
  }
}

export const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * notBefore is set this far in the past: a device whose clock runs a little
 * behind (no RTC, before NTP) must not see a freshly issued gateway certificate
 * as "not yet valid", nor the server a just-issued device certificate.
 */
export const BACKDATE_MS = 60 * 60 * 1000;

// ---------------------------------------------------------------- PEM

export function derToPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Every `CERTIFICATE` block of a PEM bundle, as DER. */
export function pemCertificates(pem: string): Buffer[] {
  const out: Buffer[] = [];
  const re = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;
  for (let m = re.exec(pem); m !== null; m = re.exec(pem)) out.push(Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64'));
  return out;
}

/** Parses one certificate from PEM or DER into Node's X509Certificate, with a typed error. */
export function toX509(cert: string | Uint8Array | X509Certificate): X509Certificate {
  if (cert instanceof X509Certificate) return cert;
  try {
    return new X509Certificate(typeof cert === 'string' ? cert : Buffer.from(cert));
  } catch (err) {
    throw new PkiError('BAD_ARGUMENT', 'cannot parse the certificate', { cause: err });
  }
}

// ---------------------------------------------------------------- reading

export interface NameAttribute {
  readonly type: string;
  /** undefined when the value is not a string type we read. */
  readonly value: string | undefined;
}

/** The fields of a certificate that Node's X509Certificate does not give us in a usable form. */
export interface CertificateFields {
  /** Lower-case hex of the serial's magnitude, without leading zero bytes. */
  readonly serial: string;
  readonly issuerName: Buffer;
  readonly subjectName: Buffer;
  readonly subject: readonly NameAttribute[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: Buffer;
  /** subjectKeyIdentifier when present. */
  readonly subjectKeyId: Buffer | undefined;
}

export function serialHex(magnitude: Buffer): string {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  return magnitude.subarray(i).toString('hex');
}

function readName(t: Tlv): NameAttribute[] {
  const out: NameAttribute[] = [];
  for (const rdn of children(expectTag(t, TAG.SEQUENCE, 'Name'))) {
    for (const atv of children(expectTag(rdn, TAG.SET, 'RelativeDistinguishedName'))) {
      const [type, value] = children(expectTag(atv, TAG.SEQUENCE, 'AttributeTypeAndValue'));
      if (type === undefined || value === undefined) throw new PkiError('BAD_ARGUMENT', 'malformed DER: AttributeTypeAndValue');
      out.push({ type: readOid(type), value: readDirectoryString(value) });
    }
  }
  return out;
}

/** Reads serial, names, validity, key and subjectKeyIdentifier from certificate DER. */
export function readCertificateFields(der: Buffer): CertificateFields {
  const cert = readTlv(der);
  if (cert.end !== der.length) throw new PkiError('BAD_ARGUMENT', 'malformed DER: trailing bytes after the certificate');
  const [tbs] = children(expectTag(cert, TAG.SEQUENCE, 'Certificate'));
  const f = children(expectTag(tbs, TAG.SEQUENCE, 'TBSCertificate'));
  let i = f[0]?.tag === 0xa0 ? 1 : 0; // [0] version is optional (v1)
  const serial = expectTag(f[i++], TAG.INTEGER, 'serialNumber');
  i++; // signature AlgorithmIdentifier
  const issuer = expectTag(f[i++], TAG.SEQUENCE, 'issuer');
  const [nb, na] = children(expectTag(f[i++], TAG.SEQUENCE, 'validity'));
  const subject = expectTag(f[i++], TAG.SEQUENCE, 'subject');
  const spki = expectTag(f[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo');
  if (nb === undefined || na === undefined) throw new PkiError('BAD_ARGUMENT', 'malformed DER: validity');
  let subjectKeyId: Buffer | undefined;
  for (; i < f.length; i++) {
    const item = f[i] as Tlv;
    if (item.tag !== 0xa3) continue;
    const [exts] = children(item);
    for (const ext of children(expectTag(exts, TAG.SEQUENCE, 'Extensions'))) {
      const parts = children(expectTag(ext, TAG.SEQUENCE, 'Extension'));
      if (parts[0] !== undefined && readOid(parts[0]) === OID.subjectKeyIdentifier) {
        const value = parts[parts.length - 1];
        if (value?.tag === TAG.OCTET_STRING) {
          const inner = readTlv(content(value));
          if (inner.tag === TAG.OCTET_STRING) subjectKeyId = Buffer.from(content(inner));
        }
      }
    }
  }
  return {
    serial: serialHex(content(serial)),
    issuerName: Buffer.from(whole(issuer)),
    subjectName: Buffer.from(whole(subject)),
    subject: readName(subject),
    notBefore: readTime(nb),
    notAfter: readTime(na),
    spki: Buffer.from(whole(spki)),
    subjectKeyId,
  };
}

/** Lower-case hex SHA-256 of the DER, the form we store and compare (Node's `fingerprint256` is colon-separated upper case). */
export function fingerprint256(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/** subjectKeyIdentifier of a certificate, or the RFC 5280 method (1) value computed from its key. */
export function certificateKeyIdentifier(fields: CertificateFields): Buffer {
  return fields.subjectKeyId ?? keyIdentifier(fields.spki);
}

/** Summary returned for every certificate we issue. */
export interface IssuedCertificate {
  readonly certPem: string;
  readonly certDer: Buffer;
  /** Lower-case hex, no leading zeros: the form to store for revocation. */
  readonly serial: string;
  /** Lower-case hex SHA-256 of the DER. */
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export function describeIssued(built: BuiltCertificate): IssuedCertificate {
  const fields = readCertificateFields(built.der);
  return {
    certPem: built.pem,
    certDer: built.der,
    serial: fields.serial,
    fingerprint256: fingerprint256(built.der),
    notBefore: fields.notBefore,
    notAfter: fields.notAfter,
  };
}
