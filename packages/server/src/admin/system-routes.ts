/** Namespaces and API tokens. Creating namespaces, and tokens of other namespaces, needs a system token. */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ns, type Services } from './context.js';
import { forbidden } from '../errors.js';

const Name = Type.String({ minLength: 1, maxLength: 200 });

export async function systemRoutes(app: FastifyInstance, services: Services): Promise<void> {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.get('/api/v1/whoami', { schema: { summary: 'The namespace and kind of the calling token', tags: ['tokens'] } }, async (request) => ({
    namespace: ns(request),
    system: request.principal?.system ?? false,
    tokenId: request.principal?.tokenId,
  }));

  r.get('/api/v1/namespaces', { schema: { summary: 'List namespaces (system token)', tags: ['namespaces'] } }, async (request) => {
    if (!request.principal?.system) throw forbidden('system_token_required', 'listing namespaces needs a system token');
    return (await services.storage.store.listNamespaces()).map((n) => ({ name: n.name, createdAt: new Date(n.created_at).toISOString() }));
  });

  r.post(
    '/api/v1/namespaces',
    {
      schema: {
        summary: 'Create a namespace with its own repositories, keys and device CA; answers a token for it (shown once)',
        tags: ['namespaces'],
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9-]{0,63}$' }) }),
      },
    },
    async (request, reply) => {
      if (!request.principal?.system) throw forbidden('system_token_required', 'creating namespaces needs a system token');
      const name = request.body.name;
      // A namespace without any token is one whose creation was cut short (the server stopped before its token was
      // made): creating it again completes it, instead of leaving a namespace no token can reach.
      const unfinished = (await services.storage.store.namespaceExists(name)) && (await services.storage.store.listTokens(name)).length === 0;
      if (!unfinished) await services.namespaces.create(name);
      else await services.provisioning.ensureDeviceCa(name);
      const t = await services.tokens.create(name, `${name} admin`);
      return reply.code(201).send({ name: request.body.name, token: t.token, tokenId: t.id });
    },
  );

  r.get('/api/v1/tokens', { schema: { summary: "The namespace's tokens (never their secrets)", tags: ['tokens'] } }, async (request) =>
    services.tokens.list(ns(request)),
  );

  r.post(
    '/api/v1/tokens',
    {
      schema: {
        summary: 'Create a token for this namespace (the secret is shown once)',
        tags: ['tokens'],
        body: Type.Object({ name: Name, system: Type.Optional(Type.Boolean()) }),
      },
    },
    async (request, reply) => {
      if (request.body.system && !request.principal?.system) throw forbidden('system_token_required', 'only a system token can create a system token');
      const t = await services.tokens.create(ns(request), request.body.name, request.body.system ?? false);
      return reply.code(201).send({ id: t.id, token: t.token });
    },
  );

  r.delete(
    '/api/v1/tokens/:id',
    { schema: { summary: 'Revoke a token', tags: ['tokens'], params: Type.Object({ id: Type.String({ maxLength: 64 }) }) } },
    async (request, reply) => {
      await services.tokens.revoke(ns(request), request.params.id);
      return reply.code(204).send();
    },
  );
}
