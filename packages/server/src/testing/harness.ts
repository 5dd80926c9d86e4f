/**
 * Test support (not part of the build): a real server on 127.0.0.1 with
 * SQLite or PostgreSQL, an admin API client, and a test device that speaks
 * aktualizr's wire format over mTLS (or the dev plain-HTTP mode).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import {
  LocalSigner,
  PublicKey,
  UNKNOWN_INSTALLED_IMAGE,
  buildEcuVersionReport,
  buildVehicleManifest,
  canonicalize,
  type InstalledImage,
  type InstallationReport,
  type JsonObject,
  type SignedDocument,
  type AttackReport,
} from '@uptide/core';
import type { DestinationStream } from 'pino';
import { loadConfig, type ServerConfig } from '../config.js';
import { startServer, type RunningServer } from '../app.js';
import { dropPostgresSchema } from '../storage/database.js';

export type DbKind = 'sqlite' | 'postgres';

export const PG_URL = process.env['UPTIDE_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestServer {
  readonly server: RunningServer;
  readonly adminUrl: string;
  readonly gatewayUrl: string;
  readonly token: string;
  readonly dataDir: string;
  readonly config: ServerConfig;
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: T; headers: Headers; raw: Buffer }>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  readonly db?: DbKind;
  readonly plainHttp?: boolean;
  readonly clock?: () => Date;
  /** Reuse a data dir (restart tests). */
  readonly dataDir?: string;
  /** Reuse a PostgreSQL schema (restart / multi-instance tests). */
  readonly schema?: string;
  readonly keepData?: boolean;
  readonly jobs?: boolean;
  /** The admin token to use when this start does not create one (another instance did). */
  readonly token?: string;
  /** Settings to override after the test defaults (e.g. maxImageBytes, logLevel). */
  readonly config?: Partial<ServerConfig>;
  /** Capture the production logger's output (use with config.logLevel). */
  readonly logDestination?: DestinationStream;
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'uptide-server-'));
  const db = options.db ?? 'sqlite';
  const schema = db === 'postgres' ? (options.schema ?? `t_${randomUUID().replace(/-/g, '').slice(0, 20)}`) : undefined;
  const base = loadConfig({
    env: {},
    flags: {
      dataDir,
      host: '127.0.0.1',
      httpPort: 0,
      devicePort: 0,
      logLevel: 'silent',
      keyPassphrase: 'test passphrase',
      devicePlainHttp: options.plainHttp ?? false,
      jobs: options.jobs ?? false,
      ...(db === 'postgres' ? { databaseUrl: PG_URL, databaseSchema: schema } : {}),
    },
  });
  const config: ServerConfig = { ...base, scryptN: 1024, ...options.config };
  const server = await startServer(config, {
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.logDestination ? { logDestination: options.logDestination } : {}),
  });
  const token = server.firstToken ?? options.token ?? (await import('node:fs')).readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const adminUrl = server.adminUrl;
  // Devices are told this URL; tests use the real port.
  const gatewayUrl = server.gatewayUrl;
  return {
    server,
    adminUrl,
    gatewayUrl,
    token,
    dataDir,
    config,
    async api(method, path, body, headers = {}) {
      const init: RequestInit = { method, headers: { authorization: `Bearer ${token}`, ...headers } };
      if (body !== undefined) {
        if (body instanceof Uint8Array) {
          init.body = body;
          (init.headers as Record<string, string>)['content-type'] ??= 'application/octet-stream';
        } else {
          init.body = JSON.stringify(body);
          (init.headers as Record<string, string>)['content-type'] = 'application/json';
        }
      }
      const res = await fetch(adminUrl + path, init);
      const raw = Buffer.from(await res.arrayBuffer());
      let parsed: unknown = raw;
      const ct = res.headers.get('content-type') ?? '';
      if (ct.includes('json') && raw.length > 0) parsed = JSON.parse(raw.toString('utf8'));
      else if (ct.startsWith('text/')) parsed = raw.toString('utf8');
      return { status: res.status, body: parsed as never, headers: res.headers, raw };
    },
    async close() {
      await server.close();
      if (!options.keepData) {
        rmSync(dataDir, { recursive: true, force: true });
        if (schema) await dropPostgresSchema(PG_URL, schema);
      }
    },
  };
}

