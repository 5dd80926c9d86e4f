/**
 * The simulator's in-process Secondary (--in-process-secondaries), driven by a
 * real Primary against the repository mock: it installs what the Director
 * directs to it after its own partial verification and image check, keeps its
 * state across a restart, and refuses what does not verify.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageMismatchError, parseVehicleManifest, type JsonObject } from '@uptide/core';
import { loadConfig } from '../config/config.js';
import { memoryLogger } from '../primary/log.js';
import { Primary } from '../primary/primary.js';
import { writeDeviceSetup } from '../testing/device-setup.js';
import { RepoMock } from '../testing/repo-mock.js';
import { SimSecondary } from './secondary.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void>)();
});

async function setup(installer: 'file' | 'none' = 'file') {
  const mock = await RepoMock.start();
  cleanups.push(() => mock.close());
  const device = writeDeviceSetup(mock);
  const dir = mkdtempSync(join(tmpdir(), 'uptide-sim-secondary-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const openSecondary = () =>
    SimSecondary.open({ dir, serial: 'car-s1', hardwareId: 'board-s', initialDirectorRoot: mock.directorRoot.bytes(1) as Uint8Array, installer });
  const secondary = await openSecondary();
  const primary = await Primary.open({ config: loadConfig(device.configPath), log: memoryLogger(), retryDelayMs: 10, secondaries: [secondary] });
  cleanups.push(() => primary.close());
  return { mock, device, dir, secondary, primary, openSecondary };
}

describe('SimSecondary (in-process, partial verification)', () => {
  it('installs what the Director directs to it, reports it signed with its own key, and keeps it across a restart', async () => {
    const { mock, device, dir, secondary, primary, openSecondary } = await setup();
    expect((await primary.cycle()).ok).toBe(true);
    expect((mock.registrations[0]?.body['ecus'] as JsonObject[]).map((e) => e['ecu_serial'])).toEqual([primary.primaryEcu.serial, 'car-s1']);
    const image = randomBytes(20_000);
    await mock.addImage('s.bin', image, { hardwareIds: ['board-s'], releaseCounter: 4 });
    await mock.assign(device.deviceId, 's.bin', { ecuSerial: 'car-s1' });
    expect(await primary.cycle()).toMatchObject({ ok: true, installed: ['s.bin'] });
    expect(readFileSync(join(dir, 'image.bin')).equals(image)).toBe(true);
    const report = mock.lastManifest(device.deviceId)?.reports.get('car-s1');
    expect(report?.installedImage.filename).toBe('s.bin');
    expect(mock.manifestsOf(device.deviceId).every((m) => m.verified)).toBe(true);

    // Counters keep growing across a restart (reserved in blocks, never reused).
    const before = (await secondary.versionReport([])).signed as JsonObject;
    const again = await openSecondary();
    expect(again.installedImage()?.filename).toBe('s.bin');
    expect(again.publicKey.equals(secondary.publicKey)).toBe(true);
    const after = (await again.versionReport([])).signed as JsonObject;
    expect(Number(after['report_counter'])).toBeGreaterThan(Number(before['report_counter']));
    expect(parseVehicleManifest(mock.manifestsOf(device.deviceId).at(-1)?.raw as Buffer).primaryEcuSerial).toBe(primary.primaryEcu.serial);
  });

  it('refuses an image that does not match the Director targets it verified, and targets its Director root does not sign', async () => {
    const { mock, device, secondary, primary } = await setup('none');
    expect((await primary.cycle()).ok).toBe(true);
    await mock.addImage('s.bin', Buffer.from('the real image'), { hardwareIds: ['board-s'] });
    await mock.assign(device.deviceId, 's.bin', { ecuSerial: 'car-s1' });
    // What the Primary would hand over, taken from the mock's own metadata.
    const bundle = {
      director: {
        roots: [mock.directorRoot.bytes(1) as Uint8Array],
        timestamp: undefined,
        snapshot: undefined,
        targets: mock.director(device.deviceId).targetsFile.bytes,
        delegated: new Map(),
      },
      image: undefined,
    };
    const target = mock.findImage('s.bin');
    if (!target) throw new Error('no target');
    await secondary.putMetadata(bundle);
    const bad = join(mkdtempSync(join(tmpdir(), 'uptide-sim-bad-')), 'image');
    cleanups.push(() => rmSync(bad, { force: true }));
    writeFileSync(bad, 'the fake image');
    const delivery = { targetName: 's.bin', path: bad, target, imageTarget: undefined, correlationId: undefined };
    await expect(secondary.putImage(delivery)).rejects.toThrow(ImageMismatchError);
    expect((await secondary.install(delivery, memoryLogger())).success).toBe(false);
    // Director targets changed after signing: refused before any image.
    const doc = JSON.parse(Buffer.from(mock.director(device.deviceId).targetsFile.bytes).toString('utf8')) as { signed: { version: number } };
    doc.signed.version += 100;
    const forged = Buffer.from(JSON.stringify(doc));
    await expect(secondary.putMetadata({ ...bundle, director: { ...bundle.director, targets: forged } })).rejects.toThrow();
    expect(secondary.installedImage()).toBeUndefined();
  });
});
