/**
 * Unmodified aktualizr against a fresh Uptide server (issue 3): device
 * credentials over mTLS with an Ed25519 and an RSA Uptane key, shared-credential
 * auto-provisioning from credentials.zip, and a Primary with an IP Secondary.
 *
 * Skipped unless AKTUALIZR_BIN points at an aktualizr binary built from
 * uptane/aktualizr with OSTree off (see docs/aktualizr.md). The IP Secondary
 * case also needs aktualizr-secondary: AKTUALIZR_SECONDARY_BIN, or the
 * binary next to AKTUALIZR_BIN in a CMake build tree. The server runs as a
 * real process from packages/server/dist, so build first (`npx tsc -b`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const AKTUALIZR = process.env['AKTUALIZR_BIN'];
const siblingSecondary = AKTUALIZR ? resolve(dirname(AKTUALIZR), '../aktualizr_secondary/aktualizr-secondary') : undefined;
const AKTUALIZR_SECONDARY = process.env['AKTUALIZR_SECONDARY_BIN'] ?? (siblingSecondary && existsSync(siblingSecondary) ? siblingSecondary : undefined);
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SERVER_BIN = join(REPO, 'packages/server/dist/bin/uptide-server.js');
/** One aktualizr run (`--run-mode once`) takes a few seconds; this bounds a hung one. */
const RUN_TIMEOUT_MS = 120_000;

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => ok(port));
    });
  });
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

async function waitForPort(port: number, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    const up = await new Promise<boolean>((ok) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        ok(true);
      });
      c.once('error', () => ok(false));
    });
    if (up) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${deadlineMs} ms`);
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

interface Server {
  readonly admin: string;
  readonly gateway: string;
  readonly token: string;
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T; raw: Buffer }>;
}

/** Runs aktualizr once with a config file, its output kept in `<dir>/<name>.log`. */
async function runAktualizr(dir: string, config: string, name: string): Promise<{ code: number | null; log: string }> {
  const logFile = join(dir, `${name}.log`);
  const fd = openSync(logFile, 'w');
  try {
    const child = spawn(AKTUALIZR as string, ['-c', config, '--run-mode', 'once'], { cwd: dir, stdio: ['ignore', fd, fd] });
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    const code = await new Promise<number | null>((ok, fail) => {
      child.once('error', fail);
      child.once('exit', (c) => ok(c));
    });
    clearTimeout(timer);
    return { code, log: readFileSync(logFile, 'latin1') };
  } finally {
    closeSync(fd);
  }
}

/** The shared part of every aktualizr config: no OSTree, state under `dir`, no reboot command. */
function commonToml(dir: string, uptane: string): string {
  return `[uptane]
polling_sec = 1
${uptane}

[pacman]
type = "none"
images_path = "${dir}/storage/images"

[storage]
path = "${dir}/storage"

[bootloader]
reboot_sentinel_dir = "${dir}/storage"
reboot_command = ""

