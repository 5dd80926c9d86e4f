import { afterEach, describe, expect, it, onTestFailed } from 'vitest';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { computeHashes, parseRoot, type JsonObject } from '@uptide/core';
import { loadConfig } from '../config/config.js';
import { memoryLogger } from '../primary/log.js';
import { Primary } from '../primary/primary.js';
import { writeDeviceSetup, type DeviceSetupOptions } from '../testing/device-setup.js';
import { newSigner, RepoMock } from '../testing/repo-mock.js';
import { SecondaryClient, RESULT_CODE } from './protocol/index.js';
import { Secondary } from './secondary.js';
import { loadSecondaryConfig } from './config.js';
import { primarySecondariesToml, startSecondary, writeSecondarySetup, type SecondarySetup } from './testing/setup.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Vehicle {
  mock: RepoMock;
  primary: Primary;
  deviceId: string;
  full: { setup: SecondarySetup; secondary: Secondary; port: number };
  partial: { setup: SecondarySetup; secondary: Secondary; port: number };
  log: ReturnType<typeof memoryLogger>;
}

async function vehicle(device: DeviceSetupOptions = {}): Promise<Vehicle> {
  const mock = await RepoMock.start();
  cleanups.push(() => mock.close());
  const roots = { director: mock.directorRoot.bytes(1) as Uint8Array, image: mock.image.root.bytes(1) as Uint8Array };
  const log = memoryLogger();
  onTestFailed(() => console.log(log.lines.join('\n')));
  const start = async (verification: 'full' | 'partial') => {
    const setup = writeSecondarySetup(roots, { verification });
    const { secondary, endpoint } = await startSecondary(setup, log);
    cleanups.push(() => secondary.close());
    return { setup, secondary, port: endpoint.port };
  };
  const full = await start('full');
  const partial = await start('partial');
  const setup = writeDeviceSetup(mock, {
    ...device,
    extraToml: primarySecondariesToml([
      { port: full.port, verification: 'full' },
      { port: partial.port, verification: 'partial' },
    ]),
  });
  const primary = await Primary.open({ config: loadConfig(setup.configPath), log, retryDelayMs: 10 });
  cleanups.push(() => primary.close());
  return { mock, primary, deviceId: setup.deviceId, full, partial, log };
}

