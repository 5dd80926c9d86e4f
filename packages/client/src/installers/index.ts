/** The installers, and the one place that maps an `[installer]` table to one. */
import type { InstallerSection } from '../config/config.js';
import { CommandInstaller } from './command.js';
import { FileInstaller } from './file.js';
import type { Installer } from './installer.js';

export type { Installer, InstallOutcome, InstallRequest } from './installer.js';
export { installFailed, installOk } from './installer.js';
export { CommandInstaller } from './command.js';
export { FileInstaller } from './file.js';

export function createInstaller(config: InstallerSection): Installer {
  switch (config.type) {
    case 'file':
      return new FileInstaller(config.path);
    case 'command':
      return new CommandInstaller(config.command, config.timeoutSeconds * 1000);
  }
}
