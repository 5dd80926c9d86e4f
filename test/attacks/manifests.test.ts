/**
 * Version-report and manifest attacks (A16, the Director's side, §5.3.2.1):
 * the real server's Director receives manifests changed or replayed by the
 * man in the middle, reports of a Secondary signed with a key it did not
 * register, and hand-made manifests (the server's own test device) naming
 * unknown ECUs, leaving one out, claiming a time in the future or another
 * vehicle. Each is refused, recorded as a security event visible through the
 * admin API, and changes nothing the Director believes about the vehicle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import {
  LocalSigner,
  UNKNOWN_INSTALLED_IMAGE,
  buildEcuVersionReport,
  buildVehicleManifest,
  canonicalize,
  generatePrivateKey,
  type JsonObject,
  type SignedDocument,
} from '@uptide/core';
import type { Ecu } from '@uptide/client';
import { TestDevice, makeEcu } from '../../packages/server/src/testing/harness.js';
import { ServerWorld, type Vehicle } from './harness/server-world.js';
import type { ServerAttack } from './harness/defeated.js';

let world: ServerWorld;
beforeAll(async () => {
  world = await ServerWorld.start();
});
afterAll(async () => {
  await world?.close();
});

async function refused(deviceId: string): Promise<ServerAttack[]> {
  const res = await world.ts.api<ServerAttack[]>('GET', `/api/v1/devices/${deviceId}/attacks`);
  return res.body.filter((a) => a.source === 'refused');
}

/** The ECUs the Director believes the vehicle runs. */
async function installedOnServer(deviceId: string): Promise<Record<string, string | null>> {
  const res = await world.ts.api<Array<{ id: string; image: { filepath: string } | null }>>('GET', `/api/v1/admin/devices/${deviceId}`);
  return Object.fromEntries(res.body.map((e) => [e.id, e.image?.filepath ?? null]));
}

/** A device of the server's harness (aktualizr's wire format over mTLS, straight to the gateway) with registered ECUs. */
async function handMade(ecus: number): Promise<TestDevice> {
  const deviceId = `hand-${Math.random().toString(16).slice(2, 10)}`;
  const creds = await world.credentials(deviceId);
  const dev = new TestDevice(
    world.ts.gatewayUrl,
    { deviceId, ...creds, ca: world.serverCa },
    deviceId,
    Array.from({ length: ecus }, (_, i) => makeEcu(`${deviceId}-ecu-${i}`, 'board-a')),
  );
  expect((await dev.registerEcus()).status).toBe(201);
  expect((await dev.sendManifest()).status).toBe(200);
  return dev;
}

function sendSigned(dev: TestDevice, doc: SignedDocument) {
  return dev.request('PUT', '/director/manifest', canonicalize(doc as unknown as JsonObject, 'uptane'), { 'content-type': 'application/json' });
}

