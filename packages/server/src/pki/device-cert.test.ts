import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, type CertificateAuthority } from './ca.js';
import {
  AKTUALIZR_DEFAULT_TTL_DAYS,
  BOOTSTRAP_OU,
  DEVICE_OU,
  isValidDeviceId,
  issueBootstrapCertificate,
  issueDeviceCertificate,
  parseTtlDays,
} from './device-cert.js';
import { generatePrivateKey, spkiDer } from './keys.js';
import { openssl, tempDir } from './testing/tools.js';
import { DAY_MS, readCertificateFields } from './x509.js';

const dir = tempDir();
let deviceCa: CertificateAuthority;
let caFile: string;

beforeAll(async () => {
  deviceCa = await createCertificateAuthority({ kind: 'device', namespace: 'default', validityDays: 20 * 365 });
  caFile = dir.write('device-ca.pem', deviceCa.certPem);
});
afterAll(() => dir.remove());

describe('issueDeviceCertificate', () => {
  it('issues CN = device id, OU device, clientAuth, with a fresh key, and OpenSSL accepts it as an SSL client', async () => {
    const dev = await issueDeviceCertificate(deviceCa, { deviceId: 'curious-fish-42' });
    expect(dev.deviceId).toBe('curious-fish-42');
    expect(dev.keyPem).toContain('BEGIN PRIVATE KEY');
    const file = dir.write('dev.pem', dev.certPem);
    const text = await openssl('x509', '-in', file, '-noout', '-text');
    expect(text).toContain(`Subject: O = Uptide, OU = ${DEVICE_OU}, CN = curious-fish-42`);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/Extended Key Usage:\s+TLS Web Client Authentication/);
    expect(text).toContain('Authority Key Identifier');
    expect(await openssl('verify', '-purpose', 'sslclient', '-CAfile', caFile, file)).toContain('OK');
    const serverUse = await openssl('verify', '-purpose', 'sslserver', '-CAfile', caFile, file).catch((e: Error) => e.message);
    expect(serverUse).toContain('unsuitable certificate purpose');
    expect(new X509Certificate(dev.certPem).checkPrivateKey(createPrivateKey(dev.keyPem as string))).toBe(true);
  });

  it('issues for a public key the device keeps (PEM SPKI, RSA or EC), returning no key', async () => {
    for (const type of ['ecdsa-p256', 'rsa2048'] as const) {
      const key = await generatePrivateKey(type);
      const spkiPem = createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
      const dev = await issueDeviceCertificate(deviceCa, { deviceId: `dev-${type}`, publicKey: spkiPem });
      expect(dev.keyPem).toBeUndefined();
      expect(spkiDer(new X509Certificate(dev.certPem).publicKey).equals(spkiDer(key))).toBe(true);
      expect(await openssl('verify', '-purpose', 'sslclient', '-CAfile', caFile, dir.write(`dev-${type}.pem`, dev.certPem))).toContain('OK');
    }
    await expect(
      issueDeviceCertificate(deviceCa, { deviceId: 'x', publicKey: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' }),
    ).rejects.toMatchObject({
      code: 'BAD_KEY',
    });
    const priv = (await generatePrivateKey('ecdsa-p256')).export({ type: 'pkcs8', format: 'pem' }).toString();
    await expect(issueDeviceCertificate(deviceCa, { deviceId: 'x', publicKey: priv })).rejects.toMatchObject({ code: 'BAD_KEY' });
    const ed = generateKeyPairSync('ed25519').publicKey;
    await expect(issueDeviceCertificate(deviceCa, { deviceId: 'x', publicKey: ed })).rejects.toMatchObject({ code: 'BAD_KEY' });
  });

  it('takes aktualizr ttl strings in days and clamps to the CA expiry', async () => {
    const now = new Date();
    const short = await issueDeviceCertificate(deviceCa, { deviceId: 'short', ttlDays: '30', now });
    expect(short.notAfter.getTime() - Math.floor(now.getTime() / 1000) * 1000).toBe(30 * DAY_MS);
    const long = await issueDeviceCertificate(deviceCa, { deviceId: 'long', ttlDays: String(AKTUALIZR_DEFAULT_TTL_DAYS), now });
    expect(long.notAfter.getTime()).toBe(deviceCa.notAfter.getTime());
    expect(long.notBefore.getTime()).toBeLessThan(now.getTime());
  });

  it('uses random 128-bit serials', async () => {
    const serials = new Set<string>();
    const key = await generatePrivateKey('ecdsa-p256');
    for (let i = 0; i < 8; i++) serials.add((await issueDeviceCertificate(deviceCa, { deviceId: 'same', publicKey: key })).serial);
    expect(serials.size).toBe(8);
    for (const s of serials) expect(s.length).toBeGreaterThan(16); // ≥ 9 significant bytes for all but 1 in 2^56 cases
    for (const s of serials) expect(s).toMatch(/^[0-9a-f]{1,32}$/);
  });

  it('refuses device ids that are not ids', async () => {
    for (const bad of ['', ' dev', 'dev/1', 'a'.repeat(65), 'Uptide bootstrap (default)', '-x', 'dév']) {
      expect(isValidDeviceId(bad)).toBe(false);
      await expect(issueDeviceCertificate(deviceCa, { deviceId: bad })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    }
    for (const good of ['curious-fish-42', '6f1c7e0e-1b7a-4f0b-9a55-0a1d2f3e4b5c', 'ECU_1.primary', 'a'.repeat(64)]) expect(isValidDeviceId(good)).toBe(true);
  });
});

describe('parseTtlDays', () => {
  it('reads strings of digits and numbers, and refuses the rest', () => {
    expect(parseTtlDays('36000')).toBe(36000);
    expect(parseTtlDays(7)).toBe(7);
    expect(parseTtlDays(undefined, 99)).toBe(99);
    for (const bad of ['', '0', '-1', '1.5', '1e3', ' 5', 'abc', 0, 1.5, 1e9, {}, true])
      expect(() => parseTtlDays(bad)).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
  });
});

describe('issueBootstrapCertificate', () => {
  it('issues a shared client certificate that cannot be mistaken for a device', async () => {
    const boot = await issueBootstrapCertificate(deviceCa, { label: 'default' });
    const f = readCertificateFields(boot.certDer);
    expect(f.subject.map((a) => a.value)).toEqual(['Uptide', BOOTSTRAP_OU, 'Uptide bootstrap (default)']);
    expect(isValidDeviceId('Uptide bootstrap (default)')).toBe(false);
    expect(boot.keyPem).toContain('BEGIN PRIVATE KEY');
    expect(await openssl('verify', '-purpose', 'sslclient', '-CAfile', caFile, dir.write('boot.pem', boot.certPem))).toContain('OK');
    await expect(issueBootstrapCertificate(deviceCa, { label: 'a b' })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
  });
});
