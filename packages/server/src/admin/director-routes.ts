/**
 * Admin routes of the Director: OTA CE's multi-target updates, assignments
 * and device/ECU views, the Director root, and Uptide's `/api/v1/updates`
 * (launch an image to devices or a group, follow it per device and ECU).
 */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ns, paging, type Services } from './context.js';
import { resolveImage } from './image-routes.js';
import { badRequest, notFound } from '../errors.js';
import type { UpdateTargets } from '../director/updates.js';

const Checksum = Type.Object({ method: Type.Literal('sha256'), hash: Type.String({ pattern: '^[0-9a-fA-F]{64}$' }) });
const TargetSpec = Type.Object({
  target: Type.String({ minLength: 1, maxLength: 254 }),
  checksum: Checksum,
  targetLength: Type.Integer({ minimum: 1 }),
  uri: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
});
const MtuBody = Type.Object({
  targets: Type.Record(
    Type.String({ minLength: 1, maxLength: 200 }),
    Type.Object({
      to: TargetSpec,
      from: Type.Optional(Type.Union([TargetSpec, Type.Null()])),
      targetFormat: Type.Optional(Type.Union([Type.String(), Type.Null()])),
      generateDiff: Type.Optional(Type.Boolean()),
    }),
  ),
});
const DeviceList = Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 10_000 });

