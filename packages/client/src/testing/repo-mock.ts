/**
 * A Director (one per device) and an Image repository on a real HTTP(S)
 * server on 127.0.0.1, in the OTA CE layout the aktualizr wire contract
 * describes (device-api.md §1, §9), with metadata signed by @uptide/core in
 * the uptane dialect. It is the ground for client tests and for attacks:
 *
 * - content: `addImage`, `assign` (bumps the device's Director targets,
 *   correlation id `urn:here-ota:mtu:<uuid>`), `setDirectorTargets` for any
 *   shape, `addDelegation`, `rotateRoot`, expiries per role;
 * - records: every request, ECU registration, manifest (with its signatures
 *   verified against the registered ECU keys), event and device-data report;
 * - tampering: `tamper({ path, … })` replaces bytes or status, delays,
 *   throttles, drops or fakes Content-Length, sends endless data, cuts the
 *   connection, ignores Range — for a number of requests or until removed.
 *
 * Devices are told apart by a `/d/<device id>` prefix over plain HTTP, or by
 * the client certificate's CN over mTLS (as OTA CE's gateway does).
 */
import { randomUUID, X509Certificate } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  buildRoot,
  canonicalize,
  computeHashes,
  Delegation,
  Delegations,
  expiresIn,
  generatePrivateKey,
  LocalSigner,
  Metadata,
  MetaFile,
  parseJson,
  parseVehicleManifest,
  PublicKey,
  Snapshot,
  TargetFile,
  Targets,
  Timestamp,
  verifySignedDocument,
  type JsonObject,
  type JsonValue,
  type Root,
  type RoleType,
  type VehicleManifest,
} from '@uptide/core';
import { TestPki } from './pki.js';

export type RepoName = 'director' | 'image';
export type KeySet = Record<RoleType, LocalSigner[]>;

export async function newSigner(type: 'ed25519' | 'rsa2048' = 'ed25519'): Promise<LocalSigner> {
  return new LocalSigner(await generatePrivateKey(type), 'uptane');
}

async function newKeySet(): Promise<KeySet> {
  return { root: [await newSigner()], targets: [await newSigner()], snapshot: [await newSigner()], timestamp: [await newSigner()] };
}

const DAY = 86400;

/** Expiry for each role: seconds from now (negative: already expired). */
export type Expiries = Partial<Record<RoleType, number>>;

/** A root chain with its current keys. */
export class RootChain {
  readonly versions: Uint8Array[] = [];
  keys!: KeySet;
  thresholds: Partial<Record<RoleType, number>> = {};
  private current!: Metadata<Root>;

  static async create(expiresSeconds = 365 * DAY): Promise<RootChain> {
    const c = new RootChain();
    c.keys = await newKeySet();
    c.current = await Metadata.create(c.buildRoot(1, expiresSeconds), 'uptane', c.keys.root);
    c.versions.push(c.current.toBytes());
    return c;
  }

  private buildRoot(version: number, expiresSeconds: number): Root {
    const pub = (r: RoleType) => this.keys[r].map((s) => s.publicKey);
    return buildRoot({
      version,
      expires: expiresIn(new Date(), expiresSeconds),
      keys: { root: pub('root'), targets: pub('targets'), snapshot: pub('snapshot'), timestamp: pub('timestamp') },
      thresholds: this.thresholds,
      dialect: 'uptane',
      consistentSnapshot: false,
    });
  }

  get version(): number {
    return this.versions.length;
  }

  /** `N.root.json`, or undefined past the latest. */
  bytes(version: number): Uint8Array | undefined {
    return this.versions[version - 1];
  }

  get latest(): Uint8Array {
    return this.versions[this.versions.length - 1] as Uint8Array;
  }

  /**
   * Publishes root N+1 with some roles' keys replaced. It is signed by the old
   * and the new root keys (as the Standard requires) unless `signers` says otherwise.
   */
  async rotate(
    options: {
      keys?: Partial<KeySet>;
      thresholds?: Partial<Record<RoleType, number>>;
      expiresSeconds?: number;
      signers?: LocalSigner[];
      version?: number;
    } = {},
  ): Promise<Uint8Array> {
    const old = this.keys.root;
    this.keys = { ...this.keys, ...(options.keys ?? {}) };
    if (options.thresholds) this.thresholds = { ...this.thresholds, ...options.thresholds };
    const root = this.buildRoot(options.version ?? this.version + 1, options.expiresSeconds ?? 365 * DAY);
    const both = [...old, ...this.keys.root].filter((k, i, all) => all.findIndex((x) => x.publicKey.keyId('uptane') === k.publicKey.keyId('uptane')) === i);
    this.current = await Metadata.create(root, 'uptane', options.signers ?? both);
    const bytes = this.current.toBytes();
    this.versions.push(bytes);
    return bytes;
  }
}