describe('Secondaries driven by the Primary', () => {
  it('registers each Secondary with the key it reported, installs an image on a full and a partial Secondary, and reports both', async () => {
    const v = await vehicle();
    expect(await v.primary.cycle()).toMatchObject({ ok: true });
    const ecus = v.mock.registrations.at(-1)?.body['ecus'] as JsonObject[];
    expect(ecus.map((e) => e['ecu_serial'])).toEqual([v.primary.primaryEcu.serial, v.full.secondary.serial, v.partial.secondary.serial]);
    expect(ecus.map((e) => e['hardware_identifier'])).toEqual(['test-board', 'full-board', 'partial-board']);
    expect(ecus[1]?.['clientKey']).toEqual(v.full.secondary.publicKey.toJSON());
    expect(ecus[2]?.['clientKey']).toEqual(v.partial.secondary.publicKey.toJSON());

    const a = randomBytes(5000);
    const b = randomBytes(3000);
    await v.mock.addImage('full-fw-1.bin', a, { hardwareIds: ['full-board'], releaseCounter: 1 });
    await v.mock.addImage('partial-fw-1.bin', b, { hardwareIds: ['partial-board'] });
    await v.mock.setDirectorTargets(v.deviceId, [
      { name: 'full-fw-1.bin', ecus: { [v.full.secondary.serial]: 'full-board' }, length: a.length, hashes: v.mock.findImage('full-fw-1.bin')!.hashes },
      {
        name: 'partial-fw-1.bin',
        ecus: { [v.partial.secondary.serial]: 'partial-board' },
        length: b.length,
        hashes: v.mock.findImage('partial-fw-1.bin')!.hashes,
      },
    ]);
    expect(await v.primary.cycle()).toMatchObject({ ok: true, installed: ['full-fw-1.bin', 'partial-fw-1.bin'] });
    expect(readFileSync(v.full.setup.installedPath).equals(a)).toBe(true);
    expect(readFileSync(v.partial.setup.installedPath).equals(b)).toBe(true);
    expect(existsSync(join(v.primary.store.dir, '..', 'installed', 'image.bin'))).toBe(false);

    const m = v.mock.manifestsOf(v.deviceId).at(-1);
    expect(m?.verified).toBe(true);
    expect(m?.manifest?.reports.get(v.full.secondary.serial)?.installedImage.filename).toBe('full-fw-1.bin');
    expect(m?.manifest?.reports.get(v.partial.secondary.serial)?.installedImage.filename).toBe('partial-fw-1.bin');
    expect(m?.manifest?.installationReport?.items.map((i) => [i.ecu, i.result.code])).toEqual([
      [v.full.secondary.serial, 'OK'],
      [v.partial.secondary.serial, 'OK'],
    ]);
    // The Secondaries' own state: the metadata they verified, their release counter, growing report counters.
    expect(v.full.secondary.store.state.releaseCounters[v.full.secondary.serial]).toBe(1);
    for (const f of ['director/targets.json', 'director/timestamp.json', 'director/snapshot.json', 'image/targets.json', 'image/timestamp.json']) {
      expect(existsSync(join(v.full.setup.storage, 'metadata', f))).toBe(true);
    }
    expect(existsSync(join(v.partial.setup.storage, 'metadata/director/targets.json'))).toBe(true);
    expect(existsSync(join(v.partial.setup.storage, 'metadata/director/timestamp.json'))).toBe(false);
    expect(existsSync(join(v.partial.setup.storage, 'metadata/image/root.json'))).toBe(false);
    const counters = v.mock.manifestsOf(v.deviceId).map((x) => x.manifest?.reports.get(v.full.secondary.serial)?.counter ?? 0);
    expect(counters).toEqual([...counters].sort((x, y) => x - y));
    expect(new Set(counters).size).toBe(counters.length);
    // Nothing new: nothing is sent to the Secondaries.
    expect(await v.primary.cycle()).toMatchObject({ ok: true, updates: 0 });
  });

  it('walks both Secondaries through root rotations (intermediate roots one by one) and delegations', async () => {
    const v = await vehicle();
    expect((await v.primary.cycle()).ok).toBe(true);
    await v.mock.rotateRoot('director');
    await v.mock.rotateRoot('director');
    await v.mock.rotateRoot('director');
    await v.mock.rotateRoot('image');
    await v.mock.rotateRoot('image');
    await v.mock.addDelegation({ name: 'supplier', paths: ['supplier-*'], hardwareIds: ['full-board'] });
    const a = randomBytes(2500);
    const b = randomBytes(1024);
    await v.mock.addImage('supplier-fw.bin', a, { hardwareIds: ['full-board'], delegation: 'supplier' });
    await v.mock.addImage('p.bin', b, { hardwareIds: ['partial-board'] });
    await v.mock.setDirectorTargets(v.deviceId, [
      { name: 'supplier-fw.bin', ecus: { [v.full.secondary.serial]: 'full-board' }, length: a.length, hashes: v.mock.findImage('supplier-fw.bin')!.hashes },
      { name: 'p.bin', ecus: { [v.partial.secondary.serial]: 'partial-board' }, length: b.length, hashes: v.mock.findImage('p.bin')!.hashes },
    ]);
    const r = await v.primary.cycle();
    expect(r.ok).toBe(true);
    expect([...r.installed].sort()).toEqual(['p.bin', 'supplier-fw.bin']);
    const version = (dir: string, repo: string) => parseRoot(readFileSync(join(dir, 'metadata', repo, 'root.json')), 'uptane').signed.version;
    expect(version(v.full.setup.storage, 'director')).toBe(4);
    expect(version(v.full.setup.storage, 'image')).toBe(3);
    expect(version(v.partial.setup.storage, 'director')).toBe(4);
    for (const n of [2, 3, 4]) expect(existsSync(join(v.full.setup.storage, `metadata/director/roots/${n}.root.json`))).toBe(true);
    for (const n of [2, 3, 4]) expect(existsSync(join(v.partial.setup.storage, `metadata/director/roots/${n}.root.json`))).toBe(true);
    expect(existsSync(join(v.full.setup.storage, 'metadata/image/delegated/supplier.json'))).toBe(true);
    expect(readFileSync(v.full.setup.installedPath).equals(a)).toBe(true);
  });

  it("goes on with the Primary's own update when a Secondary is off, reuses its last report, and updates it once it is back", async () => {
    const v = await vehicle();
    expect((await v.primary.cycle()).ok).toBe(true);
    const lastReport = v.mock.lastManifest(v.deviceId)?.reports.get(v.partial.secondary.serial);
    await v.partial.secondary.close();
    const mine = randomBytes(1500);
    const theirs = randomBytes(1500);
    await v.mock.addImage('mine.bin', mine, { hardwareIds: ['test-board'] });
    await v.mock.addImage('theirs.bin', theirs, { hardwareIds: ['partial-board'] });
    await v.mock.setDirectorTargets(
      v.deviceId,
      [
        { name: 'theirs.bin', ecus: { [v.partial.secondary.serial]: 'partial-board' }, length: theirs.length, hashes: v.mock.findImage('theirs.bin')!.hashes },
        { name: 'mine.bin', ecus: { [v.primary.primaryEcu.serial]: 'test-board' }, length: mine.length, hashes: v.mock.findImage('mine.bin')!.hashes },
      ],
      { correlationId: 'urn:here-ota:mtu:1' },
    );
    const r = await v.primary.cycle();
    expect(r).toMatchObject({ ok: false, installed: ['mine.bin'] });
    const m = v.mock.manifestsOf(v.deviceId).at(-1);
    expect(m?.verified).toBe(true);
    // The off Secondary's last report is in the manifest, as it was.
    expect(m?.manifest?.reports.get(v.partial.secondary.serial)?.document).toEqual(lastReport?.document);
    expect(m?.manifest?.installationReport?.items.find((i) => i.ecu === v.partial.secondary.serial)?.result).toMatchObject({
      success: false,
      code: 'INTERNAL_ERROR',
    });
    expect(m?.manifest?.installationReport?.items.find((i) => i.ecu === v.primary.primaryEcu.serial)?.result.success).toBe(true);

    // Back on the same port: the next cycle updates it.
    const cfg = loadSecondaryConfig(v.partial.setup.configPath);
    const back = await Secondary.open({ config: { ...cfg, network: { ...cfg.network, port: v.partial.port } } });
    cleanups.push(() => back.close());
    await back.listen();
    expect(await v.primary.cycle()).toMatchObject({ ok: true, installed: ['theirs.bin'] });
    expect(readFileSync(v.partial.setup.installedPath).equals(theirs)).toBe(true);
  });

  it('refuses a Secondary report that its key does not verify, and reports that', async () => {
    const v = await vehicle();
    expect((await v.primary.cycle()).ok).toBe(true);
    // The Secondary's state is replaced under the Primary's feet: a new ECU key at the same address and serial.
    await v.full.secondary.close();
    rmSync(join(v.full.setup.storage, 'ecu-key.pem'));
    const cfg = loadSecondaryConfig(v.full.setup.configPath);
    const impostor = await Secondary.open({
      config: { ...cfg, secondary: { ...cfg.secondary, ecuSerial: v.full.secondary.serial }, network: { ...cfg.network, port: v.full.port } },
    });
    cleanups.push(() => impostor.close());
    await impostor.listen();
    expect((await v.primary.cycle()).ok).toBe(true);
    const m = v.mock.manifestsOf(v.deviceId).at(-1);
    // Still accepted by the Director: the report in it is the last one that verified.
    expect(m?.verified).toBe(true);
    const primaryReport = m?.manifest?.reports.get(v.primary.primaryEcu.serial);
    expect(primaryReport?.attacks.map((a) => a.code)).toEqual(['BAD_MANIFEST']);
    expect(v.log.lines.some((l) => l.includes('refused a Secondary version report'))).toBe(true);
  });

  it('waits on the wait port for a Secondary that announces itself (aktualizr-secondary primary_ip/primary_port)', async () => {
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const freePort = () =>
      new Promise<number>((ok) => {
        const s = createServer().listen(0, '127.0.0.1', () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => ok(p));
        });
      });
    const [secPort, waitPort] = [await freePort(), await freePort()];
    const roots = { director: mock.directorRoot.bytes(1) as Uint8Array, image: mock.image.root.bytes(1) as Uint8Array };
    const secSetup = writeSecondarySetup(roots, { verification: 'partial', port: secPort, primary: `127.0.0.1:${waitPort}` });
    const setup = writeDeviceSetup(mock, {
      extraToml: primarySecondariesToml([{ port: secPort, verification: 'partial' }], { wait_port: waitPort, wait_host: '127.0.0.1', wait_timeout: 20 }),
    });
    const log = memoryLogger();
    const opening = Primary.open({ config: loadConfig(setup.configPath), log, retryDelayMs: 10 });
    // The Secondary starts while the Primary waits; it connects to the wait port first, then listens.
    await new Promise((r) => setTimeout(r, 300));
    const secondary = await Secondary.open({ config: loadSecondaryConfig(secSetup.configPath) });
    cleanups.push(() => secondary.close());
    const listening = secondary.listen();
    const primary = await opening;
    cleanups.push(() => primary.close());
    await listening;
    expect(primary.ecus.map((e) => e.serial)).toEqual([primary.primaryEcu.serial, secondary.serial]);
    expect(log.lines.some((l) => l.includes('waiting for Secondaries'))).toBe(true);
    expect((await primary.cycle()).ok).toBe(true);
  });

  it('registers a Secondary that comes up after the Primary started, at the next cycle', async () => {
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const roots = { director: mock.directorRoot.bytes(1) as Uint8Array, image: mock.image.root.bytes(1) as Uint8Array };
    const secSetup = writeSecondarySetup(roots, { verification: 'full' });
    const { secondary, endpoint } = await startSecondary(secSetup);
    await secondary.close();
    const setup = writeDeviceSetup(mock, { extraToml: primarySecondariesToml([{ port: endpoint.port, verification: 'full' }]) });
    const primary = await Primary.open({ config: loadConfig(setup.configPath), log: memoryLogger(), retryDelayMs: 10 });
    cleanups.push(() => primary.close());
    expect(primary.ecus).toHaveLength(1);
    expect((await primary.cycle()).ok).toBe(true);
    const cfg = loadSecondaryConfig(secSetup.configPath);
    const back = await Secondary.open({ config: { ...cfg, network: { ...cfg.network, port: endpoint.port } } });
    cleanups.push(() => back.close());
    await back.listen();
    expect((await primary.cycle()).ok).toBe(true);
    expect(primary.ecus.map((e) => e.serial)).toEqual([primary.primaryEcu.serial, back.serial]);
    expect((mock.registrations.at(-1)?.body['ecus'] as JsonObject[]).map((e) => e['ecu_serial'])).toContain(back.serial);
    expect(mock.manifestsOf(setup.deviceId).at(-1)?.verified).toBe(true);
  });
});

