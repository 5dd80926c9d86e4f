/**
 * The device gateway: every route aktualizr calls (device-api.md §1), in the
 * OTA CE layout. The device is the CN of its TLS client certificate, checked
 * against the namespace's device CA and our records on every connection;
 * identity never comes from a header. In the development-only plain-HTTP mode
 * the device id is the `/d/<device>` prefix of the URL, with no proof at all.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import { badRequest, notFound } from '../errors.js';
import { sendBytes, sendRanged } from '../http/common.js';
import type { Services } from '../admin/context.js';
import type { DeviceIdentity } from '../provisioning/service.js';
import { DeviceAuthError } from '../provisioning/service.js';
import type { EventInput } from '../registry/service.js';

declare module 'fastify' {
  interface FastifyRequest {
    device?: DeviceIdentity;
  }
}

export interface GatewayOptions {
  /** true: TLS with client certificates; false: plain HTTP, device id from `/d/<device>` (development only). */
  readonly tls: boolean;
}

const socketIdentity = new WeakMap<object, { identity: DeviceIdentity; at: number; generation: number }>();
const SOCKET_RECHECK_MS = 10_000;

function device(request: FastifyRequest): DeviceIdentity {
  const d = request.device;
  if (!d) throw new DeviceAuthError(401, 'device_certificate_refused', 'no device identity');
  return d;
}

function requireDevice(request: FastifyRequest): DeviceIdentity {
  const d = device(request);
  if (d.kind !== 'device')
    throw new DeviceAuthError(403, 'not_a_device_certificate', 'this route needs a device certificate, not the fleet bootstrap certificate');
  return d;
}

