/**
 * The Director repository (uptane-standard.md §7, the Standard's §5.3.2):
 * the inventory of ECUs and their keys, per-device Targets/Snapshot/Timestamp
 * signed online and cached, and the processing of signed vehicle manifests.
 */
import { createHash } from 'node:crypto';
import type { PublicKey } from '@uptide/core';
import {
  MetaFile,
  PublicKeyCache,
  Snapshot,
  TargetFile,
  Targets,
  Timestamp,
  UptaneError,
  canonicalize,
  parseVehicleManifest,
  verifySignedDocumentAsync,
  type Dialect,
  type JsonObject,
  type VehicleManifest,
} from '@uptide/core';
import type { Storage, Store, EcuRow, AssignmentRow, EcuReportUpdate, EcuReportSwap } from '../storage/store.js';
import { GroupCommit } from './group-commit.js';
import type { TufRepos } from '../keys/tuf-repo.js';
import { ApiError, badRequest, conflict, notFound } from '../errors.js';
import { hasNul } from '../text.js';

const REPO = 'director' as const;

export interface ServedFile {
  readonly bytes: Uint8Array;
  readonly checksum: string;
  readonly version: number;
}

export interface EcuRegistration {
  readonly serial: string;
  readonly hardwareId: string;
  readonly key: PublicKey;
  readonly keyJson: JsonObject;
}

export type RegistrationOutcome = 'created' | 'unchanged' | 'replaced';

function sha256Hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

const SERIAL_RE = /^[\x21-\x7e]{1,64}$/;

/** Attacks recorded per ECU version report; more are summarized in one event. */
const MAX_ATTACKS_PER_REPORT = 50;

/** What is stored of a report's nonce: itself when it fits the column (255), else its SHA-256 (reuse is still detected). */
function nonceKey(nonce: string): string {
  return nonce.length <= 255 ? nonce : `sha256:${sha256Hex(Buffer.from(nonce, 'utf8'))}`;
}

/** A manifest whose signatures passed, waiting to be written. */
interface CheckedManifest {
  readonly namespace: string;
  readonly deviceId: string;
  readonly manifest: VehicleManifest;
  readonly signed: { readonly keyIds: ReadonlyMap<string, string>; readonly digests: ReadonlyMap<string, string> };
}

/** What a manifest will record: the fresh reports (none when all were seen already) and their ECU rows. */
interface ManifestPlan {
  readonly fresh: ReadonlySet<string>;
  readonly rows: readonly EcuReportUpdate[];
  readonly hasActiveAssignments: boolean;
}

/** A manifest the Director refuses: a 4xx answer, and a security event when it looks like an attack. */
export class ManifestRefused extends ApiError {
  constructor(
    status: number,
    code: string,
    message: string,
    readonly securityRelevant: boolean,
    readonly ecuSerial?: string,
  ) {
    super(status, code, message);
  }
}

/** Parses aktualizr's ECU registration body (device-api.md §1.4.2), strictly. */
export function parseEcuRegistration(body: unknown, keyCache: PublicKeyCache): { primary: string; ecus: EcuRegistration[] } {
  const o = body as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw badRequest('invalid_request', 'the body must be a JSON object');
  const primary = o['primary_ecu_serial'];
  if (typeof primary !== 'string' || !SERIAL_RE.test(primary))
    throw badRequest('invalid_ecu_serial', 'primary_ecu_serial must be 1-64 printable ASCII characters');
  const list = o['ecus'];
  if (!Array.isArray(list) || list.length === 0 || list.length > 64) throw badRequest('invalid_request', 'ecus must be a list of 1 to 64 ECUs');
  const ecus: EcuRegistration[] = [];
  const seen = new Set<string>();
  list.forEach((e, i) => {
    const eo = e as Record<string, unknown> | null;
    if (!eo || typeof eo !== 'object') throw badRequest('invalid_request', `ecus[${i}] must be an object`);
    const serial = eo['ecu_serial'];
    const hw = eo['hardware_identifier'];
    if (typeof serial !== 'string' || !SERIAL_RE.test(serial))
      throw badRequest('invalid_ecu_serial', `ecus[${i}].ecu_serial must be 1-64 printable ASCII characters`);
    if (typeof hw !== 'string' || hw.length === 0 || hw.length > 200 || !/^[\x21-\x7e]+$/.test(hw)) {
      throw badRequest('invalid_hardware_id', `ecus[${i}].hardware_identifier must be 1-200 printable ASCII characters`);
    }
    if (seen.has(serial)) throw badRequest('duplicate_ecu', `ECU ${serial} is listed twice`);
    seen.add(serial);
    let key: PublicKey;
    try {
      key = keyCache.get(eo['clientKey'] as JsonObject, 'uptane');
    } catch (err) {
      throw badRequest('invalid_key', `ecus[${i}].clientKey: ${err instanceof Error ? err.message : String(err)}`);
    }
    ecus.push({ serial, hardwareId: hw, key, keyJson: key.toJSON() });
  });
  if (!seen.has(primary)) throw badRequest('invalid_request', 'primary_ecu_serial must be one of the ecus');
  return { primary, ecus };
}

