/**
 * The Image repository (uptane-standard.md §5.3.1): a TUF repository per
 * namespace listing every image, with delegations to suppliers. Targets are
 * signed online by default; once the targets key is offline the server only
 * accepts client-signed targets.json (optimistic locking with the role
 * checksum, as garage-sign does) and re-signs snapshot and timestamp.
 *
 * Every change is one transaction that locks the repository row, so
 * concurrent uploads (and several server instances) produce strictly
 * increasing versions and never lose a target.
 */
import { createHash } from 'node:crypto';
import {
  Delegations,
  MetaFile,
  Metadata,
  Snapshot,
  TargetFile,
  Targets,
  Timestamp,
  UptaneError,
  parseTargets,
  parseJson,
  RollbackError,
  isNfc,
  isPublishableTargetName,
  type Dialect,
  type JsonObject,
  type Root,
} from '@uptide/core';
import { BlobTooSmallError, type BlobInfo, type BlobStore } from '../blobs/blob-store.js';
import type { Storage, Store, TargetRow } from '../storage/store.js';
import type { TufRepos } from '../keys/tuf-repo.js';
import { ApiError, badRequest, conflict, notFound } from '../errors.js';

const REPO = 'image' as const;

export interface TargetInput {
  readonly name?: string | undefined;
  readonly version?: string | undefined;
  readonly hardwareIds: readonly string[];
  readonly targetFormat?: string | undefined;
  readonly releaseCounter?: number | undefined;
  /** Extra custom fields (OTA CE "proprietary" custom), merged in. */
  readonly custom?: JsonObject | undefined;
}

export interface ExternalTargetInput extends TargetInput {
  readonly uri: string;
  readonly length: number;
  readonly hashes: Readonly<Record<string, string>>;
}

export interface ServedFile {
  readonly bytes: Uint8Array;
  readonly checksum: string;
}

/**
 * Target filenames: 1-254 characters of a safe set (no spaces, controls or
 * backslashes), NFC, no empty, `.` or `..` path segments, not absolute
 * (uptane-standard.md §5.2.7 rule 3; A17).
 */
export function checkTargetFilename(filename: string): void {
  if (!isPublishableTargetName(filename)) {
    throw badRequest(
      'invalid_filename',
      `invalid target filename ${JSON.stringify(filename.slice(0, 80))}: use 1-254 characters of A-Z a-z 0-9 . _ ~ + @ = : , - and /, with no empty, "." or ".." segment`,
    );
  }
}

export function checkHardwareId(hw: string): void {
  if (hw.length === 0 || hw.length > 200 || !/^[A-Za-z0-9._~+@=:-]+$/.test(hw) || !isNfc(hw)) {
    throw badRequest('invalid_hardware_id', `invalid hardware id ${JSON.stringify(hw.slice(0, 80))}: 1-200 characters of A-Z a-z 0-9 . _ ~ + @ = : -`);
  }
}

/** Metadata versions are stored as 32-bit integers; a signed file may claim more (it would be a database error). */
function checkStorableVersion(version: number): void {
  if (version > 2147483647) throw badRequest('invalid_version', `metadata version ${version} is above 2147483647`);
}

