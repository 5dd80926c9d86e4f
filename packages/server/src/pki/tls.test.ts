/**
 * The whole PKI over real TLS on 127.0.0.1: a Node HTTPS server with the
 * gateway certificate that requests client certificates, clients presenting
 * device, bootstrap, foreign, expired and no certificates, and the real
 * OpenSSL clients aktualizr is built on (curl/libcurl and `openssl s_client`)
 * verifying the gateway with only the server CA and presenting a client
 * certificate, including credentials unpacked from our PKCS#12 the way
 * aktualizr unpacks them.
 */
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, type CertificateAuthority } from './ca.js';
import { issueBootstrapCertificate, issueDeviceCertificate, type IssuedDeviceCertificate } from './device-cert.js';
import { buildPkcs12 } from './pkcs12.js';
import { gatewayTlsOptions, issueServerCertificate } from './server-cert.js';
import { openssl, run, tempDir, type TempDir } from './testing/tools.js';
import { ClientCertificateVerifier, type IdentifyResult } from './verify-client-cert.js';
import { DAY_MS } from './x509.js';

let dir: TempDir;
let serverCa: CertificateAuthority;
let deviceCa: CertificateAuthority;
let verifier: ClientCertificateVerifier;
let server: Server;
let port: number;
let serverCaFile: string;
let device: IssuedDeviceCertificate;

beforeAll(async () => {
  dir = tempDir();
  serverCa = await createCertificateAuthority({ kind: 'server' });
  deviceCa = await createCertificateAuthority({ kind: 'device', namespace: 'default', now: new Date(Date.now() - 100 * DAY_MS) });
  const gateway = await issueServerCertificate(serverCa);
  device = await issueDeviceCertificate(deviceCa, { deviceId: 'curious-fish-42', ttlDays: '36000' });
  verifier = new ClientCertificateVerifier({ deviceCas: [{ namespace: 'default', certPem: deviceCa.certPem }] });
  serverCaFile = dir.write('server-ca.pem', serverCa.certPem);

  // What the gateway will do: identity from the TLS peer certificate only.
  server = createServer(
    gatewayTlsOptions({ certPem: gateway.certPem, keyPem: gateway.keyPem as string, deviceCaPems: verifier.deviceCaPems() }),
    (req, res) => {
      const result = verifier.identify((req.socket as TLSSocket).getPeerCertificate(true));
      res.writeHead(result.ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify(result));
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  dir.remove();
});

/** A Node HTTPS client that trusts only the server CA. */
function get(client?: { certPem: string; keyPem: string }): Promise<{ status: number; body: IdentifyResult }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        ca: serverCa.certPem,
        agent: false,
        timeout: 10_000,
        ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as IdentifyResult }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('gateway TLS with client certificates (Node clients)', () => {
  it('identifies a device by its certificate', async () => {
    const r = await get({ certPem: device.certPem, keyPem: device.keyPem as string });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ ok: true, identity: { namespace: 'default', cn: 'curious-fish-42', kind: 'device', serial: device.serial } });
  });

  it('tells apart the bootstrap certificate, another CA, an expired certificate and no certificate', async () => {
    const boot = await issueBootstrapCertificate(deviceCa);
    const bootR = await get({ certPem: boot.certPem, keyPem: boot.keyPem });
    expect(bootR.body).toMatchObject({ ok: true, identity: { kind: 'bootstrap', namespace: 'default' } });

    const otherCa = await createCertificateAuthority({ kind: 'device', namespace: 'default' });
    const foreign = await issueDeviceCertificate(otherCa, { deviceId: 'curious-fish-42' });
    expect((await get({ certPem: foreign.certPem, keyPem: foreign.keyPem as string })).body).toMatchObject({ ok: false, code: 'UNKNOWN_ISSUER' });

    const expired = await issueDeviceCertificate(deviceCa, { deviceId: 'old-device', ttlDays: 5, now: new Date(Date.now() - 50 * DAY_MS) });
    const expiredR = await get({ certPem: expired.certPem, keyPem: expired.keyPem as string });
    expect(expiredR.status).toBe(401);
    expect(expiredR.body).toMatchObject({ ok: false, code: 'EXPIRED' });

    expect((await get()).body).toMatchObject({ ok: false, code: 'NO_CERTIFICATE' });
  });

  it('works with an ECDSA device key', async () => {
    const ec = await issueDeviceCertificate(deviceCa, { deviceId: 'ec-device', keyType: 'ecdsa-p256' });
    expect((await get({ certPem: ec.certPem, keyPem: ec.keyPem as string })).body).toMatchObject({ ok: true, identity: { cn: 'ec-device' } });
  });
});

