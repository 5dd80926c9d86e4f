import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, type CertificateAuthority } from './ca.js';
import { issueDeviceCertificate, type IssuedDeviceCertificate } from './device-cert.js';
import { generatePrivateKey, privateKeyToPem, spkiDer } from './keys.js';
import { AKTUALIZR_MAX_P12_BYTES, buildPkcs12, parsePkcs12, pkcs12Kdf } from './pkcs12.js';
import { openssl, run, tempDir } from './testing/tools.js';
import { pemCertificates } from './x509.js';

const dir = tempDir();
let serverCa: CertificateAuthority;
let deviceCa: CertificateAuthority;
let device: IssuedDeviceCertificate;

beforeAll(async () => {
  serverCa = await createCertificateAuthority({ kind: 'server' });
  deviceCa = await createCertificateAuthority({ kind: 'device', namespace: 'default' });
  device = await issueDeviceCertificate(deviceCa, { deviceId: 'curious-fish-42', ttlDays: '36000' });
});
afterAll(() => dir.remove());

const fingerprintsOf = (pem: string): string[] => pemCertificates(pem).map((d) => new X509Certificate(d).fingerprint256);

describe('buildPkcs12', () => {
  it('makes what aktualizr reads: key, client certificate and both CAs, empty password, under 64 KiB (checked with openssl pkcs12)', async () => {
    const p12 = buildPkcs12({
      key: device.keyPem as string,
      certPem: device.certPem,
      caPems: [deviceCa.certPem, serverCa.certPem],
      friendlyName: 'curious-fish-42',
    });
    expect(p12.length).toBeLessThan(AKTUALIZR_MAX_P12_BYTES);
    expect(p12.length).toBeLessThan(8 * 1024);
    const file = dir.write('device.p12', p12);

    // Everything, the way the task asks: `openssl pkcs12 -in f.p12 -passin pass: -nodes`.
    const all = await openssl('pkcs12', '-in', file, '-passin', 'pass:', '-nodes');
    expect(all).toContain('-----BEGIN PRIVATE KEY-----');
    expect(all).toContain('friendlyName: curious-fish-42');
    expect(fingerprintsOf(all)).toEqual(fingerprintsOf(device.certPem + deviceCa.certPem + serverCa.certPem));

    // What PKCS12_parse splits it into: the client certificate (matching the key) and the "CA" certificates.
    const client = await openssl('pkcs12', '-in', file, '-passin', 'pass:', '-nokeys', '-clcerts');
    expect(fingerprintsOf(client)).toEqual(fingerprintsOf(device.certPem));
    const cas = await openssl('pkcs12', '-in', file, '-passin', 'pass:', '-nokeys', '-cacerts');
    expect(fingerprintsOf(cas).sort()).toEqual(fingerprintsOf(deviceCa.certPem + serverCa.certPem).sort());
    const key = await openssl('pkcs12', '-in', file, '-passin', 'pass:', '-nocerts', '-nodes');
    expect(spkiDer(createPrivateKey(key)).equals(spkiDer(createPrivateKey(device.keyPem as string)))).toBe(true);

    // OpenSSL's own integrity check, and the algorithms (OpenSSL 3 defaults, no legacy provider needed).
    const info = (await run('openssl', ['pkcs12', '-in', file, '-passin', 'pass:', '-info', '-noout'])).stderr;
    expect(info).toContain('MAC: sha256, Iteration 2048');
    expect(info).toContain('Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256');
    const wrong = await run('openssl', ['pkcs12', '-in', file, '-passin', 'pass:nope', '-nodes']);
    expect(wrong.code).not.toBe(0);
  });

  it('works for ECDSA device keys and with a password', async () => {
    const key = await generatePrivateKey('ecdsa-p256');
    const dev = await issueDeviceCertificate(deviceCa, { deviceId: 'ec-device', publicKey: key });
    const p12 = buildPkcs12({ key, certPem: dev.certPem, caPems: [deviceCa.certPem + serverCa.certPem], password: 'sesame' });
    const file = dir.write('ec.p12', p12);
    const out = await openssl('pkcs12', '-in', file, '-passin', 'pass:sesame', '-nodes');
    expect(out).toContain('BEGIN PRIVATE KEY');
    expect(fingerprintsOf(out)).toHaveLength(3);
    expect(parsePkcs12(p12, 'sesame').cert.fingerprint256).toBe(new X509Certificate(dev.certPem).fingerprint256);
    expect(() => parsePkcs12(p12)).toThrow(expect.objectContaining({ code: 'BAD_PASSPHRASE' }));
  });

  it('refuses a key that does not match, no CA, and junk', async () => {
    const other = privateKeyToPem(await generatePrivateKey());
    expect(() => buildPkcs12({ key: other, certPem: device.certPem, caPems: [deviceCa.certPem] })).toThrow(expect.objectContaining({ code: 'BAD_KEY' }));
    expect(() => buildPkcs12({ key: device.keyPem as string, certPem: device.certPem, caPems: [] })).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(() => buildPkcs12({ key: device.keyPem as string, certPem: 'nothing', caPems: [deviceCa.certPem] })).toThrow(
      expect.objectContaining({ code: 'BAD_ARGUMENT' }),
    );
  });
});

