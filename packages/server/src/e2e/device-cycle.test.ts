/**
 * A full device cycle through the real HTTP gateway (mTLS), on SQLite and on
 * PostgreSQL: upload, provision, register, manifest, fetch and fully verify
 * metadata (with the core's procedures), download, report, assignment completed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { TrustedRepository, fullVerification, parseTargets, type RepositorySource } from '@uptide/core';
import { TestDevice, makeEcu, provisionDevice, startTestServer, type DbKind, type TestServer } from '../testing/harness.js';

function sourceFor(device: TestDevice, base: '/director' | '/repo'): RepositorySource {
  const get = async (file: string, maxBytes: number) => {
    const r = await device.request('GET', `${base}/${file}`);
    if (r.status !== 200) throw new Error(`GET ${base}/${file}: ${r.status} ${r.body.toString()}`);
    if (r.body.length > maxBytes) throw new Error('too large');
    return new Uint8Array(r.body);
  };
  return {
    async root(version, maxBytes) {
      const r = await device.request('GET', `${base}/${version}.root.json`);
      if (r.status === 404) return undefined;
      if (r.status !== 200) throw new Error(`root ${version}: ${r.status}`);
      if (r.body.length > maxBytes) throw new Error('too large');
      return new Uint8Array(r.body);
    },
    timestamp: (max) => get('timestamp.json', max),
    snapshot: (_v, max) => get('snapshot.json', max),
    targets: (role, _v, max) => get(role === 'targets' ? 'targets.json' : `delegations/${role}.json`, max),
  };
}

for (const db of ['sqlite', 'postgres'] as DbKind[]) {
  describe(`device cycle on ${db}`, () => {
    let ts: TestServer;
    const image = randomBytes(100_000);
    const sha256 = createHash('sha256').update(image).digest('hex');

    beforeAll(async () => {
      ts = await startTestServer({ db });
    });
    afterAll(async () => {
      await ts?.close();
    });

    it('updates a Primary and a Secondary end to end', async () => {
      // An operator uploads an image for two hardware types.
      const up = await ts.api<{ filename: string; hashes: Record<string, string> }>(
        'PUT',
        '/api/v1/user_repo/targets/firmware-1.0.bin?name=firmware&version=1.0&hardwareIds=board-a,board-b',
        new Uint8Array(image),
      );
      expect(up.status).toBe(201);
      expect(up.body.hashes['sha256']).toBe(sha256);

      // …provisions a device; it registers two ECUs over mTLS.
      const creds = await provisionDevice(ts, 'car-1');
      const dev = new TestDevice(ts.gatewayUrl, creds, 'car-1', [makeEcu('primary-1', 'board-a'), makeEcu('secondary-1', 'board-b', 'rsa')]);
      expect((await dev.registerEcus()).status).toBe(201);
      expect((await dev.registerEcus()).status).toBe(200);
      expect(
        (
          await dev.request('PUT', '/system_info/network', JSON.stringify({ local_ipv4: '10.0.0.2', mac: 'aa:bb', hostname: 'car' }), {
            'content-type': 'application/json',
          })
        ).status,
      ).toBe(204);
      expect((await dev.request('POST', '/system_info/config', '[pacman]\ntype = "none"\n', { 'content-type': 'application/toml' })).status).toBe(204);
      expect((await dev.sendManifest()).status).toBe(200);

      // Nothing assigned: empty Director targets that name the vehicle.
      const empty = await dev.request('GET', '/director/targets.json');
      expect(empty.status).toBe(200);
      const emptyTargets = parseTargets(empty.body, 'uptane');
      expect(emptyTargets.signed.targets.size).toBe(0);
      expect(emptyTargets.signed.vehicleId).toBe('car-1');
      // Unchanged metadata is cheap: 304 with the ETag.
      const etag = empty.headers['etag'] as string;
      expect((await dev.request('GET', '/director/targets.json', undefined, { 'if-none-match': etag })).status).toBe(304);

      // The operator launches the update.
      const launch = await ts.api<{ id: string; affected: string[] }>('POST', '/api/v1/updates', { image: 'firmware@1.0', devices: ['car-1'] });
      expect(launch.status).toBe(201);
      expect(launch.body.affected).toEqual(['car-1']);

      // The device verifies everything the way the Standard says (full verification).
      const now = new Date();
      const directorRoot = (await dev.request('GET', '/director/1.root.json')).body;
      const imageRoot = (await dev.request('GET', '/repo/1.root.json')).body;
      const result = await fullVerification({
        director: new TrustedRepository({ root: new Uint8Array(directorRoot) }, { dialect: 'uptane', repository: 'director', now }),
        directorSource: sourceFor(dev, '/director'),
        image: new TrustedRepository({ root: new Uint8Array(imageRoot) }, { dialect: 'uptane', repository: 'image', now }),
        imageSource: sourceFor(dev, '/repo'),
        vehicle: { vehicleId: 'car-1', ecus: new Map(dev.ecus.map((e) => [e.serial, e.hardwareId])) },
        installed: new Map(),
      });
      expect(result.updates.map((u) => u.ecuSerial).sort()).toEqual(['primary-1', 'secondary-1']);
      expect(result.correlationId).toBe(`urn:here-ota:mtu:${launch.body.id}`);

      // In flight now: it cannot be cancelled any more.
      expect((await ts.api('DELETE', '/api/v1/assignments/car-1')).status).toBe(409);

      // Download, whole and with Range.
      const whole = await dev.request('GET', '/repo/targets/firmware-1.0.bin');
      expect(whole.status).toBe(200);
      expect(createHash('sha256').update(whole.body).digest('hex')).toBe(sha256);
      const part = await dev.request('GET', '/repo/targets/firmware-1.0.bin', undefined, { range: 'bytes=1000-' });
      expect(part.status).toBe(206);
      expect(part.body.equals(image.subarray(1000))).toBe(true);
      expect(part.headers['content-range']).toBe(`bytes 1000-${image.length - 1}/${image.length}`);

      // Install and report.
      for (const e of dev.ecus) e.installed = { filename: 'firmware-1.0.bin', length: image.length, hashes: { sha256 } };
      const report = await dev.sendManifest({
        installationReport: {
          correlationId: result.correlationId as string,
          result: { success: true, code: 'OK', description: 'installed' },
          rawReport: 'ok',
          items: dev.ecus.map((e) => ({ ecu: e.serial, result: { success: true, code: 'OK', description: '' } })),
        },
      });
      expect(report.status).toBe(200);
      const status = await ts.api<{ counts: Record<string, number>; devices: Array<{ status: string }> }>('GET', `/api/v1/updates/${launch.body.id}`);
      expect(status.body.devices[0]?.status).toBe('completed');
      expect(status.body.counts['completed']).toBe(1);

      // Director targets are empty again, at a higher version.
      const after = parseTargets((await dev.request('GET', '/director/targets.json')).body, 'uptane');
      expect(after.signed.targets.size).toBe(0);
      expect(after.signed.version).toBeGreaterThan(emptyTargets.signed.version);

      const listed = await ts.api<{ values: Array<{ id: string; counts: Record<string, number> }> }>('GET', '/api/v1/updates');
      expect(listed.body.values.find((u) => u.id === launch.body.id)?.counts['completed']).toBe(1);
      const stats = await ts.api<{ byStatus: Record<string, number> }>('GET', '/api/v1/fleet/stats');
      expect(stats.body.byStatus['UpToDate']).toBeGreaterThanOrEqual(1);
      const details = await ts.api<{ deviceStatus: string; ecus: Array<{ installedImage: { filepath: string } }> }>('GET', '/api/v1/devices/car-1');
      expect(details.body.deviceStatus).toBe('UpToDate');
      expect(details.body.ecus.map((e) => e.installedImage.filepath)).toEqual(['firmware-1.0.bin', 'firmware-1.0.bin']);
    });

    it('refuses a replayed manifest and one signed by the wrong key, changing nothing', async () => {
      const creds = await provisionDevice(ts, 'car-2');
      const dev = new TestDevice(ts.gatewayUrl, creds, 'car-2', [makeEcu('p2', 'board-a')]);
      await dev.registerEcus();
      const first = await dev.manifest();
      expect((await dev.sendDocument(first)).status).toBe(200);
      // An identical resend is acknowledged without effect; a lower counter is a replay.
      expect((await dev.sendDocument(first)).status).toBe(200);
      const replay = await dev.sendManifest({ counterOverride: 0 });
      expect(replay.status).toBe(409);
      expect(replay.json<{ code: string }>().code).toBe('replayed_report');
      const impostor = new TestDevice(ts.gatewayUrl, creds, 'car-2', [makeEcu('p2', 'board-a')]);
      impostor.primary.counter = 100;
      const bad = await impostor.sendManifest();
      expect(bad.status).toBe(400);
      expect(bad.json<{ code: string }>().code).toBe('invalid_signature');
      const attacks = await ts.api<Array<{ code: string; source: string }>>('GET', '/api/v1/devices/car-2/attacks');
      expect(attacks.body.map((a) => a.code)).toEqual(expect.arrayContaining(['replayed_report', 'invalid_signature']));
    });

    it('refuses unknown, missing and revoked certificates', async () => {
      const creds = await provisionDevice(ts, 'car-3');
      const dev = new TestDevice(ts.gatewayUrl, creds, 'car-3', [makeEcu('p3', 'board-a')]);
      expect((await dev.registerEcus()).status).toBe(201);
      const noCert = new TestDevice(ts.gatewayUrl, { ...creds, cert: '', key: '' } as never, 'car-3', dev.ecus);
      const r = await noCert.request('GET', '/director/targets.json').catch(() => ({ status: 0 }));
      expect([0, 401]).toContain(r.status);
      const list = await ts.api<Array<{ serial: string }>>('GET', '/api/v1/devices/car-3/credentials');
      expect((await ts.api('DELETE', `/api/v1/devices/car-3/credentials/${list.body[0]?.serial}`)).status).toBe(204);
      const revoked = await dev.request('GET', '/director/targets.json');
      expect(revoked.status).toBe(403);
      expect(revoked.json<{ code: string }>().code).toBe('certificate_revoked');
    });
  });
}
