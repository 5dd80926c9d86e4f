/**
 * The Primary's configuration file (`uptide-device.toml`), read strictly: an
 * unknown key (a typo) or a missing required one is an error that names the
 * key and says how to fix it, because a device that silently ignores
 * `alow_insecure_http` or runs without pinned roots is worse than one that
 * refuses to start. The schema is documented in docs/device-client.md.
 *
 * Relative paths resolve against the directory of the configuration file.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { DEFAULT_LIMITS } from '@uptide/core';
import { isLogLevel, type LogLevel } from '../primary/log.js';

export const ECU_KEY_TYPES = ['ed25519', 'rsa2048', 'rsa3072', 'rsa4096'] as const;
export type EcuKeyType = (typeof ECU_KEY_TYPES)[number];

export interface DeviceSection {
  /** Device (vehicle) identifier. Default: the client certificate's CN, or one generated at shared-credential provisioning. */
  readonly id: string | undefined;
  /** Directory for all persistent state. */
  readonly storage: string;
  readonly pollIntervalSeconds: number;
  readonly logLevel: LogLevel | undefined;
}

export interface ServerSection {
  /** Device gateway base URL (aktualizr `tls.server`), without a trailing slash. */
  readonly gateway: string | undefined;
  /** Director base URL; default `<gateway>/director`. */
  readonly director: string | undefined;
  /** Image repository base URL; default `<gateway>/repo`. */
  readonly repo: string | undefined;
  readonly allowInsecureHttp: boolean;
  /** Where delegated targets live under the Image repository URL: `delegations/` (OTA CE) or `` (plain TUF layout). */
  readonly delegationsPath: string;
}

export interface TlsSection {
  /** CA certificate(s) that sign the servers' certificates (PEM). */
  readonly ca: string | undefined;
  /** Device client certificate (PEM). */
  readonly cert: string | undefined;
  /** Device client private key (PEM). */
  readonly key: string | undefined;
}

export interface ProvisionSection {
  /** credentials.zip with `autoprov_credentials.p12` (and `autoprov.url`). */
  readonly credentials: string;
  readonly p12Password: string;
  /** TTL of the device certificate asked for, in days (aktualizr sends it as a string). */
  readonly expiryDays: number;
  /** Provisioning server base URL; default: the gateway. */
  readonly server: string | undefined;
}

export interface TrustSection {
  /** The Director's initial root metadata (pinned). */
  readonly directorRoot: string | undefined;
  /** The Image repository's initial root metadata (pinned). */
  readonly imageRoot: string | undefined;
  /** Trust whatever `1.root.json` the servers first serve, for the roots not pinned. */
  readonly trustOnFirstUse: boolean;
  /** Refuse empty Director targets that do not name this vehicle (Standard §5.2.3.1). OTA CE does not send a vehicle id. */
  readonly requireVehicleId: boolean;
}

export interface PrimarySection {
  /** Default: the key id of the ECU key (as aktualizr does). */
  readonly ecuSerial: string | undefined;
  readonly hardwareId: string;
  readonly keyType: EcuKeyType;
}

export interface LimitsSection {
  readonly rootBytes: number;
  readonly timestampBytes: number;
  readonly snapshotBytes: number;
  readonly directorTargetsBytes: number;
  readonly imageTargetsBytes: number;
  /** Largest image this device accepts, whatever the metadata says. */
  readonly maxImageBytes: number;
  /** Downloads slower than this on average over the window are aborted as slow retrieval (0 disables). */
  readonly minSpeedBytesPerSecond: number;
  readonly minSpeedWindowSeconds: number;
  readonly connectTimeoutSeconds: number;
  /** No byte received for this long aborts a request. */
  readonly idleTimeoutSeconds: number;
  /** Extra tries after a network error or a 5xx, 1 s apart (aktualizr: 2). */
  readonly retries: number;
}

export type InstallerSection =
  { readonly type: 'file'; readonly path: string } | { readonly type: 'command'; readonly command: readonly string[]; readonly timeoutSeconds: number };

export interface SecondarySection {
  /** `host:port` of an IP Secondary. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** What the Secondary verifies, hence what the Primary sends it: `full` (both repositories) or `partial` (Director only). */
  readonly verification: 'full' | 'partial';
}

