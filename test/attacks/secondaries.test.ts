/**
 * A compromised Primary against its Secondaries (A18, capability (d)), a
 * partial bundle (A5), an image handed to the wrong ECU (A13.3) and an image
 * that differs from its metadata on the way to a Secondary (A10.8): real
 * `uptide-secondary` ECUs (full and partial verification) behind aktualizr's
 * IP-Secondary protocol, a real Primary, the real server behind the man in the
 * middle. The attacker who owns the Primary talks to the Secondaries itself
 * with the protocol client; what a Secondary detects reaches the Director in
 * its signed report, relayed by the next honest cycle, and shows in the admin API.
 *
 * More variants against the Secondary alone (freeze, hardware id, endless
 * image, forged roots) are in packages/client/src/secondary/ tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { randomBytes, createHash } from 'node:crypto';
import { join } from 'node:path';
import { LocalSigner, Metadata, TargetFile, Targets, expiresIn, generatePrivateKey, parseTargets } from '@uptide/core';
import { RESULT_CODE, SecondaryClient, type MetaJson, type PutMetaReq2 } from '@uptide/client';
import type { Secondary } from '../../packages/client/src/secondary/secondary.js';
import { primarySecondariesToml, startSecondary, writeSecondarySetup, type SecondarySetup } from '../../packages/client/src/secondary/testing/setup.js';
import { ServerWorld, type Vehicle } from './harness/server-world.js';
import { expectDefeated, snapshotTree } from './harness/defeated.js';
import { currentFiles, exportKeys, type RepoKeys } from './harness/forge.js';

type Kind = 'full' | 'partial';

interface Sec {
  readonly kind: Kind;
  readonly hw: string;
  readonly setup: SecondarySetup;
  readonly secondary: Secondary;
  readonly port: number;
  /** The attacker who owns the Primary, speaking the protocol to this Secondary. */
  readonly evil: SecondaryClient;
}

interface Car {
  readonly v: Vehicle;
  readonly full: Sec;
  readonly partial: Sec;
}

let world: ServerWorld;
let dk: RepoKeys;
const running: Secondary[] = [];

beforeAll(async () => {
  world = await ServerWorld.start();
  for (const kind of ['full', 'partial'] as const) {
    for (const n of [1, 2]) await world.upload(`${kind}-${n}.bin`, randomBytes(3000 + n), { hardwareIds: [`${kind}-board`], releaseCounter: n });
  }
  dk = await exportKeys(world.ts, 'director');
});
afterAll(async () => {
  await world?.close();
  for (const s of running) await s.close();
});

const bundle1 = [
  { name: 'full-1.bin', hardwareId: 'full-board' },
  { name: 'partial-1.bin', hardwareId: 'partial-board' },
];
const bundle2 = [
  { name: 'full-2.bin', hardwareId: 'full-board' },
  { name: 'partial-2.bin', hardwareId: 'partial-board' },
];

/** A vehicle with a full and a partial Secondary, each running its image 1; the Primary runs fw-1. */
async function car(): Promise<Car> {
  const roots = {
    director: new Uint8Array((await world.ts.api('GET', '/api/v1/admin/repo/1.root.json')).raw),
    image: new Uint8Array((await world.ts.api('GET', '/api/v1/user_repo/1.root.json')).raw),
  };
  const start = async (kind: Kind): Promise<Sec> => {
    const setup = writeSecondarySetup(roots, { verification: kind });
    const { secondary, endpoint } = await startSecondary(setup);
    running.push(secondary);
    return { kind, hw: `${kind}-board`, setup, secondary, port: endpoint.port, evil: new SecondaryClient(endpoint, { timeoutMs: 10_000 }) };
  };
  const full = await start('full');
  const partial = await start('partial');
  const v = await world.vehicle({
    noUpdate: true,
    extraToml: primarySecondariesToml([
      { port: full.port, verification: 'full' },
      { port: partial.port, verification: 'partial' },
    ]),
  });
  await world.launchBundle(v.deviceId, bundle1);
  expect((await v.primary.cycle()).installed).toEqual(['full-1.bin', 'partial-1.bin']);
  return { v, full, partial };
}

