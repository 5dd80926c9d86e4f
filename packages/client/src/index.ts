/**
 * @uptide/client: the device side of Uptide. The Primary (`uptide-device`),
 * the aktualizr IP-Secondary protocol, installers, the plain TUF client
 * (`uptide-tuf`) and their building blocks. Depends on @uptide/core only.
 */
export { Primary, PrimaryError, installationReport, type PrimaryOptions, type CycleResult, type CycleError } from './primary/primary.js';
export { PrimaryEcu, type Ecu, type MetadataBundle, type ImageDelivery, type RepositoryMetadata } from './primary/ecu.js';
export { createLogger, silentLogger, memoryLogger, type Logger, type LogLevel } from './primary/log.js';
export { loadConfig, parseConfigText, endpoints, ConfigError, type DeviceConfig } from './config/config.js';
export { HttpClient, HttpError } from './http/client.js';
export { StateStore } from './state/store.js';
export { createInstaller, FileInstaller, CommandInstaller, type Installer } from './installers/index.js';
export { TufUpdater, HttpRepositorySource as TufHttpSource, TUF_CLIENT_LIMITS } from './tuf/updater.js';
export * from './secondary/protocol/index.js';
export { Secondary, type SecondaryOptions } from './secondary/secondary.js';
export { loadSecondaryConfig, parseSecondaryConfigText, type SecondaryConfig } from './secondary/config.js';
export { IpSecondary, openIpSecondaries, identityFromInfo } from './secondary/ip-secondary.js';
export { EcuError } from './primary/ecu.js';
export { runSimulator, deviceIds } from './sim/fleet.js';
export type { SimOptions } from './sim/options.js';
export type { SimSummary } from './sim/stats.js';