/** How the Primary reaches its IP Secondaries (`[ip_secondaries]`; aktualizr's `secondaries_wait_port` and friends). */
export interface IpSecondariesSection {
  /** Listen here at start-up for Secondaries that could not be reached (aktualizr `secondaries_wait_port`); undefined: do not wait. */
  readonly waitPort: number | undefined;
  readonly waitHost: string;
  /** How long to wait for them at start-up (aktualizr `secondaries_wait_timeout`). */
  readonly waitTimeoutSeconds: number;
  /** One request (and a connection) to a Secondary. */
  readonly requestTimeoutSeconds: number;
  /** An installation on a Secondary (its installer may take long). */
  readonly installTimeoutSeconds: number;
  /** How long to keep trying to reach a Secondary before giving up on its update (aktualizr `secondary_preinstall_wait_sec`). */
  readonly preinstallWaitSeconds: number;
}

export interface DeviceConfig {
  /** Absolute path of the configuration file. */
  readonly file: string;
  readonly device: DeviceSection;
  readonly server: ServerSection;
  readonly tls: TlsSection | undefined;
  readonly provision: ProvisionSection | undefined;
  readonly trust: TrustSection;
  readonly primary: PrimarySection;
  readonly limits: LimitsSection;
  readonly installer: InstallerSection;
  readonly secondaries: readonly SecondarySection[];
  readonly ipSecondaries: IpSecondariesSection;
}

