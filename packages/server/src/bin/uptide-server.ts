#!/usr/bin/env node
/**
 * uptide-server: the Uptide server on embedded defaults (SQLite and files in
 * ./data), or on PostgreSQL with UPTIDE_DATABASE_URL. See --help.
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../config.js';
import { startServer } from '../app.js';

const HELP = `uptide-server: the Uptide Uptane server (Image repository, Director, device registry)

Usage: uptide-server [options]

Options (each also an environment variable, and a key of the JSON file given by --config):
  --data-dir DIR        UPTIDE_DATA_DIR        where the embedded defaults keep everything (./data)
  --database-url URL    UPTIDE_DATABASE_URL    sqlite:<path> (default <data dir>/uptide.db) or postgres://…
  --host ADDR           UPTIDE_HOST            listen address (127.0.0.1)
  --http-port PORT      UPTIDE_HTTP_PORT       admin API, docs, health, metrics (8080)
  --device-port PORT    UPTIDE_DEVICE_PORT     device gateway, TLS with client certificates (8443)
  --public-hosts LIST   UPTIDE_PUBLIC_HOSTS    extra host names/IPs for the gateway certificate (comma-separated)
  --gateway-url URL     UPTIDE_GATEWAY_URL     the gateway URL devices are given (default https://<host>:<device port>)
  --key-type TYPE       UPTIDE_KEY_TYPE        ed25519 (default), rsa2048, rsa3072 or rsa4096 for new repository keys
  --log-level LEVEL     UPTIDE_LOG_LEVEL       fatal, error, warn, info (default), debug, trace, silent
  --no-jobs             UPTIDE_JOBS=false      do not run background re-signing in this instance
  --device-plain-http   UPTIDE_DEVICE_PLAIN_HTTP  DEVELOPMENT ONLY: gateway over plain HTTP, device id from /d/<id>/…
  --config FILE         UPTIDE_CONFIG          a JSON file of the settings above (camelCase keys)
  -h, --help

  UPTIDE_KEY_PASSPHRASE encrypts the online private keys at rest (default: one generated into the data dir).

Examples:
  uptide-server                                      # everything in ./data, admin on :8080, devices on :8443
  UPTIDE_DATABASE_URL=postgres://db/uptide UPTIDE_KEY_PASSPHRASE=… uptide-server --http-port 9080
`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        'data-dir': { type: 'string' },
        'database-url': { type: 'string' },
        host: { type: 'string' },
        'http-port': { type: 'string' },
        'device-port': { type: 'string' },
        'public-hosts': { type: 'string' },
        'gateway-url': { type: 'string' },
        'key-type': { type: 'string' },
        'log-level': { type: 'string' },
        'no-jobs': { type: 'boolean' },
        'device-plain-http': { type: 'boolean' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
  } catch (err) {
    process.stderr.write(`uptide-server: ${err instanceof Error ? err.message : String(err)}\nRun uptide-server --help for the options.\n`);
    return 2;
  }
  const v = args.values;
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  let config;
  try {
    config = loadConfig({
      ...(v.config ? { file: v.config } : {}),
      flags: {
        dataDir: v['data-dir'],
        databaseUrl: v['database-url'],
        host: v.host,
        httpPort: v['http-port'],
        devicePort: v['device-port'],
        publicHosts: v['public-hosts'],
        gatewayUrl: v['gateway-url'],
        keyType: v['key-type'],
        logLevel: v['log-level'],
        jobs: v['no-jobs'] ? false : undefined,
        devicePlainHttp: v['device-plain-http'] ? true : undefined,
      },
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`uptide-server: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const server = await startServer(config);
  const tokenFile = join(config.dataDir, 'admin-token');
  const lines = [
    '',
    'Uptide is running.',
    `  web console     ${server.adminUrl}/`,
    `  admin API       ${server.adminUrl}/api/v1   (OpenAPI docs: ${server.adminUrl}/docs, health: /healthz, metrics: /metrics)`,
    `  device gateway  ${server.gatewayUrl}   (${config.devicePlainHttp ? 'PLAIN HTTP, development only' : 'TLS with device certificates'})`,
    `  data            ${config.dataDir}   (database: ${server.services.storage.database.description})`,
    `  admin token     ${tokenFile}${server.firstToken ? '   (created now)' : ''}`,
    '',
    'Next:',
    '  npx uptide images upload ./firmware.bin --name firmware --version 1.0 --hardware-id my-board',
    '  npx uptide devices provision my-device --out ./my-device --hardware-id my-board',
    '  npx uptide updates launch --image firmware@1.0 --devices my-device',
    '',
  ];
  process.stdout.write(lines.join('\n'));
  const stop = async (signal: string) => {
    server.log.info({ signal }, 'shutting down');
    await server.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
  return -1;
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`uptide-server: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
