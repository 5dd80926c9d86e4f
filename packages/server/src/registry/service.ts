/**
 * The device registry: devices, groups, what devices report about themselves
 * (hardware, network, aktualizr config, installed packages), aktualizr events,
 * installation history, and an honest status computed from manifests,
 * assignments and installation reports.
 */
import { randomUUID } from 'node:crypto';
import type { Storage, DeviceRow, EcuRow, AssignmentRow } from '../storage/store.js';
import { badRequest, conflict, notFound } from '../errors.js';

/** Device ids become certificate CNs and URL segments: keep them to a safe set. */
export const DEVICE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkDeviceId(id: string): void {
  if (!DEVICE_ID_RE.test(id))
    throw badRequest(
      'invalid_device_id',
      `invalid device id ${JSON.stringify(id.slice(0, 80))}: 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit`,
    );
}

export type DeviceStatus = 'NotSeen' | 'UpToDate' | 'UpdatePending' | 'UpdateInFlight' | 'Error';

export interface DeviceView {
  readonly deviceId: string;
  readonly deviceName: string;
  readonly deviceType: string;
  readonly createdAt: string;
  readonly activatedAt: string | null;
  readonly lastSeen: string | null;
  readonly deviceStatus: DeviceStatus;
  readonly primaryEcuSerial: string | null;
}

export interface EcuView {
  readonly ecuSerial: string;
  readonly hardwareId: string;
  readonly primary: boolean;
  readonly keyId: string;
  readonly installedImage: { filepath: string; length: number; hashes: Record<string, string>; reportedAt: string | null } | null;
}

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export interface EventInput {
  readonly id: string;
  readonly deviceTime: string;
  readonly eventType: { readonly id: string; readonly version: number };
  readonly event: Record<string, unknown>;
}

export class Registry {
  constructor(
    private readonly storage: Storage,
    private readonly clock: () => Date,
  ) {}

  async createDevice(
    namespace: string,
    input: { deviceId: string; deviceName?: string; deviceType?: string },
  ): Promise<{ created: boolean; device: DeviceRow }> {
    checkDeviceId(input.deviceId);
    const name = input.deviceName ?? input.deviceId;
    if (name.length === 0 || name.length > 255) throw badRequest('invalid_device_name', 'deviceName must be 1-255 characters');
    const now = this.clock().getTime();
    const created = await this.storage.store.insertDevice({
      namespace,
      id: input.deviceId,
      name,
      device_type: input.deviceType ?? 'Other',
      created_at: now,
      activated_at: null,
      last_seen_at: null,
      primary_ecu_serial: null,
      director_generation: 0,
    });
    const device = await this.storage.store.getDevice(namespace, input.deviceId);
    return { created, device: device as DeviceRow };
  }

  async requireDevice(namespace: string, deviceId: string): Promise<DeviceRow> {
    const d = await this.storage.store.getDevice(namespace, deviceId);
    if (!d) throw notFound('device_not_found', `no device ${deviceId}: list devices with GET /api/v1/devices`);
    return d;
  }

  async deleteDevice(namespace: string, deviceId: string): Promise<void> {
    await this.requireDevice(namespace, deviceId);
    await this.storage.transaction((store) => store.deleteDevice(namespace, deviceId, this.clock().getTime()));
  }

  private status(device: DeviceRow, active: readonly AssignmentRow[], lastReportFailed: boolean): DeviceStatus {
    if (device.last_seen_at === null) return 'NotSeen';
    if (active.some((a) => a.status === 'in_flight')) return 'UpdateInFlight';
    if (active.length > 0) return 'UpdatePending';
    if (lastReportFailed) return 'Error';
    return 'UpToDate';
  }

  private async lastReportFailed(namespace: string, deviceId: string): Promise<boolean> {
    const last = (await this.storage.store.listInstallationReports(namespace, deviceId, 1))[0];
    return last !== undefined && last.success === 0;
  }