export interface ImageOptions {
  readonly hardwareIds: readonly string[];
  readonly releaseCounter?: number;
  readonly uri?: string;
  /** Put the target in this delegated role instead of the top-level targets. */
  readonly delegation?: string;
  /** Extra `custom` fields (merged over the defaults). */
  readonly custom?: JsonObject;
  /** Hash functions to list (default sha256 only, as OTA CE). */
  readonly hashes?: ReadonlyArray<'sha256' | 'sha512'>;
  /** Replace listed hash values (metadata that lies about the bytes). */
  readonly hashOverride?: Readonly<Record<string, string>>;
}

export interface DelegationOptions {
  readonly name: string;
  readonly paths: readonly string[];
  readonly terminating?: boolean;
  readonly hardwareIds?: readonly string[];
  readonly threshold?: number;
  /** Signers of the delegated role (default: one new key; an existing role's keys when `name` is already delegated). */
  readonly signers?: LocalSigner[];
  /** The role that delegates (default: the top-level targets). A name already delegated elsewhere reuses that role's file. */
  readonly delegator?: string;
  /**
   * A multi-role delegation (procedure M): these roles, each its own file,
   * of which `minRolesInAgreement` must agree. `name` then only labels the group.
   */
  readonly roles?: ReadonlyArray<{ readonly name: string; readonly signers?: LocalSigner[] }>;
  readonly minRolesInAgreement?: number;
}

interface DelegatedRole {
  readonly options: DelegationOptions;
  readonly signers: LocalSigner[];
  readonly targets: Map<string, TargetFile>;
  version: number;
  bytes: Uint8Array;
  /** Roles of one multi-role delegation share a group. */
  readonly group?: { readonly id: number; readonly min: number };
  /** Another delegation of a role that already has its file (a second delegator, a cycle). */
  readonly alias?: boolean;
  /** Sign the file with these keys instead of the delegated ones (which the delegator keeps listing). */
  signWith?: LocalSigner[];
}

/** Serves one role's current bytes and keeps older versions for replays. */
class Published {
  version = 0;
  bytes: Uint8Array = new Uint8Array();
  readonly history: Uint8Array[] = [];
  set(version: number, bytes: Uint8Array): void {
    this.version = version;
    this.bytes = bytes;
    this.history.push(bytes);
  }
}

/** The Image repository (one per mock, as one per OTA CE namespace). */
export class ImageRepo {
  readonly targets = new Map<string, TargetFile>();
  readonly blobs = new Map<string, Buffer>();
  readonly delegations: DelegatedRole[] = [];
  readonly timestamp = new Published();
  readonly snapshot = new Published();
  readonly targetsFile = new Published();
  expiries: Expiries = {};

  constructor(readonly root: RootChain) {}

  private exp(role: RoleType, dflt: number): string {
    return expiresIn(new Date(), this.expiries[role] ?? dflt);
  }

  /** Re-signs targets (and delegations), snapshot and timestamp, each with a new version. */
  async publish(): Promise<void> {
    const k = this.root.keys;
    for (const d of this.delegations) {
      if (d.alias) continue;
      d.version++;
      const md = await Metadata.create(
        new Targets({ version: d.version, expires: this.exp('targets', 30 * DAY), targets: d.targets, delegations: this.delegationsOf(d.options.name) }),
        'uptane',
        d.signWith ?? d.signers,
      );
      d.bytes = md.toBytes();
    }
    const delegations = this.delegationsOf('targets');
    const tv = this.targetsFile.version + 1;
    const targets = await Metadata.create(
      new Targets({ version: tv, expires: this.exp('targets', 30 * DAY), targets: new Map(this.targets), delegations }),
      'uptane',
      k.targets,
    );
    this.targetsFile.set(tv, targets.toBytes());
    const meta = new Map<string, MetaFile>([['targets.json', MetaFile.describe(tv, this.targetsFile.bytes)]]);
    for (const d of this.delegations) if (!d.alias) meta.set(`${d.options.name}.json`, MetaFile.describe(d.version, d.bytes));
    const sv = this.snapshot.version + 1;
    const snapshot = await Metadata.create(new Snapshot({ version: sv, expires: this.exp('snapshot', 7 * DAY), meta }), 'uptane', k.snapshot);
    this.snapshot.set(sv, snapshot.toBytes());
    const tsv = this.timestamp.version + 1;
    const timestamp = await Metadata.create(
      new Timestamp({ version: tsv, expires: this.exp('timestamp', 1 * DAY), snapshot: MetaFile.describe(sv, this.snapshot.bytes) }),
      'uptane',
      k.timestamp,
    );
    this.timestamp.set(tsv, timestamp.toBytes());
  }

