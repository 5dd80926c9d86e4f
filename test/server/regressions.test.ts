/**
 * One test per server finding of the hostility work (docs/security-server.md,
 * "Findings fixed"): each failed before its fix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import { startServer } from '../../packages/server/src/app.js';
import { join } from 'node:path';
import { startTestServer, type DbKind, type TestServer } from '../../packages/server/src/testing/harness.js';
import { FileBlobStore } from '../../packages/server/src/blobs/blob-store.js';
import type { TestDevice } from '../../packages/server/src/testing/harness.js';
import { createHash, generateKeyPairSync } from 'node:crypto';
import {
  LocalSigner,
  Metadata,
  TargetFile,
  Targets,
  buildEcuVersionReport,
  buildVehicleManifest,
  expiresIn,
  parseTargets,
  privateKeyFromPem,
  type AttackReport,
  type InstallationReport,
  type SignedDocument,
} from '@uptide/core';
import { Endpoint, apiFor, blobFiles, dbState, errorShapeViolation, json, setupFixtures, stateChanges, type Fixtures } from './support.js';

/** Writes raw bytes on a TCP connection and returns everything the server sends until it closes. */
function rawExchange(url: string, data: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = connect(Number(u.port), u.hostname, () => s.write(data));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    s.on('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('raw exchange timed out')));
  });
}

function bodyOf(raw: string): { status: number; body: unknown; contentType: string } {
  const [head, ...rest] = raw.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head ?? '')?.[1]);
  const contentType = /content-type: ([^\r\n]+)/i.exec(head ?? '')?.[1] ?? '';
  return { status, body: JSON.parse(rest.join('\r\n\r\n')), contentType };
}

