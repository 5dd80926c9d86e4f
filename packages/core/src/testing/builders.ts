/**
 * Test helpers: real keys and signed repositories in both dialects, built in
 * memory. Not part of the published build (see packages/core/tsconfig.json);
 * the core's own tests use them, and so can the tests of other packages that
 * import this file by path.
 *
 * Keys are deterministic: Ed25519 keys come from a seed string, RSA and ECDSA
 * keys from the fixed test-only PEMs in `__fixtures__/test-keys.ts`, so a suite
 * never spends time generating RSA keys and key ids are stable across runs.
 */
import { createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { LocalSigner, type Signer } from '../crypto/signer.js';
import type { Dialect, PublicKey } from '../crypto/keys.js';
import { computeHashes } from '../crypto/hash.js';
import type { JsonObject } from '../json.js';
import { Metadata, TOP_LEVEL_ROLES, type RoleType, type Signed } from '../metadata/base.js';
import { RoleDefinition, Root } from '../metadata/root.js';
import { MetaFile, Snapshot, Timestamp } from '../metadata/snapshot.js';
import { Delegation, Delegations, TargetFile, Targets, type DelegatedRoleName } from '../metadata/targets.js';
import { TrustedRepository, type TrustedFiles, type TrustedRepositoryOptions } from '../verify/trusted.js';
import type { RepositorySource } from '../verify/uptane.js';
import * as fixtures from '../__fixtures__/test-keys.js';

/** The "current time" of most tests. */
export const NOW = new Date('2026-06-01T12:00:00Z');
/** An expiry after NOW. */
export const LATER = '2027-01-01T00:00:00Z';
/** An expiry before NOW. */
export const EARLIER = '2026-01-01T00:00:00Z';

// --- Keys ----------------------------------------------------------------------------------

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const keyCache = new Map<string, KeyObject>();

/** A deterministic Ed25519 private key derived from a seed string. */
export function ed25519Key(seed: string): KeyObject {
  const id = `ed25519:${seed}`;
  let k = keyCache.get(id);
  if (!k) {
    const raw = createHash('sha256').update(seed).digest();
    k = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
    keyCache.set(id, k);
  }
  return k;
}

export type FixtureKey = 'RSA_2048_A' | 'RSA_2048_B' | 'RSA_2048_C' | 'RSA_3072' | 'RSA_4096' | 'RSA_1024' | 'EC_P256' | 'EC_P384';

/** One of the fixed test-only RSA/EC private keys. */
export function fixtureKey(name: FixtureKey): KeyObject {
  const id = `fixture:${name}`;
  let k = keyCache.get(id);
  if (!k) {
    k = createPrivateKey(fixtures[name]);
    keyCache.set(id, k);
  }
  return k;
}

/** An Ed25519 signer from a seed. */
export function edSigner(seed: string, dialect: Dialect): LocalSigner {
  return new LocalSigner(ed25519Key(seed), dialect);
}

/** An RSA (2048 unless named) signer from the fixtures. */
export function rsaSigner(dialect: Dialect, name: FixtureKey = 'RSA_2048_A'): LocalSigner {
  return new LocalSigner(fixtureKey(name), dialect);
}

/** An ECDSA P-256 signer (tuf dialect only). */
export function ecSigner(): LocalSigner {
  return new LocalSigner(fixtureKey('EC_P256'), 'tuf');
}

// --- Metadata pieces ------------------------------------------------------------------------

/** Signs a payload and returns the canonical bytes a repository would serve. */
export async function signBytes(signed: Signed, dialect: Dialect, signers: readonly Signer[]): Promise<Uint8Array> {
  return (await Metadata.create(signed, dialect, signers)).toBytes();
}

/** Length and hashes of some content. */
export function fileInfo(content: string | Uint8Array): { length: number; hashes: Record<string, string> } {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  return { length: bytes.byteLength, hashes: computeHashes(bytes, ['sha256']) };
}

/** An Image repository target entry in the OTA CE shape. */
export function imageTarget(name: string, content: string | Uint8Array, hardwareIds: readonly string[] | undefined, extra: JsonObject = {}): TargetFile {
  const { length, hashes } = fileInfo(content);
  const custom: JsonObject = { name: name.split('_')[0] ?? name, version: '1.0', targetFormat: 'BINARY', uri: null, ...extra };
  if (hardwareIds !== undefined) custom['hardwareIds'] = [...hardwareIds];
  return new TargetFile(name, length, hashes, custom);
}

/** A Director target entry in the OTA CE shape (ECU serial → hardware id). */
export function directorTarget(name: string, content: string | Uint8Array, ecus: Readonly<Record<string, string>>, extra: JsonObject = {}): TargetFile {
  const { length, hashes } = fileInfo(content);
  const ecuIdentifiers: JsonObject = {};
  for (const [serial, hw] of Object.entries(ecus)) ecuIdentifiers[serial] = { hardwareId: hw };
  return new TargetFile(name, length, hashes, { ecuIdentifiers, uri: null, ...extra });
}

/** A single-role delegation. */
export function delegation(
  name: string,
  signers: readonly Signer[],
  dialect: Dialect,
  options: { paths?: string[]; pathHashPrefixes?: string[]; terminating?: boolean; hardwareIds?: string[]; threshold?: number } = {},
): Delegation {
  const role: DelegatedRoleName = { name, keyids: signers.map((s) => s.publicKey.keyId(dialect)), threshold: options.threshold ?? 1 };
  return new Delegation(
    [role],
    1,
    options.pathHashPrefixes ? undefined : (options.paths ?? ['*']),
    options.pathHashPrefixes,
    options.terminating ?? false,
    options.hardwareIds,
    false,
  );
}

/** A multi-role delegation (TAP 3). */
export function multiRoleDelegation(
  roles: ReadonlyArray<{ name: string; signers: readonly Signer[]; threshold?: number }>,
  minRolesInAgreement: number,
  dialect: Dialect,
  options: { paths?: string[]; terminating?: boolean; hardwareIds?: string[] } = {},
): Delegation {
  return new Delegation(
    roles.map((r) => ({ name: r.name, keyids: r.signers.map((s) => s.publicKey.keyId(dialect)), threshold: r.threshold ?? 1 })),
    minRolesInAgreement,
    options.paths ?? ['*'],
    undefined,
    options.terminating ?? false,
    options.hardwareIds,
    true,
  );
}

/** A Delegations object listing every signer's key. */
export function delegations(list: readonly Delegation[], signers: readonly Signer[], dialect: Dialect): Delegations {
  const keys = new Map(signers.map((s) => [s.publicKey.keyId(dialect), s.publicKey] as const));
  return new Delegations(keys, list);
}

// --- A whole repository -------------------------------------------------------------------------

export type RoleSigners = Record<RoleType, Signer[]>;

export interface DelegatedRoleState {
  targets: Map<string, TargetFile>;
  delegations: Delegations | undefined;
  signers: Signer[];
  version: number;
  expires: string;
  /** Re-signed (with version + 1) by the next publish(). */
  dirty: boolean;
}

export interface RepoOptions {
  readonly dialect: Dialect;
  /** A Director repository (no delegations; name `director`). */
  readonly director?: boolean;
  /** Signers per role; defaults to one Ed25519 key per role, seeded by the repository name. */
  readonly keys?: Partial<RoleSigners>;
  readonly thresholds?: Partial<Record<RoleType, number>>;
  /** Name used in key seeds (two repositories with different names have different keys). */
  readonly name?: string;
}

export interface PublishOptions {
  /** List length and hashes of targets files in the snapshot (default true). */
  readonly snapshotLengthAndHashes?: boolean;
  /** List length and hashes of snapshot.json in the timestamp (default true). */
  readonly timestampLengthAndHashes?: boolean;
  /** Also list root.json in the snapshot (OTA CE does). */
  readonly snapshotRoot?: boolean;
}

/**
 * A repository (Director or Image) kept in memory: roots by version, the
 * current timestamp/snapshot/targets/delegated files as served, and a
 * RepositorySource that serves them and logs each request.
 */
export class TestRepo {
  readonly dialect: Dialect;
  readonly director: boolean;
  readonly name: string;
  keys: RoleSigners;
  thresholds: Record<RoleType, number>;
  expires: Record<RoleType, string> = { root: LATER, timestamp: LATER, snapshot: LATER, targets: LATER };
  /** Root bytes by version (index = version - 1). */
  readonly roots: Uint8Array[] = [];
  readonly targets = new Map<string, TargetFile>();
  targetsCustom: JsonObject | undefined;
  delegations: Delegations | undefined;
  readonly delegated = new Map<string, DelegatedRoleState>();
  readonly versions = { timestamp: 0, snapshot: 0, targets: 0 };
  /** What the repository serves now. */
  readonly files: { timestamp?: Uint8Array; snapshot?: Uint8Array; targets?: Uint8Array; delegated: Map<string, Uint8Array> } = { delegated: new Map() };
  /** Every request the source served, e.g. `root 2`, `timestamp`, `snapshot 3`, `targets targets 1`. */
  readonly requests: string[] = [];

  private constructor(options: RepoOptions) {
    this.dialect = options.dialect;
    this.director = options.director ?? false;
    this.name = options.name ?? (this.director ? 'director' : 'image');
    const seed = (role: string): Signer[] => [edSigner(`${this.name}-${this.dialect}-${role}`, this.dialect)];
    this.keys = {
      root: options.keys?.root ?? seed('root'),
      timestamp: options.keys?.timestamp ?? seed('timestamp'),
      snapshot: options.keys?.snapshot ?? seed('snapshot'),
      targets: options.keys?.targets ?? seed('targets'),
    };
    this.thresholds = { root: 1, timestamp: 1, snapshot: 1, targets: 1, ...(options.thresholds ?? {}) };
  }

  /** A repository with root version 1 signed by its root keys. */
  static async create(options: RepoOptions): Promise<TestRepo> {
    const repo = new TestRepo(options);
    repo.roots.push(await signBytes(repo.rootPayload(1), repo.dialect, repo.keys.root));
    return repo;
  }

  /** The root payload for the current keys and thresholds. */
  rootPayload(version: number, expires = this.expires.root): Root {
    const keys = new Map<string, PublicKey>();
    const roles = new Map<string, RoleDefinition>();
    for (const role of TOP_LEVEL_ROLES) {
      const ids: string[] = [];
      for (const s of this.keys[role]) {
        const id = s.publicKey.keyId(this.dialect);
        keys.set(id, s.publicKey);
        if (!ids.includes(id)) ids.push(id);
      }
      roles.set(role, new RoleDefinition(ids, this.thresholds[role]));
    }
    return new Root({ version, expires, keys, roles, consistentSnapshot: this.dialect === 'tuf' ? false : undefined });
  }

  get rootVersion(): number {
    return this.roots.length;
  }

  /**
   * Publishes root N+1 with changed keys/thresholds, signed by the old root
   * keys and the new ones (or by `signers` when given).
   */
  async rotateRoot(
    changes: {
      keys?: Partial<RoleSigners>;
      thresholds?: Partial<Record<RoleType, number>>;
      signers?: readonly Signer[];
      version?: number;
      expires?: string;
    } = {},
  ): Promise<Uint8Array> {
    const oldRootKeys = this.keys.root;
    this.keys = { ...this.keys, ...(changes.keys ?? {}) };
    this.thresholds = { ...this.thresholds, ...(changes.thresholds ?? {}) };
    const signers = changes.signers ?? uniqueSigners([...oldRootKeys, ...this.keys.root]);
    const bytes = await signBytes(this.rootPayload(changes.version ?? this.rootVersion + 1, changes.expires ?? this.expires.root), this.dialect, signers);
    this.roots.push(bytes);
    return bytes;
  }

  /** Adds or replaces a delegated role's content (marks it for re-signing). */
  setDelegated(name: string, state: { targets?: Iterable<TargetFile>; delegations?: Delegations; signers: Signer[]; expires?: string }): void {
    const prev = this.delegated.get(name);
    this.delegated.set(name, {
      targets: new Map([...(state.targets ?? [])].map((t) => [t.name, t] as const)),
      delegations: state.delegations,
      signers: state.signers,
      version: prev?.version ?? 0,
      expires: state.expires ?? LATER,
      dirty: true,
    });
  }

  addTarget(t: TargetFile): void {
    this.targets.set(t.name, t);
  }

  targetsPayload(version = this.versions.targets): Targets {
    return new Targets({
      version,
      expires: this.expires.targets,
      targets: new Map(this.targets),
      delegations: this.delegations,
      custom: this.targetsCustom,
    });
  }

  /** Signs new targets (and dirty delegated files), snapshot and timestamp, each with version + 1. */
  async publish(options: PublishOptions = {}): Promise<void> {
    this.versions.targets++;
    this.files.targets = await signBytes(this.targetsPayload(), this.dialect, this.keys.targets);
    for (const [name, d] of this.delegated) {
      if (!d.dirty) continue;
      d.version++;
      d.dirty = false;
      const payload = new Targets({ version: d.version, expires: d.expires, targets: new Map(d.targets), delegations: d.delegations });
      this.files.delegated.set(name, await signBytes(payload, this.dialect, d.signers));
    }
    await this.publishSnapshot(options);
  }

  /** Snapshot over the files served now, then timestamp. */
  async publishSnapshot(options: PublishOptions = {}): Promise<void> {
    const withLH = options.snapshotLengthAndHashes ?? true;
    const describe = (version: number, bytes: Uint8Array): MetaFile => (withLH ? MetaFile.describe(version, bytes) : new MetaFile(version));
    const meta = new Map<string, MetaFile>();
    if (options.snapshotRoot) meta.set('root.json', describe(this.rootVersion, this.roots[this.rootVersion - 1] as Uint8Array));
    meta.set('targets.json', describe(this.versions.targets, this.files.targets as Uint8Array));
    for (const [name, d] of this.delegated) {
      const bytes = this.files.delegated.get(name);
      if (bytes) meta.set(`${name}.json`, describe(d.version, bytes));
    }
    this.versions.snapshot++;
    this.files.snapshot = await signBytes(
      new Snapshot({ version: this.versions.snapshot, expires: this.expires.snapshot, meta }),
      this.dialect,
      this.keys.snapshot,
    );
    await this.publishTimestamp(options);
  }

  /** Timestamp over the snapshot served now. */
  async publishTimestamp(options: PublishOptions = {}): Promise<void> {
    const withLH = options.timestampLengthAndHashes ?? true;
    const snap = this.files.snapshot as Uint8Array;
    const entry = withLH ? MetaFile.describe(this.versions.snapshot, snap) : new MetaFile(this.versions.snapshot);
    this.versions.timestamp++;
    this.files.timestamp = await signBytes(
      new Timestamp({ version: this.versions.timestamp, expires: this.expires.timestamp, snapshot: entry }),
      this.dialect,
      this.keys.timestamp,
    );
  }

  /** What a freshly provisioned client holds: root version 1 only (or the given version). */
  provisioned(rootVersion = 1): TrustedFiles {
    return { root: this.roots[rootVersion - 1] as Uint8Array };
  }

  /** Everything served now, as a client that verified it would have stored it. */
  current(): TrustedFiles {
    return {
      root: this.roots[this.rootVersion - 1] as Uint8Array,
      timestamp: this.files.timestamp,
      snapshot: this.files.snapshot,
      targets: this.files.targets,
      delegated: new Map(this.files.delegated),
    };
  }

  /** A TrustedRepository over the given stored files. */
  trusted(files: TrustedFiles = this.provisioned(), options: Partial<TrustedRepositoryOptions> = {}): TrustedRepository {
    return new TrustedRepository(files, { dialect: this.dialect, repository: this.name, now: NOW, isDirector: this.director, ...options });
  }

  /** Serves this repository's current files, logging requests. Missing files throw. */
  source(): RepositorySource {
    const need = (b: Uint8Array | undefined, what: string): Uint8Array => {
      if (!b) throw new Error(`test repository has no ${what}`);
      return b;
    };
    return {
      root: (version) => {
        this.requests.push(`root ${version}`);
        return Promise.resolve(this.roots[version - 1]);
      },
      timestamp: () => {
        this.requests.push('timestamp');
        return Promise.resolve(need(this.files.timestamp, 'timestamp'));
      },
      snapshot: (version) => {
        this.requests.push(`snapshot ${version}`);
        return Promise.resolve(need(this.files.snapshot, 'snapshot'));
      },
      targets: (role, version) => {
        this.requests.push(`targets ${role} ${version}`);
        return Promise.resolve(need(role === 'targets' ? this.files.targets : this.files.delegated.get(role), role));
      },
    };
  }
}

function uniqueSigners(list: readonly Signer[]): Signer[] {
  const seen = new Set<string>();
  const out: Signer[] = [];
  for (const s of list) {
    const fp = s.publicKey.fingerprint();
    if (!seen.has(fp)) {
      seen.add(fp);
      out.push(s);
    }
  }
  return out;
}

/** Re-encodes a document after changing its parsed JSON (for tampering tests). */
export function tamper(bytes: Uint8Array, change: (doc: { signed: JsonObject; signatures: JsonObject[] }) => void): Uint8Array {
  const doc = JSON.parse(Buffer.from(bytes).toString('utf8')) as { signed: JsonObject; signatures: JsonObject[] };
  change(doc);
  return Buffer.from(JSON.stringify(doc), 'utf8');
}
