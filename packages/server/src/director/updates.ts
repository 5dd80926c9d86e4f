/**
 * Updates and assignments: OTA CE's multi-target updates (an image per
 * hardware id), assigned to devices; cancelled while not yet in flight.
 *
 * Dependency and conflict rules the Director enforces (§5.3.2.1 step 5):
 * - a device with an update still assigned or in flight gets no new one
 *   (never a bundle over a possibly half-installed one; cancel it first);
 * - only ECUs of a hardware id the update has an image for are affected,
 *   and only when they run the update's `from` image, if it names one;
 * - an image with a lower release counter than the ECU runs is not assigned;
 * - every image must be listed by the Image repository with the same length
 *   and hash (devices would refuse it otherwise).
 */
import { randomUUID } from 'node:crypto';
import type { Storage, Store, TargetRow, AssignmentRow } from '../storage/store.js';
import { badRequest, conflict, notFound } from '../errors.js';

const REPO = 'director';

export interface UpdateTargetSpec {
  readonly to: {
    readonly target: string;
    readonly checksum: { readonly method: string; readonly hash: string };
    readonly targetLength: number;
    readonly uri?: string | null;
  };
  readonly from?: { readonly target: string; readonly checksum: { readonly method: string; readonly hash: string }; readonly targetLength: number } | null;
  readonly targetFormat?: string | null;
  readonly generateDiff?: boolean;
}

export type UpdateTargets = Readonly<Record<string, UpdateTargetSpec>>;

export interface AssignResult {
  readonly affected: string[];
  readonly notAffected: Array<{ device: string; reason: string }>;
}

export interface UpdateStatus {
  readonly id: string;
  readonly name: string | null;
  readonly createdAt: number;
  readonly targets: UpdateTargets;
  readonly counts: Record<string, number>;
  readonly devices: Array<{
    device: string;
    status: string;
    ecus: Array<{
      ecu: string;
      hardwareId: string;
      target: string;
      status: string;
      resultCode: string | null;
      resultDescription: string | null;
      updatedAt: number;
    }>;
  }>;
}

/** The status of a device for an update: the worst of its ECUs' statuses. */
function deviceStatus(ecus: readonly { status: string }[]): string {
  for (const s of ['failed', 'in_flight', 'assigned', 'cancelled']) if (ecus.some((e) => e.status === s)) return s;
  return 'completed';
}

/** How the Director looks up what the Image repository lists (top-level or delegated). */
export interface TargetLookup {
  lookupTarget(store: Store, namespace: string, filename: string): Promise<TargetRow | undefined>;
}

export class Updates {
  constructor(
    private readonly storage: Storage,
    private readonly clock: () => Date,
    private readonly images: TargetLookup,
  ) {}

  /** Creates a multi-target update; every image must be on the Image repository with that length and hash. */
  async create(namespace: string, targets: UpdateTargets, name?: string): Promise<string> {
    const hwids = Object.keys(targets);
    if (hwids.length === 0) throw badRequest('invalid_update', 'an update needs at least one hardware id');
    for (const hw of hwids) {
      const spec = targets[hw] as UpdateTargetSpec;
      const t = await this.images.lookupTarget(this.storage.store, namespace, spec.to.target);
      if (!t) throw notFound('target_not_found', `the Image repository does not list ${spec.to.target}`);
      if (spec.to.checksum.method !== 'sha256' || spec.to.checksum.hash.toLowerCase() !== t.sha256 || spec.to.targetLength !== t.length) {
        throw badRequest('target_mismatch', `${spec.to.target}: checksum or length differ from the Image repository's`);
      }
      const hwList = JSON.parse(t.hardware_ids_json) as string[];
      if (!hwList.includes(hw))
        throw badRequest('hardware_mismatch', `${spec.to.target} is not built for hardware ${hw} (it lists ${hwList.join(', ') || 'none'})`);
    }
    const id = randomUUID();
    await this.storage.store.insertUpdate({ id, namespace, name: name ?? null, targets_json: JSON.stringify(targets), created_at: this.clock().getTime() });
    return id;
  }

  /** The update spec for one image: each of its hardware ids gets that image. */
  specForImage(target: TargetRow): UpdateTargets {
    const targets: Record<string, UpdateTargetSpec> = {};
    for (const hw of JSON.parse(target.hardware_ids_json) as string[]) {
      targets[hw] = {
        to: { target: target.filename, checksum: { method: 'sha256', hash: target.sha256 }, targetLength: target.length, uri: null },
        from: null,
        targetFormat: 'BINARY',
        generateDiff: false,
      };
    }
    return targets;
  }