describe('regressions on sqlite', () => {
  let ts: TestServer;
  let fx: Fixtures;
  let admin: Endpoint;
  const auth = () => ({ authorization: `Bearer ${fx.token}` });

  beforeAll(async () => {
    ts = await startTestServer({ config: { maxImageBytes: 64 * 1024 } });
    fx = await setupFixtures(ts);
    admin = new Endpoint(ts.adminUrl);
  });
  afterAll(async () => {
    admin?.close();
    await ts?.close();
  });

  it('answers requests Node refuses before routing (oversized headers, bad request line, unknown method) with {code, message}', async () => {
    const huge = await rawExchange(ts.adminUrl, `GET /api/v1/devices/${'x'.repeat(17_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(bodyOf(huge)).toMatchObject({ status: 431, body: { code: 'headers_too_large' }, contentType: 'application/json' });
    const garbage = await rawExchange(ts.adminUrl, 'THIS IS NOT HTTP\r\n\r\n');
    expect(bodyOf(garbage)).toMatchObject({ status: 400, body: { code: 'malformed_request' } });
    const method = await admin.call({ method: 'FOO', path: '/healthz' });
    expect(method.status).toBe(400);
    expect(errorShapeViolation('FOO', method)).toBeUndefined();
  });

  it('answers an unsupported Expect header with a JSON 417', async () => {
    const res = await admin.call({ method: 'GET', path: '/healthz', headers: { expect: 'something-else' } });
    expect(res.status).toBe(417);
    expect(json(res)).toMatchObject({ code: 'expectation_failed' });
  });

  it('treats an offset beyond any list as an empty page, and refuses non-finite numbers in query strings', async () => {
    for (const path of ['/api/v1/images', '/api/v1/updates', '/api/v1/devices', '/api/v1/admin/devices']) {
      const res = await admin.call({ method: 'GET', path: `${path}?offset=99999999999999999999999`, headers: auth() });
      expect(res.status, path).toBe(200);
      expect((json(res) as { values: unknown[] }).values).toEqual([]);
    }
    for (const path of [
      '/api/v1/images?limit=1e400',
      '/api/v1/images?offset=Infinity',
      `/api/v1/devices/${fx.device.deviceId}/events?limit=1e400`,
      '/api/v1/attacks?limit=Infinity',
      `/api/v1/devices/${fx.device.deviceId}/installation_history?limit=-Infinity`,
    ]) {
      const res = await admin.call({ method: 'GET', path, headers: auth() });
      expect(res.status, path).toBe(400);
      expect(json(res)).toMatchObject({ code: 'invalid_request' });
    }
  });

  it('closes the connection of an upload refused half-way, so the next request on it is not stuck behind the unread body', async () => {
    const body = Buffer.alloc(1024 * 1024 + 30, 120);
    for (let i = 0; i < 3; i++) {
      const res = await admin.call({
        method: 'PUT',
        path: '/api/v1/user_repo/targets/too-big.bin?hardwareIds=fz-board',
        headers: { ...auth(), 'content-type': 'application/octet-stream' },
        body,
      });
      expect(res.status).toBe(413);
      expect(res.headers['connection']).toBe('close');
      // Same keep-alive agent: this used to wait forever.
      expect((await admin.call({ method: 'GET', path: '/healthz' }, 3000)).status).toBe(200);
    }
    expect(blobFiles(ts.dataDir).filter((f) => f.startsWith('tmp'))).toEqual([]);
  });

  it('answers malformed or truncated multipart uploads with 400, keeping nothing', async () => {
    const b = 'boundary42';
    const part = (field: string) =>
      Buffer.from(
        `--${b}\r\ncontent-disposition: form-data; name="${field}"; filename="x.bin"\r\ncontent-type: application/octet-stream\r\n\r\nimage\r\n--${b}--\r\n`,
      );
    const fields = Buffer.from(Array.from({ length: 11 }, (_, i) => `--${b}\r\ncontent-disposition: form-data; name="f${i}"\r\n\r\nv\r\n`).join(''));
    const cases: Array<[string, Buffer, string]> = [
      ['/api/v1/user_repo/targets/mp.bin?hardwareIds=fz-board', part('file').subarray(0, part('file').length - 30), `multipart/form-data; boundary=${b}`],
      ['/api/v1/user_repo/targets/mp.bin?hardwareIds=fz-board', part('file'), 'multipart/form-data'],
      ['/api/v1/user_repo/uploads/mp.bin', Buffer.concat([fields, part('file')]), `multipart/form-data; boundary=${b}`],
    ];
    const before = await dbState(ts);
    const blobs = blobFiles(ts.dataDir);
    for (const [path, body, contentType] of cases) {
      const res = await admin.call({ method: 'PUT', path, headers: { ...auth(), 'content-type': contentType }, body });
      expect(res.status, path).toBe(400);
      expect(['invalid_upload_body', 'missing_file']).toContain((json(res) as { code: string }).code);
    }
    expect(stateChanges(before, await dbState(ts))).toEqual([]);
    expect(blobFiles(ts.dataDir)).toEqual(blobs);
  });

  it('refuses to start on an empty generated passphrase file instead of sealing keys with an empty passphrase', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'uptide-empty-passphrase-'));
    try {
      writeFileSync(join(dataDir, 'key-passphrase'), '\n');
      const config = { ...ts.config, dataDir, databaseUrl: `sqlite:${join(dataDir, 'uptide.db')}`, keyPassphrase: undefined, httpPort: 0, devicePort: 0 };
      await expect(startServer(config, { logDestination: new Writable({ write: (_c, _e, cb) => cb() }) })).rejects.toThrow(/key-passphrase is empty/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('completes a namespace whose creation was cut short before its token was made', async () => {
    await ts.server.services.namespaces.create('half-made');
    const api = apiFor(ts, ts.token);
    const res = await api<{ token: string }>('POST', '/api/v1/namespaces', { name: 'half-made' });
    expect(res.status).toBe(201);
    expect((await apiFor(ts, res.body.token)<{ namespace: string }>('GET', '/api/v1/whoami')).body.namespace).toBe('half-made');
    // A complete one stays a conflict.
    expect((await api('POST', '/api/v1/namespaces', { name: 'half-made' })).status).toBe(409);
  });

  it('answers an unsatisfiable Range on image downloads with a JSON 416 (admin and device)', async () => {
    const dev = new Endpoint(ts.gatewayUrl, { cert: fx.device.creds?.cert, key: fx.device.creds?.key, ca: fx.serverCa });
    try {
      for (const range of ['bytes=5-1', 'bytes=4096-', 'bytes=-0', 'bytes=99999999999999999999-']) {
        for (const [ep, path, headers] of [
          [admin, `/api/v1/user_repo/targets/${fx.image.filename}`, auth()],
          [dev, `/repo/targets/${fx.image.filename}`, {}],
        ] as const) {
          const res = await ep.call({ method: 'GET', path, headers: { ...headers, range } });
          expect(res.status, `${path} ${range}`).toBe(416);
          expect(res.headers['content-range']).toBe(`bytes */${fx.image.length}`);
          expect(json(res)).toMatchObject({ code: 'range_not_satisfiable' });
        }
      }
    } finally {
      dev.close();
    }
  });

  it('creates no device when the public key of a credentials request is refused', async () => {
    const before = await dbState(ts);
    const res = await admin.call({
      method: 'POST',
      path: '/api/v1/devices/never-created/credentials',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ publicKey: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' })),
    });
    expect(res.status).toBe(400);
    expect(json(res)).toMatchObject({ code: 'invalid_public_key' });
    expect(stateChanges(before, await dbState(ts))).toEqual([]);
    expect((await apiFor(ts, fx.token)('GET', '/api/v1/devices/never-created')).status).toBe(404);
  });

  it('keeps no blob of a refused empty image, and sweeps unfinished uploads a crash left behind', async () => {
    const stale = join(ts.dataDir, 'blobs', 'tmp', 'left-by-a-crash');
    mkdirSync(join(ts.dataDir, 'blobs', 'tmp'), { recursive: true });
    writeFileSync(stale, 'half an image');
    const old = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    utimesSync(stale, old, old);
    const fresh = join(ts.dataDir, 'blobs', 'tmp', 'another-instance-uploading');
    writeFileSync(fresh, 'in progress');
    const before = blobFiles(ts.dataDir).filter((f) => !f.startsWith('tmp'));
    const res = await admin.call({
      method: 'PUT',
      path: '/api/v1/user_repo/targets/empty.bin?hardwareIds=fz-board',
      headers: { ...auth(), 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(0),
    });
    expect(res.status).toBe(400);
    expect(json(res)).toMatchObject({ code: 'empty_image' });
    expect(blobFiles(ts.dataDir).filter((f) => !f.startsWith('tmp'))).toEqual(before);
    // A store sweeps old unfinished uploads on its first upload (as after a restart), and leaves recent ones alone.
    const store = new FileBlobStore(join(ts.dataDir, 'blobs'));
    await store.put(
      (async function* () {
        yield new Uint8Array([1]);
      })(),
    );
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
  });

  it('leaves no empty file behind when an upload fails before its file is even open (fuzzing found it: a truncated multipart body)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uptide-blobs-'));
    const store = new FileBlobStore(dir);
    for (let i = 0; i < 20; i++) {
      // A source that fails on its first read, before the store's file has finished opening.
      const failing: AsyncIterable<Uint8Array> = {
        [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error('Premature close')) }),
      };
      await expect(store.put(failing)).rejects.toThrow('Premature close');
    }
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });
});

/** Signs a vehicle manifest of `d` whose reports carry what the test gives (nonce, attacks, an installation report). */
async function craftedManifest(
  d: TestDevice,
  options: { nonce?: string; attacks?: AttackReport[]; installationReport?: InstallationReport; extraSerial?: string } = {},
): Promise<string> {
  const reports = new Map<string, SignedDocument>();
  for (const e of [...d.ecus, ...(options.extraSerial ? [{ ...d.primary, serial: options.extraSerial }] : [])]) {
    e.counter++;
    reports.set(
      e.serial,
      await buildEcuVersionReport(
        {
          ecuSerial: e.serial,
          installedImage: e.installed,
          latestVerifiedTime: new Date(),
          counter: e.counter,
          ...(e === d.primary && options.nonce !== undefined ? { nonce: options.nonce } : {}),
          ...(e === d.primary && options.attacks ? { attacks: options.attacks } : {}),
        },
        e.signer,
      ),
    );
  }
  const doc = await buildVehicleManifest(
    { primaryEcuSerial: d.primary.serial, reports, ...(options.installationReport ? { installationReport: options.installationReport } : {}) },
    d.primary.signer,
  );
  return JSON.stringify(doc);
}

for (const db of ['sqlite', 'postgres'] as DbKind[]) {
  describe(`regressions on ${db}: values the database cannot store as they are`, () => {
    let ts: TestServer;
    let fx: Fixtures;
    let admin: Endpoint;
    let device: Endpoint;
    const auth = () => ({ authorization: `Bearer ${fx.token}` });
    const post = (ep: Endpoint, method: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
      ep.call({
        method,
        path,
        headers: { ...(ep === admin ? auth() : {}), 'content-type': 'application/json', ...headers },
        body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
      });

    beforeAll(async () => {
      ts = await startTestServer({ db });
      fx = await setupFixtures(ts);
      admin = new Endpoint(ts.adminUrl);
      device = new Endpoint(ts.gatewayUrl, { cert: fx.device.creds?.cert, key: fx.device.creds?.key, ca: fx.serverCa });
    });
    afterAll(async () => {
      admin?.close();
      device?.close();
      await ts?.close();
    });

    it('refuses NUL characters in URLs and bodies with 400', async () => {
      for (const path of ['/api/v1/devices/a%00b', '/api/v1/devices?nameContains=%00', '/api/v1/images/x%00y']) {
        const res = await admin.call({ method: 'GET', path, headers: auth() });
        expect(res.status, path).toBe(400);
      }
      expect((await device.call({ method: 'GET', path: '/repo/targets/a%00b' })).status).toBe(400);
      const body = await post(admin, 'POST', '/api/v1/devices', { deviceId: 'nul-dev', deviceName: 'a\u0000b' });
      expect(body.status).toBe(400);
      expect(json(body)).toMatchObject({ code: 'malformed_json' });
      const config = await device.call({
        method: 'POST',
        path: '/system_info/config',
        headers: { 'content-type': 'application/toml' },
        body: Buffer.from('[a]\nb = "\u0000"\n'),
      });
      expect(config.status).toBe(400);
      expect((await post(device, 'PUT', '/system_info', { key: 'a\u0000' })).status).toBe(400);
    });

    it('keeps events whose ECU or correlation id is longer than its column, and refuses a version beyond 32 bits', async () => {
      const long = [
        {
          id: `long-${db}`,
          deviceTime: '2026-01-01T00:00:00Z',
          eventType: { id: 'EcuDownloadStarted', version: 0 },
          event: { ecu: 'e'.repeat(100), correlationId: `urn:x:${'c'.repeat(300)}` },
        },
      ];
      expect((await post(device, 'POST', '/events', long)).status).toBe(204);
      const listed = json(await admin.call({ method: 'GET', path: `/api/v1/devices/${fx.device.deviceId}/events`, headers: auth() })) as Array<{
        id: string;
        payload: { ecu: string };
      }>;
      expect(listed.find((e) => e.id === `long-${db}`)?.payload.ecu).toBe('e'.repeat(100));
      const big = [{ ...long[0], id: 'big-version', eventType: { id: 'X', version: 2 ** 31 } }];
      expect((await post(device, 'POST', '/events', big)).status).toBe(400);
    });

    it('records reported attacks, long nonces and installation reports whatever their length, and still catches a reused long nonce', async () => {
      const d = fx.device;
      const nonce = 'n'.repeat(300);
      const attacks = [{ code: 'X'.repeat(100) as never, message: 'm'.repeat(3000), repository: 'r'.repeat(50), role: 'o'.repeat(300) }];
      const installationReport: InstallationReport = {
        correlationId: `urn:x:${'c'.repeat(300)}`,
        result: { success: false, code: 'C'.repeat(300), description: 'failed' },
        rawReport: '',
        items: [],
      };
      const res = await post(device, 'PUT', '/director/manifest', await craftedManifest(d, { nonce, attacks, installationReport }));
      expect(res.status, res.body.toString()).toBe(200);
      const recorded = json(await admin.call({ method: 'GET', path: `/api/v1/devices/${d.deviceId}/attacks`, headers: auth() })) as Array<{
        source: string;
        code: string;
      }>;
      expect(recorded.find((a) => a.source === 'reported')?.code).toBe('X'.repeat(64));
      const again = await post(device, 'PUT', '/director/manifest', await craftedManifest(d, { nonce }));
      expect(again.status).toBe(409);
      expect(json(again)).toMatchObject({ code: 'replayed_report' });
      // A report of an unknown ECU with a serial longer than the column: refused and recorded, not a server error.
      const unknown = await post(device, 'PUT', '/director/manifest', await craftedManifest(d, { extraSerial: 's'.repeat(100) }));
      expect(unknown.status).toBe(400);
      expect(json(unknown)).toMatchObject({ code: 'unknown_ecu' });
    });

    it('refuses external images whose length or release counter is beyond a safe integer', async () => {
      const base = { uri: 'https://example.com/a.bin', checksum: { method: 'sha256', hash: 'ab'.repeat(32) }, length: 10, hardwareIds: ['fz-board'] };
      for (const [field, value] of [
        ['length', '1e300'],
        ['releaseCounter', '1e300'],
        ['length', '9007199254740992'],
      ] as const) {
        const text = JSON.stringify({ ...base, [field]: 0 }).replace(`"${field}":0`, `"${field}":${value}`);
        const res = await post(admin, 'POST', '/api/v1/user_repo/targets/huge.bin', text);
        expect(res.status, `${field}=${value}`).toBe(400);
      }
    });

    it('launches an image whose NAME@VERSION is longer than an update name', async () => {
      const up = await admin.call({
        method: 'PUT',
        path: `/api/v1/user_repo/targets/long-name.bin?hardwareIds=fz-board&name=${'n'.repeat(255)}&version=${'v'.repeat(255)}`,
        headers: { ...auth(), 'content-type': 'application/octet-stream' },
        body: Buffer.from('long name'),
      });
      expect(up.status).toBe(201);
      const res = await post(admin, 'POST', '/api/v1/updates', { image: 'long-name.bin', devices: [fx.device.deviceId], dryRun: true });
      expect(res.status, res.body.toString()).toBe(200);
    });

    it('refuses offline-signed and delegated metadata with a version beyond 32 bits, and keeps long names of signed targets', async () => {
      const system = apiFor(ts, ts.token);
      const created = await system<{ token: string }>('POST', '/api/v1/namespaces', { name: `offline-${db}` });
      const api = apiFor(ts, created.body.token);
      // A supplier delegation first (online targets), then take the targets key offline.
      const supplier = generateKeyPairSync('ed25519').privateKey;
      const signer = new LocalSigner(supplier, 'uptane');
      const pub = signer.publicKey;
      expect(
        (
          await api('PUT', '/api/v1/user_repo/trusted-delegations', {
            keys: { [pub.keyId('uptane')]: pub.toJSON() },
            roles: [{ name: 'supplier', keyids: [pub.keyId('uptane')], threshold: 1, paths: ['supplier/*'], terminating: false }],
          })
        ).status,
      ).toBe(204);
      const delegated = await Metadata.create(new Targets({ version: 2 ** 31, expires: expiresIn(new Date(), 86400), targets: new Map() }), 'uptane', [signer]);
      const dres = await api('PUT', '/api/v1/user_repo/delegations/supplier.json', new Uint8Array(delegated.toBytes()), { 'content-type': 'application/json' });
      expect(dres.status, dres.raw.toString()).toBe(400);

      const root = (await api<{ signed: { roles: { targets: { keyids: string[] } } } }>('GET', '/api/v1/user_repo/root.json')).body;
      const keyId = root.signed.roles.targets.keyids[0] as string;
      const pem = (await api<{ private: string }>('GET', `/api/v1/user_repo/root/private_keys/${keyId}`)).body.private;
      expect((await api('DELETE', `/api/v1/user_repo/root/private_keys/${keyId}`)).status).toBe(204);
      const targetsSigner = new LocalSigner(privateKeyFromPem(pem), 'uptane');
      const push = async (version: number, name: string) => {
        const current = await api<Buffer>('GET', '/api/v1/user_repo/targets.json');
        const parsed = parseTargets(current.raw, 'uptane');
        const targets = new Map(parsed.signed.targets);
        targets.set('signed.bin', new TargetFile('signed.bin', 5, { sha256: 'ab'.repeat(32) }, { name, version: 'v'.repeat(300), hardwareIds: ['hw'] }));
        const md = await Metadata.create(parsed.signed.with({ version, targets }), 'uptane', [targetsSigner]);
        const checksum = (await api('GET', '/api/v1/user_repo/targets.json')).raw;
        return api('PUT', '/api/v1/user_repo/targets', new Uint8Array(md.toBytes()), {
          'content-type': 'application/json',
          'x-ats-role-checksum': createHash('sha256').update(checksum).digest('hex'),
        });
      };
      const tooFar = await push(2 ** 31, 'ok');
      expect(tooFar.status, tooFar.raw.toString()).toBe(400);
      const longName = await push(5, 'n'.repeat(300));
      expect(longName.status, longName.raw.toString()).toBe(204);
      const listed = (await api<{ values: Array<{ filename: string; name: string }> }>('GET', '/api/v1/images')).body.values;
      expect(listed.find((i) => i.filename === 'signed.bin')?.name).toBe('n'.repeat(255));
    });
  });
}
