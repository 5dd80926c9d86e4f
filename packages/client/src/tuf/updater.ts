/**
 * The TUF client workflow on its own (tuf dialect), for `uptide-tuf` and the
 * public tuf-conformance suite. It is a thin shell around the core: every check
 * is done by `@uptide/core`'s TrustedRepository, refreshRepository and
 * resolveDelegations, so the suite exercises the very procedures the Primary
 * uses. This file adds only I/O: HTTP with byte limits, the metadata directory,
 * and the target cache.
 *
 * Persistence follows the TUF client workflow (and python-tuf): each file is
 * stored as soon as it is trusted, so a cycle that fails at the snapshot still
 * keeps the new root and timestamp it accepted.
 */
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import {
  MultiHasher,
  TrustedRepository,
  UptaneError,
  delegatedLoader,
  refreshRepository,
  resolveDelegations,
  verifyImage,
  type Limits,
  type Metadata,
  type RepositorySource,
  type TargetFile,
  type Targets,
} from '@uptide/core';
import { DownloadError, download, downloadBytes } from './http.js';
import { MetadataStore } from './store.js';
import { quote, quotePath } from './quote.js';

/** python-tuf's defaults (ngclient UpdaterConfig), so we accept what it accepts from the same repository. */
export const TUF_CLIENT_LIMITS: Partial<Limits> = {
  rootBytes: 512_000,
  timestampBytes: 16_384,
  snapshotBytes: 2_000_000,
  imageTargetsBytes: 5_000_000,
  maxRootRotations: 256,
  maxDelegations: 32,
  // python-tuf bounds only the number of roles visited; depth is bounded by that.
  maxDelegationDepth: 32,
};

export interface TufUpdaterOptions {
  /** Directory of trusted metadata (must hold `root.json`). */
  readonly metadataDir: string;
  /** Base URL of the repository's metadata. */
  readonly metadataUrl: string;
  /** Where verified targets are stored (download only). */
  readonly targetDir?: string;
  /** Base URL of the repository's targets (download only). */
  readonly targetBaseUrl?: string;
  /** Clock; the system clock by default. */
  readonly now?: () => Date;
  readonly limits?: Partial<Limits>;
  /** Per-download idle timeout in ms (slow retrieval). */
  readonly idleTimeoutMs?: number;
  readonly log?: (message: string) => void;
}

function withSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}

/** Reads one role's metadata over HTTP, with versioned names when the root asks for consistent snapshots. */
export class HttpRepositorySource implements RepositorySource {
  private readonly base: string;

  constructor(
    metadataUrl: string,
    /** Whether the currently trusted root sets `consistent_snapshot` (read at each request: it may change with the root). */
    private readonly consistent: () => boolean,
    private readonly idleTimeoutMs?: number,
    private readonly log?: (message: string) => void,
  ) {
    this.base = withSlash(metadataUrl);
  }

  private get(name: string, maxBytes: number): Promise<Uint8Array> {
    const url = this.base + name;
    this.log?.(`GET ${url}`);
    return downloadBytes(url, { maxBytes, idleTimeoutMs: this.idleTimeoutMs });
  }

  async root(version: number, maxBytes: number): Promise<Uint8Array | undefined> {
    try {
      return await this.get(`${version}.root.json`, maxBytes);
    } catch (err) {
      // "not available" ends the walk. Like python-tuf, only 403 and 404 mean that; other failures abort.
      if (err instanceof DownloadError && err.code === 'HTTP_STATUS' && (err.status === 404 || err.status === 403)) return undefined;
      throw err;
    }
  }

  timestamp(maxBytes: number): Promise<Uint8Array> {
    return this.get('timestamp.json', maxBytes);
  }

  snapshot(version: number, maxBytes: number): Promise<Uint8Array> {
    return this.get(this.consistent() ? `${version}.snapshot.json` : 'snapshot.json', maxBytes);
  }

  targets(role: string, version: number, maxBytes: number): Promise<Uint8Array> {
    const name = `${quote(role)}.json`;
    return this.get(this.consistent() ? `${version}.${name}` : name, maxBytes);
  }
}

/** Hashes of a file on disk with every supported algorithm, or undefined when it does not exist. */
async function hashFile(path: string): Promise<{ length: number; hashes: Record<string, string> } | undefined> {
  const hasher = new MultiHasher();
  try {
    for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) hasher.update(chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EISDIR') return undefined;
    throw err;
  }
  return { length: hasher.length, hashes: hasher.digest() };
}

