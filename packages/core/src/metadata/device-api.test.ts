/**
 * The example documents of device-api.md (§2.7, §2.10, §2.11 and §3),
 * completed into valid, really signed documents in the bytes OTA CE serves
 * (canonical JSON) and aktualizr sends. Each parses in the uptane dialect,
 * verifies, and re-serializes to exactly the same bytes.
 */
import { describe, expect, it } from 'vitest';
import { createPublicKey } from 'node:crypto';
import { parseRoot } from './root.js';
import { parseTargets } from './targets.js';
import { parseSnapshot, parseTimestamp } from './snapshot.js';
import { canonicalize, canonicalString, parseJson, type JsonObject } from '../json.js';
import { toBase64 } from '../encoding.js';
import { computeHashes } from '../crypto/hash.js';
import { PublicKey } from '../crypto/keys.js';
import type { LocalSigner } from '../crypto/signer.js';
import { parseVehicleManifest, verifyVehicleManifest } from '../manifest/manifest.js';
import { edSigner, fixtureKey, rsaSigner } from '../testing/builders.js';

const SHA = 'b02a' + '5d1c'.repeat(15); // "b02a…" completed to 64 hex digits
const SERIAL = 'ab12' + 'cd34'.repeat(15);
const CORRELATION = 'urn:here-ota:mtu:3b1d5a9e-7f3c-4a2b-9d8e-1f2a3b4c5d6e';

/** A document as OTA CE serves it: the canonical envelope around a signed payload given as canonical text. */
async function envelope(signedText: string, signers: LocalSigner[], method = 'ed25519'): Promise<string> {
  const data = Buffer.from(signedText, 'utf8');
  const sigs: string[] = [];
  for (const s of signers) {
    const sig = toBase64(await s.sign(data));
    sigs.push(`{"keyid":"${s.publicKey.keyId('uptane')}","method":"${s.publicKey.algorithm === 'rsa' ? 'rsassa-pss-sha256' : method}","sig":"${sig}"}`);
  }
  return `{"signatures":[${sigs.join(',')}],"signed":${signedText}}`;
}

function keysOf(...signers: LocalSigner[]) {
  return new Map(signers.map((s) => [s.publicKey.keyId('uptane'), s.publicKey] as const));
}
const roleOf = (...signers: LocalSigner[]) => ({ keyids: signers.map((s) => s.publicKey.keyId('uptane')), threshold: 1 });