export interface DeviceCredentials {
  readonly deviceId: string;
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

/** Issues device credentials through the admin API. */
export async function provisionDevice(ts: TestServer, deviceId: string): Promise<DeviceCredentials> {
  const res = await ts.api<{ certificate: string; privateKey: string; serverCa: string }>('POST', `/api/v1/devices/${deviceId}/credentials`, {});
  if (res.status !== 201) throw new Error(`provisioning failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { deviceId, cert: res.body.certificate, key: res.body.privateKey, ca: res.body.serverCa };
}

export interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  json<T = unknown>(): T;
}

/** One HTTP(S) request as aktualizr makes it (Accept: any type, its User-Agent, no gzip). */
export function deviceRequest(
  baseUrl: string,
  tls: { cert?: string; key?: string; ca?: string } | undefined,
  method: string,
  path: string,
  body?: Uint8Array | string,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const url = new URL(baseUrl + path);
  const isHttps = url.protocol === 'https:';
  const req = (isHttps ? httpsRequest : httpRequest)(url, {
    method,
    headers: {
      accept: '*/*',
      'user-agent': 'Aktualizr/2025.1',
      ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
      ...headers,
    },
    ...(isHttps ? { cert: tls?.cert, key: tls?.key, ca: tls?.ca, rejectUnauthorized: true, agent: false } : {}),
  });
  return new Promise((resolve, reject) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, json: <T>() => JSON.parse(buf.toString('utf8')) as T });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error('device request timed out')));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export interface TestEcu {
  readonly serial: string;
  readonly hardwareId: string;
  readonly key: KeyObject;
  readonly signer: LocalSigner;
  installed: InstalledImage;
  counter: number;
}

export function makeEcu(serial: string, hardwareId: string, type: 'ed25519' | 'rsa' = 'ed25519'): TestEcu {
  const { privateKey } = type === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { serial, hardwareId, key: privateKey, signer: new LocalSigner(privateKey, 'uptane'), installed: UNKNOWN_INSTALLED_IMAGE, counter: 0 };
}

/**
 * A device that talks like aktualizr: registers ECUs, sends signed manifests
 * (canonical jsoncpp form, `ecu_version_manifests` map), fetches metadata and
 * images, posts events.
 */
export class TestDevice {
  readonly ecus: TestEcu[];
  constructor(
    readonly gatewayUrl: string,
    readonly creds: DeviceCredentials | undefined,
    readonly deviceId: string,
    ecus: TestEcu[],
    /** Plain-HTTP dev mode: prefix paths with /d/<id>. */
    readonly plain = false,
  ) {
    this.ecus = ecus;
  }

  get primary(): TestEcu {
    return this.ecus[0] as TestEcu;
  }

  request(method: string, path: string, body?: Uint8Array | string, headers: Record<string, string> = {}): Promise<Reply> {
    const p = this.plain ? `/d/${this.deviceId}${path}` : path;
    return deviceRequest(this.gatewayUrl, this.creds ? { cert: this.creds.cert, key: this.creds.key, ca: this.creds.ca } : undefined, method, p, body, headers);
  }

  json(method: string, path: string, value: unknown): Promise<Reply> {
    return this.request(method, path, canonicalize(value, 'uptane'), { 'content-type': 'application/json' });
  }

  registerEcus(): Promise<Reply> {
    return this.json('POST', '/director/ecus', {
      primary_ecu_serial: this.primary.serial,
      ecus: this.ecus.map((e) => {
        const pub = PublicKey.fromKeyObject(e.signer.publicKey.keyObject(), 'uptane');
        return { ecu_serial: e.serial, hardware_identifier: e.hardwareId, clientKey: { keytype: pub.keytype, keyval: { public: pub.public } } };
      }),
    });
  }

  async manifest(
    options: { installationReport?: InstallationReport; attacks?: Map<string, AttackReport[]>; counterOverride?: number } = {},
  ): Promise<SignedDocument> {
    const reports = new Map<string, SignedDocument>();
    for (const e of this.ecus) {
      e.counter++;
      reports.set(
        e.serial,
        await buildEcuVersionReport(
          {
            ecuSerial: e.serial,
            installedImage: e.installed,
            latestVerifiedTime: new Date(),
            counter: options.counterOverride ?? e.counter,
            attacks: options.attacks?.get(e.serial) ?? [],
          },
          e.signer,
        ),
      );
    }
    return buildVehicleManifest(
      { primaryEcuSerial: this.primary.serial, reports, ...(options.installationReport ? { installationReport: options.installationReport } : {}) },
      this.primary.signer,
    );
  }

  async sendManifest(options: Parameters<TestDevice['manifest']>[0] = {}): Promise<Reply> {
    const doc = await this.manifest(options);
    return this.json('PUT', '/director/manifest', doc as unknown as JsonObject);
  }

  sendDocument(doc: unknown): Promise<Reply> {
    return this.json('PUT', '/director/manifest', doc);
  }
}
