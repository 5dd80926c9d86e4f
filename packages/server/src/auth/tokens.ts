/**
 * Admin API tokens: 256-bit random values shown once, stored as SHA-256
 * hashes, scoped to a namespace; `system` tokens also manage namespaces and
 * tokens of every namespace.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Storage } from '../storage/store.js';
import { badRequest, notFound } from '../errors.js';

export interface Principal {
  readonly tokenId: string;
  readonly namespace: string;
  readonly system: boolean;
}

export const TOKEN_PREFIX = 'upt_';

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class Tokens {
  constructor(
    private readonly storage: Storage,
    private readonly clock: () => Date,
  ) {}

  /** A new token secret (256 random bits). */
  static generate(): string {
    return TOKEN_PREFIX + randomBytes(32).toString('base64url');
  }

  /** Creates a token (with a secret from `generate`, or a new one); the returned secret is never stored or shown again. */
  async create(namespace: string, name: string, system = false, secret?: string): Promise<{ id: string; token: string }> {
    if (name.length === 0 || name.length > 200) throw badRequest('invalid_name', 'token names are 1-200 characters');
    if (!(await this.storage.store.namespaceExists(namespace))) throw notFound('namespace_not_found', `no namespace ${namespace}`);
    const token = secret ?? Tokens.generate();
    const id = randomUUID();
    await this.storage.store.insertToken({
      id,
      namespace,
      name,
      token_hash: hashToken(token),
      system: system ? 1 : 0,
      created_at: this.clock().getTime(),
      revoked_at: null,
      last_used_at: null,
    });
    return { id, token };
  }

  /** The principal of a bearer token, or undefined for an unknown or revoked token. */
  async authenticate(token: string): Promise<Principal | undefined> {
    if (!token.startsWith(TOKEN_PREFIX) || token.length > 200) return undefined;
    const hash = hashToken(token);
    const row = await this.storage.store.findTokenByHash(hash);
    // The lookup is by hash; compare again in constant time for good measure.
    if (!row || row.revoked_at !== null || !timingSafeEqual(Buffer.from(row.token_hash, 'hex'), Buffer.from(hash, 'hex'))) return undefined;
    const now = this.clock().getTime();
    if (row.last_used_at === null || now - row.last_used_at > 60_000) await this.storage.store.touchToken(row.id, now);
    return { tokenId: row.id, namespace: row.namespace, system: row.system === 1 };
  }

  async list(namespace: string) {
    return (await this.storage.store.listTokens(namespace)).map((t) => ({
      id: t.id,
      name: t.name,
      system: t.system === 1,
      createdAt: new Date(t.created_at).toISOString(),
      revokedAt: t.revoked_at === null ? null : new Date(t.revoked_at).toISOString(),
      lastUsedAt: t.last_used_at === null ? null : new Date(t.last_used_at).toISOString(),
    }));
  }

  async revoke(namespace: string, id: string): Promise<void> {
    if (!(await this.storage.store.revokeToken(namespace, id, this.clock().getTime()))) throw notFound('token_not_found', `no active token ${id}`);
  }
}