  async view(namespace: string, device: DeviceRow, active?: readonly AssignmentRow[]): Promise<DeviceView> {
    const a = active ?? (await this.storage.store.activeAssignments(namespace, device.id));
    return {
      deviceId: device.id,
      deviceName: device.name,
      deviceType: device.device_type,
      createdAt: new Date(device.created_at).toISOString(),
      activatedAt: iso(device.activated_at),
      lastSeen: iso(device.last_seen_at),
      deviceStatus: this.status(device, a, a.length === 0 && (await this.lastReportFailed(namespace, device.id))),
      primaryEcuSerial: device.primary_ecu_serial,
    };
  }

  async list(
    namespace: string,
    opts: { nameContains?: string; groupId?: string; hardwareId?: string; status?: string; offset: number; limit: number },
  ): Promise<{ total: number; offset: number; limit: number; values: DeviceView[] }> {
    if (opts.status !== undefined) {
      // Status is computed; filter over the whole (name/group-filtered) list.
      const all = await this.storage.store.listDevices(namespace, { ...opts, offset: 0, limit: 1_000_000 });
      const views = await this.views(namespace, all.rows);
      const filtered = views.filter((v) => v.deviceStatus === opts.status);
      return { total: filtered.length, offset: opts.offset, limit: opts.limit, values: filtered.slice(opts.offset, opts.offset + opts.limit) };
    }
    const { total, rows } = await this.storage.store.listDevices(namespace, opts);
    return { total, offset: opts.offset, limit: opts.limit, values: await this.views(namespace, rows) };
  }

  private async views(namespace: string, rows: readonly DeviceRow[]): Promise<DeviceView[]> {
    const active = await this.storage.store.activeAssignmentsFor(
      namespace,
      rows.map((r) => r.id),
    );
    const byDevice = new Map<string, AssignmentRow[]>();
    for (const a of active) byDevice.set(a.device_id, [...(byDevice.get(a.device_id) ?? []), a]);
    return Promise.all(rows.map((r) => this.view(namespace, r, byDevice.get(r.id) ?? [])));
  }

  /** Devices by status for the whole namespace, computed the same way as each device's status. */
  async stats(namespace: string): Promise<{ total: number; byStatus: Record<DeviceStatus, number> }> {
    const facts = await this.storage.store.fleetFacts(namespace);
    const inFlight = new Set(facts.active.filter((a) => a.status === 'in_flight').map((a) => a.device_id));
    const pending = new Set(facts.active.map((a) => a.device_id));
    const failed = new Set(facts.lastReports.filter((r) => r.success === 0).map((r) => r.device_id));
    const byStatus: Record<DeviceStatus, number> = { NotSeen: 0, UpToDate: 0, UpdatePending: 0, UpdateInFlight: 0, Error: 0 };
    for (const d of facts.devices) {
      const status: DeviceStatus =
        d.last_seen_at === null
          ? 'NotSeen'
          : inFlight.has(d.id)
            ? 'UpdateInFlight'
            : pending.has(d.id)
              ? 'UpdatePending'
              : failed.has(d.id)
                ? 'Error'
                : 'UpToDate';
      byStatus[status]++;
    }
    return { total: facts.devices.length, byStatus };
  }

  ecuView(e: EcuRow): EcuView {
    return {
      ecuSerial: e.serial,
      hardwareId: e.hardware_id,
      primary: e.is_primary === 1,
      keyId: e.key_id,
      installedImage:
        e.installed_filename === null
          ? null
          : {
              filepath: e.installed_filename,
              length: e.installed_length ?? 0,
              hashes: JSON.parse(e.installed_hashes_json ?? '{}') as Record<string, string>,
              reportedAt: iso(e.installed_at),
            },
    };
  }

