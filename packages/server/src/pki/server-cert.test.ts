import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, type CertificateAuthority } from './ca.js';
import { generatePrivateKey } from './keys.js';
import { DEFAULT_SERVER_CERT_VALIDITY_DAYS, gatewayCertificateNeedsReissue, gatewayTlsOptions, issueServerCertificate } from './server-cert.js';
import { openssl, tempDir } from './testing/tools.js';
import { DAY_MS } from './x509.js';

const dir = tempDir();
let serverCa: CertificateAuthority;
let caFile: string;

beforeAll(async () => {
  serverCa = await createCertificateAuthority({ kind: 'server' });
  caFile = dir.write('server-ca.pem', serverCa.certPem);
});
afterAll(() => dir.remove());

describe('issueServerCertificate', () => {
  it('names localhost, 127.0.0.1 and ::1 plus configured hosts, for serverAuth, and OpenSSL verifies host and IP', async () => {
    const gw = await issueServerCertificate(serverCa, { hosts: ['ota.example.com', '192.168.7.2'] });
    expect(gw.keyPem).toContain('BEGIN PRIVATE KEY');
    expect(gw.dnsNames).toEqual(['localhost', 'ota.example.com']);
    expect(gw.ipAddresses).toEqual(['127.0.0.1', '::1', '192.168.7.2']);
    const file = dir.write('gw.pem', gw.certPem);
    const text = await openssl('x509', '-in', file, '-noout', '-text');
    expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment/);
    expect(text).toMatch(/Extended Key Usage:\s+TLS Web Server Authentication/);
    expect(text).toContain('Subject: O = Uptide, CN = ota.example.com');
    for (const check of [
      ['-verify_ip', '127.0.0.1'],
      ['-verify_ip', '::1'],
      ['-verify_ip', '192.168.7.2'],
      ['-verify_hostname', 'localhost'],
      ['-verify_hostname', 'ota.example.com'],
    ]) {
      expect(await openssl('verify', '-purpose', 'sslserver', ...check, '-CAfile', caFile, file)).toContain('OK');
    }
    const wrong = await openssl('verify', '-purpose', 'sslserver', '-verify_hostname', 'evil.example.com', '-CAfile', caFile, file).catch(
      (e: Error) => e.message,
    );
    expect(wrong).toContain('hostname mismatch');
    expect(gw.notAfter.getTime() - gw.notBefore.getTime()).toBeGreaterThan((DEFAULT_SERVER_CERT_VALIDITY_DAYS - 1) * DAY_MS);
  });

  it('issues for a caller-held key (no key returned) and with ECDSA', async () => {
    const key = await generatePrivateKey('ecdsa-p256');
    const gw = await issueServerCertificate(serverCa, { publicKey: key });
    expect(gw.keyPem).toBeUndefined();
    expect(new X509Certificate(gw.certPem).checkPrivateKey(key)).toBe(true);
    const text = await openssl('x509', '-in', dir.write('gw-ec.pem', gw.certPem), '-noout', '-text');
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature\n/);
  });

  it('refuses bad host names', async () => {
    await expect(issueServerCertificate(serverCa, { hosts: ['bad host'] })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
  });
});

describe('gatewayCertificateNeedsReissue', () => {
  it('says when the stored certificate should be replaced', async () => {
    const now = new Date();
    const gw = await issueServerCertificate(serverCa, { hosts: ['a.example'], validityDays: 60, now });
    expect(gatewayCertificateNeedsReissue(gw.certPem, serverCa, { hosts: ['a.example'], now })).toBeNull();
    expect(gatewayCertificateNeedsReissue(gw.certPem, serverCa, { hosts: ['b.example'], now })).toContain('b.example');
    expect(gatewayCertificateNeedsReissue(gw.certPem, serverCa, { hosts: ['10.9.9.9'], now })).toContain('10.9.9.9');
    expect(gatewayCertificateNeedsReissue(gw.certPem, serverCa, { hosts: ['a.example'], now: new Date(now.getTime() + 45 * DAY_MS) })).toContain('expires');
    const otherCa = await createCertificateAuthority({ kind: 'server' });
    expect(gatewayCertificateNeedsReissue(gw.certPem, otherCa, { hosts: ['a.example'], now })).toContain('not issued by the server CA');
    expect(gatewayCertificateNeedsReissue('garbage', serverCa)).toContain('cannot be parsed');
  });
});

describe('gatewayTlsOptions', () => {
  it('requests client certificates but leaves the decision to the verifier', async () => {
    const gw = await issueServerCertificate(serverCa);
    const opts = gatewayTlsOptions({ certPem: gw.certPem, keyPem: gw.keyPem as string, deviceCaPems: [serverCa.certPem] });
    expect(opts).toMatchObject({ requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' });
    expect(() => gatewayTlsOptions({ certPem: gw.certPem, keyPem: gw.keyPem as string, deviceCaPems: [] })).toThrow();
  });
});
