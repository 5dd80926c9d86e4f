/**
 * Wire compatibility of our IP Secondaries with stock aktualizr, both ways,
 * against an in-process uptide-server:
 *
 * - our Primary (the built `uptide-device`) drives a stock `aktualizr-secondary`;
 * - stock `aktualizr` (Primary) drives our `uptide-secondary`, full and
 *   partial verification, one of them announcing itself on aktualizr's
 *   `secondaries_wait_port`.
 *
 * Skipped unless AKTUALIZR_BIN points at aktualizr built from uptane/aktualizr
 * (OSTree off); the first part also needs aktualizr-secondary
 * (AKTUALIZR_SECONDARY_BIN, or the binary next to AKTUALIZR_BIN in a CMake
 * build tree). Build first (`npx tsc -b`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { startTestServer, type TestServer } from '../../packages/server/src/testing/harness.js';

const AKTUALIZR = process.env['AKTUALIZR_BIN'];
const sibling = AKTUALIZR ? resolve(dirname(AKTUALIZR), '../aktualizr_secondary/aktualizr-secondary') : undefined;
const AKTUALIZR_SECONDARY = process.env['AKTUALIZR_SECONDARY_BIN'] ?? (sibling && existsSync(sibling) ? sibling : undefined);
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DEVICE_BIN = join(REPO, 'packages/client/dist/bin/uptide-device.js');
const SECONDARY_BIN = join(REPO, 'packages/client/dist/bin/uptide-secondary.js');
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
    await sleep(50);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${deadlineMs} ms`);
}

/** Spawns a long-running process with its output in a log file. */
function daemon(cmd: string, args: string[], cwd: string, log: string): ChildProcess {
  const fd = openSync(log, 'w');
  const child = spawn(cmd, args, { cwd, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  return child;
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Runs a program to completion with its output in `<dir>/<name>.log`. */
async function run(cmd: string, args: string[], dir: string, name: string): Promise<{ code: number | null; log: string }> {
  const logFile = join(dir, `${name}.log`);
  const child = daemon(cmd, args, dir, logFile);
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  const code = await new Promise<number | null>((ok, fail) => {
    child.once('error', fail);
    child.once('exit', (c) => ok(c));
  });
  clearTimeout(timer);
  return { code, log: readFileSync(logFile, 'latin1') };
}

interface UpdateStatus {
  counts: Record<string, number>;
  devices: { device: string; status: string; ecus: { ecu: string; hardwareId: string; status: string; resultCode: string | null }[] }[];
}
interface DeviceView {
  ecus: { ecuSerial: string; hardwareId: string; primary: boolean; installedImage: { filepath: string } | null }[];
}

describe.skipIf(!AKTUALIZR)('IP Secondaries and stock aktualizr, both ways', () => {
  let ts: TestServer;
  let work: string;
  let directorRoot: Buffer;
  let imageRoot: Buffer;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    for (const bin of [DEVICE_BIN, SECONDARY_BIN]) if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npx tsc -b" first`);
    ts = await startTestServer();
    work = mkdtempSync(join(tmpdir(), 'uptide-e2e-akt-secondaries-'));
    directorRoot = (await ts.api('GET', '/api/v1/admin/repo/1.root.json')).raw;
    imageRoot = (await ts.api('GET', '/api/v1/user_repo/1.root.json')).raw;
  });

  afterAll(async () => {
    for (const c of children) await stop(c);
    await ts?.close();
    if (work && !process.env['KEEP_E2E_WORK']) rmSync(work, { recursive: true, force: true });
  });

  async function credentials(deviceId: string, dir: string): Promise<string> {
    const creds = await ts.api<{ certificate: string; privateKey: string; serverCa: string; gatewayUrl: string }>(
      'POST',
      `/api/v1/devices/${deviceId}/credentials`,
      {},
    );
    expect(creds.status).toBe(201);
    writeFileSync(join(dir, 'client.pem'), creds.body.certificate);
    writeFileSync(join(dir, 'pkey.pem'), creds.body.privateKey, { mode: 0o600 });
    writeFileSync(join(dir, 'ca.pem'), creds.body.serverCa);
    return creds.body.gatewayUrl;
  }

  async function release(file: string, hardwareIds: string[], deviceId: string): Promise<{ bytes: Buffer; updateId: string }> {
    const bytes = randomBytes(20_000);
    const name = file.replace(/\.bin$/, '');
    const up = await ts.api('PUT', `/api/v1/user_repo/targets/${file}?name=${name}&version=1.0&hardwareIds=${hardwareIds.join(',')}`, bytes);
    expect(up.status).toBe(201);
    const launched = await ts.api<{ id: string; affected: string[] }>('POST', '/api/v1/updates', { image: file, devices: [deviceId] });
    expect(launched.status, JSON.stringify(launched.body)).toBe(201);
    expect(launched.body.affected).toEqual([deviceId]);
    return { bytes, updateId: launched.body.id };
  }

  async function completedPerEcu(updateId: string): Promise<Array<[string, string, string | null]>> {
    const s = await ts.api<UpdateStatus>('GET', `/api/v1/updates/${updateId}`);
    return (s.body.devices[0]?.ecus ?? []).map((e) => [e.hardwareId, e.status, e.resultCode] as [string, string, string | null]).sort();
  }

  /** An uptide-secondary process. */
  async function uptideSecondary(
    dir: string,
    o: { serial: string; hw: string; verification: 'full' | 'partial'; port: number; primary?: string },
  ): Promise<ChildProcess> {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'director-root.json'), directorRoot);
    if (o.verification === 'full') writeFileSync(join(dir, 'image-root.json'), imageRoot);
    writeFileSync(
      join(dir, 'uptide-secondary.toml'),
      `[secondary]
storage = "state"
hardware_id = "${o.hw}"
ecu_serial = "${o.serial}"
verification = "${o.verification}"

[network]
host = "127.0.0.1"
port = ${o.port}
${o.primary ? `primary = "${o.primary}"` : ''}

[trust]
director_root = "director-root.json"
${o.verification === 'full' ? 'image_root = "image-root.json"' : ''}

[installer]
type = "file"
path = "installed/image.bin"
`,
    );
    const child = daemon(
      process.execPath,
      [SECONDARY_BIN, '--config', join(dir, 'uptide-secondary.toml'), '--log-level', 'debug'],
      dir,
      join(dir, 'secondary.log'),
    );
    children.push(child);
    return child;
  }

  it.skipIf(!AKTUALIZR_SECONDARY)(
    'our Primary (uptide-device) updates a stock aktualizr-secondary',
    async () => {
      const deviceId = 'akt-sec-under-uptide';
      const dir = join(work, deviceId);
      const secDir = join(dir, 'aktualizr-secondary');
      mkdirSync(secDir, { recursive: true });
      const secPort = await freePort();
      writeFileSync(
        join(secDir, 'sota.toml'),
        `[uptane]
ecu_serial = "akt-secondary-1"
ecu_hardware_id = "akt-sec-board"
key_type = "ED25519"

[network]
port = ${secPort}

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
      children.push(daemon(AKTUALIZR_SECONDARY as string, ['-c', join(secDir, 'sota.toml')], secDir, join(secDir, 'secondary.log')));
      await waitForPort(secPort, 30_000);

      const gateway = await credentials(deviceId, dir);
      writeFileSync(join(dir, 'director-root.json'), directorRoot);
      writeFileSync(join(dir, 'image-root.json'), imageRoot);
      writeFileSync(
        join(dir, 'uptide-device.toml'),
        `[device]
storage = "state"

[server]
gateway = "${gateway}"

[tls]
ca = "ca.pem"
cert = "client.pem"
key = "pkey.pem"

[trust]
director_root = "director-root.json"
image_root = "image-root.json"
# OTA CE-style empty targets carry no vehicle id; Uptide's server sends one, but aktualizr-secondary never sees it.

[primary]
hardware_id = "uptide-board"

[installer]
type = "file"
path = "installed/image.bin"

[[secondaries]]
address = "127.0.0.1:${secPort}"
verification = "full"

[ip_secondaries]
request_timeout = 10
preinstall_wait = 5
install_timeout = 60
`,
      );
      const args = [DEVICE_BIN, '--config', join(dir, 'uptide-device.toml'), '--once', '--log-level', 'debug'];
      const first = await run(process.execPath, args, dir, 'run-1-register');
      expect(first.code, first.log.slice(-3000)).toBe(0);
      const registered = await ts.api<DeviceView>('GET', `/api/v1/devices/${deviceId}`);
      expect(registered.body.ecus.find((e) => !e.primary)).toMatchObject({ ecuSerial: 'akt-secondary-1', hardwareId: 'akt-sec-board' });

      const { bytes, updateId } = await release('akt-sec-fw-1.0.bin', ['akt-sec-board', 'uptide-board'], deviceId);
      const second = await run(process.execPath, args, dir, 'run-2-install');
      expect(second.code, second.log.slice(-3000) + readFileSync(join(secDir, 'secondary.log'), 'latin1').slice(-3000)).toBe(0);
      expect(await completedPerEcu(updateId)).toEqual([
        ['akt-sec-board', 'completed', 'OK'],
        ['uptide-board', 'completed', 'OK'],
      ]);
      expect(readFileSync(join(secDir, 'storage/firmware.txt')).equals(bytes)).toBe(true);
      const after = await ts.api<DeviceView>('GET', `/api/v1/devices/${deviceId}`);
      expect(after.body.ecus.map((e) => e.installedImage?.filepath)).toEqual(['akt-sec-fw-1.0.bin', 'akt-sec-fw-1.0.bin']);
      const third = await run(process.execPath, args, dir, 'run-3-idle');
      expect(third.code, third.log.slice(-3000)).toBe(0);
      expect(third.log).not.toContain('installing');
    },
    300_000,
  );

  it('stock aktualizr (Primary) updates our uptide-secondary, full and partial, one announcing itself on the wait port', async () => {
    const deviceId = 'uptide-secs-under-akt';
    const dir = join(work, deviceId);
    mkdirSync(join(dir, 'import/director'), { recursive: true });
    mkdirSync(join(dir, 'import/repo'), { recursive: true });
    writeFileSync(join(dir, 'import/director/root.json'), directorRoot);
    writeFileSync(join(dir, 'import/repo/root.json'), imageRoot);
    const gateway = await credentials(deviceId, join(dir, 'import'));
    const [fullPort, partialPort, waitPort] = [await freePort(), await freePort(), await freePort()];
    const full = await uptideSecondary(join(dir, 'full'), { serial: 'uptide-full-1', hw: 'uptide-full-board', verification: 'full', port: fullPort });
    await waitForPort(fullPort, 20_000);
    expect(full.exitCode).toBe(null);
    writeFileSync(
      join(dir, 'secondaries.json'),
      JSON.stringify({
        IP: {
          secondaries_wait_port: waitPort,
          secondaries_wait_timeout: 30,
          secondaries: [
            { addr: `127.0.0.1:${fullPort}`, verification_type: 'Full' },
            { addr: `127.0.0.1:${partialPort}`, verification_type: 'Full' },
          ],
        },
      }),
    );
    const config = join(dir, 'sota.toml');
    writeFileSync(
      config,
      `[tls]
server = "${gateway}"

[provision]
mode = "DeviceCred"
primary_ecu_hardware_id = "akt-board"

[import]
base_path = "${dir}/import"
tls_cacert_path = "ca.pem"
tls_pkey_path = "pkey.pem"
tls_clientcert_path = "client.pem"

[uptane]
polling_sec = 1
key_type = "ED25519"
secondary_config_file = "${dir}/secondaries.json"
secondary_preinstall_wait_sec = 20

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
`,
    );
    // aktualizr waits on its wait port for the partial Secondary, which connects in when it starts.
    const first = run(AKTUALIZR as string, ['-c', config, '--run-mode', 'once'], dir, 'run-1-register');
    await sleep(1500);
    await uptideSecondary(join(dir, 'partial'), {
      serial: 'uptide-partial-1',
      hw: 'uptide-partial-board',
      verification: 'partial',
      port: partialPort,
      primary: `127.0.0.1:${waitPort}`,
    });
    const registered = await first;
    expect(registered.code, registered.log.slice(-4000)).toBe(0);
    expect(registered.log).toContain('ECUs have been successfully registered with the server.');
    expect(readFileSync(join(dir, 'partial/secondary.log'), 'utf8')).toContain('announced to the Primary');
    const device = await ts.api<DeviceView>('GET', `/api/v1/devices/${deviceId}`);
    expect(device.body.ecus.map((e) => e.ecuSerial).sort()).toEqual([expect.any(String), 'uptide-full-1', 'uptide-partial-1'].sort());

    const { bytes, updateId } = await release('uptide-sec-fw-1.0.bin', ['akt-board', 'uptide-full-board', 'uptide-partial-board'], deviceId);
    const second = await run(AKTUALIZR as string, ['-c', config, '--run-mode', 'once'], dir, 'run-2-install');
    const logs = () =>
      second.log.slice(-3000) +
      readFileSync(join(dir, 'full/secondary.log'), 'utf8').slice(-3000) +
      readFileSync(join(dir, 'partial/secondary.log'), 'utf8').slice(-3000);
    expect(second.code, logs()).toBe(0);
    expect(await completedPerEcu(updateId), logs()).toEqual([
      ['akt-board', 'completed', 'OK'],
      ['uptide-full-board', 'completed', 'OK'],
      ['uptide-partial-board', 'completed', 'OK'],
    ]);
    expect(readFileSync(join(dir, 'full/installed/image.bin')).equals(bytes)).toBe(true);
    expect(readFileSync(join(dir, 'partial/installed/image.bin')).equals(bytes)).toBe(true);
    // aktualizr sends the Director's root and targets only: the full Secondary checked those and the Image repository.
    expect(readFileSync(join(dir, 'full/secondary.log'), 'utf8')).toContain('verification=full');
    const third = await run(AKTUALIZR as string, ['-c', config, '--run-mode', 'once'], dir, 'run-3-idle');
    expect(third.code, third.log.slice(-3000)).toBe(0);
  }, 300_000);
});