export class Director {
  readonly keyCache = new PublicKeyCache();

  constructor(
    private readonly storage: Storage,
    private readonly repos: TufRepos,
    private readonly clock: () => Date,
    /** How far in the future a reported verified time may be before it is implausible. */
    private readonly maxClockSkewMs = 24 * 3600 * 1000,
  ) {
    this.manifestWrites = new GroupCommit<CheckedManifest>({
      write: (batch) => this.writeManifests(batch),
      keyOf: (m) => `${m.namespace}\u0000${m.deviceId}`,
      // One batch at a time: the next batch gathers everything that arrived meanwhile, so batches grow with load
      // (measured on PostgreSQL: one in flight beat two and four, whose batches were smaller; SQLite serializes anyway).
      concurrency: 1,
      maxBatch: 64,
    });
  }

  private readonly manifestWrites: GroupCommit<CheckedManifest>;

  private async dialect(store: Store, namespace: string, lock = false): Promise<Dialect> {
    const row = await store.getRepository(namespace, REPO, lock);
    if (!row) throw notFound('repository_not_found', `namespace ${namespace} has no Director repository`);
    return row.dialect as Dialect;
  }

  async create(store: Store, namespace: string, dialect: Dialect = 'uptane'): Promise<void> {
    await this.repos.initRepository(store, namespace, REPO, dialect, this.clock());
  }

  async root(namespace: string, version?: number): Promise<Uint8Array | undefined> {
    const s = this.storage.store;
    if (version === undefined) return (await s.latestRoot(namespace, REPO))?.bytes;
    return s.getRoot(namespace, REPO, version);
  }

  // --- ECU registration -----------------------------------------------------------------

  /**
   * Registers the ECUs of a device. The same set again is a no-op (aktualizr
   * repeats it); a different set is an ECU replacement: recorded, the old ECUs'
   * active assignments cancelled, and the Director metadata regenerated.
   */
  async registerEcus(namespace: string, deviceId: string, body: unknown): Promise<RegistrationOutcome> {
    const { primary, ecus } = parseEcuRegistration(body, this.keyCache);
    const now = this.clock().getTime();
    this.forgetInventory(namespace, deviceId);
    return this.storage.transaction(async (store) => {
      const device = await store.getDevice(namespace, deviceId, true);
      if (!device) throw notFound('device_not_found', `device ${deviceId} is not registered`);
      const existing = await store.listEcus(namespace, deviceId);
      const describe = (list: Array<{ serial: string; hardwareId: string; keyId: string; primary: boolean }>) =>
        JSON.stringify([...list].sort((a, b) => (a.serial < b.serial ? -1 : 1)));
      const before = describe(existing.map((e) => ({ serial: e.serial, hardwareId: e.hardware_id, keyId: e.key_id, primary: e.is_primary === 1 })));
      const after = describe(ecus.map((e) => ({ serial: e.serial, hardwareId: e.hardwareId, keyId: e.key.keyId('uptane'), primary: e.serial === primary })));
      if (existing.length > 0 && before === after) return 'unchanged';
      const kept = new Map(existing.map((e) => [e.serial, e]));
      if (existing.length > 0) {
        await store.insertEcuReplacement(namespace, deviceId, before, after, now);
        for (const a of await store.activeAssignments(namespace, deviceId)) {
          const ecu = ecus.find((e) => e.serial === a.ecu_serial);
          const old = kept.get(a.ecu_serial);
          if (!ecu || !old || ecu.hardwareId !== old.hardware_id) {
            await store.setAssignmentStatus(a.id, 'cancelled', now, { code: 'ECU_REPLACED', description: 'the ECU was replaced or removed' });
          }
        }
        await store.deleteEcus(namespace, deviceId);
      }
      for (const e of ecus) {
        const old = kept.get(e.serial);
        const sameKey = old !== undefined && old.key_id === e.key.keyId('uptane');
        await store.insertEcu({
          namespace,
          device_id: deviceId,
          serial: e.serial,
          hardware_id: e.hardwareId,
          is_primary: e.serial === primary ? 1 : 0,
          public_key_json: JSON.stringify(e.keyJson),
          key_id: e.key.keyId('uptane'),
          // A new key restarts replay protection for that ECU; the same key keeps it.
          report_counter: sameKey ? old.report_counter : null,
          last_nonce: sameKey ? old.last_nonce : null,
          last_report_sha256: sameKey ? old.last_report_sha256 : null,
          installed_filename: old?.installed_filename ?? null,
          installed_length: old?.installed_length ?? null,
          installed_hashes_json: old?.installed_hashes_json ?? null,
          installed_at: old?.installed_at ?? null,
          created_at: old?.created_at ?? now,
        });
      }
      await store.updateDevice(namespace, deviceId, { primary_ecu_serial: primary, activated_at: device.activated_at ?? now, last_seen_at: now });
      await store.markOutdated(namespace, REPO, deviceId);
      return existing.length === 0 ? 'created' : 'replaced';
    });
  }

