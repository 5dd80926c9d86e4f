/**
 * A small TUF repository (tuf dialect) built with @uptide/core and served over
 * HTTP on 127.0.0.1, for the uptide-tuf tests. Modelled on the repository
 * simulator of tuf-conformance: tests change the repository state, `publish`
 * signs new versions, and every request is recorded.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  Delegation,
  Delegations,
  LocalSigner,
  MetaFile,
  Metadata,
  Snapshot,
  TargetFile,
  Targets,
  Timestamp,
  buildRoot,
  computeHashes,
  expiresIn,
  generatePrivateKey,
  type PublicKey,
  type Root,
  type Signed,
} from '@uptide/core';
import { unquote } from '../quote.js';

type TopRole = 'root' | 'timestamp' | 'snapshot' | 'targets';

interface TargetsRole {
  version: number;
  expires: string;
  readonly targets: Map<string, TargetFile>;
  /** Delegations of this role, in priority order. */
  readonly delegations: Array<{ name: string; paths: string[]; terminating: boolean; key: PublicKey }>;
}

export interface TestRepositoryOptions {
  readonly consistentSnapshot?: boolean;
  /** Put lengths and hashes into timestamp and snapshot entries. */
  readonly metaHashes?: boolean;
}

export async function newSigner(): Promise<LocalSigner> {
  return new LocalSigner(await generatePrivateKey('ed25519'), 'tuf');
}

export class TestRepository {
  readonly signers = new Map<string, LocalSigner>();
  /** Every signed version of each role, oldest first (served as N.role.json and role.json). */
  readonly published = new Map<string, Uint8Array[]>();
  /** Target bytes served, by target path. */
  readonly artifacts = new Map<string, Uint8Array>();
  /** Metadata requests as [role, version or null]; artifact requests as [path, hash prefix or null]. */
  readonly metadataRequests: Array<[string, number | null]> = [];
  readonly artifactRequests: Array<[string, string | null]> = [];

  root: Root;
  readonly roles = new Map<string, TargetsRole>();
  timestampExpires: string;
  snapshotExpires: string;
  snapshotVersion = 1;
  timestampVersion = 1;
  private readonly snapshotMeta = new Map<string, MetaFile>();
  private timestampMeta = new MetaFile(1);
  private server: http.Server | undefined;
  private base = '';

  private constructor(
    root: Root,
    readonly options: TestRepositoryOptions,
  ) {
    this.root = root;
    this.timestampExpires = root.expires;
    this.snapshotExpires = root.expires;
  }

  static async create(options: TestRepositoryOptions = {}): Promise<TestRepository> {
    const signers: Record<TopRole, LocalSigner> = {
      root: await newSigner(),
      timestamp: await newSigner(),
      snapshot: await newSigner(),
      targets: await newSigner(),
    };
    const keys = (r: TopRole): PublicKey[] => [signers[r].publicKey];
    const expires = expiresIn(new Date(), 30 * 86400);
    const root = buildRoot({
      version: 1,
      expires,
      dialect: 'tuf',
      consistentSnapshot: options.consistentSnapshot ?? true,
      keys: { root: keys('root'), timestamp: keys('timestamp'), snapshot: keys('snapshot'), targets: keys('targets') },
    });
    const repo = new TestRepository(root, options);
    for (const r of Object.keys(signers) as TopRole[]) repo.signers.set(r, signers[r]);
    repo.roles.set('targets', { version: 1, expires, targets: new Map(), delegations: [] });
    await repo.publish(['root', 'targets', 'snapshot', 'timestamp']);
    return repo;
  }

  get consistent(): boolean {
    return this.root.consistentSnapshot === true;
  }

  /** Adds (or replaces) a target in a targets role; publish that role afterwards. */
  addTarget(role: string, path: string, content: Uint8Array): TargetFile {
    const info = new TargetFile(path, content.byteLength, { sha256: computeHashes(content).sha256 });
    this.targetsRole(role).targets.set(path, info);
    this.artifacts.set(path, content);
    return info;
  }

  /**
   * Delegates `paths` from `delegator` to a role (created with its own signer
   * the first time), trusting `key` for it (by default the role's signer); publish both afterwards.
   */
  async addDelegation(delegator: string, name: string, paths: string[], terminating = false, key?: PublicKey): Promise<void> {
    if (!this.signers.has(name)) this.signers.set(name, await newSigner());
    if (!this.roles.has(name)) this.roles.set(name, { version: 1, expires: this.root.expires, targets: new Map(), delegations: [] });
    this.targetsRole(delegator).delegations.push({ name, paths, terminating, key: key ?? this.sign(name).publicKey });
  }

  /** Replaces the key of a top-level role in the root (publish root afterwards). */
  async rotateKey(role: Exclude<TopRole, 'root'>): Promise<void> {
    this.signers.set(role, await newSigner());
    const keys = (r: TopRole): PublicKey[] => [this.sign(r).publicKey];
    this.root = buildRoot({
      version: this.root.version,
      expires: this.root.expires,
      dialect: 'tuf',
      consistentSnapshot: this.root.consistentSnapshot ?? false,
      keys: { root: keys('root'), timestamp: keys('timestamp'), snapshot: keys('snapshot'), targets: keys('targets') },
    });
  }

  /** Forgets every published version of a role, so that it can start again from `version` (a fast-forward recovery or a rollback). */
  restart(role: string, version: number): void {
    this.published.delete(role);
    if (role === 'snapshot') this.snapshotVersion = version;
    else if (role === 'timestamp') this.timestampVersion = version;
    else this.targetsRole(role).version = version;
  }