  delegated(role: string): DelegatedRole | undefined {
    return this.delegations.find((d) => d.options.name === role && !d.alias);
  }

  /** The delegations a role's file carries, in the order they were added (multi-role groups merged). */
  private delegationsOf(delegator: string): Delegations | undefined {
    const mine = this.delegations.filter((d) => (d.options.delegator ?? 'targets') === delegator);
    if (mine.length === 0) return undefined;
    const keys = new Map<string, PublicKey>();
    const list: Delegation[] = [];
    let groupOf: number | undefined;
    for (const d of mine) {
      const keyids = d.signers.map((s) => {
        const id = s.publicKey.keyId('uptane');
        keys.set(id, s.publicKey);
        return id;
      });
      const role = { name: d.options.name, keyids, threshold: d.options.threshold ?? 1 };
      const o = d.options;
      const last = list.at(-1);
      if (d.group && last && groupOf === d.group.id) {
        list[list.length - 1] = new Delegation(
          [...last.roles, role],
          last.minRolesInAgreement,
          last.paths,
          undefined,
          last.terminating,
          last.hardwareIds,
          true,
        );
        continue;
      }
      groupOf = d.group?.id;
      list.push(
        new Delegation([role], d.group?.min ?? 1, [...o.paths], undefined, o.terminating ?? false, o.hardwareIds ? [...o.hardwareIds] : undefined, !!d.group),
      );
    }
    return new Delegations(keys, list);
  }
}

export interface DirectorEntry {
  readonly name: string;
  /** ECU serial → hardware id. */
  readonly ecus: Readonly<Record<string, string>>;
  readonly length: number;
  readonly hashes: Readonly<Record<string, string>>;
  readonly custom?: JsonObject;
}

export interface RegisteredEcu {
  readonly serial: string;
  readonly hardwareId: string;
  readonly key: PublicKey;
}

/** One device's Director metadata (targets, snapshot, timestamp) under the namespace's Director root. */
export class DeviceDirector {
  entries: DirectorEntry[] = [];
  correlationId: string | undefined;
  /** `custom.vehicleId` written into targets (default: the device id; undefined leaves it out). */
  vehicleId: string | undefined;
  primarySerial: string | undefined;
  readonly ecus = new Map<string, RegisteredEcu>();
  readonly timestamp = new Published();
  readonly snapshot = new Published();
  readonly targetsFile = new Published();
  expiries: Expiries = {};

  constructor(
    readonly deviceId: string,
    private readonly root: RootChain,
  ) {
    this.vehicleId = deviceId;
  }

  private exp(role: RoleType, dflt: number): string {
    return expiresIn(new Date(), this.expiries[role] ?? dflt);
  }

  /** Re-signs targets, snapshot and timestamp, each with a new version (OTA CE bumps on every change). */
  async publish(): Promise<void> {
    const k = this.root.keys;
    const targets = new Map<string, TargetFile>();
    for (const e of this.entries) {
      const ecuIdentifiers: JsonObject = {};
      for (const [s, hw] of Object.entries(e.ecus)) ecuIdentifiers[s] = { hardwareId: hw };
      targets.set(e.name, new TargetFile(e.name, e.length, { ...e.hashes }, { ecuIdentifiers, uri: null, ...(e.custom ?? {}) }));
    }
    const custom: JsonObject = {};
    if (this.correlationId !== undefined) custom['correlationId'] = this.correlationId;
    if (this.vehicleId !== undefined) custom['vehicleId'] = this.vehicleId;
    const tv = this.targetsFile.version + 1;
    const md = await Metadata.create(
      new Targets({ version: tv, expires: this.exp('targets', 30 * DAY), targets, custom: Object.keys(custom).length > 0 ? custom : undefined }),
      'uptane',
      k.targets,
    );
    this.targetsFile.set(tv, md.toBytes());
    const sv = this.snapshot.version + 1;
    const sn = await Metadata.create(
      new Snapshot({ version: sv, expires: this.exp('snapshot', 7 * DAY), meta: new Map([['targets.json', MetaFile.describe(tv, this.targetsFile.bytes)]]) }),
      'uptane',
      k.snapshot,
    );
    this.snapshot.set(sv, sn.toBytes());
    const tsv = this.timestamp.version + 1;
    const ts = await Metadata.create(
      new Timestamp({ version: tsv, expires: this.exp('timestamp', 1 * DAY), snapshot: MetaFile.describe(sv, this.snapshot.bytes) }),
      'uptane',
      k.timestamp,
    );
    this.timestamp.set(tsv, ts.toBytes());
  }
}

