/**
 * The `uptide-sim` command: options, signals, the live summary on stderr and
 * the final summary on stdout (text or JSON).
 */
import { CLIENT_VERSION } from '../primary/device-data.js';
import { SimError } from './admin.js';
import { runSimulator } from './fleet.js';
import { parseSimArgs, SimUsageError, USAGE, type SimOptions } from './options.js';
import { summaryText } from './stats.js';

export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Whether stderr is a terminal (the live line then rewrites itself). */
  readonly errIsTTY: boolean;
  /** Stops the run, as SIGINT does (tests). Default: SIGINT and SIGTERM. */
  readonly signal?: AbortSignal;
}

const processIo = (): CliIo => ({
  env: process.env,
  cwd: process.cwd(),
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  errIsTTY: process.stderr.isTTY === true,
});

export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  let options: SimOptions;
  try {
    const parsed = parseSimArgs(argv, io);
    if ('help' in parsed) {
      io.out(USAGE);
      return 0;
    }
    if ('version' in parsed) {
      io.out(`uptide-sim ${CLIENT_VERSION}\n`);
      return 0;
    }
    options = parsed.options;
  } catch (err) {
    if (err instanceof SimUsageError) {
      io.err(`uptide-sim: ${err.message}\nTry 'uptide-sim --help'.\n`);
      return 2;
    }
    throw err;
  }

  const stop = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      io.err(`\nuptide-sim: second ${sig}: exiting now\n`);
      process.exit(130);
    }
    io.err(`\nuptide-sim: ${sig}: stopping (cycles in progress finish first; again to exit at once)\n`);
    stop.abort();
  };
  const external = io.signal;
  const onExternal = (): void => stop.abort();
  if (external) external.addEventListener('abort', onExternal, { once: true });
  else {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  // On a terminal the live line rewrites itself; in a log each status is its own line.
  let live = false;
  const status = (line: string): void => {
    if (io.errIsTTY) {
      io.err(`\r\x1b[2K${line}`);
      live = true;
    } else io.err(line + '\n');
  };
  const endLive = (): void => {
    if (live) io.err('\n');
    live = false;
  };
  try {
    io.err(
      `uptide-sim: ${options.devices} devices × (1 + ${options.secondaries}) ECUs against ${options.server}, every ${options.intervalSeconds} s` +
        `${options.durationSeconds !== undefined ? ` for ${options.durationSeconds} s` : ' until SIGINT'}; state in ${options.dataDir}\n`,
    );
    const summary = await runSimulator(options, {
      status,
      deviceLog: (line) => {
        endLive();
        io.err(line + '\n');
      },
      signal: stop.signal,
      onWarm: ({ seconds }) => {
        endLive();
        io.err(`uptide-sim: every device has checked in, ${seconds.toFixed(1)} s after the first check-ins\n`);
      },
      onReady: ({ ready, seconds }) => {
        endLive();
        io.err(`uptide-sim: ${ready} of ${options.devices} devices ready after ${seconds.toFixed(1)} s\n`);
      },
    });
    endLive();
    io.out(options.json ? JSON.stringify(summary, null, 2) + '\n' : summaryText(summary));
    return summary.seen > 0 ? 0 : 1;
  } catch (err) {
    endLive();
    if (err instanceof SimError) {
      io.err(`uptide-sim: ${err.message} [${err.code}]\n`);
      return 1;
    }
    io.err(`uptide-sim: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  } finally {
    if (external) external.removeEventListener('abort', onExternal);
    else {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}
