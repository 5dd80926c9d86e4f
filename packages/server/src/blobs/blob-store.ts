/**
 * Where image bytes live. The interface is small so that object storage can
 * replace the file system; the file-system store is the embedded default.
 * Blobs are content-addressed by SHA-256, so an upload interrupted half-way
 * never leaves a blob that a target could point to.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { MultiHasher, UptaneError } from '@uptide/core';

export interface BlobInfo {
  /** The blob's id: its SHA-256 in hex. */
  readonly id: string;
  readonly length: number;
  readonly hashes: Readonly<Record<string, string>>;
}

export interface ByteRange {
  readonly start: number;
  /** Inclusive. */
  readonly end: number;
}

export interface PutOptions {
  readonly maxBytes?: number;
  /** Refuse fewer bytes (without keeping anything): a refused upload must leave no blob behind. */
  readonly minBytes?: number;
}

export interface BlobStore {
  /** Streams bytes in while hashing (sha256, sha512); refuses more than maxBytes or fewer than minBytes without keeping anything. */
  put(source: AsyncIterable<Uint8Array>, options?: PutOptions): Promise<BlobInfo>;
  /** A stream of the blob's bytes (or a range of them). */
  open(id: string, range?: ByteRange): Readable;
  /** Size in bytes, or undefined if there is no such blob. */
  size(id: string): Promise<number | undefined>;
  delete(id: string): Promise<void>;
}

/** The upload was larger than allowed (HTTP 413). */
export class BlobTooLargeError extends UptaneError {
  constructor(limit: number) {
    super('ENDLESS_DATA', `the upload is larger than the limit of ${limit} bytes`);
  }
}

/** The upload was shorter than required (an empty image). */
export class BlobTooSmallError extends UptaneError {
  constructor(readonly minBytes: number) {
    super('BAD_ARGUMENT', `the upload has fewer than ${minBytes} bytes`);
  }
}

const ID_RE = /^[0-9a-f]{64}$/;
/** Unfinished uploads older than this were cut by a crash; no running upload is this slow. */
const STALE_TMP_MS = 24 * 3600 * 1000;

export class FileBlobStore implements BlobStore {
  constructor(private readonly dir: string) {}

  private pathOf(id: string): string {
    if (!ID_RE.test(id)) throw new UptaneError('BAD_ARGUMENT', 'invalid blob id');
    return join(this.dir, id.slice(0, 2), id);
  }

  private swept = false;

  /** Removes unfinished uploads a killed process left in tmp/ (old ones only: the directory may be shared by instances). */
  async sweepTmp(olderThanMs = STALE_TMP_MS): Promise<void> {
    const tmpDir = join(this.dir, 'tmp');
    const now = Date.now();
    for (const name of await fsp.readdir(tmpDir).catch(() => [] as string[])) {
      const p = join(tmpDir, name);
      const st = await fsp.stat(p).catch(() => undefined);
      if (st && now - st.mtimeMs > olderThanMs) await fsp.rm(p, { force: true });
    }
  }

  async put(source: AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<BlobInfo> {
    const tmpDir = join(this.dir, 'tmp');
    await fsp.mkdir(tmpDir, { recursive: true });
    if (!this.swept) {
      this.swept = true;
      await this.sweepTmp();
    }
    const tmp = join(tmpDir, randomBytes(12).toString('hex'));
    const hasher = new MultiHasher();
    const out = createWriteStream(tmp, { flags: 'wx' });
    const max = options.maxBytes ?? Number.MAX_SAFE_INTEGER;
    try {
      for await (const chunk of source) {
        hasher.update(chunk);
        if (hasher.length > max) throw new BlobTooLargeError(max);
        if (!out.write(chunk))
          await new Promise<void>((resolve, reject) => {
            // Remove the other listener each time, or a slow upload piles up 'error' listeners.
            const onDrain = () => {
              out.off('error', onError);
              resolve();
            };
            const onError = (err: Error) => {
              out.off('drain', onDrain);
              reject(err);
            };
            out.once('drain', onDrain);
            out.once('error', onError);
          });
      }
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
      if (hasher.length < (options.minBytes ?? 0)) throw new BlobTooSmallError(options.minBytes ?? 0);
      // Durable before it is referenced: fsync the file, then rename into place.
      const fh = await fsp.open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      const hashes = hasher.digest();
      const id = hashes['sha256'] as string;
      const final = this.pathOf(id);
      await fsp.mkdir(join(this.dir, id.slice(0, 2)), { recursive: true });
      await fsp.rename(tmp, final);
      return { id, length: hasher.length, hashes };
    } catch (err) {
      // The file may still be opening (a body that fails at once): wait for the stream to close, or the open
      // would land after the removal and leave an empty file behind.
      out.destroy();
      if (!out.closed) await once(out, 'close');
      await fsp.rm(tmp, { force: true });
      throw err;
    }
  }

  open(id: string, range?: ByteRange): Readable {
    return createReadStream(this.pathOf(id), range ? { start: range.start, end: range.end } : {});
  }

  async size(id: string): Promise<number | undefined> {
    try {
      return (await fsp.stat(this.pathOf(id))).size;
    } catch {
      return undefined;
    }
  }

  async delete(id: string): Promise<void> {
    await fsp.rm(this.pathOf(id), { force: true });
  }
}