[logger]
loglevel = 1
`;
}

interface DeviceView {
  deviceId: string;
  ecus: { ecuSerial: string; hardwareId: string; primary: boolean; installedImage: { filepath: string } | null }[];
}
interface UpdateStatus {
  counts: Record<string, number>;
  devices: { device: string; status: string; ecus: { ecu: string; hardwareId: string; status: string; resultCode: string | null }[] }[];
}

describe.skipIf(!AKTUALIZR)('unmodified aktualizr against uptide-server', () => {
  let work: string;
  let serverProcess: ChildProcess | undefined;
  let server: Server;
  const image = randomBytes(64 * 1024);
  const imageSha256 = createHash('sha256').update(image).digest('hex');

  beforeAll(async () => {
    if (!existsSync(SERVER_BIN)) throw new Error(`${SERVER_BIN} is missing: run "npx tsc -b" first`);
    work = mkdtempSync(join(tmpdir(), 'uptide-aktualizr-'));
    const httpPort = await freePort();
    const devicePort = await freePort();
    const dataDir = join(work, 'server');
    const serverLog = openSync(join(work, 'server.log'), 'w');
    serverProcess = spawn(
      process.execPath,
      [SERVER_BIN, '--data-dir', dataDir, '--host', '127.0.0.1', '--http-port', String(httpPort), '--device-port', String(devicePort), '--log-level', 'warn'],
      { stdio: ['ignore', serverLog, serverLog], env: { ...process.env, UPTIDE_KEY_PASSPHRASE: 'aktualizr interop test' } },
    );
    closeSync(serverLog);
    await waitForPort(devicePort, 30_000);
    const admin = `http://127.0.0.1:${httpPort}`;
    // The token file is written before the listeners start.
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    server = {
      admin,
      gateway: `https://127.0.0.1:${devicePort}`,
      token,
      async api(method, path, body) {
        const init: RequestInit = { method, headers: { authorization: `Bearer ${token}` } };
        if (body instanceof Uint8Array) {
          init.body = body;
          (init.headers as Record<string, string>)['content-type'] = 'application/octet-stream';
        } else if (body !== undefined) {
          init.body = JSON.stringify(body);
          (init.headers as Record<string, string>)['content-type'] = 'application/json';
        }
        const res = await fetch(admin + path, init);
        const raw = Buffer.from(await res.arrayBuffer());
        const json = (res.headers.get('content-type') ?? '').includes('json') && raw.length > 0;
        return { status: res.status, body: (json ? JSON.parse(raw.toString('utf8')) : raw) as never, raw };
      },
    };
    await waitForPort(httpPort, 10_000);
    const up = await server.api('PUT', '/api/v1/user_repo/targets/akt-fw-1.0.bin?name=akt-fw&version=1.0&hardwareIds=akt-board,akt-sec-board', image);
    expect(up.status).toBe(201);
  });

  afterAll(async () => {
    await stop(serverProcess);
    if (work && !process.env['KEEP_AKTUALIZR_WORK']) rmSync(work, { recursive: true, force: true });
  });

  /** The whole cycle: register, launch, install, report, and no second install. */
  async function updateCycle(dir: string, config: string, deviceIdOf: () => Promise<string>, secondaryFirmware?: string): Promise<void> {
    const first = await runAktualizr(dir, config, 'run-1-register');
    expect(first.code, first.log.slice(-4000)).toBe(0);
    expect(first.log).toContain('ECUs have been successfully registered with the server.');
    const deviceId = await deviceIdOf();
    const registered = await server.api<DeviceView>('GET', `/api/v1/devices/${deviceId}`);
    expect(registered.status).toBe(200);
    const ecuCount = secondaryFirmware ? 2 : 1;
    expect(registered.body.ecus).toHaveLength(ecuCount);

    const launched = await server.api<{ id: string; affected: string[] }>('POST', '/api/v1/updates', { image: 'akt-fw@1.0', devices: [deviceId] });
    expect(launched.status).toBe(201);
    expect(launched.body.affected).toEqual([deviceId]);

    const second = await runAktualizr(dir, config, 'run-2-install');
    expect(second.code, second.log.slice(-4000)).toBe(0);
    expect(second.log).toContain('Installing package using fake package manager');
    const status = await server.api<UpdateStatus>('GET', `/api/v1/updates/${launched.body.id}`);
    expect(status.status).toBe(200);
    expect(status.body.counts['completed'], JSON.stringify(status.body)).toBe(1);
    expect(status.body.devices[0]?.status).toBe('completed');
    expect(status.body.devices[0]?.ecus.map((e) => [e.status, e.resultCode])).toEqual(Array(ecuCount).fill(['completed', 'OK']));
    const after = await server.api<DeviceView>('GET', `/api/v1/devices/${deviceId}`);
    expect(after.body.ecus.map((e) => e.installedImage?.filepath)).toEqual(Array(ecuCount).fill('akt-fw-1.0.bin'));
    // aktualizr's fake package manager keeps images under their upper-case SHA-256.
    expect(readFileSync(join(dir, 'storage/images', imageSha256.toUpperCase())).equals(image)).toBe(true);
    if (secondaryFirmware) expect(readFileSync(secondaryFirmware).equals(image)).toBe(true);

    // The update is done: the next run sends its manifest and installs nothing.
    const third = await runAktualizr(dir, config, 'run-3-idle');
    expect(third.code, third.log.slice(-4000)).toBe(0);
    expect(third.log).not.toContain('Installing package');
    const again = await server.api<UpdateStatus>('GET', `/api/v1/updates/${launched.body.id}`);
    expect(again.body.counts['completed']).toBe(1);
  }

  /**
   * A device with credentials issued by the admin API (aktualizr's DeviceCred
   * mode). With `pinRoots`, the initial Director and Image roots are imported
   * from `[import] base_path` instead of trusted on first use.
   */
  async function deviceCredentials(deviceId: string, uptane: string, pinRoots = false): Promise<{ dir: string; config: string }> {
    const dir = join(work, deviceId);
    mkdirSync(join(dir, 'import'), { recursive: true });
    if (pinRoots) {
      for (const [path, file] of [
        ['/api/v1/admin/repo/1.root.json', 'director/root.json'],
        ['/api/v1/user_repo/1.root.json', 'repo/root.json'],
      ] as const) {
        const root = await server.api('GET', path);
        expect(root.status).toBe(200);
        mkdirSync(dirname(join(dir, 'import', file)), { recursive: true });
        writeFileSync(join(dir, 'import', file), root.raw);
      }
    }
    const creds = await server.api<{ certificate: string; privateKey: string; serverCa: string; gatewayUrl: string }>(
      'POST',
      `/api/v1/devices/${deviceId}/credentials`,
      {},
    );
    expect(creds.status).toBe(201);
    expect(creds.body.gatewayUrl).toBe(server.gateway);
    writeFileSync(join(dir, 'import/client.pem'), creds.body.certificate);
    writeFileSync(join(dir, 'import/pkey.pem'), creds.body.privateKey, { mode: 0o600 });
    writeFileSync(join(dir, 'import/ca.pem'), creds.body.serverCa);
    const config = join(dir, 'sota.toml');
    writeFileSync(
      config,
      `[tls]
server = "${creds.body.gatewayUrl}"

[provision]
mode = "DeviceCred"
primary_ecu_hardware_id = "akt-board"

[import]
base_path = "${dir}/import"
tls_cacert_path = "ca.pem"
tls_pkey_path = "pkey.pem"
tls_clientcert_path = "client.pem"

${commonToml(dir, uptane)}`,
    );
    return { dir, config };
  }

  it('updates a device with device credentials, an Ed25519 Uptane key and pinned initial roots', async () => {
    const { dir, config } = await deviceCredentials('akt-ed25519', 'key_type = "ED25519"', true);
    await updateCycle(dir, config, async () => 'akt-ed25519');
    const firstRun = readFileSync(join(dir, 'run-1-register.log'), 'latin1');
    expect(firstRun).toContain('Imported initial director root keys');
    expect(firstRun).toContain('Imported initial image root keys');
  }, 300_000);

  it('updates a device with device credentials and the default RSA Uptane key (roots trusted on first use)', async () => {
    const { dir, config } = await deviceCredentials('akt-rsa', '');
    await updateCycle(dir, config, async () => 'akt-rsa');
  }, 300_000);

  it('auto-provisions a device from a fleet credentials.zip and updates it', async () => {
    const dir = join(work, 'shared');
    mkdirSync(dir, { recursive: true });
    const zip = await server.api<Buffer>('POST', '/api/v1/provisioning/credentials');
    expect(zip.status).toBe(200);
    writeFileSync(join(dir, 'credentials.zip'), zip.raw);
    const config = join(dir, 'sota.toml');
    // No [tls] server: aktualizr reads the gateway from autoprov.url in the zip, and picks its own device id.
    writeFileSync(
      config,
      `[provision]
provision_path = "${dir}/credentials.zip"
mode = "SharedCred"
primary_ecu_hardware_id = "akt-board"

${commonToml(dir, 'key_type = "ED25519"')}`,
    );
    const before = new Set((await server.api<{ values: { deviceId: string }[] }>('GET', '/api/v1/devices?limit=1000')).body.values.map((d) => d.deviceId));
    await updateCycle(dir, config, async () => {
      const now = (await server.api<{ values: { deviceId: string }[] }>('GET', '/api/v1/devices?limit=1000')).body.values.map((d) => d.deviceId);
      const fresh = now.filter((d) => !before.has(d));
      expect(fresh).toHaveLength(1);
      return fresh[0] as string;
    });
  }, 300_000);

  it.skipIf(!AKTUALIZR_SECONDARY)(
    'updates a Primary and its IP Secondary (aktualizr-secondary)',
    async () => {
      const { dir, config } = await deviceCredentials('akt-with-secondary', 'key_type = "ED25519"');
      const secDir = join(dir, 'secondary');
      mkdirSync(secDir, { recursive: true });
      const secondaryPort = await freePort();
      const waitPort = await freePort();
      writeFileSync(
        join(secDir, 'sota.toml'),
        `[uptane]
ecu_serial = "akt-secondary-1"
ecu_hardware_id = "akt-sec-board"
key_type = "ED25519"

[network]
port = ${secondaryPort}
primary_ip = "127.0.0.1"
primary_port = ${waitPort}

[pacman]
type = "none"

[storage]
path = "${secDir}/storage"

[bootloader]
reboot_sentinel_dir = "${secDir}/storage"
reboot_command = ""

[logger]
loglevel = 1
`,
      );
      writeFileSync(
        join(dir, 'secondaries.json'),
        JSON.stringify({
          IP: {
            secondaries_wait_port: waitPort,
            secondaries_wait_timeout: 20,
            secondaries: [{ addr: `127.0.0.1:${secondaryPort}`, verification_type: 'Full' }],
          },
        }),
      );
      writeFileSync(
        config,
        readFileSync(config, 'utf8').replace('[uptane]\n', `[uptane]\nsecondary_config_file = "${dir}/secondaries.json"\nsecondary_preinstall_wait_sec = 20\n`),
      );
      const secLog = openSync(join(secDir, 'secondary.log'), 'w');
      const secondary = spawn(AKTUALIZR_SECONDARY as string, ['-c', join(secDir, 'sota.toml')], { cwd: secDir, stdio: ['ignore', secLog, secLog] });
      closeSync(secLog);
      try {
        await waitForPort(secondaryPort, 30_000);
        await updateCycle(dir, config, async () => 'akt-with-secondary', join(secDir, 'storage/firmware.txt'));
        const ecus = (await server.api<DeviceView>('GET', '/api/v1/devices/akt-with-secondary')).body.ecus;
        expect(ecus.find((e) => !e.primary)).toMatchObject({ ecuSerial: 'akt-secondary-1', hardwareId: 'akt-sec-board' });
      } finally {
        await stop(secondary);
      }
    },
    300_000,
  );
});