  // --- per-device metadata ------------------------------------------------------------------

  /**
   * The device's Director targets, snapshot or timestamp. The cached signed
   * bytes are served as they are unless an assignment or key changed, or they
   * near expiry; then all three are regenerated once, in a transaction.
   */
  async metadata(namespace: string, deviceId: string, role: 'targets' | 'snapshot' | 'timestamp'): Promise<ServedFile> {
    const now = this.clock();
    const row = await this.storage.store.getRoleMetadataCached(namespace, REPO, deviceId, role, now.getTime());
    if (row && row.outdated === 0 && !this.repos.needsRefresh(REPO, role, row.expires_at, now)) {
      return { bytes: row.bytes, checksum: row.checksum, version: row.version };
    }
    return this.storage.transaction(async (store) => {
      const device = await store.getDevice(namespace, deviceId, true);
      if (!device) throw notFound('device_not_found', `device ${deviceId} is not registered`);
      const rows = await store.listRoleMetadata(namespace, REPO, deviceId);
      const byRole = new Map(rows.map((r) => [r.role, r]));
      const stale = (['targets', 'snapshot', 'timestamp'] as const).some((r) => {
        const x = byRole.get(r);
        return !x || x.outdated === 1 || this.repos.needsRefresh(REPO, r, x.expires_at, now);
      });
      if (stale) await this.generate(store, namespace, deviceId, now);
      const fresh = (await store.getRoleMetadata(namespace, REPO, deviceId, role)) as NonNullable<typeof row>;
      return { bytes: fresh.bytes, checksum: fresh.checksum, version: fresh.version };
    });
  }

  /** Builds and signs the device's targets (from its active assignments), snapshot and timestamp. */
  private async generate(store: Store, namespace: string, deviceId: string, now: Date): Promise<void> {
    const dialect = await this.dialect(store, namespace);
    const root = await this.repos.currentRoot(store, namespace, REPO, dialect);
    const assignments = await store.activeAssignments(namespace, deviceId);
    const targets = new Map<string, TargetFile>();
    for (const a of assignments) {
      const prev = targets.get(a.filename);
      const ecuIds: JsonObject = { ...((prev?.custom?.['ecuIdentifiers'] as JsonObject | undefined) ?? {}), [a.ecu_serial]: { hardwareId: a.hardware_id } };
      const custom: JsonObject = { ecuIdentifiers: ecuIds, uri: a.uri };
      if (a.release_counter !== null) custom['releaseCounter'] = a.release_counter;
      targets.set(a.filename, new TargetFile(a.filename, a.length, JSON.parse(a.hashes_json) as Record<string, string>, custom));
    }
    const custom: JsonObject = { vehicleId: deviceId };
    const first = assignments[0];
    if (first) custom['correlationId'] = first.correlation_id;
    const versions = new Map((await store.listRoleMetadata(namespace, REPO, deviceId)).map((r) => [r.role, r.version]));
    const t = now.getTime();
    const tSigned = new Targets({ version: (versions.get('targets') ?? 0) + 1, expires: this.repos.expires(REPO, 'targets', now), targets, custom });
    const tBytes = (await this.repos.sign(store, namespace, REPO, 'targets', tSigned, root.signed, dialect)).toBytes();
    const snapshot = new Snapshot({
      version: (versions.get('snapshot') ?? 0) + 1,
      expires: this.repos.expires(REPO, 'snapshot', now),
      meta: new Map([['targets.json', MetaFile.describe(tSigned.version, tBytes)]]),
    });
    const sBytes = (await this.repos.sign(store, namespace, REPO, 'snapshot', snapshot, root.signed, dialect)).toBytes();
    const timestamp = new Timestamp({
      version: (versions.get('timestamp') ?? 0) + 1,
      expires: this.repos.expires(REPO, 'timestamp', now),
      snapshot: MetaFile.describe(snapshot.version, sBytes),
    });
    const tsBytes = (await this.repos.sign(store, namespace, REPO, 'timestamp', timestamp, root.signed, dialect)).toBytes();
    for (const [role, bytes, version, expiresAt] of [
      ['targets', tBytes, tSigned.version, tSigned.expiresAt],
      ['snapshot', sBytes, snapshot.version, snapshot.expiresAt],
      ['timestamp', tsBytes, timestamp.version, timestamp.expiresAt],
    ] as const) {
      await store.putRoleMetadata({
        namespace,
        repo: REPO,
        owner: deviceId,
        role,
        version,
        bytes,
        checksum: sha256Hex(bytes),
        expires_at: expiresAt,
        outdated: 0,
        updated_at: t,
      });
    }
    // The device may now see these assignments: from here on they are in flight and can no longer be cancelled.
    for (const a of assignments) if (a.status === 'assigned') await store.setAssignmentStatus(a.id, 'in_flight', t);
  }

