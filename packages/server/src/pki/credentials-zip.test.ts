import { X509Certificate } from 'node:crypto';
import * as yauzl from 'yauzl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, type CertificateAuthority } from './ca.js';
import { buildCredentialsZip, CREDENTIALS_ZIP_FILES } from './credentials-zip.js';
import { issueBootstrapCertificate } from './device-cert.js';
import { buildPkcs12, parsePkcs12 } from './pkcs12.js';
import { run, tempDir } from './testing/tools.js';

interface ZipEntry {
  readonly data: Buffer;
  readonly mode: number;
  readonly mtime: Date;
}

/** Reads every entry with yauzl (what a consumer of the zip would use). */
function unzip(buf: Buffer): Promise<Map<string, ZipEntry>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error('no zip'));
      const out = new Map<string, ZipEntry>();
      zip.on('error', reject);
      zip.on('end', () => resolve(out));
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e, stream) => {
          if (e) return reject(e);
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('error', reject);
          stream.on('end', () => {
            out.set(entry.fileName, { data: Buffer.concat(chunks), mode: (entry.externalFileAttributes >>> 16) & 0o7777, mtime: entry.getLastModDate() });
            zip.readEntry();
          });
        });
      });
      zip.readEntry();
    });
  });
}

const dir = tempDir();
let serverCa: CertificateAuthority;
let deviceCa: CertificateAuthority;
let p12: Buffer;
const root = Buffer.from('{"signatures":[],"signed":{"_type":"Root","version":1}}');

beforeAll(async () => {
  serverCa = await createCertificateAuthority({ kind: 'server' });
  deviceCa = await createCertificateAuthority({ kind: 'device', namespace: 'default' });
  const boot = await issueBootstrapCertificate(deviceCa);
  p12 = buildPkcs12({ key: boot.keyPem, certPem: boot.certPem, caPems: [deviceCa.certPem, serverCa.certPem] });
});
afterAll(() => dir.remove());

describe('buildCredentialsZip', () => {
  it('holds the files aktualizr and garage tools read, with the right contents', async () => {
    const zip = await buildCredentialsZip({
      autoprovP12: p12,
      gatewayUrl: 'https://127.0.0.1:8443/',
      serverCaPem: serverCa.certPem,
      imageRootJson: root,
      tufRepoUrl: 'http://127.0.0.1:8080/api/v1/user_repo',
      mtime: new Date('2030-06-01T12:00:00Z'),
    });
    const entries = await unzip(zip);
    expect([...entries.keys()].sort()).toEqual([...CREDENTIALS_ZIP_FILES].sort());
    const text = (name: string): string => entries.get(name)?.data.toString('utf8') ?? '';
    expect(text('autoprov.url')).toBe('https://127.0.0.1:8443'); // no trailing slash, no newline: aktualizr concatenates paths
    expect(text('tufrepo.url')).toBe('http://127.0.0.1:8080/api/v1/user_repo');
    expect(JSON.parse(text('treehub.json'))).toEqual({ no_auth: true, ostree: { server: 'https://127.0.0.1:8443/treehub' } });
    expect(entries.get('root.json')?.data.equals(root)).toBe(true);
    expect(new X509Certificate(text('server_ca.pem')).fingerprint256).toBe(serverCa.cert.fingerprint256);
    const inner = parsePkcs12(entries.get('autoprov_credentials.p12')?.data ?? Buffer.alloc(0));
    expect(inner.caCerts.map((c) => c.fingerprint256)).toContain(serverCa.cert.fingerprint256);
    expect(entries.get('autoprov_credentials.p12')?.mode).toBe(0o600);
    expect(entries.get('autoprov.url')?.mode).toBe(0o644);
    expect(entries.get('root.json')?.mtime.getUTCFullYear()).toBe(2030);
  });

  it('unzips with the system unzip too, when there is one', async () => {
    const zip = await buildCredentialsZip({
      autoprovP12: p12,
      gatewayUrl: 'https://gw.example:8443',
      serverCaPem: serverCa.certPem,
      imageRootJson: '{}',
      tufRepoUrl: 'https://gw.example',
    });
    const file = dir.write('credentials.zip', zip);
    const r = await run('unzip', ['-l', file]).catch(() => undefined);
    if (r === undefined) return; // no unzip on this machine; yauzl covered it
    expect(r.code).toBe(0);
    for (const name of CREDENTIALS_ZIP_FILES) expect(r.stdout).toContain(name);
  });

  it('adds extra files and refuses bad input', async () => {
    const base = {
      autoprovP12: p12,
      gatewayUrl: 'https://gw.example',
      serverCaPem: serverCa.certPem,
      imageRootJson: '{}',
      tufRepoUrl: 'https://gw.example/repo',
    };
    const entries = await unzip(
      await buildCredentialsZip({ ...base, extraFiles: { 'api_gateway.url': 'https://gw.example:8080' }, treehubUrl: 'https://th.example' }),
    );
    expect(entries.get('api_gateway.url')?.data.toString()).toBe('https://gw.example:8080');
    expect(JSON.parse(entries.get('treehub.json')?.data.toString() ?? '')).toEqual({ no_auth: true, ostree: { server: 'https://th.example' } });
    await expect(buildCredentialsZip({ ...base, gatewayUrl: 'ftp://x' })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await expect(buildCredentialsZip({ ...base, gatewayUrl: 'not a url' })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await expect(buildCredentialsZip({ ...base, serverCaPem: 'nope' })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await expect(buildCredentialsZip({ ...base, extraFiles: { 'root.json': '{}' } })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await expect(buildCredentialsZip({ ...base, extraFiles: { '../evil': 'x' } })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
  });
});