  targetsRole(role: string): TargetsRole {
    const r = this.roles.get(role);
    if (!r) throw new Error(`no targets role ${role}`);
    return r;
  }

  private sign(role: string): LocalSigner {
    const s = this.signers.get(role);
    if (!s) throw new Error(`no signer for ${role}`);
    return s;
  }

  private async signed(role: string, payload: Signed): Promise<Uint8Array> {
    return (await Metadata.create(payload, 'tuf', [this.sign(role)])).toBytes();
  }

  private metaFor(version: number, bytes: Uint8Array): MetaFile {
    return this.options.metaHashes ? new MetaFile(version, bytes.byteLength, { sha256: computeHashes(bytes).sha256 }) : new MetaFile(version);
  }

  private record(role: string, bytes: Uint8Array): void {
    const list = this.published.get(role) ?? [];
    list.push(bytes);
    this.published.set(role, list);
  }

  /**
   * Signs and publishes new versions of `roles` in the order given (targets
   * roles before snapshot before timestamp, as a repository would). Versions go
   * up by one, except for the first publication of a role (or after `restart`).
   */
  async publish(roles: readonly string[]): Promise<void> {
    for (const role of roles) {
      if (role === 'root') {
        if (this.published.has(role)) this.root = this.root.with({ version: this.root.version + 1 });
        this.record('root', await this.signed('root', this.root));
      } else if (role === 'timestamp') {
        if (this.published.has(role)) this.timestampVersion++;
        const ts = new Timestamp({ version: this.timestampVersion, expires: this.timestampExpires, snapshot: this.timestampMeta });
        this.record('timestamp', await this.signed('timestamp', ts));
      } else if (role === 'snapshot') {
        if (this.published.has(role)) this.snapshotVersion++;
        const sn = new Snapshot({ version: this.snapshotVersion, expires: this.snapshotExpires, meta: new Map(this.snapshotMeta) });
        const bytes = await this.signed('snapshot', sn);
        this.record('snapshot', bytes);
        this.timestampMeta = this.metaFor(this.snapshotVersion, bytes);
      } else {
        const r = this.targetsRole(role);
        if (this.published.has(role)) r.version++;
        let delegations: Delegations | undefined;
        if (r.delegations.length > 0) {
          const keys = new Map<string, PublicKey>();
          const list = r.delegations.map((d) => {
            const id = d.key.keyId('tuf');
            keys.set(id, d.key);
            return new Delegation([{ name: d.name, keyids: [id], threshold: 1 }], 1, d.paths, undefined, d.terminating, undefined, false);
          });
          delegations = new Delegations(keys, list);
        }
        const t = new Targets({ version: r.version, expires: r.expires, targets: new Map(r.targets), delegations });
        const bytes = await this.signed(role, t);
        this.record(role, bytes);
        this.snapshotMeta.set(`${role}.json`, this.metaFor(r.version, bytes));
      }
    }
  }

  /** Latest bytes of a role. */
  latest(role: string): Uint8Array {
    const list = this.published.get(role);
    const last = list?.[list.length - 1];
    if (!last) throw new Error(`${role} not published`);
    return last;
  }

  /** Serves the repository on 127.0.0.1 (port chosen by the OS). */
  async start(): Promise<void> {
    const server = http.createServer((req, res) => this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    this.base = `http://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  get metadataUrl(): string {
    return `${this.base}/metadata/`;
  }

  get targetsUrl(): string {
    return `${this.base}/targets/`;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const send = (status: number, body?: Uint8Array): void => {
      res.writeHead(status, { 'content-length': String(body?.byteLength ?? 0) });
      res.end(body === undefined ? undefined : Buffer.from(body));
    };
    const path = (req.url ?? '').split('?')[0] as string;
    if (path.startsWith('/metadata/') && path.endsWith('.json')) {
      const name = path.slice('/metadata/'.length, -'.json'.length);
      const dot = name.indexOf('.');
      const versioned = dot > 0 && /^\d+$/.test(name.slice(0, dot)) && (name.slice(dot + 1) === 'root' || (this.consistent && name !== 'timestamp'));
      const role = unquote(versioned ? name.slice(dot + 1) : name);
      const version = versioned ? Number(name.slice(0, dot)) : null;
      if (role === undefined) return send(400);
      this.metadataRequests.push([role, version]);
      const list = this.published.get(role);
      const bytes = version === null ? list?.[list.length - 1] : list?.[version - 1];
      return bytes ? send(200, bytes) : send(404);
    }
    if (path.startsWith('/targets/')) {
      const segments = path.slice('/targets/'.length).split('/').map(unquote);
      if (segments.some((s) => s === undefined)) return send(400);
      const last = segments.pop() as string;
      let prefix: string | null = null;
      let file = last;
      if (this.consistent) {
        const dot = last.indexOf('.');
        prefix = last.slice(0, dot);
        file = last.slice(dot + 1);
      }
      const target = [...segments, file].join('/');
      this.artifactRequests.push([target, prefix]);
      const data = this.artifacts.get(target);
      if (!data) return send(404);
      if (prefix !== null) {
        const known = [...this.roles.values()].map((r) => r.targets.get(target)).find((t) => t !== undefined);
        if (!known || !Object.values(known.hashes).includes(prefix)) return send(404);
      }
      return send(200, data);
    }
    send(404);
  }
}