  /** An update for one image: its hardware ids all get that image. */
  async createForImage(namespace: string, target: TargetRow, name?: string): Promise<string> {
    // NAME@VERSION may reach 511 characters; an update name is 255 at most.
    return this.create(namespace, this.specForImage(target), name ?? `${target.name ?? target.filename}@${target.version ?? ''}`.slice(0, 255));
  }

  /** Who an update of one image would affect, and why not the others; nothing is stored. */
  async previewForImage(namespace: string, target: TargetRow, deviceIds: readonly string[]): Promise<AssignResult> {
    return this.assignTargets(namespace, undefined, this.specForImage(target), deviceIds, { dryRun: true });
  }

  async get(namespace: string, id: string): Promise<{ id: string; name: string | null; targets: UpdateTargets; createdAt: number }> {
    const row = await this.storage.store.getUpdate(namespace, id);
    if (!row) throw notFound('update_not_found', `no update ${id}`);
    return { id: row.id, name: row.name, targets: JSON.parse(row.targets_json) as UpdateTargets, createdAt: row.created_at };
  }

  /** Assigns an update to devices (or only computes who would be affected, with dryRun). */
  async assign(
    namespace: string,
    updateId: string,
    deviceIds: readonly string[],
    options: { correlationId?: string; dryRun?: boolean } = {},
  ): Promise<AssignResult> {
    const update = await this.get(namespace, updateId);
    return this.assignTargets(namespace, updateId, update.targets, deviceIds, options);
  }

  /** Plans (and unless dryRun, stores) the assignments of an update's targets to devices. */
  private async assignTargets(
    namespace: string,
    updateId: string | undefined,
    targets: UpdateTargets,
    deviceIds: readonly string[],
    options: { correlationId?: string; dryRun?: boolean },
  ): Promise<AssignResult> {
    const correlationId = options.correlationId ?? `urn:here-ota:mtu:${updateId ?? 'preview'}`;
    if (!/^urn:[a-z0-9][a-z0-9-]{0,31}:[\x21-\x7e]{1,200}$/i.test(correlationId)) throw badRequest('invalid_correlation_id', 'correlationId must be a URN');
    const unique = [...new Set(deviceIds)];
    if (unique.length > 10_000) throw badRequest('too_many_devices', 'assign at most 10000 devices per request');
    const now = this.clock().getTime();
    return this.storage.transaction(async (store) => {
      const affected: string[] = [];
      const notAffected: Array<{ device: string; reason: string }> = [];
      const targetCache = new Map<string, TargetRow | undefined>();
      const targetOf = async (filename: string) => {
        if (!targetCache.has(filename)) targetCache.set(filename, await this.images.lookupTarget(store, namespace, filename));
        return targetCache.get(filename);
      };
      for (const deviceId of unique) {
        const device = await store.getDevice(namespace, deviceId, true);
        if (!device) {
          notAffected.push({ device: deviceId, reason: 'unknown_device' });
          continue;
        }
        if ((await store.activeAssignments(namespace, deviceId)).length > 0) {
          notAffected.push({ device: deviceId, reason: 'update_in_progress' });
          continue;
        }
        const plans: Array<{ ecu: string; hw: string; target: TargetRow; spec: UpdateTargetSpec }> = [];
        let reason = 'no_matching_hardware';
        for (const ecu of await store.listEcus(namespace, deviceId)) {
          const spec = targets[ecu.hardware_id];
          if (!spec) continue;
          const target = await targetOf(spec.to.target);
          if (!target) {
            reason = 'target_not_found';
            continue;
          }
          if (spec.from) {
            const installed = ecu.installed_hashes_json ? (JSON.parse(ecu.installed_hashes_json) as Record<string, string>)['sha256'] : undefined;
            if (ecu.installed_filename !== spec.from.target || installed?.toLowerCase() !== spec.from.checksum.hash.toLowerCase()) {
              reason = 'from_mismatch';
              continue;
            }
          }
          if (target.release_counter !== null && ecu.installed_filename) {
            const current = await targetOf(ecu.installed_filename);
            if (current?.release_counter !== null && current?.release_counter !== undefined && target.release_counter < current.release_counter) {
              reason = 'release_counter_rollback';
              continue;
            }
          }
          plans.push({ ecu: ecu.serial, hw: ecu.hardware_id, target, spec });
        }
        if (plans.length === 0) {
          notAffected.push({ device: deviceId, reason });
          continue;
        }
        affected.push(deviceId);
        if (options.dryRun || updateId === undefined) continue;
        for (const p of plans) {
          await store.insertAssignment({
            id: randomUUID(),
            namespace,
            device_id: deviceId,
            ecu_serial: p.ecu,
            update_id: updateId,
            correlation_id: correlationId,
            filename: p.target.filename,
            length: p.target.length,
            hashes_json: p.target.hashes_json,
            hardware_id: p.hw,
            uri: p.spec.to.uri ?? null,
            release_counter: p.target.release_counter,
            status: 'assigned',
            result_code: null,
            result_description: null,
            created_at: now,
            updated_at: now,
          });
        }
        await store.markOutdated(namespace, REPO, deviceId);
      }
      return { affected, notAffected };
    });
  }