function sha256Hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export class ImageRepository {
  constructor(
    private readonly storage: Storage,
    private readonly repos: TufRepos,
    private readonly blobs: BlobStore,
    private readonly clock: () => Date,
  ) {}

  private async dialect(store: Store, namespace: string, lock = false): Promise<{ dialect: Dialect; offline: boolean }> {
    const row = await store.getRepository(namespace, REPO, lock);
    if (!row) throw notFound('repository_not_found', `namespace ${namespace} has no Image repository`);
    return { dialect: row.dialect as Dialect, offline: row.targets_offline === 1 };
  }

  /** Creates keys, root, and empty targets/snapshot/timestamp (inside the caller's transaction). */
  async create(store: Store, namespace: string, dialect: Dialect = 'uptane'): Promise<void> {
    const now = this.clock();
    const root = await this.repos.initRepository(store, namespace, REPO, dialect, now);
    const targets = new Targets({ version: 1, expires: this.repos.expires(REPO, 'targets', now), targets: new Map() });
    const signedTargets = await this.repos.sign(store, namespace, REPO, 'targets', targets, root.signed, dialect);
    await this.publishTargetsAndSnapshot(store, namespace, dialect, root.signed, signedTargets.toBytes(), targets.version, targets.expiresAt, now);
  }

  // --- serving ---------------------------------------------------------------------------

  async root(namespace: string, version?: number): Promise<Uint8Array | undefined> {
    const s = this.storage.store;
    if (version === undefined) return (await s.latestRoot(namespace, REPO))?.bytes;
    return s.getRoot(namespace, REPO, version);
  }

  /** targets, snapshot, timestamp or a delegated role; re-signed first when close to expiry. */
  async metadata(namespace: string, role: string): Promise<ServedFile | undefined> {
    const now = this.clock();
    const row = await this.storage.store.getRoleMetadataCached(namespace, REPO, '', role, now.getTime());
    if (!row) return undefined;
    if ((role === 'timestamp' || role === 'snapshot' || role === 'targets') && this.repos.needsRefresh(REPO, role, row.expires_at, now)) {
      await this.refresh(namespace);
      const fresh = await this.storage.store.getRoleMetadata(namespace, REPO, '', role);
      if (fresh) return { bytes: fresh.bytes, checksum: fresh.checksum };
    }
    return { bytes: row.bytes, checksum: row.checksum };
  }

  // --- targets ---------------------------------------------------------------------------------

  /**
   * Streams an image into the blob store (hashing on the way), then adds it to
   * targets and re-signs targets, snapshot and timestamp in one transaction.
   */
  async upload(namespace: string, filename: string, body: AsyncIterable<Uint8Array>, input: TargetInput, maxBytes: number): Promise<TargetRow> {
    checkTargetFilename(filename);
    input.hardwareIds.forEach(checkHardwareId);
    if (input.hardwareIds.length === 0) throw badRequest('missing_hardware_id', 'give at least one hardware id (hardwareIds)');
    const { offline } = await this.dialect(this.storage.store, namespace);
    if (offline) {
      throw conflict(
        'targets_offline',
        'the targets key of this repository is offline: upload the bytes to /api/v1/user_repo/uploads/<filename>, then push a signed targets.json (uptide keys targets pull / add / sign / push)',
      );
    }
    let blob: BlobInfo;
    try {
      blob = await this.blobs.put(body, { maxBytes, minBytes: 1 });
    } catch (err) {
      if (err instanceof BlobTooSmallError) throw badRequest('empty_image', 'an image must not be empty (aktualizr treats length 0 as OSTree)');
      throw err;
    }
    return this.addTarget(namespace, filename, input, blob, undefined);
  }

  /** Registers a target whose bytes live elsewhere (OTA CE's POST …/targets/<filename>). */
  async addExternal(namespace: string, filename: string, input: ExternalTargetInput): Promise<TargetRow> {
    checkTargetFilename(filename);
    input.hardwareIds.forEach(checkHardwareId);
    if (!/^https?:\/\//.test(input.uri)) throw badRequest('invalid_uri', 'uri must be an http(s) URL');
    if (!input.hashes['sha256'] || !/^[0-9a-fA-F]{64}$/.test(input.hashes['sha256']))
      throw badRequest('invalid_checksum', 'a sha256 checksum (64 hex) is required');
    if (!(input.length > 0) || !Number.isSafeInteger(input.length)) throw badRequest('invalid_length', 'length must be a positive safe integer');
    if (input.releaseCounter !== undefined && !(Number.isSafeInteger(input.releaseCounter) && input.releaseCounter >= 0))
      throw badRequest('invalid_release_counter', 'releaseCounter must be a non-negative safe integer');
    return this.addTarget(namespace, filename, input, undefined, input);
  }

  private async addTarget(
    namespace: string,
    filename: string,
    input: TargetInput,
    blob: BlobInfo | undefined,
    ext: ExternalTargetInput | undefined,
  ): Promise<TargetRow> {
    const now = this.clock();
    const t = now.getTime();
    return this.storage.transaction(async (store) => {
      const { dialect, offline } = await this.dialect(store, namespace, true);
      if (offline) throw conflict('targets_offline', 'the targets key of this repository is offline');
      const existing = await store.getTarget(namespace, filename);
      const custom: JsonObject = {
        ...(input.custom ?? {}),
        name: input.name ?? filename,
        version: input.version ?? '',
        hardwareIds: [...input.hardwareIds],
        targetFormat: input.targetFormat ?? 'BINARY',
        uri: ext?.uri ?? null,
        createdAt: new Date(existing?.created_at ?? t).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        updatedAt: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      };
      if (input.releaseCounter !== undefined) custom['releaseCounter'] = input.releaseCounter;
      const hashes = blob ? { sha256: blob.hashes['sha256'] as string, sha512: blob.hashes['sha512'] as string } : { ...(ext as ExternalTargetInput).hashes };
      const row = {
        namespace,
        filename,
        length: blob ? blob.length : (ext as ExternalTargetInput).length,
        sha256: (hashes['sha256'] as string).toLowerCase(),
        hashes_json: JSON.stringify(hashes),
        custom_json: JSON.stringify(custom),
        name: input.name ?? filename,
        version: input.version ?? null,
        hardware_ids_json: JSON.stringify(input.hardwareIds),
        release_counter: input.releaseCounter ?? null,
        blob_id: blob?.id ?? null,
        uri: ext?.uri ?? null,
        created_at: existing?.created_at ?? t,
        updated_at: t,
      };
      await store.upsertTarget(row);
      await this.resignTargets(store, namespace, dialect, now);
      return (await store.getTarget(namespace, filename)) as TargetRow;
    });
  }

  async deleteTarget(namespace: string, filename: string): Promise<void> {
    const now = this.clock();
    const blobId = await this.storage.transaction(async (store) => {
      const { dialect, offline } = await this.dialect(store, namespace, true);
      if (offline) throw conflict('targets_offline', 'the targets key is offline: remove the target from targets.json and push it signed');
      const row = await store.getTarget(namespace, filename);
      if (!row) throw notFound('target_not_found', `no target ${filename}`);
      await store.deleteTarget(namespace, filename);
      await this.resignTargets(store, namespace, dialect, now);
      return row.blob_id;
    });
    if (blobId && (await this.storage.store.countBlobReferences(blobId)) === 0) await this.blobs.delete(blobId);
  }

  async getTarget(namespace: string, filename: string): Promise<TargetRow | undefined> {
    return this.storage.store.getTarget(namespace, filename);
  }

  async listTargets(namespace: string, opts: { nameContains?: string; offset?: number; limit?: number }): Promise<{ total: number; rows: TargetRow[] }> {
    return this.storage.store.listTargets(namespace, opts);
  }

  /** Finds an image by name and version (what `uptide updates launch --image NAME@VERSION` names). */
  async findByNameVersion(namespace: string, name: string, version: string): Promise<TargetRow[]> {
    return this.storage.store.findTargetByNameVersion(namespace, name, version);
  }

  /** Where a target's bytes are: a blob id (possibly from an offline-mode upload). */
  async blobFor(namespace: string, filename: string): Promise<{ blobId: string; length: number } | undefined> {
    const t = await this.storage.store.getTarget(namespace, filename);
    if (t?.blob_id) return { blobId: t.blob_id, length: t.length };
    const u = await this.storage.store.getUpload(namespace, filename);
    if (u && (!t || u.sha256 === t.sha256)) return { blobId: u.blob_id, length: u.length };
    return undefined;
  }

  // --- offline targets -----------------------------------------------------------------------

  /** Stores bytes for a target that an offline-signed targets.json will list (garage-sign's uploads). */
  async putUpload(namespace: string, filename: string, body: AsyncIterable<Uint8Array>, maxBytes: number): Promise<BlobInfo> {
    checkTargetFilename(filename);
    await this.dialect(this.storage.store, namespace);
    const blob = await this.blobs.put(body, { maxBytes });
    await this.storage.store.upsertUpload({
      namespace,
      filename,
      length: blob.length,
      sha256: blob.hashes['sha256'] as string,
      hashes_json: JSON.stringify(blob.hashes),
      blob_id: blob.id,
      created_at: this.clock().getTime(),
    });
    return blob;
  }

  /** The current targets.json and its role checksum (x-ats-role-checksum). */
  async targetsWithChecksum(namespace: string): Promise<ServedFile> {
    const row = await this.storage.store.getRoleMetadata(namespace, REPO, '', 'targets');
    if (!row) throw notFound('repository_not_found', `namespace ${namespace} has no Image repository`);
    return { bytes: row.bytes, checksum: row.checksum };
  }

  /**
   * Accepts a client-signed targets.json. `checksum` must be the checksum of
   * the targets.json the client started from (optimistic locking: a
   * concurrent change makes it stale and the push is refused with 412).
   */
  async putSignedTargets(namespace: string, body: Uint8Array, checksum: string | undefined): Promise<{ version: number }> {
    const now = this.clock();
    return this.storage.transaction(async (store) => {
      const { dialect } = await this.dialect(store, namespace, true);
      const current = await store.getRoleMetadata(namespace, REPO, '', 'targets', true);
      if (!current) throw notFound('repository_not_found', 'no targets');
      if (checksum === undefined)
        throw new ApiError(428, 'role_checksum_required', 'send the x-ats-role-checksum header with the checksum of the targets.json you edited');
      if (checksum.toLowerCase() !== current.checksum) {
        throw new ApiError(412, 'role_checksum_mismatch', 'targets.json changed since you pulled it: pull again, re-apply your change and sign again');
      }
      const root = await this.repos.currentRoot(store, namespace, REPO, dialect);
      const md = parseTargets(body, dialect);
      md.verify(root.signed.keys, root.signed.role('targets'), { repository: REPO, role: 'targets' });
      checkStorableVersion(md.signed.version);
      if (md.signed.version <= current.version) throw new RollbackError(`targets version ${md.signed.version} must be greater than ${current.version}`);
      if (md.signed.isExpired(now)) throw new UptaneError('FREEZE', `targets expired at ${md.signed.expires}`);
      if (md.signed.delegations) await this.checkDelegatedFilesStillValid(store, namespace, md.signed.delegations);
      // Keep the target table (listings, downloads, Director assignments) in step with the signed file.
      const t = now.getTime();
      await store.deleteAllTargets(namespace);
      for (const [filename, tf] of md.signed.targets) {
        if (filename.length > 512) throw badRequest('invalid_filename', `target filename of ${filename.length} characters: 512 at most`);
        await store.upsertTarget(await this.rowFromTargetFile(store, namespace, filename, tf, t));
      }
      const bytes = md.toBytes();
      await this.publishTargetsAndSnapshot(store, namespace, dialect, root.signed, bytes, md.signed.version, md.signed.expiresAt, now);
      return { version: md.signed.version };
    });
  }

  private async rowFromTargetFile(store: Store, namespace: string, filename: string, tf: TargetFile, t: number) {
    const custom = tf.custom ?? {};
    const upload = await store.getUpload(namespace, filename);
    const sha256 = (tf.hashes['sha256'] ?? '').toLowerCase();
    return {
      namespace,
      filename,
      length: tf.length,
      sha256,
      hashes_json: JSON.stringify(tf.hashes),
      custom_json: JSON.stringify(custom),
      // Listing columns (255): a signed file may carry longer values, which it keeps.
      name: (typeof custom['name'] === 'string' ? custom['name'] : filename).slice(0, 255),
      version: typeof custom['version'] === 'string' ? custom['version'].slice(0, 255) : null,
      hardware_ids_json: JSON.stringify(tf.hardwareIds ?? []),
      release_counter: tf.releaseCounter ?? null,
      blob_id: upload && upload.sha256 === sha256 && upload.length === tf.length ? upload.blob_id : null,
      uri: tf.uri ?? null,
      created_at: t,
      updated_at: t,
    };
  }

  // --- delegations ------------------------------------------------------------------------

  /**
   * Replaces the delegations of the top-level targets (online targets only):
   * `{"keys": {...}, "roles": [...]}` in the repository's dialect.
   */
  async setDelegations(namespace: string, delegationsJson: unknown): Promise<void> {
    const now = this.clock();
    await this.storage.transaction(async (store) => {
      const { dialect, offline } = await this.dialect(store, namespace, true);
      if (offline) throw conflict('targets_offline', 'the targets key is offline: add the delegation to targets.json and push it signed');
      let delegations: Delegations;
      try {
        delegations = Delegations.fromJSON(parseJson(JSON.stringify(delegationsJson)), 'delegations', dialect);
      } catch (err) {
        if (err instanceof UptaneError) throw badRequest('invalid_delegations', err.message);
        throw err;
      }
      await this.resignTargets(store, namespace, dialect, now, delegations);
    });
  }

  /**
   * Accepts a delegated role's signed file (§5.3.1: the repository checks the
   * delegation chain): the role must be delegated by the top-level targets or
   * by another delegated role we hold, and signed by a threshold of its keys.
   */
  async putDelegatedRole(namespace: string, role: string, body: Uint8Array): Promise<{ version: number }> {
    const now = this.clock();
    return this.storage.transaction(async (store) => {
      const { dialect } = await this.dialect(store, namespace, true);
      if (['root', 'targets', 'snapshot', 'timestamp'].includes(role)) throw badRequest('invalid_role', `${role} is not a delegated role`);
      const md = parseTargets(body, dialect);
      const delegator = await this.findDelegator(store, namespace, dialect, role);
      if (!delegator) throw notFound('delegation_not_found', `no targets file delegates to ${role}: add the delegation first`);
      const keys = delegator.roleKeys(role);
      if (!keys) throw notFound('delegation_not_found', `no targets file delegates to ${role}`);
      md.verify(delegator.keys, keys, { repository: REPO, role });
      checkStorableVersion(md.signed.version);
      const existing = await store.getRoleMetadata(namespace, REPO, '', role, true);
      if (existing && md.signed.version <= existing.version)
        throw new RollbackError(`${role} version ${md.signed.version} must be greater than ${existing.version}`);
      if (md.signed.isExpired(now)) throw new UptaneError('FREEZE', `${role} expired at ${md.signed.expires}`);
      const bytes = md.toBytes();
      await store.putRoleMetadata({
        namespace,
        repo: REPO,
        owner: '',
        role,
        version: md.signed.version,
        bytes,
        checksum: sha256Hex(bytes),
        expires_at: md.signed.expiresAt,
        outdated: 0,
        updated_at: now.getTime(),
      });
      await this.resignSnapshot(store, namespace, dialect, now);
      return { version: md.signed.version };
    });
  }

  /** The delegations object that delegates to `role` (top-level targets first, then delegated files). */
  private async findDelegator(store: Store, namespace: string, dialect: Dialect, role: string): Promise<Delegations | undefined> {
    const rows = await store.listRoleMetadata(namespace, REPO, '');
    const byRole = new Map(rows.map((r) => [r.role, r]));
    const order = ['targets', ...rows.map((r) => r.role).filter((r) => !['targets', 'snapshot', 'timestamp', role].includes(r))];
    for (const name of order) {
      const row = byRole.get(name);
      if (!row) continue;
      const d = parseTargets(row.bytes, dialect).signed.delegations;
      if (d?.roleKeys(role)) return d;
    }
    return undefined;
  }

  private async checkDelegatedFilesStillValid(_store: Store, _namespace: string, _delegations: Delegations): Promise<void> {
    // Delegated files stay listed in snapshot; a client checks each against its delegator when it needs it.
  }

  async delegatedRole(namespace: string, role: string): Promise<ServedFile | undefined> {
    if (['root', 'targets', 'snapshot', 'timestamp'].includes(role)) return undefined;
    const row = await this.storage.store.getRoleMetadata(namespace, REPO, '', role);
    return row ? { bytes: row.bytes, checksum: row.checksum } : undefined;
  }

  // --- root and keys ---------------------------------------------------------------------------

  /** Accepts a new root from an offline key ceremony; switches targets to offline mode when the server no longer holds the targets keys. */
  async pushRoot(namespace: string, body: Uint8Array): Promise<{ version: number; targetsOffline: boolean }> {
    const now = this.clock();
    return this.storage.transaction(async (store) => {
      const { dialect } = await this.dialect(store, namespace, true);
      const root = await this.repos.acceptRoot(store, namespace, REPO, dialect, body, ['snapshot', 'timestamp'], now);
      const online = await this.repos.canSign(store, namespace, REPO, 'targets', root.signed);
      await store.setTargetsOffline(namespace, REPO, !online);
      if (online) await this.resignTargets(store, namespace, dialect, now);
      else await this.resignSnapshot(store, namespace, dialect, now);
      return { version: root.signed.version, targetsOffline: !online };
    });
  }

  async isTargetsOffline(namespace: string): Promise<boolean> {
    return (await this.dialect(this.storage.store, namespace)).offline;
  }

  // --- signing ----------------------------------------------------------------------------------

  /** Rebuilds targets.json from the target table (keeping delegations), then snapshot and timestamp. */
  private async resignTargets(store: Store, namespace: string, dialect: Dialect, now: Date, delegations?: Delegations): Promise<void> {
    const root = await this.repos.currentRoot(store, namespace, REPO, dialect);
    const current = await store.getRoleMetadata(namespace, REPO, '', 'targets', true);
    const previous = current ? parseTargets(current.bytes, dialect).signed : undefined;
    const rows = await store.allTargets(namespace);
    const targets = new Map<string, TargetFile>();
    for (const r of rows) {
      targets.set(
        r.filename,
        new TargetFile(r.filename, r.length, JSON.parse(r.hashes_json) as Record<string, string>, JSON.parse(r.custom_json) as JsonObject),
      );
    }
    const next = new Targets({
      version: (current?.version ?? 0) + 1,
      expires: this.repos.expires(REPO, 'targets', now),
      targets,
      delegations: delegations ?? previous?.delegations,
      custom: previous?.custom,
      unrecognized: previous?.unrecognized,
    });
    const md = await this.repos.sign(store, namespace, REPO, 'targets', next, root.signed, dialect);
    await this.publishTargetsAndSnapshot(store, namespace, dialect, root.signed, md.toBytes(), next.version, next.expiresAt, now);
  }

  private async publishTargetsAndSnapshot(
    store: Store,
    namespace: string,
    dialect: Dialect,
    _root: Root,
    targetsBytes: Uint8Array,
    version: number,
    expiresAt: number,
    now: Date,
  ): Promise<void> {
    await store.putRoleMetadata({
      namespace,
      repo: REPO,
      owner: '',
      role: 'targets',
      version,
      bytes: targetsBytes,
      checksum: sha256Hex(targetsBytes),
      expires_at: expiresAt,
      outdated: 0,
      updated_at: now.getTime(),
    });
    await this.resignSnapshot(store, namespace, dialect, now);
  }

  /** New snapshot (listing targets and every delegated role with version, length and hashes) and timestamp. */
  private async resignSnapshot(store: Store, namespace: string, dialect: Dialect, now: Date): Promise<void> {
    const root = await this.repos.currentRoot(store, namespace, REPO, dialect);
    const rows = await store.listRoleMetadata(namespace, REPO, '');
    const meta = new Map<string, MetaFile>();
    let previousSnapshot: number | undefined;
    let previousTimestamp: number | undefined;
    for (const r of rows) {
      if (r.role === 'snapshot') previousSnapshot = r.version;
      else if (r.role === 'timestamp') previousTimestamp = r.version;
      else meta.set(`${r.role}.json`, MetaFile.describe(r.version, r.bytes));
    }
    const snapshot = new Snapshot({ version: (previousSnapshot ?? 0) + 1, expires: this.repos.expires(REPO, 'snapshot', now), meta });
    const sMd = await this.repos.sign(store, namespace, REPO, 'snapshot', snapshot, root.signed, dialect);
    const sBytes = sMd.toBytes();
    const t = now.getTime();
    await store.putRoleMetadata({
      namespace,
      repo: REPO,
      owner: '',
      role: 'snapshot',
      version: snapshot.version,
      bytes: sBytes,
      checksum: sha256Hex(sBytes),
      expires_at: snapshot.expiresAt,
      outdated: 0,
      updated_at: t,
    });
    const timestamp = new Timestamp({
      version: (previousTimestamp ?? 0) + 1,
      expires: this.repos.expires(REPO, 'timestamp', now),
      snapshot: MetaFile.describe(snapshot.version, sBytes),
    });
    const tMd = await this.repos.sign(store, namespace, REPO, 'timestamp', timestamp, root.signed, dialect);
    const tBytes = tMd.toBytes();
    await store.putRoleMetadata({
      namespace,
      repo: REPO,
      owner: '',
      role: 'timestamp',
      version: timestamp.version,
      bytes: tBytes,
      checksum: sha256Hex(tBytes),
      expires_at: timestamp.expiresAt,
      outdated: 0,
      updated_at: t,
    });
  }

  /**
   * Re-signs whatever is close to expiry: root (if its key is online),
   * targets (if online), snapshot and timestamp. Safe to call concurrently
   * and from several instances (it locks the repository row and re-checks).
   */
  async refresh(namespace: string): Promise<void> {
    const now = this.clock();
    await this.storage.transaction(async (store) => {
      const { dialect, offline } = await this.dialect(store, namespace, true);
      const root = await store.latestRoot(namespace, REPO);
      if (root && this.repos.needsRefresh(REPO, 'root', root.expires_at, now)) {
        await this.repos.resignRoot(store, namespace, REPO, dialect, now);
      }
      const targets = await store.getRoleMetadata(namespace, REPO, '', 'targets');
      if (!offline && targets && this.repos.needsRefresh(REPO, 'targets', targets.expires_at, now)) {
        await this.resignTargets(store, namespace, dialect, now);
        return;
      }
      const snapshot = await store.getRoleMetadata(namespace, REPO, '', 'snapshot');
      const timestamp = await store.getRoleMetadata(namespace, REPO, '', 'timestamp');
      if (
        !snapshot ||
        !timestamp ||
        this.repos.needsRefresh(REPO, 'snapshot', snapshot.expires_at, now) ||
        this.repos.needsRefresh(REPO, 'timestamp', timestamp.expires_at, now)
      ) {
        await this.resignSnapshot(store, namespace, dialect, now);
      }
    });
  }

  /**
   * A target as the Image repository lists it: the top-level targets first,
   * else any delegated role's file (a supplier's image), in the shape of a
   * target row. The device resolves delegations itself; this is the
   * Director's sanity check that what it assigns exists, with its length,
   * hashes, hardware ids and release counter.
   */
  async lookupTarget(store: Store, namespace: string, filename: string): Promise<TargetRow | undefined> {
    const row = await store.getTarget(namespace, filename);
    if (row) return row;
    const repo = await store.getRepository(namespace, REPO);
    if (!repo) return undefined;
    for (const r of await store.listRoleMetadata(namespace, REPO, '')) {
      if (['targets', 'snapshot', 'timestamp'].includes(r.role)) continue;
      const tf = parseTargets(r.bytes, repo.dialect as Dialect).signed.find(filename);
      if (!tf) continue;
      const upload = await store.getUpload(namespace, filename);
      const built = await this.rowFromTargetFile(store, namespace, filename, tf, r.updated_at);
      return { ...built, blob_id: upload && upload.sha256 === built.sha256 ? upload.blob_id : null };
    }
    return undefined;
  }

  /** Verifies that a target's metadata exists (for assignments): the Image repository must list what the Director assigns. */
  async targetForAssignment(namespace: string, filename: string): Promise<TargetRow> {
    const t = await this.lookupTarget(this.storage.store, namespace, filename);
    if (!t) throw notFound('target_not_found', `the Image repository does not list ${filename}: upload it first`);
    return t;
  }
}

export { Metadata };
