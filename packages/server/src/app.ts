/**
 * Assembles the server: storage, keys, services, the admin API (with its
 * OpenAPI document at /docs) and the device gateway, and the background job
 * that re-signs metadata before it expires. Everything is constructed here
 * and injected; nothing is a module-level singleton.
 */
import { promises as fsp, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import multipart from '@fastify/multipart';
import type { Logger } from 'pino';
import pino from 'pino';
import type { ServerConfig } from './config.js';
import { openDatabase } from './storage/database.js';
import { Storage } from './storage/store.js';
import { MetadataCache } from './storage/metadata-cache.js';
import { OnlineKeys } from './keys/online-keys.js';
import { TufRepos } from './keys/tuf-repo.js';
import { FileBlobStore } from './blobs/blob-store.js';
import { ImageRepository } from './imagerepo/service.js';
import { Director } from './director/service.js';
import { Updates } from './director/updates.js';
import { Registry } from './registry/service.js';
import { Tokens } from './auth/tokens.js';
import { Metrics } from './http/metrics.js';
import { Provisioning } from './provisioning/service.js';
import { Namespaces } from './namespaces/service.js';
import { clientErrorHandler, errorHandling, finiteQueryNumbers, noNulInUrls, strictJsonBodies } from './http/common.js';
import { consoleRoutes } from './http/console.js';
import { requireToken, type Services } from './admin/context.js';
import { imageRoutes } from './admin/image-routes.js';
import { directorRoutes } from './admin/director-routes.js';
import { registryRoutes } from './admin/registry-routes.js';
import { systemRoutes } from './admin/system-routes.js';
import { gatewayRoutes } from './gateway/routes.js';
import { startJobs, type Jobs } from './jobs/refresher.js';

export interface RunningServer {
  readonly services: Services;
  readonly admin: FastifyInstance;
  readonly gateway: FastifyInstance;
  /** http://host:port of the admin API. */
  readonly adminUrl: string;
  /** https://host:port (or http://…) of the device gateway. */
  readonly gatewayUrl: string;
  /** The first admin token, when this start created it. */
  readonly firstToken: string | undefined;
  readonly log: Logger;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Override the clock (tests). */
  readonly clock?: () => Date;
  /** A pino logger; default: JSON to stderr at config.logLevel. */
  readonly logger?: Logger;
  /** Where the default logger writes (default stderr); tests capture the production logger's output with it. */
  readonly logDestination?: pino.DestinationStream;
}

async function keyPassphrase(config: ServerConfig, log: Logger): Promise<string> {
  if (config.keyPassphrase !== undefined) return config.keyPassphrase;
  const file = join(config.dataDir, 'key-passphrase');
  const read = async () => {
    const stored = (await fsp.readFile(file, 'utf8')).trim();
    if (stored === '') throw new Error(`${file} is empty: restore it from a backup, or set UPTIDE_KEY_PASSPHRASE`);
    return stored;
  };
  if (existsSync(file)) return read();
  const generated = randomBytes(32).toString('base64url');
  await fsp.mkdir(config.dataDir, { recursive: true });
  // Whole or not at all (a start killed mid-write must not leave an empty passphrase), and only if absent
  // (instances sharing the data dir must agree on one): write aside, then link into place.
  const tmp = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(tmp, generated + '\n', { mode: 0o600 });
  try {
    await fsp.link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return read();
    // A file system without hard links: create it in place, still only if absent.
    await fsp.writeFile(file, generated + '\n', { mode: 0o600, flag: 'wx' });
  } finally {
    await fsp.rm(tmp, { force: true });
  }
  log.warn(
    { file },
    'UPTIDE_KEY_PASSPHRASE is not set: generated one and stored it next to the data. Set UPTIDE_KEY_PASSPHRASE (and keep it elsewhere) for production.',
  );
  return generated;
}

/** The server's logger: JSON at config.logLevel, with secrets that could appear in logged objects redacted. */
export function createLogger(config: Pick<ServerConfig, 'logLevel'>, destination: pino.DestinationStream): Logger {
  return pino({ level: config.logLevel, redact: ['req.headers.authorization', '*.privateKey', '*.token', '*.key'] }, destination);
}

export async function startServer(config: ServerConfig, options: StartOptions = {}): Promise<RunningServer> {
  const log = options.logger ?? createLogger(config, options.logDestination ?? pino.destination(2));
  const clock = options.clock ?? (() => new Date());
  await fsp.mkdir(config.dataDir, { recursive: true });
  const database = await openDatabase(config.databaseUrl, config.databaseSchema ? { schema: config.databaseSchema } : {});
  const storage = new Storage(database, new MetadataCache());
  await storage.startListening();
  const passphrase = await keyPassphrase(config, log);
  const keys = await OnlineKeys.open(storage.store, passphrase, config.scryptN);
  const repos = new TufRepos(keys, config.keyType);
  const blobs = new FileBlobStore(join(config.dataDir, 'blobs'));
  const imageRepo = new ImageRepository(storage, repos, blobs, clock);
  const director = new Director(storage, repos, clock);
  const updates = new Updates(storage, clock, imageRepo);
  const registry = new Registry(storage, clock);
  const tokens = new Tokens(storage, clock);
  const metrics = new Metrics();
  const adminUrlFor = (port: number) =>
    `http://${config.host.includes(':') ? `[${config.host}]` : config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${port}`;
  const provisioning = new Provisioning(storage, keys, registry, imageRepo, director, clock, config.keyType, {
    dataDir: config.dataDir,
    gatewayUrl: config.gatewayUrl,
    adminUrl: adminUrlFor(config.httpPort),
    publicHosts: config.publicHosts,
  });
  await provisioning.init();
  const namespaces = new Namespaces(storage, imageRepo, director, provisioning, clock);
  await namespaces.create('default', { ifMissing: true });
  for (const n of await namespaces.list()) await provisioning.ensureDeviceCa(n);

  // The first start creates a system token for the default namespace, written once to the data dir. The file
  // comes first: a start killed in between must not leave a token in the database that nobody knows (the next
  // start, finding no token, makes a new one and replaces the file).
  let firstToken: string | undefined;
  if ((await storage.store.listTokens('default')).length === 0) {
    const token = Tokens.generate();
    const file = join(config.dataDir, 'admin-token');
    await fsp.writeFile(`${file}.tmp`, token + '\n', { mode: 0o600 });
    await fsp.rename(`${file}.tmp`, file);
    await tokens.create('default', 'initial admin token', true, token);
    firstToken = token;
  }

  const services: Services = { config, storage, imageRepo, director, updates, registry, tokens, blobs, metrics, provisioning, namespaces, clock };

  const admin = await buildAdminApp(services, log);
  const gateway = await buildGatewayApp(services, log);
  provisioning.onDeviceCasChanged = () => {
    if (!config.devicePlainHttp) {
      const tls = provisioning.gatewayTls();
      (gateway.server as unknown as { setSecureContext(o: object): void }).setSecureContext({ cert: tls.cert, key: tls.key, ca: tls.ca });
    }
  };

  await admin.listen({ host: config.host, port: config.httpPort });
  await gateway.listen({ host: config.host, port: config.devicePort });
  const adminAddr = admin.server.address();
  const gwAddr = gateway.server.address();
  const adminPort = typeof adminAddr === 'object' && adminAddr ? adminAddr.port : config.httpPort;
  const gwPort = typeof gwAddr === 'object' && gwAddr ? gwAddr.port : config.devicePort;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const gatewayUrl = `${config.devicePlainHttp ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${gwPort}`;
  // Ports 0 (tests, ephemeral runs): tell devices the ports actually bound, unless a public URL was configured.
  if (config.devicePort === 0 && !config.gatewayUrlConfigured) provisioning.setUrls(gatewayUrl, adminUrlFor(adminPort));
  else if (config.httpPort === 0) provisioning.setUrls(config.gatewayUrl, adminUrlFor(adminPort));
  if (config.devicePlainHttp) {
    log.warn(
      'THE DEVICE GATEWAY IS SERVING PLAIN HTTP WITHOUT DEVICE AUTHENTICATION (UPTIDE_DEVICE_PLAIN_HTTP). ANYONE CAN ACT AS ANY DEVICE. DEVELOPMENT ONLY.',
    );
  }
  const jobs: Jobs | undefined = config.jobs ? startJobs(services, log, `${process.pid}-${randomUUID()}`) : undefined;

  return {
    services,
    admin,
    gateway,
    adminUrl: adminUrlFor(adminPort),
    gatewayUrl,
    firstToken,
    log,
    async close() {
      jobs?.stop();
      await Promise.allSettled([admin.close(), gateway.close()]);
      await storage.close();
    },
  };
}

function baseOptions(log: Logger) {
  return {
    loggerInstance: log as unknown as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // Requests carry an id in logs; clients may pass one.
    genReqId: () => randomUUID(),
    clientErrorHandler,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array' as const, allErrors: false } },
  };
}

export async function buildAdminApp(services: Services, log: Logger): Promise<FastifyInstance> {
  const app = Fastify({ ...baseOptions(log), bodyLimit: 1024 * 1024 });
  strictJsonBodies(app);
  finiteQueryNumbers(app);
  noNulInUrls(app);
  errorHandling(app);
  await app.register(multipart, { limits: { fileSize: services.config.maxImageBytes, files: 1, fields: 10 } });
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Uptide admin API',
        version: '0.1.0',
        description: 'Image repository, Director and device registry of Uptide. Authenticate with "Authorization: Bearer <token>".',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/healthz', { schema: { hide: true } }, async () => {
    await services.storage.store.namespaceExists('default');
    return { status: 'ok' };
  });
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) =>
    reply.header('content-type', 'text/plain; version=0.0.4').send(services.metrics.render()),
  );
  // The web console at / (with a short page pointing to /docs when it is not built).
  await consoleRoutes(app);
  await app.register(async (api) => {
    requireToken(api, services);
    api.addHook('onResponse', async (request, reply) => {
      services.metrics.inc('uptide_admin_requests_total', { route: request.routeOptions.url ?? 'unknown', status: String(reply.statusCode) });
    });
    await imageRoutes(api, services);
    await directorRoutes(api, services);
    await registryRoutes(api, services);
    await systemRoutes(api, services);
  });
  return app;
}

export async function buildGatewayApp(services: Services, log: Logger): Promise<FastifyInstance> {
  const plain = services.config.devicePlainHttp;
  const tls = plain ? undefined : services.provisioning.gatewayTls();
  const app = (plain
    ? Fastify({ ...baseOptions(log), bodyLimit: 1024 * 1024 })
    : Fastify({
        ...baseOptions(log),
        bodyLimit: 1024 * 1024,
        https: { cert: tls?.cert, key: tls?.key, ca: tls?.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' as const },
      })) as unknown as FastifyInstance;
  strictJsonBodies(app);
  finiteQueryNumbers(app);
  noNulInUrls(app);
  errorHandling(app);
  await app.register(async (gw) => gatewayRoutes(gw, services, { tls: !plain }));
  return app;
}
