/**
 * The authorization matrix (issue 6): who may call what.
 *
 * - Admin routes: no token, an unknown, malformed or revoked token → 401 on
 *   every route; a namespace token is confined to its namespace on every route
 *   (it reads nothing of another namespace and changes nothing there); only
 *   system tokens manage namespaces and system tokens.
 * - Device gateway: identity only from the client certificate (headers that
 *   name another device or namespace change nothing); no admin route on the
 *   gateway and no device access to the admin API; a device of one namespace
 *   sees only its namespace's repository; the fleet bootstrap certificate
 *   reaches POST /devices only; revoked certificates and deleted devices are
 *   refused at once, also on a connection that is already open.
 *
 * Runs on SQLite: authorization does not depend on the database (the
 * fuzzer and the manifest tests cover PostgreSQL).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../packages/server/src/testing/harness.js';
import { Endpoint, adminRoutes, apiFor, dbState, gatewayRoutes, json, setupFixtures, stateChanges, type Fixtures } from './support.js';
import { materialize, routeModels, type FuzzCase, type Live } from './fuzz-model.js';

const OPEN_ADMIN_ROUTES = new Set(['/healthz', '/metrics', '/']);

describe('the authorization matrix', () => {
  let ts: TestServer;
  let fa: Fixtures;
  let fb: Fixtures;
  let admin: Endpoint;
  const routes = routeModels();

  beforeAll(async () => {
    ts = await startTestServer();
    fa = await setupFixtures(ts, { namespace: 'ns-a', tag: 'aa' });
    fb = await setupFixtures(ts, { namespace: 'ns-b', tag: 'bb' });
    admin = new Endpoint(ts.adminUrl);
  });
  afterAll(async () => {
    admin?.close();
    await ts?.close();
  });

  /** Every case of a route with valid parameters (each value of the first parameter's pool), its valid body, and credentials `auth`. */
  function casesOf(fx: Fixtures, auth = 0): FuzzCase[] {
    const out: FuzzCase[] = [];
    routes.forEach((route, r) => {
      const first = route.params[0]?.(fx).length ?? 1;
      for (let pick = 0; pick < first; pick++) {
        out.push({
          route: r,
          method: null,
          params: [pick, 0, 0].map((p) => ({ kind: 'valid' as const, pick: p })),
          keepBaseQuery: true,
          query: [],
          body: { kind: 'template' },
          contentType: null,
          headers: [],
          auth,
        });
      }
    });
    return out;
  }

  const live = (fx: Fixtures): Live => ({
    fx,
    adminGet: async (path) => {
      const r = await admin.call({ method: 'GET', path, headers: { authorization: `Bearer ${fx.token}` } });
      return { bytes: r.body, headers: r.headers };
    },
  });

  it('refuses every admin route without a valid token (none, unknown, malformed, revoked) with 401 and no change', async () => {
    const api = apiFor(ts, fa.token);
    const revoked = await api<{ id: string; token: string }>('POST', '/api/v1/tokens', { name: 'soon revoked' });
    expect((await api('DELETE', `/api/v1/tokens/${revoked.body.id}`)).status).toBe(204);
    const variants: Array<Record<string, string>> = [
      {},
      { authorization: `Bearer upt_${'A'.repeat(43)}` },
      { authorization: `Bearer ${fa.token.slice(0, -1)}x` },
      { authorization: fa.token },
      { authorization: `Basic ${Buffer.from(`x:${fa.token}`).toString('base64')}` },
      { authorization: `Bearer ${revoked.body.token}` },
      { 'x-api-key': fa.token },
      { cookie: `token=${fa.token}` },
    ];
    const before = await dbState(ts);
    let checked = 0;
    for (const c of casesOf(fa)) {
      const m = await materialize(c, routes, live(fa));
      if (m.side !== 'admin' || OPEN_ADMIN_ROUTES.has(m.route.path)) continue;
      for (const headers of variants) {
        const h = { ...m.request.headers };
        delete h['authorization'];
        const res = await admin.call({ ...m.request, path: m.request.path.replace(/token=[^&]*/, ''), headers: { ...h, ...headers } });
        expect(res.status, `${m.request.method} ${m.request.path} ${JSON.stringify(headers).slice(0, 40)}`).toBe(401);
        expect(json(res)).toMatchObject({ code: 'unauthorized' });
        checked++;
      }
    }
    expect(stateChanges(before, await dbState(ts))).toEqual([]);
    expect(checked).toBeGreaterThan(500);
    console.log(`[authz] ${checked} admin requests without a valid token, all 401`);
  });

  it('gives a namespace token nothing of another namespace, on every admin route', async () => {
    // B's token, with A's identifiers everywhere: A's devices, images, updates, groups, keys, certificates and tokens.
    const crossed: Fixtures = { ...fa, token: fb.token };
    const aBefore = await dbState(ts, 'ns-a');
    // What only A's data holds: its image hash, ECU key ids, repository key ids, certificate serials, root bytes.
    const aRoot = (await apiFor(ts, fa.token)<Buffer>('GET', '/api/v1/user_repo/root.json')).raw.toString();
    const aKeyIds = [...Object.values(fa.imageKeys), ...Object.values(fa.directorKeys)];
    const ecuKeys = (await apiFor(ts, fa.token)<Array<{ keyId: string }>>('GET', `/api/v1/devices/${fa.device.deviceId}/ecus`)).body.map((e) => e.keyId);
    const secrets = [fa.image.sha256, ...aKeyIds, ...ecuKeys, fa.victimSerial, fa.bootstrapSerial, fa.tokenId, fa.spareTokenId, aRoot.slice(0, 200)];
    // Each of A's resources, named, is 404 for B (before B creates its own of the same names below).
    const b = apiFor(ts, fb.token);
    for (const path of [
      `/api/v1/devices/${fa.device.deviceId}`,
      `/api/v1/devices/${fa.device.deviceId}/ecus`,
      `/api/v1/devices/${fa.device.deviceId}/credentials`,
      `/api/v1/admin/devices/${fa.device.deviceId}`,
      `/api/v1/images/${fa.image.filename}`,
      `/api/v1/user_repo/targets/${fa.image.filename}`,
      `/api/v1/updates/${fa.updateId}`,
      `/api/v1/multi_target_updates/${fa.updateId}`,
      `/api/v1/device_groups/${fa.groupId}`,
      `/api/v1/user_repo/root/private_keys/${fa.imageKeys['targets']}`,
      `/api/v1/admin/repo/private_keys/${fa.directorKeys['targets']}`,
    ]) {
      expect((await b('GET', path)).status, path).toBe(404);
    }
    for (const [method, path] of [
      ['DELETE', `/api/v1/devices/${fa.victimId}`],
      ['DELETE', `/api/v1/devices/${fa.victimId}/credentials/${fa.victimSerial}`],
      ['DELETE', `/api/v1/provisioning/credentials/${fa.bootstrapSerial}`],
      ['DELETE', `/api/v1/tokens/${fa.spareTokenId}`],
      ['DELETE', `/api/v1/device_groups/${fa.groupId}`],
      ['POST', `/api/v1/updates/${fa.updateId}/cancel`],
    ] as const) {
      expect((await b(method, path)).status, `${method} ${path}`).toBe(404);
    }
    let checked = 0;
    for (const c of casesOf(crossed)) {
      const m = await materialize(c, routes, live(crossed));
      if (m.side !== 'admin') continue;
      const res = await admin.call(m.request);
      const asked = `${m.request.path} ${m.request.body?.toString('utf8') ?? ''}`;
      const body = res.body.toString('utf8');
      for (const s of secrets)
        if (!asked.includes(s)) expect(body.includes(s), `${m.request.method} ${m.request.path} answered ${s.slice(0, 20)} of ns-a`).toBe(false);
      expect(res.status, `${m.request.method} ${m.request.path}`).toBeLessThan(500);
      checked++;
    }
    expect(stateChanges(aBefore, await dbState(ts, 'ns-a'))).toEqual([]);
    expect(checked).toBeGreaterThan(80);
    console.log(`[authz] ${checked} admin requests with another namespace's identifiers, none answered or changed its data`);
  });

  it('keeps namespaces and system tokens to system tokens', async () => {
    const a = apiFor(ts, fa.token);
    expect((await a('GET', '/api/v1/namespaces')).status).toBe(403);
    expect((await a('POST', '/api/v1/namespaces', { name: 'by-a' })).status).toBe(403);
    expect((await a('POST', '/api/v1/tokens', { name: 'escalate', system: true })).status).toBe(403);
    expect((await apiFor(ts, ts.token)('GET', '/api/v1/namespaces')).status).toBe(200);
  });

  it('confines a device to its own namespace and its own identity on the gateway', async () => {
    const devB = new Endpoint(ts.gatewayUrl, { cert: fb.device.creds?.cert, key: fb.device.creds?.key, ca: fb.serverCa });
    try {
      // A's image is not there for B's device; B's repository lists B's images only; B's roots are not A's.
      expect((await devB.call({ method: 'GET', path: `/repo/targets/${fa.image.filename}` })).status).toBe(404);
      const targets = (await devB.call({ method: 'GET', path: '/repo/targets.json' })).body.toString();
      expect(targets).toContain(fb.image.sha256);
      expect(targets).not.toContain(fa.image.sha256);
      const aRoot = (await apiFor(ts, fa.token)<Buffer>('GET', '/api/v1/user_repo/root.json')).raw;
      expect((await devB.call({ method: 'GET', path: '/repo/root.json' })).body.equals(aRoot)).toBe(false);
      // Headers naming another device or namespace change nothing: the answers are byte for byte the plain ones.
      const spoof = {
        'x-ats-device-uuid': fa.device.deviceId,
        'x-ats-namespace': 'ns-a',
        'air-client-id': fa.device.deviceId,
        'x-forwarded-client-cert': encodeURIComponent(fa.device.creds?.cert ?? ''),
        'x-ssl-client-cert': encodeURIComponent(fa.device.creds?.cert ?? ''),
      };
      for (const path of ['/director/targets.json', '/director/snapshot.json', '/director/timestamp.json', '/director/root.json', '/repo/targets.json']) {
        const plain = await devB.call({ method: 'GET', path });
        const spoofed = await devB.call({ method: 'GET', path, headers: spoof });
        expect(spoofed.status, path).toBe(200);
        expect(spoofed.body.equals(plain.body), path).toBe(true);
      }
      // No admin route exists on the gateway, for any device.
      for (const r of adminRoutes(ts.server.admin)) {
        if (r.path === '/') continue;
        const path = r.path.replace(/:\w+/g, 'x').replace('*', 'x');
        const res = await devB.call({ method: r.method, path, headers: { authorization: `Bearer ${fb.token}` } });
        expect(res.status, `${r.method} ${path}`).toBe(404);
      }
    } finally {
      devB.close();
    }
  });

  it('lets the fleet bootstrap certificate reach POST /devices and nothing else', async () => {
    const boot = new Endpoint(ts.gatewayUrl, { pfx: fa.bootstrapP12, ca: fa.serverCa });
    try {
      for (const r of gatewayRoutes(ts.server.gateway)) {
        if (r.path === '/devices') continue;
        const path = r.path.replace(/:\w+/g, 'targets.json').replace('*', 'x');
        const res = await boot.call({
          method: r.method,
          path,
          ...(r.method === 'GET' ? {} : { headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') }),
        });
        expect(res.status, `${r.method} ${path}`).toBe(403);
      }
      const ok = await boot.call({
        method: 'POST',
        path: '/devices',
        headers: { 'content-type': 'application/json' },
        body: Buffer.from(JSON.stringify({ deviceId: 'aa-auto-1', ttl: '30' })),
      });
      expect(ok.status).toBe(200);
    } finally {
      boot.close();
    }
  });

  it('refuses a revoked certificate and a deleted device at once, also on a connection that is already open', async () => {
    const api = apiFor(ts, fa.token);
    for (const [id, revoke] of [
      [
        'aa-revoke-me',
        async (serial: string) => {
          expect((await api('DELETE', `/api/v1/devices/aa-revoke-me/credentials/${serial}`)).status).toBe(204);
        },
      ],
      [
        'aa-delete-me',
        async () => {
          expect((await api('DELETE', '/api/v1/devices/aa-delete-me')).status).toBe(204);
        },
      ],
    ] as const) {
      const c = await api<{ certificate: string; privateKey: string; serverCa: string; serial: string }>('POST', `/api/v1/devices/${id}/credentials`, {});
      // One keep-alive connection, used before and after the revocation.
      const ep = new Endpoint(ts.gatewayUrl, { cert: c.body.certificate, key: c.body.privateKey, ca: c.body.serverCa });
      try {
        expect((await ep.call({ method: 'GET', path: '/repo/targets.json' })).status).toBe(200);
        expect((await ep.call({ method: 'GET', path: '/campaigner/campaigns' })).status).toBe(200);
        await revoke(c.body.serial);
        const before = await dbState(ts);
        for (const [method, path, body] of [
          ['GET', '/repo/targets.json', undefined],
          ['GET', '/director/targets.json', undefined],
          ['PUT', '/system_info', '{"a":1}'],
          ['POST', '/events', '[]'],
        ] as const) {
          const res = await ep.call({
            method,
            path,
            ...(body ? { headers: { 'content-type': 'application/json' }, body: Buffer.from(body) } : {}),
          });
          expect(res.status, `${id} ${method} ${path}`).toBe(403);
        }
        expect(stateChanges(before, await dbState(ts))).toEqual([]);
      } finally {
        ep.close();
      }
    }
  });

  it('refuses a revoked token at once', async () => {
    const api = apiFor(ts, fa.token);
    const t = await api<{ id: string; token: string }>('POST', '/api/v1/tokens', { name: 'short-lived' });
    const ep = new Endpoint(ts.adminUrl);
    try {
      const call = () => ep.call({ method: 'GET', path: '/api/v1/whoami', headers: { authorization: `Bearer ${t.body.token}` } });
      expect((await call()).status).toBe(200);
      expect((await api('DELETE', `/api/v1/tokens/${t.body.id}`)).status).toBe(204);
      expect((await call()).status).toBe(401);
    } finally {
      ep.close();
    }
  });
});
