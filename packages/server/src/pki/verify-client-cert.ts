/**
 * Who is on the other end of a device-gateway TLS connection.
 *
 * The identity comes only from the client certificate the TLS handshake
 * proved possession of: it must be issued (name, key identifiers and
 * signature) by one of the namespaces' device CAs, be within its validity, be
 * an end-entity certificate meant for client authentication, and name a valid
 * device id (or be the fleet's bootstrap certificate). Never from a header.
 *
 * This runs on every connection, so parsed CA certificates are kept, and the
 * outcome of the expensive checks (parsing, signature) is cached per
 * certificate fingerprint; validity dates are checked on every call. Changing
 * the CA set empties the cache. Revocation is the caller's: look up
 * `(namespace, serial)` or the fingerprint in the device registry after this.
 */
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { PkiError } from './errors.js';
import { BOOTSTRAP_CN_PREFIX, BOOTSTRAP_OU, isValidDeviceId } from './device-cert.js';
import { OID, pemCertificates, readCertificateFields, type CertificateFields } from './x509.js';

export type ClientCertificateKind = 'device' | 'bootstrap';

export interface ClientIdentity {
  /** The namespace whose device CA issued the certificate. */
  readonly namespace: string;
  /** Subject CN: the device id for `device`, `Uptide bootstrap (<label>)` for `bootstrap`. */
  readonly cn: string;
  readonly kind: ClientCertificateKind;
  /** Lower-case hex, no leading zeros (as `IssuedCertificate.serial`). */
  readonly serial: string;
  /** Lower-case hex SHA-256 of the certificate DER. */
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Fingerprint of the device CA that issued it (several CAs per namespace during a rotation). */
  readonly issuerFingerprint256: string;
}

export type ClientCertificateRefusal =
  | 'NO_CERTIFICATE'
  | 'MALFORMED_CERTIFICATE'
  | 'UNKNOWN_ISSUER'
  | 'BAD_SIGNATURE'
  | 'ISSUER_NOT_VALID'
  | 'EXPIRED'
  | 'NOT_YET_VALID'
  | 'NOT_CLIENT_CERTIFICATE'
  | 'BAD_COMMON_NAME';

export type IdentifyResult =
  { readonly ok: true; readonly identity: ClientIdentity } | { readonly ok: false; readonly code: ClientCertificateRefusal; readonly message: string };

/**
 * What a TLS socket gives: `socket.getPeerCertificate(true)` (its `raw` DER;
 * `{}` when the client sent none), `socket.getPeerX509Certificate()`, or DER bytes.
 */
export type PeerCertificateInput = Uint8Array | X509Certificate | { readonly raw?: Uint8Array } | null | undefined;

interface CaEntry {
  readonly namespace: string;
  readonly x509: X509Certificate;
  readonly publicKey: KeyObject;
  readonly pem: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly fingerprint256: string;
}

/** Outcome of the time-independent checks, cached per certificate. */
type Checked =
  | { readonly ok: true; readonly identity: ClientIdentity; readonly ca: CaEntry }
  | { readonly ok: false; readonly code: ClientCertificateRefusal; readonly message: string };

const refuse = (code: ClientCertificateRefusal, message: string): { ok: false; code: ClientCertificateRefusal; message: string } => ({
  ok: false,
  code,
  message,
});

const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';

export interface ClientCertificateVerifierOptions {
  /** Initial device CAs. */
  readonly deviceCas?: Iterable<{ readonly namespace: string; readonly certPem: string }>;
  /** Certificates whose checks are remembered (default 10 000). */
  readonly cacheSize?: number;
}

export class ClientCertificateVerifier {
  /** Device CAs by the hex of their subject Name DER (what an issued certificate's issuer field holds, byte for byte). */
  private readonly byIssuerName = new Map<string, CaEntry[]>();
  private readonly cache = new Map<string, Checked>();
  private readonly cacheSize: number;

  constructor(opts: ClientCertificateVerifierOptions = {}) {
    this.cacheSize = opts.cacheSize ?? 10_000;
    for (const { namespace, certPem } of opts.deviceCas ?? []) this.addDeviceCa(namespace, certPem);
  }

  /** Adds a device CA of a namespace (a namespace may have several while rotating). */
  addDeviceCa(namespace: string, certPem: string): void {
    if (namespace.length === 0) throw new PkiError('BAD_ARGUMENT', 'namespace must not be empty');
    for (const der of pemCertificates(certPem)) {
      let x509: X509Certificate;
      let fields: CertificateFields;
      try {
        x509 = new X509Certificate(der);
        fields = readCertificateFields(x509.raw);
      } catch (err) {
        throw new PkiError('BAD_ARGUMENT', `cannot parse the device CA certificate of ${namespace}`, { cause: err });
      }
      if (!x509.ca) throw new PkiError('BAD_ARGUMENT', `the device CA certificate of ${namespace} is not a CA certificate`);
      const entry: CaEntry = {
        namespace,
        x509,
        publicKey: x509.publicKey,
        pem: x509.toString(),
        notBefore: fields.notBefore.getTime(),
        notAfter: fields.notAfter.getTime(),
        fingerprint256: createHash('sha256').update(x509.raw).digest('hex'),
      };
      const key = fields.subjectName.toString('hex');
      const list = (this.byIssuerName.get(key) ?? []).filter((e) => e.fingerprint256 !== entry.fingerprint256);
      list.push(entry);
      this.byIssuerName.set(key, list);
    }
    this.cache.clear();
  }

  /** Replaces the device CAs of a namespace. */
  setDeviceCas(namespace: string, certPems: readonly string[]): void {
    this.removeNamespace(namespace, false);
    for (const pem of certPems) this.addDeviceCa(namespace, pem);
    this.cache.clear();
  }

