import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, ORGANIZATION, type CertificateAuthority } from './ca.js';
import { DEVICE_OU, issueBootstrapCertificate, issueDeviceCertificate } from './device-cert.js';
import { generatePrivateKey } from './keys.js';
import { issueServerCertificate } from './server-cert.js';
import { ClientCertificateVerifier, identifyClientCertificate, type IdentifyResult } from './verify-client-cert.js';
import { basicConstraints, DAY_MS, extKeyUsage, keyUsage, OID } from './x509.js';

const NOW = new Date();
const past = (days: number): Date => new Date(NOW.getTime() - days * DAY_MS);
const future = (days: number): Date => new Date(NOW.getTime() + days * DAY_MS);

let caA: CertificateAuthority; // namespace "fleet-a", made 100 days ago so we can issue already-expired certificates
let caB: CertificateAuthority; // namespace "fleet-b"
let stranger: CertificateAuthority; // not known to the verifier
let verifier: ClientCertificateVerifier;

beforeAll(async () => {
  [caA, caB, stranger] = await Promise.all([
    createCertificateAuthority({ kind: 'device', namespace: 'fleet-a', now: past(100) }),
    createCertificateAuthority({ kind: 'device', namespace: 'fleet-b', keyType: 'ecdsa-p256' }),
    createCertificateAuthority({ kind: 'device', namespace: 'fleet-a' }), // same subject name as caA, other key
  ]);
  verifier = new ClientCertificateVerifier({
    deviceCas: [
      { namespace: 'fleet-a', certPem: caA.certPem },
      { namespace: 'fleet-b', certPem: caB.certPem },
    ],
  });
});

function refusal(r: IdentifyResult): string {
  return r.ok ? 'ok' : r.code;
}

