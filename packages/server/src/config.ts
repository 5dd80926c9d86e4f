/**
 * Server configuration: built-in defaults, then a config file (JSON), then
 * environment variables, then command-line flags (`uptide-server --help`).
 * The names are the ones users type (product.md); every value is validated
 * and a wrong one is an error that names it.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { isKeyType, type KeyType } from '@uptide/core';

export interface ServerConfig {
  readonly dataDir: string;
  readonly databaseUrl: string;
  /** PostgreSQL schema to use (created if missing); default: the connection's search_path. */
  readonly databaseSchema: string | undefined;
  readonly host: string;
  readonly httpPort: number;
  readonly devicePort: number;
  /** undefined: a generated passphrase is kept in the data dir (with a warning). */
  readonly keyPassphrase: string | undefined;
  /** Serve the device gateway over plain HTTP, device id from the URL (development only). */
  readonly devicePlainHttp: boolean;
  /** Host names and IPs the gateway certificate is valid for, besides localhost/127.0.0.1/::1. */
  readonly publicHosts: readonly string[];
  /** The gateway URL devices are told to use (credentials, generated configs). */
  readonly gatewayUrl: string;
  /** Whether gatewayUrl was set explicitly (otherwise it follows the port actually bound). */
  readonly gatewayUrlConfigured: boolean;
  /** Key type for new repository keys. */
  readonly keyType: KeyType;
  /** Largest image accepted by an upload, in bytes. */
  readonly maxImageBytes: number;
  readonly logLevel: string;
  /** Run background jobs (metadata re-signing) in this instance. */
  readonly jobs: boolean;
  /** scrypt cost for the key passphrase (tests lower it). */
  readonly scryptN: number | undefined;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export const ENV_VARS: Record<string, keyof ServerConfig> = {
  UPTIDE_DATA_DIR: 'dataDir',
  UPTIDE_DATABASE_URL: 'databaseUrl',
  UPTIDE_DATABASE_SCHEMA: 'databaseSchema',
  UPTIDE_HOST: 'host',
  UPTIDE_HTTP_PORT: 'httpPort',
  UPTIDE_DEVICE_PORT: 'devicePort',
  UPTIDE_KEY_PASSPHRASE: 'keyPassphrase',
  UPTIDE_DEVICE_PLAIN_HTTP: 'devicePlainHttp',
  UPTIDE_PUBLIC_HOSTS: 'publicHosts',
  UPTIDE_GATEWAY_URL: 'gatewayUrl',
  UPTIDE_KEY_TYPE: 'keyType',
  UPTIDE_MAX_IMAGE_BYTES: 'maxImageBytes',
  UPTIDE_LOG_LEVEL: 'logLevel',
  UPTIDE_JOBS: 'jobs',
};

type Raw = Partial<Record<keyof ServerConfig, string | number | boolean | string[] | undefined>>;

function port(v: unknown, name: string): number {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`${name} must be a port number (0-65535), got ${JSON.stringify(v)}`);
  return n;
}

function bool(v: unknown, name: string): boolean {
  if (typeof v === 'boolean') return v;
  const s = String(v).toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
  throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(v)}`);
}

/** Builds the configuration from (in increasing priority) a file, the environment and flags. */
export function loadConfig(options: { env?: NodeJS.ProcessEnv; flags?: Raw; file?: string; cwd?: string } = {}): ServerConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const raw: Raw = {};
  const file = options.file ?? env['UPTIDE_CONFIG'];
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${file} must hold a JSON object`);
    const known = new Set(Object.values(ENV_VARS) as string[]);
    for (const [k, v] of Object.entries(parsed)) {
      if (!known.has(k)) throw new ConfigError(`config file ${file}: unknown setting ${JSON.stringify(k)} (known: ${[...known].join(', ')})`);
      (raw as Record<string, unknown>)[k] = v;
    }
  }
  for (const [name, key] of Object.entries(ENV_VARS)) {
    const v = env[name];
    if (v !== undefined && v !== '') (raw as Record<string, unknown>)[key] = v;
  }
  for (const [k, v] of Object.entries(options.flags ?? {})) if (v !== undefined) (raw as Record<string, unknown>)[k] = v;

  const dataDirRaw = String(raw.dataDir ?? './data');
  const dataDir = isAbsolute(dataDirRaw) ? dataDirRaw : resolve(cwd, dataDirRaw);
  const host = String(raw.host ?? '127.0.0.1');
  const httpPort = port(raw.httpPort ?? 8080, 'UPTIDE_HTTP_PORT');
  const devicePort = port(raw.devicePort ?? 8443, 'UPTIDE_DEVICE_PORT');
  const devicePlainHttp = bool(raw.devicePlainHttp ?? false, 'UPTIDE_DEVICE_PLAIN_HTTP');
  const keyType = String(raw.keyType ?? 'ed25519');
  if (!isKeyType(keyType) || keyType === 'ecdsa-p256')
    throw new ConfigError(`UPTIDE_KEY_TYPE must be ed25519, rsa2048, rsa3072 or rsa4096 (aktualizr accepts no other), got ${keyType}`);
  const publicHosts = Array.isArray(raw.publicHosts)
    ? raw.publicHosts.map(String)
    : String(raw.publicHosts ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
  const maxImageBytes = Number(raw.maxImageBytes ?? 64 * 1024 ** 3);
  if (!Number.isSafeInteger(maxImageBytes) || maxImageBytes < 1) throw new ConfigError('UPTIDE_MAX_IMAGE_BYTES must be a positive integer');
  const displayHost = host === '0.0.0.0' || host === '::' ? (publicHosts[0] ?? '127.0.0.1') : host;
  const gatewayUrl = String(
    raw.gatewayUrl ?? `${devicePlainHttp ? 'http' : 'https'}://${displayHost.includes(':') ? `[${displayHost}]` : displayHost}:${devicePort}`,
  ).replace(/\/+$/, '');
  const logLevel = String(raw.logLevel ?? 'info');
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel))
    throw new ConfigError(`UPTIDE_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent`);
  return {
    dataDir,
    databaseUrl: String(raw.databaseUrl ?? `sqlite:${join(dataDir, 'uptide.db')}`),
    databaseSchema: raw.databaseSchema === undefined ? undefined : String(raw.databaseSchema),
    host,
    httpPort,
    devicePort,
    keyPassphrase: raw.keyPassphrase === undefined ? undefined : String(raw.keyPassphrase),
    devicePlainHttp,
    publicHosts,
    gatewayUrl,
    gatewayUrlConfigured: raw.gatewayUrl !== undefined,
    keyType,
    maxImageBytes,
    logLevel,
    jobs: bool(raw.jobs ?? true, 'UPTIDE_JOBS'),
    scryptN: undefined,
  };
}
