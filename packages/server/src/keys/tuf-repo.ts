/**
 * What the Image repository and the Director share: creating a repository's
 * keys and first root, signing a role with the online keys the current root
 * lists, and accepting a new root pushed by an offline key ceremony (checked
 * with the same rules a client applies, R-2.3 and, so the server can
 * never publish a root that devices would refuse).
 */
import {
  Metadata,
  MixAndMatchError,
  RollbackError,
  UptaneError,
  FreezeError,
  buildRoot,
  expiresIn,
  parseRoot,
  type Dialect,
  type KeyType,
  type PublicKey,
  type Root,
  type RoleType,
  type Signed,
} from '@uptide/core';
import type { Store } from '../storage/store.js';
import type { OnlineKeys } from './online-keys.js';

export type RepoName = 'image' | 'director';

/** Lifetimes in seconds. */
export interface RoleLifetimes {
  readonly root: number;
  readonly targets: number;
  readonly snapshot: number;
  readonly timestamp: number;
}

export const DAY = 24 * 3600;

export const DEFAULT_LIFETIMES: Record<RepoName, RoleLifetimes> = {
  image: { root: 365 * DAY, targets: 90 * DAY, snapshot: 30 * DAY, timestamp: 1 * DAY },
  director: { root: 365 * DAY, targets: 30 * DAY, snapshot: 30 * DAY, timestamp: 7 * DAY },
};

/** Re-sign a role once less than this share of its lifetime remains. */
export const REFRESH_FRACTION = 0.25;

export class RepoError extends UptaneError {}

export class TufRepos {
  private readonly rootCache = new Map<string, Metadata<Root>>();

  constructor(
    private readonly keys: OnlineKeys,
    readonly keyType: KeyType,
    readonly lifetimes: Record<RepoName, RoleLifetimes> = DEFAULT_LIFETIMES,
  ) {}

  /** Creates keys and root version 1 of a repository. */
  async initRepository(store: Store, namespace: string, repo: RepoName, dialect: Dialect, now: Date): Promise<Metadata<Root>> {
    const t = now.getTime();
    await store.createRepository({ namespace, repo, dialect, targets_offline: 0, created_at: t });
    const keys = {} as Record<RoleType, PublicKey[]>;
    for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
      keys[role] = [await this.keys.generate(store, namespace, repo, role, this.keyType, dialect, t)];
    }
    const root = buildRoot({ version: 1, expires: expiresIn(now, this.lifetimes[repo].root), keys, dialect });
    const signers = await this.keys.signersFor(store, namespace, repo, 'root', root, dialect);
    const md = await Metadata.create(root, dialect, signers);
    await store.insertRoot(namespace, repo, 1, md.toBytes(), root.expiresAt, t);
    return md;
  }

  /** The latest root (parsed once per version and cached). */
  async currentRoot(store: Store, namespace: string, repo: RepoName, dialect: Dialect): Promise<Metadata<Root>> {
    const latest = await store.latestRoot(namespace, repo);
    if (!latest) throw new RepoError('TARGET_NOT_FOUND', `namespace ${namespace} has no ${repo} repository`);
    const k = `${namespace}\u0000${repo}\u0000${latest.version}`;
    let md = this.rootCache.get(k);
    if (!md) {
      md = parseRoot(latest.bytes, dialect);
      this.rootCache.set(k, md);
    }
    return md;
  }

  /** Signs a payload with the online keys the root lists for its role. */
  async sign<T extends Signed>(store: Store, namespace: string, repo: RepoName, role: RoleType, signed: T, root: Root, dialect: Dialect): Promise<Metadata<T>> {
    const signers = await this.keys.signersFor(store, namespace, repo, role, root, dialect);
    return Metadata.create(signed, dialect, signers);
  }

  async canSign(store: Store, namespace: string, repo: RepoName, role: RoleType, root: Root): Promise<boolean> {
    return this.keys.canSign(store, namespace, repo, role, root);
  }

  expires(repo: RepoName, role: RoleType, now: Date): string {
    return expiresIn(now, this.lifetimes[repo][role]);
  }

  /** Whether a file expiring at `expiresAt` should be re-signed now. */
  needsRefresh(repo: RepoName, role: RoleType, expiresAt: number, now: Date): boolean {
    return expiresAt - now.getTime() < this.lifetimes[repo][role] * 1000 * REFRESH_FRACTION;
  }

  /**
   * Accepts root N+1 from an operator: signed by a threshold of root N's root
   * keys and of its own, exactly one version up, not expired, and leaving the
   * server able to sign the roles it must sign online (`onlineRoles`).
   * Returns the parsed root; the caller re-signs the other roles.
   */
  async acceptRoot(
    store: Store,
    namespace: string,
    repo: RepoName,
    dialect: Dialect,
    bytes: Uint8Array,
    onlineRoles: readonly RoleType[],
    now: Date,
  ): Promise<Metadata<Root>> {
    const current = await this.currentRoot(store, namespace, repo, dialect);
    const next = parseRoot(bytes, dialect);
    next.verify(current.signed.keys, current.signed.role('root'), { repository: repo, role: 'root' });
    next.verify(next.signed.keys, next.signed.role('root'), { repository: repo, role: 'root' });
    const expected = current.signed.version + 1;
    if (next.signed.version < expected) throw new RollbackError(`root version ${next.signed.version} is not newer than ${current.signed.version}`);
    if (next.signed.version !== expected) throw new MixAndMatchError(`root version must be exactly ${expected}, got ${next.signed.version}`);
    if (next.signed.isExpired(now)) throw new FreezeError(`root version ${next.signed.version} is already expired (${next.signed.expires})`);
    for (const role of onlineRoles) {
      if (!(await this.keys.canSign(store, namespace, repo, role, next.signed))) {
        throw new RepoError('ARBITRARY_SOFTWARE', `the new root lists ${role} keys the server does not hold; the server must sign ${role} online`, {
          repository: repo,
          role,
        });
      }
    }
    // Keys listed in the new root that the server does not hold are recorded as offline keys.
    for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
      for (const id of next.signed.role(role).keyids) {
        const k = next.signed.keys.get(id);
        if (k) await this.keys.recordOfflineKey(store, namespace, repo, role, k, dialect, now.getTime());
      }
    }
    // Store the bytes as canonical envelope bytes (a client may have pushed pretty-printed JSON).
    await store.insertRoot(namespace, repo, next.signed.version, next.toBytes(), next.signed.expiresAt, now.getTime());
    return next;
  }

  /** Re-signs the root with the same keys and one version more, if the server holds the root keys. */
  async resignRoot(store: Store, namespace: string, repo: RepoName, dialect: Dialect, now: Date): Promise<Metadata<Root> | undefined> {
    const current = await this.currentRoot(store, namespace, repo, dialect);
    if (!(await this.keys.canSign(store, namespace, repo, 'root', current.signed))) return undefined;
    const next = current.signed.with({ version: current.signed.version + 1, expires: this.expires(repo, 'root', now) });
    const signers = await this.keys.signersFor(store, namespace, repo, 'root', next, dialect);
    const md = await Metadata.create(next, dialect, signers);
    await store.insertRoot(namespace, repo, next.version, md.toBytes(), next.expiresAt, now.getTime());
    return md;
  }
}