  // --- manifests ------------------------------------------------------------------------------

  /**
   * Processes a signed vehicle version manifest (§5.3.2.1): every check first,
   * then one transaction applies the reports. A refused manifest changes no
   * device state; it is answered with a 4xx and, when it looks like an attack,
   * recorded as a security event.
   */
  async processManifest(namespace: string, deviceId: string, body: Uint8Array): Promise<void> {
    let manifest: VehicleManifest;
    try {
      manifest = parseVehicleManifest(body);
      // The manifest route keeps the raw bytes (no generic JSON parse), so the NUL rule of JSON bodies is applied here.
      if (hasNul(manifest.document.signed)) throw new ManifestRefused(400, 'invalid_manifest', 'the manifest holds a NUL character', false);
    } catch (err) {
      if (err instanceof ManifestRefused) throw err;
      if (err instanceof UptaneError) throw new ManifestRefused(400, 'invalid_manifest', err.message, false);
      throw err;
    }
    try {
      // Signatures are checked first, outside any transaction and off the event loop (libuv's thread pool);
      // the transaction then only checks that the keys are still those, and applies the reports.
      const signed = await this.checkSignatures(namespace, deviceId, manifest);
      // Written with the manifests of other devices that arrive meanwhile (group commit, one transaction).
      await this.manifestWrites.submit({ namespace, deviceId, manifest, signed });
    } catch (err) {
      if (err instanceof ManifestRefused && err.securityRelevant) {
        await this.storage.store.insertSecurityEvent({
          namespace,
          device_id: deviceId,
          // An unknown ECU's serial comes from the manifest: cut to the column.
          ecu_serial: err.ecuSerial?.slice(0, 64) ?? null,
          source: 'refused',
          code: err.code,
          message: err.message,
          repository: null,
          role: 'manifest',
          created_at: this.clock().getTime(),
        });
      }
      throw err;
    }
  }

  /** The inventory's ECUs of a device, or the refusal when there are none. */
  /** Refuses a manifest of a device without ECUs, saying why. */
  private async noInventory(store: Store, namespace: string, deviceId: string): Promise<never> {
    if (!(await store.getDevice(namespace, deviceId))) throw new ManifestRefused(404, 'device_not_found', `device ${deviceId} is not registered`, false);
    throw new ManifestRefused(409, 'ecus_not_registered', 'register the ECUs (POST /director/ecus) before sending a manifest', false);
  }

  /**
   * The ECUs whose keys check a manifest's signatures, cached per device: the transaction re-reads them
   * (locked) and refuses the manifest if they changed, so a stale entry can only cause a refusal.
   */
  private readonly inventoryCache = new Map<string, { ecus: EcuRow[]; at: number }>();

  private async cachedInventory(namespace: string, deviceId: string): Promise<EcuRow[]> {
    const key = `${namespace}\u0000${deviceId}`;
    const now = Date.now();
    const hit = this.inventoryCache.get(key);
    if (hit && now - hit.at < 60_000) return hit.ecus;
    const ecus = await this.storage.store.listEcus(namespace, deviceId);
    if (ecus.length === 0) return this.noInventory(this.storage.store, namespace, deviceId);
    if (this.inventoryCache.size > 50_000) this.inventoryCache.clear();
    this.inventoryCache.set(key, { ecus, at: now });
    return ecus;
  }

  private forgetInventory(namespace: string, deviceId: string): void {
    this.inventoryCache.delete(`${namespace}\u0000${deviceId}`);
  }