export class TufUpdater {
  private readonly store: MetadataStore;
  private repo: TrustedRepository | undefined;
  private topLevel: Metadata<Targets> | undefined;
  private load: ((role: string, delegator: string) => Promise<Metadata<Targets>>) | undefined;

  constructor(private readonly options: TufUpdaterOptions) {
    this.store = new MetadataStore(options.metadataDir);
  }

  private log(message: string): void {
    this.options.log?.(message);
  }

  /**
   * Procedures R, T, S and G for the top-level metadata. Whatever was trusted
   * before a failure stays stored; the failure is thrown.
   */
  async refresh(): Promise<Metadata<Targets>> {
    const files = await this.store.load();
    const now = (this.options.now ?? (() => new Date()))();
    const repo = new TrustedRepository(files, {
      dialect: 'tuf',
      repository: 'tuf',
      now,
      limits: { ...TUF_CLIENT_LIMITS, ...(this.options.limits ?? {}) },
      isDirector: false,
    });
    const source = new HttpRepositorySource(
      this.options.metadataUrl,
      () => repo.root.signed.consistentSnapshot === true,
      this.options.idleTimeoutMs,
      (m) => this.log(m),
    );
    this.repo = repo;
    try {
      this.topLevel = await refreshRepository(repo, source, {
        // each new root is stored as soon as it is trusted.
        onRoot: (bytes) => this.store.write('root', bytes),
      });
    } finally {
      await this.store.persist(repo.state());
    }
    this.load = delegatedLoader(repo, source);
    return this.topLevel;
  }

  /** Trusted metadata about a target (Procedure D through the delegations), refreshing first if needed. */
  async getTargetInfo(name: string): Promise<TargetFile> {
    if (!this.topLevel || !this.repo || !this.load) await this.refresh();
    const repo = this.repo as TrustedRepository;
    try {
      const resolved = await resolveDelegations(this.topLevel as Metadata<Targets>, name, {
        dialect: 'tuf',
        load: this.load as (role: string, delegator: string) => Promise<Metadata<Targets>>,
        limits: repo.limits,
      });
      this.log(`${name}: listed by ${resolved.role}`);
      return resolved.target;
    } finally {
      // Delegated roles trusted during the search are stored even when the search fails later.
      await this.store.persist(repo.state());
    }
  }

  private targetPath(name: string): string {
    if (this.options.targetDir === undefined) throw new UptaneError('BAD_ARGUMENT', 'no target directory given');
    // One flat, quoted file name per target path: nothing can climb out of the target directory.
    return join(this.options.targetDir, quote(name));
  }

  /** The stored copy of a target when its length and every hash match the trusted metadata. */
  async findCachedTarget(name: string, target: TargetFile): Promise<string | undefined> {
    const path = this.targetPath(name);
    const actual = await hashFile(path);
    if (!actual) return undefined;
    try {
      verifyImage(name, target, actual);
      return path;
    } catch {
      return undefined;
    }
  }

  /**
   * Downloads a target (at most its trusted length), checks its length and
   * every hash, and only then moves it into the target directory.
   */
  async downloadTarget(name: string, target: TargetFile): Promise<string> {
    if (this.options.targetBaseUrl === undefined) throw new UptaneError('BAD_ARGUMENT', 'no target base URL given');
    const targetDir = this.options.targetDir as string;
    const path = this.targetPath(name);
    let urlPath = name;
    if (this.repo?.root.signed.consistentSnapshot === true) {
      // Consistent snapshots: HASH.basename, with the first hash the metadata lists (as python-tuf).
      const first = Object.values(target.hashes)[0] as string;
      const slash = name.lastIndexOf('/');
      urlPath = `${name.slice(0, slash + 1)}${first}.${name.slice(slash + 1)}`;
    }
    const url = withSlash(this.options.targetBaseUrl) + quotePath(urlPath);
    this.log(`GET ${url}`);
    await mkdir(targetDir, { recursive: true });
    const tmp = join(targetDir, `.${quote(name)}.${process.pid}.part`);
    const hasher = new MultiHasher();
    try {
      const fh = await open(tmp, 'w', 0o644);
      try {
        // Never more than the trusted length: a longer body is an endless-data attack.
        await download(url, { maxBytes: target.length, idleTimeoutMs: this.options.idleTimeoutMs }, async (chunk) => {
          hasher.update(chunk);
          await fh.write(chunk);
        });
        await fh.sync();
      } finally {
        await fh.close();
      }
      verifyImage(name, target, { length: hasher.length, hashes: hasher.digest() });
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    return path;
  }
}
