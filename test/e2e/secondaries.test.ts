/**
 * A vehicle against the real server: the Primary (the built `uptide-device`
 * binary) and two IP Secondaries (the built `uptide-secondary` binary, one
 * full and one partial verification), over mTLS to an in-process
 * uptide-server provisioned through its admin API.
 *
 * - one image for three hardware ids, one update: every ECU installs it and
 *   the server shows the update completed per ECU;
 * - a Secondary whose installer fails: reported as failed for that ECU;
 * - a Secondary killed (with its installer) in the middle of an install: the
 *   Primary reports the failure, the Secondary comes back with its state, and
 *   the update launched again completes.
 *
 * Build first (`npx tsc -b`): the binaries run from packages/client/dist.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { startTestServer, type TestServer } from '../../packages/server/src/testing/harness.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DEVICE_BIN = join(REPO, 'packages/client/dist/bin/uptide-device.js');
const SECONDARY_BIN = join(REPO, 'packages/client/dist/bin/uptide-secondary.js');
/** One `uptide-device --once` run; bounds a hung one. */
const RUN_TIMEOUT_MS = 90_000;

const DEVICE = 'e2e-car';
const HW = { primary: 'e2e-primary-board', full: 'e2e-full-board', partial: 'e2e-partial-board' } as const;

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

async function waitFor(what: string, check: () => boolean | Promise<boolean>, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`${what} did not happen within ${deadlineMs} ms`);
}

function listening(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      ok(true);
    });
    c.once('error', () => ok(false));
  });
}

interface SecondaryProcess {
  readonly dir: string;
  readonly port: number;
  readonly config: string;
  child: ChildProcess | undefined;
  runs: number;
}