describe('ClientCertificateVerifier.identify', () => {
  it('identifies a device by CN and namespace by issuing CA, from DER, PEM-parsed X509Certificate or a peer-certificate object', async () => {
    const dev = await issueDeviceCertificate(caA, { deviceId: 'curious-fish-42' });
    for (const peer of [dev.certDer, new X509Certificate(dev.certPem), { raw: dev.certDer }, new Uint8Array(dev.certDer)]) {
      const r = verifier.identify(peer);
      expect(r).toEqual({
        ok: true,
        identity: {
          namespace: 'fleet-a',
          cn: 'curious-fish-42',
          kind: 'device',
          serial: dev.serial,
          fingerprint256: dev.fingerprint256,
          notBefore: dev.notBefore,
          notAfter: dev.notAfter,
          issuerFingerprint256: caA.fingerprint256,
        },
      });
    }
    const devB = await issueDeviceCertificate(caB, { deviceId: 'curious-fish-42' });
    const rb = verifier.identify(devB.certDer);
    expect(rb.ok && rb.identity.namespace).toBe('fleet-b');
  });

  it('tells the bootstrap certificate apart', async () => {
    const boot = await issueBootstrapCertificate(caA, { label: 'fleet-a' });
    const r = verifier.identify(boot.certDer);
    expect(r.ok && r.identity).toMatchObject({ kind: 'bootstrap', namespace: 'fleet-a', cn: 'Uptide bootstrap (fleet-a)' });
  });

  it('refuses no certificate and garbage', () => {
    expect(refusal(verifier.identify(undefined))).toBe('NO_CERTIFICATE');
    expect(refusal(verifier.identify(null))).toBe('NO_CERTIFICATE');
    expect(refusal(verifier.identify({}))).toBe('NO_CERTIFICATE'); // getPeerCertificate() when the client sent none
    expect(refusal(verifier.identify(Buffer.alloc(0)))).toBe('NO_CERTIFICATE');
    expect(refusal(verifier.identify(Buffer.from('definitely not DER')))).toBe('MALFORMED_CERTIFICATE');
  });

  it('refuses certificates of unknown CAs, including one that only copies a known CA name', async () => {
    const dev = await issueDeviceCertificate(stranger, { deviceId: 'dev-1' });
    expect(refusal(verifier.identify(dev.certDer))).toBe('UNKNOWN_ISSUER');
    const serverCa = await createCertificateAuthority({ kind: 'server' });
    const gw = await issueServerCertificate(serverCa);
    expect(refusal(verifier.identify(gw.certDer))).toBe('UNKNOWN_ISSUER');
  });

  it('refuses a tampered signature', async () => {
    const dev = await issueDeviceCertificate(caB, { deviceId: 'dev-2' });
    const bad = Buffer.from(dev.certDer);
    bad[bad.length - 5] = (bad[bad.length - 5] as number) ^ 0x01;
    expect(refusal(verifier.identify(bad))).toMatch(/BAD_SIGNATURE|MALFORMED_CERTIFICATE/);
    const tbsFlip = Buffer.from(dev.certDer);
    const at = tbsFlip.indexOf(Buffer.from('dev-2'));
    tbsFlip[at] = 'x'.charCodeAt(0); // CN dev-2 → xev-2, signature no longer covers it
    expect(refusal(verifier.identify(tbsFlip))).toBe('BAD_SIGNATURE');
  });

  it('refuses expired and not-yet-valid certificates, checking time on every call', async () => {
    const expired = await issueDeviceCertificate(caA, { deviceId: 'old', ttlDays: 10, now: past(50) });
    expect(refusal(verifier.identify(expired.certDer))).toBe('EXPIRED');
    expect(verifier.identify(expired.certDer, past(45)).ok).toBe(true); // same certificate, cached, earlier clock
    const early = await issueDeviceCertificate(caB, { deviceId: 'early', now: future(3) });
    expect(refusal(verifier.identify(early.certDer))).toBe('NOT_YET_VALID');
    expect(verifier.identify(early.certDer, future(4)).ok).toBe(true);
  });

  it('refuses when the device CA itself is not valid', async () => {
    const shortCa = await createCertificateAuthority({ kind: 'device', namespace: 'short', validityDays: 5, now: past(10) });
    const dev = await issueDeviceCertificate(shortCa, { deviceId: 'd', now: past(9) });
    const v = new ClientCertificateVerifier({ deviceCas: [{ namespace: 'short', certPem: shortCa.certPem }] });
    expect(refusal(v.identify(dev.certDer))).toBe('ISSUER_NOT_VALID');
    expect(v.identify(dev.certDer, past(8)).ok).toBe(true);
  });

  it('refuses certificates not meant for client authentication, and CA certificates', async () => {
    const gwFromDeviceCa = await issueServerCertificate(caB);
    expect(refusal(verifier.identify(gwFromDeviceCa.certDer))).toBe('NOT_CLIENT_CERTIFICATE');
    expect(refusal(verifier.identify(caB.certDer))).toBe('NOT_CLIENT_CERTIFICATE');
  });

  it('refuses a CN that is not a device id, a missing CN, and a bootstrap OU with a device-like CN', async () => {
    const key = await generatePrivateKey('ecdsa-p256');
    const issue = (subject: { commonName: string; organizationalUnit?: string }) =>
      caB.issue({
        subject: { organization: ORGANIZATION, ...subject },
        publicKey: key,
        extensions: [basicConstraints(false), keyUsage(['digitalSignature']), extKeyUsage([OID.clientAuth])],
        validityDays: 1,
      });
    expect(refusal(verifier.identify((await issue({ commonName: 'not a device id', organizationalUnit: DEVICE_OU })).certDer))).toBe('BAD_COMMON_NAME');
    expect(refusal(verifier.identify((await issue({ commonName: 'dev-9', organizationalUnit: 'Uptide bootstrap' })).certDer))).toBe('BAD_COMMON_NAME');
    // No OU at all (e.g. an OTA CE style certificate from the same CA) is a device when the CN is an id.
    const plain = verifier.identify((await issue({ commonName: '6f1c7e0e-1b7a-4f0b-9a55-0a1d2f3e4b5c' })).certDer);
    expect(plain.ok && plain.identity.kind).toBe('device');
  });

  it('follows changes of the CA set (rotation, removal), and keeps namespaces apart', async () => {
    const v = new ClientCertificateVerifier();
    const dev = await issueDeviceCertificate(caA, { deviceId: 'rotating' });
    expect(refusal(v.identify(dev.certDer))).toBe('UNKNOWN_ISSUER');
    v.addDeviceCa('fleet-a', caA.certPem);
    expect(v.identify(dev.certDer).ok).toBe(true);
    v.addDeviceCa('fleet-a', stranger.certPem); // a second CA with the same name during a rotation
    const fromNew = await issueDeviceCertificate(stranger, { deviceId: 'rotating-2' });
    expect(v.identify(fromNew.certDer).ok).toBe(true);
    expect(v.identify(dev.certDer).ok).toBe(true);
    expect(v.namespaces).toEqual(['fleet-a']);
    expect(v.deviceCaPems()).toHaveLength(2);
    v.setDeviceCas('fleet-a', [stranger.certPem]);
    expect(refusal(v.identify(dev.certDer))).toBe('UNKNOWN_ISSUER');
    v.removeNamespace('fleet-a');
    expect(refusal(v.identify(fromNew.certDer))).toBe('UNKNOWN_ISSUER');
    expect(() => v.addDeviceCa('x', dev.certPem)).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
  });

  it('keeps its cache bounded', async () => {
    const v = new ClientCertificateVerifier({ deviceCas: [{ namespace: 'fleet-b', certPem: caB.certPem }], cacheSize: 2 });
    const key = await generatePrivateKey('ecdsa-p256');
    const certs = await Promise.all([1, 2, 3, 4].map((i) => issueDeviceCertificate(caB, { deviceId: `d${i}`, publicKey: key })));
    for (let round = 0; round < 3; round++) for (const c of certs) expect(v.identify(c.certDer).ok).toBe(true);
  });

  it('is cheap per connection once a certificate has been seen', async () => {
    const dev = await issueDeviceCertificate(caA, { deviceId: 'fast' });
    verifier.identify(dev.certDer);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 2000; i++) verifier.identify(dev.certDer);
    const perCallUs = Number(process.hrtime.bigint() - t0) / 1000 / 2000;
    expect(perCallUs).toBeLessThan(200); // a SHA-256 of ~1 KB and a map lookup; generous bound for slow CI
  });

  it('has a one-off form', async () => {
    const dev = await issueDeviceCertificate(caB, { deviceId: 'once' });
    expect(identifyClientCertificate(dev.certDer, [{ namespace: 'fleet-b', certPem: caB.certPem }]).ok).toBe(true);
  });
});
