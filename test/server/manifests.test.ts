/**
 * The Director against hostile manifests (uptane-standard.md §7.3, A16), on
 * SQLite and PostgreSQL. Every refusal is checked three ways: the answer
 * (status and code), the security event recorded for the operator, and the
 * database: nothing else changed (no installed image, counter, nonce,
 * assignment or metadata came from the refused manifest), so the Director
 * generates nothing new from untrusted data.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { LocalSigner, canonicalize, toBase64, type JsonObject } from '@uptide/core';
import { TestDevice, makeEcu, startTestServer, type DbKind, type TestEcu, type TestServer } from '../../packages/server/src/testing/harness.js';
import { Endpoint, apiFor, dbState, json, stateChanges, type RawResponse } from './support.js';

type Signer = Pick<LocalSigner, 'publicKey' | 'sign'>;

async function signed(payload: JsonObject, signer: Signer): Promise<JsonObject> {
  const sig = await signer.sign(canonicalize(payload, 'uptane'));
  return { signatures: [{ keyid: signer.publicKey.keyId('uptane'), method: 'ed25519', sig: toBase64(sig) }], signed: payload };
}

const iso = (t: number) => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** An ECU version report payload as our client writes it; `fields` overrides or removes (undefined) fields. */
function reportPayload(e: TestEcu, fields: Record<string, unknown> = {}): JsonObject {
  const now = iso(Date.now());
  const base: Record<string, unknown> = {
    ecu_serial: e.serial,
    installed_image: { filepath: 'firmware.bin', fileinfo: { hashes: { sha256: 'ab'.repeat(32) }, length: 10 } },
    attacks_detected: '',
    timeserver_time: now,
    previous_timeserver_time: now,
    report_counter: String(e.counter),
    ...fields,
  };
  for (const k of Object.keys(base)) if (base[k] === undefined) delete base[k];
  return base as JsonObject;
}

interface ManifestParts {
  /** Reports by serial (already signed); default: a fresh report of every ECU of the device. */
  reports?: Record<string, JsonObject>;
  primarySerial?: string;
  vin?: string;
  /** Signs the vehicle manifest (default: the Primary's key). */
  signer?: Signer;
}

async function manifest(d: TestDevice, parts: ManifestParts = {}): Promise<string> {
  const reports = parts.reports ?? Object.fromEntries(await Promise.all(d.ecus.map(async (e) => [e.serial, await signed(reportPayload(e), e.signer)])));
  const payload: JsonObject = { primary_ecu_serial: parts.primarySerial ?? d.primary.serial, ecu_version_manifests: reports };
  if (parts.vin !== undefined) payload['vin'] = parts.vin;
  return JSON.stringify(await signed(payload, parts.signer ?? d.primary.signer));
}

/** Advances every ECU's counter and returns fresh signed reports (with per-ECU overrides). */
async function freshReports(d: TestDevice, overrides: Record<string, Record<string, unknown>> = {}): Promise<Record<string, JsonObject>> {
  const out: Record<string, JsonObject> = {};
  for (const e of d.ecus) {
    e.counter++;
    out[e.serial] = await signed(reportPayload(e, overrides[e.serial] ?? {}), e.signer);
  }
  return out;
}

const otherKey = (): Signer => new LocalSigner(generateKeyPairSync('ed25519').privateKey, 'uptane');

