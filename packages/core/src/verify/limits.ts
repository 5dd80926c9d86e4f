/**
 * Byte limits against endless-data attacks (uptane-standard.md §6.6) and bounds
 * on delegation search. They are inputs: a device picks them for its link and
 * storage. Defaults follow aktualizr where it has one, so our client accepts
 * whatever aktualizr accepts from the same server.
 */
export interface Limits {
  /** X: maximum bytes of one `N.root.json` (aktualizr: 64 KiB). */
  readonly rootBytes: number;
  /** Y: maximum bytes of `timestamp.json` (aktualizr: 64 KiB). */
  readonly timestampBytes: number;
  /** Snapshot bytes when the timestamp does not give a length (aktualizr: 64 KiB). */
  readonly snapshotBytes: number;
  /** Z: maximum bytes of a Director `targets.json` (aktualizr: 64 KiB). */
  readonly directorTargetsBytes: number;
  /** Z: maximum bytes of an Image repository targets or delegated file when the snapshot gives no length (aktualizr: 8 MiB). */
  readonly imageTargetsBytes: number;
  /** Maximum root versions to walk in one cycle. */
  readonly maxRootRotations: number;
  /** Maximum delegated roles visited while resolving one target (python-tuf: 32). */
  readonly maxDelegations: number;
  /** Maximum delegation depth (aktualizr: 5). */
  readonly maxDelegationDepth: number;
}

export const DEFAULT_LIMITS: Limits = {
  rootBytes: 64 * 1024,
  timestampBytes: 64 * 1024,
  snapshotBytes: 64 * 1024,
  directorTargetsBytes: 64 * 1024,
  imageTargetsBytes: 8 * 1024 * 1024,
  maxRootRotations: 256,
  maxDelegations: 32,
  maxDelegationDepth: 8,
};

export function limitsWith(overrides: Partial<Limits> | undefined): Limits {
  return { ...DEFAULT_LIMITS, ...(overrides ?? {}) };
}