/** What the honest Primary sends a Secondary: the current metadata (Director: root and targets, as stock aktualizr). */
async function genuine(c: Car, kind: Kind, targets?: Uint8Array): Promise<PutMetaReq2> {
  const director = await currentFiles(c.v, 'director');
  const root = (await world.ts.api('GET', '/api/v1/admin/repo/root.json')).raw;
  const directorRepo: MetaJson[] = [
    { role: 'root', json: root },
    { role: 'targets', json: targets ?? director.targets },
  ];
  const image = await world.imageFiles();
  const imageRoot = (await world.ts.api('GET', '/api/v1/user_repo/root.json')).raw;
  const imageRepo: MetaJson[] =
    kind === 'full'
      ? [
          { role: 'root', json: imageRoot },
          { role: 'timestamp', json: image.timestamp },
          { role: 'snapshot', json: image.snapshot },
          { role: 'targets', json: image.targets },
        ]
      : [];
  return { type: 'putMetaReq2', directorRepo, imageRepo };
}

async function upload(s: Sec, bytes: Uint8Array): Promise<number> {
  const conn = await s.evil.connect();
  try {
    let last: number = RESULT_CODE.ok;
    for (let off = 0; off < bytes.length && last === RESULT_CODE.ok; off += 1024) {
      last = (await conn.request({ type: 'uploadDataReq', data: bytes.subarray(off, off + 1024) }, { expect: 'uploadDataResp' })).result;
    }
    return last;
  } finally {
    await conn.close();
  }
}

/**
 * The Secondary's side of "defeated": nothing installed, its trusted metadata
 * unchanged, the typed attack pending in its report; then the honest Primary's
 * next cycle relays that report (the Director shows it) and installs image 2.
 */
async function expectSecondaryRefused(c: Car, s: Sec, code: string, attack: () => Promise<void>): Promise<void> {
  const metadata = snapshotTree(join(s.setup.storage, 'metadata'));
  const installedFile = readFileSync(s.setup.installedPath);
  const installed = s.secondary.installed;
  await attack();
  const after = snapshotTree(join(s.setup.storage, 'metadata'));
  expect([...after.keys()].sort()).toEqual([...metadata.keys()].sort());
  for (const [k, b] of metadata) expect(after.get(k)?.equals(b), `metadata/${k} changed`).toBe(true);
  expect(readFileSync(s.setup.installedPath).equals(installedFile)).toBe(true);
  expect(s.secondary.installed).toEqual(installed);
  expect(s.secondary.store.state.pendingAttacks.map((a) => a.code)).toContain(code);
  if (!(await world.assigned(c.v.deviceId)).includes('full-2.bin')) await world.launchBundle(c.v.deviceId, bundle2);
  const honest = await c.v.primary.cycle();
  expect(honest.installed).toEqual(['full-2.bin', 'partial-2.bin']);
  const reported = (await c.v.serverAttacks()).filter((a) => a.ecu === s.secondary.serial && a.source === 'reported').map((a) => a.code);
  expect(reported).toContain(code);
  expect(s.secondary.store.state.pendingAttacks).toEqual([]);
}