describe('Secondaries that misbehave at start-up', () => {
  it('leaves out a Secondary that reports a serial already used in the vehicle, and the Primary still updates', async () => {
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const roots = { director: mock.directorRoot.bytes(1) as Uint8Array, image: mock.image.root.bytes(1) as Uint8Array };
    const a = await startSecondary(writeSecondarySetup(roots, { verification: 'full', ecuSerial: 'twin' }));
    const b = await startSecondary(writeSecondarySetup(roots, { verification: 'partial', ecuSerial: 'twin' }));
    cleanups.push(
      () => a.secondary.close(),
      () => b.secondary.close(),
    );
    const setup = writeDeviceSetup(mock, {
      extraToml: primarySecondariesToml([
        { port: a.endpoint.port, verification: 'full' },
        { port: b.endpoint.port, verification: 'partial' },
      ]),
    });
    const log = memoryLogger();
    const primary = await Primary.open({ config: loadConfig(setup.configPath), log, retryDelayMs: 10 });
    cleanups.push(() => primary.close());
    expect(primary.ecus.map((e) => e.serial)).toEqual([primary.primaryEcu.serial, 'twin']);
    expect(log.lines.some((l) => l.includes('a Secondary reported a serial already used in this vehicle'))).toBe(true);
    const image = randomBytes(500);
    await mock.addImage('p.bin', image, { hardwareIds: ['test-board'] });
    expect((await primary.cycle()).ok).toBe(true);
    await mock.assign(setup.deviceId, 'p.bin');
    expect(await primary.cycle()).toMatchObject({ ok: true, installed: ['p.bin'] });
    expect(mock.manifestsOf(setup.deviceId).at(-1)?.verified).toBe(true);
  });
});