describe('device-api.md examples (uptane dialect)', () => {
  it('§2.11: the Director targets.json of a device', async () => {
    const key = edSigner('director-targets', 'uptane');
    const signed =
      `{"_type":"Targets","custom":{"correlationId":"${CORRELATION}"},"expires":"2026-09-01T12:00:00Z",` +
      `"targets":{"mypkg_0.0.2":{"custom":{"ecuIdentifiers":{"${SERIAL}":{"hardwareId":"ota-ce-device"}},"uri":null},"hashes":{"sha256":"${SHA}"},"length":35445}},` +
      `"version":7}`;
    expect(canonicalString(JSON.parse(signed), 'uptane')).toBe(signed); // what OTA CE signs and serves
    const text = await envelope(signed, [key]);
    const md = parseTargets(Buffer.from(text), 'uptane');
    expect(Buffer.from(md.toBytes()).toString()).toBe(text);
    expect(md.verify(keysOf(key), roleOf(key))).toBe(1);
    expect(md.signed.correlationId).toBe(CORRELATION);
    const t = md.signed.targets.get('mypkg_0.0.2');
    expect(t?.ecuIdentifiers.get(SERIAL)).toEqual({ hardwareId: 'ota-ce-device' });
    expect(t?.uri).toBeUndefined();
    // The model writes back the same payload.
    expect(canonicalString(md.signed.toJSON('uptane'), 'uptane')).toBe(signed);
  });

  it('§2.11: the Image repository targets.json holding the same file', async () => {
    const key = rsaSigner('uptane', 'RSA_2048_A');
    const signed =
      `{"_type":"Targets","expires":"2027-08-01T10:00:00Z","targets":{"mypkg_0.0.2":{"custom":{"createdAt":"2026-08-01T10:00:00Z","hardwareIds":["ota-ce-device"],` +
      `"name":"mypkg","targetFormat":"BINARY","updatedAt":"2026-08-01T10:00:00Z","uri":null,"version":"0.0.2"},"hashes":{"sha256":"${SHA}"},"length":35445}},"version":3}`;
    const text = await envelope(signed, [key]);
    const md = parseTargets(Buffer.from(text), 'uptane');
    expect(Buffer.from(md.toBytes()).toString()).toBe(text);
    expect(md.verify(keysOf(key), roleOf(key))).toBe(1);
    const t = md.signed.targets.get('mypkg_0.0.2');
    expect(t?.hardwareIds).toEqual(['ota-ce-device']);
    expect(t?.targetFormat).toBe('BINARY');
    expect(canonicalString(md.signed.toJSON('uptane'), 'uptane')).toBe(signed);
  });

  it('§2.7: an OTA CE root with an RSA key, an extra role and consistent_snapshot', async () => {
    const rootKey = rsaSigner('uptane', 'RSA_2048_A');
    const online = edSigner('online', 'uptane');
    const pem = createPublicKey(fixtureKey('RSA_2048_A')).export({ format: 'pem', type: 'spki' }).toString();
    const rootId = rootKey.publicKey.keyId('uptane');
    const onlineId = online.publicKey.keyId('uptane');
    const keys: JsonObject = {
      [rootId]: { keytype: 'RSA', keyval: { public: pem } },
      [onlineId]: { keytype: 'ED25519', keyval: { public: online.publicKey.public } },
    };
    const roles: JsonObject = {
      'offline-updates': { keyids: [onlineId], threshold: 1 },
      root: { keyids: [rootId], threshold: 1 },
      snapshot: { keyids: [onlineId], threshold: 1 },
      targets: { keyids: [onlineId], threshold: 1 },
      timestamp: { keyids: [onlineId], threshold: 1 },
    };
    const signed = canonicalString({ _type: 'Root', consistent_snapshot: false, expires: '2027-06-01T00:00:00Z', keys, roles, version: 1 }, 'uptane');
    expect(signed).toContain('-----BEGIN PUBLIC KEY-----\\nMII'); // the PEM's newlines escaped as jsoncpp does
    const text = await envelope(signed, [rootKey]);
    const md = parseRoot(Buffer.from(text), 'uptane');
    expect(Buffer.from(md.toBytes()).toString()).toBe(text);
    expect(md.verify(md.signed.keys, md.signed.role('root'))).toBe(1);
    expect(md.signed.roles.has('offline-updates')).toBe(true);
    expect(md.signed.keys.get(rootId)?.keyId('uptane')).toBe(rootId);
    expect(canonicalString(md.signed.toJSON('uptane'), 'uptane')).toBe(signed);
  });

  it('§2.10: the Image repository timestamp and snapshot', async () => {
    const key = edSigner('image-online', 'uptane');
    const targetsHash = computeHashes(Buffer.from('targets'), ['sha256'])['sha256'];
    const snapshotSigned =
      `{"_type":"Snapshot","expires":"2026-07-01T00:00:00Z","meta":{"root.json":{"hashes":{"sha256":"${SHA}"},"length":4012,"version":2},` +
      `"supplier.json":{"hashes":{"sha256":"${SHA}"},"length":900,"version":1},"targets.json":{"hashes":{"sha256":"${targetsHash}"},"length":1520,"version":3}},"version":12}`;
    const snapshotText = await envelope(snapshotSigned, [key]);
    const snapshot = parseSnapshot(Buffer.from(snapshotText), 'uptane');
    expect(Buffer.from(snapshot.toBytes()).toString()).toBe(snapshotText);
    expect(snapshot.verify(keysOf(key), roleOf(key))).toBe(1);
    expect(snapshot.signed.meta.get('targets.json')?.version).toBe(3);

    const snapHash = computeHashes(Buffer.from(snapshotText), ['sha256'])['sha256'];
    const tsSigned = `{"_type":"Timestamp","expires":"2026-06-02T00:00:00Z","meta":{"snapshot.json":{"hashes":{"sha256":"${snapHash}"},"length":${Buffer.byteLength(snapshotText)},"version":12}},"version":40}`;
    const tsText = await envelope(tsSigned, [key]);
    const ts = parseTimestamp(Buffer.from(tsText), 'uptane');
    expect(Buffer.from(ts.toBytes()).toString()).toBe(tsText);
    expect(ts.signed.snapshot.mismatch(Buffer.from(snapshotText))).toBeUndefined();
  });

  it('reads a document that is not in canonical form (whitespace, other key order) and serves its canonical form', async () => {
    const key = edSigner('director-targets', 'uptane');
    const signed = `{"_type":"Targets","expires":"2026-09-01T12:00:00Z","targets":{},"version":7,"custom":{"vehicleId":"vin"}}`;
    const canonical = canonicalString(JSON.parse(signed), 'uptane');
    const text = (await envelope(canonical, [key])).replace(canonical, JSON.stringify(JSON.parse(signed), null, 2));
    const md = parseTargets(Buffer.from(text), 'uptane');
    expect(md.verify(keysOf(key), roleOf(key))).toBe(1); // the signature covers the canonical form
    expect(Buffer.from(md.toBytes()).toString()).toBe(await envelope(canonical, [key]));
  });

  it('§3: the vehicle manifest aktualizr sends, with an installation report', async () => {
    const primary = edSigner('aktualizr-primary', 'uptane');
    const secondary = rsaSigner('uptane', 'RSA_2048_B');
    const unknownSha = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
    // aktualizr's own key ids: sha256 of the JSON string literal of the public value (device-api.md §2.5).
    const aktualizrKeyId = (k: PublicKey): string => computeHashes(Buffer.from(JSON.stringify(k.public.replace(/\n+$/, ''))), ['sha256'])['sha256'] as string;
    const report = async (signer: LocalSigner, signedText: string) => {
      const sig = toBase64(await signer.sign(Buffer.from(signedText)));
      const method = signer.publicKey.algorithm === 'rsa' ? 'rsassa-pss' : 'ed25519';
      return `{"signatures":[{"keyid":"${aktualizrKeyId(signer.publicKey)}","method":"${method}","sig":"${sig}"}],"signed":${signedText}}`;
    };
    const primaryReport = await report(
      primary,
      `{"attacks_detected":"","ecu_serial":"${SERIAL}","installed_image":{"fileinfo":{"hashes":{"sha256":"${SHA}"},"length":35445},"filepath":"mypkg_0.0.2"},` +
        `"previous_timeserver_time":"1970-01-01T00:00:00Z","report_counter":"3","timeserver_time":"1970-01-01T00:00:00Z"}`,
    );
    const secondaryReport = await report(
      secondary,
      `{"attacks_detected":"","ecu_serial":"secondary-1","installed_image":{"fileinfo":{"hashes":{"sha256":"${unknownSha}"},"length":0},"filepath":"unknown"},` +
        `"previous_timeserver_time":"1970-01-01T00:00:00Z","timeserver_time":"1970-01-01T00:00:00Z"}`,
    );
    const installationReport =
      `{"content_type":"application/vnd.com.here.otac.installationReport.v1","report":{"correlation_id":"${CORRELATION}",` +
      `"items":[{"ecu":"${SERIAL}","result":{"code":"OK","description":"","success":true}},{"ecu":"secondary-1","result":{"code":"INSTALL_FAILED","description":"flash error","success":false}}],` +
      `"raw_report":"Installation failed","result":{"code":"ota-ce-device-s:INSTALL_FAILED","description":"one ECU failed","success":false}}}`;
    const signed = `{"ecu_version_manifests":{"${SERIAL}":${primaryReport},"secondary-1":${secondaryReport}},"installation_report":${installationReport},"primary_ecu_serial":"${SERIAL}"}`;
    expect(canonicalString(JSON.parse(signed), 'uptane')).toBe(signed);
    const text = await report(primary, signed);

    const manifest = parseVehicleManifest(Buffer.from(text));
    // Re-serialized to the same bytes.
    expect(Buffer.from(canonicalize(manifest.document, 'uptane')).toString()).toBe(text);
    expect(canonicalString(parseJson(text), 'uptane')).toBe(text);
    expect(manifest.reports.get(SERIAL)?.counter).toBe(3);
    expect(manifest.reports.get('secondary-1')?.counter).toBeUndefined();
    expect(manifest.installationReport?.result.code).toBe('ota-ce-device-s:INSTALL_FAILED');
    expect(() =>
      verifyVehicleManifest(manifest, {
        primaryEcuSerial: SERIAL,
        ecuKeys: new Map([
          [SERIAL, primary.publicKey],
          ['secondary-1', secondary.publicKey],
        ]),
      }),
    ).not.toThrow();
    // aktualizr's key ids differ from ours; the Director ignores them.
    expect(aktualizrKeyId(primary.publicKey)).not.toBe(primary.publicKey.keyId('uptane'));
    expect(PublicKey.fromJSON(primary.publicKey.toJSON(), 'uptane').equals(primary.publicKey)).toBe(true);
  });
});
