/**
 * The real server (SQLite, its mTLS gateway) with the man in the middle in
 * front of it, and real Primaries (`@uptide/client`) that reach the gateway
 * only through the proxy. One world per test file; one fresh vehicle per test.
 *
 * Time: the server and every device read one adjustable clock, so a test can
 * move time for both (or, through `deviceClockOffsetMs`, for the device only).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { parseVehicleManifest, type VehicleManifest } from '@uptide/core';
import { loadConfig, memoryLogger, Primary, type Ecu } from '@uptide/client';
import { startTestServer, type TestServer } from '../../../packages/server/src/testing/harness.js';
import { Mitm } from './mitm.js';
import type { Image, Scene, ServerAttack } from './defeated.js';

export const HW = 'board-a';

/** The test clock: real time plus an offset (ms), shared by the server and the devices. */
export class Clock {
  offsetMs = 0;
  /** Extra offset for devices only (a device whose clock is wrong). */
  deviceOffsetMs = 0;
  server = (): Date => new Date(Date.now() + this.offsetMs);
  device = (): number => Date.now() + this.offsetMs + this.deviceOffsetMs;
  reset(): void {
    this.offsetMs = 0;
    this.deviceOffsetMs = 0;
  }
}

export interface UploadOptions {
  readonly hardwareIds?: readonly string[];
  readonly releaseCounter?: number;
}

export interface VehicleOptions {
  /** Extra `[limits]` settings (snake_case). */
  readonly limits?: Readonly<Record<string, number>>;
  /** More ECUs driven by the Primary through the Ecu interface. */
  readonly secondaries?: readonly Ecu[];
  /** Stop after registration (nothing installed, nothing assigned). */
  readonly bare?: boolean;
  /** The device trusts this CA instead of the attacker's (the A1 test). */
  readonly trustCa?: string;
  /** Leave fw-2.bin undirected (the vehicle then has nothing new). */
  readonly noUpdate?: boolean;
  /** More TOML for the device configuration (IP Secondaries). */
  readonly extraToml?: string;
}

/** A repository's files as the server served them at some moment. */
export interface RepoFiles {
  readonly timestamp: Buffer;
  readonly snapshot: Buffer;
  readonly targets: Buffer;
}

export class ServerWorld {
  readonly images = new Map<string, Buffer>();
  /** The Image repository's files before fw-1 and fw-2 were uploaded: genuine, older, for replays. */
  oldImageFiles!: RepoFiles;
  private readonly vehicles: Vehicle[] = [];

  private constructor(
    readonly ts: TestServer,
    readonly mitm: Mitm,
    readonly clock: Clock,
    readonly serverCa: string,
  ) {}

  /**
   * Starts the server and the proxy and uploads the images every vehicle
   * uses: fw-0 (release counter 0), fw-1 (1, installed by every vehicle
   * before its test) and fw-2 (2, directed to it when the test starts).
   */
  static async start(): Promise<ServerWorld> {
    const clock = new Clock();
    const ts = await startTestServer({ clock: clock.server });
    const info = await ts.api<{ serverCa: string }>('GET', '/api/v1/provisioning/info');
    const mitm = await Mitm.start(ts.gatewayUrl, info.body.serverCa);
    const world = new ServerWorld(ts, mitm, clock, info.body.serverCa);
    await world.upload('fw-0.bin', randomBytes(4096), { releaseCounter: 0 });
    world.oldImageFiles = await world.imageFiles();
    await world.upload('fw-1.bin', randomBytes(4096), { releaseCounter: 1 });
    await world.upload('fw-2.bin', randomBytes(4096), { releaseCounter: 2 });
    return world;
  }

  async close(): Promise<void> {
    for (const v of this.vehicles) await v.primary.close();
    await this.mitm.close();
    await this.ts.close();
  }

  image(name: string): Image {
    const bytes = this.images.get(name);
    if (!bytes) throw new Error(`no image ${name}`);
    return { name, bytes };
  }

  /** Uploads an image through the admin API (`PUT /api/v1/user_repo/targets/…`). */
  async upload(name: string, bytes: Buffer, options: UploadOptions = {}): Promise<void> {
    const q = new URLSearchParams({ name: name.replace(/\.bin$/, ''), version: '1', hardwareIds: (options.hardwareIds ?? [HW]).join(',') });
    if (options.releaseCounter !== undefined) q.set('releaseCounter', String(options.releaseCounter));
    const res = await this.ts.api('PUT', `/api/v1/user_repo/targets/${encodeURIComponent(name)}?${q}`, new Uint8Array(bytes));
    if (res.status !== 201) throw new Error(`upload ${name}: ${res.status} ${JSON.stringify(res.body)}`);
    this.images.set(name, bytes);
  }