export interface TamperRule {
  /** Path after the device prefix (`/repo/timestamp.json`, `/director/targets.json`, `/repo/targets/a.bin`), or a RegExp. */
  readonly path: string | RegExp;
  readonly method?: string;
  readonly deviceId?: string;
  /** Answer with this status (the body stays unless `body` is given). */
  readonly status?: number;
  /** Replace the body: bytes, text, or a function of the original body. */
  readonly body?: Uint8Array | string | ((original: Buffer) => Uint8Array | string);
  /** Wait this long before answering. */
  readonly delayMs?: number;
  /** Send the body at this rate. */
  readonly bytesPerSecond?: number;
  /** Send no Content-Length (chunked). */
  readonly dropContentLength?: boolean;
  /** Announce this Content-Length (whatever is sent). */
  readonly contentLength?: number;
  /** Send junk instead of the body: `true` forever (until the client gives up), or this many bytes. */
  readonly endless?: true | number;
  /** Close the connection after this many body bytes. */
  readonly cutAfter?: number;
  /** Answer a Range request with 200 and the whole body. */
  readonly ignoreRange?: boolean;
  /** Apply to this many requests, then stop (default: until removed). */
  readonly times?: number;
}

export interface Tamper {
  readonly hits: number;
  remove(): void;
}

export interface RecordedRequest {
  readonly method: string;
  /** Path after the device prefix. */
  readonly path: string;
  readonly deviceId: string | undefined;
  readonly headers: http.IncomingHttpHeaders;
  /** The status sent (206 for a served Range). */
  readonly status: number;
  readonly tampered: boolean;
}

export interface RecordedManifest {
  readonly deviceId: string;
  readonly raw: Buffer;
  /** Parsed, when it parsed. */
  readonly manifest: VehicleManifest | undefined;
  /** Outer signature by the registered Primary key and every ECU report by its ECU key. */
  readonly verified: boolean;
  readonly error: string | undefined;
}

export interface RepoMockOptions {
  /** Serve HTTPS with client certificates (device = certificate CN). */
  readonly tls?: boolean;
  /** Cancel a device's assignment when a manifest reports a failed installation (as OTA CE does). Default false. */
  readonly cancelOnFailedReport?: boolean;
}

interface Reply {
  status: number;
  body: Buffer;
  headers?: Record<string, string>;
}

const json = (status: number, v: JsonValue): Reply => ({ status, body: Buffer.from(JSON.stringify(v)), headers: { 'content-type': 'application/json' } });
const notFound = (): Reply => json(404, { code: 'not_found', message: 'no such resource' });

export class RepoMock {
  readonly image: ImageRepo;
  readonly requests: RecordedRequest[] = [];
  readonly manifests: RecordedManifest[] = [];
  readonly registrations: Array<{ deviceId: string; body: JsonObject }> = [];
  readonly events: Array<{ deviceId: string; event: JsonObject }> = [];
  readonly deviceData: Array<{ deviceId: string; method: string; path: string; body: Buffer }> = [];
  readonly provisioned: Array<{ deviceId: string; ttl: string }> = [];
  private readonly directors = new Map<string, DeviceDirector>();
  private readonly tampers: Array<{ rule: TamperRule; hits: number; removed: boolean }> = [];
  private readonly sockets = new Set<Socket>();
  private groups = 0;
  url = '';

  private constructor(
    readonly directorRoot: RootChain,
    imageRoot: RootChain,
    private readonly server: http.Server | https.Server,
    readonly options: RepoMockOptions,
    readonly pki: TestPki | undefined,
  ) {
    this.image = new ImageRepo(imageRoot);
  }