  /**
   * §5.3.2.1 step 3: the Primary's signature with the registered Primary key,
   * each ECU's report with that ECU's key, every ECU of the inventory present.
   * Answers the key each ECU was checked with and each report's digest.
   */
  private async checkSignatures(
    namespace: string,
    deviceId: string,
    m: VehicleManifest,
  ): Promise<{ keyIds: Map<string, string>; digests: Map<string, string> }> {
    const ecus = await this.cachedInventory(namespace, deviceId);
    const bySerial = new Map(ecus.map((e) => [e.serial, e]));
    const primary = ecus.find((e) => e.is_primary === 1) as EcuRow;
    if (m.primaryEcuSerial !== primary.serial) {
      throw new ManifestRefused(
        400,
        'primary_mismatch',
        `the manifest names primary ECU ${m.primaryEcuSerial}; the registered primary is ${primary.serial}`,
        true,
      );
    }
    if (m.vehicleId !== undefined && m.vehicleId !== deviceId) {
      throw new ManifestRefused(400, 'vehicle_mismatch', `the manifest is for vehicle ${m.vehicleId}, not ${deviceId}`, true);
    }
    const digests = new Map<string, string>();
    const checks: Array<Promise<ManifestRefused | undefined>> = [
      verifySignedDocumentAsync(m.document, this.keyOf(primary)).then((ok) =>
        ok
          ? undefined
          : new ManifestRefused(400, 'invalid_signature', 'the manifest is not signed by the registered key of the primary ECU', true, primary.serial),
      ),
    ];
    for (const [serial, report] of m.reports) {
      const ecu = bySerial.get(serial);
      if (!ecu)
        throw new ManifestRefused(400, 'unknown_ecu', `the manifest carries a report of ECU ${serial}, which is not registered for this device`, true, serial);
      const payload = canonicalize(report.document.signed, 'uptane');
      digests.set(serial, sha256Hex(payload));
      checks.push(
        verifySignedDocumentAsync(report.document, this.keyOf(ecu), payload).then((ok) =>
          ok ? undefined : new ManifestRefused(400, 'invalid_signature', `the report of ECU ${serial} is not signed by its registered key`, true, serial),
        ),
      );
    }
    // All checks run at once; the first refusal in manifest order is the one reported.
    const refusal = (await Promise.all(checks)).find((r) => r !== undefined);
    if (refusal) throw refusal;
    for (const e of ecus) {
      if (!m.reports.has(e.serial))
        throw new ManifestRefused(400, 'missing_ecu_report', `the manifest has no version report of ECU ${e.serial}`, true, e.serial);
    }
    return { keyIds: new Map(ecus.map((e) => [e.serial, e.key_id])), digests };
  }

  /**
   * Writes a batch of checked manifests in one transaction: the ECUs of every device locked in one
   * statement, each manifest's replay and time checks against them, every ECU's new report in one
   * statement, then what only some manifests need (reported attacks, installation reports,
   * assignments). A refused manifest writes nothing; the others commit.
   */
  private async writeManifests(batch: readonly CheckedManifest[]): Promise<Array<Error | undefined>> {
    const results: Array<Error | undefined> = batch.map(() => undefined);
    const written = this.storage.dialect === 'postgres' ? await this.swapManifests(batch) : new Set<number>();
    const rest = batch.flatMap((item, i) => (written.has(i) ? [] : [{ item, i }]));
    if (rest.length > 0) {
      const refusals = await this.writeCarefully(rest.map((r) => r.item));
      rest.forEach((r, k) => {
        results[r.i] = refusals[k];
        // Its rows changed in a way the cache does not follow: the next manifest reads them again.
        this.forgetInventory(r.item.namespace, r.item.deviceId);
      });
    }
    return results;
  }