/** A configuration problem: `key` is the dotted key (`server.gateway`), `fix` says what to do. */
export class ConfigError extends Error {
  constructor(
    message: string,
    readonly key: string | undefined = undefined,
    readonly fix: string | undefined = undefined,
  ) {
    super(fix ? `${message}. Fix: ${fix}` : message);
    this.name = 'ConfigError';
  }
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Edit distance, to suggest the key that was probably meant. */
function distance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0] as number;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j] as number;
      d[j] = Math.min((d[j] as number) + 1, (d[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length] as number;
}

function suggest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dd = distance(key, k);
    if (dd < bestD) {
      bestD = dd;
      best = k;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** Reads one table, tracking which keys were consumed, so unknown ones can be reported. */
export class Section {
  private readonly known: string[] = [];
  constructor(
    readonly name: string,
    private readonly t: Table,
    private readonly baseDir: string,
  ) {}

  private keyName(key: string): string {
    return this.name ? `${this.name}.${key}` : key;
  }

  private where(key: string): string {
    return this.name.startsWith('secondaries[') ? `[[secondaries]] ${this.name.slice('secondaries'.length)} ${key}` : `[${this.name}] ${key}`;
  }

  private raw(key: string): unknown {
    this.known.push(key);
    return this.t[key];
  }

  has(key: string): boolean {
    return this.t[key] !== undefined;
  }

  missing(key: string, fix: string): ConfigError {
    // A misspelt key reads as a missing one: name the likely typo.
    const typo = Object.keys(this.t).find((k) => k !== key && suggest(k, [key]) === key);
    if (typo !== undefined) return new ConfigError(`${this.where(key)} is missing; ${typo} is not a known key`, this.keyName(key), `did you mean ${key}?`);
    return new ConfigError(`${this.where(key)} is missing`, this.keyName(key), fix);
  }

  invalid(key: string, why: string, fix: string): ConfigError {
    return new ConfigError(`${this.where(key)} ${why}`, this.keyName(key), fix);
  }

  string(key: string, fix: string): string;
  string(key: string, fix: string, optional: true): string | undefined;
  string(key: string, fix: string, optional = false): string | undefined {
    const v = this.raw(key);
    if (v === undefined) {
      if (optional) return undefined;
      throw this.missing(key, fix);
    }
    if (typeof v !== 'string') throw this.invalid(key, `must be a string, not ${describe(v)}`, fix);
    if (v.length === 0) throw this.invalid(key, 'must not be empty', fix);
    return v;
  }

  /** A string that may be empty, with a default. */
  text(key: string, dflt: string): string {
    const v = this.raw(key);
    if (v === undefined) return dflt;
    if (typeof v !== 'string') throw this.invalid(key, `must be a string, not ${describe(v)}`, `write ${key} = "…"`);
    return v;
  }

  /** A sub-table, marked as known. */
  table(name: string, required: false): Section | undefined;
  table(name: string, required: true, fix: string): Section;
  table(name: string, required: boolean, fix?: string): Section | undefined {
    const v = this.raw(name);
    if (v === undefined) {
      if (required) throw new ConfigError(`the [${name}] table is missing`, name, fix);
      return undefined;
    }
    if (!isTable(v)) throw new ConfigError(`${name} must be a table ([${name}])`, name, `write it as a [${name}] table`);
    return new Section(name, v, this.baseDir);
  }

  /** An array of tables (`[[name]]`), marked as known. */
  tables(name: string): Section[] {
    const v = this.raw(name);
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new ConfigError(`${name} must be an array of tables`, name, `write each entry as a [[${name}]] table`);
    return v.map((t, i) => {
      if (!isTable(t)) throw new ConfigError(`${name}[${i}] is not a table`, `${name}[${i}]`, `write each entry as a [[${name}]] table`);
      return new Section(`${name}[${i}]`, t, this.baseDir);
    });
  }

  path(key: string, fix: string): string;
  path(key: string, fix: string, optional: true): string | undefined;
  path(key: string, fix: string, optional = false): string | undefined {
    const v = optional ? this.string(key, fix, true) : this.string(key, fix);
    return v === undefined ? undefined : resolve(this.baseDir, v);
  }

  boolean(key: string, dflt: boolean): boolean {
    const v = this.raw(key);
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw this.invalid(key, `must be true or false, not ${describe(v)}`, `write ${key} = true or ${key} = false (no quotes)`);
    return v;
  }

  number(key: string, dflt: number, opts: { min?: number; integer?: boolean; unit?: string } = {}): number {
    const v = this.raw(key);
    if (v === undefined) return dflt;
    const min = opts.min ?? 0;
    const fix = `write a ${opts.integer ? 'whole number' : 'number'} of at least ${min}${opts.unit ? ` (${opts.unit})` : ''}, e.g. ${key} = ${dflt}`;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.invalid(key, `must be a number, not ${describe(v)}`, fix);
    if (opts.integer && !Number.isSafeInteger(v)) throw this.invalid(key, 'must be a whole number', fix);
    if (v < min) throw this.invalid(key, `must be at least ${min}`, fix);
    return v;
  }

  oneOf<T extends string>(key: string, values: readonly T[], dflt: T | undefined, fix?: string): T {
    const v = this.raw(key);
    const f = fix ?? `use one of ${values.map((x) => JSON.stringify(x)).join(', ')}`;
    if (v === undefined) {
      if (dflt !== undefined) return dflt;
      throw this.missing(key, f);
    }
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw this.invalid(key, `is ${JSON.stringify(v)}`, f);
    return v as T;
  }

  stringArray(key: string, fix: string): string[] {
    const v = this.raw(key);
    if (v === undefined) throw this.missing(key, fix);
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string' && x.length > 0)) {
      throw this.invalid(key, 'must be a non-empty array of non-empty strings', fix);
    }
    return v as string[];
  }

  /** Rejects keys that nothing read: they are typos or settings of another version. */
  finish(): void {
    for (const key of Object.keys(this.t)) {
      if (this.known.includes(key)) continue;
      const s = suggest(key, this.known);
      const isTableValue = isTable(this.t[key]);
      throw new ConfigError(
        `unknown ${isTableValue ? 'table' : 'key'} ${this.name ? this.where(key) : `[${key}]`}`,
        this.keyName(key),
        s ? `did you mean ${s}?` : `remove it; the known ${this.name ? `keys of [${this.name}]` : 'tables'} are ${this.known.join(', ')}`,
      );
    }
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a date';
  if (isTable(v)) return 'a table';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Base URL check: http only when allowed, no query, no credentials; returned without trailing slashes. */
function baseUrl(s: Section, key: string, value: string | undefined, allowHttp: boolean): string | undefined {
  if (value === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw s.invalid(key, `is not a URL: ${JSON.stringify(value)}`, `write a full URL such as "https://gateway.example.com:8443"`);
  }
  if (u.protocol === 'http:' && !allowHttp) {
    throw s.invalid(
      key,
      'uses http://, which sends everything unencrypted to an unauthenticated server',
      'use an https:// URL, or set allow_insecure_http = true under [server] (tests and closed networks only)',
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw s.invalid(key, `has the unsupported scheme ${u.protocol}`, 'use an https:// URL');
  if (u.search || u.hash || u.username || u.password) {
    throw s.invalid(key, 'must not have a query, a fragment or credentials', 'give the plain base URL; authentication uses client certificates');
  }
  return value.replace(/\/+$/, '');
}

/** `host:port` (IPv6 in brackets), checked as the value of `key`. */
export function parseAddress(s: Section, address: string, key = 'address'): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw s.invalid(key, `is ${JSON.stringify(address)}`, 'write host:port, e.g. "192.168.0.11:9050" or "[fe80::1]:9050"');
  return { host: (m[1] ?? m[2]) as string, port };
}

/** The `[installer]` table (shared with uptide-secondary's configuration). */
export function parseInstaller(root: Section, baseDir: string): InstallerSection {
  const ins = root.table('installer', true, 'add an [installer] table, e.g. type = "file" and path = "/var/lib/app/image.bin"');
  const type = ins.oneOf('type', ['file', 'command'] as const, undefined, 'use type = "file" (write the image to a path) or type = "command" (run a program)');
  let installer: InstallerSection;
  if (type === 'file') {
    installer = { type, path: ins.path('path', 'set path = "<where the image goes>" under [installer]') };
  } else {
    const command = ins.stringArray('command', 'set command = ["/path/to/program", "arg", …] under [installer]; the image path and target name are appended');
    installer = {
      type,
      command: [resolveProgram(command[0] as string, baseDir), ...command.slice(1)],
      timeoutSeconds: ins.number('timeout', 3600, { min: 0.01, unit: 'seconds' }),
    };
  }
  ins.finish();

  return installer;
}

/** Validates a parsed TOML document. `file` is the configuration file's path (relative paths resolve against its directory). */
export function parseConfig(doc: Table, file: string): DeviceConfig {
  const path = resolve(file);
  const baseDir = dirname(path);
  const root = new Section('', doc, baseDir);

  const dev = root.table('device', true, 'add a [device] table with at least storage = "/var/lib/uptide"');
  const device: DeviceSection = {
    id: dev.string('id', 'give the device id as a string', true),
    storage: dev.path('storage', 'set storage = "<directory for state>" under [device], e.g. "/var/lib/uptide"'),
    pollIntervalSeconds: dev.number('poll_interval', 10, { min: 0.01, unit: 'seconds' }),
    logLevel: (() => {
      const l = dev.string('log_level', 'use "error", "warn", "info" or "debug"', true);
      if (l !== undefined && !isLogLevel(l)) throw dev.invalid('log_level', `is ${JSON.stringify(l)}`, 'use "error", "warn", "info" or "debug"');
      return l as LogLevel | undefined;
    })(),
  };
  dev.finish();

  const prov = root.table('provision', false);
  const srv = root.table('server', true, 'add a [server] table with gateway = "https://…"');
  const allowInsecureHttp = srv.boolean('allow_insecure_http', false);
  const gatewayRaw = srv.string('gateway', 'set gateway = "https://<device gateway>" under [server]', true);
  if (gatewayRaw === undefined && prov === undefined) {
    throw srv.missing(
      'gateway',
      'set gateway = "https://<device gateway>" under [server] (it may be left out only with [provision] credentials holding autoprov.url)',
    );
  }
  const delegationsPath = srv.text('delegations_path', 'delegations/');
  const server: ServerSection = {
    gateway: baseUrl(srv, 'gateway', gatewayRaw, allowInsecureHttp),
    director: baseUrl(srv, 'director', srv.string('director', 'give the Director base URL', true), allowInsecureHttp),
    repo: baseUrl(srv, 'repo', srv.string('repo', 'give the Image repository base URL', true), allowInsecureHttp),
    allowInsecureHttp,
    delegationsPath: delegationsPath === '' || delegationsPath.endsWith('/') ? delegationsPath : `${delegationsPath}/`,
  };
  srv.finish();

  const tlsS = root.table('tls', false);
  let tls: TlsSection | undefined;
  if (tlsS) {
    tls = {
      ca: tlsS.path('ca', 'give the path of the CA certificate (PEM) that signed the server certificates', true),
      cert: tlsS.path('cert', 'give the path of the device certificate (PEM)', true),
      key: tlsS.path('key', 'give the path of the device private key (PEM)', true),
    };
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      const which = tls.cert === undefined ? 'cert' : 'key';
      throw tlsS.missing(which, 'a client certificate needs both cert and key under [tls]');
    }
    tlsS.finish();
  }

  let provision: ProvisionSection | undefined;
  if (prov) {
    provision = {
      credentials: prov.path('credentials', 'set credentials = "credentials.zip" under [provision]'),
      p12Password: prov.text('p12_password', ''),
      expiryDays: prov.number('expiry_days', 36000, { min: 1, integer: true, unit: 'days' }),
      server: baseUrl(prov, 'server', prov.string('server', 'give the provisioning server base URL', true), allowInsecureHttp),
    };
    prov.finish();
    if (tls?.cert !== undefined) {
      throw new ConfigError(
        'both [tls] cert/key and [provision] credentials are set',
        'provision.credentials',
        'use device credentials ([tls] cert and key) or shared-credential provisioning ([provision]), not both',
      );
    }
  }
  const httpsUsed = [server.gateway, server.director, server.repo, provision?.server].some((u) => u?.startsWith('https:'));
  if (httpsUsed && tls?.cert === undefined && provision === undefined) {
    throw new ConfigError(
      'the server URLs use https but the device has no client certificate',
      'tls.cert',
      'set cert and key under [tls] (device credentials), or credentials under [provision] (shared-credential provisioning)',
    );
  }

  const tr = root.table('trust', false) ?? new Section('trust', {}, baseDir);
  const trust: TrustSection = {
    directorRoot: tr.path('director_root', 'give the path of the Director root metadata', true),
    imageRoot: tr.path('image_root', 'give the path of the Image repository root metadata', true),
    trustOnFirstUse: tr.boolean('trust_on_first_use', false),
    requireVehicleId: tr.boolean('require_vehicle_id', true),
  };
  for (const [key, v] of [
    ['director_root', trust.directorRoot],
    ['image_root', trust.imageRoot],
  ] as const) {
    if (v === undefined && !trust.trustOnFirstUse) {
      throw tr.missing(
        key,
        `set ${key} = "<file>" under [trust] to the ${key === 'director_root' ? "Director's" : "Image repository's"} 1.root.json (uptide devices provision writes it), or set trust_on_first_use = true to trust whatever the server serves first`,
      );
    }
  }
  tr.finish();

  const pr = root.table('primary', true, 'add a [primary] table with hardware_id = "<hardware id>"');
  const primary: PrimarySection = {
    ecuSerial: pr.string('ecu_serial', 'give the Primary ECU serial as a string', true),
    hardwareId: pr.string('hardware_id', 'set hardware_id = "<hardware id>" under [primary]; images are built for a hardware id'),
    keyType: pr.oneOf('key_type', ECU_KEY_TYPES, 'ed25519'),
  };
  if (primary.ecuSerial !== undefined && primary.ecuSerial.length > 64) {
    throw pr.invalid('ecu_serial', 'is longer than 64 characters', 'use a serial of 1 to 64 characters (OTA CE refuses longer ones)');
  }
  if (primary.hardwareId.length > 200) throw pr.invalid('hardware_id', 'is longer than 200 characters', 'use at most 200 characters');
  pr.finish();

  const lim = root.table('limits', false) ?? new Section('limits', {}, baseDir);
  const bytes = (key: string, dflt: number): number => lim.number(key, dflt, { min: 1, integer: true, unit: 'bytes' });
  const limits: LimitsSection = {
    rootBytes: bytes('root_bytes', DEFAULT_LIMITS.rootBytes),
    timestampBytes: bytes('timestamp_bytes', DEFAULT_LIMITS.timestampBytes),
    snapshotBytes: bytes('snapshot_bytes', DEFAULT_LIMITS.snapshotBytes),
    directorTargetsBytes: bytes('director_targets_bytes', DEFAULT_LIMITS.directorTargetsBytes),
    imageTargetsBytes: bytes('image_targets_bytes', DEFAULT_LIMITS.imageTargetsBytes),
    maxImageBytes: bytes('max_image_bytes', 16 * 1024 ** 3),
    minSpeedBytesPerSecond: lim.number('min_speed_bytes_per_second', 1024, { unit: 'bytes per second; 0 disables' }),
    minSpeedWindowSeconds: lim.number('min_speed_window', 10, { min: 0.01, unit: 'seconds' }),
    connectTimeoutSeconds: lim.number('connect_timeout', 30, { min: 0.01, unit: 'seconds' }),
    idleTimeoutSeconds: lim.number('idle_timeout', 60, { min: 0.01, unit: 'seconds' }),
    retries: lim.number('retries', 2, { integer: true, unit: 'extra tries' }),
  };
  lim.finish();

  const installer = parseInstaller(root, baseDir);

  const secondaries: SecondarySection[] = root.tables('secondaries').map((s) => {
    const address = s.string('address', 'set address = "host:port" of the Secondary');
    const hp = parseAddress(s, address);
    const verification = s.oneOf('verification', ['full', 'partial'] as const, 'full');
    s.finish();
    return { address, ...hp, verification };
  });
  const seen = new Set<string>();
  for (const [i, s] of secondaries.entries()) {
    const key = `${s.host.toLowerCase()}:${s.port}`;
    if (seen.has(key))
      throw new ConfigError(`[[secondaries]] [${i}] address ${s.address} is listed twice`, `secondaries[${i}].address`, 'list each Secondary once');
    seen.add(key);
  }

  const ips = root.table('ip_secondaries', false) ?? new Section('ip_secondaries', {}, baseDir);
  const waitPort = ips.number('wait_port', 0, { integer: true, unit: 'a TCP port; 0 or absent: do not wait' });
  if (waitPort > 65535) throw ips.invalid('wait_port', 'is not a TCP port', 'use a port from 1 to 65535, e.g. wait_port = 9040');
  const ipSecondaries: IpSecondariesSection = {
    waitPort: waitPort === 0 ? undefined : waitPort,
    waitHost: ips.string('wait_host', 'give the address to listen on, e.g. "0.0.0.0"', true) ?? '0.0.0.0',
    waitTimeoutSeconds: ips.number('wait_timeout', 60, { min: 0.01, unit: 'seconds' }),
    requestTimeoutSeconds: ips.number('request_timeout', 30, { min: 0.01, unit: 'seconds' }),
    installTimeoutSeconds: ips.number('install_timeout', 3600, { min: 0.01, unit: 'seconds' }),
    preinstallWaitSeconds: ips.number('preinstall_wait', 30, { unit: 'seconds' }),
  };
  ips.finish();
  root.finish();

  return { file: path, device, server, tls, provision, trust, primary, limits, installer, secondaries, ipSecondaries };
}

/** A program named with a path (`./install.sh`) resolves against the config directory; a bare name is looked up in PATH. */
function resolveProgram(program: string, baseDir: string): string {
  return program.includes('/') ? resolve(baseDir, program) : program;
}

/** Parses TOML text; syntax errors name the line. */
export function parseConfigText(text: string, file: string): DeviceConfig {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (err) {
    if (err instanceof TomlError)
      throw new ConfigError(`${file}: not valid TOML: ${err.message.split('\n')[0]}`, undefined, `fix the syntax at line ${err.line}`);
    throw err;
  }
  try {
    return parseConfig(doc, file);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${file}: ${err.message}`, err.key);
    throw err;
  }
}

/** Reads and validates a configuration file. */
export function loadConfig(file: string): DeviceConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the configuration file ${file}: ${(err as Error).message}`, undefined, 'check the --config path');
  }
  return parseConfigText(text, file);
}

/** The effective server URLs (aktualizr's defaults: `<gateway>/director`, `<gateway>/repo`). */
export interface Endpoints {
  readonly gateway: string;
  readonly director: string;
  readonly repo: string;
  readonly provisioning: string;
}

export function endpoints(config: DeviceConfig, gatewayFromCredentials?: string): Endpoints {
  const gateway = config.server.gateway ?? gatewayFromCredentials;
  if (gateway === undefined) {
    throw new ConfigError(
      'no gateway URL: [server] gateway is not set and credentials.zip has no autoprov.url',
      'server.gateway',
      'set gateway under [server]',
    );
  }
  return {
    gateway,
    director: config.server.director ?? `${gateway}/director`,
    repo: config.server.repo ?? `${gateway}/repo`,
    provisioning: config.provision?.server ?? gateway,
  };
}