for (const db of ['sqlite', 'postgres'] as DbKind[]) {
  describe(`the Director against hostile manifests on ${db}`, () => {
    let ts: TestServer;
    let a: TestDevice;
    let b: TestDevice;
    let gwA: Endpoint;
    const put = (ep: Endpoint, body: string): Promise<RawResponse> =>
      ep.call({ method: 'PUT', path: '/director/manifest', headers: { 'content-type': 'application/json' }, body: Buffer.from(body) });
    const refusedEvents = async (deviceId: string) =>
      (
        (await apiFor(ts, ts.token)<Array<{ source: string; code: string; ecu: string | null }>>('GET', `/api/v1/devices/${deviceId}/attacks`)).body ?? []
      ).filter((x) => x.source === 'refused');

    beforeAll(async () => {
      ts = await startTestServer({ db });
      const api = apiFor(ts, ts.token);
      const issue = async (id: string) => {
        const r = await api<{ certificate: string; privateKey: string; serverCa: string }>('POST', `/api/v1/devices/${id}/credentials`, {});
        return { deviceId: id, cert: r.body.certificate, key: r.body.privateKey, ca: r.body.serverCa };
      };
      a = new TestDevice(ts.gatewayUrl, await issue('car-a'), 'car-a', [makeEcu('a-primary', 'board'), makeEcu('a-secondary', 'sec-board')]);
      b = new TestDevice(ts.gatewayUrl, await issue('car-b'), 'car-b', [makeEcu('b-primary', 'board')]);
      for (const d of [a, b]) {
        expect((await d.registerEcus()).status).toBe(201);
        for (const e of d.ecus) e.counter = 1;
        expect((await d.request('PUT', '/director/manifest', await manifest(d), { 'content-type': 'application/json' })).status).toBe(200);
      }
      gwA = new Endpoint(ts.gatewayUrl, { cert: a.creds?.cert, key: a.creds?.key, ca: a.creds?.ca });
    });
    afterAll(async () => {
      gwA?.close();
      await ts?.close();
    });

    /** Sends a manifest that must be refused: answer, recorded event, and nothing else changed. */
    async function expectRefused(body: string, status: number, code: string, ecu?: string): Promise<void> {
      // Fetched first: the first fetch signs the device's metadata, which is not the manifest's doing.
      const targets = (await a.request('GET', '/director/targets.json')).body;
      const before = await dbState(ts);
      const eventsBefore = (await refusedEvents('car-a')).length;
      const res = await put(gwA, body);
      expect(res.status, res.body.toString()).toBe(status);
      expect(json(res)).toMatchObject({ code });
      expect(stateChanges(before, await dbState(ts))).toEqual([]);
      const events = await refusedEvents('car-a');
      expect(events.length).toBe(eventsBefore + 1);
      expect(events[0]).toMatchObject({ code, ...(ecu ? { ecu } : {}) });
      expect((await a.request('GET', '/director/targets.json')).body.equals(targets)).toBe(true);
    }

    it('A16.1: a manifest signed with a key other than the Primary’s', async () => {
      await expectRefused(await manifest(a, { reports: await freshReports(a), signer: otherKey() }), 400, 'invalid_signature', 'a-primary');
    });

    it('A16.2: a Secondary’s report signed by the Primary’s key, or by a key nobody registered', async () => {
      for (const signer of [a.primary.signer, otherKey()]) {
        const reports = await freshReports(a);
        reports['a-secondary'] = await signed(reportPayload(a.ecus[1] as TestEcu), signer);
        await expectRefused(await manifest(a, { reports }), 400, 'invalid_signature', 'a-secondary');
      }
    });

    it('A16.3 and A16.4: a report of an ECU the inventory does not know, and an inventory ECU left out', async () => {
      const stranger = makeEcu('stranger', 'board');
      const extra = { ...(await freshReports(a)), stranger: await signed(reportPayload(stranger), stranger.signer) };
      await expectRefused(await manifest(a, { reports: extra }), 400, 'unknown_ecu', 'stranger');
      const missing = await freshReports(a);
      delete missing['a-secondary'];
      await expectRefused(await manifest(a, { reports: missing }), 400, 'missing_ecu_report', 'a-secondary');
    });

    it('A16.5: replayed counters (the Primary’s, a Secondary’s inside a fresh manifest, an equal one) and a reused nonce', async () => {
      const primary = a.primary;
      const secondary = a.ecus[1] as TestEcu;
      // An older counter of the Primary.
      const old = await freshReports(a, { 'a-primary': { report_counter: '0' } });
      await expectRefused(await manifest(a, { reports: old }), 409, 'replayed_report', 'a-primary');
      // A fresh Primary report carrying a Secondary report with a counter already seen, but different content.
      const replayedSecondary = await freshReports(a, { 'a-secondary': { report_counter: '1', attacks_detected: 'changed' } });
      await expectRefused(await manifest(a, { reports: replayedSecondary }), 409, 'replayed_report', 'a-secondary');
      // Accept one with a nonce, then reuse the nonce with a higher counter.
      const withNonce = await freshReports(a, { 'a-primary': { nonce: 'n-1' } });
      expect((await put(gwA, await manifest(a, { reports: withNonce }))).status).toBe(200);
      const reused = await freshReports(a, { 'a-primary': { nonce: 'n-1' } });
      await expectRefused(await manifest(a, { reports: reused }), 409, 'replayed_report', 'a-primary');
      expect(primary.counter).toBeGreaterThan(secondary.counter - 10);
    });

    it('a report without a counter from an ECU that sent counters before', async () => {
      const reports = await freshReports(a, { 'a-secondary': { report_counter: undefined } });
      await expectRefused(await manifest(a, { reports }), 400, 'missing_report_counter', 'a-secondary');
    });

    it('A16.6: implausible times (the future, unparseable, a previous time after the latest)', async () => {
      const future = iso(Date.now() + 3 * 24 * 3600 * 1000);
      for (const fields of [
        { timeserver_time: future, previous_timeserver_time: future },
        { timeserver_time: 'yesterday', previous_timeserver_time: 'yesterday' },
        { previous_timeserver_time: iso(Date.now() + 3600 * 1000) },
      ]) {
        const reports = await freshReports(a, { 'a-secondary': fields });
        await expectRefused(await manifest(a, { reports }), 400, 'implausible_time', 'a-secondary');
      }
    });

    it('A16.9 and identity: another vehicle’s id, another Primary, and vehicle B’s own manifest replayed over A’s connection', async () => {
      await expectRefused(await manifest(a, { reports: await freshReports(a), vin: 'car-b' }), 400, 'vehicle_mismatch');
      await expectRefused(await manifest(a, { reports: await freshReports(a), primarySerial: 'a-secondary' }), 400, 'primary_mismatch');
      const bState = (await dbState(ts)).get('ecus')?.filter((r) => r.includes('"car-b"'));
      await expectRefused(await manifest(b, { reports: await freshReports(b) }), 400, 'primary_mismatch');
      expect((await dbState(ts)).get('ecus')?.filter((r) => r.includes('"car-b"'))).toEqual(bState);
    });

    it('acknowledges an identical resend without changing anything, and skips a Secondary’s cached report', async () => {
      const reports = await freshReports(a);
      const body = await manifest(a, { reports });
      expect((await put(gwA, body)).status).toBe(200);
      const before = await dbState(ts);
      expect((await put(gwA, body)).status).toBe(200);
      expect(stateChanges(before, await dbState(ts))).toEqual([]);
      // A new Primary report with the Secondary's last report resent as it was (aktualizr forwards cached reports).
      a.primary.counter++;
      const next = { ...reports, 'a-primary': await signed(reportPayload(a.primary), a.primary.signer) };
      expect((await put(gwA, await manifest(a, { reports: next }))).status).toBe(200);
    });

    it('A16.7: records reported attacks (typed, and aktualizr’s string), at most 50 per report', async () => {
      const typed = [{ code: 'FREEZE', message: 'timestamp expired', repository: 'director', role: 'timestamp' }];
      const many = Array.from({ length: 60 }, (_, i) => ({ code: 'ROLLBACK', message: `attack ${i}` }));
      const reports = await freshReports(a, {
        'a-primary': { attacks: typed, attacks_detected: 'FREEZE: timestamp expired' },
        'a-secondary': { attacks: many },
      });
      expect((await put(gwA, await manifest(a, { reports }))).status).toBe(200);
      const onlyString = await freshReports(a, { 'a-primary': { attacks_detected: 'something is wrong' } });
      expect((await put(gwA, await manifest(a, { reports: onlyString }))).status).toBe(200);
      const api = apiFor(ts, ts.token);
      const reported = (
        await api<Array<{ source: string; code: string; ecu: string; repository: string | null }>>('GET', '/api/v1/devices/car-a/attacks')
      ).body.filter((x) => x.source === 'reported');
      expect(reported.filter((x) => x.ecu === 'a-primary')).toEqual(
        expect.arrayContaining([expect.objectContaining({ code: 'FREEZE', repository: 'director' }), expect.objectContaining({ code: 'ARBITRARY_SOFTWARE' })]),
      );
      const fromSecondary = reported.filter((x) => x.ecu === 'a-secondary');
      expect(fromSecondary).toHaveLength(50);
      expect(fromSecondary.map((x) => x.code)).toContain('TOO_MANY_ATTACKS');
      const fleet = (await api<Array<{ device: string }>>('GET', '/api/v1/attacks')).body;
      expect(fleet.some((x) => x.device === 'car-a')).toBe(true);
    });

    it('group commit: manifests of many devices at once are written together, each answered on its own', async () => {
      const api = apiFor(ts, ts.token);
      const fleet: TestDevice[] = [];
      for (let i = 0; i < 10; i++) {
        const id = `burst-${i}`;
        const r = await api<{ certificate: string; privateKey: string; serverCa: string }>('POST', `/api/v1/devices/${id}/credentials`, {});
        const d = new TestDevice(ts.gatewayUrl, { deviceId: id, cert: r.body.certificate, key: r.body.privateKey, ca: r.body.serverCa }, id, [
          makeEcu(`${id}-p`, 'board'),
          makeEcu(`${id}-s`, 'sec-board'),
        ]);
        expect((await d.registerEcus()).status).toBe(201);
        for (const e of d.ecus) e.counter = 5;
        expect((await d.request('PUT', '/director/manifest', await manifest(d), { 'content-type': 'application/json' })).status).toBe(200);
        fleet.push(d);
      }
      const send = (d: TestDevice, body: string) => d.request('PUT', '/director/manifest', body, { 'content-type': 'application/json' });
      const [replayer, racer, ...others] = fleet as [TestDevice, TestDevice, ...TestDevice[]];
      // In one burst: eight fresh manifests, one replayed counter, and two different manifests of one device with the same counters.
      const replayed = await manifest(replayer, { reports: await freshReports(replayer, { [replayer.primary.serial]: { report_counter: '5' } }) });
      const raceA = await manifest(racer, { reports: await freshReports(racer) });
      for (const e of racer.ecus) e.counter--;
      const raceB = await manifest(racer, { reports: await freshReports(racer, { [racer.primary.serial]: { attacks_detected: 'other content' } }) });
      const freshBodies = await Promise.all(others.map(async (d) => manifest(d, { reports: await freshReports(d) })));
      const answers = await Promise.all([
        send(replayer, replayed),
        send(racer, raceA),
        send(racer, raceB),
        ...others.map((d, i) => send(d, freshBodies[i] as string)),
      ]);
      expect(answers[0]?.status).toBe(409);
      expect(answers[0]?.json<{ code: string }>().code).toBe('replayed_report');
      // The same counters twice: exactly one is accepted, whichever came first; the other is a replay.
      expect([answers[1]?.status, answers[2]?.status].sort()).toEqual([200, 409]);
      expect(answers.slice(3).map((r) => r.status)).toEqual(others.map(() => 200));
      const store = ts.server.services.storage.store;
      for (const d of others) {
        const ecus = await store.listEcus('default', d.deviceId);
        expect(ecus.map((e) => Number(e.report_counter))).toEqual([6, 6]);
      }
      // The refused manifest wrote nothing: its ECUs still hold the counters of the last accepted one.
      expect((await store.listEcus('default', replayer.deviceId)).map((e) => Number(e.report_counter))).toEqual([5, 5]);
      expect((await store.listEcus('default', racer.deviceId)).map((e) => Number(e.report_counter))).toEqual([6, 6]);
      // The batch statements themselves (SQLite rarely forms batches here: its transactions are too quick to queue behind).
      const ids = [...others.map((d) => d.deviceId), 'no-such-device'];
      const locked = await ts.server.services.storage.transaction((s) => s.lockEcusOfDevices('default', ids));
      expect([...locked.keys()].sort()).toEqual(others.map((d) => d.deviceId).sort());
      for (const d of others) {
        expect(locked.get(d.deviceId)?.ecus.map((e) => e.serial)).toEqual([`${d.deviceId}-p`, `${d.deviceId}-s`]);
        expect(locked.get(d.deviceId)?.hasActiveAssignments).toBe(false);
      }
      const [d1, d2] = others as [TestDevice, TestDevice];
      const row = (device: TestDevice, serial: string, counter: number) => ({
        device_id: device.deviceId,
        serial,
        report_counter: counter,
        last_nonce: null,
        last_report_sha256: null,
        installed_filename: `fw-${counter}.bin`,
        installed_length: counter,
        installed_hashes_json: '{}',
        installed_at: 1,
      });
      await ts.server.services.storage.transaction((s) =>
        s.updateEcuReportsOfDevices('default', [row(d1, `${d1.deviceId}-p`, 70), row(d1, `${d1.deviceId}-s`, 71), row(d2, `${d2.deviceId}-s`, 72)]),
      );
      expect((await store.listEcus('default', d1.deviceId)).map((e) => [Number(e.report_counter), e.installed_filename])).toEqual([
        [70, 'fw-70.bin'],
        [71, 'fw-71.bin'],
      ]);
      expect((await store.listEcus('default', d2.deviceId)).map((e) => Number(e.report_counter))).toEqual([6, 72]);
    });

    it('stores reported file names exactly, quotes, braces, commas, backslashes and all (the fast path passes them as arrays)', async () => {
      const names = ['a "quoted" {braced},listed\\back.bin', 'NULL', 'ünï cödé ✓.bin'];
      for (const name of names) {
        // Twice: the first manifest of a device on an instance goes the careful way, the next one the fast way.
        for (let k = 0; k < 2; k++) {
          const reports = await freshReports(a, {
            'a-primary': { installed_image: { filepath: name, fileinfo: { hashes: { sha256: 'ef'.repeat(32) }, length: 7 + k } } },
          });
          const res = await put(gwA, await manifest(a, { reports }));
          expect(res.status, res.body.toString()).toBe(200);
          const ecus = await ts.server.services.storage.store.listEcus('default', 'car-a');
          expect(ecus.find((e) => e.serial === 'a-primary')).toMatchObject({ installed_filename: name, installed_length: 7 + k });
        }
      }
    });

    it('refuses a manifest before the ECUs are registered', async () => {
      const api = apiFor(ts, ts.token);
      const r = await api<{ certificate: string; privateKey: string; serverCa: string }>('POST', '/api/v1/devices/car-new/credentials', {});
      const fresh = new TestDevice(ts.gatewayUrl, { deviceId: 'car-new', cert: r.body.certificate, key: r.body.privateKey, ca: r.body.serverCa }, 'car-new', [
        makeEcu('n-primary', 'board'),
      ]);
      const res = await fresh.request('PUT', '/director/manifest', await manifest(fresh), { 'content-type': 'application/json' });
      expect(res.status).toBe(409);
      expect(res.json<{ code: string }>().code).toBe('ecus_not_registered');
    });
  });
}
