/**
 * Command-line options of `uptide-sim`, parsed strictly: a bad value is a
 * usage error (exit 2) that names the option and says what it takes, before
 * anything touches the server.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { LOG_LEVELS, isLogLevel, type LogLevel } from '../primary/log.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:8080';

export type SimInstaller = 'file' | 'none';
/** How each Secondary verifies: every one `full`, every one `partial`, or `mixed` (alternating). */
export type SimVerification = 'full' | 'partial' | 'mixed';

export interface SimOptions {
  readonly devices: number;
  readonly secondaries: number;
  /** Seconds between a device's check-ins (each jittered by ±jitter). */
  readonly intervalSeconds: number;
  /** Relative jitter of the interval, 0…0.5. */
  readonly jitter: number;
  /** Admin API base URL. */
  readonly server: string;
  readonly token: string;
  /** Stop after this many seconds; undefined: until SIGINT. */
  readonly durationSeconds: number | undefined;
  /** Device ids are `<prefix>-0001`…; Secondaries `<device>-s1`…. */
  readonly prefix: string;
  readonly dataDir: string;
  readonly json: boolean;
  /** Shared-credential provisioning (credentials.zip) instead of one device certificate each. */
  readonly shared: boolean;
  readonly installer: SimInstaller;
  readonly hardwareId: string;
  readonly secondaryHardwareId: string;
  /**
   * false: each Secondary is a real uptide-secondary (src/secondary/) serving the
   * IP-Secondary protocol on 127.0.0.1; true: an in-process ECU behind the Ecu
   * interface (sim/secondary.ts: partial verification, no protocol, much lighter).
   */
  readonly inProcessSecondaries: boolean;
  readonly verification: SimVerification;
  /** Static group every device joins (created when missing); undefined: none. */
  readonly group: string | undefined;
  /** Most update cycles running at once. */
  readonly concurrency: number;
  /** Seconds between live summary lines on stderr; 0: none. */
  readonly statusSeconds: number;
  /** Per-device Primary logs on stderr, at this level; undefined: none. */
  readonly logLevel: LogLevel | undefined;
}

/** A bad command line: exit status 2. */
export class SimUsageError extends Error {
  readonly code = 'USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'SimUsageError';
  }
}

export const USAGE = `uptide-sim: a fleet of simulated devices against an Uptide server.

Each simulated device is a real Primary (the uptide-device code: real keys, real
HTTP and TLS, its own state directory) with K real Secondaries (the
uptide-secondary code, full or partial verification, each with its own key and
state, over the IP-Secondary protocol on 127.0.0.1). Devices are provisioned
through the admin API, register, check in every S seconds (jittered), install
whatever the Director assigns, and report. A live summary goes to stderr; a
final summary to stdout when the run ends (--duration, or SIGINT).

Usage:
  uptide-sim --devices N [--secondaries K] [--interval S] [options]
  uptide-sim --help | --version

Fleet:
  -n, --devices N            simulated devices (1-100000; required)
  -k, --secondaries K        Secondaries per device (0-16, default 0)
  -i, --interval S           seconds between a device's check-ins (default 10)
      --jitter F             relative jitter of the interval, 0-0.5 (default 0.1)
      --duration S           stop after S seconds (default: run until SIGINT)
      --prefix NAME          device ids are NAME-0001… (default "sim")
      --group NAME           put every device in this static group, created if
                             missing (default: the prefix); --no-group: none
      --hardware-id HW       the Primaries' hardware id (default "sim-primary")
      --secondary-hardware-id HW
                             the Secondaries' hardware id (default "sim-secondary")
      --verification V       the Secondaries' verification: full, partial, or mixed
                             (alternating; default)
      --in-process-secondaries
                             Secondaries as in-process ECUs (partial verification,
                             no IP-Secondary protocol, far lighter) instead of real
                             uptide-secondary servers on 127.0.0.1
      --installer TYPE       file: write each image into the device's directory;
                             none: verify only (default)
      --shared               provision with shared credentials (credentials.zip,
                             POST /devices by each device) instead of a device
                             certificate each

Server:
  -s, --server URL           admin API (default $UPTIDE_SERVER or ${DEFAULT_SERVER})
  -t, --token T              admin token (default $UPTIDE_TOKEN, or ./data/admin-token,
                             which the server writes on its first start)

Run:
  -d, --data-dir DIR         devices' state (default ./sim-data). A second run with the
                             same directory and prefix reuses the devices.
  -c, --concurrency C        most check-ins in progress at once (default 64)
      --status S             seconds between live summary lines (default 2; 0: none)
      --log-level LEVEL      the devices' own logs on stderr (${LOG_LEVELS.join(', ')}; default: none)
      --json                 the final summary as JSON on stdout
  -h, --help, -V, --version

Exit status: 0 the run ended (by --duration or SIGINT) and devices checked in;
1 setup failed or no device ever checked in; 2 bad arguments.
A second SIGINT exits at once. More: docs/simulator.md.
`;