describe('uptide-secondary on the wire', () => {
  it('answers getInfo, version, root versions and reports as aktualizr-secondary does, and keeps its state across restarts', async () => {
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const roots = { director: mock.directorRoot.bytes(1) as Uint8Array, image: mock.image.root.bytes(1) as Uint8Array };
    const setup = writeSecondarySetup(roots, { verification: 'partial', keyType: 'rsa2048', ecuSerial: 'sec-rsa' });
    let { secondary, endpoint } = await startSecondary(setup);
    const client = new SecondaryClient(endpoint);
    const info = await client.request({ type: 'getInfoReq' }, { expect: 'getInfoResp' });
    expect(info).toMatchObject({ ecuSerial: 'sec-rsa', hwId: 'partial-board', keyType: 1 });
    expect(info.key).toContain('BEGIN PUBLIC KEY');
    expect(await client.request({ type: 'versionReq', version: 2 }, { expect: 'versionResp' })).toMatchObject({ version: 2 });
    expect(await client.request({ type: 'rootVerReq', repotype: 0 }, { expect: 'rootVerResp' })).toMatchObject({ version: 1 });
    // A partial Secondary holds no Image root: 0, and it declines one.
    expect(await client.request({ type: 'rootVerReq', repotype: 1 }, { expect: 'rootVerResp' })).toMatchObject({ version: 0 });
    expect(await client.request({ type: 'rootVerReq', repotype: 7 }, { expect: 'rootVerResp' })).toMatchObject({ version: -1 });
    const declined = await client.request({ type: 'putRootReq', repotype: 1, json: roots.image }, { expect: 'putRootResp' });
    expect(declined.result).toBe(RESULT_CODE.internalError);
    // Nothing verified yet: no image is taken, nothing is installed.
    expect(await client.request({ type: 'uploadDataReq', data: new Uint8Array(10) }, { expect: 'uploadDataResp' })).toMatchObject({
      result: RESULT_CODE.generalError,
    });
    expect(await client.request({ type: 'installReq', hash: 'x.bin' }, { expect: 'installResp2' })).toMatchObject({ result: RESULT_CODE.internalError });
    // A v1 message: closed without an answer.
    await expect(client.request({ type: 'sendFirmwareReq', firmware: new Uint8Array(4) })).rejects.toMatchObject({ reason: 'CONNECTION_CLOSED' });
    const report1 = JSON.parse(Buffer.from((await client.request({ type: 'manifestReq' }, { expect: 'manifestResp' })).manifest).toString('utf8'));
    expect(report1.signed).toMatchObject({ ecu_serial: 'sec-rsa', report_counter: '1', installed_image: { filepath: 'unknown' } });
    expect(report1.signatures[0].method).toBe('rsassa-pss');
    await secondary.close();
    ({ secondary, endpoint } = await startSecondary(setup));
    cleanups.push(() => secondary.close());
    const client2 = new SecondaryClient(endpoint);
    const info2 = await client2.request({ type: 'getInfoReq' }, { expect: 'getInfoResp' });
    expect(info2.key).toBe(info.key);
    const report2 = JSON.parse(Buffer.from((await client2.request({ type: 'manifestReq' }, { expect: 'manifestResp' })).manifest).toString('utf8'));
    expect(report2.signed.report_counter).toBe('2');
  });

  it('installs from what stock aktualizr sends a full Secondary (Director root and targets only), then the Image repository in full', async () => {
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const roots = { director: mock.directorRoot.bytes(1) as Uint8Array, image: mock.image.root.bytes(1) as Uint8Array };
    const setup = writeSecondarySetup(roots, { verification: 'full', ecuSerial: 'akt-style' });
    const { secondary, endpoint } = await startSecondary(setup);
    cleanups.push(() => secondary.close());
    await mock.rotateRoot('image');
    const bytes = randomBytes(3000);
    await mock.addImage('a.bin', bytes, { hardwareIds: ['full-board'] });
    await mock.setDirectorTargets('car', [
      { name: 'a.bin', ecus: { 'akt-style': 'full-board' }, length: bytes.length, hashes: mock.findImage('a.bin')!.hashes },
    ]);
    const d = mock.director('car');
    const client = new SecondaryClient(endpoint);
    // aktualizr's sequence: the Image root chain first (rootVerReq, putRootReq for the intermediate ones: none here), then the metadata.
    expect(await client.request({ type: 'rootVerReq', repotype: 1 }, { expect: 'rootVerResp' })).toMatchObject({ version: 1 });
    const put = await client.request(
      {
        type: 'putMetaReq2',
        directorRepo: [
          { role: 'root', json: mock.directorRoot.latest },
          { role: 'targets', json: d.targetsFile.bytes },
        ],
        imageRepo: [
          { role: 'root', json: mock.image.root.latest },
          { role: 'timestamp', json: mock.image.timestamp.bytes },
          { role: 'snapshot', json: mock.image.snapshot.bytes },
          { role: 'targets', json: mock.image.targetsFile.bytes },
        ],
      },
      { expect: 'putMetaResp2' },
    );
    expect(put).toMatchObject({ result: RESULT_CODE.ok });
    for (let off = 0; off < bytes.length; off += 1024) {
      expect(await client.request({ type: 'uploadDataReq', data: bytes.subarray(off, off + 1024) }, { expect: 'uploadDataResp' })).toMatchObject({
        result: RESULT_CODE.ok,
      });
    }
    expect(await client.request({ type: 'installReq', hash: 'a.bin' }, { expect: 'installResp2' })).toMatchObject({ result: RESULT_CODE.ok });
    expect(readFileSync(setup.installedPath).equals(bytes)).toBe(true);
    // The Image root walked to version 2 on the way, and became the trusted one.
    expect(await client.request({ type: 'rootVerReq', repotype: 1 }, { expect: 'rootVerResp' })).toMatchObject({ version: 2 });
    expect(existsSync(join(setup.storage, 'metadata/director/timestamp.json'))).toBe(false);
    expect(existsSync(join(setup.storage, 'metadata/image/timestamp.json'))).toBe(true);
  });

  it('drops the stored timestamp and snapshot when a root from putRootReq changes their keys (R-4)', async () => {
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const roots = { director: mock.directorRoot.bytes(1) as Uint8Array, image: mock.image.root.bytes(1) as Uint8Array };
    const v = await (async () => {
      const full = writeSecondarySetup(roots, { verification: 'full' });
      const { secondary, endpoint } = await startSecondary(full);
      cleanups.push(() => secondary.close());
      return { full, secondary, port: endpoint.port };
    })();
    const setup = writeDeviceSetup(mock, { extraToml: primarySecondariesToml([{ port: v.port, verification: 'full' }]) });
    const primary = await Primary.open({ config: loadConfig(setup.configPath), retryDelayMs: 10 });
    cleanups.push(() => primary.close());
    expect((await primary.cycle()).ok).toBe(true);
    const bytes = randomBytes(100);
    await mock.addImage('x.bin', bytes, { hardwareIds: ['full-board'] });
    await mock.assign(setup.deviceId, 'x.bin', { ecuSerial: v.secondary.serial });
    expect((await primary.cycle()).installed).toEqual(['x.bin']);
    expect(existsSync(join(v.full.storage, 'metadata/director/timestamp.json'))).toBe(true);
    const rotated = await mock.rotateRoot('director', { keys: { timestamp: [await newSigner()] } });
    const r = await new SecondaryClient({ host: '127.0.0.1', port: v.port }).request(
      { type: 'putRootReq', repotype: 0, json: rotated },
      { expect: 'putRootResp' },
    );
    expect(r.result).toBe(RESULT_CODE.ok);
    expect(existsSync(join(v.full.storage, 'metadata/director/timestamp.json'))).toBe(false);
    expect(existsSync(join(v.full.storage, 'metadata/director/snapshot.json'))).toBe(false);
    expect(existsSync(join(v.full.storage, 'metadata/director/targets.json'))).toBe(true);
    expect(existsSync(join(v.full.storage, 'metadata/director/roots/2.root.json'))).toBe(true);
  });

  it('settles an install a power cut interrupted: done when the file installer had put the new image in place, else not', async () => {
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const roots = { director: mock.directorRoot.bytes(1) as Uint8Array, image: mock.image.root.bytes(1) as Uint8Array };
    const setup = writeSecondarySetup(roots, { verification: 'partial' });
    const { secondary } = await startSecondary(setup);
    const image = randomBytes(777);
    const marker = {
      ecuSerial: secondary.serial,
      targetName: 'new.bin',
      length: image.length,
      hashes: computeHashes(image),
      correlationId: undefined,
      startedAt: new Date().toISOString(),
    };
    await secondary.store.writePendingInstall(marker);
    await secondary.close();
    mkdirSync(join(setup.dir, 'installed'), { recursive: true });
    // The installer had not got there: the old image is in place.
    writeFileSync(setup.installedPath, 'old image');
    const log = memoryLogger();
    let again = await Secondary.open({ config: loadSecondaryConfig(setup.configPath), log });
    expect(log.lines.some((l) => l.includes('an installation was interrupted'))).toBe(true);
    expect(again.installed).toBeUndefined();
    expect(await again.store.readPendingInstall()).toBeUndefined();
    await again.store.writePendingInstall(marker);
    await again.close();
    // It had: the new image is in place.
    writeFileSync(setup.installedPath, image);
    again = await Secondary.open({ config: loadSecondaryConfig(setup.configPath), log });
    cleanups.push(() => again.close());
    expect(again.installed).toMatchObject({ filename: 'new.bin', length: 777 });
    expect(await again.store.readPendingInstall()).toBeUndefined();
  });
});