  /**
   * PostgreSQL's fast path, for the common manifest (new reports, no attack, no installation report): planned
   * against the ECU rows cached for the signature checks, then written in one statement that checks the rows
   * still hold what was planned against (and that no assignment is active). Anything else, and any manifest
   * whose rows moved meanwhile (another instance, a re-registration), goes the careful way. Answers the
   * indexes written.
   */
  private async swapManifests(batch: readonly CheckedManifest[]): Promise<Set<number>> {
    const now = this.clock().getTime();
    const planned: Array<{ i: number; item: CheckedManifest; ecus: EcuRow[]; swaps: EcuReportSwap[] }> = [];
    for (const [i, item] of batch.entries()) {
      const key = `${item.namespace}\u0000${item.deviceId}`;
      const cached = this.inventoryCache.get(key);
      const seen = this.seenWritten.get(key);
      if (!cached || seen === undefined || now - seen >= 60_000 || item.manifest.installationReport) continue;
      if ([...item.manifest.reports.values()].some((r) => r.attacks.length > 0)) continue;
      let plan: ManifestPlan;
      try {
        plan = this.planManifest(item, { ecus: cached.ecus, hasActiveAssignments: false }, now);
      } catch {
        continue; // a refusal is decided on locked rows, the careful way
      }
      if (plan.fresh.size === 0) continue;
      const rowBySerial = new Map(plan.rows.map((r) => [r.serial, r]));
      const swaps = cached.ecus.map((e): EcuReportSwap => {
        const r = rowBySerial.get(e.serial);
        return {
          device_id: item.deviceId,
          key_id: e.key_id,
          expected_counter: e.report_counter,
          expected_nonce: e.last_nonce,
          expected_sha256: e.last_report_sha256,
          write: r !== undefined,
          serial: e.serial,
          report_counter: r ? r.report_counter : e.report_counter,
          last_nonce: r ? r.last_nonce : e.last_nonce,
          last_report_sha256: r ? r.last_report_sha256 : e.last_report_sha256,
          installed_filename: r ? r.installed_filename : (e.installed_filename ?? ''),
          installed_length: r ? r.installed_length : (e.installed_length ?? 0),
          installed_hashes_json: r ? r.installed_hashes_json : (e.installed_hashes_json ?? '{}'),
          installed_at: r ? r.installed_at : (e.installed_at ?? 0),
        };
      });
      planned.push({ i, item, ecus: cached.ecus, swaps });
    }
    const written = new Set<number>();
    for (const ns of new Set(planned.map((p) => p.item.namespace))) {
      const mine = planned.filter((p) => p.item.namespace === ns);
      const devices = await this.storage.store.swapEcuReports(
        ns,
        mine.flatMap((p) => p.swaps),
      );
      for (const p of mine) {
        if (!devices.has(p.item.deviceId)) continue;
        written.add(p.i);
        // The cache now holds what was written, so the device's next manifest is planned against it.
        const key = `${ns}\u0000${p.item.deviceId}`;
        const entry = this.inventoryCache.get(key);
        if (entry?.ecus === p.ecus) {
          const bySerial = new Map(p.swaps.map((w) => [w.serial, w]));
          entry.ecus = p.ecus.map((e) => {
            const w = bySerial.get(e.serial);
            if (!w?.write) return e;
            return {
              ...e,
              report_counter: w.report_counter,
              last_nonce: w.last_nonce,
              last_report_sha256: w.last_report_sha256,
              installed_filename: w.installed_filename,
              installed_length: w.installed_length,
              installed_hashes_json: w.installed_hashes_json,
              installed_at: w.installed_at,
            };
          });
        } else {
          this.inventoryCache.delete(key);
        }
      }
    }
    return written;
  }

  /** The careful way: one transaction that locks every device's ECU rows and applies everything a manifest carries. */
  private async writeCarefully(batch: readonly CheckedManifest[]): Promise<Array<Error | undefined>> {
    return this.storage.transaction(async (store) => {
      const now = this.clock().getTime();
      const results: Array<Error | undefined> = batch.map(() => undefined);
      const namespaces = [...new Set(batch.map((b) => b.namespace))];
      const locked = new Map<string, Map<string, { ecus: EcuRow[]; hasActiveAssignments: boolean }>>();
      for (const ns of namespaces) {
        locked.set(
          ns,
          await store.lockEcusOfDevices(
            ns,
            batch.filter((b) => b.namespace === ns).map((b) => b.deviceId),
          ),
        );
      }
      const plans: Array<ManifestPlan | undefined> = [];
      for (const [i, item] of batch.entries()) {
        try {
          const device = locked.get(item.namespace)?.get(item.deviceId);
          if (!device) await this.noInventory(store, item.namespace, item.deviceId);
          plans[i] = this.planManifest(item, device as { ecus: EcuRow[]; hasActiveAssignments: boolean }, now);
        } catch (err) {
          if (!(err instanceof ManifestRefused)) throw err;
          results[i] = err;
        }
      }
      for (const ns of namespaces) {
        await store.updateEcuReportsOfDevices(
          ns,
          batch.flatMap((item, i) => (item.namespace === ns ? (plans[i]?.rows.map((r) => ({ ...r, device_id: item.deviceId })) ?? []) : [])),
        );
      }
      for (const [i, item] of batch.entries()) {
        const plan = plans[i];
        if (plan) await this.applyReports(store, item, plan, now);
      }
      return results;
    });
  }

