/**
 * The storage layer: small repositories per concept over one Kysely executor.
 * No logic lives here: services decide, repositories read and write rows.
 *
 * `Storage.transaction` runs a function with a Store bound to one transaction;
 * every multi-row change of a service goes through it. `lock` options take a
 * row lock on PostgreSQL (SELECT … FOR UPDATE) so that concurrent instances
 * serialize on the row; SQLite transactions are serialized already.
 */
import { sql, type Expression, type Insertable, type Kysely, type Selectable, type SqlBool, type Transaction, type Updateable } from 'kysely';
import type { Database, SqlDialect } from './database.js';
import type { MetadataCache } from './metadata-cache.js';
import type {
  AssignmentTable,
  DB,
  DeviceCredentialTable,
  DeviceTable,
  EcuTable,
  EventTable,
  KeyTable,
  RoleMetadataTable,
  TargetTable,
  UploadTable,
  UpdateTable,
  GroupTable,
  ApiTokenTable,
  InstallationReportTable,
  SecurityEventTable,
  RepositoryTable,
} from './schema.js';

type Executor = Kysely<DB> | Transaction<DB>;

export type DeviceRow = Selectable<DeviceTable>;
export type EcuRow = Selectable<EcuTable>;
export type KeyRow = Selectable<KeyTable>;
export type RoleMetadataRow = Selectable<RoleMetadataTable>;
export type TargetRow = Selectable<TargetTable>;
export type UploadRow = Selectable<UploadTable>;
export type AssignmentRow = Selectable<AssignmentTable>;
export type UpdateRow = Selectable<UpdateTable>;
export type GroupRow = Selectable<GroupTable>;
export type EventRow = Selectable<EventTable>;
export type CredentialRow = Selectable<DeviceCredentialTable>;
export type TokenRow = Selectable<ApiTokenTable>;
export type InstallationReportRow = Selectable<InstallationReportTable>;
export type SecurityEventRow = Selectable<SecurityEventTable>;
export type RepositoryRow = Selectable<RepositoryTable>;

/** What a version report sets on its ECU's row. */
export interface EcuReportUpdate {
  readonly serial: string;
  readonly report_counter: number | null;
  readonly last_nonce: string | null;
  readonly last_report_sha256: string | null;
  readonly installed_filename: string;
  readonly installed_length: number;
  readonly installed_hashes_json: string;
  readonly installed_at: number;
}

/**
 * A version report to record only if its ECU's row still holds what the Director planned against: the key,
 * the counter, the nonce and the digest it read from its cache. `write` is false for an ECU whose report was
 * a resend (checked, not written).
 */
export interface EcuReportSwap extends EcuReportUpdate {
  readonly device_id: string;
  readonly key_id: string;
  readonly expected_counter: number | null;
  readonly expected_nonce: string | null;
  readonly expected_sha256: string | null;
  readonly write: boolean;
}

/** Rows come back with Buffers for bytes; normalise to Uint8Array views without copying. */
function bytesOf<T extends { bytes: Uint8Array }>(row: T): T {
  return row;
}

/** The channel on which instances tell each other that cached metadata changed. */
export const INVALIDATE_CHANNEL = 'uptide_invalidate';

/** The columns of `Store.swapEcuReports`, in parameter order ($2 on; $1 is the namespace), with their types. */
const SWAP_COLUMNS: ReadonlyArray<readonly [keyof EcuReportSwap, string]> = [
  ['device_id', 'varchar'],
  ['serial', 'varchar'],
  ['key_id', 'varchar'],
  ['expected_counter', 'bigint'],
  ['expected_nonce', 'varchar'],
  ['expected_sha256', 'varchar'],
  ['write', 'boolean'],
  ['report_counter', 'bigint'],
  ['last_nonce', 'varchar'],
  ['last_report_sha256', 'varchar'],
  ['installed_filename', 'varchar'],
  ['installed_length', 'bigint'],
  ['installed_hashes_json', 'text'],
  ['installed_at', 'bigint'],
];

/**
 * For each device: lock its ECU rows (in the order every other path locks them), then write the reports
 * only if every ECU of the device is listed and still holds the expected key, counter, nonce and digest, and
 * the device has no active assignment: all of a device's rows or none. Answers the devices written.
 * PostgreSQL runs a data-modifying WITH to completion whether or not the main query reads it.
 */
const SWAP_SQL = `
  with v(device_id, serial, key_id, exp_rc, exp_nonce, exp_digest, w, rc, nonce, digest, fname, flen, fhashes, fat) as (
    select * from unnest(${SWAP_COLUMNS.map(([, type], i) => `$${i + 2}::${type}[]`).join(', ')})
  ),
  locked as materialized (
    select e.device_id, e.serial, e.key_id, e.report_counter, e.last_nonce, e.last_report_sha256 from ecus e
    where e.namespace = $1 and e.device_id in (select device_id from v)
    order by e.device_id, e.is_primary desc, e.serial
    for update
  ),
  ok as materialized (
    select v.device_id from v left join locked l on l.device_id = v.device_id and l.serial = v.serial
    group by v.device_id
    having bool_and(l.serial is not null and l.key_id = v.key_id and l.report_counter is not distinct from v.exp_rc
        and l.last_nonce is not distinct from v.exp_nonce and l.last_report_sha256 is not distinct from v.exp_digest)
      and count(*) = (select count(*) from locked l2 where l2.device_id = v.device_id)
      and not exists (select 1 from assignments a where a.namespace = $1 and a.device_id = v.device_id
        and a.status in ('assigned', 'in_flight'))
  ),
  upd as (
    update ecus as e set report_counter = v.rc, last_nonce = v.nonce, last_report_sha256 = v.digest, installed_filename = v.fname,
      installed_length = v.flen, installed_hashes_json = v.fhashes, installed_at = v.fat
    from v where e.namespace = $1 and e.device_id = v.device_id and e.serial = v.serial and v.w
      and v.device_id in (select device_id from ok)
    returning e.device_id
  )
  select device_id from ok`;

