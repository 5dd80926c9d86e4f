/**
 * The fleet: N simulated devices in one process, each a real Primary
 * (primary/primary.ts: its own keys, state directory, HTTP client with its
 * own keep-alive TLS connection) with K in-process Secondaries (secondary.ts).
 *
 * What is shared, so that a thousand devices fit in one process on a small
 * machine: the admin API client, the CA and pinned root files (read by each
 * Primary once, on its first cycle), credentials.zip, and one scheduler. There
 * is no timer per device: a binary heap of due times and one timer start each
 * device's next cycle, at most `concurrency` at once, so a thundering herd
 * (every device due at the same moment) queues instead of piling up sockets.
 * Check-ins start once every device is set up; start times are spread over the
 * first interval and every interval is jittered.
 *
 * Layout of the data directory:
 *
 * ```
 * sim.json                  the server and namespace the devices belong to
 * ca.pem                    the server CA (from /api/v1/provisioning/info)
 * director-root.json        pinned initial roots, shared by every device
 * image-root.json
 * credentials.zip           --shared: the fleet's bootstrap credentials
 * devices/<id>/
 *   uptide-device.toml      a configuration uptide-device itself can run
 *   client.pem pkey.pem     the device certificate and its P-256 key (not with --shared)
 *   storage/                the Primary's state (docs/device-client.md)
 *   installed/image.bin     --installer file
 *   secondaries/<serial>/   each Secondary's key, state and image
 * ```
 */
import { generateKeyPair as generateKeyPairCb } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'smol-toml';
import { parseConfigText, type DeviceConfig } from '../config/config.js';
import { parseSecondaryConfigText } from '../secondary/config.js';
import { Secondary } from '../secondary/secondary.js';
import { installOk, type Installer } from '../installers/index.js';
import { createLogger, silentLogger, type Logger } from '../primary/log.js';
import { Primary, type CycleResult } from '../primary/primary.js';
import { ensureDir, exists, readIfExists, writeFileAtomic } from '../state/atomic.js';
import { AdminClient, SimError, type ProvisioningInfo } from './admin.js';
import type { SimOptions } from './options.js';
import { SimSecondary } from './secondary.js';
import { SimStats, statusLine, type SimSummary } from './stats.js';

const generateKeyPair = promisify(generateKeyPairCb);

/** Devices provisioned and opened at once during setup (admin API calls, key generation, state directories). */
const SETUP_CONCURRENCY = 16;
/** How long a stop waits for the cycles in progress before closing anyway. */
const DRAIN_MS = 30_000;

export interface SimIo {
  /** Live summary lines (stderr). */
  readonly status?: (line: string) => void;
  /** Setup failures (the first few), and the devices' own log lines when --log-level is given (stderr). */
  readonly deviceLog?: (line: string) => void;
  /** Aborting stops the run: no new cycles, the ones in progress finish, then the summary. */
  readonly signal?: AbortSignal;
  /** Called once every device has checked in successfully once (the steady state starts). */
  readonly onWarm?: (r: { seconds: number }) => void;
  /** Called once every device is ready (or failed setup). */
  readonly onReady?: (r: { ready: number; seconds: number }) => void;
}

/** `--installer none`: the Primary verified everything before install; nothing is written. */
export class VerifyOnlyInstaller implements Installer {
  readonly type = 'none';
  install(request: { targetName: string }): Promise<ReturnType<typeof installOk>> {
    return Promise.resolve(installOk(`${request.targetName} verified; not installed (simulator)`));
  }
}

interface SimDevice {
  readonly id: string;
  readonly dir: string;
  primary: Primary | undefined;
  /** Real uptide-secondary servers (IP-Secondary protocol on 127.0.0.1), closed after the Primary. */
  readonly servers: Secondary[];
  /** --shared devices join the group after their first successful cycle (they do not exist on the server before). */
  grouped: boolean;
}

interface Due {
  readonly at: number;
  readonly device: SimDevice;
}

/** A binary min-heap of due times. */
class DueHeap {
  private readonly a: Due[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): Due | undefined {
    return this.a[0];
  }
  push(d: Due): void {
    const a = this.a;
    a.push(d);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((a[p] as Due).at <= d.at) break;
      a[i] = a[p] as Due;
      i = p;
    }
    a[i] = d;
  }
  pop(): Due | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && (a[r] as Due).at < (a[l] as Due).at ? r : l;
      if ((a[c] as Due).at >= last.at) break;
      a[i] = a[c] as Due;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

