/**
 * Admin routes of the Image repository, following OTA CE's reposerver
 * (`/api/v1/user_repo/...`) so that existing scripts and garage-sign style
 * tools keep working, plus `/api/v1/images` listings.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { UptaneError, type JsonObject } from '@uptide/core';
import { ns, paging, type Services } from './context.js';
import { bodyStream, sendBytes, sendRanged } from '../http/common.js';
import { ApiError, badRequest, notFound } from '../errors.js';
import type { TargetRow } from '../storage/store.js';

const Error4xx = Type.Object({ code: Type.String(), message: Type.String() });

export const ImageView = Type.Object({
  filename: Type.String(),
  name: Type.Union([Type.String(), Type.Null()]),
  version: Type.Union([Type.String(), Type.Null()]),
  hardwareIds: Type.Array(Type.String()),
  length: Type.Number(),
  hashes: Type.Record(Type.String(), Type.String()),
  releaseCounter: Type.Union([Type.Number(), Type.Null()]),
  targetFormat: Type.String(),
  uri: Type.Union([Type.String(), Type.Null()]),
  stored: Type.Boolean(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

export function imageView(r: TargetRow) {
  const custom = JSON.parse(r.custom_json) as JsonObject;
  return {
    filename: r.filename,
    name: r.name,
    version: r.version,
    hardwareIds: JSON.parse(r.hardware_ids_json) as string[],
    length: r.length,
    hashes: JSON.parse(r.hashes_json) as Record<string, string>,
    releaseCounter: r.release_counter,
    targetFormat: typeof custom['targetFormat'] === 'string' ? custom['targetFormat'] : 'BINARY',
    uri: r.uri,
    stored: r.blob_id !== null,
    createdAt: new Date(r.created_at).toISOString(),
    updatedAt: new Date(r.updated_at).toISOString(),
  };
}

const UploadQuery = Type.Object({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  version: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  hardwareIds: Type.String({ minLength: 1, maxLength: 4000, description: 'comma-separated hardware ids' }),
  targetFormat: Type.Optional(Type.Union([Type.Literal('BINARY'), Type.Literal('OSTREE')])),
  releaseCounter: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
});

const ExternalBody = Type.Object({
  uri: Type.String({ minLength: 1, maxLength: 2000 }),
  checksum: Type.Object({ method: Type.Literal('sha256'), hash: Type.String({ pattern: '^[0-9a-fA-F]{64}$' }) }),
  // Safe integers only: 1e300 passes as an integer, and the database column is 64-bit.
  length: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  version: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  hardwareIds: Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { minItems: 1, maxItems: 100 }),
  targetFormat: Type.Optional(Type.Union([Type.Literal('BINARY'), Type.Literal('OSTREE'), Type.Null()])),
  releaseCounter: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
});

function splitHardwareIds(s: string): string[] {
  const ids = s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  if (ids.length === 0) throw badRequest('missing_hardware_id', 'hardwareIds must name at least one hardware id');
  return [...new Set(ids)];
}

function filenameOf(request: FastifyRequest): string {
  const f = (request.params as Record<string, string>)['*'];
  if (f === undefined || f === '') throw badRequest('invalid_filename', 'give a target filename in the path');
  return f;
}

/** A malformed body (no multipart boundary, a multipart body cut short) is the client's error, not ours. */
function bodyError(err: unknown): unknown {
  if (err instanceof UptaneError || err instanceof ApiError) return err;
  const status = (err as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return err;
  return badRequest('invalid_upload_body', `the upload body is malformed or ended early: ${err instanceof Error ? err.message : String(err)}`);
}

async function* guarded(source: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  try {
    for await (const chunk of source) yield chunk;
  } catch (err) {
    throw bodyError(err);
  }
}

/** Reads raw bytes, or the `file` field of a multipart/form-data body (what OTA CE scripts send with curl -F). */
async function uploadSource(request: FastifyRequest): Promise<AsyncIterable<Uint8Array>> {
  if (request.isMultipart()) {
    let part;
    try {
      part = await request.file({ limits: { fileSize: Number.MAX_SAFE_INTEGER, files: 1 } });
    } catch (err) {
      throw bodyError(err);
    }
    if (!part) throw badRequest('missing_file', 'the multipart body has no file field');
    if (part.fieldname !== 'file') throw badRequest('missing_file', 'put the image in a multipart field named "file"');
    return guarded(part.file);
  }
  return guarded(bodyStream(request));
}

export async function imageRoutes(app: FastifyInstance, services: Services): Promise<void> {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { imageRepo } = services;
  const max = services.config.maxImageBytes;

  // Raw uploads are streamed by the handler, never parsed or buffered.
  app.addContentTypeParser(['application/octet-stream', 'binary/octet-stream', 'application/x-binary'], (_req, _payload, done) => done(null));

  r.put(
    '/api/v1/user_repo/targets/*',
    {
      schema: {
        summary: 'Upload an image (raw body or multipart "file"); the server hashes it on the way in and signs targets, snapshot and timestamp',
        tags: ['images'],
        querystring: UploadQuery,
        response: { 201: ImageView, '4xx': Error4xx },
      },
    },
    async (request, reply) => {
      const filename = filenameOf(request);
      const q = request.query;
      const source = await uploadSource(request);
      const row = await imageRepo.upload(
        ns(request),
        filename,
        source,
        { name: q.name, version: q.version, hardwareIds: splitHardwareIds(q.hardwareIds), targetFormat: q.targetFormat, releaseCounter: q.releaseCounter },
        max,
      );
      services.metrics.inc('uptide_images_uploaded_total');
      return reply.code(201).send(imageView(row));
    },
  );

  r.post(
    '/api/v1/user_repo/targets/*',
    {
      schema: {
        summary: 'Add an image whose bytes live at an external URL',
        tags: ['images'],
        body: ExternalBody,
        response: { 201: ImageView, '4xx': Error4xx },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const row = await imageRepo.addExternal(ns(request), filenameOf(request), {
        uri: b.uri,
        length: b.length,
        hashes: { sha256: b.checksum.hash.toLowerCase() },
        name: b.name,
        version: b.version,
        hardwareIds: b.hardwareIds,
        targetFormat: b.targetFormat ?? undefined,
        releaseCounter: b.releaseCounter,
      });
      return reply.code(201).send(imageView(row));
    },
  );

  const download = async (request: FastifyRequest, reply: FastifyReply) => {
    const namespace = ns(request);
    const filename = filenameOf(request);
    const target = await imageRepo.getTarget(namespace, filename);
    const blob = await imageRepo.blobFor(namespace, filename);
    if (!target && !blob) throw notFound('target_not_found', `no image ${filename}`);
    if (!blob) {
      if (target?.uri) return reply.code(302).header('location', target.uri).send();
      throw notFound('not_stored', `${filename} has no stored bytes`);
    }
    return sendRanged(request, reply, blob.length, (range) => services.blobs.open(blob.blobId, range), target?.sha256);
  };
  r.get('/api/v1/user_repo/targets/*', { schema: { summary: 'Download an image', tags: ['images'] } }, download);

  r.delete(
    '/api/v1/user_repo/targets/*',
    { schema: { summary: 'Delete an image from targets (online targets only)', tags: ['images'] } },
    async (request, reply) => {
      await imageRepo.deleteTarget(ns(request), filenameOf(request));
      return reply.code(204).send();
    },
  );

  r.get(
    '/api/v1/user_repo/targets.json',
    { schema: { summary: 'The signed targets.json, with its x-ats-role-checksum', tags: ['image repository'] } },
    async (request, reply) => {
      const t = await imageRepo.targetsWithChecksum(ns(request));
      reply.header('x-ats-role-checksum', t.checksum);
      return sendBytes(request, reply, t.bytes, t.checksum);
    },
  );

  r.put(
    '/api/v1/user_repo/targets',
    {
      bodyLimit: 64 * 1024 * 1024,
      schema: {
        summary: 'Push a client-signed targets.json (offline targets key); send x-ats-role-checksum of the targets.json you started from',
        tags: ['image repository'],
        headers: Type.Object({ 'x-ats-role-checksum': Type.Optional(Type.String({ maxLength: 128 })) }),
      },
    },
    async (request, reply) => {
      const raw = request.rawBody;
      if (!raw) throw badRequest('missing_body', 'send the signed targets.json as application/json');
      const res = await imageRepo.putSignedTargets(ns(request), raw, request.headers['x-ats-role-checksum']);
      const t = await imageRepo.targetsWithChecksum(ns(request));
      reply.header('x-ats-role-checksum', t.checksum);
      return reply.code(204).header('x-uptide-version', String(res.version)).send();
    },
  );

  r.put(
    '/api/v1/user_repo/uploads/*',
    { schema: { summary: 'Store the bytes of an image that an offline-signed targets.json will list', tags: ['image repository'] } },
    async (request, reply) => {
      const blob = await imageRepo.putUpload(ns(request), filenameOf(request), await uploadSource(request), max);
      return reply.code(201).send({ length: blob.length, hashes: blob.hashes });
    },
  );

  r.get(
    '/api/v1/user_repo/:file',
    {
      schema: { summary: 'root.json, N.root.json, snapshot.json or timestamp.json', tags: ['image repository'], params: Type.Object({ file: Type.String() }) },
    },
    async (request, reply) => {
      const namespace = ns(request);
      const file = request.params.file;
      const m = /^(?:(\d{1,9})\.)?root\.json$/.exec(file);
      if (m) {
        const bytes = await imageRepo.root(namespace, m[1] === undefined ? undefined : Number(m[1]));
        if (!bytes) throw notFound('root_not_found', `no ${file}`);
        return reply.header('content-type', 'application/json').send(Buffer.from(bytes));
      }
      if (file === 'snapshot.json' || file === 'timestamp.json') {
        const f = await imageRepo.metadata(namespace, file.slice(0, -5));
        if (!f) throw notFound('not_found', `no ${file}`);
        return sendBytes(request, reply, f.bytes, f.checksum);
      }
      throw notFound('not_found', `no ${file}`);
    },
  );

  r.post(
    '/api/v1/user_repo/root',
    { bodyLimit: 1024 * 1024, schema: { summary: 'Push root N+1, signed by a threshold of root N and of its own root keys', tags: ['image repository'] } },
    async (request, reply) => {
      if (!request.rawBody) throw badRequest('missing_body', 'send the signed root as application/json');
      const res = await imageRepo.pushRoot(ns(request), request.rawBody);
      return reply.code(200).send(res);
    },
  );

  r.get(
    '/api/v1/user_repo/root/private_keys/:keyId',
    {
      schema: {
        summary: "Export an online key's private half (PKCS#8 PEM)",
        tags: ['image repository'],
        params: Type.Object({ keyId: Type.String({ pattern: '^[0-9a-f]{64}$' }) }),
      },
    },
    async (request) => {
      const pem = await services.provisioning.exportPrivateKey(ns(request), 'image', request.params.keyId);
      return { keyid: request.params.keyId, private: pem };
    },
  );

  r.delete(
    '/api/v1/user_repo/root/private_keys/:keyId',
    {
      schema: {
        summary: 'Delete the online copy of a key (take it offline)',
        tags: ['image repository'],
        params: Type.Object({ keyId: Type.String({ pattern: '^[0-9a-f]{64}$' }) }),
      },
    },
    async (request, reply) => {
      await services.provisioning.deletePrivateKey(ns(request), 'image', request.params.keyId);
      return reply.code(204).send();
    },
  );

  r.put(
    '/api/v1/user_repo/trusted-delegations',
    {
      schema: {
        summary: 'Set the delegations of the online-signed top-level targets: {"keys": {...}, "roles": [...]}',
        tags: ['image repository'],
        body: Type.Object({ keys: Type.Record(Type.String(), Type.Unknown()), roles: Type.Array(Type.Unknown()) }),
      },
    },
    async (request, reply) => {
      await imageRepo.setDelegations(ns(request), request.body);
      return reply.code(204).send();
    },
  );

  r.put(
    '/api/v1/user_repo/delegations/:file',
    {
      bodyLimit: 64 * 1024 * 1024,
      schema: {
        summary: "Push a delegated role's signed metadata (NAME.json)",
        tags: ['image repository'],
        params: Type.Object({ file: Type.String({ pattern: '^[^/]{1,250}\\.json$' }) }),
      },
    },
    async (request, reply) => {
      if (!request.rawBody) throw badRequest('missing_body', 'send the signed delegated targets as application/json');
      const res = await imageRepo.putDelegatedRole(ns(request), request.params.file.slice(0, -5), request.rawBody);
      return reply.code(200).send(res);
    },
  );

  r.get(
    '/api/v1/user_repo/delegations/:file',
    {
      schema: {
        summary: "A delegated role's signed metadata",
        tags: ['image repository'],
        params: Type.Object({ file: Type.String({ pattern: '^[^/]{1,250}\\.json$' }) }),
      },
    },
    async (request, reply) => {
      const f = await imageRepo.delegatedRole(ns(request), request.params.file.slice(0, -5));
      if (!f) throw notFound('delegation_not_found', `no delegated role ${request.params.file}`);
      return sendBytes(request, reply, f.bytes, f.checksum);
    },
  );

  r.post(
    '/api/v1/user_repo/keys/:role',
    {
      schema: {
        summary: 'Generate a new online key for a role the server signs (first step of rotating it: list it in the next root)',
        tags: ['image repository'],
        params: Type.Object({ role: Type.Union([Type.Literal('targets'), Type.Literal('snapshot'), Type.Literal('timestamp')]) }),
      },
    },
    async (request, reply) => reply.code(201).send(await services.provisioning.generateOnlineKey(ns(request), 'image', request.params.role)),
  );

  // --- friendly listings ---------------------------------------------------------------
  r.get(
    '/api/v1/images',
    {
      schema: {
        summary: 'List images',
        tags: ['images'],
        querystring: Type.Object({
          nameContains: Type.Optional(Type.String({ maxLength: 255 })),
          offset: Type.Optional(Type.Integer({ minimum: 0 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
        }),
        response: { 200: Type.Object({ total: Type.Number(), offset: Type.Number(), limit: Type.Number(), values: Type.Array(ImageView) }) },
      },
    },
    async (request) => {
      const p = paging(request.query);
      const res = await imageRepo.listTargets(ns(request), { nameContains: request.query.nameContains, ...p });
      return { total: res.total, ...p, values: res.rows.map(imageView) };
    },
  );

  r.get(
    '/api/v1/images/*',
    { schema: { summary: 'One image by filename, or NAME@VERSION', tags: ['images'], response: { 200: ImageView, '4xx': Error4xx } } },
    async (request) => {
      const namespace = ns(request);
      const key = filenameOf(request);
      const row = await resolveImage(services, namespace, key);
      return imageView(row);
    },
  );
}

/** An image by filename, or by `NAME@VERSION` (which must name exactly one). */
export async function resolveImage(services: Services, namespace: string, key: string): Promise<TargetRow> {
  const direct = await services.imageRepo.lookupTarget(services.storage.store, namespace, key);
  if (direct) return direct;
  const at = key.lastIndexOf('@');
  if (at > 0) {
    const rows = await services.imageRepo.findByNameVersion(namespace, key.slice(0, at), key.slice(at + 1));
    if (rows.length === 1) return rows[0] as TargetRow;
    if (rows.length > 1)
      throw new ApiError(409, 'ambiguous_image', `${key} names ${rows.length} images (${rows.map((r) => r.filename).join(', ')}): give the filename`);
  }
  throw notFound('image_not_found', `no image ${key}: list images with "uptide images list"`);
}
