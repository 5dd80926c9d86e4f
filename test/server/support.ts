/**
 * What the server-hostility tests share: raw HTTP(S) requests that send
 * exactly the bytes we choose, a snapshot of every table (to prove a refused
 * request wrote nothing), the blob directory, the route lists of both apps
 * (so a new route cannot escape the fuzzer), and a namespace populated with
 * a device, ECUs, images, a group, an update and throwaway credentials.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import yauzl from 'yauzl';
import { sql } from '../../packages/server/src/storage/database.js';
import type { FastifyInstance } from 'fastify';
import { TestDevice, makeEcu, provisionDevice, type TestServer } from '../../packages/server/src/testing/harness.js';

export interface TlsIdentity {
  readonly cert?: string;
  readonly key?: string;
  readonly pfx?: Buffer;
  readonly ca?: string;
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

export interface RawRequest {
  readonly method: string;
  /** Path and query, sent as given (already percent-encoded). */
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer;
}

/** A base URL with its TLS identity and a keep-alive agent (so per-connection caches are exercised too). */
export class Endpoint {
  readonly agent: HttpAgent | HttpsAgent;
  constructor(
    readonly base: string,
    readonly tls?: TlsIdentity,
  ) {
    const https = base.startsWith('https:');
    this.agent = https
      ? new HttpsAgent({ keepAlive: true, maxSockets: 4, ...(tls ? { cert: tls.cert, key: tls.key, pfx: tls.pfx, passphrase: '', ca: tls.ca } : {}) })
      : new HttpAgent({ keepAlive: true, maxSockets: 4 });
  }

