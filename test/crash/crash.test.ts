/**
 * Crash consistency of the server (issue 6): a real `uptide-server` process is
 * SIGKILLed while it stores images, signs metadata and processes manifests,
 * then started again on the same data, on SQLite and on PostgreSQL. After
 * every restart:
 *
 * - no partial state: every target's blob is on disk with its length and
 *   hash; the signed targets.json lists exactly the target table; the Image
 *   repository's and every device's Director chain (root → timestamp →
 *   snapshot → targets) verifies with the Standard's procedures (versions and
 *   hashes match); every device has all of its registered ECUs and exactly one
 *   Primary;
 * - no lost acknowledged write: every upload answered 201 is listed and
 *   downloads with its hash, every manifest answered 200 left its counters,
 *   every update answered 201 has its assignments.
 *
 * Kill points rotate over the iterations: an upload half sent (deterministic:
 * the body is cut mid-stream), after the k-th acknowledged upload while many
 * uploads and launches (each re-signing targets, snapshot and timestamp) are
 * in flight, and after the k-th acknowledged manifest while every device keeps
 * sending. Build first: `npx tsc -b` (CI's `npm test` does).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrustedRepository } from '@uptide/core';
import { TestDevice, makeEcu, type DeviceCredentials, type TestEcu } from '../../packages/server/src/testing/harness.js';
import { openDatabase, dropPostgresSchema } from '../../packages/server/src/storage/database.js';
import { PG_URL } from '../../packages/server/src/testing/harness.js';
import { ServerProcess } from './server-process.js';

type Mode = 'upload-half-sent' | 'signing' | 'manifests';
const MODES: Mode[] = ['upload-half-sent', 'signing', 'manifests'];
const DEVICES = 6;

interface Acked {
  readonly uploads: Map<string, string>;
  readonly counters: Map<string, number>;
  readonly updates: Map<string, string>;
}

interface Vehicle {
  readonly id: string;
  readonly creds: DeviceCredentials;
  readonly ecus: TestEcu[];
  /** The image of its update, once one was launched and acknowledged. */
  image?: { filename: string; sha256: string; length: number };
}

class World {
  server!: ServerProcess;
  readonly vehicles: Vehicle[] = [];
  readonly acked: Acked = { uploads: new Map(), counters: new Map(), updates: new Map() };
  readonly log: string[] = [];
  constructor(
    readonly dataDir: string,
    readonly schema: string | undefined,
    readonly generatedPassphrase = false,
  ) {}