function int(name: string, raw: string | undefined, dflt: number | undefined, min: number, max: number): number {
  if (raw === undefined) {
    if (dflt === undefined) throw new SimUsageError(`--${name} is required`);
    return dflt;
  }
  if (!/^\d+$/.test(raw)) throw new SimUsageError(`--${name} must be a whole number, not ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min || n > max) throw new SimUsageError(`--${name} must be between ${min} and ${max}, not ${n}`);
  return n;
}

function seconds(name: string, raw: string | undefined, dflt: number | undefined, min: number): number | undefined {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) throw new SimUsageError(`--${name} must be a number of seconds, not ${JSON.stringify(raw)}`);
  if (n < min) throw new SimUsageError(`--${name} must be at least ${min} seconds, not ${n}`);
  return n;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/;

export interface Environment {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
}

/** Parses argv (without the node and script names). `--help` and `--version` give `{ help }` / `{ version }`. */
export function parseSimArgs(argv: readonly string[], environment: Environment): { help: true } | { version: true } | { options: SimOptions } {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        devices: { type: 'string', short: 'n' },
        secondaries: { type: 'string', short: 'k' },
        interval: { type: 'string', short: 'i' },
        jitter: { type: 'string' },
        duration: { type: 'string' },
        prefix: { type: 'string' },
        group: { type: 'string' },
        'no-group': { type: 'boolean' },
        'hardware-id': { type: 'string' },
        'secondary-hardware-id': { type: 'string' },
        verification: { type: 'string' },
        'in-process-secondaries': { type: 'boolean' },
        installer: { type: 'string' },
        shared: { type: 'boolean' },
        server: { type: 'string', short: 's' },
        token: { type: 'string', short: 't' },
        'data-dir': { type: 'string', short: 'd' },
        concurrency: { type: 'string', short: 'c' },
        status: { type: 'string' },
        'log-level': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new SimUsageError((err as Error).message);
  }
  if (values['help']) return { help: true };
  if (values['version']) return { version: true };
  const str = (k: string): string | undefined => values[k] as string | undefined;

  const devices = int('devices', str('devices'), undefined, 1, 100_000);
  const secondaries = int('secondaries', str('secondaries'), 0, 0, 16);
  const intervalSeconds = seconds('interval', str('interval'), 10, 0.05) as number;
  const jitterRaw = str('jitter');
  const jitter = jitterRaw === undefined ? 0.1 : Number(jitterRaw);
  if (!Number.isFinite(jitter) || jitter < 0 || jitter > 0.5 || jitterRaw?.trim() === '')
    throw new SimUsageError(`--jitter must be a number from 0 to 0.5, not ${JSON.stringify(jitterRaw)}`);
  const durationSeconds = seconds('duration', str('duration'), undefined, 0.1);
  const prefix = str('prefix') ?? 'sim';
  if (!NAME.test(prefix))
    throw new SimUsageError(`--prefix must be 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit (it starts device ids)`);
  for (const k of ['hardware-id', 'secondary-hardware-id']) {
    const v = str(k);
    if (v !== undefined && (v.length === 0 || v.length > 200)) throw new SimUsageError(`--${k} must be 1-200 characters`);
  }
  if (values['no-group'] && str('group') !== undefined) throw new SimUsageError('give --group NAME or --no-group, not both');
  const group = values['no-group'] ? undefined : (str('group') ?? prefix);
  if (group !== undefined && (group.length > 200 || !/^[\x20-\x7e]+$/.test(group))) throw new SimUsageError('--group must be 1-200 printable ASCII characters');
  const installer = str('installer') ?? 'none';
  if (installer !== 'file' && installer !== 'none') throw new SimUsageError(`--installer must be file or none, not ${JSON.stringify(installer)}`);
  const inProcessSecondaries = values['in-process-secondaries'] === true;
  const verificationRaw = str('verification');
  if (verificationRaw !== undefined && !['full', 'partial', 'mixed'].includes(verificationRaw))
    throw new SimUsageError(`--verification must be full, partial or mixed, not ${JSON.stringify(verificationRaw)}`);
  if (inProcessSecondaries && verificationRaw !== undefined && verificationRaw !== 'partial')
    throw new SimUsageError('in-process Secondaries (--in-process-secondaries) do partial verification only: drop --verification or give partial');
  const verification = (verificationRaw ?? (inProcessSecondaries ? 'partial' : 'mixed')) as SimVerification;
  const concurrency = int('concurrency', str('concurrency'), 64, 1, 10_000);
  const statusSeconds = seconds('status', str('status'), 2, 0) as number;
  const level = str('log-level');
  if (level !== undefined && !isLogLevel(level)) throw new SimUsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);

  const server = (str('server') ?? environment.env['UPTIDE_SERVER'] ?? DEFAULT_SERVER).replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new SimUsageError(`--server must be the admin API URL, e.g. ${DEFAULT_SERVER}; ${JSON.stringify(server)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SimUsageError(`--server must be an http:// or https:// URL, not ${url.protocol}`);

  return {
    options: {
      devices,
      secondaries,
      intervalSeconds,
      jitter,
      server,
      token: resolveToken(str('token'), environment),
      durationSeconds,
      prefix,
      dataDir: resolve(environment.cwd, str('data-dir') ?? 'sim-data'),
      json: values['json'] === true,
      shared: values['shared'] === true,
      installer,
      hardwareId: str('hardware-id') ?? 'sim-primary',
      secondaryHardwareId: str('secondary-hardware-id') ?? 'sim-secondary',
      inProcessSecondaries,
      verification,
      group,
      concurrency,
      statusSeconds,
      logLevel: level as LogLevel | undefined,
    },
  };
}

/** --token, $UPTIDE_TOKEN, or ./data/admin-token (what `npm start` writes), as the admin CLI does. */
function resolveToken(flag: string | undefined, environment: Environment): string {
  const given = flag ?? environment.env['UPTIDE_TOKEN'];
  if (given !== undefined && given.trim() !== '') return given.trim();
  const file = resolve(environment.cwd, 'data', 'admin-token');
  try {
    const t = readFileSync(file, 'utf8').trim();
    if (t) return t;
  } catch {
    // Reported below with what to do.
  }
  throw new SimUsageError(`no admin token: give --token or set UPTIDE_TOKEN (the server writes its first token to <data dir>/admin-token; looked for ${file})`);
}
