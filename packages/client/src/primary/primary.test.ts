import { describe, it, expect, afterEach } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildEcuVersionReport,
  generatePrivateKey,
  LocalSigner,
  parseTargets,
  UNKNOWN_INSTALLED_IMAGE,
  type InstalledImage,
  type JsonObject,
} from '@uptide/core';
import { loadConfig } from '../config/config.js';
import { RepoMock, newSigner, type RepoMockOptions } from '../testing/repo-mock.js';
import { writeDeviceSetup, type DeviceSetup, type DeviceSetupOptions } from '../testing/device-setup.js';
import { memoryLogger } from './log.js';
import { Primary } from './primary.js';
import type { Ecu, MetadataBundle } from './ecu.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void>)();
});

async function start(mockOptions: RepoMockOptions = {}, deviceOptions: DeviceSetupOptions = {}) {
  const mock = await RepoMock.start(mockOptions);
  cleanups.push(() => mock.close());
  const setup = writeDeviceSetup(mock, deviceOptions);
  const log = memoryLogger();
  const primary = await open(setup, log);
  return { mock, setup, primary, log };
}

async function open(setup: DeviceSetup, log = memoryLogger()): Promise<Primary> {
  const p = await Primary.open({ config: loadConfig(setup.configPath), log, retryDelayMs: 10 });
  cleanups.push(() => p.close());
  return p;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const eventTypes = (events: JsonObject[]) => events.map((e) => (e['eventType'] as JsonObject)['id']);

describe('Primary update cycle', () => {
  it('registers, reports, sends a signed manifest, verifies, downloads, installs and reports the installation', async () => {
    const { mock, setup, primary } = await start();
    const serial = primary.primaryEcu.serial;

    const first = await primary.cycle();
    expect(first).toMatchObject({ ok: true, updates: 0, installed: [] });
    // Registration in aktualizr's shape.
    expect(mock.registrations).toHaveLength(1);
    const reg = mock.registrations[0]?.body as JsonObject;
    expect(reg['primary_ecu_serial']).toBe(serial);
    expect(reg['ecus']).toEqual([{ ecu_serial: serial, hardware_identifier: setup.hardwareId, clientKey: primary.primaryEcu.publicKey.toJSON() }]);
    expect(((reg['ecus'] as JsonObject[])[0]?.['clientKey'] as JsonObject)['keytype']).toBe('ED25519');
    // Device data, the config report as TOML with the keys OTA CE requires.
    expect(mock.deviceData.map((d) => `${d.method} ${d.path}`)).toEqual([
      'PUT /system_info',
      'PUT /system_info/network',
      'PUT /core/installed',
      'POST /system_info/config',
    ]);
    const configText = mock.deviceData[3]?.body.toString('utf8') ?? '';
    expect(configText).toMatch(/\[pacman\]\s+type = "none"/);
    expect(configText).toContain('polling_sec = 1');
    expect(configText).toContain('force_install_completion = false');
    // The manifest verified against the registered key.
    expect(mock.manifestsOf(setup.deviceId).every((m) => m.verified)).toBe(true);
    // Full verification of the Director: timestamp and snapshot too (beyond aktualizr).
    expect(mock.requestsTo('/director/timestamp.json')).toHaveLength(1);
    expect(mock.requestsTo('/director/snapshot.json')).toHaveLength(1);
    // Nothing new: the Image repository is not consulted (FV-6).
    expect(mock.requestsTo('/repo/timestamp.json')).toHaveLength(0);

    const image = randomBytes(100_000);
    await mock.addImage('app-1.0.bin', image, { hardwareIds: [setup.hardwareId], releaseCounter: 3 });
    const correlationId = await mock.assign(setup.deviceId, 'app-1.0.bin');
    const second = await primary.cycle();
    expect(second).toMatchObject({ ok: true, updates: 1, installed: ['app-1.0.bin'] });
    expect(readFileSync(setup.installedPath).equals(image)).toBe(true);
    expect(primary.store.state.installed[serial]).toMatchObject({ filename: 'app-1.0.bin', length: image.length, hashes: { sha256: sha256(image) } });
    expect(primary.store.state.releaseCounters[serial]).toBe(3);

    const manifest = mock.lastManifest(setup.deviceId);
    expect(manifest?.primaryEcuSerial).toBe(serial);
    expect(manifest?.vehicleId).toBe(setup.deviceId);
    const report = manifest?.reports.get(serial);
    expect(report?.installedImage).toMatchObject({ filename: 'app-1.0.bin', length: image.length });
    expect(report?.installedImage.hashes['sha256']).toBe(sha256(image));
    expect(report?.attacks).toEqual([]);
    expect(manifest?.installationReport).toMatchObject({ correlationId, result: { success: true, code: 'OK' } });
    expect(manifest?.installationReport?.items).toEqual([{ ecu: serial, result: expect.objectContaining({ success: true, code: 'OK' }) }]);
    // The report counter grows with every report and the latest verified time is reported.
    const counters = mock.manifestsOf(setup.deviceId).map((m) => m.manifest?.reports.get(serial)?.counter);
    expect(counters).toEqual([...counters].sort((a, b) => (a ?? 0) - (b ?? 0)));
    expect(new Set(counters).size).toBe(counters.length);
    expect(report?.timeserverTime).not.toBe('1970-01-01T00:00:00Z');

    // aktualizr-format events with the correlation id.
    const events = mock.eventsOf(setup.deviceId);
    expect(eventTypes(events)).toEqual(['EcuDownloadStarted', 'EcuDownloadCompleted', 'EcuInstallationStarted', 'EcuInstallationCompleted']);
    for (const e of events) {
      expect(e['event']).toMatchObject({ ecu: serial, correlationId });
      expect(e['deviceTime']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      expect((e['eventType'] as JsonObject)['version']).toBe(0);
    }
    expect((events[3]?.['event'] as JsonObject)['success']).toBe(true);
    expect((events[0]?.['event'] as JsonObject)['success']).toBeUndefined();

    // Trusted metadata on disk, exact bytes.
    const meta = join(setup.storage, 'metadata');
    expect(readFileSync(join(meta, 'image', 'timestamp.json')).equals(Buffer.from(mock.image.timestamp.bytes))).toBe(true);
    const dirTargets = parseTargets(readFileSync(join(meta, 'director', 'targets.json')), 'uptane');
    expect(dirTargets.signed.correlationId).toBe(correlationId);
    // The verified image was removed from the download area.
    expect(readdirSync(join(setup.storage, 'downloads'))).toEqual([]);

    // The mock saw the image reported and withdrew the assignment; the next cycle has nothing to do.
    const third = await primary.cycle();
    expect(third).toMatchObject({ ok: true, updates: 0 });
    expect(mock.lastManifest(setup.deviceId)?.installationReport).toBeUndefined();
    // Device data unchanged except the installed packages: not sent again.
    expect(mock.deviceData.map((d) => d.path)).toEqual(['/system_info', '/system_info/network', '/core/installed', '/system_info/config', '/core/installed']);
    // Registered once.
    expect(mock.registrations).toHaveLength(1);
  });

  it('runs over mTLS with a device certificate whose CN is the device id', async () => {
    const { mock, setup, primary } = await start({ tls: true }, { omitDeviceId: true });
    await mock.addImage('fw.bin', Buffer.from('over tls'), { hardwareIds: [setup.hardwareId] });
    expect((await primary.cycle()).ok).toBe(true);
    expect(primary.deviceId).toBe(setup.deviceId);
    expect(mock.registrations[0]?.deviceId).toBe(setup.deviceId);
    await mock.assign(setup.deviceId, 'fw.bin');
    expect(await primary.cycle()).toMatchObject({ ok: true, installed: ['fw.bin'] });
    expect(readFileSync(setup.installedPath, 'utf8')).toBe('over tls');
  });

  it('provisions with shared credentials (credentials.zip, POST /devices, PKCS#12) once', async () => {
    const { mock, setup, primary } = await start({ tls: true }, { sharedCredentials: true });
    expect((await primary.cycle()).ok).toBe(true);
    expect(mock.provisioned).toHaveLength(1);
    const deviceId = mock.provisioned[0]?.deviceId as string;
    expect(deviceId).toMatch(/^[0-9a-f-]{36}$/);
    expect(mock.provisioned[0]?.ttl).toBe('36000');
    expect(primary.deviceId).toBe(deviceId);
    expect(mock.registrations[0]?.deviceId).toBe(deviceId);
    for (const f of ['client.pem', 'pkey.pem', 'ca.pem']) expect(existsSync(join(setup.storage, 'tls', f))).toBe(true);
    await primary.close();
    cleanups.pop();
    // After a restart the stored credentials are used; no second provisioning.
    const again = await open(setup);
    expect((await again.cycle()).ok).toBe(true);
    expect(mock.provisioned).toHaveLength(1);
    expect(again.deviceId).toBe(deviceId);
  });

  it('reports device_already_registered for a configured device id the server already has', async () => {
    const mock = await RepoMock.start({ tls: true });
    cleanups.push(() => mock.close());
    const setup = writeDeviceSetup(mock, { sharedCredentials: true, extraToml: '' });
    writeFileSync(setup.configPath, readFileSync(setup.configPath, 'utf8').replace('[device]', '[device]\nid = "taken"'));
    mock.provisioned.push({ deviceId: 'taken', ttl: '1' });
    const p = await open(setup);
    const r = await p.cycle();
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('DEVICE_ALREADY_REGISTERED');
  });

  it('registers again when the ECU set changes, and not when it does not', async () => {
    const { mock, setup, primary } = await start({}, { ecuSerial: 'serial-1' });
    expect((await primary.cycle()).ok).toBe(true);
    await primary.close();
    cleanups.pop();
    let p = await open(setup);
    expect((await p.cycle()).ok).toBe(true);
    expect(mock.registrations).toHaveLength(1);
    await p.close();
    cleanups.pop();
    writeFileSync(setup.configPath, readFileSync(setup.configPath, 'utf8').replace(`hardware_id = "${setup.hardwareId}"`, 'hardware_id = "board-rev-b"'));
    p = await open(setup);
    expect((await p.cycle()).ok).toBe(true);
    expect(mock.registrations).toHaveLength(2);
    expect((mock.registrations[1]?.body['ecus'] as JsonObject[])[0]?.['hardware_identifier']).toBe('board-rev-b');
  });

  it('resumes an interrupted image download in the next cycle with Range', async () => {
    const { mock, setup, primary } = await start({}, { limits: { retries: 0 } });
    await primary.cycle();
    const image = randomBytes(300_000);
    await mock.addImage('big.bin', image, { hardwareIds: [setup.hardwareId] });
    await mock.assign(setup.deviceId, 'big.bin');
    const cut = mock.tamper({ path: '/repo/targets/big.bin', cutAfter: 120_000, times: 1 });
    const failed = await primary.cycle();
    expect(failed.ok).toBe(false);
    expect(failed.error?.code).toBe('NETWORK');
    expect(failed.attack).toBeUndefined();
    expect(cut.hits).toBe(1);
    expect(existsSync(setup.installedPath)).toBe(false);
    expect(mock.lastManifest(setup.deviceId)?.installationReport?.items[0]?.result.code).toBe('DOWNLOAD_FAILED');
    const partial = readdirSync(join(setup.storage, 'downloads'));
    expect(partial).toHaveLength(1);

    const ok = await primary.cycle();
    expect(ok).toMatchObject({ ok: true, installed: ['big.bin'] });
    const ranges = mock.requestsTo('/repo/targets/big.bin').map((r) => r.headers.range);
    expect(ranges[0]).toBeUndefined();
    expect(ranges[1]).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(ranges[1] as string)?.[0])).toBeGreaterThan(0);
    expect(mock.requestsTo('/repo/targets/big.bin')[1]?.status).toBe(206);
    expect(readFileSync(setup.installedPath).equals(image)).toBe(true);
  });

  it('reports a failed installation with the installer output, and keeps the installed image', async () => {
    const { mock, setup, primary } = await start(
      {},
      { installer: { command: [process.execPath, '-e', 'console.error("no space on flash"); process.exit(1)'] } },
    );
    await primary.cycle();
    await mock.addImage('fw.bin', Buffer.from('x'), { hardwareIds: [setup.hardwareId] });
    const cid = await mock.assign(setup.deviceId, 'fw.bin');
    const r = await primary.cycle();
    expect(r).toMatchObject({ ok: false, installed: [], error: { code: 'INSTALL_FAILED' } });
    const serial = primary.primaryEcu.serial;
    expect(primary.store.state.installed[serial]).toBeUndefined();
    const report = mock.lastManifest(setup.deviceId)?.installationReport;
    expect(report?.correlationId).toBe(cid);
    expect(report?.result).toMatchObject({ success: false, code: `${setup.hardwareId}:INSTALL_FAILED` });
    expect(report?.items[0]?.result.description).toContain('no space on flash');
    expect(mock.lastManifest(setup.deviceId)?.reports.get(serial)?.installedImage.filename).toBe('unknown');
    const completed = mock.eventsOf(setup.deviceId).find((e) => (e['eventType'] as JsonObject)['id'] === 'EcuInstallationCompleted');
    expect((completed?.['event'] as JsonObject)['success']).toBe(false);
    expect(existsSync(join(setup.storage, 'install-pending.json'))).toBe(false);
  });

  it('follows root rotations of both repositories, persisting every root, and recovers from a timestamp key change', async () => {
    const { mock, setup, primary } = await start();
    await primary.cycle();
    await mock.addImage('a.bin', Buffer.from('a'), { hardwareIds: [setup.hardwareId] });
    await mock.assign(setup.deviceId, 'a.bin');
    expect((await primary.cycle()).ok).toBe(true);
    // New timestamp and snapshot keys, version numbers restarting lower (fast-forward recovery, R-4).
    await mock.rotateRoot('image', { keys: { timestamp: [await newSigner()], snapshot: [await newSigner()] } });
    await mock.rotateRoot('director', { keys: { targets: [await newSigner()] } });
    await mock.rotateRoot('director', { keys: { root: [await newSigner()] } });
    await mock.addImage('b.bin', Buffer.from('b'), { hardwareIds: [setup.hardwareId] });
    await mock.assign(setup.deviceId, 'b.bin');
    expect(await primary.cycle()).toMatchObject({ ok: true, installed: ['b.bin'] });
    expect(readdirSync(join(setup.storage, 'metadata', 'director', 'roots')).sort()).toEqual(['1.root.json', '2.root.json', '3.root.json']);
    expect(readdirSync(join(setup.storage, 'metadata', 'image', 'roots')).sort()).toEqual(['1.root.json', '2.root.json']);
    expect(readFileSync(join(setup.storage, 'metadata', 'director', 'root.json')).equals(Buffer.from(mock.directorRoot.latest))).toBe(true);
  });

  it('finds images through delegations (delegations/<role>.json)', async () => {
    const { mock, setup, primary } = await start();
    await primary.cycle();
    await mock.addDelegation({ name: 'supplier-a', paths: ['ecu-a/*'], terminating: true });
    await mock.addImage('ecu-a/fw 2.bin', Buffer.from('delegated'), { hardwareIds: [setup.hardwareId], delegation: 'supplier-a' });
    await mock.assign(setup.deviceId, 'ecu-a/fw 2.bin');
    expect(await primary.cycle()).toMatchObject({ ok: true, installed: ['ecu-a/fw 2.bin'] });
    expect(mock.requestsTo('/repo/delegations/supplier-a.json')).toHaveLength(1);
    // Names are percent-encoded as aktualizr does, keeping '/'.
    expect(mock.requestsTo('/repo/targets/ecu-a/fw%202.bin')).toHaveLength(1);
    expect(existsSync(join(setup.storage, 'metadata', 'image', 'delegated', 'supplier-a.json'))).toBe(true);
  });

  it('downloads from the uri the Director gives', async () => {
    const { mock, setup, primary } = await start();
    await primary.cycle();
    const t = await mock.addImage('fw.bin', Buffer.from('via uri'), { hardwareIds: [setup.hardwareId] });
    await mock.addImage('elsewhere.bin', Buffer.from('via uri'), { hardwareIds: ['x'] });
    await mock.assign(setup.deviceId, 'fw.bin', {
      override: { length: t.length, hashes: t.hashes, custom: { uri: `${mock.gatewayFor(setup.deviceId)}/repo/targets/elsewhere.bin` } },
    });
    expect(await primary.cycle()).toMatchObject({ ok: true, installed: ['fw.bin'] });
    expect(mock.requestsTo('/repo/targets/elsewhere.bin')).toHaveLength(1);
    expect(mock.requestsTo('/repo/targets/fw.bin')).toHaveLength(0);
  });

  it('trusts the first roots only when told to', async () => {
    const { mock, setup, primary } = await start({}, { trustOnFirstUse: true });
    expect((await primary.cycle()).ok).toBe(true);
    expect(mock.requestsTo('/director/1.root.json')).toHaveLength(1);
    expect(mock.requestsTo('/repo/1.root.json')).toHaveLength(1);
    expect(readFileSync(join(setup.storage, 'metadata', 'image', 'root.json')).equals(Buffer.from(mock.image.root.bytes(1) as Uint8Array))).toBe(true);
  });

  it('reports an install that a crash interrupted as failed at the next start', async () => {
    const { mock, setup, primary } = await start();
    await primary.cycle();
    const serial = primary.primaryEcu.serial;
    await primary.store.writePendingInstall({
      ecuSerial: serial,
      targetName: 'fw-9.bin',
      length: 1,
      hashes: { sha256: 'ab' },
      correlationId: 'urn:here-ota:mtu:9',
      startedAt: '2026-01-01T00:00:00.000Z',
    });
    await primary.close();
    cleanups.pop();
    const p = await open(setup);
    expect(existsSync(join(setup.storage, 'install-pending.json'))).toBe(false);
    await p.cycle();
    const report = mock
      .manifestsOf(setup.deviceId)
      .map((m) => m.manifest?.installationReport)
      .find((r) => r !== undefined);
    expect(report).toMatchObject({ correlationId: 'urn:here-ota:mtu:9', result: { success: false, code: `${setup.hardwareId}:INSTALL_FAILED` } });
    expect(report?.items[0]?.result.description).toMatch(/^INSTALL_INTERRUPTED: /);
  });

  it('refuses a damaged trusted root on disk instead of trusting the server afresh', async () => {
    const { mock, setup, primary } = await start();
    expect((await primary.cycle()).ok).toBe(true);
    writeFileSync(join(setup.storage, 'metadata', 'director', 'root.json'), '{"signed":');
    const r = await primary.cycle();
    expect(r.error?.code).toBe('STATE_CORRUPT');
    expect(r.error?.message).toContain('metadata/director/roots/');
    expect(r.attack).toBeUndefined();
    expect(mock.requestsTo('/director/1.root.json')).toHaveLength(0);
  });

  it('drops partial downloads of images no longer directed', async () => {
    const { mock, setup, primary } = await start({}, { limits: { retries: 0 } });
    await primary.cycle();
    await mock.addImage('a.bin', randomBytes(50_000), { hardwareIds: [setup.hardwareId] });
    await mock.assign(setup.deviceId, 'a.bin');
    mock.tamper({ path: '/repo/targets/a.bin', cutAfter: 10_000, times: 1 });
    expect((await primary.cycle()).ok).toBe(false);
    expect(readdirSync(join(setup.storage, 'downloads'))).toHaveLength(1);
    await mock.addImage('b.bin', Buffer.from('b'), { hardwareIds: [setup.hardwareId] });
    await mock.assign(setup.deviceId, 'b.bin');
    expect(await primary.cycle()).toMatchObject({ ok: true, installed: ['b.bin'] });
    expect(readdirSync(join(setup.storage, 'downloads'))).toEqual([]);
  });

  it('signs with an RSA ECU key when configured (RSA keytype, rsassa-pss)', async () => {
    const { mock, setup, primary } = await start({}, { keyType: 'rsa2048' });
    expect((await primary.cycle()).ok).toBe(true);
    const key = (mock.registrations[0]?.body['ecus'] as JsonObject[])[0]?.['clientKey'] as JsonObject;
    expect(key['keytype']).toBe('RSA');
    expect(String((key['keyval'] as JsonObject)['public'])).toContain('BEGIN PUBLIC KEY');
    const m = mock.manifestsOf(setup.deviceId).at(-1);
    expect(m?.verified).toBe(true);
    expect(m?.manifest?.document.signatures[0]?.method).toBe('rsassa-pss');
  });

  it('drives further ECUs through the Ecu interface (a virtual Secondary): registration, reports, metadata, image, install', async () => {
    const signer = new LocalSigner(await generatePrivateKey('ed25519'), 'uptane');
    const got: { bundle?: MetadataBundle; image?: Buffer } = {};
    let installed: InstalledImage | undefined;
    let counter = 0;
    const secondary: Ecu = {
      serial: 'secondary-1',
      hardwareId: 'board-b',
      publicKey: signer.publicKey,
      installedImage: () => installed,
      versionReport: (attacks) =>
        buildEcuVersionReport(
          { ecuSerial: 'secondary-1', installedImage: installed ?? UNKNOWN_INSTALLED_IMAGE, latestVerifiedTime: new Date(), counter: ++counter, attacks },
          signer,
        ),
      putMetadata: async (bundle) => void (got.bundle = bundle),
      putImage: async (image) => void (got.image = readFileSync(image.path)),
      install: async (image) => {
        installed = { filename: image.targetName, length: image.target.length, hashes: { ...image.target.hashes } };
        return { success: true, code: 'OK', description: 'virtual install' };
      },
    };
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const setup = writeDeviceSetup(mock);
    const p = await Primary.open({ config: loadConfig(setup.configPath), log: memoryLogger(), retryDelayMs: 10, secondaries: [secondary] });
    cleanups.push(() => p.close());
    expect((await p.cycle()).ok).toBe(true);
    expect((mock.registrations[0]?.body['ecus'] as JsonObject[]).map((e) => e['ecu_serial'])).toEqual([p.primaryEcu.serial, 'secondary-1']);
    const image = randomBytes(1000);
    await mock.addImage('b.bin', image, { hardwareIds: ['board-b'] });
    await mock.assign(setup.deviceId, 'b.bin', { ecuSerial: 'secondary-1' });
    expect(await p.cycle()).toMatchObject({ ok: true, installed: ['b.bin'] });
    expect(got.image?.equals(image)).toBe(true);
    expect(got.bundle?.director.roots).toHaveLength(1);
    expect(parseTargets(got.bundle?.director.targets as Uint8Array, 'uptane').signed.targets.has('b.bin')).toBe(true);
    expect(got.bundle?.image?.targets).toBeDefined();
    const m = mock.manifestsOf(setup.deviceId).at(-1);
    expect(m?.verified).toBe(true);
    expect(m?.manifest?.reports.get('secondary-1')?.installedImage.filename).toBe('b.bin');
    expect(m?.manifest?.installationReport?.items.map((i) => i.ecu)).toEqual(['secondary-1']);
    // The Primary's own image is untouched.
    expect(existsSync(setup.installedPath)).toBe(false);
  });
});