/** Starts `uptide-secondary` in its own process group (so a power cut can take its installer with it). */
async function startSecondary(s: SecondaryProcess): Promise<void> {
  const fd = openSync(join(s.dir, `secondary-${++s.runs}.log`), 'w');
  s.child = spawn(process.execPath, [SECONDARY_BIN, '--config', s.config, '--log-level', 'debug'], { cwd: s.dir, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  const child = s.child;
  await waitFor(`uptide-secondary on port ${s.port}`, async () => child.exitCode === null && (await listening(s.port)), 20_000);
}

async function stopSecondary(s: SecondaryProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  const child = s.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  if (signal === 'SIGKILL') process.kill(-(child.pid as number), 'SIGKILL');
  else child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

function secondaryLog(s: SecondaryProcess, run = s.runs): string {
  return readFileSync(join(s.dir, `secondary-${run}.log`), 'utf8');
}

/** `uptide-device --config … --once`, its stderr kept in `<dir>/<name>.log`. */
function runPrimary(dir: string, name: string): { done: Promise<{ code: number | null; log: string }> } {
  const logFile = join(dir, `${name}.log`);
  const fd = openSync(logFile, 'w');
  const child = spawn(process.execPath, [DEVICE_BIN, '--config', join(dir, 'uptide-device.toml'), '--once', '--log-level', 'debug'], {
    cwd: dir,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  const done = new Promise<{ code: number | null; log: string }>((ok, fail) => {
    child.once('error', fail);
    child.once('exit', (code) => {
      clearTimeout(timer);
      ok({ code, log: readFileSync(logFile, 'utf8') });
    });
  });
  return { done };
}

interface UpdateStatus {
  counts: Record<string, number>;
  devices: {
    device: string;
    status: string;
    ecus: { ecu: string; hardwareId: string; status: string; resultCode: string | null; resultDescription: string | null }[];
  }[];
}
interface DeviceView {
  ecus: { ecuSerial: string; hardwareId: string; primary: boolean; installedImage: { filepath: string } | null }[];
}

describe('a Primary and its IP Secondaries (full and partial) against uptide-server', () => {
  let ts: TestServer;
  let work: string;
  let primaryDir: string;
  let full: SecondaryProcess;
  let partial: SecondaryProcess;
  let version = 0;

  beforeAll(async () => {
    for (const bin of [DEVICE_BIN, SECONDARY_BIN]) if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npx tsc -b" first`);
    ts = await startTestServer();
    work = mkdtempSync(join(tmpdir(), 'uptide-e2e-secondaries-'));
    // Roots as the server serves them, pinned on every ECU at installation.
    const directorRoot = (await ts.api('GET', '/api/v1/admin/repo/1.root.json')).raw;
    const imageRoot = (await ts.api('GET', '/api/v1/user_repo/1.root.json')).raw;

    const secondary = async (name: string, verification: 'full' | 'partial', hardwareId: string, installer: string): Promise<SecondaryProcess> => {
      const dir = join(work, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'director-root.json'), directorRoot);
      if (verification === 'full') writeFileSync(join(dir, 'image-root.json'), imageRoot);
      const port = await freePort();
      const config = join(dir, 'uptide-secondary.toml');
      writeFileSync(
        config,
        `[secondary]
storage = "state"
hardware_id = "${hardwareId}"
ecu_serial = "${DEVICE}-${name}"
verification = "${verification}"

[network]
host = "127.0.0.1"
port = ${port}

[trust]
director_root = "director-root.json"
${verification === 'full' ? 'image_root = "image-root.json"' : ''}

${installer}
`,
      );
      const s: SecondaryProcess = { dir, port, config, child: undefined, runs: 0 };
      await startSecondary(s);
      return s;
    };
    full = await secondary('full', 'full', HW.full, '[installer]\ntype = "file"\npath = "installed/image.bin"');
    // The partial one installs with a program that fails or hangs on demand (flag files next to it).
    const script = join(work, 'partial-install.sh');
    mkdirSync(join(work, 'partial'), { recursive: true });
    writeFileSync(
      script,
      `#!/bin/sh
d="${join(work, 'partial')}"
if [ -e "$d/fail" ]; then echo "the flash controller refused $2" >&2; exit 3; fi
if [ -e "$d/slow" ]; then touch "$d/started"; sleep 60; fi
mkdir -p "$d/installed" && cp "$1" "$d/installed/image.bin"
`,
    );
    chmodSync(script, 0o755);
    partial = await secondary('partial', 'partial', HW.partial, `[installer]\ntype = "command"\ncommand = ["${script}"]\ntimeout = 120`);

    // The device: credentials from the admin API, the Secondaries in its configuration.
    primaryDir = join(work, 'primary');
    mkdirSync(primaryDir, { recursive: true });
    const creds = await ts.api<{ certificate: string; privateKey: string; serverCa: string; gatewayUrl: string }>(
      'POST',
      `/api/v1/devices/${DEVICE}/credentials`,
      {},
    );
    expect(creds.status).toBe(201);
    writeFileSync(join(primaryDir, 'client.pem'), creds.body.certificate);
    writeFileSync(join(primaryDir, 'pkey.pem'), creds.body.privateKey, { mode: 0o600 });
    writeFileSync(join(primaryDir, 'ca.pem'), creds.body.serverCa);
    writeFileSync(join(primaryDir, 'director-root.json'), directorRoot);
    writeFileSync(join(primaryDir, 'image-root.json'), imageRoot);
    writeFileSync(
      join(primaryDir, 'uptide-device.toml'),
      `[device]
storage = "state"

[server]
gateway = "${creds.body.gatewayUrl}"

[tls]
ca = "ca.pem"
cert = "client.pem"
key = "pkey.pem"

[trust]
director_root = "director-root.json"
image_root = "image-root.json"

[primary]
hardware_id = "${HW.primary}"
ecu_serial = "${DEVICE}-primary"

[limits]
connect_timeout = 5
idle_timeout = 20

[installer]
type = "file"
path = "installed/image.bin"

[[secondaries]]
address = "127.0.0.1:${full.port}"
verification = "full"

[[secondaries]]
address = "127.0.0.1:${partial.port}"
verification = "partial"

[ip_secondaries]
request_timeout = 10
preinstall_wait = 2
install_timeout = 120
`,
    );
    const first = await runPrimary(primaryDir, 'run-register').done;
    expect(first.code, first.log.slice(-3000)).toBe(0);
  });

  afterAll(async () => {
    for (const s of [full, partial]) if (s) await stopSecondary(s);
    await ts?.close();
    if (work && !process.env['KEEP_E2E_WORK']) rmSync(work, { recursive: true, force: true });
  });

  /** Uploads a new image for the three hardware ids and launches an update of the device. */
  async function release(): Promise<{ file: string; bytes: Buffer; updateId: string }> {
    version++;
    const bytes = randomBytes(40_000 + version);
    const file = `e2e-fw-${version}.0.bin`;
    const up = await ts.api('PUT', `/api/v1/user_repo/targets/${file}?name=e2e-fw&version=${version}.0&hardwareIds=${Object.values(HW).join(',')}`, bytes);
    expect(up.status).toBe(201);
    return { file, bytes, updateId: await launch(`e2e-fw@${version}.0`) };
  }

  async function launch(image: string): Promise<string> {
    const launched = await ts.api<{ id: string; affected: string[] }>('POST', '/api/v1/updates', { image, devices: [DEVICE] });
    expect(launched.status, JSON.stringify(launched.body)).toBe(201);
    expect(launched.body.affected).toEqual([DEVICE]);
    return launched.body.id;
  }

  async function status(updateId: string): Promise<Map<string, { status: string; resultCode: string | null; resultDescription: string | null }>> {
    const s = await ts.api<UpdateStatus>('GET', `/api/v1/updates/${updateId}`);
    expect(s.status).toBe(200);
    return new Map((s.body.devices[0]?.ecus ?? []).map((e) => [e.hardwareId, e]));
  }

  it('registers the Secondaries with the keys they reported', async () => {
    const device = await ts.api<DeviceView>('GET', `/api/v1/devices/${DEVICE}`);
    expect(device.status).toBe(200);
    expect(device.body.ecus.map((e) => [e.ecuSerial, e.hardwareId, e.primary]).sort()).toEqual(
      [
        [`${DEVICE}-primary`, HW.primary, true],
        [`${DEVICE}-full`, HW.full, false],
        [`${DEVICE}-partial`, HW.partial, false],
      ].sort(),
    );
  });

  it('installs one update on the Primary and both Secondaries; the server shows it completed per ECU', async () => {
    const { file, bytes, updateId } = await release();
    const run = await runPrimary(primaryDir, `run-${version}`).done;
    expect(run.code, run.log.slice(-3000)).toBe(0);
    const ecus = await status(updateId);
    for (const hw of Object.values(HW)) expect(ecus.get(hw), hw).toMatchObject({ status: 'completed', resultCode: 'OK' });
    for (const f of [join(primaryDir, 'installed/image.bin'), join(full.dir, 'installed/image.bin'), join(partial.dir, 'installed/image.bin')]) {
      expect(readFileSync(f).equals(bytes), f).toBe(true);
    }
    const device = await ts.api<DeviceView>('GET', `/api/v1/devices/${DEVICE}`);
    expect(device.body.ecus.map((e) => e.installedImage?.filepath)).toEqual([file, file, file]);
    expect(secondaryLog(full)).toContain('metadata verified');
    expect(secondaryLog(full)).toContain('verification=full');
    expect(secondaryLog(partial)).toContain('verification=partial');
    // Nothing new: the next cycle installs nothing.
    const idle = await runPrimary(primaryDir, `run-${version}-idle`).done;
    expect(idle.code, idle.log.slice(-3000)).toBe(0);
    expect(idle.log).not.toContain('installing');
  });

  it("reports a Secondary's failed install as failed for that ECU", async () => {
    writeFileSync(join(partial.dir, 'fail'), '');
    try {
      const { bytes, updateId } = await release();
      const run = await runPrimary(primaryDir, `run-${version}`).done;
      expect(run.code, run.log.slice(-3000)).toBe(1);
      const ecus = await status(updateId);
      expect(ecus.get(HW.primary)).toMatchObject({ status: 'completed', resultCode: 'OK' });
      expect(ecus.get(HW.full)).toMatchObject({ status: 'completed', resultCode: 'OK' });
      expect(ecus.get(HW.partial)?.status).toBe('failed');
      expect(ecus.get(HW.partial)?.resultCode).toBe('INSTALL_FAILED');
      expect(ecus.get(HW.partial)?.resultDescription).toContain('the flash controller refused');
      expect(readFileSync(join(partial.dir, 'installed/image.bin')).equals(bytes)).toBe(false);
    } finally {
      rmSync(join(partial.dir, 'fail'), { force: true });
    }
  });

  it('recovers a Secondary killed in the middle of an install: reported as failed, back with its state, installed when launched again', async () => {
    writeFileSync(join(partial.dir, 'slow'), '');
    const { file, bytes, updateId } = await release();
    const before = readFileSync(join(partial.dir, 'installed/image.bin'));
    const running = runPrimary(primaryDir, `run-${version}`);
    await waitFor('the installer to start', () => existsSync(join(partial.dir, 'started')), 60_000);
    // A power cut: the Secondary and its installer die at once.
    await stopSecondary(partial, 'SIGKILL');
    rmSync(join(partial.dir, 'slow'));
    rmSync(join(partial.dir, 'started'));
    const run = await running.done;
    expect(run.code, run.log.slice(-3000)).toBe(1);
    let ecus = await status(updateId);
    expect(ecus.get(HW.partial)).toMatchObject({ status: 'failed', resultCode: 'INSTALL_FAILED' });
    expect(ecus.get(HW.full)).toMatchObject({ status: 'completed' });
    expect(readFileSync(join(partial.dir, 'installed/image.bin')).equals(before)).toBe(true);

    await startSecondary(partial);
    await waitFor('the interrupted install to be noticed', () => secondaryLog(partial).includes('an installation was interrupted'), 10_000);
    expect(existsSync(join(partial.dir, 'state/install-pending.json'))).toBe(false);
    expect(existsSync(join(partial.dir, 'state/downloads/incoming.image'))).toBe(false);

    const again = await launch(`e2e-fw@${version}.0`);
    const retry = await runPrimary(primaryDir, `run-${version}-again`).done;
    expect(retry.code, retry.log.slice(-3000)).toBe(0);
    ecus = await status(again);
    for (const hw of Object.values(HW)) expect(ecus.get(hw), hw).toMatchObject({ status: 'completed', resultCode: 'OK' });
    expect(readFileSync(join(partial.dir, 'installed/image.bin')).equals(bytes)).toBe(true);
    const device = await ts.api<DeviceView>('GET', `/api/v1/devices/${DEVICE}`);
    expect(device.body.ecus.find((e) => e.hardwareId === HW.partial)?.installedImage?.filepath).toBe(file);
  });

  it('stops uptide-secondary cleanly on SIGTERM', async () => {
    expect(await stopSecondary(full)).toBe(0);
    expect(secondaryLog(full)).toContain('stopping after the request in progress');
    await startSecondary(full);
  });
});
