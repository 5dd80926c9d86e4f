/**
 * The fleet's `credentials.zip` (device-api.md §4.1), as OTA CE's tooling lays
 * it out. aktualizr in shared-credential mode reads `autoprov_credentials.p12`
 * (bootstrap key, certificate and CAs, empty password) and `autoprov.url`
 * (becomes `[tls] server`); garage-sign and friends read `root.json`,
 * `tufrepo.url` and `treehub.json`; `server_ca.pem` is the gateway's CA for
 * tools that want it as a file.
 */
import { ZipFile } from 'yazl';
import { PkiError } from './errors.js';
import { pemCertificates } from './x509.js';

export interface CredentialsZipInput {
  /** The bootstrap PKCS#12 (`buildPkcs12` of the bootstrap key and certificate with the device CA and server CA). */
  readonly autoprovP12: Uint8Array;
  /** Device gateway base URL, e.g. `https://127.0.0.1:8443`. A trailing `/` is dropped: aktualizr appends paths to it. */
  readonly gatewayUrl: string;
  /** The server CA certificate (trust anchor for the gateway). */
  readonly serverCaPem: string;
  /** The namespace's Image repository root metadata, exactly as served. */
  readonly imageRootJson: Uint8Array | string;
  /** Base URL garage-sign uses for the Image repository (the admin API's repository endpoint). */
  readonly tufRepoUrl: string;
  /** Default `<gatewayUrl>/treehub`. */
  readonly treehubUrl?: string;
  /** More entries, e.g. `targets.pub` / `targets.sec` for an offline targets key, or `api_gateway.url`. */
  readonly extraFiles?: Readonly<Record<string, Uint8Array | string>>;
  /** Timestamp of the entries (default now). */
  readonly mtime?: Date;
}

export const CREDENTIALS_ZIP_FILES = ['autoprov_credentials.p12', 'autoprov.url', 'server_ca.pem', 'root.json', 'tufrepo.url', 'treehub.json'] as const;

function checkUrl(value: string, what: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new PkiError('BAD_ARGUMENT', `${what} is not a URL: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new PkiError('BAD_ARGUMENT', `${what} must be http(s)`);
  if (url.search !== '' || url.hash !== '') throw new PkiError('BAD_ARGUMENT', `${what} must not have a query or fragment`);
  return value.replace(/\/+$/, '');
}

/** Builds credentials.zip in memory (a few kilobytes). */
export async function buildCredentialsZip(input: CredentialsZipInput): Promise<Buffer> {
  const gateway = checkUrl(input.gatewayUrl, 'gatewayUrl');
  const tufRepo = checkUrl(input.tufRepoUrl, 'tufRepoUrl');
  const treehub = checkUrl(input.treehubUrl ?? `${gateway}/treehub`, 'treehubUrl');
  if (pemCertificates(input.serverCaPem).length === 0) throw new PkiError('BAD_ARGUMENT', 'serverCaPem holds no certificate');
  if (input.autoprovP12.length === 0) throw new PkiError('BAD_ARGUMENT', 'autoprovP12 is empty');

  const files = new Map<string, { data: Buffer; mode: number }>();
  const add = (name: string, data: Uint8Array | string, mode = 0o100644): void => {
    if (files.has(name)) throw new PkiError('BAD_ARGUMENT', `credentials.zip entry ${name} given twice`);
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new PkiError('BAD_ARGUMENT', `bad credentials.zip entry name ${JSON.stringify(name)}`);
    files.set(name, { data: typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data), mode });
  };
  // The p12 holds the shared private key: owner-only when unzipped (mode includes S_IFREG, as zip tools expect).
  add('autoprov_credentials.p12', input.autoprovP12, 0o100600);
  add('autoprov.url', gateway);
  add('server_ca.pem', input.serverCaPem);
  add('root.json', input.imageRootJson);
  add('tufrepo.url', tufRepo);
  add('treehub.json', JSON.stringify({ no_auth: true, ostree: { server: treehub } }));
  for (const [name, data] of Object.entries(input.extraFiles ?? {})) add(name, data, name.endsWith('.sec') ? 0o100600 : 0o100644);

  const zip = new ZipFile();
  const mtime = input.mtime ?? new Date();
  for (const [name, f] of files) zip.addBuffer(f.data, name, { mtime, mode: f.mode });
  const done = new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('error', reject);
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
  });
  zip.end();
  return done;
}