export class Store {
  constructor(
    readonly db: Executor,
    readonly dialect: SqlDialect,
    readonly cache?: MetadataCache,
    /** Outside transactions on PostgreSQL: named prepared statements, for the hottest single statements. */
    private readonly prepared?: Database['preparedQuery'],
  ) {}

  /**
   * Evicts cached metadata of an owner here and, on PostgreSQL, in every other
   * instance: the NOTIFY is part of the current transaction, so it is
   * delivered when (and only if) the change commits.
   */
  private async invalidate(namespace: string, repo: string, owner: string): Promise<void> {
    this.cache?.invalidate(namespace, repo, owner);
    if (this.dialect === 'postgres') {
      await sql`select pg_notify(${INVALIDATE_CHANNEL}, ${`${namespace}/${repo}/${owner}`})`.execute(this.db);
    }
  }

  /** Row lock helper: FOR UPDATE on PostgreSQL, nothing on SQLite (whose transactions are serialized). */
  private forUpdate<Q extends { forUpdate(): Q }>(q: Q, lock: boolean | undefined): Q {
    return lock && this.dialect === 'postgres' ? q.forUpdate() : q;
  }

  /** Case-sensitive substring match, without LIKE wildcards (portable: instr on SQLite, strpos on PostgreSQL). */
  private contains(column: string, needle: string): Expression<SqlBool> {
    const fn = this.dialect === 'postgres' ? 'strpos' : 'instr';
    return sql<SqlBool>`${sql.raw(fn)}(${sql.ref(column)}, ${needle}) > 0`;
  }

  // --- namespaces, settings, tokens ---------------------------------------------------