describe('A16 version-report and manifest attacks', () => {
  it('A16.1 a manifest re-signed by a man in the middle with another key → refused (invalid_signature), recorded, the reports resent later', async () => {
    const v: Vehicle = await world.vehicle();
    // A valid signature, by a key that is not the Primary's.
    const { privateKey } = generateKeyPairSync('ed25519');
    const keyid = new LocalSigner(privateKey, 'uptane').publicKey.keyId('uptane');
    const resign = (body: Buffer) => {
      const doc = JSON.parse(body.toString('utf8')) as { signed: JsonObject };
      const sig = cryptoSign(null, canonicalize(doc.signed, 'uptane'), privateKey).toString('base64');
      return canonicalize({ signed: doc.signed, signatures: [{ keyid, method: 'ed25519', sig }] }, 'uptane');
    };
    const before = await installedOnServer(v.deviceId);
    const rule = v.mitm.rule({ path: '/director/manifest', device: v.deviceId, method: 'PUT', request: resign });
    const r = await v.primary.cycle();
    // The device installed what it verified; the Director could not take its word for it.
    expect(r.installed).toEqual(['fw-2.bin']);
    expect(rule.hits).toBeGreaterThan(0);
    expect((await refused(v.deviceId)).map((a) => a.code)).toContain('invalid_signature');
    expect(await installedOnServer(v.deviceId)).toEqual(before);
    expect(v.primary.store.state.pendingInstallationReport).toBeDefined();
    // The man in the middle gone, the next manifest carries the report and the Director learns the truth.
    v.mitm.clearRules();
    expect((await v.primary.cycle()).ok).toBe(true);
    expect((await installedOnServer(v.deviceId))[v.serial]).toBe('fw-2.bin');
  });

  it("A16.2 a Secondary's report signed with a key other than the one it registered → refused (invalid_signature) for that ECU", async () => {
    const registered = new LocalSigner(await generatePrivateKey('ed25519'), 'uptane');
    const other = new LocalSigner(await generatePrivateKey('ed25519'), 'uptane');
    let counter = 0;
    const secondary: Ecu = {
      serial: `sec-${Math.random().toString(16).slice(2, 10)}`,
      hardwareId: 'board-b',
      publicKey: registered.publicKey,
      installedImage: () => undefined,
      versionReport: (attacks) =>
        buildEcuVersionReport(
          { ecuSerial: secondary.serial, installedImage: UNKNOWN_INSTALLED_IMAGE, latestVerifiedTime: new Date(), counter: ++counter, attacks },
          other,
        ),
      putMetadata: async () => undefined,
      putImage: async () => undefined,
      install: async () => ({ success: false, code: 'INSTALL_FAILED', description: 'not used' }),
    };
    const v = await world.vehicle({ bare: true, secondaries: [secondary] });
    await v.primary.cycle();
    const codes = await refused(v.deviceId);
    expect(codes.map((a) => [a.code, a.ecu])).toContainEqual(['invalid_signature', secondary.serial]);
  });

  it('A16.3 a report of an ECU the inventory does not know → refused (unknown_ecu)', async () => {
    const dev = await handMade(1);
    const intruder = makeEcu('intruder-ecu', 'board-a');
    const reports = new Map<string, SignedDocument>();
    for (const e of [...dev.ecus, intruder]) {
      reports.set(
        e.serial,
        await buildEcuVersionReport({ ecuSerial: e.serial, installedImage: UNKNOWN_INSTALLED_IMAGE, latestVerifiedTime: new Date(), counter: 10 }, e.signer),
      );
    }
    const res = await sendSigned(dev, await buildVehicleManifest({ primaryEcuSerial: dev.primary.serial, reports }, dev.primary.signer));
    expect(res.status).toBe(400);
    expect((await refused(dev.deviceId)).map((a) => [a.code, a.ecu])).toContainEqual(['unknown_ecu', 'intruder-ecu']);
  });

  it('A16.4 an ECU of the inventory missing from the manifest → refused (missing_ecu_report)', async () => {
    const dev = await handMade(2);
    const only = dev.ecus[0] as (typeof dev.ecus)[number];
    const reports = new Map([
      [
        only.serial,
        await buildEcuVersionReport(
          { ecuSerial: only.serial, installedImage: UNKNOWN_INSTALLED_IMAGE, latestVerifiedTime: new Date(), counter: 10 },
          only.signer,
        ),
      ],
    ]);
    const res = await sendSigned(dev, await buildVehicleManifest({ primaryEcuSerial: only.serial, reports }, only.signer));
    expect(res.status).toBe(400);
    expect((await refused(dev.deviceId)).map((a) => a.code)).toContain('missing_ecu_report');
  });

  it("A16.5 a vehicle's earlier manifest replayed by a man in the middle → refused (replayed_report), recorded, nothing changed", async () => {
    const v = await world.vehicle();
    const first = v.mitm.sent(v.deviceId, 'PUT', '/director/manifest')[0] as Buffer;
    const before = await installedOnServer(v.deviceId);
    v.mitm.rule({ path: '/director/manifest', device: v.deviceId, method: 'PUT', request: () => first });
    await v.primary.cycle();
    expect((await refused(v.deviceId)).map((a) => a.code)).toContain('replayed_report');
    expect(await installedOnServer(v.deviceId)).toEqual(before);
    v.mitm.clearRules();
    expect((await v.primary.cycle()).ok).toBe(true);
    expect((await installedOnServer(v.deviceId))[v.serial]).toBe('fw-2.bin');
  });

  it('A16.6 a report claiming a verified time in the future → refused (implausible_time)', async () => {
    const dev = await handMade(1);
    const e = dev.primary;
    const report = await buildEcuVersionReport(
      { ecuSerial: e.serial, installedImage: UNKNOWN_INSTALLED_IMAGE, latestVerifiedTime: new Date(Date.now() + 30 * 86_400_000), counter: 10 },
      e.signer,
    );
    const res = await sendSigned(dev, await buildVehicleManifest({ primaryEcuSerial: e.serial, reports: new Map([[e.serial, report]]) }, e.signer));
    expect(res.status).toBe(400);
    expect((await refused(dev.deviceId)).map((a) => a.code)).toContain('implausible_time');
  });

  it('A16.7 a report carrying the attack indicator → recorded and shown per ECU', async () => {
    const dev = await handMade(1);
    const res = await dev.sendManifest({
      attacks: new Map([
        [dev.primary.serial, [{ code: 'ROLLBACK', message: 'timestamp version 3 is lower than the trusted 7', repository: 'director', role: 'timestamp' }]],
      ]),
    });
    expect(res.status).toBe(200);
    const reported = (await world.ts.api<ServerAttack[]>('GET', `/api/v1/devices/${dev.deviceId}/attacks`)).body.filter((a) => a.source === 'reported');
    expect(reported.map((a) => [a.code, a.ecu])).toEqual([['ROLLBACK', dev.primary.serial]]);
    // And across the namespace.
    const all = (await world.ts.api<Array<ServerAttack & { device: string }>>('GET', '/api/v1/attacks')).body;
    expect(all.some((a) => a.device === dev.deviceId && a.code === 'ROLLBACK')).toBe(true);
  });

  it('A16.9 a manifest naming another vehicle → refused (vehicle_mismatch)', async () => {
    const dev = await handMade(1);
    const e = dev.primary;
    const report = await buildEcuVersionReport(
      { ecuSerial: e.serial, installedImage: UNKNOWN_INSTALLED_IMAGE, latestVerifiedTime: new Date(), counter: 10 },
      e.signer,
    );
    const doc = await buildVehicleManifest({ primaryEcuSerial: e.serial, vehicleId: 'another-car', reports: new Map([[e.serial, report]]) }, e.signer);
    expect((await sendSigned(dev, doc)).status).toBe(400);
    expect((await refused(dev.deviceId)).map((a) => a.code)).toContain('vehicle_mismatch');
  });
});
