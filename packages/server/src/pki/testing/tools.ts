/** Test helpers for the PKI tests: temp dirs and running the real `openssl` / `curl` commands. */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  readonly path: string;
  write(name: string, data: string | Uint8Array): string;
  remove(): void;
}

export function tempDir(prefix = 'uptide-pki-'): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    write(name, data) {
      const file = join(path, name);
      writeFileSync(file, data, { mode: 0o600 });
      return file;
    },
    remove() {
      rmSync(path, { recursive: true, force: true });
    },
  };
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command with a timeout; never throws on a non-zero exit (the test looks at `code`). */
export function run(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, [...args], { timeout: opts.timeoutMs ?? 20_000, maxBuffer: 4 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** `openssl <args>`, failing the test with stderr when it exits non-zero. */
export async function openssl(...args: string[]): Promise<string> {
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}
