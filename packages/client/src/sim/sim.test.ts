/**
 * uptide-sim against a real server (SQLite, mTLS gateway on 127.0.0.1): the
 * fleet is provisioned, checks in, installs an update launched to its group on
 * every Primary and Secondary, and says so in its summary.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestServer, type TestServer } from '../../../server/src/testing/harness.js';
import { loadConfig } from '../config/config.js';
import { loadSecondaryConfig } from '../secondary/config.js';
import { main, type CliIo } from './cli.js';
import { deviceIds } from './fleet.js';
import { parseSimArgs, SimUsageError } from './options.js';
import type { SimSummary } from './stats.js';

const BIN = resolve(fileURLToPath(import.meta.url), '../../../dist/bin/uptide-sim.js');

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void>)();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'uptide-sim-test-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function server(options: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const ts = await startTestServer(options);
  cleanups.push(() => ts.close());
  return ts;
}

interface Run {
  readonly stop: () => void;
  readonly done: Promise<{ code: number; out: string; err: string }>;
  readonly err: () => string;
}

function sim(args: string[], cwd: string, env: Record<string, string> = {}): Run {
  const controller = new AbortController();
  let out = '';
  let err = '';
  const io: CliIo = { env, cwd, out: (t) => void (out += t), err: (t) => void (err += t), errIsTTY: false, signal: controller.signal };
  const done = main(args, io).then((code) => ({ code, out, err }));
  cleanups.push(async () => {
    controller.abort();
    await done;
  });
  return { stop: () => controller.abort(), done, err: () => err };
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface DeviceView {
  readonly values: Array<{ deviceId: string; status?: string; lastSeen?: string | null }>;
  readonly total: number;
}

describe('uptide-sim', () => {
  it('provisions a fleet, checks in, installs an update launched to its group on every ECU, and says so', async () => {
    const ts = await server();
    const dir = tempDir();
    const run = sim(
      ['--devices', '5', '--secondaries', '1', '--interval', '0.3', '--prefix', 'car', '--data-dir', dir, '--installer', 'file', '--json', '--status', '0.5'],
      dir,
      { UPTIDE_SERVER: ts.adminUrl, UPTIDE_TOKEN: ts.token },
    );
    const ids = deviceIds('car', 5);
    expect(ids).toEqual(['car-0001', 'car-0002', 'car-0003', 'car-0004', 'car-0005']);

    // Every device provisioned in the group, with its Primary and Secondary registered.
    await until('every device registered with two ECUs', async () => {
      for (const id of ids) {
        const r = await ts.api<Array<unknown>>('GET', `/api/v1/devices/${id}/ecus`);
        if (r.status !== 200 || !Array.isArray(r.body) || r.body.length !== 2) return undefined;
      }
      return true;
    });
    const group = await ts.api<{ devices: string[] }>('GET', '/api/v1/device_groups/car');
    expect([...group.body.devices].sort()).toEqual(ids);

    // One image for both hardware ids, launched to the group.
    const image = randomBytes(50_000);
    const up = await ts.api('PUT', '/api/v1/user_repo/targets/fleet-1.0.bin?name=fleet&version=1.0&hardwareIds=sim-primary,sim-secondary', image, {
      'content-type': 'application/octet-stream',
    });
    expect(up.status).toBe(201);
    const launched = await ts.api<{ id: string; affected: string[] }>('POST', '/api/v1/updates', { image: 'fleet-1.0.bin', group: 'car' });
    expect(launched.status).toBe(201);
    expect([...launched.body.affected].sort()).toEqual(ids);

    const status = await until('the update completed on every device', async () => {
      const s = await ts.api<{ counts: Record<string, number>; devices: Array<{ device: string; status: string; ecus: Array<{ status: string }> }> }>(
        'GET',
        `/api/v1/updates/${launched.body.id}`,
      );
      return s.body.counts['completed'] === 5 ? s.body : undefined;
    });
    expect(status.devices.flatMap((d) => d.ecus.map((e) => e.status))).toEqual(Array(10).fill('completed'));

    // Let every device report once more, then stop as SIGINT does.
    await new Promise((r) => setTimeout(r, 800));
    run.stop();
    const r = await run.done;
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out) as SimSummary;
    expect(summary).toMatchObject({ devices: 5, secondariesPerDevice: 1, ready: 5, seen: 5, online: 5, installed: 10, updatesFound: 10, updateFailures: 0 });
    // The only failures allowed are those of the known race: the update was launched while a device was between
    // fetching a timestamp and the snapshot or targets it names, which the server had re-signed in the meantime.
    const unexpected = Object.keys(summary.errors).filter((code) => code !== 'MIX_AND_MATCH' && code !== 'ENDLESS_DATA');
    expect(unexpected, r.out + r.err).toEqual([]);
    expect(summary.checkIns).toBeGreaterThanOrEqual(10);
    expect(summary.stoppedBy).toBe('signal');
    // Live lines on stderr while it ran.
    expect(r.err).toMatch(/devices 5\/5 online \d+ \| check-ins [\d.]+\/s/);
    expect(r.err).toContain('installed 10');

    // The images really are on each simulated ECU, and each device's directory runs as uptide-device.
    for (const id of ids) {
      const d = join(dir, 'devices', id);
      expect(readFileSync(join(d, 'installed', 'image.bin')).equals(image)).toBe(true);
      expect(readFileSync(join(d, 'secondaries', `${id}-s1`, 'image.bin')).equals(image)).toBe(true);
      const config = loadConfig(join(d, 'uptide-device.toml'));
      expect(config.device.id).toBe(id);
      expect(existsSync(join(d, 'storage', 'ecu-key.pem'))).toBe(true);
      // Real uptide-secondary ECUs over the IP-Secondary protocol, full and partial verification alternating.
      expect(config.secondaries).toHaveLength(1);
      expect(config.secondaries[0]?.host).toBe('127.0.0.1');
      const secondary = loadSecondaryConfig(join(d, 'secondaries', `${id}-s1`, 'uptide-secondary.toml'));
      expect(secondary.secondary.verification).toBe(config.secondaries[0]?.verification);
      expect(secondary.secondary.verification).toBe(ids.indexOf(id) % 2 === 0 ? 'partial' : 'full');
      const state = JSON.parse(readFileSync(join(secondary.secondary.storage, 'state.json'), 'utf8')) as { installed: Record<string, { filename: string }> };
      expect(state.installed[`${id}-s1`]?.filename).toBe('fleet-1.0.bin');
    }
  });

  it('reuses its devices in a second run with the same data directory, and provisions with shared credentials', async () => {
    const ts = await server();
    const dir = tempDir();
    const env = { UPTIDE_SERVER: ts.adminUrl, UPTIDE_TOKEN: ts.token };
    const args = [
      ...['--devices', '3', '--secondaries', '1', '--in-process-secondaries', '--interval', '0.2', '--duration', '1.5', '--data-dir', dir],
      ...['--json', '--status', '0', '--shared', '--prefix', 'fleet'],
    ];
    const first = await sim(args, dir, env).done;
    expect(first.code).toBe(0);
    const s1 = JSON.parse(first.out) as SimSummary;
    expect(s1).toMatchObject({ ready: 3, seen: 3, stoppedBy: 'duration', failedCheckIns: 0 });
    // Shared credentials: each device provisioned itself (POST /devices) and joined the group afterwards.
    for (const id of deviceIds('fleet', 3))
      expect(readdirSync(join(dir, 'devices', id, 'storage', 'tls')).sort()).toEqual(['ca.pem', 'client.pem', 'pkey.pem']);
    const listed = await ts.api<DeviceView>('GET', '/api/v1/devices?nameContains=fleet');
    expect(listed.body.total).toBe(3);
    await until('the group to fill', async () => {
      const g = await ts.api<{ devices: string[] }>('GET', '/api/v1/device_groups/fleet');
      return g.body.devices.length === 3 ? true : undefined;
    });
    // In-process Secondaries are registered as ECUs of their vehicle like any other.
    for (const id of deviceIds('fleet', 3)) {
      const ecus = await ts.api<unknown[]>('GET', `/api/v1/devices/${id}/ecus`);
      expect(ecus.body).toHaveLength(2);
    }
    const keys = deviceIds('fleet', 3).map((id) => readFileSync(join(dir, 'devices', id, 'storage', 'ecu-key.pem'), 'utf8'));

    const second = await sim(args, dir, env).done;
    expect(second.code).toBe(0);
    expect(JSON.parse(second.out)).toMatchObject({ ready: 3, seen: 3, failedCheckIns: 0 });
    expect(deviceIds('fleet', 3).map((id) => readFileSync(join(dir, 'devices', id, 'storage', 'ecu-key.pem'), 'utf8'))).toEqual(keys);
    expect((await ts.api<DeviceView>('GET', '/api/v1/devices?nameContains=fleet')).body.total).toBe(3);
  });

  it('refuses a data directory of another server', async () => {
    const a = await server();
    const b = await server();
    const dir = tempDir();
    const args = ['--devices', '1', '--interval', '0.2', '--duration', '0.5', '--data-dir', dir, '--status', '0'];
    expect((await sim(args, dir, { UPTIDE_SERVER: a.adminUrl, UPTIDE_TOKEN: a.token }).done).code).toBe(0);
    const r = await sim(args, dir, { UPTIDE_SERVER: b.adminUrl, UPTIDE_TOKEN: b.token }).done;
    expect(r.code).toBe(1);
    expect(r.err).toContain('DATA_DIR_IN_USE');
  });

  it('says what is wrong with the server or the token', async () => {
    const ts = await server();
    const dir = tempDir();
    const bad = await sim(['--devices', '1', '--data-dir', dir, '--token', 'nope', '--server', ts.adminUrl], dir).done;
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('[UNAUTHORIZED]');
    const down = await sim(['--devices', '1', '--data-dir', dir, '--token', 't', '--server', 'http://127.0.0.1:9'], dir).done;
    expect(down.code).toBe(1);
    expect(down.err).toContain('[SERVER_UNREACHABLE]');
  });

  it('gives usage errors for bad options (exit 2), and help', async () => {
    const dir = tempDir();
    const env = { UPTIDE_TOKEN: 't' };
    const cases: Array<[string[], RegExp]> = [
      [[], /--devices is required/],
      [['--devices', '0'], /--devices must be between 1 and 100000/],
      [['--devices', 'ten'], /--devices must be a whole number/],
      [['--devices', '2', '--secondaries', '17'], /--secondaries must be between 0 and 16/],
      [['--devices', '2', '--interval', '0'], /--interval must be at least/],
      [['--devices', '2', '--interval', 'soon'], /--interval must be a number of seconds/],
      [['--devices', '2', '--duration=-1'], /--duration must be at least/],
      [['--devices', '2', '--prefix', 'bad/name'], /--prefix must be/],
      [['--devices', '2', '--installer', 'flash'], /--installer must be file or none/],
      [['--devices', '2', '--server', 'ftp://x'], /--server must be an http/],
      [['--devices', '2', '--jitter', '0.9'], /--jitter must be/],
      [['--devices', '2', '--group', 'g', '--no-group'], /--group NAME or --no-group/],
      [['--devices', '2', '--verification', 'some'], /--verification must be full, partial or mixed/],
      [['--devices', '2', '--in-process-secondaries', '--verification', 'full'], /partial verification only/],
      [['--devices', '2', '--log-level', 'loud'], /--log-level must be one of/],
      [['--devices', '2', '--frobnicate'], /Unknown option '--frobnicate'/],
      [['--devices', '2', 'extra'], /Unexpected argument 'extra'/],
    ];
    for (const [args, message] of cases) {
      const r = await sim(args, dir, env).done;
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err, args.join(' ')).toMatch(message);
      expect(r.err).toContain("Try 'uptide-sim --help'");
    }
    // No token anywhere: a usage error that says where it looked.
    const noToken = await sim(['--devices', '1'], dir).done;
    expect(noToken.code).toBe(2);
    expect(noToken.err).toContain('no admin token');
    const help = await sim(['--help'], dir).done;
    expect(help.code).toBe(0);
    expect(help.out).toContain('uptide-sim --devices N [--secondaries K] [--interval S] [options]');
    expect(() => parseSimArgs(['--devices', '1', '--concurrency', '0'], { env, cwd: dir })).toThrow(SimUsageError);
    const ok = parseSimArgs(['-n', '7', '-k', '2', '-i', '1.5'], { env, cwd: dir });
    expect(ok).toMatchObject({
      options: { devices: 7, secondaries: 2, intervalSeconds: 1.5, group: 'sim', prefix: 'sim', installer: 'none', token: 't', verification: 'mixed' },
    });
  });

  it('runs as a process (the built bin): usage errors exit 2, SIGINT stops it with the summary', async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first with npx tsc -b`);
    const ts = await server();
    const dir = tempDir();
    const spawnSim = (args: string[]) => {
      const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env: { ...process.env, UPTIDE_SERVER: ts.adminUrl, UPTIDE_TOKEN: ts.token } });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const done = new Promise<{ code: number | null }>((r) => child.on('close', (code) => r({ code })));
      cleanups.push(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
      return { child, done, out: () => out, err: () => err };
    };
    const bad = spawnSim(['--devices', 'many']);
    expect((await bad.done).code).toBe(2);
    expect(bad.err()).toContain('--devices must be a whole number');

    const run = spawnSim(['--devices', '2', '--secondaries', '1', '--interval', '0.3', '--status', '0.3', '--data-dir', dir]);
    await until('both devices online', () => /online 2 \|/.test(run.err()) || undefined);
    expect(run.err()).toContain('2 of 2 devices ready after');
    run.child.kill('SIGINT');
    expect((await run.done).code).toBe(0);
    expect(run.err()).toContain('SIGINT: stopping');
    expect(run.out()).toMatch(/uptide-sim: 2 devices × \(1 Primary \+ 1 Secondaries\).*stopped by signal/);
    expect(run.out()).toMatch(/devices +2 ready .*2 checked in/);
  });
});