  /** Cancels the devices' assignments that are not yet in flight. Returns the devices whose update was cancelled. */
  async cancel(namespace: string, deviceIds: readonly string[], updateId?: string): Promise<{ cancelled: string[]; inFlight: string[] }> {
    const now = this.clock().getTime();
    return this.storage.transaction(async (store) => {
      const cancelled: string[] = [];
      const inFlight: string[] = [];
      for (const deviceId of new Set(deviceIds)) {
        await store.getDevice(namespace, deviceId, true);
        const active = (await store.activeAssignments(namespace, deviceId)).filter((a) => updateId === undefined || a.update_id === updateId);
        if (active.length === 0) continue;
        if (active.some((a) => a.status === 'in_flight')) {
          inFlight.push(deviceId);
          continue;
        }
        for (const a of active)
          await store.setAssignmentStatus(a.id, 'cancelled', now, { code: 'OPERATION_CANCELLED', description: 'cancelled by an operator' });
        await store.markOutdated(namespace, REPO, deviceId);
        cancelled.push(deviceId);
      }
      return { cancelled, inFlight };
    });
  }

  async cancelUpdate(namespace: string, updateId: string): Promise<{ cancelled: string[]; inFlight: string[] }> {
    await this.get(namespace, updateId);
    const rows = await this.storage.store.listAssignments(namespace, { updateId });
    const devices = [...new Set(rows.filter((r) => r.status === 'assigned' || r.status === 'in_flight').map((r) => r.device_id))];
    return this.cancel(namespace, devices, updateId);
  }

  async status(namespace: string, updateId: string): Promise<UpdateStatus> {
    const update = await this.get(namespace, updateId);
    const rows = await this.storage.store.listAssignments(namespace, { updateId });
    const byDevice = new Map<string, AssignmentRow[]>();
    for (const r of rows) byDevice.set(r.device_id, [...(byDevice.get(r.device_id) ?? []), r]);
    const devices = [...byDevice.entries()].map(([device, list]) => ({
      device,
      status: deviceStatus(list),
      ecus: list.map((a) => ({
        ecu: a.ecu_serial,
        hardwareId: a.hardware_id,
        target: a.filename,
        status: a.status,
        resultCode: a.result_code,
        resultDescription: a.result_description,
        updatedAt: a.updated_at,
      })),
    }));
    const counts: Record<string, number> = { assigned: 0, in_flight: 0, completed: 0, failed: 0, cancelled: 0 };
    for (const d of devices) counts[d.status] = (counts[d.status] ?? 0) + 1;
    return { id: update.id, name: update.name, createdAt: update.createdAt, targets: update.targets, counts, devices };
  }

  /** Per update, how many devices are in each status (a device's status is the worst of its ECUs'). */
  async deviceCounts(namespace: string, updateIds: readonly string[]): Promise<Map<string, Record<string, number>>> {
    const rows = await this.storage.store.assignmentStatuses(namespace, updateIds);
    const byDevice = new Map<string, Map<string, Array<{ status: string }>>>();
    for (const r of rows) {
      let devices = byDevice.get(r.update_id);
      if (!devices) byDevice.set(r.update_id, (devices = new Map()));
      devices.set(r.device_id, [...(devices.get(r.device_id) ?? []), { status: r.status }]);
    }
    const out = new Map<string, Record<string, number>>();
    for (const [updateId, devices] of byDevice) {
      const counts: Record<string, number> = { assigned: 0, in_flight: 0, completed: 0, failed: 0, cancelled: 0 };
      for (const list of devices.values()) {
        const s = deviceStatus(list);
        counts[s] = (counts[s] ?? 0) + 1;
      }
      out.set(updateId, counts);
    }
    return out;
  }

  async list(namespace: string, offset: number, limit: number) {
    return this.storage.store.listUpdates(namespace, offset, limit);
  }

  async assignmentsOf(namespace: string, deviceId: string, activeOnly: boolean): Promise<AssignmentRow[]> {
    const rows = await this.storage.store.listAssignments(namespace, { deviceId });
    return activeOnly ? rows.filter((r) => r.status === 'assigned' || r.status === 'in_flight') : rows;
  }

  /** Refuses to work on an update that does not exist. */
  async ensure(store: Store, namespace: string, id: string): Promise<void> {
    if (!(await store.getUpdate(namespace, id))) throw conflict('update_not_found', `no update ${id}`);
  }
}
