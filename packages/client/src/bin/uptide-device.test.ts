/**
 * The built `uptide-device` as a real process (run `npx tsc -b` first; `npm test` does).
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JsonObject } from '@uptide/core';
import { RepoMock } from '../testing/repo-mock.js';
import { writeDeviceSetup } from '../testing/device-setup.js';

const BIN = resolve(fileURLToPath(import.meta.url), '../../../dist/bin/uptide-device.js');

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void>)();
});

interface Run {
  readonly child: ChildProcess;
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

function run(args: string[]): Run {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first with npx tsc -b`);
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((r) =>
    child.on('close', (code, signal) => r({ code, signal, stdout, stderr })),
  );
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, done };
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('uptide-device', () => {
  it('teaches with --help and exits 0', async () => {
    const r = await run(['--help']).done;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('uptide-device --config FILE [--once] [--log-level LEVEL]');
    expect(r.stdout).toContain('[installer]');
    expect(r.stdout).toContain('Exit status');
  });

  it('exits 2 on bad usage and on a bad configuration, naming the problem', async () => {
    const none = await run([]).done;
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--config FILE is required');
    const unknown = await run(['--config', 'x.toml', '--frobnicate']).done;
    expect(unknown.code).toBe(2);
    const level = await run(['--config', 'x.toml', '--log-level', 'loud']).done;
    expect(level.code).toBe(2);
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const setup = writeDeviceSetup(mock);
    writeFileSync(setup.configPath, readFileSync(setup.configPath, 'utf8').replace('[primary]', '[primary]\nhardware_idd = "x"'));
    const bad = await run(['--config', setup.configPath, '--once']).done;
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown key [primary] hardware_idd');
    expect(bad.stderr).toContain('did you mean hardware_id?');
  });

  it('runs one cycle with --once: installs, exits 0, logs readable lines and no key material', async () => {
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const setup = writeDeviceSetup(mock, { ecuSerial: 'primary-1' });
    const first = await run(['--config', setup.configPath, '--once']).done;
    expect(first.code).toBe(0);
    await mock.addImage('fw.bin', Buffer.from('from the bin'), { hardwareIds: [setup.hardwareId] });
    await mock.assign(setup.deviceId, 'fw.bin', { ecuSerial: 'primary-1' });
    const r = await run(['--config', setup.configPath, '--once', '--log-level', 'debug']).done;
    expect(r.code).toBe(0);
    expect(readFileSync(setup.installedPath, 'utf8')).toBe('from the bin');
    expect(r.stderr).toMatch(/^\S+Z INFO {2}uptide-device started /m);
    expect(r.stderr).toContain('installed target=fw.bin');
    expect(r.stderr).not.toContain('PRIVATE KEY');
    // The failure exit status: an attack.
    await mock.addImage('fw2.bin', Buffer.from('tampered'), { hardwareIds: [setup.hardwareId] });
    await mock.assign(setup.deviceId, 'fw2.bin', { ecuSerial: 'primary-1' });
    mock.tamper({ path: '/repo/targets/fw2.bin', body: 'TAMPERED' });
    const bad = await run(['--config', setup.configPath, '--once']).done;
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('code=ARBITRARY_SOFTWARE');
  });

  it('stops the loop on SIGTERM after the cycle in progress', async () => {
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const setup = writeDeviceSetup(mock);
    const r = run(['--config', setup.configPath]);
    await waitFor(() => mock.manifestsOf(setup.deviceId).length >= 1, 15_000);
    r.child.kill('SIGTERM');
    const res = await r.done;
    expect(res.code).toBe(0);
    expect(res.stderr).toContain('stopping after the current step');
  });

  it('detects an install cut by a power loss (kill -9) and reports it at the next start', async () => {
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const base = writeDeviceSetup(mock);
    const started = join(base.dir, 'installer-started');
    const slow = join(base.dir, 'slow');
    const installed = join(base.dir, 'installed.bin');
    // Copies the image, unless the "slow" flag exists: then it hangs, as a long flash write would.
    const script = [
      `const fs = require('fs');`,
      `fs.writeFileSync(${JSON.stringify(started)}, String(process.pid));`,
      `if (fs.existsSync(${JSON.stringify(slow)})) setTimeout(() => {}, 60000);`,
      `else fs.copyFileSync(process.argv[1], ${JSON.stringify(installed)});`,
    ].join(' ');
    const setup = writeDeviceSetup(mock, { deviceId: base.deviceId, installer: { command: [process.execPath, '-e', script], timeoutSeconds: 120 } });
    cleanups.push(() => {
      if (existsSync(started)) {
        try {
          process.kill(Number(readFileSync(started, 'utf8')), 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    });
    expect((await run(['--config', setup.configPath, '--once']).done).code).toBe(0);
    await mock.addImage('fw-7.bin', Buffer.from('seven'), { hardwareIds: [setup.hardwareId] });
    const cid = await mock.assign(setup.deviceId, 'fw-7.bin');

    writeFileSync(slow, '');
    const victim = run(['--config', setup.configPath, '--once']);
    await waitFor(() => existsSync(started), 20_000);
    victim.child.kill('SIGKILL');
    await victim.done;
    process.kill(Number(readFileSync(started, 'utf8')), 'SIGKILL');
    expect(existsSync(join(setup.storage, 'install-pending.json'))).toBe(true);
    expect(existsSync(installed)).toBe(false);

    rmSync(slow);
    rmSync(started);
    const after = await run(['--config', setup.configPath, '--once']).done;
    expect(after.stderr).toContain('an installation was interrupted');
    expect(after.code).toBe(0);
    expect(existsSync(join(setup.storage, 'install-pending.json'))).toBe(false);
    // The interruption went to the Director as a failed installation…
    const reports = mock
      .manifestsOf(setup.deviceId)
      .map((m) => m.manifest?.installationReport)
      .filter((r) => r !== undefined);
    expect(reports[0]).toMatchObject({ correlationId: cid, result: { success: false, code: `${setup.hardwareId}:INSTALL_FAILED` } });
    expect(reports[0]?.items[0]?.result.description).toMatch(/^INSTALL_INTERRUPTED: the installation of fw-7\.bin/);
    const completed = mock
      .eventsOf(setup.deviceId)
      .filter((e) => (e['eventType'] as JsonObject)['id'] === 'EcuInstallationCompleted')
      .map((e) => (e['event'] as JsonObject)['success']);
    expect(completed[0]).toBe(false);
    // …and the same run then installed the update for real.
    expect(readFileSync(installed, 'utf8')).toBe('seven');
    expect(reports.at(-1)).toMatchObject({ correlationId: cid, result: { success: true, code: 'OK' } });
  }, 60_000);
});