/** The Primary first (it drives its Secondaries until it closes), then the Secondaries' servers. */
async function closeDevice(device: SimDevice): Promise<void> {
  await device.primary?.close().catch(() => {});
  await Promise.all(device.servers.map((s) => s.close().catch(() => {})));
}

export function deviceIds(prefix: string, n: number): string[] {
  const width = Math.max(4, String(n).length);
  return Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(width, '0')}`);
}

/** Runs the fleet until the duration ends or the signal aborts; resolves with the summary. */
export async function runSimulator(options: SimOptions, io: SimIo = {}): Promise<SimSummary> {
  return new Fleet(options, io).run();
}

class Fleet {
  private readonly admin: AdminClient;
  private readonly stats = new SimStats();
  private readonly heap = new DueHeap();
  private readonly devices: SimDevice[] = [];
  private readonly cycles = new Set<Promise<void>>();
  private readonly installer: Installer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private stopping = false;
  private stopReason = 'signal';
  private readonly started = performance.now();
  private readyAt: number | undefined;
  private lagWindow = { sum: 0, n: 0 };
  private wake: (() => void) | undefined;
  private directorRoot: Uint8Array = new Uint8Array();
  private gatewayUrl = '';
  /** The server's plain-HTTP development gateway (device id in the URL, no TLS). */
  private plain = false;
  private setupErrorsShown = 0;
  private warmAnnounced = false;

  constructor(
    private readonly options: SimOptions,
    private readonly io: SimIo,
  ) {
    this.admin = new AdminClient(options.server, options.token);
    this.installer = options.installer === 'none' ? new VerifyOnlyInstaller() : undefined;
  }

  async run(): Promise<SimSummary> {
    const o = this.options;
    const onAbort = (): void => this.stop('signal');
    if (this.io.signal?.aborted) this.stopping = true;
    this.io.signal?.addEventListener('abort', onAbort, { once: true });
    let statusTimer: NodeJS.Timeout | undefined;
    let tickTimer: NodeJS.Timeout | undefined;
    let durationTimer: NodeJS.Timeout | undefined;
    try {
      const info = await this.admin.provisioningInfo();
      await this.prepareDataDir(info);
      if (o.group !== undefined) await this.admin.ensureGroup(o.group);

      tickTimer = setInterval(() => this.stats.tick(), 1000);
      tickTimer.unref();
      if (o.statusSeconds > 0 && this.io.status) {
        statusTimer = setInterval(() => this.printStatus(), o.statusSeconds * 1000);
        statusTimer.unref();
      }
      await this.setUpDevices(deviceIds(o.prefix, o.devices));
      // Check-ins start once every device is set up (setup competing with a thousand check-ins took minutes),
      // spread over one interval so that the fleet does not move in lockstep.
      const start = performance.now();
      for (const device of this.devices) this.schedule(device, start + Math.random() * o.intervalSeconds * 1000);
      this.readyAt = performance.now();
      this.stats.checkInsAtReady = this.stats.checkIns;
      this.io.onReady?.({ ready: this.stats.ready, seconds: (this.readyAt - this.started) / 1000 });
      if (this.stats.ready === 0 && !this.stopping) {
        const codes = [...this.stats.setupErrors.keys()].join(', ');
        throw new SimError('SETUP_FAILED', `no device could be set up (${codes}); see the errors above or run with --log-level info`);
      }
      if (o.durationSeconds !== undefined && !this.stopping) {
        durationTimer = setTimeout(() => this.stop('duration'), o.durationSeconds * 1000);
      }
      await this.untilStopped();
      await this.drain();
      if (statusTimer && this.io.status) this.printStatus();
      return this.stats.summary(this.summaryBase());
    } finally {
      this.stopping = true;
      if (statusTimer) clearInterval(statusTimer);
      if (tickTimer) clearInterval(tickTimer);
      if (durationTimer) clearTimeout(durationTimer);
      if (this.timer) clearTimeout(this.timer);
      this.io.signal?.removeEventListener('abort', onAbort);
      await Promise.all(this.devices.map(closeDevice));
    }
  }

  private summaryBase() {
    const now = performance.now();
    return {
      devices: this.options.devices,
      secondariesPerDevice: this.options.secondaries,
      intervalSeconds: this.options.intervalSeconds,
      elapsedSeconds: (now - this.started) / 1000,
      setupSeconds: ((this.readyAt ?? now) - this.started) / 1000,
      stoppedBy: this.stopReason,
    };
  }

  private stop(reason: string): void {
    if (this.stopping) return;
    this.stopping = true;
    this.stopReason = reason;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.wake?.();
  }

  private untilStopped(): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((r) => (this.wake = r));
  }

  /** Waits for the cycles in progress (a cycle is not interrupted midway), at most DRAIN_MS. */
  private async drain(): Promise<void> {
    if (this.cycles.size === 0) return;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.cycles), new Promise<void>((r) => (t = setTimeout(r, DRAIN_MS)))]);
    if (t) clearTimeout(t);
  }

  private printStatus(): void {
    const w = this.stats.window();
    const lag = this.lagWindow.n > 0 ? this.lagWindow.sum / this.lagWindow.n / 1000 : 0;
    this.lagWindow = { sum: 0, n: 0 };
    this.io.status?.(statusLine(this.stats, w, this.options.devices, (performance.now() - this.started) / 1000, lag));
  }

  // --- setup ----------------------------------------------------------------------------------

  private async prepareDataDir(info: ProvisioningInfo): Promise<void> {
    const o = this.options;
    await ensureDir(join(o.dataDir, 'devices'));
    const simFile = join(o.dataDir, 'sim.json');
    const previous = await readIfExists(simFile);
    if (previous) {
      const p = JSON.parse(previous.toString('utf8')) as { gatewayUrl?: string; namespace?: string };
      if (p.gatewayUrl !== info.gatewayUrl || p.namespace !== info.namespace) {
        throw new SimError(
          'DATA_DIR_IN_USE',
          `${o.dataDir} holds devices of another server (${p.gatewayUrl}, namespace ${p.namespace}); use another --data-dir, or delete it`,
        );
      }
    } else {
      await writeFileAtomic(simFile, JSON.stringify({ server: o.server, gatewayUrl: info.gatewayUrl, namespace: info.namespace }, null, 2) + '\n', 0o644);
    }
    this.plain = info.gatewayUrl.startsWith('http:');
    if (this.plain && o.shared)
      throw new SimError('UNSUPPORTED', 'the server runs its plain-HTTP device gateway, which has no shared-credential provisioning: drop --shared');
    // Pinned roots: the first run pins what the server serves now; devices follow rotations on their own from there.
    for (const [file, root] of [
      ['director-root.json', info.directorRoot],
      ['image-root.json', info.imageRoot],
    ] as const) {
      const path = join(o.dataDir, file);
      if (!(await exists(path))) {
        if (root === null || root === undefined) throw new SimError('NO_ROOT', `the server has no ${file.split('-')[0]} root yet`);
        await writeFileAtomic(path, JSON.stringify(root), 0o644);
      }
    }
    this.directorRoot = await readFile(join(o.dataDir, 'director-root.json'));
    await writeFileAtomic(join(o.dataDir, 'ca.pem'), info.serverCa, 0o644);
    if (o.shared && !(await exists(join(o.dataDir, 'credentials.zip')))) {
      await writeFileAtomic(join(o.dataDir, 'credentials.zip'), await this.admin.credentialsZip());
    }
    this.gatewayUrl = info.gatewayUrl.replace(/\/+$/, '');
  }

  private async setUpDevices(ids: readonly string[]): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!this.stopping && next < ids.length) {
        const index = next++;
        const id = ids[index] as string;
        const device: SimDevice = { id, dir: join(this.options.dataDir, 'devices', id), primary: undefined, servers: [], grouped: false };
        try {
          await this.setUpDevice(device, index);
          this.devices.push(device);
          this.stats.ready++;
        } catch (err) {
          await closeDevice(device);
          const code = (err as { code?: unknown }).code;
          this.stats.setupError(typeof code === 'string' ? code : 'SETUP_ERROR');
          // The first few in full; a thousand identical lines would hide everything else.
          if (this.setupErrorsShown++ < 5) this.io.deviceLog?.(`${id} setup failed: ${(err as Error).message}`);
          if (err instanceof SimError && (err.code === 'UNAUTHORIZED' || err.code === 'SERVER_UNREACHABLE')) throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(SETUP_CONCURRENCY, ids.length) }, worker));
  }

  private async setUpDevice(device: SimDevice, index: number): Promise<void> {
    const o = this.options;
    const { id, dir } = device;
    await ensureDir(dir);
    if (this.plain) {
      await this.admin.createDevice(id);
    } else if (!o.shared && !(await exists(join(dir, 'client.pem')))) {
      // A P-256 key made here (fast) rather than one the server generates (RSA by default, slow).
      const { privateKey, publicKey } = await generateKeyPair('ec', { namedCurve: 'prime256v1' });
      const issued = await this.admin.issueCertificate(id, publicKey.export({ format: 'pem', type: 'spki' }).toString());
      await writeFileAtomic(join(dir, 'pkey.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), 0o600);
      await writeFileAtomic(join(dir, 'client.pem'), issued.certificate, 0o600);
    }
    const secondaries: SimSecondary[] = [];
    const ipSecondaries: Array<{ address: string; verification: 'full' | 'partial' }> = [];
    for (let k = 1; k <= o.secondaries; k++) {
      const serial = `${id}-s${k}`;
      const dir = join(device.dir, 'secondaries', serial);
      if (o.inProcessSecondaries) {
        secondaries.push(
          await SimSecondary.open({ dir, serial, hardwareId: o.secondaryHardwareId, initialDirectorRoot: this.directorRoot, installer: o.installer }),
        );
        continue;
      }
      const verification = o.verification === 'mixed' ? ((index + k) % 2 === 0 ? 'full' : 'partial') : o.verification;
      const server = await this.openIpSecondary(dir, serial, verification);
      device.servers.push(server);
      const address = server.address;
      if (!address) throw new SimError('SECONDARY_FAILED', `Secondary ${serial} is not listening`);
      ipSecondaries.push({ address: `${address.host}:${address.port}`, verification });
    }
    const config = await this.writeConfig(device, ipSecondaries);
    device.primary = await Primary.open({ config, log: this.deviceLogger(id), secondaries, ...(this.installer ? { installer: this.installer } : {}) });
    if (o.group !== undefined && !o.shared) {
      await this.admin.addToGroup(o.group, id);
      device.grouped = true;
    }
  }

  private deviceLogger(id: string): Logger {
    const sink = this.io.deviceLog;
    if (this.options.logLevel === undefined || !sink) return silentLogger;
    return createLogger(this.options.logLevel, (line) => sink(`${id} ${line}`));
  }

  /** A real uptide-secondary on 127.0.0.1 (a port the system picks), from a configuration it could run alone. */
  private async openIpSecondary(dir: string, serial: string, verification: 'full' | 'partial'): Promise<Secondary> {
    const o = this.options;
    await ensureDir(dir);
    const doc: Record<string, unknown> = {
      secondary: { storage: 'storage', ecu_serial: serial, hardware_id: o.secondaryHardwareId, verification },
      // One connection at a time is what a Primary makes; a few more cover a Primary restarting.
      network: { host: '127.0.0.1', port: 0, max_connections: 4 },
      trust: { director_root: '../../../../director-root.json', ...(verification === 'full' ? { image_root: '../../../../image-root.json' } : {}) },
      installer: { type: 'file', path: 'image.bin' },
    };
    const path = join(dir, 'uptide-secondary.toml');
    const text =
      `# Written by uptide-sim for simulated Secondary ${serial} (port 0: the system picks one at each start).\n` +
      (o.installer === 'none' ? '# (uptide-sim --installer none verifies images without writing them)\n' : '') +
      stringify(doc) +
      '\n';
    if ((await readIfExists(path))?.toString('utf8') !== text) await writeFile(path, text, { mode: 0o644 });
    const config = parseSecondaryConfigText(text, path);
    const secondary = await Secondary.open({ config, log: this.deviceLogger(serial), ...(this.installer ? { installer: this.installer } : {}) });
    try {
      await secondary.listen();
    } catch (err) {
      await secondary.close();
      throw err;
    }
    return secondary;
  }

  /** Writes the device's uptide-device.toml (when it changed) and parses it as uptide-device would. */
  private async writeConfig(device: SimDevice, ipSecondaries: ReadonlyArray<{ address: string; verification: 'full' | 'partial' }>): Promise<DeviceConfig> {
    const o = this.options;
    const gateway = this.plain ? `${this.gatewayUrl}/d/${encodeURIComponent(device.id)}` : this.gatewayUrl;
    const doc: Record<string, unknown> = {
      device: { id: device.id, storage: 'storage', poll_interval: o.intervalSeconds },
      server: { gateway, ...(this.plain ? { allow_insecure_http: true } : {}) },
      ...(this.plain ? {} : { tls: o.shared ? { ca: '../../ca.pem' } : { ca: '../../ca.pem', cert: 'client.pem', key: 'pkey.pem' } }),
      ...(o.shared ? { provision: { credentials: '../../credentials.zip' } } : {}),
      trust: { director_root: '../../director-root.json', image_root: '../../image-root.json' },
      primary: { hardware_id: o.hardwareId },
      installer: { type: 'file', path: 'installed/image.bin' },
      ...(ipSecondaries.length > 0 ? { secondaries: ipSecondaries.map((s) => ({ address: s.address, verification: s.verification })) } : {}),
    };
    const path = join(device.dir, 'uptide-device.toml');
    const text =
      `# Written by uptide-sim for simulated device ${device.id}; uptide-device --config ${path} runs it alone.\n` +
      (o.installer === 'none' ? '# (uptide-sim --installer none verifies images without writing them)\n' : '') +
      stringify(doc) +
      '\n';
    if ((await readIfExists(path))?.toString('utf8') !== text) await writeFile(path, text, { mode: 0o644 });
    return parseConfigText(text, path);
  }

  // --- the schedule ---------------------------------------------------------------------------

  private schedule(device: SimDevice, at: number): void {
    if (this.stopping) return;
    this.heap.push({ at, device });
    this.pump();
  }

  /** Starts every due cycle that fits under the concurrency limit, then sets the one timer for the next. */
  private pump(): void {
    if (this.stopping) return;
    const now = performance.now();
    for (let top = this.heap.peek(); top && top.at <= now && this.cycles.size < this.options.concurrency; top = this.heap.peek()) {
      this.heap.pop();
      this.start(top.device, top.at);
    }
    const top = this.heap.peek();
    if (!top || this.cycles.size >= this.options.concurrency) return;
    if (this.timer && this.timerAt <= top.at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = top.at;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Infinity;
        this.pump();
      },
      Math.max(0, top.at - now),
    );
  }

  private start(device: SimDevice, due: number): void {
    const p = this.cycle(device, due).finally(() => {
      this.cycles.delete(p);
      this.pump();
    });
    this.cycles.add(p);
  }

  private async cycle(device: SimDevice, due: number): Promise<void> {
    const primary = device.primary;
    if (!primary) return;
    const t0 = performance.now();
    const lag = Math.max(0, t0 - due);
    let result: CycleResult;
    try {
      result = await primary.cycle();
    } catch (err) {
      result = { ok: false, updates: 0, installed: [], error: { code: 'INTERNAL_ERROR', message: (err as Error).message }, attack: undefined };
    }
    const t1 = performance.now();
    this.stats.record(device.id, result, t1 - t0, lag);
    if (this.stats.warm && !this.warmAnnounced) {
      this.warmAnnounced = true;
      this.io.onWarm?.({ seconds: (this.stats.warm.at - (this.readyAt ?? this.started)) / 1000 });
    }
    this.lagWindow.sum += lag;
    this.lagWindow.n++;
    if (result.ok && !device.grouped && this.options.group !== undefined && this.options.shared) {
      // A shared-credential device exists on the server only after its first cycle provisioned it.
      try {
        await this.admin.addToGroup(this.options.group, device.id);
        device.grouped = true;
      } catch (err) {
        this.io.deviceLog?.(`${device.id} cannot join group ${this.options.group}: ${(err as Error).message}`);
      }
    }
    const o = this.options;
    const jitter = 1 + o.jitter * (2 * Math.random() - 1);
    this.schedule(device, t1 + o.intervalSeconds * 1000 * jitter);
  }
}
