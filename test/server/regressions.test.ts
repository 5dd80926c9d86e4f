/**
 * One test per server finding of the hostility work (docs/security-server.md,
 * "Findings fixed"): each failed before its fix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { mkdirSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startTestServer, type DbKind, type TestServer } from '../../packages/server/src/testing/harness.js';
import { FileBlobStore } from '../../packages/server/src/blobs/blob-store.js';
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
});

for (const db of ['sqlite', 'postgres'] as DbKind[]) {
  describe(`regressions on ${db}: what the database refuses`, () => {
    let ts: TestServer;
    let fx: Fixtures;
    beforeAll(async () => {
      ts = await startTestServer({ db });
      fx = await setupFixtures(ts);
    });
    afterAll(async () => {
      await ts?.close();
    });

    it('placeholder', () => {
      expect(fx.namespace).toBe('default');
    });
  });
}
