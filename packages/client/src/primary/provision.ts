/**
 * Device identity: device credentials from files, or shared-credential
 * provisioning with aktualizr's semantics (device-api.md §1.4.1, §4.1):
 * `credentials.zip` holds a bootstrap PKCS#12 (`autoprov_credentials.p12`)
 * and the gateway URL (`autoprov.url`); the device POSTs
 * `{"deviceId","ttl"}` to `<provisioning server>/devices` over mTLS with the
 * bootstrap certificate and receives a PKCS#12 (empty password) with its own
 * key, certificate and at least one CA certificate.
 */
import { createPrivateKey, randomUUID, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import forge from 'node-forge';
import yauzl from 'yauzl';
import { commonName, errorCode } from './identity.js';

export { commonName, errorCode };
import { canonicalize } from '@uptide/core';
import { HttpClient, type HttpClientOptions } from '../http/client.js';
import type { DeviceCredentials, StateStore } from '../state/store.js';
import type { Logger } from './log.js';

export type ProvisionErrorCode = 'BAD_CREDENTIALS' | 'DEVICE_ALREADY_REGISTERED' | 'PROVISIONING_FAILED';

export class ProvisionError extends Error {
  constructor(
    readonly code: ProvisionErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ProvisionError';
  }
}

/** aktualizr's cap on POST/PUT responses, which the PKCS#12 must fit in. */
const MAX_P12_BYTES = 64 * 1024;
const MAX_ZIP_BYTES = 4 * 1024 * 1024;
const MAX_ZIP_ENTRY_BYTES = 256 * 1024;

export interface CredentialsZip {
  /** `autoprov_credentials.p12`: the bootstrap key and certificate. */
  readonly p12: Buffer | undefined;
  /** `autoprov.url`: the gateway URL. */
  readonly gatewayUrl: string | undefined;
}

/** Reads the files the device needs from credentials.zip (others, such as garage-sign keys, are ignored). */
export async function readCredentialsZip(path: string): Promise<CredentialsZip> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    throw new ProvisionError('BAD_CREDENTIALS', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (buf.length > MAX_ZIP_BYTES) throw new ProvisionError('BAD_CREDENTIALS', `${path} is larger than ${MAX_ZIP_BYTES} bytes`);
  const wanted = new Map<string, Buffer>();
  await new Promise<void>((resolveZip, rejectZip) => {
    yauzl.fromBuffer(buf, { lazyEntries: true, validateEntrySizes: true }, (err, zip) => {
      if (err) {
        rejectZip(new ProvisionError('BAD_CREDENTIALS', `${path} is not a zip file: ${err.message}`, { cause: err }));
        return;
      }
      zip.on('error', (e: Error) => rejectZip(new ProvisionError('BAD_CREDENTIALS', `${path}: ${e.message}`, { cause: e })));
      zip.on('end', () => resolveZip());
      zip.on('entry', (entry: yauzl.Entry) => {
        const base = entry.fileName.split('/').pop() ?? '';
        if ((base !== 'autoprov_credentials.p12' && base !== 'autoprov.url') || entry.uncompressedSize > MAX_ZIP_ENTRY_BYTES) {
          zip.readEntry();
          return;
        }
        zip.openReadStream(entry, (e, stream) => {
          if (e) {
            rejectZip(new ProvisionError('BAD_CREDENTIALS', `${path}: ${e.message}`, { cause: e }));
            return;
          }
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('error', (se: Error) => rejectZip(new ProvisionError('BAD_CREDENTIALS', `${path}: ${se.message}`, { cause: se })));
          stream.on('end', () => {
            wanted.set(base, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.readEntry();
    });
  });
  const url = wanted.get('autoprov.url')?.toString('utf8').trim();
  return { p12: wanted.get('autoprov_credentials.p12'), gatewayUrl: url ? url.replace(/\/+$/, '') : undefined };
}

export interface ParsedPkcs12 {
  readonly key: KeyObject;
  /** The certificate that matches the key. */
  readonly cert: X509Certificate;
  /** Every other certificate in the file (the CA chain). */
  readonly others: readonly X509Certificate[];
}

function derOf(a: forge.asn1.Asn1): Buffer {
  return Buffer.from(forge.asn1.toDer(a).getBytes(), 'binary');
}

/**
 * Parses a PKCS#12 file. node-forge decodes RSA keys and certificates itself;
 * other key types (the P-256 keys OTA CE scripts make) come back as ASN.1,
 * which Node's crypto then reads.
 */
export function parsePkcs12(der: Uint8Array, password: string): ParsedPkcs12 {
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    const asn = forge.asn1.fromDer(forge.util.createBuffer(Buffer.from(der).toString('binary')));
    p12 = forge.pkcs12.pkcs12FromAsn1(asn, password);
  } catch (err) {
    throw new ProvisionError('BAD_CREDENTIALS', `not a PKCS#12 file, or a wrong password: ${(err as Error).message}`, { cause: err });
  }
  const keys: KeyObject[] = [];
  for (const type of [forge.pki.oids['pkcs8ShroudedKeyBag'], forge.pki.oids['keyBag']] as string[]) {
    for (const bag of p12.getBags({ bagType: type })[type] ?? []) {
      const pkcs8 = bag.key ? derOf(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key))) : derOf(bag.asn1);
      keys.push(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }));
    }
  }
  const certs: X509Certificate[] = [];
  const certType = forge.pki.oids['certBag'] as string;
  for (const bag of p12.getBags({ bagType: certType })[certType] ?? []) {
    const certDer = bag.cert ? derOf(forge.pki.certificateToAsn1(bag.cert)) : derOf(bag.asn1);
    certs.push(new X509Certificate(certDer));
  }
  if (keys.length !== 1) throw new ProvisionError('BAD_CREDENTIALS', `the PKCS#12 file holds ${keys.length} private keys, expected 1`);
  const key = keys[0] as KeyObject;
  const cert = certs.find((c) => c.checkPrivateKey(key));
  if (!cert) throw new ProvisionError('BAD_CREDENTIALS', 'the PKCS#12 file has no certificate for its private key');
  return { key, cert, others: certs.filter((c) => c !== cert) };
}

export function credentialsFromPkcs12(p: ParsedPkcs12): DeviceCredentials {
  if (p.others.length === 0) {
    // aktualizr refuses these too ("Failed to configure HTTP client with device credentials").
    throw new ProvisionError('BAD_CREDENTIALS', 'the device PKCS#12 has no CA certificate');
  }
  const ca = p.others.map((c) => c.toString()).join('');
  return { key: p.key.export({ format: 'pem', type: 'pkcs8' }).toString(), cert: p.cert.toString() + ca, ca };
}

export interface SharedProvisioningInput {
  readonly credentialsZip: string;
  readonly p12Password: string;
  readonly expiryDays: number;
  /** Provisioning server base URL (default: the gateway, possibly from autoprov.url). */
  readonly server: string;
  /** A configured device id; otherwise one is generated and kept in the state. */
  readonly deviceId: string | undefined;
  /** An extra CA for the provisioning server (from [tls] ca). */
  readonly ca: string | undefined;
  readonly http: Omit<HttpClientOptions, 'tls' | 'trustedOrigins'>;
}

/**
 * Shared-credential provisioning. The chosen device id is persisted before the
 * request, so a retry after a crash asks for the same device; a generated id
 * that the server says is taken is dropped, and a new one is tried next time.
 */
export async function provisionWithSharedCredentials(
  input: SharedProvisioningInput,
  store: StateStore,
  log: Logger,
): Promise<{ credentials: DeviceCredentials; deviceId: string }> {
  const zip = await readCredentialsZip(input.credentialsZip);
  if (!zip.p12) throw new ProvisionError('BAD_CREDENTIALS', `${input.credentialsZip} has no autoprov_credentials.p12`);
  const bootstrap = parsePkcs12(zip.p12, input.p12Password);
  const generated = input.deviceId === undefined;
  const deviceId = input.deviceId ?? store.state.deviceId ?? randomUUID();
  if (store.state.deviceId !== deviceId) await store.update(() => ({ deviceId }));
  const ca = [input.ca, ...bootstrap.others.map((c) => c.toString())].filter((x): x is string => x !== undefined).join('');
  const client = new HttpClient({
    ...input.http,
    tls: {
      ca: ca || undefined,
      cert: bootstrap.cert.toString() + bootstrap.others.map((c) => c.toString()).join(''),
      key: bootstrap.key.export({ format: 'pem', type: 'pkcs8' }),
    },
    trustedOrigins: [input.server],
  });
  log.info('provisioning with shared credentials', { server: input.server, device: deviceId });
  try {
    const body = canonicalize({ deviceId, ttl: String(input.expiryDays) }, 'uptane');
    const res = await client.request('POST', `${input.server}/devices`, { body, maxBytes: MAX_P12_BYTES, retry: true });
    if (res.status >= 200 && res.status < 300) {
      const credentials = credentialsFromPkcs12(parsePkcs12(res.body, ''));
      return { credentials, deviceId };
    }
    if (errorCode(res.body) === 'device_already_registered') {
      if (generated) {
        await store.update(() => ({ deviceId: undefined }));
        throw new ProvisionError('DEVICE_ALREADY_REGISTERED', `the server already has a device ${deviceId}; a new device id will be tried next time`);
      }
      throw new ProvisionError(
        'DEVICE_ALREADY_REGISTERED',
        `the server already has a device ${deviceId}; set another [device] id, or remove the device on the server`,
      );
    }
    throw new ProvisionError('PROVISIONING_FAILED', `POST ${input.server}/devices: HTTP ${res.status} ${res.body.subarray(0, 200).toString('utf8')}`);
  } finally {
    client.close();
  }
}