describe.each<Kind>(['full', 'partial'])('A18 a compromised Primary against a %s-verification Secondary', (kind) => {
  it(`A18.1 Director targets re-signed with a key the ${kind} Secondary does not trust → ARBITRARY_SOFTWARE`, async () => {
    const c = await car();
    const s = c[kind];
    await expectSecondaryRefused(c, s, 'ARBITRARY_SOFTWARE', async () => {
      const bytes = randomBytes(2048);
      const evil = new TargetFile(
        'evil.bin',
        bytes.length,
        { sha256: createHash('sha256').update(bytes).digest('hex') },
        {
          ecuIdentifiers: { [s.secondary.serial]: { hardwareId: s.hw } },
        },
      );
      const attacker = new LocalSigner(await generatePrivateKey('ed25519'), 'uptane');
      const forged = await Metadata.create(
        new Targets({ version: 1000, expires: expiresIn(new Date(), 86400), targets: new Map([[evil.name, evil]]), custom: { vehicleId: c.v.deviceId } }),
        'uptane',
        [attacker],
      );
      const r = await s.evil.request(await genuine(c, kind, forged.toBytes()), { expect: 'putMetaResp2' });
      expect(r.result).toBe(RESULT_CODE.validationFailed);
      expect(await upload(s, bytes)).not.toBe(RESULT_CODE.ok);
      expect((await s.evil.request({ type: 'installReq', hash: 'evil.bin' }, { expect: 'installResp2' })).result).not.toBe(RESULT_CODE.ok);
    });
  });

  it(`A18.2 older Director targets than the ${kind} Secondary trusts → ROLLBACK`, async () => {
    const c = await car();
    const s = c[kind];
    const first = c.v.mitm.recorded(c.v.deviceId, '/director/targets.json')[0] as Buffer;
    await expectSecondaryRefused(c, s, 'ROLLBACK', async () => {
      const r = await s.evil.request(await genuine(c, kind, first), { expect: 'putMetaResp2' });
      expect(r.result).toBe(RESULT_CODE.validationFailed);
      expect(r.description).toMatch(/^ROLLBACK/);
    });
  });
});

describe('A18 a compromised Primary with a compromised Director key', () => {
  it('A18.3 an image the Image repository never signed: the full Secondary refuses (TARGET_NOT_FOUND); a partial Secondary installs it (documented limitation)', async () => {
    const c = await car();
    const current = parseTargets((await currentFiles(c.v, 'director')).targets, 'uptane').signed;
    const bytes = randomBytes(2048);
    const entry = (s: Sec) =>
      new TargetFile(
        'malware.bin',
        bytes.length,
        { sha256: createHash('sha256').update(bytes).digest('hex') },
        {
          ecuIdentifiers: { [s.secondary.serial]: { hardwareId: s.hw } },
          uri: null,
        },
      );
    const signed = async (s: Sec) =>
      (
        await Metadata.create(
          new Targets({
            version: current.version + 1,
            expires: expiresIn(new Date(), 86400),
            targets: new Map([['malware.bin', entry(s)]]),
            custom: current.custom,
          }),
          'uptane',
          dk.signers.targets,
        )
      ).toBytes();
    // The full Secondary checks the Image repository itself.
    await expectSecondaryRefused(c, c.full, 'TARGET_NOT_FOUND', async () => {
      const r = await c.full.evil.request(await genuine(c, 'full', await signed(c.full)), { expect: 'putMetaResp2' });
      expect(r.result).toBe(RESULT_CODE.validationFailed);
      expect(r.description).toMatch(/^TARGET_NOT_FOUND/);
    });
    // The partial Secondary trusts the Director's signature alone (uptane-standard.md §5 item 7).
    const c2 = await car();
    const cur2 = parseTargets((await currentFiles(c2.v, 'director')).targets, 'uptane').signed;
    const forged = await Metadata.create(
      new Targets({
        version: cur2.version + 1,
        expires: expiresIn(new Date(), 86400),
        targets: new Map([['malware.bin', entry(c2.partial)]]),
        custom: cur2.custom,
      }),
      'uptane',
      dk.signers.targets,
    );
    expect((await c2.partial.evil.request(await genuine(c2, 'partial', forged.toBytes()), { expect: 'putMetaResp2' })).result).toBe(RESULT_CODE.ok);
    expect(await upload(c2.partial, bytes)).toBe(RESULT_CODE.ok);
    expect((await c2.partial.evil.request({ type: 'installReq', hash: 'malware.bin' }, { expect: 'installResp2' })).result).toBe(RESULT_CODE.ok);
    expect(readFileSync(c2.partial.setup.installedPath).equals(bytes)).toBe(true);
  });
});

