/**
 * The services the HTTP layers call, injected once at start (no singletons),
 * and the admin API's authentication: a bearer token gives a principal
 * scoped to one namespace.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServerConfig } from '../config.js';
import type { Storage } from '../storage/store.js';
import type { ImageRepository } from '../imagerepo/service.js';
import type { Director } from '../director/service.js';
import type { Updates } from '../director/updates.js';
import type { Registry } from '../registry/service.js';
import type { Principal, Tokens } from '../auth/tokens.js';
import type { BlobStore } from '../blobs/blob-store.js';
import type { Metrics } from '../http/metrics.js';
import type { Provisioning } from '../provisioning/service.js';
import type { Namespaces } from '../namespaces/service.js';
import { unauthorized } from '../errors.js';

export interface Services {
  readonly config: ServerConfig;
  readonly storage: Storage;
  readonly imageRepo: ImageRepository;
  readonly director: Director;
  readonly updates: Updates;
  readonly registry: Registry;
  readonly tokens: Tokens;
  readonly blobs: BlobStore;
  readonly metrics: Metrics;
  readonly provisioning: Provisioning;
  readonly namespaces: Namespaces;
  readonly clock: () => Date;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** The namespace the authenticated token may act on. */
export function ns(request: FastifyRequest): string {
  if (!request.principal) throw unauthorized('an API token is required');
  return request.principal.namespace;
}

/** Adds bearer-token authentication to every route of `app` (a plugin scope). */
export function requireToken(app: FastifyInstance, services: Services): void {
  app.addHook('onRequest', async (request) => {
    const h = request.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(\S+)$/i.exec(h) : null;
    if (!m) throw unauthorized('send "Authorization: Bearer <token>" (the first token is in <data dir>/admin-token)');
    const principal = await services.tokens.authenticate(m[1] as string);
    if (!principal) throw unauthorized('the API token is unknown or revoked');
    request.principal = principal;
  });
}

/** Beyond any list we hold; a larger offset (up to 1e308 passes the schema) is an empty page, not a database error. */
const MAX_OFFSET = 2 ** 31 - 1;

/** Common query parameters for paged lists. */
export function paging(q: { offset?: number | undefined; limit?: number | undefined }): { offset: number; limit: number } {
  return { offset: Math.min(q.offset ?? 0, MAX_OFFSET), limit: Math.min(q.limit ?? 50, 1000) };
}