  async createNamespace(name: string, now: number): Promise<boolean> {
    const r = await this.db
      .insertInto('namespaces')
      .values({ name, created_at: now })
      .onConflict((oc) => oc.column('name').doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  async namespaceExists(name: string): Promise<boolean> {
    return (await this.db.selectFrom('namespaces').select('name').where('name', '=', name).executeTakeFirst()) !== undefined;
  }

  async listNamespaces(): Promise<Array<{ name: string; created_at: number }>> {
    return this.db.selectFrom('namespaces').selectAll().orderBy('name').execute();
  }

  async getSetting(key: string): Promise<string | undefined> {
    return (await this.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst())?.value;
  }

  /** Inserts a setting unless present; returns the value that is stored afterwards (first writer wins). */
  async initSetting(key: string, value: string): Promise<string> {
    await this.db
      .insertInto('settings')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
    return (await this.getSetting(key)) as string;
  }

  async putSetting(key: string, value: string): Promise<void> {
    await this.db
      .insertInto('settings')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute();
  }

  async listSettings(prefix: string): Promise<Array<{ key: string; value: string }>> {
    const rows = await this.db.selectFrom('settings').selectAll().execute();
    return rows.filter((r) => r.key.startsWith(prefix));
  }

  async insertToken(row: Insertable<ApiTokenTable>): Promise<void> {
    await this.db.insertInto('api_tokens').values(row).execute();
  }

  async findTokenByHash(hash: string): Promise<TokenRow | undefined> {
    return this.db.selectFrom('api_tokens').selectAll().where('token_hash', '=', hash).executeTakeFirst();
  }

  async listTokens(namespace: string): Promise<TokenRow[]> {
    return this.db.selectFrom('api_tokens').selectAll().where('namespace', '=', namespace).orderBy('created_at').execute();
  }

  async revokeToken(namespace: string, id: string, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('api_tokens')
      .set({ revoked_at: now })
      .where('namespace', '=', namespace)
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async touchToken(id: string, now: number): Promise<void> {
    await this.db.updateTable('api_tokens').set({ last_used_at: now }).where('id', '=', id).execute();
  }

  // --- repositories, keys, roots, role metadata ---------------------------------------------

  async createRepository(row: Insertable<RepositoryTable>): Promise<void> {
    await this.db.insertInto('repositories').values(row).execute();
  }

  async getRepository(namespace: string, repo: string, lock?: boolean): Promise<RepositoryRow | undefined> {
    const q = this.db.selectFrom('repositories').selectAll().where('namespace', '=', namespace).where('repo', '=', repo);
    return this.forUpdate(q, lock).executeTakeFirst();
  }

  async setTargetsOffline(namespace: string, repo: string, offline: boolean): Promise<void> {
    await this.db
      .updateTable('repositories')
      .set({ targets_offline: offline ? 1 : 0 })
      .where('namespace', '=', namespace)
      .where('repo', '=', repo)
      .execute();
  }

  async insertKey(row: Insertable<KeyTable>): Promise<void> {
    await this.db.insertInto('keys').values(row).execute();
  }

  async listKeys(namespace: string, repo: string, role?: string): Promise<KeyRow[]> {
    let q = this.db.selectFrom('keys').selectAll().where('namespace', '=', namespace).where('repo', '=', repo);
    if (role !== undefined) q = q.where('role', '=', role);
    return q.orderBy('created_at').execute();
  }

  async deletePrivateKey(namespace: string, repo: string, keyId: string): Promise<number> {
    const r = await this.db
      .updateTable('keys')
      .set({ private_sealed: null })
      .where('namespace', '=', namespace)
      .where('repo', '=', repo)
      .where('key_id', '=', keyId)
      .where('private_sealed', 'is not', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  async insertRoot(namespace: string, repo: string, version: number, bytes: Uint8Array, expiresAt: number, now: number): Promise<void> {
    await this.db.insertInto('roots').values({ namespace, repo, version, bytes, expires_at: expiresAt, created_at: now }).execute();
  }

  async latestRoot(namespace: string, repo: string): Promise<{ version: number; bytes: Uint8Array; expires_at: number } | undefined> {
    const r = await this.db
      .selectFrom('roots')
      .select(['version', 'bytes', 'expires_at'])
      .where('namespace', '=', namespace)
      .where('repo', '=', repo)
      .orderBy('version', 'desc')
      .limit(1)
      .executeTakeFirst();
    return r ? bytesOf(r) : undefined;
  }

  async getRoot(namespace: string, repo: string, version: number): Promise<Uint8Array | undefined> {
    const r = await this.db
      .selectFrom('roots')
      .select('bytes')
      .where('namespace', '=', namespace)
      .where('repo', '=', repo)
      .where('version', '=', version)
      .executeTakeFirst();
    return r?.bytes;
  }

  async getRoleMetadata(namespace: string, repo: string, owner: string, role: string, lock?: boolean): Promise<RoleMetadataRow | undefined> {
    const q = this.db
      .selectFrom('role_metadata')
      .selectAll()
      .where('namespace', '=', namespace)
      .where('repo', '=', repo)
      .where('owner', '=', owner)
      .where('role', '=', role);
    return this.forUpdate(q, lock).executeTakeFirst();
  }

  /** Marks every owner's metadata of a repository outdated (e.g. after a Director root rotation). */
  async markRepositoryOutdated(namespace: string, repo: string): Promise<void> {
    await this.invalidate(namespace, repo, '*');
    await this.db.updateTable('role_metadata').set({ outdated: 1 }).where('namespace', '=', namespace).where('repo', '=', repo).execute();
  }

  /** The cached row if fresh, else the database row (then cached). For check-ins: no query when unchanged. */
  async getRoleMetadataCached(namespace: string, repo: string, owner: string, role: string, now: number): Promise<RoleMetadataRow | undefined> {
    const hit = this.cache?.get(namespace, repo, owner, role, now);
    if (hit) return hit;
    const row = await this.getRoleMetadata(namespace, repo, owner, role);
    if (row && this.cache) this.cache.set(row, now);
    return row;
  }

  async listRoleMetadata(namespace: string, repo: string, owner: string): Promise<RoleMetadataRow[]> {
    return this.db.selectFrom('role_metadata').selectAll().where('namespace', '=', namespace).where('repo', '=', repo).where('owner', '=', owner).execute();
  }

  async putRoleMetadata(row: Insertable<RoleMetadataTable>): Promise<void> {
    await this.invalidate(row.namespace, row.repo, row.owner);
    await this.db
      .insertInto('role_metadata')
      .values(row)
      .onConflict((oc) =>
        oc.columns(['namespace', 'repo', 'owner', 'role']).doUpdateSet({
          version: row.version,
          bytes: row.bytes,
          checksum: row.checksum,
          expires_at: row.expires_at,
          outdated: row.outdated ?? 0,
          updated_at: row.updated_at,
        }),
      )
      .execute();
  }

  async markOutdated(namespace: string, repo: string, owner: string): Promise<void> {
    await this.invalidate(namespace, repo, owner);
    await this.db
      .updateTable('role_metadata')
      .set({ outdated: 1 })
      .where('namespace', '=', namespace)
      .where('repo', '=', repo)
      .where('owner', '=', owner)
      .execute();
  }

  /** Image-repository roles (owner '') whose expiry is before `before`, across namespaces. */
  async listExpiringRepoMetadata(before: number): Promise<Array<{ namespace: string; repo: string; role: string }>> {
    return this.db.selectFrom('role_metadata').select(['namespace', 'repo', 'role']).where('owner', '=', '').where('expires_at', '<', before).execute();
  }

  async listExpiringRoots(before: number): Promise<Array<{ namespace: string; repo: string; version: number }>> {
    // Only the latest root of each repository matters.
    const rows = await this.db.selectFrom('roots').select(['namespace', 'repo', 'version', 'expires_at']).orderBy('version', 'desc').execute();
    const seen = new Set<string>();
    const out: Array<{ namespace: string; repo: string; version: number }> = [];
    for (const r of rows) {
      const k = `${r.namespace}\u0000${r.repo}`;
      if (seen.has(k)) continue;
      seen.add(k);
      if (r.expires_at < before) out.push({ namespace: r.namespace, repo: r.repo, version: r.version });
    }
    return out;
  }

  // --- image repository targets ---------------------------------------------------------------

  async upsertTarget(row: Insertable<TargetTable>): Promise<void> {
    const { namespace: _ns, filename: _fn, created_at: _c, ...rest } = row;
    await this.db
      .insertInto('targets')
      .values(row)
      .onConflict((oc) => oc.columns(['namespace', 'filename']).doUpdateSet(rest as Updateable<TargetTable>))
      .execute();
  }

  async getTarget(namespace: string, filename: string): Promise<TargetRow | undefined> {
    return this.db.selectFrom('targets').selectAll().where('namespace', '=', namespace).where('filename', '=', filename).executeTakeFirst();
  }

  async findTargetByNameVersion(namespace: string, name: string, version: string): Promise<TargetRow[]> {
    return this.db.selectFrom('targets').selectAll().where('namespace', '=', namespace).where('name', '=', name).where('version', '=', version).execute();
  }

  async listTargets(namespace: string, opts: { nameContains?: string; offset?: number; limit?: number } = {}): Promise<{ total: number; rows: TargetRow[] }> {
    let q = this.db.selectFrom('targets').where('namespace', '=', namespace);
    if (opts.nameContains) q = q.where(this.contains('filename', opts.nameContains));
    const total = Number((await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    let rq = q.selectAll().orderBy('created_at').orderBy('filename');
    if (opts.limit !== undefined) rq = rq.limit(opts.limit).offset(opts.offset ?? 0);
    return { total, rows: await rq.execute() };
  }

  async allTargets(namespace: string): Promise<TargetRow[]> {
    return this.db.selectFrom('targets').selectAll().where('namespace', '=', namespace).orderBy('filename').execute();
  }

  async deleteTarget(namespace: string, filename: string): Promise<boolean> {
    const r = await this.db.deleteFrom('targets').where('namespace', '=', namespace).where('filename', '=', filename).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async deleteAllTargets(namespace: string): Promise<void> {
    await this.db.deleteFrom('targets').where('namespace', '=', namespace).execute();
  }

  async countBlobReferences(blobId: string): Promise<number> {
    const a = await this.db
      .selectFrom('targets')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('blob_id', '=', blobId)
      .executeTakeFirstOrThrow();
    const b = await this.db
      .selectFrom('uploads')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('blob_id', '=', blobId)
      .executeTakeFirstOrThrow();
    return Number(a.n) + Number(b.n);
  }

  async upsertUpload(row: Insertable<UploadTable>): Promise<void> {
    const { namespace: _ns, filename: _fn, ...rest } = row;
    await this.db
      .insertInto('uploads')
      .values(row)
      .onConflict((oc) => oc.columns(['namespace', 'filename']).doUpdateSet(rest))
      .execute();
  }

  async getUpload(namespace: string, filename: string): Promise<UploadRow | undefined> {
    return this.db.selectFrom('uploads').selectAll().where('namespace', '=', namespace).where('filename', '=', filename).executeTakeFirst();
  }

  // --- devices, credentials, ECUs ---------------------------------------------------------------

  async insertDevice(row: Insertable<DeviceTable>): Promise<boolean> {
    const r = await this.db
      .insertInto('devices')
      .values(row)
      .onConflict((oc) => oc.columns(['namespace', 'id']).doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  async getDevice(namespace: string, id: string, lock?: boolean): Promise<DeviceRow | undefined> {
    const q = this.db.selectFrom('devices').selectAll().where('namespace', '=', namespace).where('id', '=', id);
    return this.forUpdate(q, lock).executeTakeFirst();
  }

  async listDevices(
    namespace: string,
    opts: { nameContains?: string; groupId?: string; hardwareId?: string; offset: number; limit: number },
  ): Promise<{ total: number; rows: DeviceRow[] }> {
    let q = this.db.selectFrom('devices').where('devices.namespace', '=', namespace);
    if (opts.nameContains) {
      const needle = opts.nameContains;
      q = q.where((eb) => eb.or([this.contains('devices.id', needle), this.contains('devices.name', needle)]));
    }
    if (opts.groupId) {
      const gid = opts.groupId;
      q = q.where('devices.id', 'in', (eb) =>
        eb.selectFrom('group_members').select('device_id').where('group_id', '=', gid).where('namespace', '=', namespace),
      );
    }
    if (opts.hardwareId) {
      const hw = opts.hardwareId;
      q = q.where('devices.id', 'in', (eb) => eb.selectFrom('ecus').select('device_id').where('namespace', '=', namespace).where('hardware_id', '=', hw));
    }
    const total = Number((await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    const rows = await q.selectAll('devices').orderBy('devices.created_at').orderBy('devices.id').limit(opts.limit).offset(opts.offset).execute();
    return { total, rows };
  }

  async updateDevice(namespace: string, id: string, set: Updateable<DeviceTable>): Promise<void> {
    await this.db.updateTable('devices').set(set).where('namespace', '=', namespace).where('id', '=', id).execute();
  }

  /** Sets last_seen_at (and activated_at the first time) unless it was set after `unlessAfter`. */
  async markSeen(namespace: string, id: string, now: number, unlessAfter: number): Promise<void> {
    await this.db
      .updateTable('devices')
      .set((eb) => ({ last_seen_at: now, activated_at: eb.fn.coalesce('activated_at', eb.val(now)) }))
      .where('namespace', '=', namespace)
      .where('id', '=', id)
      .where((eb) => eb.or([eb('last_seen_at', 'is', null), eb('last_seen_at', '<', unlessAfter)]))
      .execute();
  }

  async bumpDirectorGeneration(namespace: string, id: string): Promise<void> {
    await this.db
      .updateTable('devices')
      .set((eb) => ({ director_generation: eb('director_generation', '+', 1) }))
      .where('namespace', '=', namespace)
      .where('id', '=', id)
      .execute();
  }

  async deleteDevice(namespace: string, id: string, now: number): Promise<void> {
    for (const table of [
      'ecus',
      'assignments',
      'events',
      'installation_reports',
      'security_events',
      'device_reports',
      'group_members',
      'ecu_replacements',
    ] as const) {
      await this.db.deleteFrom(table).where('namespace', '=', namespace).where('device_id', '=', id).execute();
    }
    await this.db.deleteFrom('role_metadata').where('namespace', '=', namespace).where('repo', '=', 'director').where('owner', '=', id).execute();
    await this.db
      .updateTable('device_credentials')
      .set({ revoked_at: now })
      .where('namespace', '=', namespace)
      .where('device_id', '=', id)
      .where('revoked_at', 'is', null)
      .execute();
    await this.db.deleteFrom('devices').where('namespace', '=', namespace).where('id', '=', id).execute();
  }

  async insertCredential(row: Insertable<DeviceCredentialTable>): Promise<void> {
    await this.db.insertInto('device_credentials').values(row).execute();
  }

  async getCredential(namespace: string, serial: string): Promise<CredentialRow | undefined> {
    return this.db.selectFrom('device_credentials').selectAll().where('namespace', '=', namespace).where('serial', '=', serial).executeTakeFirst();
  }

  async listCredentials(namespace: string, deviceId: string): Promise<CredentialRow[]> {
    return this.db
      .selectFrom('device_credentials')
      .selectAll()
      .where('namespace', '=', namespace)
      .where('device_id', '=', deviceId)
      .orderBy('created_at')
      .execute();
  }

  async listCredentialsByKind(namespace: string, kind: string): Promise<CredentialRow[]> {
    return this.db.selectFrom('device_credentials').selectAll().where('namespace', '=', namespace).where('kind', '=', kind).orderBy('created_at').execute();
  }

  async revokeCredential(namespace: string, serial: string, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('device_credentials')
      .set({ revoked_at: now })
      .where('namespace', '=', namespace)
      .where('serial', '=', serial)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async listEcus(namespace: string, deviceId: string): Promise<EcuRow[]> {
    return this.db
      .selectFrom('ecus')
      .selectAll()
      .where('namespace', '=', namespace)
      .where('device_id', '=', deviceId)
      .orderBy('is_primary', 'desc')
      .orderBy('serial')
      .execute();
  }

  async listEcusForDevices(namespace: string, deviceIds: readonly string[]): Promise<EcuRow[]> {
    if (deviceIds.length === 0) return [];
    return this.db.selectFrom('ecus').selectAll().where('namespace', '=', namespace).where('device_id', 'in', deviceIds).execute();
  }

  /**
   * A device's ECUs, locked until the transaction ends (PostgreSQL; SQLite transactions are serialized
   * already), and whether the device has an active assignment — one statement for a manifest's hot path.
   */
  async lockEcus(namespace: string, deviceId: string): Promise<{ ecus: EcuRow[]; hasActiveAssignments: boolean }> {
    const q = this.db
      .selectFrom('ecus')
      .selectAll('ecus')
      .select((eb) =>
        eb
          .exists(
            eb
              .selectFrom('assignments')
              .select('assignments.id')
              .where('assignments.namespace', '=', namespace)
              .where('assignments.device_id', '=', deviceId)
              .where('assignments.status', 'in', ['assigned', 'in_flight']),
          )
          .as('has_active'),
      )
      .where('ecus.namespace', '=', namespace)
      .where('ecus.device_id', '=', deviceId)
      .orderBy('ecus.is_primary', 'desc')
      .orderBy('ecus.serial');
    const rows = await this.forUpdate(q, true).execute();
    // SQLite answers 0/1, PostgreSQL a boolean.
    const hasActiveAssignments = rows.some((r) => Boolean(r.has_active));
    return { ecus: rows.map(({ has_active: _h, ...ecu }) => ecu), hasActiveAssignments };
  }

  /**
   * The ECUs of several devices of a namespace, locked in one statement (ordered, so two batches that share
   * a device cannot deadlock), with whether each device has an active assignment. Devices without ECUs are absent.
   */
  async lockEcusOfDevices(namespace: string, deviceIds: readonly string[]): Promise<Map<string, { ecus: EcuRow[]; hasActiveAssignments: boolean }>> {
    const out = new Map<string, { ecus: EcuRow[]; hasActiveAssignments: boolean }>();
    if (deviceIds.length === 0) return out;
    if (deviceIds.length === 1) {
      const one = await this.lockEcus(namespace, deviceIds[0] as string);
      if (one.ecus.length > 0) out.set(deviceIds[0] as string, one);
      return out;
    }
    const q = this.db
      .selectFrom('ecus')
      .selectAll('ecus')
      .select((eb) =>
        eb
          .exists(
            eb
              .selectFrom('assignments')
              .select('assignments.id')
              .whereRef('assignments.namespace', '=', 'ecus.namespace')
              .whereRef('assignments.device_id', '=', 'ecus.device_id')
              .where('assignments.status', 'in', ['assigned', 'in_flight']),
          )
          .as('has_active'),
      )
      .where('ecus.namespace', '=', namespace)
      .where('ecus.device_id', 'in', deviceIds)
      .orderBy('ecus.device_id')
      .orderBy('ecus.is_primary', 'desc')
      .orderBy('ecus.serial');
    for (const { has_active, ...ecu } of await this.forUpdate(q, true).execute()) {
      let entry = out.get(ecu.device_id);
      if (!entry) out.set(ecu.device_id, (entry = { ecus: [], hasActiveAssignments: false }));
      entry.ecus.push(ecu);
      // SQLite answers 0/1, PostgreSQL a boolean.
      if (has_active) entry.hasActiveAssignments = true;
    }
    return out;
  }

  /** What manifests report for the ECUs of several devices of a namespace, in one statement on PostgreSQL. */
  async updateEcuReportsOfDevices(namespace: string, rows: ReadonlyArray<EcuReportUpdate & { device_id: string }>): Promise<void> {
    if (rows.length === 0) return;
    if (this.dialect !== 'postgres' || rows.length === 1) {
      for (const { device_id, serial, ...set } of rows) await this.updateEcu(namespace, device_id, serial, set);
      return;
    }
    const values = sql.join(
      rows.map(
        (r) =>
          sql`(${r.device_id}::varchar, ${r.serial}::varchar, ${r.report_counter}::bigint, ${r.last_nonce}::varchar, ${r.last_report_sha256}::varchar, ${r.installed_filename}::varchar, ${r.installed_length}::bigint, ${r.installed_hashes_json}::text, ${r.installed_at}::bigint)`,
      ),
    );
    await sql`update ecus as e set report_counter = v.rc, last_nonce = v.nonce, last_report_sha256 = v.digest, installed_filename = v.fname,
        installed_length = v.flen, installed_hashes_json = v.fhashes, installed_at = v.fat
      from (values ${values}) as v(device_id, serial, rc, nonce, digest, fname, flen, fhashes, fat)
      where e.namespace = ${namespace} and e.device_id = v.device_id and e.serial = v.serial`.execute(this.db);
  }

  /**
   * PostgreSQL, outside transactions: one statement (one round trip, committed on its own) that writes the
   * reports of the devices whose ECU rows still hold what was expected (SWAP_SQL). Answers the devices written;
   * the others are for the caller to write the careful way.
   */
  async swapEcuReports(namespace: string, rows: readonly EcuReportSwap[]): Promise<Set<string>> {
    if (!this.prepared) throw new Error('swapEcuReports runs on PostgreSQL, outside a transaction');
    if (rows.length === 0) return new Set();
    // One array per column: the statement's text does not depend on the batch, so it is prepared once per connection.
    const columns = SWAP_COLUMNS.map(([field]) => rows.map((r) => r[field]));
    const answer = await this.prepared<{ device_id: string }>('uptide_swap_ecu_reports_v1', SWAP_SQL, [namespace, ...columns]);
    return new Set(answer.map((r) => r.device_id));
  }

  async deleteEcus(namespace: string, deviceId: string): Promise<void> {
    await this.db.deleteFrom('ecus').where('namespace', '=', namespace).where('device_id', '=', deviceId).execute();
  }

  async insertEcu(row: Insertable<EcuTable>): Promise<void> {
    await this.db.insertInto('ecus').values(row).execute();
  }

  async updateEcu(namespace: string, deviceId: string, serial: string, set: Updateable<EcuTable>): Promise<void> {
    await this.db.updateTable('ecus').set(set).where('namespace', '=', namespace).where('device_id', '=', deviceId).where('serial', '=', serial).execute();
  }

  async insertEcuReplacement(namespace: string, deviceId: string, before: string, after: string, now: number): Promise<void> {
    await this.db.insertInto('ecu_replacements').values({ namespace, device_id: deviceId, before_json: before, after_json: after, created_at: now }).execute();
  }

  async listEcuReplacements(namespace: string, deviceId: string): Promise<Array<{ before_json: string; after_json: string; created_at: number }>> {
    return this.db
      .selectFrom('ecu_replacements')
      .select(['before_json', 'after_json', 'created_at'])
      .where('namespace', '=', namespace)
      .where('device_id', '=', deviceId)
      .orderBy('created_at')
      .execute();
  }

  async listHardwareIds(namespace: string): Promise<string[]> {
    const rows = await this.db.selectFrom('ecus').select('hardware_id').distinct().where('namespace', '=', namespace).orderBy('hardware_id').execute();
    return rows.map((r) => r.hardware_id);
  }

  // --- updates and assignments ---------------------------------------------------------------------

  async insertUpdate(row: Insertable<UpdateTable>): Promise<void> {
    await this.db.insertInto('updates').values(row).execute();
  }

  async getUpdate(namespace: string, id: string): Promise<UpdateRow | undefined> {
    return this.db.selectFrom('updates').selectAll().where('namespace', '=', namespace).where('id', '=', id).executeTakeFirst();
  }

  async listUpdates(namespace: string, offset: number, limit: number): Promise<{ total: number; rows: UpdateRow[] }> {
    const q = this.db.selectFrom('updates').where('namespace', '=', namespace);
    const total = Number((await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    const rows = await q.selectAll().orderBy('created_at', 'desc').limit(limit).offset(offset).execute();
    return { total, rows };
  }

  async insertAssignment(row: Insertable<AssignmentTable>): Promise<void> {
    await this.db.insertInto('assignments').values(row).execute();
  }

  async activeAssignments(namespace: string, deviceId: string): Promise<AssignmentRow[]> {
    return this.db
      .selectFrom('assignments')
      .selectAll()
      .where('namespace', '=', namespace)
      .where('device_id', '=', deviceId)
      .where('status', 'in', ['assigned', 'in_flight'])
      .orderBy('created_at')
      .execute();
  }

  async activeAssignmentsFor(namespace: string, deviceIds: readonly string[]): Promise<AssignmentRow[]> {
    if (deviceIds.length === 0) return [];
    return this.db
      .selectFrom('assignments')
      .selectAll()
      .where('namespace', '=', namespace)
      .where('device_id', 'in', deviceIds)
      .where('status', 'in', ['assigned', 'in_flight'])
      .execute();
  }

  async listAssignments(namespace: string, filter: { deviceId?: string; updateId?: string }): Promise<AssignmentRow[]> {
    let q = this.db.selectFrom('assignments').selectAll().where('namespace', '=', namespace);
    if (filter.deviceId !== undefined) q = q.where('device_id', '=', filter.deviceId);
    if (filter.updateId !== undefined) q = q.where('update_id', '=', filter.updateId);
    return q.orderBy('created_at').orderBy('device_id').orderBy('ecu_serial').execute();
  }

  async setAssignmentStatus(id: string, status: string, now: number, result?: { code: string; description: string }): Promise<void> {
    await this.db
      .updateTable('assignments')
      .set({ status, updated_at: now, ...(result ? { result_code: result.code, result_description: result.description } : {}) })
      .where('id', '=', id)
      .execute();
  }

  /** What a fleet overview needs, in three queries: every device's last-seen time, active assignments, and the outcome of each device's latest installation report. */
  async fleetFacts(namespace: string): Promise<{
    devices: Array<{ id: string; last_seen_at: number | null }>;
    active: Array<{ device_id: string; status: string }>;
    lastReports: Array<{ device_id: string; success: number }>;
  }> {
    const devices = await this.db.selectFrom('devices').select(['id', 'last_seen_at']).where('namespace', '=', namespace).execute();
    const active = await this.db
      .selectFrom('assignments')
      .select(['device_id', 'status'])
      .where('namespace', '=', namespace)
      .where('status', 'in', ['assigned', 'in_flight'])
      .execute();
    const lastReports = await this.db
      .selectFrom('installation_reports')
      .select(['device_id', 'success'])
      .where('namespace', '=', namespace)
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('installation_reports')
          .select((e) => e.fn.max('id').as('id'))
          .where('namespace', '=', namespace)
          .groupBy('device_id'),
      )
      .execute();
    return { devices, active, lastReports };
  }

  /** Device and status pairs of the given updates' assignments. */
  async assignmentStatuses(namespace: string, updateIds: readonly string[]): Promise<Array<{ update_id: string; device_id: string; status: string }>> {
    if (updateIds.length === 0) return [];
    return this.db
      .selectFrom('assignments')
      .select(['update_id', 'device_id', 'status'])
      .where('namespace', '=', namespace)
      .where('update_id', 'in', updateIds)
      .execute();
  }

  // --- groups ---------------------------------------------------------------------------------------------

  async insertGroup(row: Insertable<GroupTable>): Promise<void> {
    await this.db.insertInto('device_groups').values(row).execute();
  }

  async getGroup(namespace: string, id: string): Promise<GroupRow | undefined> {
    return this.db.selectFrom('device_groups').selectAll().where('namespace', '=', namespace).where('id', '=', id).executeTakeFirst();
  }

  async findGroupByName(namespace: string, name: string): Promise<GroupRow | undefined> {
    return this.db.selectFrom('device_groups').selectAll().where('namespace', '=', namespace).where('name', '=', name).executeTakeFirst();
  }

  async listGroups(namespace: string): Promise<Array<GroupRow & { size: number }>> {
    const rows = await this.db
      .selectFrom('device_groups')
      .leftJoin('group_members', 'group_members.group_id', 'device_groups.id')
      .select(['device_groups.id', 'device_groups.namespace', 'device_groups.name', 'device_groups.created_at'])
      .select((eb) => eb.fn.count<number>('group_members.device_id').as('size'))
      .where('device_groups.namespace', '=', namespace)
      .groupBy(['device_groups.id', 'device_groups.namespace', 'device_groups.name', 'device_groups.created_at'])
      .orderBy('device_groups.name')
      .execute();
    return rows.map((r) => ({ ...r, size: Number(r.size) }));
  }

  async deleteGroup(namespace: string, id: string): Promise<boolean> {
    await this.db.deleteFrom('group_members').where('namespace', '=', namespace).where('group_id', '=', id).execute();
    const r = await this.db.deleteFrom('device_groups').where('namespace', '=', namespace).where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async addGroupMember(namespace: string, groupId: string, deviceId: string, now: number): Promise<void> {
    await this.db
      .insertInto('group_members')
      .values({ namespace, group_id: groupId, device_id: deviceId, created_at: now })
      .onConflict((oc) => oc.columns(['group_id', 'device_id']).doNothing())
      .execute();
  }

  async removeGroupMember(namespace: string, groupId: string, deviceId: string): Promise<boolean> {
    const r = await this.db
      .deleteFrom('group_members')
      .where('namespace', '=', namespace)
      .where('group_id', '=', groupId)
      .where('device_id', '=', deviceId)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async groupMembers(namespace: string, groupId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('group_members')
      .select('device_id')
      .where('namespace', '=', namespace)
      .where('group_id', '=', groupId)
      .orderBy('device_id')
      .execute();
    return rows.map((r) => r.device_id);
  }

  async groupsOfDevice(namespace: string, deviceId: string): Promise<GroupRow[]> {
    return this.db
      .selectFrom('device_groups')
      .innerJoin('group_members', 'group_members.group_id', 'device_groups.id')
      .selectAll('device_groups')
      .where('group_members.namespace', '=', namespace)
      .where('group_members.device_id', '=', deviceId)
      .execute();
  }

  // --- events, reports, security events ---------------------------------------------------------------------

  /** Inserts events, ignoring ids already stored (aktualizr resends a batch it did not see acknowledged). */
  async insertEvents(rows: ReadonlyArray<Insertable<EventTable>>): Promise<void> {
    for (const row of rows) {
      await this.db
        .insertInto('events')
        .values(row)
        .onConflict((oc) => oc.columns(['namespace', 'device_id', 'id']).doNothing())
        .execute();
    }
  }

  async listEvents(namespace: string, deviceId: string, opts: { correlationId?: string; limit: number }): Promise<EventRow[]> {
    let q = this.db.selectFrom('events').selectAll().where('namespace', '=', namespace).where('device_id', '=', deviceId);
    if (opts.correlationId !== undefined) q = q.where('correlation_id', '=', opts.correlationId);
    return q.orderBy('received_at', 'desc').orderBy('id').limit(opts.limit).execute();
  }

  async insertInstallationReport(row: Insertable<InstallationReportTable>): Promise<void> {
    await this.db.insertInto('installation_reports').values(row).execute();
  }

  async listInstallationReports(namespace: string, deviceId: string, limit: number): Promise<InstallationReportRow[]> {
    return this.db
      .selectFrom('installation_reports')
      .selectAll()
      .where('namespace', '=', namespace)
      .where('device_id', '=', deviceId)
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
  }

  async insertSecurityEvent(row: Insertable<SecurityEventTable>): Promise<void> {
    await this.db.insertInto('security_events').values(row).execute();
  }

  async listSecurityEvents(namespace: string, deviceId: string | undefined, limit: number): Promise<SecurityEventRow[]> {
    let q = this.db.selectFrom('security_events').selectAll().where('namespace', '=', namespace);
    if (deviceId !== undefined) q = q.where('device_id', '=', deviceId);
    return q.orderBy('id', 'desc').limit(limit).execute();
  }

  async putDeviceReport(namespace: string, deviceId: string, kind: string, body: string, now: number): Promise<void> {
    await this.db
      .insertInto('device_reports')
      .values({ namespace, device_id: deviceId, kind, body, updated_at: now })
      .onConflict((oc) => oc.columns(['namespace', 'device_id', 'kind']).doUpdateSet({ body, updated_at: now }))
      .execute();
  }

  async getDeviceReport(namespace: string, deviceId: string, kind: string): Promise<{ body: string; updated_at: number } | undefined> {
    return this.db
      .selectFrom('device_reports')
      .select(['body', 'updated_at'])
      .where('namespace', '=', namespace)
      .where('device_id', '=', deviceId)
      .where('kind', '=', kind)
      .executeTakeFirst();
  }

  // --- leases (background work with several instances) -------------------------------------------------------

  /** Takes or renews a named lease; true when `holder` holds it until `now + ttlMs`. */
  async acquireLease(name: string, holder: string, now: number, ttlMs: number): Promise<boolean> {
    const expires = now + ttlMs;
    await this.db
      .insertInto('leases')
      .values({ name, holder, expires_at: expires })
      .onConflict((oc) =>
        oc
          .column('name')
          .doUpdateSet({ holder, expires_at: expires })
          .where((eb) => eb.or([eb('leases.expires_at', '<', now), eb('leases.holder', '=', holder)])),
      )
      .execute();
    const row = await this.db.selectFrom('leases').select(['holder', 'expires_at']).where('name', '=', name).executeTakeFirst();
    return row?.holder === holder && row.expires_at === expires;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.db.deleteFrom('leases').where('name', '=', name).where('holder', '=', holder).execute();
  }
}

/** Access to the database: a Store outside transactions, and transactions. */
export class Storage {
  readonly store: Store;
  private stopListening: (() => Promise<void>) | undefined;

  constructor(
    readonly database: Database,
    readonly cache?: MetadataCache,
  ) {
    this.store = new Store(database.db, database.dialect, cache, database.preparedQuery);
  }

  /** On PostgreSQL, listens for other instances' invalidations (the cache is local otherwise). */
  async startListening(): Promise<void> {
    if (this.cache && this.database.listen) {
      const cache = this.cache;
      this.stopListening = await this.database.listen(
        INVALIDATE_CHANNEL,
        (payload) => cache.invalidatePayload(payload),
        () => cache.clear(),
      );
    }
  }

  get dialect(): SqlDialect {
    return this.database.dialect;
  }

  /** Runs `fn` in one transaction; everything it writes commits together or not at all. */
  async transaction<T>(fn: (store: Store) => Promise<T>): Promise<T> {
    return this.database.db.transaction().execute((trx) => fn(new Store(trx, this.database.dialect, this.cache)));
  }

  async close(): Promise<void> {
    await this.stopListening?.();
    await this.database.close();
  }
}