describe('parsePkcs12', () => {
  it('reads back what buildPkcs12 wrote', () => {
    const p12 = buildPkcs12({ key: device.keyPem as string, certPem: device.certPem, caPems: [deviceCa.certPem, serverCa.certPem] });
    const parsed = parsePkcs12(p12);
    expect(parsed.cert.fingerprint256).toBe(new X509Certificate(device.certPem).fingerprint256);
    expect(parsed.caCerts.map((c) => c.fingerprint256)).toEqual([deviceCa.cert.fingerprint256, serverCa.cert.fingerprint256]);
    expect(parsed.caPems.join('')).toBe(deviceCa.cert.toString() + serverCa.cert.toString());
    expect(parsed.cert.checkPrivateKey(parsed.privateKey)).toBe(true);
    expect(parsed.keyPem).toContain('BEGIN PRIVATE KEY');
  });

  // What other producers write: OpenSSL 3 defaults, OpenSSL 1.x (-legacy: RC2-40 certificates, 3DES key, SHA-1 MAC), no cert encryption, no MAC.
  const variants: { name: string; args: string[]; password: string }[] = [
    { name: 'OpenSSL 3 default (PBES2/AES-256 everywhere)', args: [], password: '' },
    { name: 'OpenSSL 1.x legacy (RC2-40 certificates, 3DES key, SHA-1 MAC)', args: ['-legacy'], password: '' },
    { name: '3DES everywhere, SHA-1 MAC, with a password', args: ['-keypbe', 'PBE-SHA1-3DES', '-certpbe', 'PBE-SHA1-3DES', '-macalg', 'sha1'], password: 'pw' },
    { name: 'certificates unencrypted, no MAC', args: ['-certpbe', 'NONE', '-nomac'], password: '' },
    { name: 'PBES2 with AES-128 and SHA-512 MAC', args: ['-keypbe', 'AES-128-CBC', '-certpbe', 'AES-128-CBC', '-macalg', 'sha512'], password: 'x' },
  ];
  for (const v of variants) {
    it(`reads ${v.name}`, async () => {
      const keyFile = dir.write('o.key', device.keyPem as string);
      const certFile = dir.write('o.crt', device.certPem);
      const caFile = dir.write('o.ca', deviceCa.certPem + serverCa.certPem);
      const out = `${dir.path}/o-${variants.indexOf(v)}.p12`;
      await openssl('pkcs12', '-export', ...v.args, '-inkey', keyFile, '-in', certFile, '-certfile', caFile, '-passout', `pass:${v.password}`, '-out', out);
      const parsed = parsePkcs12(readFileSync(out), v.password);
      expect(parsed.cert.fingerprint256).toBe(new X509Certificate(device.certPem).fingerprint256);
      expect(parsed.caCerts.map((c) => c.fingerprint256).sort()).toEqual([deviceCa.cert.fingerprint256, serverCa.cert.fingerprint256].sort());
      expect(parsed.cert.checkPrivateKey(parsed.privateKey)).toBe(true);
    });
  }

  it('refuses a wrong password, corrupted bytes, and non-PKCS#12 input with typed errors', () => {
    const p12 = buildPkcs12({ key: device.keyPem as string, certPem: device.certPem, caPems: [deviceCa.certPem] });
    expect(() => parsePkcs12(p12, 'wrong')).toThrow(expect.objectContaining({ code: 'BAD_PASSPHRASE' }));
    const flipped = Buffer.from(p12);
    flipped[200] = (flipped[200] as number) ^ 1;
    expect(() => parsePkcs12(flipped)).toThrow(expect.objectContaining({ code: expect.stringMatching(/BAD_PASSPHRASE|BAD_ARGUMENT/) }));
    expect(() => parsePkcs12(Buffer.from('hello'))).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(() => parsePkcs12(p12.subarray(0, p12.length - 10))).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
  });
});

describe('pkcs12Kdf', () => {
  it('derives the same bytes as forge (RFC 7292 B.2), for empty and non-empty passwords', () => {
    const salt = Buffer.from('0a58cf64530d823f', 'hex');
    const cases: [string, () => forge.md.MessageDigest, string][] = [
      ['', () => forge.md.sha256.create(), 'sha256'],
      ['smeg', () => forge.md.sha1.create(), 'sha1'],
      ['queeg', () => forge.md.sha512.create(), 'sha512'],
    ];
    for (const [password, md, name] of cases) {
      for (const id of [1, 2, 3] as const) {
        const ours = pkcs12Kdf(password, salt, id, 1000, 40, name);
        const theirs = forge.pkcs12.generateKey(password, forge.util.createBuffer(salt.toString('binary')), id, 1000, 40, md());
        expect(ours.toString('hex')).toBe(forge.util.bytesToHex(theirs.getBytes()));
      }
    }
  });

  it('matches the published PKCS#12 KDF test vector (password "smeg", SHA-1, id 1, one iteration)', () => {
    const key = pkcs12Kdf('smeg', Buffer.from('0a58cf64530d823f', 'hex'), 1, 1, 24, 'sha1');
    expect(key.toString('hex')).toBe('8aaae6297b6cb04642ab5b077851284eb7128f1a2a7fbca3');
  });
});