  call(r: RawRequest, timeoutMs = 15_000): Promise<RawResponse> {
    const url = new URL(this.base);
    const https = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      let settled = false;
      const done = (fn: () => void) => {
        if (!settled) {
          settled = true;
          fn();
        }
      };
      const req = (https ? httpsRequest : httpRequest)({
        host: url.hostname,
        port: url.port,
        method: r.method,
        path: r.path,
        agent: this.agent,
        headers: { ...(r.body !== undefined ? { 'content-length': String(r.body.length) } : {}), ...r.headers },
        ...(https ? { rejectUnauthorized: true, ca: this.tls?.ca, cert: this.tls?.cert, key: this.tls?.key, pfx: this.tls?.pfx, passphrase: '' } : {}),
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done(() => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) })));
        res.on('error', (err) => done(() => reject(err)));
      });
      // A server may answer (413) and close before the whole body is written: the answer wins over EPIPE.
      req.on('error', (err) => setTimeout(() => done(() => reject(err)), 50));
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${r.method} ${r.path.slice(0, 80)} timed out`)));
      if (r.body !== undefined) req.end(r.body);
      else req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export function json(res: RawResponse): unknown {
  return JSON.parse(res.body.toString('utf8'));
}

/**
 * The error contract: every 4xx and 5xx answer is JSON `{"code","message"}`
 * with string values. Returns a description of the violation, or undefined.
 */
export function errorShapeViolation(method: string, res: RawResponse): string | undefined {
  if (res.status < 400 || method === 'HEAD') return undefined;
  const ct = String(res.headers['content-type'] ?? '');
  if (!ct.includes('json')) return `status ${res.status} with content-type ${ct}: ${res.body.toString('utf8').slice(0, 200)}`;
  let body: unknown;
  try {
    body = json(res);
  } catch {
    return `status ${res.status} with a body that is not JSON: ${res.body.toString('utf8').slice(0, 200)}`;
  }
  const o = body as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || typeof o['code'] !== 'string' || typeof o['message'] !== 'string') {
    return `status ${res.status} without {code, message}: ${res.body.toString('utf8').slice(0, 200)}`;
  }
  return undefined;
}

// --- database and blob snapshots ------------------------------------------------------------

export const TABLES = [
  'namespaces',
  'settings',
  'api_tokens',
  'repositories',
  'keys',
  'roots',
  'role_metadata',
  'targets',
  'uploads',
  'devices',
  'device_credentials',
  'ecus',
  'ecu_replacements',
  'updates',
  'assignments',
  'device_groups',
  'group_members',
  'events',
  'installation_reports',
  'security_events',
  'device_reports',
] as const;
export type TableName = (typeof TABLES)[number];

/** Columns that change on reads by design (bookkeeping, not state). */
const VOLATILE: Partial<Record<TableName, readonly string[]>> = {
  api_tokens: ['last_used_at'],
  devices: ['last_seen_at'],
};

export type DbState = Map<TableName, string[]>;

function normalise(table: TableName, row: Record<string, unknown>): string {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(row).sort()) {
    if (VOLATILE[table]?.includes(k)) continue;
    const v = row[k];
    out[k] = v instanceof Uint8Array ? createHash('sha256').update(v).digest('hex') : typeof v === 'bigint' ? String(v) : v;
  }
  return JSON.stringify(out);
}

/** Every row of every table, normalised and sorted (bytes as their SHA-256, or PostgreSQL's hex text of them). */
export async function dbState(ts: TestServer, namespace?: string): Promise<DbState> {
  const database = ts.server.services.storage.database;
  const byTable = new Map<TableName, Array<Record<string, unknown>>>();
  if (database.dialect === 'postgres') {
    // One round trip instead of one query per table: the fuzzer takes a snapshot around every request.
    const query = TABLES.map((t) => `select '${t}' as t, coalesce(json_agg(x), '[]'::json) as rows from ${t} x`).join(' union all ');
    const res = await sql.raw<{ t: TableName; rows: Array<Record<string, unknown>> }>(query).execute(database.db);
    for (const r of res.rows) byTable.set(r.t, r.rows);
  } else {
    const db = database.db as unknown as { selectFrom(t: string): { selectAll(): { execute(): Promise<Array<Record<string, unknown>>> } } };
    for (const t of TABLES) byTable.set(t, await db.selectFrom(t).selectAll().execute());
  }
  const state: DbState = new Map();
  for (const t of TABLES) {
    let rows = byTable.get(t) ?? [];
    if (namespace !== undefined) rows = rows.filter((r) => r['namespace'] === namespace || (t === 'namespaces' && r['name'] === namespace));
    state.set(t, rows.map((r) => normalise(t, r)).sort());
  }
  return state;
}

/**
 * What changed between two snapshots, ignoring what a refused request may
 * legitimately write: security events the Director records for refused
 * manifests (source "refused").
 */
export function stateChanges(before: DbState, after: DbState, options: { allowRefusedSecurityEvents?: boolean } = {}): string[] {
  const changes: string[] = [];
  for (const t of TABLES) {
    const a = new Set(before.get(t) ?? []);
    const b = new Set(after.get(t) ?? []);
    for (const row of b) {
      if (a.has(row)) continue;
      if (options.allowRefusedSecurityEvents !== false && t === 'security_events' && (JSON.parse(row) as { source: string }).source === 'refused') continue;
      changes.push(`${t} + ${row.slice(0, 300)}`);
    }
    for (const row of a) if (!b.has(row)) changes.push(`${t} - ${row.slice(0, 300)}`);
  }
  return changes;
}

/** Every file under the blob store (relative path and size), including unfinished uploads in tmp/. */
export function blobFiles(dataDir: string): string[] {
  const root = join(dataDir, 'blobs');
  const out: string[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(`${relative(root, p)}:${statSync(p).size}`);
    }
  };
  walk(root);
  return out.sort();
}

// --- routes -----------------------------------------------------------------------------------

export interface RouteId {
  readonly method: string;
  /** Fastify form: `:param` and `*`. */
  readonly path: string;
}

/** The admin API's routes from its OpenAPI document (hidden ones are added by hand: /healthz, /metrics, /). */
export function adminRoutes(admin: FastifyInstance): RouteId[] {
  const spec = admin.swagger() as { paths: Record<string, Record<string, unknown>> };
  const out: RouteId[] = [];
  for (const [p, methods] of Object.entries(spec.paths)) {
    const path = p.replace(/\{\*\}/g, '*').replace(/\{(\w+)\}/g, ':$1');
    for (const m of Object.keys(methods)) out.push({ method: m.toUpperCase(), path });
  }
  for (const path of ['/healthz', '/metrics', '/']) out.push({ method: 'GET', path });
  return out;
}

/** The gateway's routes, read from Fastify's route tree (HEAD twins of GET left out). */
export function gatewayRoutes(gateway: FastifyInstance): RouteId[] {
  const lines = gateway.printRoutes({ commonPrefix: false }).split('\n');
  const stack: string[] = [];
  const out: RouteId[] = [];
  for (const line of lines) {
    const m = /^([│ ]*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = (m[1] as string).length / 4;
    stack.length = depth;
    const seg = m[2] as string;
    stack.push(seg);
    if (!m[3]) continue;
    let path = stack.join('');
    // The tree prints the wildcard route of image downloads on its own; it lives under /repo/targets/.
    if (path === '*') path = '/repo/targets/*';
    for (const method of m[3].split(', ')) if (method !== 'HEAD') out.push({ method, path: path.replace(/\/$/, '/') });
  }
  return out;
}

// --- a populated namespace ----------------------------------------------------------------------

function unzip(buf: Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error('no zip'));
      const out = new Map<string, Buffer>();
      zip.readEntry();
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return reject(e ?? new Error('no stream'));
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            out.set(entry.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(out));
      zip.on('error', reject);
    });
  });
}

export interface Fixtures {
  readonly namespace: string;
  /** An admin token of the namespace. */
  readonly token: string;
  readonly tokenId: string;
  /** A second token, safe to revoke. */
  readonly spareTokenId: string;
  /** A device with two registered ECUs and a manifest accepted. */
  readonly device: TestDevice;
  readonly deviceKeyPem: string;
  /** A second device (for cross-device checks). */
  readonly other: TestDevice;
  /** A device whose credentials and record may be destroyed by tests. */
  readonly victimId: string;
  readonly victimSerial: string;
  readonly image: { filename: string; sha256: string; length: number; bytes: Buffer };
  readonly externalImage: string;
  readonly groupId: string;
  readonly groupName: string;
  readonly updateId: string;
  readonly bootstrapP12: Buffer;
  readonly bootstrapSerial: string;
  readonly serverCa: string;
  /** Image repository key ids by role. */
  readonly imageKeys: Record<string, string>;
  readonly directorKeys: Record<string, string>;
}

type Api = <T = unknown>(method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<{ status: number; body: T; raw: Buffer }>;

/** An admin API client for `token` (the harness's client is bound to the first token). */
export function apiFor(ts: TestServer, token: string): Api {
  return async (method, path, body, headers = {}) => {
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
    const res = await fetch(ts.adminUrl + path, init);
    const raw = Buffer.from(await res.arrayBuffer());
    const ct = res.headers.get('content-type') ?? '';
    const parsed: unknown = ct.includes('json') && raw.length > 0 ? JSON.parse(raw.toString('utf8')) : raw;
    return { status: res.status, body: parsed as never, raw };
  };
}

function expectStatus(what: string, res: { status: number; raw: Buffer }, ...ok: number[]): void {
  if (!ok.includes(res.status)) throw new Error(`${what}: ${res.status} ${res.raw.toString('utf8').slice(0, 300)}`);
}

async function keyIds(api: Api, path: string): Promise<Record<string, string>> {
  const root = (await api<{ signed: { roles: Record<string, { keyids: string[] }> } }>('GET', path)).body;
  return Object.fromEntries(Object.entries(root.signed.roles).map(([role, r]) => [role, r.keyids[0] as string]));
}

/**
 * Populates a namespace. `namespace` other than the first token's is created
 * with the system token first. Ids carry `tag` so two namespaces can be told apart.
 */
export async function setupFixtures(ts: TestServer, options: { namespace?: string; tag?: string } = {}): Promise<Fixtures> {
  const tag = options.tag ?? 'fz';
  const system = apiFor(ts, ts.token);
  let token = ts.token;
  let namespace = 'default';
  if (options.namespace && options.namespace !== 'default') {
    const created = await system<{ token: string }>('POST', '/api/v1/namespaces', { name: options.namespace });
    expectStatus('create namespace', created, 201);
    token = created.body.token;
    namespace = options.namespace;
  }
  const api = apiFor(ts, token);
  const who = await api<{ tokenId: string }>('GET', '/api/v1/whoami');
  const spare = await api<{ id: string }>('POST', '/api/v1/tokens', { name: `${tag} spare` });
  expectStatus('spare token', spare, 201);

  const bytes = randomBytes(4096);
  const filename = `${tag}/firmware-1.0.bin`;
  const up = await api<{ hashes: Record<string, string> }>(
    'PUT',
    `/api/v1/user_repo/targets/${filename}?name=${tag}-firmware&version=1.0&hardwareIds=${tag}-board,${tag}-sec`,
    new Uint8Array(bytes),
  );
  expectStatus('upload', up, 201);
  const ext = `${tag}-external.bin`;
  expectStatus(
    'external image',
    await api('POST', `/api/v1/user_repo/targets/${ext}`, {
      uri: 'https://example.com/x.bin',
      checksum: { method: 'sha256', hash: 'ab'.repeat(32) },
      length: 10,
      hardwareIds: [`${tag}-board`],
    }),
    201,
  );

  const issue = async (id: string) => {
    const res = await api<{ certificate: string; privateKey: string; serverCa: string; serial: string }>('POST', `/api/v1/devices/${id}/credentials`, {});
    expectStatus('credentials', res, 201);
    return res.body;
  };
  const c1 = await issue(`${tag}-dev`);
  const device = new TestDevice(ts.gatewayUrl, { deviceId: `${tag}-dev`, cert: c1.certificate, key: c1.privateKey, ca: c1.serverCa }, `${tag}-dev`, [
    makeEcu(`${tag}-primary`, `${tag}-board`),
    makeEcu(`${tag}-secondary`, `${tag}-sec`),
  ]);
  const other = new TestDevice(ts.gatewayUrl, await provisionDeviceWith(api, `${tag}-other`), `${tag}-other`, [
    makeEcu(`${tag}-other-primary`, `${tag}-board`),
  ]);
  for (const d of [device, other]) {
    const reg = await d.registerEcus();
    if (reg.status !== 201) throw new Error(`register ${d.deviceId}: ${reg.status} ${reg.body.toString()}`);
    const m = await d.sendManifest();
    if (m.status !== 200) throw new Error(`manifest ${d.deviceId}: ${m.status} ${m.body.toString()}`);
  }
  const victim = await issue(`${tag}-victim`);

  const group = await api<{ id: string; name: string }>('POST', '/api/v1/device_groups', { name: `${tag} group` });
  expectStatus('group', group, 201);
  expectStatus('group member', await api('POST', `/api/v1/device_groups/${group.body.id}/devices/${tag}-dev`), 204);
  const launch = await api<{ id: string }>('POST', '/api/v1/updates', { image: filename, devices: [`${tag}-other`] });
  expectStatus('update', launch, 201);

  const zip = await unzip((await api<Buffer>('POST', '/api/v1/provisioning/credentials')).raw);
  const boots = await api<Array<{ serial: string }>>('GET', '/api/v1/provisioning/credentials');
  return {
    namespace,
    token,
    tokenId: who.body.tokenId,
    spareTokenId: spare.body.id,
    device,
    deviceKeyPem: c1.privateKey,
    other,
    victimId: `${tag}-victim`,
    victimSerial: victim.serial,
    image: { filename, sha256: up.body.hashes['sha256'] as string, length: bytes.length, bytes },
    externalImage: ext,
    groupId: group.body.id,
    groupName: group.body.name,
    updateId: launch.body.id,
    bootstrapP12: zip.get('autoprov_credentials.p12') as Buffer,
    bootstrapSerial: (boots.body[boots.body.length - 1] as { serial: string }).serial,
    serverCa: c1.serverCa,
    imageKeys: await keyIds(api, '/api/v1/user_repo/root.json'),
    directorKeys: await keyIds(api, '/api/v1/admin/repo/root.json'),
  };
}

async function provisionDeviceWith(api: Api, id: string) {
  const res = await api<{ certificate: string; privateKey: string; serverCa: string }>('POST', `/api/v1/devices/${id}/credentials`, {});
  expectStatus('credentials', res, 201);
  return { deviceId: id, cert: res.body.certificate, key: res.body.privateKey, ca: res.body.serverCa };
}

export { provisionDevice };
