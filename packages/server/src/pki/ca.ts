/**
 * Certificate authorities. Two kinds, with the same profile:
 *  - the **server CA** (one per installation) signs the gateway's TLS
 *    certificate; devices trust it as their only anchor for the gateway;
 *  - a **device CA** per namespace signs device certificates and the fleet's
 *    bootstrap certificate; the gateway decides a client's namespace by which
 *    device CA issued its certificate.
 * Keeping them apart means a leaked device CA key cannot impersonate the
 * gateway, and a device certificate cannot pass as a server certificate.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { PkiError } from './errors.js';
import {
  assertCertificateKey,
  DEFAULT_KEY_TYPE,
  generatePrivateKey,
  keyIdentifier,
  keyMatches,
  privateKeyToPem,
  spkiDer,
  toPrivateKey,
  type PkiKeyType,
} from './keys.js';
import {
  authorityKeyIdentifier,
  BACKDATE_MS,
  basicConstraints,
  buildCertificate,
  certificateKeyIdentifier,
  DAY_MS,
  describeIssued,
  encodeName,
  fingerprint256,
  keyUsage,
  randomSerial,
  readCertificateFields,
  subjectKeyIdentifier,
  truncateToSeconds,
  type CertificateFields,
  type Extension,
  type IssuedCertificate,
  type NameSpec,
} from './x509.js';

export type CaKind = 'server' | 'device';

export const DEFAULT_CA_VALIDITY_DAYS = 3650;
export const ORGANIZATION = 'Uptide';

export function defaultCaCommonName(kind: CaKind, namespace?: string): string {
  return kind === 'server' ? 'Uptide server CA' : `Uptide device CA (${namespace ?? 'default'})`;
}

export interface CreateCaOptions {
  readonly kind: CaKind;
  /** The namespace of a device CA (goes into the default common name). */
  readonly namespace?: string;
  readonly commonName?: string;
  /** Default `rsa2048`. */
  readonly keyType?: PkiKeyType;
  /** Default 3650 (ten years). */
  readonly validityDays?: number;
  /** Issuance time (default: now). */
  readonly now?: Date;
}

/** What an issuing call needs to say about the new certificate; the CA adds serial, issuer, key identifiers and validity. */
export interface IssueRequest {
  readonly subject: NameSpec;
  readonly publicKey: KeyObject;
  readonly extensions: readonly Extension[];
  readonly validityDays: number;
  readonly now?: Date;
}

/** A CA certificate with its private key, ready to issue. Build one with `createCertificateAuthority` or `CertificateAuthority.fromPem`. */
export class CertificateAuthority {
  readonly cert: X509Certificate;
  readonly certDer: Buffer;
  readonly fields: CertificateFields;
  /** subjectKeyIdentifier, copied into the authorityKeyIdentifier of what this CA issues. */
  readonly keyId: Buffer;
  readonly fingerprint256: string;

  private constructor(
    readonly certPem: string,
    readonly privateKey: KeyObject,
  ) {
    this.cert = new X509Certificate(certPem);
    this.certDer = this.cert.raw;
    this.fields = readCertificateFields(this.certDer);
    this.keyId = certificateKeyIdentifier(this.fields);
    this.fingerprint256 = fingerprint256(this.certDer);
  }

  /** Loads a stored CA; checks that it is a CA certificate and that the key is its key. */
  static fromPem(certPem: string, key: string | KeyObject): CertificateAuthority {
    const privateKey = toPrivateKey(key);
    let ca: CertificateAuthority;
    try {
      ca = new CertificateAuthority(certPem, privateKey);
    } catch (err) {
      if (err instanceof PkiError) throw err;
      throw new PkiError('BAD_ARGUMENT', 'cannot parse the CA certificate', { cause: err });
    }
    if (!ca.cert.ca) throw new PkiError('BAD_ARGUMENT', 'the certificate is not a CA certificate (basicConstraints CA:false)');
    if (!keyMatches(privateKey, ca.fields.spki)) throw new PkiError('BAD_KEY', 'the private key does not belong to the CA certificate');
    assertCertificateKey(privateKey, 'CA key');
    return ca;
  }

  get keyPem(): string {
    return privateKeyToPem(this.privateKey);
  }

  get subjectName(): Buffer {
    return this.fields.subjectName;
  }

  get notBefore(): Date {
    return this.fields.notBefore;
  }

  get notAfter(): Date {
    return this.fields.notAfter;
  }

  /** The subject common name, e.g. `Uptide device CA (default)`. */
  get commonName(): string | undefined {
    return this.fields.subject.find((a) => a.type === '2.5.4.3')?.value;
  }

  /**
   * Signs a certificate. Validity starts an hour back (clock skew) and ends
   * after `validityDays`, but never after the CA itself: a certificate cannot
   * be valid longer than its issuer, so we say so instead of pretending.
   */
  async issue(req: IssueRequest): Promise<IssuedCertificate> {
    const now = req.now ?? new Date();
    if (now.getTime() >= this.notAfter.getTime())
      throw new PkiError('BAD_ARGUMENT', `the CA "${this.commonName ?? ''}" expired on ${this.notAfter.toISOString()}`);
    if (!Number.isFinite(req.validityDays) || req.validityDays <= 0) throw new PkiError('BAD_ARGUMENT', 'validity must be a positive number of days');
    assertCertificateKey(req.publicKey, 'subject key');
    const notBefore = new Date(Math.max(now.getTime() - BACKDATE_MS, this.notBefore.getTime()));
    const notAfter = new Date(Math.min(now.getTime() + req.validityDays * DAY_MS, this.notAfter.getTime()));
    const built = await buildCertificate({
      serial: randomSerial(),
      issuerName: this.subjectName,
      subjectName: encodeName(req.subject),
      notBefore,
      notAfter,
      subjectPublicKey: req.publicKey,
      extensions: [...req.extensions, subjectKeyIdentifier(keyIdentifier(spkiDer(req.publicKey))), authorityKeyIdentifier(this.keyId)],
      signingKey: this.privateKey,
    });
    return describeIssued(built);
  }
}

/** Creates a self-signed CA: basicConstraints CA:true pathlen 0 (it issues only end-entity certificates), keyCertSign and cRLSign. */
export async function createCertificateAuthority(opts: CreateCaOptions): Promise<CertificateAuthority> {
  const now = opts.now ?? new Date();
  const validityDays = opts.validityDays ?? DEFAULT_CA_VALIDITY_DAYS;
  if (!Number.isFinite(validityDays) || validityDays <= 0) throw new PkiError('BAD_ARGUMENT', 'CA validity must be a positive number of days');
  const privateKey = await generatePrivateKey(opts.keyType ?? DEFAULT_KEY_TYPE);
  const name = encodeName({ organization: ORGANIZATION, commonName: opts.commonName ?? defaultCaCommonName(opts.kind, opts.namespace) });
  const ski = keyIdentifier(spkiDer(privateKey));
  const built = await buildCertificate({
    serial: randomSerial(),
    issuerName: name,
    subjectName: name,
    notBefore: truncateToSeconds(new Date(now.getTime() - BACKDATE_MS)),
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    subjectPublicKey: privateKey,
    extensions: [basicConstraints(true, 0), keyUsage(['keyCertSign', 'cRLSign']), subjectKeyIdentifier(ski), authorityKeyIdentifier(ski)],
    signingKey: privateKey,
  });
  return CertificateAuthority.fromPem(built.pem, privateKey);
}