  /** The Image repository's current files (through the admin API: the same bytes devices get). */
  async imageFiles(): Promise<RepoFiles> {
    const get = async (f: string) => (await this.ts.api('GET', `/api/v1/user_repo/${f}`)).raw;
    const targets = await get('targets.json');
    const snapshot = await get('snapshot.json');
    return { targets, snapshot, timestamp: await get('timestamp.json') };
  }

  /** Launches an update of one image to one device (`POST /api/v1/updates`). */
  async launch(deviceId: string, image: string): Promise<void> {
    const res = await this.ts.api<{ affected: string[]; notAffected: unknown[] }>('POST', '/api/v1/updates', { image, devices: [deviceId] });
    if (res.status !== 201 || !res.body.affected.includes(deviceId))
      throw new Error(`launch ${image} to ${deviceId}: ${res.status} ${JSON.stringify(res.body)}`);
  }

  /** Launches one multi-target update of several images (each to the ECUs of its hardware id) to a device. */
  async launchBundle(deviceId: string, images: ReadonlyArray<{ name: string; hardwareId: string }>): Promise<void> {
    const targets: Record<string, unknown> = {};
    for (const { name, hardwareId } of images) {
      const bytes = this.images.get(name);
      if (!bytes) throw new Error(`no image ${name}`);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      targets[hardwareId] = {
        to: { target: name, checksum: { method: 'sha256', hash: sha256 }, targetLength: bytes.length, uri: null },
        from: null,
        targetFormat: 'BINARY',
      };
    }
    const mtu = await this.ts.api<string>('POST', '/api/v1/multi_target_updates', { targets });
    if (mtu.status !== 201) throw new Error(`multi-target update: ${mtu.status} ${JSON.stringify(mtu.body)}`);
    // OTA CE answers the id as a JSON string.
    const mtuId = JSON.parse(mtu.raw.toString('utf8')) as string;
    const res = await this.ts.api<string[]>('POST', '/api/v1/assignments', { mtuId, devices: [deviceId] });
    if (res.status >= 300 || !JSON.stringify(res.body).includes(deviceId))
      throw new Error(`assign bundle to ${deviceId}: ${res.status} ${JSON.stringify(res.body)}`);
  }

  /** The images directed to a device and not yet done. */
  async assigned(deviceId: string): Promise<string[]> {
    const res = await this.ts.api<Array<{ targets: Record<string, { image: { filepath: string } }> }>>('GET', `/api/v1/assignments/${deviceId}`);
    return res.body.flatMap((a) => Object.values(a.targets).map((t) => t.image.filepath));
  }

