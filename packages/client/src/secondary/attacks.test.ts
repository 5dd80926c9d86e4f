/**
 * A compromised Primary (uptane-standard.md A18) against each kind of
 * Secondary: the attacker drives the Secondary over the IP-Secondary protocol
 * with metadata and images of its choosing. For every attack class: nothing
 * is installed, the Secondary's trusted metadata stays as it was, the typed
 * attack is in its next signed report (which reaches the Director through the
 * honest Primary), and the next honest cycle installs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { expiresIn, Metadata, TargetFile, Targets, type JsonObject } from '@uptide/core';
import { loadConfig } from '../config/config.js';
import { memoryLogger } from '../primary/log.js';
import { Primary } from '../primary/primary.js';
import { writeDeviceSetup } from '../testing/device-setup.js';
import { newSigner, RepoMock, RootChain } from '../testing/repo-mock.js';
import { RESULT_CODE, SecondaryClient, type MetaJson, type PutMetaReq2 } from './protocol/index.js';
import type { Secondary } from './secondary.js';
import { primarySecondariesToml, startSecondary, writeSecondarySetup, type SecondarySetup } from './testing/setup.js';

type Kind = 'full' | 'partial';

/** Every file under a directory, by relative path. */
function snapshotDir(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string, rel: string): void => {
    if (!existsSync(d)) return;
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p, `${rel}${n}/`);
      else out.set(`${rel}${n}`, readFileSync(p).toString('base64'));
    }
  };
  walk(dir, '');
  return out;
}

