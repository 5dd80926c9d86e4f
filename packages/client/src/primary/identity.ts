/**
 * Small helpers the Primary needs on every start, kept apart from the
 * provisioning code (which loads node-forge and yauzl, several megabytes that
 * only shared-credential provisioning needs).
 */
import { X509Certificate } from 'node:crypto';

/** The subject CN of a certificate (the device id on OTA CE and on our gateway). */
export function commonName(cert: X509Certificate | string): string | undefined {
  const x = typeof cert === 'string' ? new X509Certificate(cert) : cert;
  for (const line of x.subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return undefined;
}

/** The `code` of a JSON error body, if it is one. */
export function errorCode(body: Uint8Array): string | undefined {
  try {
    const v = JSON.parse(Buffer.from(body).toString('utf8')) as unknown;
    if (v && typeof v === 'object' && typeof (v as { code?: unknown }).code === 'string') return (v as { code: string }).code;
  } catch {
    // Not JSON.
  }
  return undefined;
}