  async api<T = unknown>(method: string, path: string, body?: unknown, raw?: Buffer): Promise<{ status: number; body: T; raw: Buffer }> {
    const res = await fetch(this.server.adminUrl + path, {
      method,
      headers: {
        authorization: `Bearer ${this.server.token}`,
        ...(raw ? { 'content-type': 'application/octet-stream' } : body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(raw ? { body: raw } : body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const buf = Buffer.from(await res.arrayBuffer());
    const ct = res.headers.get('content-type') ?? '';
    return { status: res.status, body: (ct.includes('json') && buf.length ? JSON.parse(buf.toString()) : buf) as T, raw: buf };
  }

  device(v: Vehicle): TestDevice {
    return new TestDevice(this.server.gatewayUrl, v.creds, v.id, v.ecus);
  }

  async start(): Promise<void> {
    this.server = await ServerProcess.start({
      dataDir: this.dataDir,
      generatedPassphrase: this.generatedPassphrase,
      ...(this.schema ? { schema: this.schema } : {}),
    });
  }

  async setup(): Promise<void> {
    for (let i = 0; i < DEVICES; i++) {
      const id = `crash-${i}`;
      const r = await this.api<{ certificate: string; privateKey: string; serverCa: string }>('POST', `/api/v1/devices/${id}/credentials`, {});
      expect(r.status).toBe(201);
      const v: Vehicle = {
        id,
        creds: { deviceId: id, cert: r.body.certificate, key: r.body.privateKey, ca: r.body.serverCa },
        ecus: [makeEcu(`${id}-p`, 'crash-a'), makeEcu(`${id}-s`, 'crash-b')],
      };
      const d = this.device(v);
      expect((await d.registerEcus()).status).toBe(201);
      expect((await d.sendManifest()).status).toBe(200);
      this.ackManifest(v);
      this.vehicles.push(v);
    }
  }

  ackManifest(v: Vehicle): void {
    for (const e of v.ecus) this.acked.counters.set(`${v.id}/${e.serial}`, e.counter);
  }

  /** An upload; recorded as acknowledged only on 201. */
  async upload(filename: string, bytes: Buffer): Promise<void> {
    const r = await this.api('PUT', `/api/v1/user_repo/targets/${filename}?hardwareIds=crash-a,crash-b&name=${filename}&version=1`, undefined, bytes).catch(
      () => undefined,
    );
    if (r?.status === 201) this.acked.uploads.set(filename, createHash('sha256').update(bytes).digest('hex'));
  }

  /** Streams a large upload and resolves once half of it is written; the request itself is left to die. */
  uploadHalf(filename: string, size: number): Promise<void> {
    const url = new URL(this.server.adminUrl);
    const req = httpRequest({
      host: url.hostname,
      port: url.port,
      method: 'PUT',
      path: `/api/v1/user_repo/targets/${filename}?hardwareIds=crash-a`,
      headers: { authorization: `Bearer ${this.server.token}`, 'content-type': 'application/octet-stream', 'content-length': String(size) },
    });
    req.on('error', () => undefined);
    return new Promise((ok) => {
      const chunk = randomBytes(256 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent < size / 2) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        // Give the server a moment to take in what was sent, so the kill lands mid-body, not before it.
        setTimeout(ok, 100);
      };
      pump();
    });
  }
}

/** Runs `work` until `stop` says so, then kills the server (the kill point), and waits for the work to end. */
async function killWhen(world: World, work: (killed: () => boolean, ack: () => void) => Promise<void>[], after: number): Promise<void> {
  let acks = 0;
  let killed = false;
  let kill: Promise<void> = Promise.resolve();
  const ack = () => {
    acks++;
    if (acks === after && !killed) {
      killed = true;
      kill = world.server.kill();
    }
  };
  const tasks = work(() => killed, ack);
  await Promise.all(tasks.map((t) => t.catch(() => undefined)));
  if (!killed) {
    killed = true;
    kill = world.server.kill();
  }
  await kill;
}

async function iteration(world: World, mode: Mode, i: number): Promise<void> {
  if (mode === 'upload-half-sent') {
    await world.upload(`it${i}-before.bin`, randomBytes(10_000));
    await world.uploadHalf(`it${i}-big.bin`, 8 * 1024 * 1024);
    await world.server.kill();
    return;
  }
  if (mode === 'signing') {
    // Uploads re-sign targets, snapshot and timestamp; launches sign Director metadata on the next check-in.
    await killWhen(
      world,
      (killed, ack) => [
        ...Array.from({ length: 12 }, async (_, j) => {
          if (killed()) return;
          const before = world.acked.uploads.size;
          await world.upload(`it${i}-s${j}.bin`, randomBytes(2000 + j));
          if (world.acked.uploads.size > before) ack();
        }),
        ...world.vehicles.map(async (v) => {
          const image = [...world.acked.uploads.keys()].pop();
          if (!image || killed() || v.image) return;
          const r = await world.api<{ id: string; affected: string[] }>('POST', '/api/v1/updates', { image, devices: [v.id] }).catch(() => undefined);
          if (r?.status === 201 && r.body.affected.includes(v.id)) {
            world.acked.updates.set(r.body.id, v.id);
            const t = (await world.api<{ hashes: Record<string, string>; length: number }>('GET', `/api/v1/images/${image}`)).body;
            v.image = { filename: image, sha256: t.hashes['sha256'] as string, length: t.length };
          }
        }),
      ],
      3 + (i % 4),
    );
    return;
  }
  // Manifests from every device, back to back; those with an update report it installed (assignments complete,
  // Director metadata is signed again).
  await killWhen(
    world,
    (killed, ack) =>
      world.vehicles.map(async (v) => {
        const d = world.device(v);
        for (let n = 0; n < 20 && !killed(); n++) {
          if (v.image) for (const e of v.ecus) e.installed = { filename: v.image.filename, length: v.image.length, hashes: { sha256: v.image.sha256 } };
          const r = await d.sendManifest().catch(() => undefined);
          if (r?.status !== 200) return;
          world.ackManifest(v);
          ack();
          await d.request('GET', '/director/targets.json').catch(() => undefined);
        }
      }),
    8 + i,
  );
}

/** Everything that must hold after a restart. */
async function checkConsistency(world: World, where: string): Promise<void> {
  const { api } = { api: world.api.bind(world) };
  expect((await api('GET', '/healthz')).status, where).toBe(200);
  const database = await openDatabase(world.schema ? PG_URL : `sqlite:${join(world.dataDir, 'uptide.db')}`, world.schema ? { schema: world.schema } : {});
  try {
    const db = database.db;
    // Targets and blobs: every target's bytes are on disk, whole.
    const targets = await db.selectFrom('targets').selectAll().where('namespace', '=', 'default').execute();
    for (const t of targets) {
      expect(t.blob_id, `${where}: ${t.filename} has no blob`).not.toBeNull();
      const path = join(world.dataDir, 'blobs', (t.blob_id as string).slice(0, 2), t.blob_id as string);
      expect(existsSync(path), `${where}: blob of ${t.filename} missing`).toBe(true);
      const bytes = readFileSync(path);
      expect(bytes.length, `${where}: ${t.filename} length`).toBe(Number(t.length));
      expect(createHash('sha256').update(bytes).digest('hex'), `${where}: ${t.filename} hash`).toBe(t.sha256);
    }
    // Acknowledged uploads survived.
    for (const [filename, sha256] of world.acked.uploads) {
      const row = targets.find((t) => t.filename === filename);
      expect(row?.sha256, `${where}: acknowledged upload ${filename} lost`).toBe(sha256);
    }
    // The Image repository's chain verifies, and its targets.json lists exactly the table.
    const now = new Date();
    const image = new TrustedRepository(
      { root: new Uint8Array((await api<Buffer>('GET', '/api/v1/user_repo/1.root.json')).raw) },
      { dialect: 'uptane', repository: 'image', now },
    );
    for (let v = 2; ; v++) {
      const r = await api<Buffer>('GET', `/api/v1/user_repo/${v}.root.json`);
      if (r.status !== 200) break;
      image.updateRoot(new Uint8Array(r.raw));
    }
    image.updateTimestamp(new Uint8Array((await api<Buffer>('GET', '/api/v1/user_repo/timestamp.json')).raw));
    image.updateSnapshot(new Uint8Array((await api<Buffer>('GET', '/api/v1/user_repo/snapshot.json')).raw));
    const signed = image.updateTargets(new Uint8Array((await api<Buffer>('GET', '/api/v1/user_repo/targets.json')).raw)).signed;
    expect([...signed.targets.keys()].sort(), `${where}: targets.json vs the target table`).toEqual(targets.map((t) => t.filename).sort());
    for (const t of targets) expect(signed.targets.get(t.filename)?.hashes['sha256'], `${where}: ${t.filename} in targets.json`).toBe(t.sha256);
    // A few acknowledged images download whole.
    for (const [filename, sha256] of [...world.acked.uploads].slice(-3)) {
      const r = await api<Buffer>('GET', `/api/v1/user_repo/targets/${filename}`);
      expect(createHash('sha256').update(r.raw).digest('hex'), `${where}: download of ${filename}`).toBe(sha256);
    }
    // ECU sets: all or nothing, one Primary; acknowledged counters kept.
    const devices = await db.selectFrom('devices').selectAll().where('namespace', '=', 'default').execute();
    const ecus = await db.selectFrom('ecus').selectAll().where('namespace', '=', 'default').execute();
    for (const v of world.vehicles) {
      const mine = ecus.filter((e) => e.device_id === v.id);
      expect(mine.map((e) => e.serial).sort(), `${where}: ECUs of ${v.id}`).toEqual(v.ecus.map((e) => e.serial).sort());
      const primaries = mine.filter((e) => e.is_primary === 1);
      expect(
        primaries.map((e) => e.serial),
        `${where}: Primary of ${v.id}`,
      ).toEqual([v.ecus[0]?.serial]);
      expect(devices.find((d) => d.id === v.id)?.primary_ecu_serial).toBe(v.ecus[0]?.serial);
      for (const e of mine) {
        const acked = world.acked.counters.get(`${v.id}/${e.serial}`) ?? 0;
        expect(Number(e.report_counter), `${where}: acknowledged manifest of ${e.serial} lost`).toBeGreaterThanOrEqual(acked);
      }
    }
    // Acknowledged launches have their assignments.
    const assignments = await db.selectFrom('assignments').selectAll().where('namespace', '=', 'default').execute();
    for (const [update, device] of world.acked.updates) {
      expect(assignments.filter((a) => a.update_id === update && a.device_id === device).length, `${where}: assignments of acknowledged update ${update}`).toBe(
        2,
      );
    }
  } finally {
    await database.close();
  }
  // Every device's Director chain verifies; its targets name the vehicle and match its active assignments.
  const directorRoot = new Uint8Array((await api<Buffer>('GET', '/api/v1/admin/repo/1.root.json')).raw);
  for (const v of world.vehicles) {
    const d = world.device(v);
    const get = async (file: string) => {
      const r = await d.request('GET', `/director/${file}`);
      if (r.status !== 200) throw new Error(`${where}: ${v.id} GET /director/${file}: ${r.status} ${r.body.toString()}`);
      return new Uint8Array(r.body);
    };
    const director = new TrustedRepository({ root: directorRoot }, { dialect: 'uptane', repository: 'director', now: new Date() });
    for (let n = 2; ; n++) {
      const r = await d.request('GET', `/director/${n}.root.json`);
      if (r.status !== 200) break;
      director.updateRoot(new Uint8Array(r.body));
    }
    director.updateTimestamp(await get('timestamp.json'));
    director.updateSnapshot(await get('snapshot.json'));
    const t = director.updateTargets(await get('targets.json')).signed;
    expect(t.vehicleId, where).toBe(v.id);
    const active = (await api<Array<{ targets: Record<string, { image: { filepath: string } }> }>>('GET', `/api/v1/assignments/${v.id}`)).body;
    const assigned = new Set(active.flatMap((a) => Object.values(a.targets).map((x) => x.image.filepath)));
    expect(new Set(t.targets.keys()), `${where}: Director targets of ${v.id} vs its assignments`).toEqual(assigned);
  }
}

const ITERATIONS: Record<'sqlite' | 'postgres', number> = { sqlite: 6, postgres: 3 };

describe('uptide-server killed during its first start', () => {
  it('comes up on the next start with a working admin token and a consistent repository', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'uptide-crash-first-'));
    try {
      // Killed while it creates keys, CAs, the default namespace and the first token; then started to the end.
      for (const ms of [300, 700, 1100, 1500]) await ServerProcess.startAndKillAfter({ dataDir, generatedPassphrase: true }, ms);
      const world = new World(dataDir, undefined, true);
      await world.start();
      try {
        expect((await world.api('GET', '/api/v1/whoami')).status).toBe(200);
        await world.setup();
        await checkConsistency(world, 'after kills during the first start');
      } finally {
        await world.server.kill();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});

for (const db of ['sqlite', 'postgres'] as const) {
  describe(`uptide-server killed and restarted on ${db}`, () => {
    let world: World;
    beforeAll(async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'uptide-crash-'));
      world = new World(dataDir, db === 'postgres' ? `crash_${randomUUID().replace(/-/g, '').slice(0, 16)}` : undefined);
      await world.start();
      await world.setup();
    }, 60_000);
    afterAll(async () => {
      await world?.server?.kill();
      if (world) {
        rmSync(world.dataDir, { recursive: true, force: true });
        if (world.schema) await dropPostgresSchema(PG_URL, world.schema);
      }
    });

    it(`keeps no partial state and loses no acknowledged write over ${ITERATIONS[db]} kills`, async () => {
      for (let i = 0; i < ITERATIONS[db]; i++) {
        const mode = MODES[i % MODES.length] as Mode;
        await iteration(world, mode, i);
        await world.start();
        await checkConsistency(world, `after kill ${i} (${mode})`);
      }
      const tmp = join(world.dataDir, 'blobs', 'tmp');
      const leftovers = existsSync(tmp) ? readdirSync(tmp).length : 0;
      console.log(
        `[crash ${db}] ${ITERATIONS[db]} kills; acknowledged: ${world.acked.uploads.size} uploads, ${world.acked.updates.size} launches; ` +
          `${leftovers} unfinished upload files left in blobs/tmp (never referenced; swept after a day)`,
      );
    }, 120_000);
  });
}