describe.each<Kind>(['full', 'partial'])('a compromised Primary against a %s-verification Secondary', (kind) => {
  let mock: RepoMock;
  let primary: Primary;
  let deviceId: string;
  let setup: SecondarySetup;
  let secondary: Secondary;
  let evil: SecondaryClient;
  let version = 0;
  const log = memoryLogger();
  const hw = `${kind}-board`;

  beforeAll(async () => {
    mock = await RepoMock.start();
    setup = writeSecondarySetup({ director: mock.directorRoot.bytes(1) as Uint8Array, image: mock.image.root.bytes(1) as Uint8Array }, { verification: kind });
    const started = await startSecondary(setup, log);
    secondary = started.secondary;
    evil = new SecondaryClient(started.endpoint, { timeoutMs: 10_000 });
    const device = writeDeviceSetup(mock, { extraToml: primarySecondariesToml([{ port: started.endpoint.port, verification: kind }]) });
    deviceId = device.deviceId;
    primary = await Primary.open({ config: loadConfig(device.configPath), log, retryDelayMs: 10 });
    // Registration, then a first image.
    expect((await primary.cycle()).ok).toBe(true);
    await honestCycle();
  });

  afterAll(async () => {
    await primary?.close();
    await secondary?.close();
    await mock?.close();
  });

  /** A new image for the Secondary, installed through the honest Primary. Returns the manifests the cycle sent. */
  async function honestCycle(): Promise<ReturnType<RepoMock['manifestsOf']>> {
    const before = mock.manifestsOf(deviceId).length;
    const name = `fw-${++version}.bin`;
    const bytes = randomBytes(1500 + version);
    await mock.addImage(name, bytes, { hardwareIds: [hw], releaseCounter: version });
    await mock.assign(deviceId, name, { ecuSerial: secondary.serial });
    const r = await primary.cycle();
    expect(r.ok, log.lines.slice(-20).join('\n')).toBe(true);
    expect(r.installed).toEqual([name]);
    expect(readFileSync(setup.installedPath).equals(bytes)).toBe(true);
    expect(secondary.installed?.filename).toBe(name);
    return mock.manifestsOf(deviceId).slice(before);
  }

  /** What the honest Primary would send: the current metadata of both repositories (Director: root and targets only, as aktualizr). */
  function files(options: { directorExtras?: boolean; targets?: Uint8Array } = {}): PutMetaReq2 {
    const d = mock.director(deviceId);
    const directorRepo: MetaJson[] = [
      { role: 'root', json: mock.directorRoot.latest },
      { role: 'targets', json: options.targets ?? d.targetsFile.bytes },
    ];
    if (options.directorExtras ?? kind === 'full')
      directorRepo.push({ role: 'timestamp', json: d.timestamp.bytes }, { role: 'snapshot', json: d.snapshot.bytes });
    const imageRepo: MetaJson[] =
      kind === 'full'
        ? [
            { role: 'root', json: mock.image.root.latest },
            { role: 'timestamp', json: mock.image.timestamp.bytes },
            { role: 'snapshot', json: mock.image.snapshot.bytes },
            { role: 'targets', json: mock.image.targetsFile.bytes },
          ]
        : [];
    return { type: 'putMetaReq2', directorRepo, imageRepo };
  }

  /**
   * Runs an attack, then checks: nothing installed, trusted metadata and
   * state as before, and the typed attack in the Secondary's next report,
   * delivered by the next honest cycle (which installs).
   */
  async function expectRefused(code: string, attack: () => Promise<void>): Promise<void> {
    const metadata = snapshotDir(join(setup.storage, 'metadata'));
    const installedFile = readFileSync(setup.installedPath);
    const installed = secondary.installed;
    const releaseCounter = secondary.store.state.releaseCounters[secondary.serial];
    await attack();
    expect(snapshotDir(join(setup.storage, 'metadata'))).toEqual(metadata);
    expect(readFileSync(setup.installedPath).equals(installedFile)).toBe(true);
    expect(secondary.installed).toEqual(installed);
    expect(secondary.store.state.releaseCounters[secondary.serial]).toBe(releaseCounter);
    expect(secondary.store.state.pendingAttacks.map((a) => a.code)).toContain(code);
    const manifests = await honestCycle();
    const reported = manifests.flatMap((m) => m.manifest?.reports.get(secondary.serial)?.attacks ?? []);
    expect(reported.map((a) => a.code)).toContain(code);
    expect(manifests.every((m) => m.verified)).toBe(true);
    expect(secondary.store.state.pendingAttacks).toEqual([]);
  }

  async function putMeta(req: PutMetaReq2, expected: number = RESULT_CODE.validationFailed): Promise<string> {
    const r = await evil.request(req, { expect: 'putMetaResp2' });
    expect(r.result, r.description).toBe(expected);
    return r.description;
  }

  /** Directs a fresh image to an ECU (with the Director's real keys) without letting the honest Primary act on it. */
  async function directed(options: { ecus?: Record<string, string>; custom?: JsonObject } = {}): Promise<{ name: string; bytes: Buffer }> {
    const name = `attack-${version}-${randomBytes(3).toString('hex')}.bin`;
    const bytes = randomBytes(2048);
    await mock.addImage(name, bytes, { hardwareIds: [hw], releaseCounter: version + 1 });
    const t = mock.findImage(name)!;
    await mock.setDirectorTargets(
      deviceId,
      [{ name, ecus: options.ecus ?? { [secondary.serial]: hw }, length: t.length, hashes: t.hashes, custom: options.custom }],
      {
        correlationId: `urn:here-ota:mtu:${name}`,
      },
    );
    return { name, bytes };
  }

  async function upload(bytes: Uint8Array): Promise<number> {
    const conn = await evil.connect();
    try {
      let last: number = RESULT_CODE.ok;
      for (let off = 0; off < bytes.length; off += 1024) {
        last = (await conn.request({ type: 'uploadDataReq', data: bytes.subarray(off, off + 1024) }, { expect: 'uploadDataResp' })).result;
        if (last !== RESULT_CODE.ok) break;
      }
      return last;
    } finally {
      await conn.close();
    }
  }

  it('refuses forged Director targets (signed with a key it does not trust): ARBITRARY_SOFTWARE', async () => {
    await expectRefused('ARBITRARY_SOFTWARE', async () => {
      const bytes = randomBytes(4096);
      const attacker = await newSigner();
      const t = new TargetFile(
        'evil.bin',
        bytes.length,
        { sha256: createHash('sha256').update(bytes).digest('hex') },
        {
          ecuIdentifiers: { [secondary.serial]: { hardwareId: hw } },
        },
      );
      const forged = await Metadata.create(
        new Targets({ version: 1000, expires: expiresIn(new Date(), 86400), targets: new Map([['evil.bin', t]]), custom: { vehicleId: deviceId } }),
        'uptane',
        [attacker],
      );
      // As stock aktualizr would send it (Director root and targets), so the signature check is what refuses it.
      expect(await putMeta(files({ directorExtras: false, targets: forged.toBytes() }))).toMatch(/^ARBITRARY_SOFTWARE/);
      expect(await upload(bytes)).toBe(RESULT_CODE.generalError);
      expect((await evil.request({ type: 'installReq', hash: 'evil.bin' }, { expect: 'installResp2' })).result).toBe(RESULT_CODE.internalError);
    });
  });

  it.runIf(kind === 'full')('refuses Director targets that the Director snapshot does not list: MIX_AND_MATCH', async () => {
    await expectRefused('MIX_AND_MATCH', async () => {
      // A new honest timestamp and snapshot (so the stored targets are not current any more) with other targets.
      await directed();
      const attacker = await newSigner();
      const forged = await Metadata.create(new Targets({ version: 1000, expires: expiresIn(new Date(), 86400), targets: new Map() }), 'uptane', [attacker]);
      expect(await putMeta(files({ targets: forged.toBytes() }))).toMatch(/^MIX_AND_MATCH/);
    });
  });

  it('refuses rolled-back Director targets: ROLLBACK', async () => {
    await expectRefused('ROLLBACK', async () => {
      // The Director metadata of the first cycle, older than what the Secondary now trusts.
      const d = mock.director(deviceId);
      const old = (h: Uint8Array[]) => h[0] as Uint8Array;
      const req = files({ targets: old(d.targetsFile.history) });
      if (kind === 'full') {
        req.directorRepo = req.directorRepo.map((m) =>
          m.role === 'timestamp'
            ? { role: m.role, json: old(d.timestamp.history) }
            : m.role === 'snapshot'
              ? { role: m.role, json: old(d.snapshot.history) }
              : m,
        );
      }
      expect(await putMeta(req)).toMatch(/^ROLLBACK/);
    });
  });

  it('refuses expired Director targets: FREEZE', async () => {
    await expectRefused('FREEZE', async () => {
      mock.director(deviceId).expiries = { targets: -3600 };
      try {
        await directed();
      } finally {
        mock.director(deviceId).expiries = {};
      }
      expect(await putMeta(files())).toMatch(/^FREEZE/);
    });
  });

  it('refuses an image directed to it for another hardware id: BAD_HARDWARE_ID', async () => {
    await expectRefused('BAD_HARDWARE_ID', async () => {
      await directed({ ecus: { [secondary.serial]: 'another-board' } });
      expect(await putMeta(files())).toMatch(/^BAD_HARDWARE_ID/);
    });
  });

  it('refuses a target for another ECU, in the metadata or in the install request: BAD_ECU_ID', async () => {
    await expectRefused('BAD_ECU_ID', async () => {
      await directed({ ecus: { [primary.primaryEcu.serial]: 'test-board' } });
      expect(await putMeta(files())).toMatch(/^BAD_ECU_ID/);
    });
    await expectRefused('BAD_ECU_ID', async () => {
      // Director targets for two ECUs: ours is verified, then the attacker asks to install the other one.
      const mine = await directed();
      const other = `other-${version}.bin`;
      const otherBytes = randomBytes(100);
      await mock.addImage(other, otherBytes, { hardwareIds: ['test-board'] });
      const o = mock.findImage(other)!;
      const m = mock.findImage(mine.name)!;
      await mock.setDirectorTargets(deviceId, [
        { name: mine.name, ecus: { [secondary.serial]: hw }, length: m.length, hashes: m.hashes },
        { name: other, ecus: { [primary.primaryEcu.serial]: 'test-board' }, length: o.length, hashes: o.hashes },
      ]);
      await putMeta(files(), RESULT_CODE.ok);
      expect(await upload(mine.bytes)).toBe(RESULT_CODE.ok);
      const r = await evil.request({ type: 'installReq', hash: other }, { expect: 'installResp2' });
      expect(r.result).toBe(RESULT_CODE.validationFailed);
      expect(r.description).toMatch(/^BAD_ECU_ID/);
    });
  });

  it('refuses an image that does not match its metadata: ARBITRARY_SOFTWARE', async () => {
    await expectRefused('ARBITRARY_SOFTWARE', async () => {
      const { name, bytes } = await directed();
      await putMeta(files(), RESULT_CODE.ok);
      const tampered = Buffer.from(bytes);
      tampered[100] = (tampered[100] as number) ^ 0xff;
      expect(await upload(tampered)).toBe(RESULT_CODE.ok);
      const r = await evil.request({ type: 'installReq', hash: name }, { expect: 'installResp2' });
      expect(r.result).toBe(RESULT_CODE.downloadFailed);
      expect(r.description).toMatch(/^ARBITRARY_SOFTWARE/);
    });
  });

  it('refuses an image larger than its metadata says, at the first byte too many: ENDLESS_DATA', async () => {
    await expectRefused('ENDLESS_DATA', async () => {
      const { name, bytes } = await directed();
      await putMeta(files(), RESULT_CODE.ok);
      expect(await upload(Buffer.concat([bytes, Buffer.from('x')]))).toBe(RESULT_CODE.downloadFailed);
      // Nothing more is taken, and nothing is installed.
      expect(await upload(bytes.subarray(0, 10))).toBe(RESULT_CODE.downloadFailed);
      expect((await evil.request({ type: 'installReq', hash: name }, { expect: 'installResp2' })).result).toBe(RESULT_CODE.downloadFailed);
    });
  });

  it('refuses a forged Director root offered through putRootReq, keeping the roots it trusts', async () => {
    await mock.rotateRoot('director');
    await honestCycle();
    // A root it holds already is no news.
    expect((await evil.request({ type: 'putRootReq', repotype: 0, json: mock.directorRoot.bytes(1) as Uint8Array }, { expect: 'putRootResp' })).result).toBe(
      RESULT_CODE.ok,
    );
    await expectRefused('ARBITRARY_SOFTWARE', async () => {
      const fake = await RootChain.create();
      const forged = await fake.rotate({ version: 3 });
      const r = await evil.request({ type: 'putRootReq', repotype: 0, json: forged }, { expect: 'putRootResp' });
      expect(r.result).toBe(RESULT_CODE.validationFailed);
      expect((await evil.request({ type: 'rootVerReq', repotype: 0 }, { expect: 'rootVerResp' })).version).toBe(2);
    });
  });
});