export async function gatewayRoutes(app: FastifyInstance, services: Services, options: GatewayOptions): Promise<void> {
  const { director, imageRepo, registry, provisioning, metrics } = services;
  const prefix = options.tls ? '' : '/d/:deviceId';

  app.addHook('onRequest', async (request) => {
    if (options.tls) {
      const socket = request.raw.socket as TLSSocket;
      const now = Date.now();
      const cached = socketIdentity.get(socket);
      // A revocation since the check makes the connection prove itself again (keep-alive connections stay open for long).
      if (cached && now - cached.at < SOCKET_RECHECK_MS && cached.generation === provisioning.identityGeneration) {
        request.device = cached.identity;
        return;
      }
      const generation = provisioning.identityGeneration;
      const identity = await provisioning.identify(socket);
      socketIdentity.set(socket, { identity, at: now, generation });
      request.device = identity;
    } else {
      const id = (request.params as Record<string, string> | undefined)?.['deviceId'];
      if (!id) throw notFound('not_found', 'plain-HTTP device routes start with /d/<device id>');
      const d = await services.storage.store.getDevice('default', id);
      if (!d) throw new DeviceAuthError(403, 'unknown_device', `device ${id} is not registered`);
      request.device = { namespace: 'default', deviceId: id, kind: 'device', serial: '' };
    }
  });

  // Device-facing JSON bodies are small: aktualizr's largest is a manifest with its Secondaries' reports.
  const small = { bodyLimit: 1024 * 1024 };

  // --- provisioning and registration ---------------------------------------------------
  app.post(`${prefix}/devices`, small, async (request, reply) => {
    const p12 = await provisioning.autoProvision(device(request), request.body);
    metrics.inc('uptide_devices_auto_provisioned_total');
    return reply.code(200).header('content-type', 'application/x-pkcs12').send(p12);
  });

  app.post(`${prefix}/director/ecus`, small, async (request, reply) => {
    const d = requireDevice(request);
    const outcome = await director.registerEcus(d.namespace, d.deviceId, request.body);
    return reply.code(outcome === 'created' ? 201 : 200).send({ outcome });
  });

  // The Director parses the manifest itself, strictly, from the bytes: a scope whose JSON parser only keeps them.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(/^application\/(?:[\w.+-]+\+)?json$/, { parseAs: 'buffer' }, (request, body: Buffer, done) => {
      request.rawBody = body;
      done(null, undefined);
    });
    scope.put(`${prefix}/director/manifest`, small, async (request, reply) => {
      const d = requireDevice(request);
      if (!request.rawBody || request.rawBody.length === 0) throw badRequest('missing_body', 'send the signed vehicle manifest as application/json');
      try {
        await director.processManifest(d.namespace, d.deviceId, request.rawBody);
      } catch (err) {
        metrics.inc('uptide_manifests_total', { result: 'refused' });
        throw err;
      }
      metrics.inc('uptide_manifests_total', { result: 'accepted' });
      return reply.code(200).send({});
    });
  });

  // --- Director metadata (per device) -------------------------------------------------------
  app.get(`${prefix}/director/:file`, async (request, reply) => {
    const d = requireDevice(request);
    const file = (request.params as Record<string, string>)['file'] as string;
    const m = /^(?:(\d{1,9})\.)?root\.json$/.exec(file);
    if (m) {
      const bytes = await director.root(d.namespace, m[1] === undefined ? undefined : Number(m[1]));
      if (!bytes) throw notFound('root_not_found', `no ${file}`);
      return reply.header('content-type', 'application/json').send(Buffer.from(bytes));
    }
    const role = file === 'targets.json' ? 'targets' : file === 'snapshot.json' ? 'snapshot' : file === 'timestamp.json' ? 'timestamp' : undefined;
    if (!role) throw notFound('not_found', `no ${file}`);
    const f = await director.metadata(d.namespace, d.deviceId, role);
    await registry.seen(d.namespace, d.deviceId);
    metrics.inc('uptide_director_metadata_total', { role });
    return sendBytes(request, reply, f.bytes, f.checksum);
  });

  // --- Image repository metadata and images (per namespace) --------------------------------------
  // Everything but POST /devices needs a device certificate: the fleet bootstrap certificate only asks for one.
  const repoFile = async (request: FastifyRequest, reply: FastifyReply) => {
    const d = requireDevice(request);
    const file = (request.params as Record<string, string>)['file'] as string;
    const m = /^(?:(\d{1,9})\.)?root\.json$/.exec(file);
    if (m) {
      const bytes = await imageRepo.root(d.namespace, m[1] === undefined ? undefined : Number(m[1]));
      if (!bytes) throw notFound('root_not_found', `no ${file}`);
      return reply.header('content-type', 'application/json').send(Buffer.from(bytes));
    }
    const role = file === 'targets.json' ? 'targets' : file === 'snapshot.json' ? 'snapshot' : file === 'timestamp.json' ? 'timestamp' : undefined;
    const f = role ? await imageRepo.metadata(d.namespace, role) : undefined;
    if (!f) throw notFound('not_found', `no ${file}`);
    return sendBytes(request, reply, f.bytes, f.checksum);
  };
  app.get(`${prefix}/repo/:file`, repoFile);

  app.get(`${prefix}/repo/delegations/:file`, async (request, reply) => {
    const d = requireDevice(request);
    const file = (request.params as Record<string, string>)['file'] as string;
    if (!file.endsWith('.json')) throw notFound('not_found', `no ${file}`);
    const f = await imageRepo.delegatedRole(d.namespace, file.slice(0, -5));
    if (!f) throw notFound('delegation_not_found', `no delegated role ${file}`);
    return sendBytes(request, reply, f.bytes, f.checksum);
  });

  const download = async (request: FastifyRequest, reply: FastifyReply) => {
    const d = requireDevice(request);
    const filename = (request.params as Record<string, string>)['*'] ?? '';
    const blob = await imageRepo.blobFor(d.namespace, filename);
    if (!blob) throw notFound('target_not_found', `no stored image ${filename}`);
    const target = await imageRepo.getTarget(d.namespace, filename);
    metrics.inc('uptide_image_downloads_total');
    return sendRanged(request, reply, blob.length, (range) => services.blobs.open(blob.blobId, range), target?.sha256);
  };
  app.get(`${prefix}/repo/targets/*`, download);

  // --- what devices report about themselves ----------------------------------------------------------
  const report = (kind: 'hardware' | 'network' | 'packages') => async (request: FastifyRequest, reply: FastifyReply) => {
    const d = requireDevice(request);
    const body = request.rawBody;
    if (!body) throw badRequest('missing_body', 'send a JSON body');
    if (kind === 'network') {
      const n = request.body as Record<string, unknown> | null;
      if (!n || typeof n !== 'object' || ['local_ipv4', 'mac', 'hostname'].some((k) => typeof n[k] !== 'string')) {
        throw badRequest('invalid_network_info', 'network info needs local_ipv4, mac and hostname as strings');
      }
    }
    if (kind === 'packages' && !Array.isArray(request.body)) throw badRequest('invalid_packages', 'installed packages must be a JSON array');
    await registry.putReport(d.namespace, d.deviceId, kind, body.toString('utf8'));
    return reply.code(204).send();
  };
  for (const p of ['/system_info', '/system_info/']) app.put(`${prefix}${p}`, small, report('hardware'));
  app.put(`${prefix}/system_info/network`, small, report('network'));
  app.put(`${prefix}/core/installed`, small, report('packages'));

  app.addContentTypeParser(['application/toml', 'text/plain', 'text/x-toml'], { parseAs: 'string', bodyLimit: 256 * 1024 }, (_req, body, done) =>
    done(null, body),
  );
  app.post(`${prefix}/system_info/config`, small, async (request, reply) => {
    const d = requireDevice(request);
    if (typeof request.body !== 'string') throw badRequest('invalid_config', 'send the aktualizr configuration as text (application/toml)');
    if (request.body.includes('\u0000')) throw badRequest('invalid_config', 'the configuration holds a NUL character');
    await registry.putReport(d.namespace, d.deviceId, 'config', request.body);
    return reply.code(204).send();
  });

  const events = async (request: FastifyRequest, reply: FastifyReply) => {
    const d = requireDevice(request);
    const list = request.body;
    if (!Array.isArray(list)) throw badRequest('invalid_events', 'events must be a JSON array');
    if (list.length > 1000) return reply.code(413).send({ code: 'too_many_events', message: 'send at most 1000 events at once' });
    const parsed: EventInput[] = list.map((e, i) => {
      const o = e as Record<string, unknown> | null;
      const et = o?.['eventType'] as Record<string, unknown> | undefined;
      const ev = o?.['event'];
      if (
        !o ||
        typeof o['id'] !== 'string' ||
        o['id'].length === 0 ||
        o['id'].length > 128 ||
        typeof o['deviceTime'] !== 'string' ||
        o['deviceTime'].length > 64 ||
        !et ||
        typeof et['id'] !== 'string' ||
        et['id'].length > 128 ||
        typeof et['version'] !== 'number' ||
        !Number.isInteger(et['version']) ||
        et['version'] < 0 ||
        et['version'] > 2147483647 ||
        !ev ||
        typeof ev !== 'object' ||
        Array.isArray(ev)
      ) {
        throw badRequest('invalid_event', `event ${i} must have id, deviceTime, eventType {id, version} and event {…}`);
      }
      return { id: o['id'], deviceTime: o['deviceTime'], eventType: { id: et['id'], version: et['version'] }, event: ev as Record<string, unknown> };
    });
    await registry.addEvents(d.namespace, d.deviceId, parsed);
    return reply.code(204).send();
  };
  for (const p of ['/events', '/events/']) app.post(`${prefix}${p}`, small, events);

  // Campaigns are not offered to devices; aktualizr reads any 2xx without campaigns as "none".
  app.get(`${prefix}/campaigner/campaigns`, async (request) => {
    requireDevice(request);
    return { campaigns: [] };
  });
}
