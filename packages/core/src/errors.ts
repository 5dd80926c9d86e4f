/**
 * Typed errors with machine-readable codes.
 *
 * Every failure of a check of the Uptane Standard maps to one code, so that a
 * client can put the attack type into its ECU version report (`attacks_detected`)
 * and a server can map it to an HTTP status in one place. Callers branch on
 * `code` (or on `instanceof` of the subclasses below), never on messages.
 */

/** Codes that name an attack of the Uptane threat model (uptane-standard.md §9). */
export const ATTACK_CODES = [
  'ROLLBACK',
  'FREEZE',
  'MIX_AND_MATCH',
  'ARBITRARY_SOFTWARE',
  'ENDLESS_DATA',
  'SLOW_RETRIEVAL',
  'BAD_HARDWARE_ID',
  'BAD_ECU_ID',
  'TARGET_MISMATCH',
  'DIRECTOR_REPLAY',
] as const;

export type AttackCode = (typeof ATTACK_CODES)[number];

/** Codes for failures that are not (necessarily) attacks. */
export type FailureCode =
  | 'MALFORMED_JSON'
  | 'MALFORMED_METADATA'
  | 'UNSUPPORTED_ALGORITHM'
  | 'BAD_KEY'
  | 'TARGET_NOT_FOUND'
  | 'DELEGATION_LIMIT'
  | 'BAD_ORDER'
  | 'BAD_PASSPHRASE'
  | 'BAD_MANIFEST'
  | 'BAD_ARGUMENT';

export type ErrorCode = AttackCode | FailureCode;

export function isAttackCode(code: string): code is AttackCode {
  return (ATTACK_CODES as readonly string[]).includes(code);
}

export interface UptaneErrorDetails {
  /** Which repository the failing metadata came from, when there is one. */
  readonly repository?: string;
  /** Which role (root, timestamp, snapshot, targets, or a delegated role name). */
  readonly role?: string;
  /** JSON path of the offending field, for format errors. */
  readonly path?: string;
  readonly cause?: unknown;
}

/** Base class of every error the core throws on purpose. */
export class UptaneError extends Error {
  readonly code: ErrorCode;
  readonly repository: string | undefined;
  readonly role: string | undefined;
  readonly path: string | undefined;

  constructor(code: ErrorCode, message: string, details: UptaneErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.code = code;
    this.repository = details.repository;
    this.role = details.role;
    this.path = details.path;
  }

  /** True when the code names an attack of the threat model. */
  get isAttack(): boolean {
    return isAttackCode(this.code);
  }

  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { code: this.code, message: this.message };
    if (this.repository !== undefined) out['repository'] = this.repository;
    if (this.role !== undefined) out['role'] = this.role;
    if (this.path !== undefined) out['path'] = this.path;
    return out;
  }
}

/** Bytes are not strict JSON (syntax, duplicate keys, lone surrogates, depth, unsafe numbers). */
export class JsonError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('MALFORMED_JSON', message, details);
  }
}

/** A document parsed as JSON but is not well-formed metadata; `path` names the field. */
export class FormatError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('MALFORMED_METADATA', message, details);
  }
}

/** A key type, signature scheme or hash function we do not support. */
export class UnsupportedAlgorithmError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('UNSUPPORTED_ALGORITHM', message, details);
  }
}

/** Not enough valid signatures from unique authorised keys (arbitrary software). */
export class SignatureError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('ARBITRARY_SOFTWARE', message, details);
  }
}

/** A version went down, a role disappeared from snapshot, a release counter decreased. */
export class RollbackError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('ROLLBACK', message, details);
  }
}

/** Metadata is expired at the (securely loaded) current time. */
export class FreezeError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('FREEZE', message, details);
  }
}

/** Versions or hashes of one file do not match what another file says about it. */
export class MixAndMatchError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('MIX_AND_MATCH', message, details);
  }
}

/** More bytes than allowed for a download. */
export class EndlessDataError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('ENDLESS_DATA', message, details);
  }
}

/** A download went below the minimum speed. */
export class SlowRetrievalError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('SLOW_RETRIEVAL', message, details);
  }
}

/** A target meant for another hardware type. */
export class BadHardwareIdError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('BAD_HARDWARE_ID', message, details);
  }
}

/** Director targets name an ECU twice, or an ECU that is not in this vehicle. */
export class BadEcuIdError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('BAD_ECU_ID', message, details);
  }
}

/** Director and Image repository disagree about a target (length, hashes, custom fields), or image bytes do not match. */
export class TargetMismatchError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('TARGET_MISMATCH', message, details);
  }
}

/** An empty Director targets without this vehicle's identifier (replayed from another vehicle). */
export class DirectorReplayError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('DIRECTOR_REPLAY', message, details);
  }
}

/** No trusted metadata about a target could be found (delegation resolution). */
export class TargetNotFoundError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('TARGET_NOT_FOUND', message, details);
  }
}

/** Delegation resolution went beyond the configured number of roles or depth. */
export class DelegationLimitError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('DELEGATION_LIMIT', message, details);
  }
}

/** A procedure step was called out of the order the Standard prescribes. */
export class OrderError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('BAD_ORDER', message, details);
  }
}

/** A public key value that cannot be parsed or is of a refused size. */
export class KeyError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('BAD_KEY', message, details);
  }
}

/** A manifest or version report that fails a check. */
export class ManifestError extends UptaneError {
  constructor(message: string, details: UptaneErrorDetails = {}) {
    super('BAD_MANIFEST', message, details);
  }
}

/** Wraps anything thrown inside the core that is not an UptaneError, so callers see one hierarchy. */
export function asUptaneError(err: unknown, fallback: ErrorCode = 'MALFORMED_METADATA'): UptaneError {
  if (err instanceof UptaneError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new UptaneError(fallback, message, { cause: err });
}
