/**
 * The device gateway beyond the happy path: shared-credential
 * auto-provisioning, bootstrap certificates kept to POST /devices, identity
 * only from the certificate, ECU replacement, bad device input, and the
 * development plain-HTTP mode.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request as httpsRequest } from 'node:https';
import yauzl from 'yauzl';
import { parseTargets } from '@uptide/core';
import { TestDevice, deviceRequest, makeEcu, provisionDevice, startTestServer, type TestServer, type Reply } from '../testing/harness.js';

function unzip(buf: Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const out = new Map<string, Buffer>();
      zip.readEntry();
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return reject(e);
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            out.set(entry.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(out));
    });
  });
}

function pfxRequest(url: string, pfx: Buffer, ca: string, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      new URL(url + path),
      { method, pfx, passphrase: '', ca, agent: false, headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const b = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b, json: <T>() => JSON.parse(b.toString()) as T });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('device gateway', () => {
  let ts: TestServer;
  beforeAll(async () => {
    ts = await startTestServer();
  });
  afterAll(async () => {
    await ts?.close();
  });

  it('auto-provisions a device with the fleet credentials (PKCS#12, empty password, key + cert + CA)', async () => {
    const zip = await unzip((await ts.api<Buffer>('POST', '/api/v1/provisioning/credentials')).raw);
    const boot = zip.get('autoprov_credentials.p12') as Buffer;
    const serverCa = (zip.get('server_ca.pem') as Buffer).toString();
    // The bootstrap certificate may only ask for a device.
    const forbidden = await pfxRequest(ts.gatewayUrl, boot, serverCa, 'GET', '/director/targets.json');
    expect(forbidden.status).toBe(403);
    const res = await pfxRequest(ts.gatewayUrl, boot, serverCa, 'POST', '/devices', JSON.stringify({ deviceId: 'curious-fish-42', ttl: '36000' }));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-pkcs12');
    expect(res.body.length).toBeLessThan(64 * 1024);
    // The new credentials work as a device.
    const asDevice = await pfxRequest(ts.gatewayUrl, res.body, serverCa, 'GET', '/director/targets.json');
    expect(asDevice.status).toBe(200);
    expect(parseTargets(asDevice.body, 'uptane').signed.vehicleId).toBe('curious-fish-42');
    // The same id again is taken: aktualizr then picks another.
    const again = await pfxRequest(ts.gatewayUrl, boot, serverCa, 'POST', '/devices', JSON.stringify({ deviceId: 'curious-fish-42', ttl: '36000' }));
    expect(again.status).toBe(409);
    expect(again.json<{ code: string }>().code).toBe('device_already_registered');
    for (const bad of ['{"deviceId":"../x","ttl":"1"}', '{"deviceId":"ok","ttl":"forever"}', '{}', '[]']) {
      expect((await pfxRequest(ts.gatewayUrl, boot, serverCa, 'POST', '/devices', bad)).status).toBe(400);
    }
    // Revoking the bootstrap certificate stops further auto-provisioning.
    const boots = await ts.api<Array<{ serial: string }>>('GET', '/api/v1/provisioning/credentials');
    for (const b of boots.body) await ts.api('DELETE', `/api/v1/provisioning/credentials/${b.serial}`);
    const revoked = await pfxRequest(ts.gatewayUrl, boot, serverCa, 'POST', '/devices', JSON.stringify({ deviceId: 'other-fish-1', ttl: '36000' }), {
      connection: 'close',
    });
    expect(revoked.status).toBe(403);
  });

  it('takes identity only from the certificate: headers and bodies naming another device change nothing', async () => {
    const a = new TestDevice(ts.gatewayUrl, await provisionDevice(ts, 'dev-a'), 'dev-a', [makeEcu('a1', 'hw')]);
    const b = new TestDevice(ts.gatewayUrl, await provisionDevice(ts, 'dev-b'), 'dev-b', [makeEcu('b1', 'hw')]);
    await a.registerEcus();
    await b.registerEcus();
    const spoof = await a.request('GET', '/director/targets.json', undefined, {
      'x-ats-device-uuid': 'dev-b',
      'x-ats-namespace': 'other',
      'air-client-id': 'dev-b',
    });
    expect(parseTargets(spoof.body, 'uptane').signed.vehicleId).toBe('dev-a');
    // A's key cannot sign for B's ECUs, so a manifest naming B's primary is refused.
    const forged = new TestDevice(ts.gatewayUrl, a.creds, 'dev-a', [{ ...b.primary, signer: a.primary.signer, key: a.primary.key }]);
    const r = await forged.sendManifest();
    expect(r.status).toBe(400);
    expect(r.json<{ code: string }>().code).toBe('primary_mismatch');
    // Admin routes are not on the gateway at all.
    expect((await a.request('GET', '/api/v1/devices')).status).toBe(404);
  });

  it('records an ECU replacement and refuses manifests with unknown or missing ECUs', async () => {
    const dev = new TestDevice(ts.gatewayUrl, await provisionDevice(ts, 'dev-r'), 'dev-r', [makeEcu('r1', 'hw'), makeEcu('r2', 'hw2')]);
    expect((await dev.registerEcus()).status).toBe(201);
    const missing = new TestDevice(ts.gatewayUrl, dev.creds, 'dev-r', [dev.ecus[0] as never]);
    const m = await missing.sendManifest();
    expect(m.status).toBe(400);
    expect(m.json<{ code: string }>().code).toBe('missing_ecu_report');
    const extra = new TestDevice(ts.gatewayUrl, dev.creds, 'dev-r', [...dev.ecus, makeEcu('r3', 'hw3')]);
    const u = await extra.sendManifest();
    expect(u.status).toBe(400);
    expect(u.json<{ code: string }>().code).toBe('unknown_ecu');
    // Replace r2 with a new ECU r3: recorded.
    const replaced = new TestDevice(ts.gatewayUrl, dev.creds, 'dev-r', [dev.ecus[0] as never, makeEcu('r3', 'hw3')]);
    expect((await replaced.registerEcus()).status).toBe(200);
    const details = await ts.api<{ ecuReplacements: unknown[]; ecus: Array<{ ecuSerial: string }> }>('GET', '/api/v1/devices/dev-r');
    expect(details.body.ecuReplacements).toHaveLength(1);
    expect(details.body.ecus.map((e) => e.ecuSerial).sort()).toEqual(['r1', 'r3']);
    expect((await replaced.sendManifest()).status).toBe(200);
  });

  it.each([
    ['ECUs: not a list', '/director/ecus', 'POST', { primary_ecu_serial: 'x', ecus: 'nope' }],
    [
      'ECUs: primary not listed',
      '/director/ecus',
      'POST',
      { primary_ecu_serial: 'x', ecus: [{ ecu_serial: 'y', hardware_identifier: 'h', clientKey: { keytype: 'ED25519', keyval: { public: 'aa' } } }] },
    ],
    [
      'ECUs: bad key',
      '/director/ecus',
      'POST',
      { primary_ecu_serial: 'x', ecus: [{ ecu_serial: 'x', hardware_identifier: 'h', clientKey: { keytype: 'ED25519', keyval: { public: 'zz' } } }] },
    ],
    [
      'ECUs: small RSA key',
      '/director/ecus',
      'POST',
      { primary_ecu_serial: 'x', ecus: [{ ecu_serial: 'x', hardware_identifier: 'h', clientKey: { keytype: 'RSA', keyval: { public: 'not pem' } } }] },
    ],
    ['network info without hostname', '/system_info/network', 'PUT', { local_ipv4: '1', mac: 'm' }],
    ['packages not a list', '/core/installed', 'PUT', { name: 'x' }],
    ['events not a list', '/events', 'POST', { id: 'x' }],
    ['events with a bad entry', '/events', 'POST', [{ id: 1 }]],
    ['a manifest that is not signed', '/director/manifest', 'PUT', { signed: {}, signatures: [] }],
    ['a manifest with a float', '/director/manifest', 'PUT', { signed: { x: 1.5 }, signatures: [] }],
  ])('answers 400 to %s', async (_name, path, method, body) => {
    const dev = new TestDevice(ts.gatewayUrl, await provisionDevice(ts, `bad-${Math.random().toString(36).slice(2, 10)}`), 'x', [makeEcu('x', 'h')]);
    const r = await dev.request(method, path, JSON.stringify(body), { 'content-type': 'application/json' });
    expect(r.status).toBe(400);
    expect(typeof r.json<{ code: string }>().code).toBe('string');
  });

  it('stores aktualizr events once, however often they are resent', async () => {
    const dev = new TestDevice(ts.gatewayUrl, await provisionDevice(ts, 'dev-e'), 'dev-e', [makeEcu('e1', 'hw')]);
    await dev.registerEcus();
    const events = [
      {
        id: 'ev-1',
        deviceTime: '2026-01-01T00:00:00Z',
        eventType: { id: 'EcuDownloadStarted', version: 0 },
        event: { ecu: 'e1', correlationId: 'urn:here-ota:mtu:1' },
      },
      {
        id: 'ev-2',
        deviceTime: '2026-01-01T00:00:01Z',
        eventType: { id: 'EcuDownloadCompleted', version: 0 },
        event: { ecu: 'e1', correlationId: 'urn:here-ota:mtu:1', success: true },
      },
    ];
    expect((await dev.json('POST', '/events', events)).status).toBe(204);
    expect((await dev.json('POST', '/events/', events)).status).toBe(204);
    const listed = await ts.api<Array<{ id: string }>>('GET', '/api/v1/devices/dev-e/events?correlationId=urn:here-ota:mtu:1');
    expect(listed.body.map((e) => e.id).sort()).toEqual(['ev-1', 'ev-2']);
  });
});

describe('plain-HTTP development gateway', () => {
  let ts: TestServer;
  beforeAll(async () => {
    ts = await startTestServer({ plainHttp: true });
  });
  afterAll(async () => {
    await ts?.close();
  });

  it('serves devices by /d/<id> and only registered ones', async () => {
    await ts.api('POST', '/api/v1/devices', { deviceId: 'dev-p' });
    const dev = new TestDevice(ts.gatewayUrl, undefined, 'dev-p', [makeEcu('p1', 'hw')], true);
    expect((await dev.registerEcus()).status).toBe(201);
    expect((await dev.request('GET', '/director/targets.json')).status).toBe(200);
    expect((await deviceRequest(ts.gatewayUrl, undefined, 'GET', '/d/nobody/director/targets.json')).status).toBe(403);
    expect((await deviceRequest(ts.gatewayUrl, undefined, 'GET', '/director/targets.json')).status).toBe(404);
  });
});
