/**
 * Several server instances on one PostgreSQL serve one fleet: shared keys and
 * CAs, concurrent uploads on both instances lose nothing and versions only
 * grow, concurrent manifests all land, background re-signing runs under a
 * lease. Plus restart: a second start reuses everything.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTargets, parseTimestamp } from '@uptide/core';
import { TestDevice, makeEcu, provisionDevice, startTestServer, deviceRequest, type TestServer } from '../testing/harness.js';
import { dropPostgresSchema } from '../storage/database.js';
import { PG_URL } from '../testing/harness.js';

describe('two instances on one PostgreSQL', () => {
  const schema = `t_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    a = await startTestServer({ db: 'postgres', schema, keepData: true });
    b = await startTestServer({ db: 'postgres', schema, keepData: true, token: a.token });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await dropPostgresSchema(PG_URL, schema);
  });

  it('share repositories, keys and the device CA', async () => {
    const rootA = (await a.api<Buffer>('GET', '/api/v1/user_repo/root.json')).raw;
    const rootB = (await b.api<Buffer>('GET', '/api/v1/user_repo/root.json')).raw;
    expect(rootA.equals(rootB)).toBe(true);
    // The second instance made no token of its own: the first one's works on both.
    const tokenOfA = await fetch(`${b.adminUrl}/api/v1/images`, { headers: { authorization: `Bearer ${a.token}` } });
    expect(tokenOfA.status).toBe(200);
    // A device provisioned through A talks to B's gateway.
    const creds = await provisionDevice(a, 'shared-1');
    const dev = new TestDevice(b.gatewayUrl, creds, 'shared-1', [makeEcu('s1', 'hw')]);
    expect((await dev.registerEcus()).status).toBe(201);
    expect((await dev.sendManifest()).status).toBe(200);
  });

  it('invalidate cached metadata across instances when an update is assigned', async () => {
    const creds = await provisionDevice(a, 'cache-1');
    const dev = new TestDevice(b.gatewayUrl, creds, 'cache-1', [makeEcu('c1', 'hw-cache')]);
    await dev.registerEcus();
    // B caches the empty targets.
    const before = parseTargets((await dev.request('GET', '/director/targets.json')).body, 'uptane');
    expect(before.signed.targets.size).toBe(0);
    expect((await a.api('PUT', '/api/v1/user_repo/targets/cache.bin?hardwareIds=hw-cache', new Uint8Array(randomBytes(100)))).status).toBe(201);
    expect((await a.api('POST', '/api/v1/updates', { image: 'cache.bin', devices: ['cache-1'] })).status).toBe(201);
    let seen = 0;
    for (let i = 0; i < 50 && seen === 0; i++) {
      seen = parseTargets((await dev.request('GET', '/director/targets.json')).body, 'uptane').signed.targets.size;
      if (seen === 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen).toBe(1);
  });

  it('lose nothing under concurrent uploads to both instances', async () => {
    const uploads = Array.from({ length: 12 }, (_, i) =>
      (i % 2 === 0 ? a : b).api('PUT', `/api/v1/user_repo/targets/c-${i}.bin?hardwareIds=hw`, new Uint8Array(randomBytes(1000))),
    );
    const results = await Promise.all(uploads);
    expect(results.map((r) => r.status)).toEqual(Array(12).fill(201));
    const targets = parseTargets((await b.api<Buffer>('GET', '/api/v1/user_repo/targets.json')).raw, 'uptane');
    for (let i = 0; i < 12; i++) expect(targets.signed.targets.has(`c-${i}.bin`)).toBe(true);
    const ts1 = parseTimestamp((await a.api<Buffer>('GET', '/api/v1/user_repo/timestamp.json')).raw, 'uptane');
    expect(ts1.signed.version).toBeGreaterThanOrEqual(13);
  });

  it('accept concurrent manifests from many devices on both instances', async () => {
    const devices: TestDevice[] = [];
    for (let i = 0; i < 6; i++) {
      const creds = await provisionDevice(a, `fleet-${i}`);
      const d = new TestDevice((i % 2 === 0 ? a : b).gatewayUrl, creds, `fleet-${i}`, [makeEcu(`f${i}-p`, 'hw'), makeEcu(`f${i}-s`, 'hw2')]);
      await d.registerEcus();
      devices.push(d);
    }
    const rounds = await Promise.all(devices.flatMap((d) => [d.sendManifest(), d.request('GET', '/director/targets.json')]));
    expect(rounds.every((r) => r.status === 200)).toBe(true);
    const listed = await b.api<{ values: Array<{ deviceId: string; lastSeen: string | null }> }>('GET', '/api/v1/devices?nameContains=fleet-&limit=100');
    expect(listed.body.values.filter((v) => v.lastSeen !== null)).toHaveLength(6);
  });

  it('follow one device across both instances: a stale cache of ECU rows never accepts a replay nor loses a report', async () => {
    const creds = await provisionDevice(a, 'hop-1');
    const ecus = [makeEcu('hop-p', 'hw'), makeEcu('hop-s', 'hw2')];
    // Two views of one device, sharing its ECUs (keys and counters): one per instance.
    const viaA = new TestDevice(a.gatewayUrl, creds, 'hop-1', ecus);
    const viaB = new TestDevice(b.gatewayUrl, creds, 'hop-1', ecus);
    const counters = async () => (await a.server.services.storage.store.listEcus('default', 'hop-1')).map((e) => Number(e.report_counter));
    // Which swaps (the one-statement fast path) wrote the device, and which found its rows moved.
    const swaps: boolean[] = [];
    for (const ts of [a, b]) {
      const store = ts.server.services.storage.store;
      const original = store.swapEcuReports.bind(store);
      vi.spyOn(store, 'swapEcuReports').mockImplementation(async (ns, rows) => {
        const written = await original(ns, rows);
        swaps.push(written.has('hop-1'));
        return written;
      });
    }
    expect((await viaA.registerEcus()).status).toBe(201);
    expect((await viaA.sendManifest()).status).toBe(200); // 1 on A
    expect((await viaB.sendManifest()).status).toBe(200); // 2 on B
    expect((await viaB.sendManifest()).status).toBe(200); // 3 on B, which now holds 3 in its cache
    expect((await viaA.sendManifest()).status).toBe(200); // 4 on A
    expect(await counters()).toEqual([4, 4]);
    // B still has 3 cached: a report numbered 4 with other content looks new to B's cache, and must be refused as the replay it is.
    for (const e of ecus) e.installed = { filename: 'other.bin', length: 1, hashes: { sha256: 'cd'.repeat(32) } };
    const replay = await viaB.sendManifest({ counterOverride: 4 });
    expect(replay.status).toBe(409);
    expect(replay.json<{ code: string }>().code).toBe('replayed_report');
    expect(await counters()).toEqual([4, 4]);
    // A has 4 cached; B writes 6, then A plans 7 against its stale cache: accepted, nothing lost.
    for (const e of ecus) e.counter = 5;
    expect((await viaB.sendManifest()).status).toBe(200);
    expect((await viaA.sendManifest()).status).toBe(200);
    expect(await counters()).toEqual([7, 7]);
    const installed = (await a.server.services.storage.store.listEcus('default', 'hop-1')).map((e) => e.installed_filename);
    expect(installed).toEqual(['other.bin', 'other.bin']);
    // 3 on B, 4 on A and 6 on B were swapped in; the replay and 7 on A found the rows moved and went the careful way.
    expect(swaps).toEqual([true, true, false, true, false]);
    vi.restoreAllMocks();
  });

  it('run background re-signing under one lease at a time', async () => {
    const store = a.server.services.storage.store;
    const now = Date.now();
    expect(await store.acquireLease('test-lease', 'A', now, 10_000)).toBe(true);
    expect(await b.server.services.storage.store.acquireLease('test-lease', 'B', now, 10_000)).toBe(false);
    expect(await store.acquireLease('test-lease', 'A', now + 1, 10_000)).toBe(true);
    expect(await b.server.services.storage.store.acquireLease('test-lease', 'B', now + 20_000, 10_000)).toBe(true);
  });
});

describe('restart and expiry', () => {
  it('reuses the data on a second start and re-signs metadata close to expiry', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'uptide-restart-'));
    let offset = 0;
    const clock = () => new Date(Date.now() + offset);
    const first = await startTestServer({ dataDir, keepData: true, clock });
    const root1 = (await first.api<Buffer>('GET', '/api/v1/user_repo/root.json')).raw;
    const creds = await provisionDevice(first, 'keep-1');
    await first.close();
    const second = await startTestServer({ dataDir, clock });
    expect(second.server.firstToken).toBeUndefined();
    expect(second.token).toBe(first.token);
    expect((await second.api<Buffer>('GET', '/api/v1/user_repo/root.json')).raw.equals(root1)).toBe(true);
    const dev = new TestDevice(second.gatewayUrl, creds, 'keep-1', [makeEcu('k1', 'hw')]);
    expect((await dev.registerEcus()).status).toBe(201);
    const ts1 = parseTimestamp((await dev.request('GET', '/repo/timestamp.json')).body, 'uptane');
    const dt1 = parseTimestamp((await dev.request('GET', '/director/timestamp.json')).body, 'uptane');
    // Twenty hours later the Image timestamp (1 day) is within its refresh window; six days later the Director's (7 days) too.
    offset = 20 * 3600 * 1000;
    const ts2 = parseTimestamp((await dev.request('GET', '/repo/timestamp.json')).body, 'uptane');
    expect(ts2.signed.version).toBeGreaterThan(ts1.signed.version);
    expect(ts2.signed.expiresAt).toBeGreaterThan(ts1.signed.expiresAt);
    offset = 6 * 24 * 3600 * 1000;
    const dt2 = parseTimestamp((await dev.request('GET', '/director/timestamp.json')).body, 'uptane');
    expect(dt2.signed.version).toBeGreaterThan(dt1.signed.version);
    // The background job does the same for repositories nobody asked about.
    await second.server.services.imageRepo.refresh('default');
    expect((await deviceRequest(second.gatewayUrl, { cert: creds.cert, key: creds.key, ca: creds.ca }, 'GET', '/repo/snapshot.json')).status).toBe(200);
    await second.close();
  });
});