  /** Everything an operator wants on one device: ECUs, installed images, assignments, attacks, groups. */
  async details(namespace: string, deviceId: string) {
    const device = await this.requireDevice(namespace, deviceId);
    const s = this.storage.store;
    const [ecus, assignments, attacks, groups, replacements, reports] = await Promise.all([
      s.listEcus(namespace, deviceId),
      s.listAssignments(namespace, { deviceId }),
      s.listSecurityEvents(namespace, deviceId, 50),
      s.groupsOfDevice(namespace, deviceId),
      s.listEcuReplacements(namespace, deviceId),
      s.listInstallationReports(namespace, deviceId, 1),
    ]);
    const active = assignments.filter((a) => a.status === 'assigned' || a.status === 'in_flight');
    return {
      ...(await this.view(namespace, device, active)),
      ecus: ecus.map((e) => this.ecuView(e)),
      updates: assignments.slice(-20).map((a) => ({
        updateId: a.update_id,
        correlationId: a.correlation_id,
        ecu: a.ecu_serial,
        target: a.filename,
        status: a.status,
        resultCode: a.result_code,
        resultDescription: a.result_description,
        updatedAt: new Date(a.updated_at).toISOString(),
      })),
      lastInstallation: reports[0]
        ? {
            correlationId: reports[0].correlation_id,
            success: reports[0].success === 1,
            code: reports[0].code,
            description: reports[0].description,
            receivedAt: new Date(reports[0].received_at).toISOString(),
          }
        : null,
      attacks: attacks.map((a) => ({
        ecu: a.ecu_serial,
        source: a.source,
        code: a.code,
        message: a.message,
        repository: a.repository,
        role: a.role,
        at: new Date(a.created_at).toISOString(),
      })),
      groups: groups.map((g) => ({ id: g.id, name: g.name })),
      ecuReplacements: replacements.map((r) => ({
        before: JSON.parse(r.before_json) as unknown,
        after: JSON.parse(r.after_json) as unknown,
        at: new Date(r.created_at).toISOString(),
      })),
    };
  }

  async ecus(namespace: string, deviceId: string): Promise<EcuView[]> {
    await this.requireDevice(namespace, deviceId);
    return (await this.storage.store.listEcus(namespace, deviceId)).map((e) => this.ecuView(e));
  }

  // --- what devices report ------------------------------------------------------------------

  async putReport(namespace: string, deviceId: string, kind: 'hardware' | 'network' | 'config' | 'packages', body: string): Promise<void> {
    await this.storage.store.putDeviceReport(namespace, deviceId, kind, body, this.clock().getTime());
  }

  async getReport(namespace: string, deviceId: string, kind: string): Promise<string | undefined> {
    await this.requireDevice(namespace, deviceId);
    return (await this.storage.store.getDeviceReport(namespace, deviceId, kind))?.body;
  }

  private readonly lastSeenWritten = new Map<string, number>();

  /**
   * Records that a device checked in. Writes at most once a minute per device
   * and instance (remembered in memory), so check-ins stay cheap at fleet scale.
   */
  async seen(namespace: string, deviceId: string): Promise<void> {
    const now = this.clock().getTime();
    const key = `${namespace}\u0000${deviceId}`;
    const last = this.lastSeenWritten.get(key);
    if (last !== undefined && now - last < 60_000) return;
    if (this.lastSeenWritten.size > 100_000) this.lastSeenWritten.clear();
    this.lastSeenWritten.set(key, now);
    await this.storage.store.markSeen(namespace, deviceId, now, now - 60_000);
  }

  async addEvents(namespace: string, deviceId: string, events: readonly EventInput[]): Promise<void> {
    const now = this.clock().getTime();
    await this.storage.store.insertEvents(
      events.map((e) => ({
        namespace,
        id: e.id,
        device_id: deviceId,
        event_type: e.eventType.id,
        event_version: e.eventType.version,
        device_time: e.deviceTime,
        received_at: now,
        // Columns for filtering, filled only when the value fits them (ECU serials are 64, correlation ids 255 at most);
        // the event itself is kept whole in payload_json.
        ecu: typeof e.event['ecu'] === 'string' && e.event['ecu'].length <= 64 ? e.event['ecu'] : null,
        correlation_id: typeof e.event['correlationId'] === 'string' && e.event['correlationId'].length <= 255 ? e.event['correlationId'] : null,
        payload_json: JSON.stringify(e.event),
      })),
    );
  }

