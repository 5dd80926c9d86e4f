/**
 * The device gateway's TLS certificate, issued by the server CA.
 *
 * aktualizr (libcurl) verifies it with VERIFYPEER=1 and VERIFYHOST=2, so the
 * host name or IP in the gateway URL must be in subjectAltName (OpenSSL ignores
 * the CN once a SAN is present). `localhost`, `127.0.0.1` and `::1` are always
 * included; configured names and addresses are added.
 */
import type { KeyObject } from 'node:crypto';
import type { TlsOptions } from 'node:tls';
import { ORGANIZATION, type CertificateAuthority } from './ca.js';
import { PkiError } from './errors.js';
import { DEFAULT_KEY_TYPE, generatePrivateKey, privateKeyToPem, toPublicKey, type PkiKeyType } from './keys.js';
import {
  basicConstraints,
  DAY_MS,
  extKeyUsage,
  keyUsage,
  normalizeHosts,
  OID,
  readCertificateFields,
  subjectAltName,
  toX509,
  type IssuedCertificate,
  type KeyUsage,
} from './x509.js';

export const DEFAULT_GATEWAY_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '::1'];
/** About 27 months. The server re-issues from its CA when `gatewayCertificateNeedsReissue` says so; devices trust the CA, not this leaf. */
export const DEFAULT_SERVER_CERT_VALIDITY_DAYS = 825;

export interface ServerCertificateOptions {
  /** Extra host names and IP addresses (e.g. from the public gateway URL). */
  readonly hosts?: readonly string[];
  /** Default: the first configured DNS name, else `localhost`. */
  readonly commonName?: string;
  readonly keyType?: PkiKeyType;
  /** Issue for this key instead of generating one (then `keyPem` is not returned). */
  readonly publicKey?: string | KeyObject;
  readonly validityDays?: number;
  readonly now?: Date;
}

export interface IssuedServerCertificate extends IssuedCertificate {
  /** PKCS#8 PEM of the generated key; absent when the caller passed `publicKey`. */
  readonly keyPem?: string;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
}

/** Issues the gateway certificate: CA:false, digitalSignature (+ keyEncipherment for RSA), EKU serverAuth, SANs. */
export async function issueServerCertificate(serverCa: CertificateAuthority, opts: ServerCertificateOptions = {}): Promise<IssuedServerCertificate> {
  const hosts = normalizeHosts([...DEFAULT_GATEWAY_HOSTS, ...(opts.hosts ?? [])]);
  const generated = opts.publicKey === undefined ? await generatePrivateKey(opts.keyType ?? DEFAULT_KEY_TYPE) : undefined;
  const publicKey = toPublicKey(generated ?? (opts.publicKey as string | KeyObject));
  // keyEncipherment only means something for RSA key transport (TLS 1.2 RSA suites).
  const usages: KeyUsage[] = publicKey.asymmetricKeyType === 'rsa' ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature'];
  const commonName = opts.commonName ?? hosts.dns.find((d) => d !== 'localhost') ?? 'localhost';
  const issued = await serverCa.issue({
    subject: { organization: ORGANIZATION, commonName },
    publicKey,
    extensions: [basicConstraints(false), keyUsage(usages), extKeyUsage([OID.serverAuth]), subjectAltName(hosts)],
    validityDays: opts.validityDays ?? DEFAULT_SERVER_CERT_VALIDITY_DAYS,
    ...(opts.now === undefined ? {} : { now: opts.now }),
  });
  return { ...issued, ...(generated === undefined ? {} : { keyPem: privateKeyToPem(generated) }), dnsNames: hosts.dns, ipAddresses: hosts.ips };
}

export interface ReissueCheck {
  readonly hosts?: readonly string[];
  readonly now?: Date;
  /** Re-issue this many days before expiry (default 30). */
  readonly marginDays?: number;
}

/**
 * Says why a stored gateway certificate should be replaced (for start-up), or
 * null when it is fine: not issued by this server CA, expiring within the
 * margin, or missing one of the configured hosts.
 */
export function gatewayCertificateNeedsReissue(certPem: string, serverCa: CertificateAuthority, check: ReissueCheck = {}): string | null {
  let cert;
  try {
    cert = toX509(certPem);
  } catch {
    return 'the gateway certificate cannot be parsed';
  }
  if (!cert.checkIssued(serverCa.cert) || !cert.verify(serverCa.cert.publicKey)) return 'the gateway certificate was not issued by the server CA';
  const fields = readCertificateFields(cert.raw);
  const now = check.now ?? new Date();
  if (fields.notAfter.getTime() - now.getTime() < (check.marginDays ?? 30) * DAY_MS)
    return `the gateway certificate expires on ${fields.notAfter.toISOString()}`;
  const wanted = normalizeHosts([...DEFAULT_GATEWAY_HOSTS, ...(check.hosts ?? [])]);
  for (const d of wanted.dns) if (cert.checkHost(d, { wildcards: false }) === undefined) return `the gateway certificate does not name ${d}`;
  for (const ip of wanted.ips) if (cert.checkIP(ip) === undefined) return `the gateway certificate does not name ${ip}`;
  return null;
}

export interface GatewayTlsInput {
  /** Gateway certificate PEM (leaf; the server CA may follow, it does no harm). */
  readonly certPem: string;
  readonly keyPem: string;
  /** Every namespace's device CA: sent as the acceptable-CA list of the CertificateRequest. */
  readonly deviceCaPems: readonly string[];
}

/**
 * Options for `https.createServer` / `tls.createServer` on the device port.
 * Client certificates are requested but not enforced by the TLS layer: the
 * gateway calls `ClientCertificateVerifier.identify()` per connection, so an
 * unknown or expired certificate gets a proper `{"code","message"}` reply and
 * the namespace comes from the issuing CA. The caller must refuse requests
 * whose connection does not identify.
 */
export function gatewayTlsOptions(input: GatewayTlsInput): TlsOptions {
  if (input.deviceCaPems.length === 0) throw new PkiError('BAD_ARGUMENT', 'the gateway needs at least one device CA');
  return {
    cert: input.certPem,
    key: input.keyPem,
    ca: [...input.deviceCaPems],
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
  };
}