describe('Secondaries: wrong ECU, wrong bytes, partial bundle', () => {
  it('A13.3 an image directed to the partial Secondary handed to the full one as its own → BAD_ECU_ID', async () => {
    const c = await car();
    await world.launchBundle(c.v.deviceId, bundle2);
    await expectSecondaryRefused(c, c.full, 'BAD_ECU_ID', async () => {
      expect((await c.full.evil.request(await genuine(c, 'full'), { expect: 'putMetaResp2' })).result).toBe(RESULT_CODE.ok);
      expect(await upload(c.full, world.image('full-2.bin').bytes)).toBe(RESULT_CODE.ok);
      const r = await c.full.evil.request({ type: 'installReq', hash: 'partial-2.bin' }, { expect: 'installResp2' });
      expect(r.result).toBe(RESULT_CODE.validationFailed);
      expect(r.description).toMatch(/^BAD_ECU_ID/);
    });
  });

  it('A10.8 the image a compromised Primary hands a Secondary differs from the metadata → ARBITRARY_SOFTWARE', async () => {
    const c = await car();
    await world.launchBundle(c.v.deviceId, bundle2);
    await expectSecondaryRefused(c, c.partial, 'ARBITRARY_SOFTWARE', async () => {
      expect((await c.partial.evil.request(await genuine(c, 'partial'), { expect: 'putMetaResp2' })).result).toBe(RESULT_CODE.ok);
      const tampered = Buffer.from(world.image('partial-2.bin').bytes);
      tampered[10] = (tampered[10] as number) ^ 0xff;
      expect(await upload(c.partial, tampered)).toBe(RESULT_CODE.ok);
      const r = await c.partial.evil.request({ type: 'installReq', hash: 'partial-2.bin' }, { expect: 'installResp2' });
      expect(r.result).toBe(RESULT_CODE.downloadFailed);
      expect(r.description).toMatch(/^ARBITRARY_SOFTWARE/);
    });
  });

  it("A5 partial bundle: a Secondary's image blocked on the way → no ECU installs anything; the Director records the failure; the bundle installs next", async () => {
    const c = await car();
    const v = c.v;
    const full1 = readFileSync(c.full.setup.installedPath);
    const bundle = [{ name: 'fw-2.bin', hardwareId: 'board-a' }, ...bundle2];
    v.relaunch = () => world.launchBundle(v.deviceId, bundle);
    await v.relaunch();
    await expectDefeated(v, () => v.mitm.rule({ path: '/repo/targets/full-2.bin', device: v.deviceId, status: 404, body: '' }), {
      code: 'HTTP_STATUS',
      report: 'DOWNLOAD_FAILED',
      check: async () => {
        // The Primary downloads every image before any ECU installs: the Secondaries kept theirs too.
        expect(readFileSync(c.full.setup.installedPath).equals(full1)).toBe(true);
        expect(c.partial.secondary.installed?.filename).toBe('partial-1.bin');
        // Every ECU of the bundle is reported failed, so the Director will not build on a half-installed bundle.
        const last = v.manifests().at(-1);
        expect(last?.installationReport?.items.map((i) => i.ecu).sort()).toEqual([v.serial, c.full.secondary.serial, c.partial.secondary.serial].sort());
        expect((await world.assigned(v.deviceId)).length).toBe(0);
        // The Secondaries' fresh signed reports still show their old images: the Director knows where the vehicle stands.
        const ecus = await world.ts.api<Array<{ id: string; image: { filepath: string } | null }>>('GET', `/api/v1/admin/devices/${v.deviceId}`);
        const onServer = Object.fromEntries(ecus.body.map((e) => [e.id, e.image?.filepath]));
        expect(onServer[c.full.secondary.serial]).toBe('full-1.bin');
        expect(onServer[c.partial.secondary.serial]).toBe('partial-1.bin');
      },
    });
    expect(c.full.secondary.installed?.filename).toBe('full-2.bin');
    expect(c.partial.secondary.installed?.filename).toBe('partial-2.bin');
  });
});
