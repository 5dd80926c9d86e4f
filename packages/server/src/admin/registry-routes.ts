/**
 * Admin routes of the device registry (OTA CE's `/api/v1/devices`,
 * `/api/v1/device_groups`) and of device credentials and fleet provisioning.
 */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ns, paging, type Services } from './context.js';
import { conflict, notFound } from '../errors.js';

const DeviceId = Type.String({ minLength: 1, maxLength: 128 });
const ListQuery = Type.Object({
  nameContains: Type.Optional(Type.String({ maxLength: 255 })),
  groupId: Type.Optional(Type.String({ maxLength: 200 })),
  hardwareId: Type.Optional(Type.String({ maxLength: 200 })),
  status: Type.Optional(Type.Union(['NotSeen', 'UpToDate', 'UpdatePending', 'UpdateInFlight', 'Error'].map((s) => Type.Literal(s)))),
  offset: Type.Optional(Type.Integer({ minimum: 0 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
});

export async function registryRoutes(app: FastifyInstance, services: Services): Promise<void> {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { registry, provisioning } = services;

  r.post(
    '/api/v1/devices',
    {
      schema: {
        summary: 'Create a device (without credentials; see POST /api/v1/devices/{id}/credentials)',
        tags: ['devices'],
        body: Type.Object({
          deviceId: DeviceId,
          deviceName: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
          deviceType: Type.Optional(Type.String({ maxLength: 64 })),
        }),
      },
    },
    async (request, reply) => {
      const res = await registry.createDevice(ns(request), request.body);
      if (!res.created) throw conflict('device_exists', `device ${request.body.deviceId} exists already`);
      return reply.code(201).send(await registry.view(ns(request), res.device));
    },
  );

  r.get('/api/v1/devices', { schema: { summary: 'List devices, with paging and filters', tags: ['devices'], querystring: ListQuery } }, async (request) => {
    const q = request.query;
    const namespace = ns(request);
    const groupId = q.groupId === undefined ? undefined : (await registry.requireGroup(namespace, q.groupId)).id;
    return registry.list(namespace, {
      ...paging(q),
      ...(q.nameContains !== undefined ? { nameContains: q.nameContains } : {}),
      ...(groupId !== undefined ? { groupId } : {}),
      ...(q.hardwareId !== undefined ? { hardwareId: q.hardwareId } : {}),
      ...(q.status !== undefined ? { status: q.status } : {}),
    });
  });

  r.get(
    '/api/v1/fleet/stats',
    { schema: { summary: 'Devices by status across the namespace (NotSeen, UpToDate, UpdatePending, UpdateInFlight, Error)', tags: ['devices'] } },
    async (request) => registry.stats(ns(request)),
  );

  r.get(
    '/api/v1/devices/:id',
    { schema: { summary: 'A device: ECUs, installed images, status, updates, attacks, groups', tags: ['devices'], params: Type.Object({ id: DeviceId }) } },
    async (request) => registry.details(ns(request), request.params.id),
  );

  r.delete(
    '/api/v1/devices/:id',
    { schema: { summary: 'Delete a device and revoke its credentials', tags: ['devices'], params: Type.Object({ id: DeviceId }) } },
    async (request, reply) => {
      await registry.deleteDevice(ns(request), request.params.id);
      // Its certificates were revoked with it: connections that proved them must not keep working.
      provisioning.forgetIdentities();
      return reply.code(204).send();
    },
  );

  r.get('/api/v1/devices/:id/ecus', { schema: { summary: "A device's ECUs", tags: ['devices'], params: Type.Object({ id: DeviceId }) } }, async (request) =>
    registry.ecus(ns(request), request.params.id),
  );

  r.get(
    '/api/v1/devices/:id/events',
    {
      schema: {
        summary: 'aktualizr events of a device, newest first',
        tags: ['devices'],
        params: Type.Object({ id: DeviceId }),
        querystring: Type.Object({
          correlationId: Type.Optional(Type.String({ maxLength: 255 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
        }),
      },
    },
    async (request) => registry.events(ns(request), request.params.id, request.query.correlationId, request.query.limit ?? 100),
  );

  r.get(
    '/api/v1/devices/:id/installation_history',
    {
      schema: {
        summary: 'Installation reports of a device, newest first',
        tags: ['devices'],
        params: Type.Object({ id: DeviceId }),
        querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }),
      },
    },
    async (request) => registry.installationHistory(ns(request), request.params.id, request.query.limit ?? 50),
  );

  r.get(
    '/api/v1/devices/:id/attacks',
    {
      schema: {
        summary: 'Attacks reported by the ECUs of a device, and manifests the Director refused',
        tags: ['devices'],
        params: Type.Object({ id: DeviceId }),
      },
    },
    async (request) => registry.securityEvents(ns(request), request.params.id, 200),
  );

  for (const [path, kind] of [
    ['system_info', 'hardware'],
    ['system_info/network', 'network'],
    ['system_info/config', 'config'],
    ['packages', 'packages'],
  ] as const) {
    r.get(
      `/api/v1/devices/:id/${path}`,
      { schema: { summary: `What the device reported (${kind})`, tags: ['devices'], params: Type.Object({ id: DeviceId }) } },
      async (request, reply) => {
        const body = await registry.getReport(ns(request), request.params.id, kind);
        if (body === undefined) throw notFound('not_reported', `the device has not reported its ${kind} yet`);
        return reply.header('content-type', kind === 'config' ? 'text/plain; charset=utf-8' : 'application/json').send(body);
      },
    );
  }

  r.get(
    '/api/v1/attacks',
    {
      schema: {
        summary: 'Attacks reported across the namespace, newest first',
        tags: ['devices'],
        querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }),
      },
    },
    async (request) => registry.securityEvents(ns(request), undefined, request.query.limit ?? 200),
  );

  // --- credentials ---------------------------------------------------------------------------------
  r.post(
    '/api/v1/devices/:id/credentials',
    {
      schema: {
        summary: 'Issue a device certificate (creating the device if needed): for a public key you send, or with a generated key returned once',
        tags: ['provisioning'],
        params: Type.Object({ id: DeviceId }),
        body: Type.Optional(
          Type.Object({
            publicKey: Type.Optional(Type.String({ maxLength: 16_000, description: 'PEM SubjectPublicKeyInfo; omit to have a key generated' })),
            ttlDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 36500 })),
            deviceName: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
          }),
        ),
      },
    },
    async (request, reply) => {
      const b = request.body ?? {};
      const res = await provisioning.issueDeviceCredentials(ns(request), request.params.id, b);
      return reply.code(201).send(res);
    },
  );

  r.get(
    '/api/v1/devices/:id/credentials',
    { schema: { summary: "A device's certificates", tags: ['provisioning'], params: Type.Object({ id: DeviceId }) } },
    async (request) => provisioning.listCredentials(ns(request), request.params.id),
  );

  r.delete(
    '/api/v1/devices/:id/credentials/:serial',
    {
      schema: {
        summary: 'Revoke a device certificate: the gateway refuses it from now on',
        tags: ['provisioning'],
        params: Type.Object({ id: DeviceId, serial: Type.String({ maxLength: 64 }) }),
      },
    },
    async (request, reply) => {
      await provisioning.revoke(ns(request), request.params.serial, request.params.id);
      return reply.code(204).send();
    },
  );

  r.post(
    '/api/v1/provisioning/credentials',
    { schema: { summary: "A new fleet credentials.zip for aktualizr's shared-credential auto-provisioning", tags: ['provisioning'] } },
    async (request, reply) => {
      const zip = await provisioning.credentialsZip(ns(request));
      return reply.header('content-type', 'application/zip').header('content-disposition', 'attachment; filename="credentials.zip"').send(zip);
    },
  );

  r.get('/api/v1/provisioning/credentials', { schema: { summary: 'Fleet bootstrap certificates', tags: ['provisioning'] } }, async (request) =>
    provisioning.listBootstrap(ns(request)),
  );

  r.delete(
    '/api/v1/provisioning/credentials/:serial',
    { schema: { summary: 'Revoke a fleet bootstrap certificate', tags: ['provisioning'], params: Type.Object({ serial: Type.String({ maxLength: 64 }) }) } },
    async (request, reply) => {
      await provisioning.revoke(ns(request), request.params.serial);
      return reply.code(204).send();
    },
  );

  r.get(
    '/api/v1/provisioning/info',
    { schema: { summary: 'What a device configuration needs: gateway URL, CA certificates, initial roots', tags: ['provisioning'] } },
    async (request) => provisioning.info(ns(request)),
  );

  // --- groups ------------------------------------------------------------------------------------------
  r.post(
    '/api/v1/device_groups',
    {
      schema: {
        summary: 'Create a static group',
        tags: ['groups'],
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }), groupType: Type.Optional(Type.Literal('static')) }),
      },
    },
    async (request, reply) => {
      return reply.code(201).send(await registry.createGroup(ns(request), request.body.name));
    },
  );

  r.get('/api/v1/device_groups', { schema: { summary: 'List groups', tags: ['groups'] } }, async (request) => {
    const values = await registry.listGroups(ns(request));
    return { total: values.length, offset: 0, limit: values.length, values };
  });

  r.get(
    '/api/v1/device_groups/:group',
    { schema: { summary: 'A group (by id or name)', tags: ['groups'], params: Type.Object({ group: Type.String({ maxLength: 200 }) }) } },
    async (request) => {
      const namespace = ns(request);
      const g = await registry.requireGroup(namespace, request.params.group);
      return { id: g.id, name: g.name, createdAt: new Date(g.created_at).toISOString(), devices: await registry.groupMembers(namespace, g.id) };
    },
  );

  r.delete(
    '/api/v1/device_groups/:group',
    { schema: { summary: 'Delete a group', tags: ['groups'], params: Type.Object({ group: Type.String({ maxLength: 200 }) }) } },
    async (request, reply) => {
      await registry.deleteGroup(ns(request), request.params.group);
      return reply.code(204).send();
    },
  );

  r.get(
    '/api/v1/device_groups/:group/devices',
    { schema: { summary: 'Devices of a group', tags: ['groups'], params: Type.Object({ group: Type.String({ maxLength: 200 }) }) } },
    async (request) => {
      const values = await registry.groupMembers(ns(request), request.params.group);
      return { total: values.length, offset: 0, limit: values.length, values };
    },
  );

  r.post(
    '/api/v1/device_groups/:group/devices/:device',
    { schema: { summary: 'Add a device to a group', tags: ['groups'], params: Type.Object({ group: Type.String({ maxLength: 200 }), device: DeviceId }) } },
    async (request, reply) => {
      await registry.addToGroup(ns(request), request.params.group, request.params.device);
      return reply.code(204).send();
    },
  );

  r.delete(
    '/api/v1/device_groups/:group/devices/:device',
    {
      schema: { summary: 'Remove a device from a group', tags: ['groups'], params: Type.Object({ group: Type.String({ maxLength: 200 }), device: DeviceId }) },
    },
    async (request, reply) => {
      await registry.removeFromGroup(ns(request), request.params.group, request.params.device);
      return reply.code(204).send();
    },
  );
}
