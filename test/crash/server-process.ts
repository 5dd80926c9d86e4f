/**
 * A real `uptide-server` process (packages/server/dist, built by `npx tsc -b`)
 * that a test can SIGKILL at a moment it chooses and start again on the same
 * data: SQLite in the data dir, or a PostgreSQL schema.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PG_URL } from '../../packages/server/src/testing/harness.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SERVER_BIN = join(REPO, 'packages/server/dist/bin/uptide-server.js');
export const PASSPHRASE = 'crash test passphrase';

export interface ProcessOptions {
  readonly dataDir: string;
  /** PostgreSQL schema; SQLite (in the data dir) when absent. */
  readonly schema?: string;
  /** No UPTIDE_KEY_PASSPHRASE: the server generates one into the data dir on its first start. */
  readonly generatedPassphrase?: boolean;
}

export class ServerProcess {
  private exited: Promise<void>;
  private constructor(
    private readonly child: ChildProcess,
    readonly adminUrl: string,
    readonly gatewayUrl: string,
    readonly token: string,
    readonly output: { text: string },
  ) {
    this.exited = new Promise((ok) => child.once('exit', () => ok()));
  }

  /** Starts a process and SIGKILLs it after `ms`, whatever it was doing (first-start work: keys, CAs, the admin token). */
  static async startAndKillAfter(options: ProcessOptions, ms: number): Promise<void> {
    const child = ServerProcess.spawn(options).child;
    const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
    await new Promise((r) => setTimeout(r, ms));
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  }

  private static spawn(options: ProcessOptions): { child: ChildProcess; output: { text: string } } {
    if (!existsSync(SERVER_BIN)) throw new Error(`${SERVER_BIN} is missing: build first (npx tsc -b)`);
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('UPTIDE_')) delete env[k];
    if (!options.generatedPassphrase) env['UPTIDE_KEY_PASSPHRASE'] = PASSPHRASE;
    if (options.schema) {
      env['UPTIDE_DATABASE_URL'] = PG_URL;
      env['UPTIDE_DATABASE_SCHEMA'] = options.schema;
    }
    const child = spawn(
      process.execPath,
      [SERVER_BIN, '--data-dir', options.dataDir, '--host', '127.0.0.1', '--http-port', '0', '--device-port', '0', '--log-level', 'warn', '--no-jobs'],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const output = { text: '' };
    child.stdout?.on('data', (c: Buffer) => (output.text += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output.text += c.toString()));
    return { child, output };
  }

  static async start(options: ProcessOptions): Promise<ServerProcess> {
    const { child, output } = ServerProcess.spawn(options);
    const started = Date.now();
    for (;;) {
      const admin = /admin API\s+(http:\/\/[^/\s]+)/.exec(output.text)?.[1];
      const gateway = /device gateway\s+(https?:\/\/[^/\s]+)/.exec(output.text)?.[1];
      if (admin && gateway) {
        const token = readFileSync(join(options.dataDir, 'admin-token'), 'utf8').trim();
        return new ServerProcess(child, admin, gateway, token, output);
      }
      if (child.exitCode !== null) throw new Error(`uptide-server exited with ${child.exitCode}:\n${output.text}`);
      if (Date.now() - started > 30_000) {
        child.kill('SIGKILL');
        throw new Error(`uptide-server did not start in 30 s:\n${output.text}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** SIGKILL: no shutdown handler runs, open transactions and half-written files stay as they are. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}
