/** @uptide/server: the Uptide server as a library (the `uptide-server` command uses it). */
export { startServer, buildAdminApp, buildGatewayApp, createLogger, type RunningServer, type StartOptions } from './app.js';
export { loadConfig, ConfigError, type ServerConfig } from './config.js';
export { openDatabase, type Database, type SqlDialect } from './storage/database.js';
