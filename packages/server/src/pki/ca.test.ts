import { X509Certificate } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, createCertificateAuthority, DEFAULT_CA_VALIDITY_DAYS } from './ca.js';
import { issueDeviceCertificate } from './device-cert.js';
import { PkiError } from './errors.js';
import { generatePrivateKey, privateKeyToPem } from './keys.js';
import { issueServerCertificate } from './server-cert.js';
import { openssl, tempDir } from './testing/tools.js';
import { DAY_MS, ipToBytes, normalizeHosts, readCertificateFields } from './x509.js';
import { readTime, readTlv, time } from './der.js';

const dir = tempDir();
afterAll(() => dir.remove());

describe('createCertificateAuthority', () => {
  it('makes an RSA-2048 self-signed CA with CA:true pathlen 0, keyCertSign and cRLSign, for ten years', async () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const ca = await createCertificateAuthority({ kind: 'device', namespace: 'fleet-a', now });
    const text = await openssl('x509', '-in', dir.write('ca.pem', ca.certPem), '-noout', '-text');
    expect(text).toContain('Subject: O = Uptide, CN = Uptide device CA (fleet-a)');
    expect(text).toContain('Issuer: O = Uptide, CN = Uptide device CA (fleet-a)');
    expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).toContain('Public-Key: (2048 bit)');
    expect(text).toContain('Signature Algorithm: sha256WithRSAEncryption');
    expect(text).toContain('Subject Key Identifier');
    // Self-signed: OpenSSL verifies it against itself.
    expect(
      await openssl('verify', '-attime', String(now.getTime() / 1000 + 60), '-CAfile', dir.write('ca2.pem', ca.certPem), dir.write('ca3.pem', ca.certPem)),
    ).toContain('OK');
    expect(ca.notAfter.getTime() - now.getTime()).toBe(DEFAULT_CA_VALIDITY_DAYS * DAY_MS);
    expect(ca.notBefore.getTime()).toBeLessThan(now.getTime());
    expect(ca.cert.ca).toBe(true);
    expect(ca.commonName).toBe('Uptide device CA (fleet-a)');
  });

  it('makes the server CA and an ECDSA P-256 CA on request', async () => {
    const server = await createCertificateAuthority({ kind: 'server' });
    expect(server.commonName).toBe('Uptide server CA');
    const ec = await createCertificateAuthority({ kind: 'device', keyType: 'ecdsa-p256', validityDays: 30 });
    const text = await openssl('x509', '-in', dir.write('ec.pem', ec.certPem), '-noout', '-text');
    expect(text).toContain('ASN1 OID: prime256v1');
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(text).toContain('CN = Uptide device CA (default)');
  });

  it('loads back from PEM and issues with the loaded key', async () => {
    const ca = await createCertificateAuthority({ kind: 'device' });
    const loaded = CertificateAuthority.fromPem(ca.certPem, ca.keyPem);
    expect(loaded.fingerprint256).toBe(ca.fingerprint256);
    expect(loaded.keyId.equals(ca.keyId)).toBe(true);
    const dev = await issueDeviceCertificate(loaded, { deviceId: 'dev-1' });
    expect(new X509Certificate(dev.certPem).verify(ca.cert.publicKey)).toBe(true);
  });

  it('refuses a key that is not the CA key, and a certificate that is not a CA', async () => {
    const ca = await createCertificateAuthority({ kind: 'device' });
    const other = privateKeyToPem(await generatePrivateKey());
    expect(() => CertificateAuthority.fromPem(ca.certPem, other)).toThrow(expect.objectContaining({ code: 'BAD_KEY' }));
    const leaf = await issueDeviceCertificate(ca, { deviceId: 'dev-2' });
    expect(() => CertificateAuthority.fromPem(leaf.certPem, leaf.keyPem as string)).toThrow(PkiError);
    expect(() => CertificateAuthority.fromPem('not a pem', ca.keyPem)).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(() => CertificateAuthority.fromPem(ca.certPem, 'not a key')).toThrow(expect.objectContaining({ code: 'BAD_KEY' }));
  });

  it('will not issue after it expired, and never past its own expiry', async () => {
    const created = new Date('2030-01-01T00:00:00Z');
    const ca = await createCertificateAuthority({ kind: 'device', validityDays: 10, now: created });
    const dev = await issueDeviceCertificate(ca, { deviceId: 'dev-3', ttlDays: '36000', now: new Date('2030-01-02T00:00:00Z') });
    expect(dev.notAfter.getTime()).toBe(ca.notAfter.getTime());
    await expect(issueDeviceCertificate(ca, { deviceId: 'dev-4', now: new Date('2030-02-01T00:00:00Z') })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
  });

  it('refuses nonsense validity', async () => {
    await expect(createCertificateAuthority({ kind: 'server', validityDays: 0 })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
  });
});

describe('DER details', () => {
  it('encodes UTCTime through 2049 and GeneralizedTime from 2050, and reads both back', () => {
    const a = new Date('2049-12-31T23:59:59Z');
    const b = new Date('2050-01-01T00:00:00Z');
    expect(time(a).toString('latin1', 2)).toBe('491231235959Z');
    expect(time(b).toString('latin1', 2)).toBe('20500101000000Z');
    expect(readTime(readTlv(time(a))).getTime()).toBe(a.getTime());
    expect(readTime(readTlv(time(b))).getTime()).toBe(b.getTime());
  });

  it('encodes IP addresses for subjectAltName', () => {
    expect(ipToBytes('127.0.0.1').toString('hex')).toBe('7f000001');
    expect(ipToBytes('::1').toString('hex')).toBe('00000000000000000000000000000001');
    expect(ipToBytes('::').toString('hex')).toBe('0'.repeat(32));
    expect(ipToBytes('fe80::1:2').toString('hex')).toBe('fe800000000000000000000000010002');
    expect(ipToBytes('::ffff:1.2.3.4').toString('hex')).toBe('00000000000000000000ffff01020304');
    expect(ipToBytes('2001:db8:0:0:0:0:0:7').toString('hex')).toBe('20010db8000000000000000000000007');
    expect(() => ipToBytes('1.2.3')).toThrow(PkiError);
  });

  it('checks host names', () => {
    expect(normalizeHosts(['Gateway.Example.COM', '[::1]', '10.1.2.3', 'gateway.example.com'])).toEqual({
      dns: ['gateway.example.com'],
      ips: ['::1', '10.1.2.3'],
    });
    for (const bad of ['', 'under_score.example', 'a b', '-lead.example', 'http://x']) expect(() => normalizeHosts([bad])).toThrow(PkiError);
  });

  it('reads the fields of a certificate OpenSSL made', async () => {
    const key = dir.write('o.key', privateKeyToPem(await generatePrivateKey('ecdsa-p256')));
    const pem = await openssl('req', '-x509', '-key', key, '-subj', '/O=Other/OU=Unit/CN=some-device_1', '-days', '2', '-set_serial', '0x00ff01');
    const f = readCertificateFields(new X509Certificate(pem).raw);
    expect(f.serial).toBe('ff01');
    expect(f.subject.map((a) => a.value)).toEqual(['Other', 'Unit', 'some-device_1']);
    expect(f.notAfter.getTime() - f.notBefore.getTime()).toBe(2 * DAY_MS);
  });

  it('makes certificates whose issuer bytes equal the CA subject bytes', async () => {
    const sca = await createCertificateAuthority({ kind: 'server' });
    const gw = await issueServerCertificate(sca);
    expect(readCertificateFields(gw.certDer).issuerName.equals(sca.subjectName)).toBe(true);
  });
});
