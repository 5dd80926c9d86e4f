/**
 * What a command may touch of the outside world, passed in rather than taken
 * from `process`, so that the whole CLI runs in-process in tests with its own
 * environment, working directory and captured output.
 */
import { UptaneError } from '@uptide/core';

export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** Data: what scripts read (tables, JSON, ids). */
  out(text: string): void;
  /** Messages, warnings, progress. */
  err(text: string): void;
  /** Whether stderr is a terminal (progress bars are drawn only then). */
  readonly stderrIsTTY: boolean;
  /** Whether a passphrase can be asked for interactively. */
  readonly canPrompt: boolean;
  /** Reads one line from the terminal without echoing it. */
  promptSecret(question: string): Promise<string>;
  now(): Date;
}

/** Exit codes scripts can rely on. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/**
 * A failure the user can act on: `message` says what went wrong, `hint` what
 * to do next. `code` is machine-readable (shown with --json errors).
 */
export class CliError extends Error {
  readonly hint: string | undefined;
  readonly code: string;
  readonly exitCode: number;
  constructor(message: string, options: { hint?: string | undefined; code?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.hint = options.hint;
    this.code = options.code ?? 'failed';
    this.exitCode = options.exitCode ?? EXIT_FAILURE;
  }
}

/** Wrong arguments: exit code 2. */
export class UsageError extends CliError {
  constructor(message: string, hint?: string) {
    super(message, { hint, code: 'usage', exitCode: EXIT_USAGE });
    this.name = 'UsageError';
  }
}

/** Turns anything thrown into a CliError (core errors keep their code). */
export function asCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof UptaneError) return new CliError(err.message, { code: err.code.toLowerCase(), cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new CliError(message, { code: 'internal', cause: err });
}

/** Reads a passphrase from a terminal with echo off. */
export function promptSecretOnTty(question: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    process.stderr.write(question);
    const wasRaw = stdin.isRaw;
    stdin.setRawMode(true);
    stdin.resume();
    let value = '';
    const done = (err?: Error) => {
      stdin.setRawMode(wasRaw);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new CliError('cancelled', { code: 'cancelled' }));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else if (ch >= ' ') value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

export function processIo(): CliIo {
  return {
    env: process.env,
    cwd: process.cwd(),
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    stderrIsTTY: process.stderr.isTTY === true,
    canPrompt: process.stdin.isTTY === true && process.stderr.isTTY === true,
    promptSecret: promptSecretOnTty,
    now: () => new Date(),
  };
}

// --- output helpers -------------------------------------------------------------------

/** A plain-text table: columns padded to their widest cell. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

/** Human size: 1.5 MiB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** Key ids are long; operators recognise the first 12 hex digits. */
export function shortId(id: string): string {
  return id.slice(0, 12);
}