  /** A device certificate from the admin API for a P-256 key made here (quicker than a server-made RSA key). */
  async credentials(deviceId: string): Promise<{ cert: string; key: string }> {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const res = await this.ts.api<{ certificate: string }>('POST', `/api/v1/devices/${deviceId}/credentials`, {
      publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    });
    if (res.status !== 201) throw new Error(`credentials for ${deviceId}: ${res.status} ${JSON.stringify(res.body)}`);
    return { cert: res.body.certificate, key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
  }

  /**
   * A new vehicle: device credentials from the admin API, pinned initial
   * roots, a configuration whose gateway is the proxy, and a Primary that has
   * registered, installed fw-1 and has fw-2 directed to it.
   */
  async vehicle(options: VehicleOptions = {}): Promise<Vehicle> {
    const deviceId = `car-${randomBytes(5).toString('hex')}`;
    const creds = await this.credentials(deviceId);
    this.mitm.register(deviceId, creds);
    const dir = mkdtempSync(join(tmpdir(), 'uptide-attack-'));
    writeFileSync(join(dir, 'director-root.json'), (await this.ts.api('GET', '/api/v1/admin/repo/1.root.json')).raw);
    writeFileSync(join(dir, 'image-root.json'), (await this.ts.api('GET', '/api/v1/user_repo/1.root.json')).raw);
    writeFileSync(join(dir, 'ca.pem'), options.trustCa ?? this.mitm.caCert);
    writeFileSync(join(dir, 'client.pem'), creds.cert);
    writeFileSync(join(dir, 'pkey.pem'), creds.key);
    const limits = { connect_timeout: 5, idle_timeout: 5, min_speed_bytes_per_second: 1024, min_speed_window: 2, retries: 1, ...(options.limits ?? {}) };
    const toml = [
      '[device]',
      `id = "${deviceId}"`,
      'storage = "state"',
      'poll_interval = 1',
      '',
      '[server]',
      `gateway = "${this.mitm.url}"`,
      '',
      '[tls]',
      'ca = "ca.pem"',
      'cert = "client.pem"',
      'key = "pkey.pem"',
      '',
      '[trust]',
      'director_root = "director-root.json"',
      'image_root = "image-root.json"',
      '',
      '[primary]',
      `hardware_id = "${HW}"`,
      '',
      '[limits]',
      ...Object.entries(limits).map(([k, v]) => `${k} = ${v}`),
      '',
      '[installer]',
      'type = "file"',
      'path = "installed/image.bin"',
      '',
      options.extraToml ?? '',
    ].join('\n');
    const configPath = join(dir, 'uptide-device.toml');
    writeFileSync(configPath, toml);
    const primary = await Primary.open({
      config: loadConfig(configPath),
      log: memoryLogger(),
      clock: this.clock.device,
      retryDelayMs: 10,
      secondaries: options.secondaries,
    });
    const v = new Vehicle(this, deviceId, dir, primary);
    this.vehicles.push(v);
    if (options.bare) return v;
    const first = await primary.cycle();
    if (!first.ok) throw new Error(`first cycle of ${deviceId}: ${JSON.stringify(first.error)}`);
    await this.launch(deviceId, 'fw-1.bin');
    const second = await primary.cycle();
    if (second.installed[0] !== 'fw-1.bin') throw new Error(`fw-1.bin not installed on ${deviceId}: ${JSON.stringify(second)}`);
    // The Image repository moves on after the vehicle last looked at it, so the attacked cycle downloads
    // all of its metadata again (and the vehicle's own recordings hold older genuine copies to replay).
    await this.upload(`pad-${deviceId}.bin`, randomBytes(16), { hardwareIds: ['board-pad'] });
    if (!options.noUpdate) await this.launch(deviceId, 'fw-2.bin');
    return v;
  }
}

export class Vehicle implements Scene {
  installed: Image;
  next: Image;

  constructor(
    readonly world: ServerWorld,
    readonly deviceId: string,
    readonly dir: string,
    readonly primary: Primary,
  ) {
    this.installed = world.images.has('fw-1.bin') ? world.image('fw-1.bin') : { name: '', bytes: Buffer.alloc(0) };
    this.next = world.images.has('fw-2.bin') ? world.image('fw-2.bin') : this.installed;
  }

  get serial(): string {
    return this.primary.primaryEcu.serial;
  }

  get storage(): string {
    return join(this.dir, 'state');
  }

  get installedPath(): string {
    return join(this.dir, 'installed', 'image.bin');
  }

  get mitm(): Mitm {
    return this.world.mitm;
  }

  manifests(): VehicleManifest[] {
    return this.mitm.sent(this.deviceId, 'PUT', '/director/manifest').map((b) => parseVehicleManifest(b));
  }

  async serverAttacks(): Promise<ServerAttack[]> {
    const res = await this.world.ts.api<ServerAttack[]>('GET', `/api/v1/devices/${this.deviceId}/attacks`);
    if (res.status !== 200) throw new Error(`attacks of ${this.deviceId}: ${res.status}`);
    return res.body;
  }

  async serverInstallReports(): Promise<Array<{ success: boolean; code: string }>> {
    const res = await this.world.ts.api<Array<{ success: boolean; code: string }>>('GET', `/api/v1/devices/${this.deviceId}/installation_history`);
    return res.body;
  }

  /** The attacker stops; the server directs `next` again if the failed attempt ended its assignment. */
  async heal(): Promise<void> {
    this.mitm.clearRules(this.deviceId);
    this.mitm.clearRules();
    if (!(await this.world.assigned(this.deviceId)).includes(this.next.name)) await this.relaunch();
  }

  /** Directs `next` to the vehicle again (a test with another bundle replaces it). */
  relaunch: () => Promise<void> = () => this.world.launch(this.deviceId, this.next.name);

  /** The latest bytes the server gave this device for a path (through the proxy). */
  lastServed(path: string): Buffer {
    const b = this.mitm.recorded(this.deviceId, path).at(-1);
    if (!b) throw new Error(`${this.deviceId} never fetched ${path}`);
    return b;
  }
}