describe('gateway TLS with OpenSSL clients (what aktualizr uses)', () => {
  it('curl verifies the gateway for https://127.0.0.1 and https://localhost with --cacert and presents the client certificate', async () => {
    const cert = dir.write('client.pem', device.certPem);
    const key = dir.write('pkey.pem', device.keyPem as string);
    for (const url of [`https://127.0.0.1:${port}/`, `https://localhost:${port}/`]) {
      const r = await run('curl', [
        '-sS',
        '--max-time',
        '15',
        '--resolve',
        `localhost:${port}:127.0.0.1`,
        '--cacert',
        serverCaFile,
        '--cert',
        cert,
        '--key',
        key,
        url,
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, identity: { cn: 'curious-fish-42', kind: 'device' } });
    }
  });

  it('a namespace added after the TLS context was built works: the CA list of the CertificateRequest is only advisory to OpenSSL clients', async () => {
    const lateCa = await createCertificateAuthority({ kind: 'device', namespace: 'late', keyType: 'ecdsa-p256' });
    verifier.addDeviceCa('late', lateCa.certPem);
    const dev = await issueDeviceCertificate(lateCa, { deviceId: 'late-device' });
    const cert = dir.write('late.pem', dev.certPem);
    const key = dir.write('late.key', dev.keyPem as string);
    for (const version of ['1.2', '1.3']) {
      const r = await run('curl', [
        '-sS',
        '--max-time',
        '15',
        `--tlsv${version}`,
        '--tls-max',
        version,
        '--cacert',
        serverCaFile,
        '--cert',
        cert,
        '--key',
        key,
        `https://127.0.0.1:${port}/`,
      ]);
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, identity: { namespace: 'late', cn: 'late-device' } });
    }
  });

  it('curl refuses the gateway without the server CA, and for a host name not in the certificate', async () => {
    const untrusted = await run('curl', ['-sS', '--max-time', '15', `https://127.0.0.1:${port}/`]);
    expect(untrusted.code).toBe(60); // CURLE_PEER_FAILED_VERIFICATION
    const wrongHost = await run('curl', [
      '-sS',
      '--max-time',
      '15',
      '--resolve',
      `evil.example:${port}:127.0.0.1`,
      '--cacert',
      serverCaFile,
      `https://evil.example:${port}/`,
    ]);
    expect(wrongHost.code).toBe(60);
  });

  it('openssl s_client verifies the chain and the IP, and sends the client certificate', async () => {
    const cert = dir.write('sc-client.pem', device.certPem);
    const key = dir.write('sc-pkey.pem', device.keyPem as string);
    const r = await run(
      'openssl',
      [
        's_client',
        '-connect',
        `127.0.0.1:${port}`,
        '-CAfile',
        serverCaFile,
        '-verify_return_error',
        '-verify_ip',
        '127.0.0.1',
        '-cert',
        cert,
        '-key',
        key,
        '-ign_eof',
      ],
      { input: 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' },
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Verify return code: 0 (ok)');
    expect(r.stdout).toContain('"cn":"curious-fish-42"');
  });

  it('credentials unpacked from our PKCS#12 as aktualizr does (key, client cert + CA chain, CA file) work with curl', async () => {
    const p12 = dir.write('device.p12', buildPkcs12({ key: device.keyPem as string, certPem: device.certPem, caPems: [deviceCa.certPem, serverCa.certPem] }));
    // aktualizr's Crypto::parseP12: the key; the certificate with every CA appended; the CAs as the TLS trust anchor.
    const pkey = dir.write('p12-pkey.pem', await openssl('pkcs12', '-in', p12, '-passin', 'pass:', '-nocerts', '-nodes'));
    const cas = await openssl('pkcs12', '-in', p12, '-passin', 'pass:', '-nokeys', '-cacerts');
    const ca = dir.write('p12-ca.pem', cas);
    const client = dir.write('p12-client.pem', (await openssl('pkcs12', '-in', p12, '-passin', 'pass:', '-nokeys', '-clcerts')) + cas);
    const r = await run('curl', ['-sS', '--max-time', '15', '--cacert', ca, '--cert', client, '--key', pkey, `https://127.0.0.1:${port}/`]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, identity: { cn: 'curious-fish-42', namespace: 'default' } });
  });
});
