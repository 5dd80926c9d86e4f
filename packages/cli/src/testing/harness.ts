/**
 * Test support (not part of the build): a real Uptide server in this process
 * on 127.0.0.1 (SQLite in a temp dir), and the CLI run in-process against it
 * with its own environment, working directory and captured output.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, startServer, type RunningServer } from '@uptide/server';
import { run } from '../cli.js';
import type { CliIo } from '../io.js';

export interface TestServer {
  readonly server: RunningServer;
  readonly adminUrl: string;
  readonly gatewayUrl: string;
  readonly token: string;
  close(): Promise<void>;
}

export async function startTestServer(): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'uptide-cli-server-'));
  const base = loadConfig({
    env: {},
    flags: { dataDir, host: '127.0.0.1', httpPort: 0, devicePort: 0, logLevel: 'silent', keyPassphrase: 'server passphrase', jobs: false },
  });
  const server = await startServer({ ...base, scryptN: 1024 });
  return {
    server,
    adminUrl: server.adminUrl,
    gatewayUrl: server.gatewayUrl,
    token: server.firstToken as string,
    async close() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface CliResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export interface CliRunner {
  (args: readonly string[], env?: Record<string, string | undefined>): Promise<CliResult>;
  readonly cwd: string;
}

export interface CliOptions {
  /** Pretend stderr is a terminal (progress bars are drawn). */
  readonly tty?: boolean;
}

/**
 * A CLI bound to a server and a working directory. Key files use a small
 * scrypt cost (UPTIDE_KEY_SCRYPT_N) so the suite stays fast.
 */
export function cliFor(
  ts: { adminUrl: string; token: string } | undefined,
  cwd: string,
  baseEnv: Record<string, string | undefined> = {},
  options: CliOptions = {},
): CliRunner {
  const runner = async (args: readonly string[], env: Record<string, string | undefined> = {}): Promise<CliResult> => {
    let out = '';
    let err = '';
    const io: CliIo = {
      env: {
        ...(ts ? { UPTIDE_SERVER: ts.adminUrl, UPTIDE_TOKEN: ts.token } : {}),
        UPTIDE_KEY_PASSPHRASE: 'correct horse battery staple',
        UPTIDE_KEY_SCRYPT_N: '1024',
        ...baseEnv,
        ...env,
      },
      cwd,
      out: (t) => {
        out += t;
      },
      err: (t) => {
        err += t;
      },
      stderrIsTTY: options.tty ?? false,
      canPrompt: false,
      promptSecret: () => Promise.reject(new Error('no terminal in tests')),
      now: () => new Date(),
    };
    const code = await run(args, io);
    return { code, out, err };
  };
  return Object.assign(runner, { cwd });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Runs a command that must succeed; a failure shows what the CLI printed. */
export async function ok(cli: CliRunner, args: readonly string[], env?: Record<string, string | undefined>): Promise<CliResult> {
  const r = await cli(args, env);
  if (r.code !== 0) throw new Error(`uptide ${args.join(' ')} exited ${r.code}:\n${r.err}${r.out}`);
  return r;
}
