/**
 * The TUF client's metadata directory: the trusted metadata, each file under
 * its unversioned name (`root.json`, `timestamp.json`, `snapshot.json`,
 * `targets.json`, and `<quoted role>.json` for delegated roles), holding the
 * exact bytes the repository served. Nothing else is kept there, so what the
 * directory holds is exactly what the client trusts.
 *
 * Writes are atomic (temporary file, fsync, rename), so a power cut leaves
 * either the old or the new file, never a torn one.
 */
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { TrustedFiles } from '@uptide/core';
import { quote, unquote } from './quote.js';

const TOP_LEVEL = ['root', 'timestamp', 'snapshot', 'targets'] as const;
type TopLevel = (typeof TOP_LEVEL)[number];

function isTopLevel(role: string): role is TopLevel {
  return (TOP_LEVEL as readonly string[]).includes(role);
}

/** The file name of a role's metadata (python-tuf's naming). */
export function metadataFileName(role: string): string {
  return `${quote(role)}.json`;
}

/** Writes a file atomically: a hidden temporary file in the same directory, fsync, rename. */
export async function writeFileAtomic(path: string, dir: string, name: string, data: Uint8Array): Promise<void> {
  // Hidden and not ending in `.json`, so it is never mistaken for metadata, and removed on failure.
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  try {
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

export class MetadataStore {
  /** Bytes of each role as last read or written, to write only what changed. */
  private readonly onDisk = new Map<string, Uint8Array>();

  constructor(readonly dir: string) {}

  pathOf(role: string): string {
    return join(this.dir, metadataFileName(role));
  }

  /** Reads the trusted files. Throws when there is no `root.json` (run `init` first). */
  async load(): Promise<TrustedFiles> {
    this.onDisk.clear();
    const root = await readFile(this.pathOf('root'));
    this.onDisk.set('root', root);
    const top: Partial<Record<TopLevel, Uint8Array>> = {};
    const delegated = new Map<string, Uint8Array>();
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith('.json')) continue;
      const role = unquote(name.slice(0, -'.json'.length));
      // Only names this client could have written: anything else is not ours to read.
      if (role === undefined || role === 'root' || metadataFileName(role) !== name) continue;
      let bytes: Uint8Array;
      try {
        bytes = await readFile(join(this.dir, name));
      } catch {
        continue;
      }
      this.onDisk.set(role, bytes);
      if (isTopLevel(role)) top[role] = bytes;
      else delegated.set(role, bytes);
    }
    return { root, timestamp: top.timestamp, snapshot: top.snapshot, targets: top.targets, delegated };
  }

  /** Stores one role's bytes (when they differ from what is on disk). */
  async write(role: string, bytes: Uint8Array): Promise<void> {
    const known = this.onDisk.get(role);
    if (known !== undefined && Buffer.compare(known, bytes) === 0) return;
    await mkdir(this.dir, { recursive: true });
    await writeFileAtomic(this.pathOf(role), this.dir, metadataFileName(role), bytes);
    this.onDisk.set(role, bytes);
  }

  /** Removes a role's file: it is no longer trusted. */
  async remove(role: string): Promise<void> {
    if (!this.onDisk.has(role)) return;
    await unlink(this.pathOf(role)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    this.onDisk.delete(role);
  }

  /**
   * Makes the directory hold exactly the trusted state: new and changed files
   * are written, and files the trusted state no longer contains (timestamp and
   * snapshot discarded after a key rotation, say) are removed.
   */
  async persist(state: TrustedFiles): Promise<void> {
    const wanted = new Map<string, Uint8Array>();
    wanted.set('root', state.root);
    if (state.timestamp) wanted.set('timestamp', state.timestamp);
    if (state.snapshot) wanted.set('snapshot', state.snapshot);
    if (state.targets) wanted.set('targets', state.targets);
    for (const [role, bytes] of state.delegated ?? []) wanted.set(role, bytes);
    for (const [role, bytes] of wanted) await this.write(role, bytes);
    for (const role of [...this.onDisk.keys()]) if (!wanted.has(role)) await this.remove(role);
  }
}
