/**
 * Device certificates (the device is the CN) and the fleet's bootstrap
 * (shared-credential) certificate, both issued by a namespace's device CA.
 *
 * The two kinds are told apart by the subject, which the CA signs:
 *  - device:    O=Uptide, OU=Uptide device,    CN=<device id>
 *  - bootstrap: O=Uptide, OU=Uptide bootstrap, CN=Uptide bootstrap (<label>)
 * The bootstrap CN contains a space and parentheses, which no device id may
 * contain, so even a reader that only looks at the CN can never take the
 * shared credential for a device. (A private X.509 extension would need an OID
 * arc we do not own; the OU plus an impossible CN is enough and readable by
 * `openssl x509 -subject`.)
 */
import type { KeyObject } from 'node:crypto';
import { ORGANIZATION, type CertificateAuthority } from './ca.js';
import { PkiError } from './errors.js';
import { DEFAULT_KEY_TYPE, generatePrivateKey, privateKeyToPem, toPublicKey, type PkiKeyType } from './keys.js';
import { basicConstraints, extKeyUsage, keyUsage, OID, type IssuedCertificate } from './x509.js';

export const DEVICE_OU = 'Uptide device';
export const BOOTSTRAP_OU = 'Uptide bootstrap';
export const BOOTSTRAP_CN_PREFIX = 'Uptide bootstrap (';

/**
 * Device ids: 1–64 characters of letters, digits, `.`, `_`, `-`, starting with
 * a letter or digit. This admits UUIDs (OTA CE), aktualizr's generated names
 * (`curious-fish-42`) and the usual hand-picked ids, and keeps ids safe in
 * URLs, file names and log lines.
 */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidDeviceId(s: unknown): s is string {
  return typeof s === 'string' && DEVICE_ID_PATTERN.test(s);
}

/** aktualizr's default `[provision] expiry_days`. */
export const AKTUALIZR_DEFAULT_TTL_DAYS = 36000;
export const DEFAULT_DEVICE_CERT_VALIDITY_DAYS = 3650;
/** Upper bound on a requested ttl, before clamping to the CA's own expiry. */
export const MAX_TTL_DAYS = 100_000;

/**
 * Reads a validity in days: aktualizr sends `ttl` as a JSON string of digits
 * (`"36000"`); the admin API may send a number. Anything else is BAD_ARGUMENT.
 */
export function parseTtlDays(ttl: unknown, defaultDays = DEFAULT_DEVICE_CERT_VALIDITY_DAYS): number {
  if (ttl === undefined || ttl === null) return defaultDays;
  let n: number;
  if (typeof ttl === 'number') n = ttl;
  else if (typeof ttl === 'string' && /^[0-9]{1,7}$/.test(ttl)) n = Number(ttl);
  else throw new PkiError('BAD_ARGUMENT', `ttl must be a whole number of days, got ${JSON.stringify(ttl)}`);
  if (!Number.isInteger(n) || n < 1 || n > MAX_TTL_DAYS) throw new PkiError('BAD_ARGUMENT', `ttl must be between 1 and ${MAX_TTL_DAYS} days`);
  return n;
}

export interface DeviceCertificateOptions {
  readonly deviceId: string;
  /**
   * The device's public key (PEM SPKI, DER SPKI or KeyObject), when the key was
   * made on the device side. Without it a key is generated and returned.
   */
  readonly publicKey?: string | Uint8Array | KeyObject;
  /** Key type of a generated key (default `rsa2048`). */
  readonly keyType?: PkiKeyType;
  /** Days, as a number or aktualizr's digit string. Default 3650; clamped to the CA's expiry. */
  readonly ttlDays?: number | string;
  readonly now?: Date;
}

export interface IssuedDeviceCertificate extends IssuedCertificate {
  readonly deviceId: string;
  /** PKCS#8 PEM of the generated key; absent when the caller passed `publicKey`. */
  readonly keyPem?: string;
}

export interface IssuedBootstrapCertificate extends IssuedCertificate {
  readonly label: string;
  readonly keyPem: string;
}

function clientExtensions() {
  // Client authentication only needs signatures, whatever the key type.
  return [basicConstraints(false), keyUsage(['digitalSignature']), extKeyUsage([OID.clientAuth])];
}

/** Issues a device certificate: CN = device id, OU = Uptide device, EKU clientAuth, random 128-bit serial. */
export async function issueDeviceCertificate(deviceCa: CertificateAuthority, opts: DeviceCertificateOptions): Promise<IssuedDeviceCertificate> {
  if (!isValidDeviceId(opts.deviceId)) throw new PkiError('BAD_ARGUMENT', `not a valid device id: ${JSON.stringify(opts.deviceId)}`);
  const validityDays = parseTtlDays(opts.ttlDays);
  const generated = opts.publicKey === undefined ? await generatePrivateKey(opts.keyType ?? DEFAULT_KEY_TYPE) : undefined;
  const publicKey = toPublicKey(generated ?? (opts.publicKey as string | Uint8Array | KeyObject));
  const issued = await deviceCa.issue({
    subject: { organization: ORGANIZATION, organizationalUnit: DEVICE_OU, commonName: opts.deviceId },
    publicKey,
    extensions: clientExtensions(),
    validityDays,
    ...(opts.now === undefined ? {} : { now: opts.now }),
  });
  return { ...issued, deviceId: opts.deviceId, ...(generated === undefined ? {} : { keyPem: privateKeyToPem(generated) }) };
}

export interface BootstrapCertificateOptions {
  /** Shown in the CN, e.g. the namespace or a fleet name (default `default`). */
  readonly label?: string;
  readonly keyType?: PkiKeyType;
  /** Default 3650 days, clamped to the CA's expiry. */
  readonly validityDays?: number;
  readonly now?: Date;
}

const LABEL_PATTERN = /^[A-Za-z0-9._-]{1,40}$/;

/** Issues the fleet's shared bootstrap certificate (always with a fresh key: it goes into credentials.zip). */
export async function issueBootstrapCertificate(deviceCa: CertificateAuthority, opts: BootstrapCertificateOptions = {}): Promise<IssuedBootstrapCertificate> {
  const label = opts.label ?? 'default';
  if (!LABEL_PATTERN.test(label)) throw new PkiError('BAD_ARGUMENT', `bootstrap label must be 1-40 letters, digits, '.', '_' or '-'`);
  const key = await generatePrivateKey(opts.keyType ?? DEFAULT_KEY_TYPE);
  const issued = await deviceCa.issue({
    subject: { organization: ORGANIZATION, organizationalUnit: BOOTSTRAP_OU, commonName: `${BOOTSTRAP_CN_PREFIX}${label})` },
    publicKey: toPublicKey(key),
    extensions: clientExtensions(),
    validityDays: opts.validityDays ?? DEFAULT_DEVICE_CERT_VALIDITY_DAYS,
    ...(opts.now === undefined ? {} : { now: opts.now }),
  });
  return { ...issued, label, keyPem: privateKeyToPem(key) };
}