  /**
   * Replay and time checks of one manifest against its device's locked ECUs (no I/O): the reports to
   * record, or the refusal.
   */
  private planManifest(item: CheckedManifest, device: { ecus: EcuRow[]; hasActiveAssignments: boolean }, now: number): ManifestPlan {
    const { namespace, deviceId, manifest: m, signed } = item;
    const { ecus, hasActiveAssignments } = device;
    // The ECUs (or their keys) changed since the signatures were checked: refuse, the device sends again.
    if (ecus.length !== signed.keyIds.size || ecus.some((e) => signed.keyIds.get(e.serial) !== e.key_id)) {
      this.forgetInventory(namespace, deviceId);
      throw new ManifestRefused(409, 'ecus_changed', 'the ECUs of this device changed while the manifest was checked; send it again', false);
    }
    const bySerial = new Map(ecus.map((e) => [e.serial, e]));
    const primary = ecus.find((e) => e.is_primary === 1) as EcuRow;
    const digests = signed.digests;
    // Replay: counters only grow; a nonce is never reused; times are plausible. A report identical to the
    // last accepted one (a Primary resending a Secondary's cached report, or a manifest resent after a lost
    // answer) is stale, not an attack: it is skipped.
    const fresh = new Set<string>();
    for (const [serial, report] of m.reports) {
      const ecu = bySerial.get(serial) as EcuRow;
      if (ecu.last_report_sha256 === digests.get(serial)) continue;
      if (report.counter === undefined) {
        if (ecu.report_counter !== null) {
          throw new ManifestRefused(400, 'missing_report_counter', `ECU ${serial} sent report counters before and none now`, true, serial);
        }
      } else if (ecu.report_counter !== null && report.counter <= ecu.report_counter) {
        throw new ManifestRefused(
          409,
          'replayed_report',
          `ECU ${serial} report counter ${report.counter} is not above ${ecu.report_counter}: a replayed report`,
          true,
          serial,
        );
      }
      if (report.nonce !== undefined && nonceKey(report.nonce) === ecu.last_nonce) {
        throw new ManifestRefused(409, 'replayed_report', `ECU ${serial} reused a nonce: a replayed report`, true, serial);
      }
      if (report.timeserverTime !== undefined) {
        const t = Date.parse(report.timeserverTime);
        if (Number.isNaN(t) || t > now + this.maxClockSkewMs) {
          throw new ManifestRefused(
            400,
            'implausible_time',
            `ECU ${serial} reports a verified time of ${report.timeserverTime}, after the server's time`,
            true,
            serial,
          );
        }
        // The time verified before this one cannot be later than it (a clock run backwards, or a forged report).
        if (report.previousTimeserverTime !== undefined) {
          const p = Date.parse(report.previousTimeserverTime);
          if (Number.isNaN(p) || p > t) {
            throw new ManifestRefused(
              400,
              'implausible_time',
              `ECU ${serial} reports a previous verified time of ${report.previousTimeserverTime}, after its latest (${report.timeserverTime})`,
              true,
              serial,
            );
          }
        }
      }
      fresh.add(serial);
    }
    // The whole manifest was seen already: acknowledge it again, change nothing.
    if (!fresh.has(primary.serial)) return { fresh: new Set(), rows: [], hasActiveAssignments };
    const rows: EcuReportUpdate[] = [];
    for (const [serial, report] of m.reports) {
      if (!fresh.has(serial)) continue;
      rows.push({
        serial,
        report_counter: report.counter ?? null,
        last_nonce: report.nonce === undefined ? null : nonceKey(report.nonce),
        last_report_sha256: digests.get(serial) ?? null,
        installed_filename: report.installedImage.filename,
        installed_length: report.installedImage.length,
        installed_hashes_json: JSON.stringify(report.installedImage.hashes),
        installed_at: now,
      });
    }
    return { fresh, rows, hasActiveAssignments };
  }