  static async start(options: RepoMockOptions = {}): Promise<RepoMock> {
    const directorRoot = await RootChain.create();
    const imageRoot = await RootChain.create();
    let pki: TestPki | undefined;
    let server: http.Server | https.Server;
    if (options.tls) {
      pki = TestPki.create();
      const sc = pki.issue('localhost', { server: true });
      server = https.createServer({ key: sc.key, cert: sc.cert, ca: pki.caCert, requestCert: true, rejectUnauthorized: false });
    } else {
      server = http.createServer();
    }
    const mock = new RepoMock(directorRoot, imageRoot, server, options, pki);
    server.on('request', (req, res) => {
      mock.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) {
          res.statusCode = 500;
          res.end(String((err as Error).stack ?? err));
        } else res.destroy();
      });
    });
    server.on('connection', (s) => {
      mock.sockets.add(s);
      s.on('close', () => mock.sockets.delete(s));
    });
    server.on('secureConnection', (s) => {
      mock.sockets.add(s);
      s.on('close', () => mock.sockets.delete(s));
    });
    await mock.image.publish();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    mock.url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    return mock;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** The gateway URL a device uses (`tls.server`); Director and Image repository are `/director` and `/repo` under it. */
  gatewayFor(deviceId: string): string {
    return this.options.tls ? this.url : `${this.url}/d/${encodeURIComponent(deviceId)}`;
  }

  /** The device's Director metadata (created on first use). */
  director(deviceId: string): DeviceDirector {
    let d = this.directors.get(deviceId);
    if (!d) {
      d = new DeviceDirector(deviceId, this.directorRoot);
      this.directors.set(deviceId, d);
    }
    return d;
  }

  private async directorReady(deviceId: string): Promise<DeviceDirector> {
    const d = this.director(deviceId);
    if (d.targetsFile.version === 0) await d.publish();
    return d;
  }

  // --- Content ----------------------------------------------------------------------------------

  /** Adds an image to the Image repository (top level or a delegated role) and republishes. */
  async addImage(name: string, bytes: Uint8Array, options: ImageOptions): Promise<TargetFile> {
    const data = Buffer.from(bytes);
    const hashes = { ...computeHashes(data, options.hashes ?? ['sha256']), ...(options.hashOverride ?? {}) };
    const now = expiresIn(new Date(), 0);
    const custom: JsonObject = {
      name: name.replace(/[-_][^-_]*$/, '') || name,
      version: '1',
      hardwareIds: [...options.hardwareIds],
      targetFormat: 'BINARY',
      uri: options.uri ?? null,
      createdAt: now,
      updatedAt: now,
      ...(options.releaseCounter !== undefined ? { releaseCounter: options.releaseCounter } : {}),
      ...(options.custom ?? {}),
    };
    const t = new TargetFile(name, data.length, hashes, custom);
    this.image.blobs.set(name, data);
    if (options.delegation !== undefined) {
      const d = this.image.delegated(options.delegation);
      if (!d) throw new Error(`no delegation ${options.delegation}`);
      d.targets.set(name, t);
    } else this.image.targets.set(name, t);
    await this.image.publish();
    return t;
  }

  /**
   * Adds a delegation (in priority order) from the top-level targets, or from
   * `delegator`, and republishes. Returns the signers of the delegated role
   * (of every role, in order, for a multi-role delegation).
   */
  async addDelegation(options: DelegationOptions): Promise<LocalSigner[]> {
    const all: LocalSigner[] = [];
    if (options.roles) {
      const group = { id: ++this.groups, min: options.minRolesInAgreement ?? 1 };
      for (const r of options.roles) {
        const signers = r.signers ?? [await newSigner()];
        all.push(...signers);
        this.image.delegations.push({
          options: { ...options, name: r.name, roles: undefined },
          signers,
          targets: new Map(),
          version: 0,
          bytes: new Uint8Array(),
          group,
        });
      }
    } else {
      const existing = this.image.delegated(options.name);
      const signers = options.signers ?? existing?.signers ?? [await newSigner()];
      all.push(...signers);
      this.image.delegations.push({
        options,
        signers,
        targets: existing?.targets ?? new Map(),
        version: 0,
        bytes: new Uint8Array(),
        alias: existing !== undefined,
      });
    }
    await this.image.publish();
    return all;
  }

  /**
   * Directs an image to one ECU of a device (by default the registered
   * Primary, with its registered hardware id), replacing earlier directions,
   * with a fresh correlation id. `override` changes what the Director claims
   * (length, hashes, custom) to build inconsistent metadata.
   */
  async assign(
    deviceId: string,
    imageName: string,
    options: { ecuSerial?: string; hardwareId?: string; correlationId?: string; override?: Partial<Pick<DirectorEntry, 'length' | 'hashes' | 'custom'>> } = {},
  ): Promise<string> {
    const d = this.director(deviceId);
    const t = this.findImage(imageName);
    const length = options.override?.length ?? t?.length;
    const hashes = options.override?.hashes ?? t?.hashes;
    if (length === undefined || hashes === undefined) throw new Error(`no image ${imageName}; give override.length and override.hashes`);
    const serial = options.ecuSerial ?? d.primarySerial;
    if (serial === undefined) throw new Error(`device ${deviceId} has not registered; give ecuSerial`);
    const hw = options.hardwareId ?? d.ecus.get(serial)?.hardwareId;
    if (hw === undefined) throw new Error(`ECU ${serial} is not registered; give hardwareId`);
    const correlationId = options.correlationId ?? `urn:here-ota:mtu:${randomUUID()}`;
    d.entries = [{ name: imageName, ecus: { [serial]: hw }, length, hashes, custom: options.override?.custom }];
    d.correlationId = correlationId;
    await d.publish();
    return correlationId;
  }

  /** Sets a device's Director targets to anything (several ECUs, unknown ECUs, other vehicles…). */
  async setDirectorTargets(deviceId: string, entries: DirectorEntry[], options: { correlationId?: string; vehicleId?: string | null } = {}): Promise<void> {
    const d = this.director(deviceId);
    d.entries = entries;
    d.correlationId = options.correlationId;
    if (options.vehicleId !== undefined) d.vehicleId = options.vehicleId ?? undefined;
    await d.publish();
  }

  /** Withdraws what was directed to a device (empty targets, new version). */
  async clearAssignment(deviceId: string): Promise<void> {
    const d = this.director(deviceId);
    d.entries = [];
    d.correlationId = undefined;
    await d.publish();
  }

  /** Rotates a repository's root (see RootChain.rotate) and re-signs its other metadata with the new keys. */
  async rotateRoot(repo: RepoName, options: Parameters<RootChain['rotate']>[0] = {}): Promise<Uint8Array> {
    const chain = repo === 'director' ? this.directorRoot : this.image.root;
    const bytes = await chain.rotate(options);
    if (repo === 'director') for (const d of this.directors.values()) await d.publish();
    else await this.image.publish();
    return bytes;
  }

  findImage(name: string): TargetFile | undefined {
    return this.image.targets.get(name) ?? this.image.delegations.map((d) => d.targets.get(name)).find((t) => t !== undefined);
  }

  // --- Tampering ----------------------------------------------------------------------------------

  /** Changes matching responses until removed (or `times` requests). The first matching rule applies. */
  tamper(rule: TamperRule): Tamper {
    const entry = { rule, hits: 0, removed: false };
    this.tampers.push(entry);
    return {
      get hits() {
        return entry.hits;
      },
      remove: () => {
        entry.removed = true;
      },
    };
  }

  clearTampers(): void {
    for (const t of this.tampers) t.removed = true;
  }

  private matchTamper(method: string, path: string, deviceId: string | undefined): TamperRule | undefined {
    for (const t of this.tampers) {
      if (t.removed) continue;
      const r = t.rule;
      if (r.method !== undefined && r.method !== method) continue;
      if (r.deviceId !== undefined && r.deviceId !== deviceId) continue;
      if (typeof r.path === 'string' ? r.path !== path : !r.path.test(path)) continue;
      t.hits++;
      if (r.times !== undefined && t.hits >= r.times) t.removed = true;
      return r;
    }
    return undefined;
  }

  // --- Records ----------------------------------------------------------------------------------

  /** Manifests a device sent, parsed (oldest first). */
  manifestsOf(deviceId: string): RecordedManifest[] {
    return this.manifests.filter((m) => m.deviceId === deviceId);
  }

  lastManifest(deviceId: string): VehicleManifest | undefined {
    return this.manifestsOf(deviceId).at(-1)?.manifest;
  }

  eventsOf(deviceId: string): JsonObject[] {
    return this.events.filter((e) => e.deviceId === deviceId).map((e) => e.event);
  }

  requestsTo(path: string | RegExp): RecordedRequest[] {
    return this.requests.filter((r) => (typeof path === 'string' ? r.path === path : path.test(r.path)));
  }

  // --- HTTP ----------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    let path = url.pathname;
    let deviceId: string | undefined;
    const m = /^\/d\/([^/]+)(\/.*)$/.exec(path);
    if (m) {
      deviceId = decodeURIComponent(m[1] as string);
      path = m[2] as string;
    } else if (this.options.tls) {
      const sock = req.socket as TLSSocket;
      const peer = sock.getPeerCertificate?.();
      if (sock.authorized && peer && peer.subject) deviceId = peer.subject.CN as string | undefined;
      if (!sock.authorized) {
        this.record(req, path, undefined, 401, false);
        res.writeHead(401).end();
        return;
      }
    }
    const body = await readBody(req, 16 * 1024 * 1024);
    const method = req.method ?? 'GET';
    let reply = await this.route(method, path.replace(/(.)\/$/, '$1'), deviceId, body, req);
    const rule = this.matchTamper(method, path, deviceId);
    if (rule) reply = applyBody(rule, reply);
    const rec = this.record(req, path, deviceId, reply.status, rule !== undefined);
    rec.status = await send(req, res, reply, rule);
  }

  private record(req: http.IncomingMessage, path: string, deviceId: string | undefined, status: number, tampered: boolean): { status: number } {
    const rec = { method: req.method ?? 'GET', path, deviceId, headers: req.headers, status, tampered };
    this.requests.push(rec);
    return rec;
  }

  private async route(method: string, path: string, deviceId: string | undefined, body: Buffer, req: http.IncomingMessage): Promise<Reply> {
    if (method === 'POST' && path === '/devices') return this.provision(body, req);
    if (deviceId === undefined) return json(400, { code: 'no_device', message: 'use /d/<device>/… or a client certificate' });
    let m: RegExpExecArray | null;
    if ((m = /^\/director\/(.*)$/.exec(path))) return this.routeDirector(method, m[1] as string, deviceId, body);
    if ((m = /^\/repo\/(.*)$/.exec(path))) return method === 'GET' ? this.routeImage(m[1] as string) : notFound();
    if (['/system_info', '/system_info/network', '/core/installed', '/system_info/config'].includes(path)) {
      this.deviceData.push({ deviceId, method, path, body });
      return { status: 204, body: Buffer.alloc(0) };
    }
    if (method === 'POST' && path === '/events') {
      const v = parseJson(body);
      if (!Array.isArray(v)) return json(400, { code: 'bad_events', message: 'an array of events' });
      for (const e of v) this.events.push({ deviceId, event: e as JsonObject });
      return { status: 204, body: Buffer.alloc(0) };
    }
    return notFound();
  }

  private provision(body: Buffer, req: http.IncomingMessage): Reply {
    if (!this.pki) return notFound();
    const sock = req.socket as TLSSocket;
    if (!sock.authorized) return json(401, { code: 'unauthorized', message: 'a bootstrap certificate is required' });
    const v = parseJson(body) as { deviceId?: unknown; ttl?: unknown };
    if (typeof v.deviceId !== 'string' || typeof v.ttl !== 'string') return json(400, { code: 'bad_request', message: 'deviceId and ttl (strings)' });
    if (this.provisioned.some((p) => p.deviceId === v.deviceId)) return json(409, { code: 'device_already_registered', message: `${v.deviceId} exists` });
    this.provisioned.push({ deviceId: v.deviceId, ttl: v.ttl });
    return { status: 200, body: this.pki.pkcs12(v.deviceId, ''), headers: { 'content-type': 'application/x-pkcs12' } };
  }

  private async routeDirector(method: string, rest: string, deviceId: string, body: Buffer): Promise<Reply> {
    if (method === 'POST' && rest === 'ecus') return this.register(deviceId, body);
    if (method === 'PUT' && rest === 'manifest') return this.receiveManifest(deviceId, body);
    if (method !== 'GET') return notFound();
    const rm = /^(\d+)\.root\.json$/.exec(rest);
    if (rm) {
      const b = this.directorRoot.bytes(Number(rm[1]));
      return b ? { status: 200, body: Buffer.from(b) } : notFound();
    }
    const d = await this.directorReady(deviceId);
    if (rest === 'timestamp.json') return { status: 200, body: Buffer.from(d.timestamp.bytes) };
    if (rest === 'snapshot.json') return { status: 200, body: Buffer.from(d.snapshot.bytes) };
    if (rest === 'targets.json') return { status: 200, body: Buffer.from(d.targetsFile.bytes) };
    return notFound();
  }

  private routeImage(rest: string): Reply {
    const rm = /^(\d+)\.root\.json$/.exec(rest);
    if (rm) {
      const b = this.image.root.bytes(Number(rm[1]));
      return b ? { status: 200, body: Buffer.from(b) } : notFound();
    }
    if (rest === 'timestamp.json') return { status: 200, body: Buffer.from(this.image.timestamp.bytes) };
    if (rest === 'snapshot.json') return { status: 200, body: Buffer.from(this.image.snapshot.bytes) };
    if (rest === 'targets.json') return { status: 200, body: Buffer.from(this.image.targetsFile.bytes) };
    if (rest.startsWith('targets/')) {
      const blob = this.image.blobs.get(decodeURIComponent(rest.slice('targets/'.length)));
      return blob ? { status: 200, body: blob, headers: { 'content-type': 'application/octet-stream' } } : notFound();
    }
    const dm = /^(?:delegations\/)?(.+)\.json$/.exec(rest);
    if (dm) {
      const d = this.image.delegated(decodeURIComponent(dm[1] as string));
      if (d) return { status: 200, body: Buffer.from(d.bytes) };
    }
    return notFound();
  }

  private register(deviceId: string, body: Buffer): Reply {
    const v = parseJson(body) as JsonObject;
    this.registrations.push({ deviceId, body: v });
    const d = this.director(deviceId);
    const primary = v['primary_ecu_serial'];
    const ecus = v['ecus'];
    if (typeof primary !== 'string' || !Array.isArray(ecus)) return json(400, { code: 'bad_request', message: 'primary_ecu_serial and ecus' });
    d.ecus.clear();
    for (const e of ecus as JsonObject[]) {
      const serial = e['ecu_serial'] as string;
      d.ecus.set(serial, { serial, hardwareId: e['hardware_identifier'] as string, key: PublicKey.fromJSON(e['clientKey'], 'uptane') });
    }
    d.primarySerial = primary;
    return json(200, {});
  }

  private async receiveManifest(deviceId: string, raw: Buffer): Promise<Reply> {
    const d = this.director(deviceId);
    let manifest: VehicleManifest | undefined;
    let error: string | undefined;
    let verified = false;
    try {
      manifest = parseVehicleManifest(raw);
      const primary = d.ecus.get(manifest.primaryEcuSerial);
      if (!primary || manifest.primaryEcuSerial !== d.primarySerial) error = `unknown Primary ${manifest.primaryEcuSerial}`;
      else if (!verifySignedDocument(manifest.document, primary.key)) error = 'bad Primary signature';
      else {
        for (const [serial, rep] of manifest.reports) {
          const ecu = d.ecus.get(serial);
          if (!ecu) error = `unknown ECU ${serial}`;
          else if (!verifySignedDocument(rep.document, ecu.key)) error = `bad signature on the report of ${serial}`;
        }
        verified = error === undefined;
      }
    } catch (err) {
      error = (err as Error).message;
    }
    this.manifests.push({ deviceId, raw, manifest, verified, error });
    if (!verified || !manifest) return json(400, { code: 'bad_manifest', message: error ?? 'invalid' });
    // OTA CE: an assignment is done when the ECU reports the image (name and sha256).
    if (d.entries.length > 0) {
      const done = d.entries.every((e) =>
        Object.keys(e.ecus).every((serial) => {
          const img = manifest?.reports.get(serial)?.installedImage;
          return img !== undefined && img.filename === e.name && img.hashes['sha256'] !== undefined && img.hashes['sha256'] === e.hashes['sha256'];
        }),
      );
      const failed = manifest.installationReport !== undefined && !manifest.installationReport.result.success;
      if (done || (failed && this.options.cancelOnFailedReport)) {
        d.entries = [];
        d.correlationId = undefined;
        await d.publish();
      }
    }
    return json(200, {});
  }
}

