/**
 * `type = "file"`: the image becomes the file at `path`. The new file is
 * written beside it, fsynced, and renamed over it; the one it replaces is kept
 * as `<path>.previous` (hard-linked first, so at every instant `path` holds a
 * complete image, old or new).
 */
import { copyFile, link, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ensureDir, exists, fsyncDir, fsyncFile } from '../state/atomic.js';
import type { Logger } from '../primary/log.js';
import { installFailed, installOk, type InstallOutcome, type InstallRequest, type Installer } from './installer.js';

export class FileInstaller implements Installer {
  readonly type = 'file';

  constructor(readonly path: string) {}

  get previousPath(): string {
    return `${this.path}.previous`;
  }

  async install(request: InstallRequest, log: Logger): Promise<InstallOutcome> {
    const dir = dirname(this.path);
    const tmp = join(dir, `.${basename(this.path)}.installing`);
    try {
      await ensureDir(dir, 0o755);
      await rm(tmp, { force: true });
      await copyFile(request.imagePath, tmp);
      await fsyncFile(tmp);
      if (await exists(this.path)) {
        const prevTmp = join(dir, `.${basename(this.path)}.previous-tmp`);
        await rm(prevTmp, { force: true });
        try {
          await link(this.path, prevTmp);
        } catch {
          // File systems without hard links: a copy keeps the same guarantee, only slower.
          await copyFile(this.path, prevTmp);
          await fsyncFile(prevTmp);
        }
        await rename(prevTmp, this.previousPath);
      }
      await rename(tmp, this.path);
      await fsyncDir(dir);
      log.info('image written', { target: request.targetName, path: this.path });
      return installOk(`${request.targetName} written to ${this.path}`);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {});
      return installFailed(`cannot write ${this.path}: ${(err as Error).message}`);
    }
  }
}