  /** What a planned manifest records besides its ECUs' rows: reported attacks, its installation report, assignments, last-seen. */
  private async applyReports(store: Store, item: CheckedManifest, plan: ManifestPlan, now: number): Promise<void> {
    const { namespace, deviceId, manifest: m } = item;
    const { fresh, hasActiveAssignments } = plan;
    if (fresh.size === 0) {
      await this.markSeen(store, namespace, deviceId, now);
      return;
    }
    for (const [serial, report] of m.reports) {
      if (!fresh.has(serial)) continue;
      // Recorded, but not without bound: a compromised ECU must not fill the database, one manifest at a time.
      const attacks =
        report.attacks.length > MAX_ATTACKS_PER_REPORT
          ? [
              ...report.attacks.slice(0, MAX_ATTACKS_PER_REPORT - 1),
              {
                code: 'TOO_MANY_ATTACKS',
                message: `${report.attacks.length - MAX_ATTACKS_PER_REPORT + 1} more attacks reported in this report were not recorded`,
              },
            ]
          : report.attacks;
      for (const a of attacks as ReadonlyArray<{ code: string; message: string; repository?: string | undefined; role?: string | undefined }>) {
        await store.insertSecurityEvent({
          namespace,
          device_id: deviceId,
          ecu_serial: serial,
          source: 'reported',
          code: a.code.slice(0, 64),
          message: a.message.slice(0, 2000),
          repository: a.repository?.slice(0, 32) ?? null,
          role: a.role?.slice(0, 255) ?? null,
          created_at: now,
        });
      }
    }
    const ir = m.installationReport;
    if (ir) {
      await store.insertInstallationReport({
        namespace,
        device_id: deviceId,
        correlation_id: ir.correlationId.slice(0, 255),
        success: ir.result.success ? 1 : 0,
        code: ir.result.code.slice(0, 255),
        description: ir.result.description.slice(0, 4000),
        raw_report: ir.rawReport.slice(0, 16_000),
        items_json: JSON.stringify(ir.items),
        received_at: now,
      });
    }
    // Assignments: completed when the ECU reports the assigned image (filename and sha256), whatever
    // the report says; failed when an installation report for it says so and nothing was satisfied.
    const active = hasActiveAssignments ? await store.activeAssignments(namespace, deviceId) : [];
    let changed = false;
    const satisfied = new Set<string>();
    for (const a of active) {
      const report = m.reports.get(a.ecu_serial);
      if (report && this.reportsAssignedImage(report.installedImage, a)) {
        const item = ir?.items.find((i) => i.ecu === a.ecu_serial);
        await store.setAssignmentStatus(a.id, 'completed', now, { code: item?.result.code ?? 'OK', description: item?.result.description ?? '' });
        satisfied.add(a.id);
        changed = true;
      }
    }
    if (ir && !ir.result.success) {
      for (const a of active) {
        if (satisfied.has(a.id) || a.correlation_id !== ir.correlationId) continue;
        const item = ir.items.find((i) => i.ecu === a.ecu_serial);
        if (item && item.result.success) continue;
        const result = item?.result ?? ir.result;
        await store.setAssignmentStatus(a.id, 'failed', now, { code: result.code, description: result.description.slice(0, 4000) });
        changed = true;
      }
    }
    if (changed) await store.markOutdated(namespace, REPO, deviceId);
    await this.markSeen(store, namespace, deviceId, now);
  }

  private reportsAssignedImage(img: { filename: string; hashes: Readonly<Record<string, string>>; length: number }, a: AssignmentRow): boolean {
    const want = (JSON.parse(a.hashes_json) as Record<string, string>)['sha256'];
    return img.filename === a.filename && want !== undefined && (img.hashes['sha256'] ?? '').toLowerCase() === want.toLowerCase();
  }

  private readonly seenWritten = new Map<string, number>();

  /** last_seen (and activated_at the first time), written at most once a minute per device and instance. */
  private async markSeen(store: Store, namespace: string, deviceId: string, now: number): Promise<void> {
    const key = `${namespace}\u0000${deviceId}`;
    const last = this.seenWritten.get(key);
    if (last !== undefined && now - last < 60_000) return;
    if (this.seenWritten.size > 100_000) this.seenWritten.clear();
    this.seenWritten.set(key, now);
    await store.markSeen(namespace, deviceId, now, now - 60_000);
  }

  private keyOf(ecu: EcuRow): PublicKey {
    return this.keyCache.get(JSON.parse(ecu.public_key_json) as JsonObject, 'uptane');
  }

  // --- root and keys -----------------------------------------------------------------------

  /** Accepts a new Director root; targets, snapshot and timestamp must stay online. Every device's metadata is regenerated. */
  async pushRoot(namespace: string, body: Uint8Array): Promise<{ version: number }> {
    const now = this.clock();
    return this.storage.transaction(async (store) => {
      const dialect = await this.dialect(store, namespace, true);
      const root = await this.repos.acceptRoot(store, namespace, REPO, dialect, body, ['targets', 'snapshot', 'timestamp'], now);
      await store.markRepositoryOutdated(namespace, REPO);
      return { version: root.signed.version };
    });
  }

  async refreshRoot(namespace: string): Promise<void> {
    const now = this.clock();
    await this.storage.transaction(async (store) => {
      const dialect = await this.dialect(store, namespace, true);
      const root = await store.latestRoot(namespace, REPO);
      if (root && this.repos.needsRefresh(REPO, 'root', root.expires_at, now)) await this.repos.resignRoot(store, namespace, REPO, dialect, now);
    });
  }
}

export { conflict };
