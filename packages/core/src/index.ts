/**
 * @uptide/core: the pure heart of Uptide. Canonical JSON, keys and signers,
 * metadata in the uptane (OTA CE / aktualizr) and tuf wire dialects, the
 * verification procedures of the Uptane Standard, manifests, and typed errors.
 * No network, no file system, no clock, no global state.
 */
export * from './errors.js';
export * from './json.js';
export * from './encoding.js';
export * from './time.js';
export * from './crypto/keys.js';
export * from './crypto/hash.js';
export * from './crypto/signer.js';
export * from './metadata/base.js';
export * from './metadata/root.js';
export * from './metadata/targets.js';
export * from './metadata/snapshot.js';
export * from './metadata/guard.js';
export * from './verify/limits.js';
export * from './verify/trusted.js';
export * from './verify/delegations.js';
export * from './verify/uptane.js';
export * from './manifest/manifest.js';