async function readBody(req: http.IncomingMessage, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) throw new Error('request body too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

function applyBody(rule: TamperRule, reply: Reply): Reply {
  let body = reply.body;
  if (rule.body !== undefined) {
    const b = typeof rule.body === 'function' ? rule.body(reply.body) : rule.body;
    body = typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b);
  }
  return { status: rule.status ?? reply.status, body, headers: reply.headers };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function send(req: http.IncomingMessage, res: http.ServerResponse, reply: Reply, rule: TamperRule | undefined): Promise<number> {
  if (rule?.delayMs) await sleep(rule.delayMs);
  let status = reply.status;
  let body = reply.body;
  const headers: Record<string, string> = { ...(reply.headers ?? {}) };
  const range = req.headers['range'];
  if (status === 200 && range !== undefined && !rule?.ignoreRange && rule?.endless === undefined) {
    const m = /^bytes=(\d+)-$/.exec(range);
    if (m) {
      const start = Number(m[1]);
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return 416;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
      body = body.subarray(start);
    }
  }
  if (rule?.endless !== undefined) {
    if (rule.contentLength !== undefined) headers['content-length'] = String(rule.contentLength);
    res.writeHead(status, headers);
    const chunk = Buffer.alloc(16 * 1024, 0x41);
    let left = rule.endless === true ? Infinity : rule.endless;
    while (left > 0 && !res.destroyed) {
      const part = left === Infinity ? chunk : chunk.subarray(0, Math.min(chunk.length, left));
      left -= part.length;
      if (!res.write(part)) await new Promise((r) => res.once('drain', r).once('close', r));
      if (rule.bytesPerSecond) await sleep((part.length / rule.bytesPerSecond) * 1000);
    }
    res.end();
    return status;
  }
  if (!rule?.dropContentLength) headers['content-length'] = String(rule?.contentLength ?? body.length);
  res.writeHead(status, headers);
  if (req.method === 'HEAD') {
    res.end();
    return status;
  }
  const limit = rule?.cutAfter ?? Infinity;
  if (rule?.bytesPerSecond) {
    const step = Math.max(1, Math.floor(rule.bytesPerSecond / 10));
    for (let i = 0; i < body.length && i < limit && !res.destroyed; i += step) {
      res.write(body.subarray(i, Math.min(i + step, body.length, limit)));
      await sleep(100);
    }
  } else res.write(body.subarray(0, Math.min(body.length, limit)));
  if (limit < body.length) {
    // Let the bytes go out, then drop the connection mid-body.
    await new Promise((r) => setTimeout(r, 20));
    res.socket?.destroy();
    return status;
  }
  res.end();
  return status;
}

/** The CN of a PEM certificate. */
export function certCommonName(pem: string): string | undefined {
  for (const line of new X509Certificate(pem).subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return undefined;
}

/** Canonical bytes of a JSON value (for building tampered documents in tests). */
export function canonicalBytes(v: JsonValue): Uint8Array {
  return canonicalize(v, 'uptane');
}
