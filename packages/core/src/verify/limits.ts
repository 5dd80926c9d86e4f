/**
 * Byte limits against endless-data attacks (uptane-standard.md §6.6) and bounds
 * on delegation search. They are inputs: a device picks them for its link and
 * storage. Defaults follow aktualizr where it has one, so our client accepts
 * whatever aktualizr accepts from the same server.
 */
import { UptaneError } from '../errors.js';

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

/**
 * The defaults with some limits replaced. Each limit must be a non-negative
 * integer: a NaN or a string would make every `size > limit` comparison false
 * and silently switch the protection off, so it is refused (BAD_ARGUMENT).
 */
export function limitsWith(overrides: Partial<Limits> | undefined): Limits {
  const limits: Record<string, unknown> = { ...DEFAULT_LIMITS };
  // An override given as undefined keeps the default (Partial<Limits> allows it).
  for (const [name, value] of Object.entries(overrides ?? {})) if (value !== undefined) limits[name] = value;
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || (value as number) < 0)
      throw new UptaneError('BAD_ARGUMENT', `limit ${name} must be a non-negative integer, got ${String(value)}`);
  }
  return limits as unknown as Limits;
}

/** Throws BAD_ARGUMENT unless `now` is a valid Date: an invalid one would make every expiry check pass. */
export function checkNow(now: Date): void {
  if (!(now instanceof Date) || !Number.isFinite(now.getTime())) throw new UptaneError('BAD_ARGUMENT', 'the current time is not a valid Date');
}
