/**
 * A vehicle against the client's repository mock (packages/client/src/testing/repo-mock.ts)
 * for the attacks whose setting the real server cannot produce: thresholds
 * above one, supplier delegations and their keys (several roles, nested,
 * multi-role), rotation of the online timestamp and snapshot keys, and target
 * names the server refuses to store. The mock signs with keys the test holds,
 * so it plays the honest repositories and the attacker alike.
 */
import { randomBytes } from 'node:crypto';
import type { VehicleManifest } from '@uptide/core';
import { loadConfig, memoryLogger, Primary } from '@uptide/client';
import { RepoMock } from '../../../packages/client/src/testing/repo-mock.js';
import { writeDeviceSetup, type DeviceSetup } from '../../../packages/client/src/testing/device-setup.js';
import type { Image, Scene } from './defeated.js';

export interface MockVehicleOptions {
  /** Extra `[limits]` settings (snake_case). */
  readonly limits?: Readonly<Record<string, number>>;
  /** Shapes the repositories before the vehicle's first cycle (delegations, thresholds…). */
  readonly before?: (mock: RepoMock) => Promise<void>;
}

export class MockVehicle implements Scene {
  installed: Image;
  next: Image;

  private constructor(
    readonly mock: RepoMock,
    readonly setup: DeviceSetup,
    readonly primary: Primary,
    fw1: Image,
    fw2: Image,
  ) {
    this.installed = fw1;
    this.next = fw2;
  }

  /** A vehicle running fw-1.bin (release counter 1), with fw-2.bin (counter 2) directed to it. */
  static async start(options: MockVehicleOptions = {}): Promise<MockVehicle> {
    const mock = await RepoMock.start();
    await options.before?.(mock);
    const setup = writeDeviceSetup(mock, { limits: { retries: 1, ...(options.limits ?? {}) } });
    const primary = await Primary.open({ config: loadConfig(setup.configPath), log: memoryLogger(), retryDelayMs: 10 });
    const fw1 = { name: 'fw-1.bin', bytes: randomBytes(4096) };
    const fw2 = { name: 'fw-2.bin', bytes: randomBytes(4096) };
    const v = new MockVehicle(mock, setup, primary, fw1, fw2);
    const first = await primary.cycle();
    if (!first.ok) throw new Error(`first cycle: ${JSON.stringify(first.error)}`);
    await mock.addImage(fw1.name, fw1.bytes, { hardwareIds: [setup.hardwareId], releaseCounter: 1 });
    await mock.assign(setup.deviceId, fw1.name);
    const second = await primary.cycle();
    if (second.installed[0] !== fw1.name) throw new Error(`fw-1.bin not installed: ${JSON.stringify(second)}`);
    await mock.addImage(fw2.name, fw2.bytes, { hardwareIds: [setup.hardwareId], releaseCounter: 2 });
    await mock.assign(setup.deviceId, fw2.name);
    return v;
  }

  async close(): Promise<void> {
    await this.primary.close();
    await this.mock.close();
  }

  get deviceId(): string {
    return this.setup.deviceId;
  }

  get serial(): string {
    return this.primary.primaryEcu.serial;
  }

  get hardwareId(): string {
    return this.setup.hardwareId;
  }

  get storage(): string {
    return this.setup.storage;
  }

  get installedPath(): string {
    return this.setup.installedPath;
  }

  manifests(): VehicleManifest[] {
    return this.mock.manifestsOf(this.deviceId).flatMap((m) => (m.manifest ? [m.manifest] : []));
  }

  async serverAttacks(): Promise<undefined> {
    return undefined;
  }

  async serverInstallReports(): Promise<undefined> {
    return undefined;
  }

  /** The attacker stops; the Director directs `next` again. */
  async heal(): Promise<void> {
    this.mock.clearTampers();
    await this.mock.assign(this.deviceId, this.next.name);
  }
}