  /** Forgets every device CA of a namespace: its devices are refused from now on. */
  removeNamespace(namespace: string, clear = true): void {
    for (const [key, list] of this.byIssuerName) {
      const kept = list.filter((e) => e.namespace !== namespace);
      if (kept.length === 0) this.byIssuerName.delete(key);
      else this.byIssuerName.set(key, kept);
    }
    if (clear) this.cache.clear();
  }

  get namespaces(): string[] {
    return [...new Set([...this.byIssuerName.values()].flat().map((e) => e.namespace))].sort();
  }

  /** PEMs of all device CAs, for the TLS server's `ca` option (the acceptable-CA list it sends). */
  deviceCaPems(): string[] {
    return [...this.byIssuerName.values()].flat().map((e) => e.pem);
  }

  /** Decides who presented `peer` at time `now`. Never throws for bad input: refusals are results. */
  identify(peer: PeerCertificateInput, now: Date = new Date()): IdentifyResult {
    const der = peerDer(peer);
    if (der === undefined || der.length === 0) return refuse('NO_CERTIFICATE', 'no client certificate was presented');
    const fp = createHash('sha256').update(der).digest('hex');
    let checked = this.cache.get(fp);
    if (checked === undefined) {
      checked = this.check(der, fp);
      if (this.cache.size >= this.cacheSize) {
        const oldest = this.cache.keys().next();
        if (!oldest.done) this.cache.delete(oldest.value);
      }
      this.cache.set(fp, checked);
    }
    if (!checked.ok) return refuse(checked.code, checked.message);
    const t = now.getTime();
    const { identity, ca } = checked;
    if (t < ca.notBefore || t > ca.notAfter) return refuse('ISSUER_NOT_VALID', `the device CA of ${identity.namespace} is not valid at ${now.toISOString()}`);
    if (t < identity.notBefore.getTime()) return refuse('NOT_YET_VALID', `the certificate is valid from ${identity.notBefore.toISOString()}`);
    if (t > identity.notAfter.getTime()) return refuse('EXPIRED', `the certificate expired on ${identity.notAfter.toISOString()}`);
    return { ok: true, identity };
  }

  private check(der: Buffer, fp: string): Checked {
    let x509: X509Certificate;
    let fields: CertificateFields;
    try {
      x509 = new X509Certificate(der);
      fields = readCertificateFields(der);
    } catch {
      return refuse('MALFORMED_CERTIFICATE', 'the client certificate cannot be parsed');
    }
    const candidates = this.byIssuerName.get(fields.issuerName.toString('hex')) ?? [];
    const issuedBy = candidates.filter((c) => x509.checkIssued(c.x509));
    if (issuedBy.length === 0)
      return refuse('UNKNOWN_ISSUER', `the certificate is not issued by a known device CA (issuer ${x509.issuer.replace(/\n/g, ', ')})`);
    const ca = issuedBy.find((c) => safeVerify(x509, c.publicKey));
    if (ca === undefined) return refuse('BAD_SIGNATURE', 'the certificate signature does not verify with the device CA key');

    if (x509.ca) return refuse('NOT_CLIENT_CERTIFICATE', 'a CA certificate cannot authenticate a device');
    const eku = x509.keyUsage;
    if (eku !== undefined && !eku.includes(OID.clientAuth) && !eku.includes(ANY_EXTENDED_KEY_USAGE)) {
      return refuse('NOT_CLIENT_CERTIFICATE', 'the certificate is not meant for client authentication (extendedKeyUsage)');
    }

    const cns = fields.subject.filter((a) => a.type === OID.commonName);
    const cn = cns.length === 1 ? cns[0]?.value : undefined;
    if (cn === undefined) return refuse('BAD_COMMON_NAME', 'the certificate subject must have exactly one readable CN');
    const bootstrap = fields.subject.some((a) => a.type === OID.organizationalUnit && a.value === BOOTSTRAP_OU);
    if (bootstrap) {
      if (!cn.startsWith(BOOTSTRAP_CN_PREFIX) || !cn.endsWith(')')) return refuse('BAD_COMMON_NAME', 'a bootstrap certificate must have a bootstrap CN');
    } else if (!isValidDeviceId(cn)) {
      return refuse('BAD_COMMON_NAME', `the CN ${JSON.stringify(cn)} is not a valid device id`);
    }
    return {
      ok: true,
      ca,
      identity: {
        namespace: ca.namespace,
        cn,
        kind: bootstrap ? 'bootstrap' : 'device',
        serial: fields.serial,
        fingerprint256: fp,
        notBefore: fields.notBefore,
        notAfter: fields.notAfter,
        issuerFingerprint256: ca.fingerprint256,
      },
    };
  }
}

function safeVerify(x509: X509Certificate, key: KeyObject): boolean {
  try {
    return x509.verify(key);
  } catch {
    return false;
  }
}

function peerDer(peer: PeerCertificateInput): Buffer | undefined {
  if (peer === null || peer === undefined) return undefined;
  if (peer instanceof X509Certificate) return peer.raw;
  if (peer instanceof Uint8Array) return Buffer.from(peer.buffer, peer.byteOffset, peer.byteLength);
  const raw = (peer as { raw?: unknown }).raw;
  return raw instanceof Uint8Array ? Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
}

/** One-off form of `ClientCertificateVerifier.identify` (builds the CA index each call; use the class on a server). */
export function identifyClientCertificate(
  peer: PeerCertificateInput,
  deviceCas: Iterable<{ readonly namespace: string; readonly certPem: string }>,
  now: Date = new Date(),
): IdentifyResult {
  return new ClientCertificateVerifier({ deviceCas, cacheSize: 1 }).identify(peer, now);
}
