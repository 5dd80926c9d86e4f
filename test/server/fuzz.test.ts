/**
 * Property-based fuzzing of every admin and device route on the real HTTP
 * server (issue 6, "Server-side hostility"). For every generated request:
 *
 * - never a 5xx, and the server keeps answering /healthz;
 * - every 4xx (and 5xx) answer is JSON `{"code","message"}`;
 * - a refused request (4xx) writes nothing: every table is identical before
 *   and after (except the security events the Director records on purpose for
 *   refused manifests), and the blob store holds the same files.
 *
 * SQLite runs FUZZ_RUNS cases, PostgreSQL FUZZ_RUNS_PG (smaller: it is the
 * slower engine, and what differs there is storage). UPTIDE_FUZZ_RUNS,
 * UPTIDE_FUZZ_RUNS_PG and UPTIDE_FUZZ_SEED override them for longer runs or
 * to replay a failure. Counts are printed at the end of each run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { appendFileSync } from 'node:fs';
import { startTestServer, type DbKind, type TestServer } from '../../packages/server/src/testing/harness.js';
import {
  Endpoint,
  adminRoutes,
  apiFor,
  blobFiles,
  dbState,
  errorShapeViolation,
  gatewayRoutes,
  setupFixtures,
  stateChanges,
  type Fixtures,
  type RawResponse,
} from './support.js';
import { REVOKED_TOKEN, caseArb, materialize, routeModels, sweepCases, type DeviceAuth, type Live, type Materialized } from './fuzz-model.js';

const FUZZ_RUNS = Number(process.env['UPTIDE_FUZZ_RUNS'] ?? 2000);
const FUZZ_RUNS_PG = Number(process.env['UPTIDE_FUZZ_RUNS_PG'] ?? 500);
const TRACE = process.env['UPTIDE_FUZZ_TRACE'];
const SEED = process.env['UPTIDE_FUZZ_SEED'] === undefined ? undefined : Number(process.env['UPTIDE_FUZZ_SEED']);

for (const db of ['sqlite', 'postgres'] as DbKind[]) {
  describe(`fuzzing every route on ${db}`, () => {
    let ts: TestServer;
    let fx: Fixtures;
    let admin: Endpoint;
    const devices = new Map<DeviceAuth, Endpoint>();
    const routes = routeModels();

    beforeAll(async () => {
      // Small image limit so that oversized uploads are cheap to send.
      ts = await startTestServer({ db, config: { maxImageBytes: 64 * 1024 } });
      fx = await setupFixtures(ts);
      const api = apiFor(ts, fx.token);
      const revoked = await api<{ id: string; token: string }>('POST', '/api/v1/tokens', { name: 'revoked' });
      await api('DELETE', `/api/v1/tokens/${revoked.body.id}`);
      REVOKED_TOKEN.value = revoked.body.token;
      const gone = await api<{ certificate: string; privateKey: string; serial: string }>('POST', '/api/v1/devices/fz-revoked/credentials', {});
      await api('DELETE', `/api/v1/devices/fz-revoked/credentials/${gone.body.serial}`);
      admin = new Endpoint(ts.adminUrl);
      const ca = fx.serverCa;
      const creds = (d: { creds?: { cert: string; key: string } | undefined }) => ({ cert: d.creds?.cert, key: d.creds?.key, ca });
      devices.set('valid', new Endpoint(ts.gatewayUrl, creds(fx.device)));
      devices.set('other', new Endpoint(ts.gatewayUrl, creds(fx.other)));
      devices.set('bootstrap', new Endpoint(ts.gatewayUrl, { pfx: fx.bootstrapP12, ca }));
      devices.set('none', new Endpoint(ts.gatewayUrl, { ca }));
      devices.set('revoked', new Endpoint(ts.gatewayUrl, { cert: gone.body.certificate, key: gone.body.privateKey, ca }));
    });
    afterAll(async () => {
      admin?.close();
      for (const e of devices.values()) e.close();
      await ts?.close();
    });

    it('models every route both apps serve', () => {
      const served = [
        ...adminRoutes(ts.server.admin).map((r) => `admin ${r.method} ${r.path}`),
        ...gatewayRoutes(ts.server.gateway).map((r) => `device ${r.method} ${r.path}`),
      ];
      const modelled = routes.map((r) => `${r.side} ${r.method} ${r.path}`);
      expect(new Set(modelled).size).toBe(modelled.length);
      expect([...modelled].sort()).toEqual([...served].sort());
    });

    const checker = () => {
      const live: Live = {
        fx,
        adminGet: async (path) => {
          const r = await admin.call({ method: 'GET', path, headers: { authorization: `Bearer ${fx.token}` } });
          return { bytes: r.body, headers: r.headers };
        },
      };
      const stats = { cases: 0, byStatus: new Map<string, number>(), routes: new Map<string, Set<number>>() };
      const check = async (m: Materialized): Promise<void> => {
        const ep = m.side === 'admin' ? admin : (devices.get(m.auth as DeviceAuth) as Endpoint);
        const t0 = Date.now();
        const before = await dbState(ts);
        const blobsBefore = blobFiles(ts.dataDir);
        let res: RawResponse;
        try {
          res = await ep.call(m.request);
        } catch (err) {
          // Only a body the server refuses mid-upload may end in a reset connection; the server must still be fine.
          if ((m.request.body?.length ?? 0) <= 1024 * 1024) throw new Error(`no answer: ${String(err)}`, { cause: err });
          res = { status: 413, headers: { 'content-type': 'application/json' }, body: Buffer.from('{"code":"reset","message":"reset"}') };
        }
        const what = `${m.side} ${m.request.method} ${m.request.path.slice(0, 200)} (${m.auth}) → ${res.status} ${res.body.toString('utf8').slice(0, 300)}`;
        stats.cases++;
        const cls = `${m.side} ${Math.floor(res.status / 100)}xx`;
        stats.byStatus.set(cls, (stats.byStatus.get(cls) ?? 0) + 1);
        const key = `${m.side} ${m.route.method} ${m.route.path}`;
        stats.routes.set(key, (stats.routes.get(key) ?? new Set()).add(res.status));
        if (res.status >= 500) throw new Error(`5xx: ${what}`);
        const shape = errorShapeViolation(m.request.method, res);
        if (shape) throw new Error(`error shape: ${shape} for ${what}`);
        if (res.status >= 400) {
          const changes = stateChanges(before, await dbState(ts));
          if (changes.length > 0) throw new Error(`partial write on a refused request: ${what}\n${changes.join('\n')}`);
          expect(blobFiles(ts.dataDir), `blob store changed by ${what}`).toEqual(blobsBefore);
        }
        const health = await admin.call({ method: 'GET', path: '/healthz' }, 5_000).catch((err: unknown) => ({ status: String(err) }));
        if (health.status !== 200) throw new Error(`/healthz answers ${health.status} after ${what}`);
        if (TRACE) appendFileSync(TRACE, `${Date.now() - t0}ms ${what.slice(0, 300)}\n`);
      };
      return { live, stats, check };
    };
    const report = (what: string, stats: { cases: number; byStatus: Map<string, number>; routes: Map<string, Set<number>> }) =>
      console.log(
        `[fuzz ${db}] ${what}: ${stats.cases} cases over ${stats.routes.size}/${routes.length} routes; ${[...stats.byStatus].map(([k, v]) => `${k}: ${v}`).join(', ')}`,
      );

    it('survives every boundary value in every field of every JSON body', async () => {
      const { live, stats, check } = checker();
      const wall = new Map<string, number>();
      for (const c of sweepCases(routes, fx)) {
        const t = Date.now();
        const m = await materialize(c, routes, live);
        await check(m);
        wall.set(m.route.path, (wall.get(m.route.path) ?? 0) + Date.now() - t);
      }
      if (TRACE) appendFileSync(TRACE, `WALL ${JSON.stringify([...wall].sort((a, b) => b[1] - a[1]).slice(0, 8))}\n`);
      report('boundary sweep', stats);
    }, 180_000);
    it(`never answers 5xx, always {code, message} on 4xx, never writes on a refusal (${db === 'sqlite' ? FUZZ_RUNS : FUZZ_RUNS_PG} cases)`, async () => {
      const { live, stats, check } = checker();
      await fc.assert(
        fc.asyncProperty(caseArb, async (c) => check(await materialize(c, routes, live))),
        { numRuns: db === 'sqlite' ? FUZZ_RUNS : FUZZ_RUNS_PG, ...(SEED !== undefined ? { seed: SEED } : {}), endOnFailure: true },
      );
      report('random cases', stats);
      const unreached = routes.map((r) => `${r.side} ${r.method} ${r.path}`).filter((k) => !stats.routes.has(k));
      if (db === 'sqlite') expect(unreached, 'routes the random cases never reached').toEqual([]);
    }, 180_000);
  });
}