  async events(namespace: string, deviceId: string, correlationId: string | undefined, limit: number) {
    await this.requireDevice(namespace, deviceId);
    const rows = await this.storage.store.listEvents(namespace, deviceId, { ...(correlationId !== undefined ? { correlationId } : {}), limit });
    return rows.map((r) => ({
      id: r.id,
      deviceUuid: r.device_id,
      eventType: { id: r.event_type, version: r.event_version },
      deviceTime: r.device_time,
      receivedAt: new Date(r.received_at).toISOString(),
      payload: JSON.parse(r.payload_json) as unknown,
    }));
  }

  async installationHistory(namespace: string, deviceId: string, limit: number) {
    await this.requireDevice(namespace, deviceId);
    const rows = await this.storage.store.listInstallationReports(namespace, deviceId, limit);
    return rows.map((r) => ({
      correlationId: r.correlation_id,
      success: r.success === 1,
      code: r.code,
      description: r.description,
      rawReport: r.raw_report,
      items: JSON.parse(r.items_json) as unknown,
      receivedAt: new Date(r.received_at).toISOString(),
    }));
  }

  async securityEvents(namespace: string, deviceId: string | undefined, limit: number) {
    if (deviceId !== undefined) await this.requireDevice(namespace, deviceId);
    const rows = await this.storage.store.listSecurityEvents(namespace, deviceId, limit);
    return rows.map((a) => ({
      device: a.device_id,
      ecu: a.ecu_serial,
      source: a.source,
      code: a.code,
      message: a.message,
      repository: a.repository,
      role: a.role,
      at: new Date(a.created_at).toISOString(),
    }));
  }

  // --- groups ---------------------------------------------------------------------------------

  async createGroup(namespace: string, name: string): Promise<{ id: string; name: string }> {
    if (name.length === 0 || name.length > 200 || !/^[\x20-\x7e]+$/.test(name))
      throw badRequest('invalid_group_name', 'group names are 1-200 printable ASCII characters');
    if (await this.storage.store.findGroupByName(namespace, name)) throw conflict('group_exists', `a group named ${name} exists already`);
    const id = randomUUID();
    await this.storage.store.insertGroup({ id, namespace, name, created_at: this.clock().getTime() });
    return { id, name };
  }

  async requireGroup(namespace: string, idOrName: string) {
    const g = (await this.storage.store.getGroup(namespace, idOrName)) ?? (await this.storage.store.findGroupByName(namespace, idOrName));
    if (!g) throw notFound('group_not_found', `no group ${idOrName}`);
    return g;
  }

  async listGroups(namespace: string) {
    return (await this.storage.store.listGroups(namespace)).map((g) => ({
      id: g.id,
      name: g.name,
      size: g.size,
      createdAt: new Date(g.created_at).toISOString(),
    }));
  }

  async deleteGroup(namespace: string, id: string): Promise<void> {
    const g = await this.requireGroup(namespace, id);
    await this.storage.transaction((store) => store.deleteGroup(namespace, g.id));
  }

  async addToGroup(namespace: string, groupId: string, deviceId: string): Promise<void> {
    const g = await this.requireGroup(namespace, groupId);
    await this.requireDevice(namespace, deviceId);
    await this.storage.store.addGroupMember(namespace, g.id, deviceId, this.clock().getTime());
  }

  async removeFromGroup(namespace: string, groupId: string, deviceId: string): Promise<void> {
    const g = await this.requireGroup(namespace, groupId);
    if (!(await this.storage.store.removeGroupMember(namespace, g.id, deviceId))) throw notFound('not_a_member', `${deviceId} is not in group ${g.name}`);
  }

  async groupMembers(namespace: string, groupId: string): Promise<string[]> {
    const g = await this.requireGroup(namespace, groupId);
    return this.storage.store.groupMembers(namespace, g.id);
  }
}
