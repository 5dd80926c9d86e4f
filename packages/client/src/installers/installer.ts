/**
 * Installers put a verified image in place. The Primary calls one only after
 * every Uptane check passed (metadata, cross-check, all hashes, exact length),
 * so an installer never sees an unverified byte; it only has to be safe against
 * power loss and report honestly.
 *
 * To add one: implement `Installer`, add its `[installer]` settings to the
 * configuration schema (config/config.ts), and a case to `createInstaller`
 * (installers/index.ts).
 * docs/device-client.md walks through it.
 */
import type { TargetFile } from '@uptide/core';
import type { Logger } from '../primary/log.js';

export interface InstallRequest {
  /** The ECU that installs (the Primary's own serial for these installers). */
  readonly ecuSerial: string;
  /** The target name from Director targets. */
  readonly targetName: string;
  /** A verified copy of the image on local disk. The installer may read it; the Primary deletes it afterwards. */
  readonly imagePath: string;
  /** The Director's metadata about the image (length, hashes, custom). */
  readonly target: TargetFile;
  readonly correlationId: string | undefined;
}

/** What happened, in aktualizr's result vocabulary (`OK`, `INSTALL_FAILED`, …). */
export interface InstallOutcome {
  readonly success: boolean;
  readonly code: string;
  readonly description: string;
}

export interface Installer {
  /** The `type` of the `[installer]` table. */
  readonly type: string;
  install(request: InstallRequest, log: Logger): Promise<InstallOutcome>;
}

export function installOk(description: string): InstallOutcome {
  return { success: true, code: 'OK', description };
}

export function installFailed(description: string, code = 'INSTALL_FAILED'): InstallOutcome {
  return { success: false, code, description };
}
