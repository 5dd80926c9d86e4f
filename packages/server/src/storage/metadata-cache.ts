/**
 * An in-memory cache of signed metadata rows (what devices fetch on every
 * check-in), so that an unchanged check-in costs no database query.
 *
 * Correctness with several instances: every write of a row, and every
 * "outdated" mark, invalidates the entry here and, on PostgreSQL, sends a
 * NOTIFY in the same transaction, which the other instances receive after the
 * commit and evict. A short time-to-live bounds staleness should a
 * notification be lost (a dropped LISTEN connection also clears the cache).
 */
import type { RoleMetadataRow } from './store.js';

export class MetadataCache {
  private readonly rows = new Map<string, { row: RoleMetadataRow; at: number }>();
  private readonly byOwner = new Map<string, Set<string>>();

  constructor(
    private readonly capacity = 50_000,
    private readonly ttlMs = 30_000,
  ) {}

  static ownerKey(namespace: string, repo: string, owner: string): string {
    return `${namespace}\u0000${repo}\u0000${owner}`;
  }

  get(namespace: string, repo: string, owner: string, role: string, now: number): RoleMetadataRow | undefined {
    const k = `${MetadataCache.ownerKey(namespace, repo, owner)}\u0000${role}`;
    const e = this.rows.get(k);
    if (!e) return undefined;
    if (now - e.at > this.ttlMs) {
      this.rows.delete(k);
      return undefined;
    }
    return e.row;
  }

  set(row: RoleMetadataRow, now: number): void {
    const ok = MetadataCache.ownerKey(row.namespace, row.repo, row.owner);
    const k = `${ok}\u0000${row.role}`;
    if (this.rows.size >= this.capacity && !this.rows.has(k)) {
      // Evict the oldest entry (Map keeps insertion order).
      const oldest = this.rows.keys().next().value;
      if (oldest !== undefined) this.rows.delete(oldest);
    }
    this.rows.set(k, { row, at: now });
    let set = this.byOwner.get(ok);
    if (!set) this.byOwner.set(ok, (set = new Set()));
    set.add(k);
  }

  /** Evicts every role of an owner (`owner` = '*': every owner of the repository). */
  invalidate(namespace: string, repo: string, owner: string): void {
    if (owner === '*') {
      const prefix = `${namespace}\u0000${repo}\u0000`;
      for (const [ok, keys] of this.byOwner) {
        if (!ok.startsWith(prefix)) continue;
        for (const k of keys) this.rows.delete(k);
        this.byOwner.delete(ok);
      }
      return;
    }
    const ok = MetadataCache.ownerKey(namespace, repo, owner);
    for (const k of this.byOwner.get(ok) ?? []) this.rows.delete(k);
    this.byOwner.delete(ok);
  }

  /** Applies an invalidation received from another instance (`namespace/repo/owner`; none of them contains a slash). */
  invalidatePayload(payload: string): void {
    const [ns, repo, owner, extra] = payload.split('/');
    if (ns === undefined || repo === undefined || owner === undefined || extra !== undefined) {
      this.clear();
      return;
    }
    this.invalidate(ns, repo, owner);
  }

  clear(): void {
    this.rows.clear();
    this.byOwner.clear();
  }

  get size(): number {
    return this.rows.size;
  }
}