export async function directorRoutes(app: FastifyInstance, services: Services): Promise<void> {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { updates, director, registry } = services;

  // --- OTA CE multi-target updates and assignments --------------------------------------
  r.post(
    '/api/v1/multi_target_updates',
    { schema: { summary: 'Create a multi-target update (an image per hardware id); answers its id', tags: ['updates'], body: MtuBody } },
    async (request, reply) => {
      const id = await updates.create(ns(request), request.body.targets as UpdateTargets);
      return reply.code(201).send(JSON.stringify(id));
    },
  );

  r.get(
    '/api/v1/multi_target_updates/:id',
    { schema: { summary: 'Read a multi-target update', tags: ['updates'], params: Type.Object({ id: Type.String({ maxLength: 64 }) }) } },
    async (request) => {
      return { targets: (await updates.get(ns(request), request.params.id)).targets };
    },
  );

  r.post(
    '/api/v1/assignments',
    {
      schema: {
        summary: 'Assign a multi-target update to devices; answers the affected device ids',
        tags: ['updates'],
        body: Type.Object({
          mtuId: Type.String({ maxLength: 64 }),
          devices: DeviceList,
          correlationId: Type.Optional(Type.String({ maxLength: 255 })),
          dryRun: Type.Optional(Type.Boolean()),
        }),
      },
    },
    async (request, reply) => {
      const b = request.body;
      const res = await updates.assign(ns(request), b.mtuId, b.devices, {
        ...(b.correlationId ? { correlationId: b.correlationId } : {}),
        dryRun: b.dryRun ?? false,
      });
      return reply.code(b.dryRun ? 200 : 201).send(res.affected);
    },
  );

  r.get(
    '/api/v1/assignments/:device',
    { schema: { summary: "A device's queue of active assignments", tags: ['updates'], params: Type.Object({ device: Type.String({ maxLength: 128 }) }) } },
    async (request) => {
      const namespace = ns(request);
      await registry.requireDevice(namespace, request.params.device);
      const rows = await updates.assignmentsOf(namespace, request.params.device, true);
      const byUpdate = new Map<string, typeof rows>();
      for (const a of rows) byUpdate.set(a.update_id, [...(byUpdate.get(a.update_id) ?? []), a]);
      return [...byUpdate.entries()].map(([id, list]) => ({
        correlationId: (list[0] as (typeof rows)[number]).correlation_id,
        mtuId: id,
        inFlight: list.some((a) => a.status === 'in_flight'),
        targets: Object.fromEntries(
          list.map((a) => [a.ecu_serial, { image: { filepath: a.filename, fileinfo: { length: a.length, hashes: JSON.parse(a.hashes_json) as unknown } } }]),
        ),
      }));
    },
  );

  r.patch(
    '/api/v1/assignments',
    { schema: { summary: 'Cancel the assignments of devices (only those not yet in flight)', tags: ['updates'], body: DeviceList } },
    async (request) => {
      const res = await updates.cancel(ns(request), request.body);
      return res.cancelled;
    },
  );

  r.delete(
    '/api/v1/assignments/:device',
    {
      schema: {
        summary: "Cancel a device's assignments (only if not yet in flight)",
        tags: ['updates'],
        params: Type.Object({ device: Type.String({ maxLength: 128 }) }),
      },
    },
    async (request, reply) => {
      const res = await updates.cancel(ns(request), [request.params.device]);
      if (res.inFlight.length > 0) return reply.code(409).send({ code: 'in_flight', message: 'the update is already in flight: the device has fetched it' });
      return reply.code(200).send(res.cancelled);
    },
  );

  // --- Uptide updates -------------------------------------------------------------------
  r.post(
    '/api/v1/updates',
    {
      schema: {
        summary: 'Launch an image (filename or NAME@VERSION) to devices or a group',
        tags: ['updates'],
        body: Type.Object({
          image: Type.String({ minLength: 1, maxLength: 512 }),
          devices: Type.Optional(DeviceList),
          group: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          name: Type.Optional(Type.String({ maxLength: 255 })),
          dryRun: Type.Optional(Type.Boolean()),
        }),
      },
    },
    async (request, reply) => {
      const namespace = ns(request);
      const b = request.body;
      if ((b.devices === undefined) === (b.group === undefined)) throw badRequest('invalid_request', 'give exactly one of devices and group');
      const devices = b.devices ?? (await registry.groupMembers(namespace, b.group as string));
      if (devices.length === 0) throw badRequest('no_devices', 'no devices to update');
      const image = await resolveImage(services, namespace, b.image);
      if (b.dryRun) return reply.code(200).send({ id: null, image: image.filename, ...(await updates.previewForImage(namespace, image, devices)) });
      const id = await updates.createForImage(namespace, image, b.name);
      const res = await updates.assign(namespace, id, devices);
      return reply.code(201).send({ id, image: image.filename, ...res });
    },
  );

  r.get(
    '/api/v1/updates',
    {
      schema: {
        summary: 'List updates, newest first',
        tags: ['updates'],
        querystring: Type.Object({ offset: Type.Optional(Type.Integer({ minimum: 0 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }),
      },
    },
    async (request) => {
      const p = paging(request.query);
      const namespace = ns(request);
      const res = await updates.list(namespace, p.offset, p.limit);
      const counts = await updates.deviceCounts(
        namespace,
        res.rows.map((u) => u.id),
      );
      return {
        total: res.total,
        ...p,
        values: res.rows.map((u) => ({
          id: u.id,
          name: u.name,
          targets: JSON.parse(u.targets_json) as unknown,
          createdAt: new Date(u.created_at).toISOString(),
          counts: counts.get(u.id) ?? {},
        })),
      };
    },
  );

  r.get(
    '/api/v1/updates/:id',
    { schema: { summary: 'Status of an update per device and ECU', tags: ['updates'], params: Type.Object({ id: Type.String({ maxLength: 64 }) }) } },
    async (request) => {
      const s = await updates.status(ns(request), request.params.id);
      return {
        ...s,
        createdAt: new Date(s.createdAt).toISOString(),
        devices: s.devices.map((d) => ({ ...d, ecus: d.ecus.map((e) => ({ ...e, updatedAt: new Date(e.updatedAt).toISOString() })) })),
      };
    },
  );

  r.post(
    '/api/v1/updates/:id/cancel',
    {
      schema: {
        summary: 'Cancel an update on every device where it is not yet in flight',
        tags: ['updates'],
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
      },
    },
    async (request) => {
      return updates.cancelUpdate(ns(request), request.params.id);
    },
  );

  // --- Director views in OTA CE's shape -------------------------------------------------------
  r.get(
    '/api/v1/admin/devices',
    {
      schema: {
        summary: 'Devices known to the Director, optionally by primary hardware id',
        tags: ['director'],
        querystring: Type.Object({
          primaryHardwareId: Type.Optional(Type.String({ maxLength: 200 })),
          offset: Type.Optional(Type.Integer({ minimum: 0 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
        }),
      },
    },
    async (request) => {
      const p = paging(request.query);
      const res = await services.storage.store.listDevices(ns(request), {
        ...p,
        ...(request.query.primaryHardwareId ? { hardwareId: request.query.primaryHardwareId } : {}),
      });
      return { total: res.total, ...p, values: res.rows.map((d) => d.id) };
    },
  );

  r.get('/api/v1/admin/devices/hardware_identifiers', { schema: { summary: 'Hardware ids of registered ECUs', tags: ['director'] } }, async (request) => {
    const values = await services.storage.store.listHardwareIds(ns(request));
    return { total: values.length, offset: 0, limit: values.length, values };
  });

  r.get(
    '/api/v1/admin/devices/:device',
    {
      schema: { summary: "A device's ECUs with their installed images", tags: ['director'], params: Type.Object({ device: Type.String({ maxLength: 128 }) }) },
    },
    async (request) => {
      const ecus = await registry.ecus(ns(request), request.params.device);
      return ecus.map((e) => ({
        id: e.ecuSerial,
        hardwareId: e.hardwareId,
        primary: e.primary,
        image: e.installedImage ? { filepath: e.installedImage.filepath, size: e.installedImage.length, hash: e.installedImage.hashes } : null,
      }));
    },
  );

  r.get(
    '/api/v1/admin/devices/:device/ecus/:ecu/public_key',
    {
      schema: {
        summary: "An ECU's registered public key",
        tags: ['director'],
        params: Type.Object({ device: Type.String({ maxLength: 128 }), ecu: Type.String({ maxLength: 64 }) }),
      },
    },
    async (request) => {
      const rows = await services.storage.store.listEcus(ns(request), request.params.device);
      const e = rows.find((x) => x.serial === request.params.ecu);
      if (!e) throw notFound('ecu_not_found', `no ECU ${request.params.ecu} on ${request.params.device}`);
      return { keyid: e.key_id, key: JSON.parse(e.public_key_json) as unknown };
    },
  );

  r.post(
    '/api/v1/admin/repo/keys/:role',
    {
      schema: {
        summary: 'Generate a new online key for a role the server signs (first step of rotating it: list it in the next root)',
        tags: ['director'],
        params: Type.Object({ role: Type.Union([Type.Literal('targets'), Type.Literal('snapshot'), Type.Literal('timestamp')]) }),
      },
    },
    async (request, reply) => reply.code(201).send(await services.provisioning.generateOnlineKey(ns(request), 'director', request.params.role)),
  );

  // --- Director root ----------------------------------------------------------------------------
  r.get(
    '/api/v1/admin/repo/:file',
    { schema: { summary: 'Director root.json or N.root.json', tags: ['director'], params: Type.Object({ file: Type.String({ maxLength: 32 }) }) } },
    async (request, reply) => {
      const m = /^(?:(\d{1,9})\.)?root\.json$/.exec(request.params.file);
      if (!m) throw notFound('not_found', `no ${request.params.file}`);
      const bytes = await director.root(ns(request), m[1] === undefined ? undefined : Number(m[1]));
      if (!bytes) throw notFound('root_not_found', `no ${request.params.file}`);
      return reply.header('content-type', 'application/json').send(Buffer.from(bytes));
    },
  );

  r.post(
    '/api/v1/admin/repo/root',
    { bodyLimit: 1024 * 1024, schema: { summary: 'Push Director root N+1 (targets, snapshot and timestamp keys must stay online)', tags: ['director'] } },
    async (request) => {
      if (!request.rawBody) throw badRequest('missing_body', 'send the signed root as application/json');
      return director.pushRoot(ns(request), request.rawBody);
    },
  );

  r.get(
    '/api/v1/admin/repo/private_keys/:keyId',
    {
      schema: {
        summary: "Export an online Director key's private half",
        tags: ['director'],
        params: Type.Object({ keyId: Type.String({ pattern: '^[0-9a-f]{64}$' }) }),
      },
    },
    async (request) => {
      return { keyid: request.params.keyId, private: await services.provisioning.exportPrivateKey(ns(request), 'director', request.params.keyId) };
    },
  );

  r.delete(
    '/api/v1/admin/repo/private_keys/:keyId',
    {
      schema: {
        summary: 'Delete the online copy of a Director key (the root key, to take it offline)',
        tags: ['director'],
        params: Type.Object({ keyId: Type.String({ pattern: '^[0-9a-f]{64}$' }) }),
      },
    },
    async (request, reply) => {
      await services.provisioning.deletePrivateKey(ns(request), 'director', request.params.keyId);
      return reply.code(204).send();
    },
  );
}
