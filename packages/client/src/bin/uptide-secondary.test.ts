/**
 * The built `uptide-secondary` as a real process (run `npx tsc -b` first; `npm test` does).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RepoMock } from '../testing/repo-mock.js';
import { SecondaryClient } from '../secondary/protocol/index.js';
import { writeSecondarySetup } from '../secondary/testing/setup.js';

const BIN = resolve(fileURLToPath(import.meta.url), '../../../dist/bin/uptide-secondary.js');

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void>)();
});

interface Run {
  readonly child: ChildProcess;
  readonly stderr: () => string;
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
  return { child, stderr: () => stderr, done };
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('uptide-secondary', () => {
  it('teaches with --help and --version, and exits 2 on bad usage or a bad configuration', async () => {
    const help = await run(['--help']).done;
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('uptide-secondary --config FILE [--log-level LEVEL]');
    expect(help.stdout).toContain('verification = "full"');
    expect((await run(['--version']).done).stdout).toMatch(/^uptide-secondary \d/);
    const none = await run([]).done;
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--config FILE is required');
    expect((await run(['--config', 'x', '--bogus']).done).code).toBe(2);
    expect((await run(['--config', '/nonexistent/uptide-secondary.toml']).done).code).toBe(2);
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const setup = writeSecondarySetup(
      { director: mock.directorRoot.bytes(1) as Uint8Array, image: mock.image.root.bytes(1) as Uint8Array },
      { verification: 'full' },
    );
    writeFileSync(setup.configPath, '[secondary]\nstorage = "s"\nhardwareid = "b"\n');
    const bad = await run(['--config', setup.configPath]).done;
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('did you mean hardware_id?');
  });

  it('serves until SIGTERM and exits 0; exits 1 when it cannot start (a pinned root that is not one)', async () => {
    const mock = await RepoMock.start();
    cleanups.push(() => mock.close());
    const setup = writeSecondarySetup(
      { director: mock.directorRoot.bytes(1) as Uint8Array, image: mock.image.root.bytes(1) as Uint8Array },
      { verification: 'partial' },
    );
    const r = run(['--config', setup.configPath]);
    await waitFor(() => /listening address=127\.0\.0\.1:\d+/.test(r.stderr()), 20_000);
    const port = Number(/listening address=127\.0\.0\.1:(\d+)/.exec(r.stderr())?.[1]);
    const info = await new SecondaryClient({ host: '127.0.0.1', port }).request({ type: 'getInfoReq' }, { expect: 'getInfoResp' });
    expect(info.hwId).toBe('partial-board');
    r.child.kill('SIGTERM');
    const done = await r.done;
    expect(done.code).toBe(0);
    expect(existsSync(join(setup.storage, 'lock'))).toBe(false);

    const broken = writeSecondarySetup({ director: new TextEncoder().encode('{"signed": {}}'), image: new Uint8Array() }, { verification: 'partial' });
    const b = await run(['--config', broken.configPath]).done;
    expect(b.code).toBe(1);
    expect(b.stderr).toContain('not a valid self-signed root');
  });
});
