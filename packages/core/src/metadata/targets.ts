/**
 * Targets metadata (uptane-standard.md §5.2.3) with delegations (§5.2.3.2),
 * for both repositories. Uptane custom fields are validated at parse time so a
 * malformed `hardwareIds` or `ecuIdentifiers` fails the document, naming the field:
 *
 * - Image repository target `custom`: `name`, `version`, `hardwareIds`,
 *   `targetFormat`, `releaseCounter`, `uri`, `createdAt`, `updatedAt` (OTA CE).
 * - Director target `custom`: `ecuIdentifiers: {serial: {hardwareId}}`, `uri`,
 *   optional `releaseCounter` and `targetFormat`.
 * - Director top-level `signed.custom`: `correlationId`, and `vehicleId`
 *   (required by the Standard §5.2.3.1 when the target list is empty).
 */
import { FormatError } from '../errors.js';
import { isNfc, type JsonObject, type JsonValue } from '../json.js';
import { PublicKey, checkKeyId, type Dialect } from '../crypto/keys.js';
import { isHex } from '../encoding.js';
import { Metadata, Signed, parseCommon, parseEnvelope, parseSignatures, COMMON_FIELDS, type SignedCommon } from './base.js';
import {
  cloneJson,
  expectBoolean,
  expectInteger,
  expectNonEmptyString,
  expectObject,
  expectString,
  expectStringArray,
  pathKey,
  pickUnrecognized,
  setOwn,
} from './guard.js';
import { MAX_THRESHOLD } from './root.js';

export type Hashes = Readonly<Record<string, string>>;

function parseHashes(v: JsonValue | undefined, path: string): Record<string, string> {
  const o = expectObject(v, path);
  const keys = Object.keys(o);
  if (keys.length === 0) throw new FormatError(`${path} must list at least one hash`, { path });
  const out: Record<string, string> = {};
  for (const k of keys) {
    const h = o[k];
    if (typeof h !== 'string' || h.length === 0 || !isHex(h)) {
      const p = pathKey(path, k);
      throw new FormatError(typeof h !== 'string' ? `${p} must be a string` : `${p} must be a hex digest`, { path: p });
    }
    setOwn(out, k, h);
  }
  return out;
}

export interface EcuIdentifier {
  readonly hardwareId: string;
}

/** One entry of a `targets` map. */
export class TargetFile {
  constructor(
    readonly name: string,
    readonly length: number,
    readonly hashes: Hashes,
    /** The `custom` object as on the wire (absent when the entry has none). */
    readonly custom: JsonObject | undefined = undefined,
    readonly unrecognized: JsonObject = {},
  ) {}

  static fromJSON(name: string, v: JsonValue | undefined, path: string): TargetFile {
    const o = expectObject(v, path);
    const length = expectInteger(o['length'], `${path}.length`, 0);
    const hashes = parseHashes(o['hashes'], `${path}.hashes`);
    let custom: JsonObject | undefined;
    if (o['custom'] !== undefined) {
      custom = expectObject(o['custom'], `${path}.custom`);
      validateTargetCustom(custom, `${path}.custom`);
    }
    return new TargetFile(name, length, hashes, custom === undefined ? undefined : cloneJson(custom), pickUnrecognized(o, ['length', 'hashes', 'custom']));
  }

  toJSON(): JsonObject {
    const out: JsonObject = { ...cloneJson(this.unrecognized), length: this.length, hashes: cloneJson(this.hashes as JsonObject) };
    if (this.custom !== undefined) out['custom'] = cloneJson(this.custom);
    return out;
  }

  /** Image repository: hardware ids the image is built for. */
  get hardwareIds(): readonly string[] | undefined {
    const v = this.custom?.['hardwareIds'];
    return Array.isArray(v) ? (v as string[]) : undefined;
  }

  /** Release counter (both repositories), when present. */
  get releaseCounter(): number | undefined {
    const v = this.custom?.['releaseCounter'];
    return typeof v === 'number' ? v : undefined;
  }

  /** Director: ECU serial → hardware id the image is for. */
  get ecuIdentifiers(): ReadonlyMap<string, EcuIdentifier> {
    const v = this.custom?.['ecuIdentifiers'];
    const out = new Map<string, EcuIdentifier>();
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [serial, info] of Object.entries(v)) {
        const hw = (info as JsonObject)['hardwareId'];
        out.set(serial, { hardwareId: hw as string });
      }
    }
    return out;
  }

  /** Download URL, when the metadata gives one (null and absent both mean none). */
  get uri(): string | undefined {
    const v = this.custom?.['uri'];
    return typeof v === 'string' && v.length > 0 ? v : undefined;
  }

  get targetFormat(): string | undefined {
    const v = this.custom?.['targetFormat'];
    return typeof v === 'string' ? v : undefined;
  }

  /** Same length and the same value for every hash algorithm both list (at least one in common). */
  sameFileAs(other: TargetFile): boolean {
    if (this.length !== other.length) return false;
    let common = 0;
    for (const [alg, h] of Object.entries(this.hashes)) {
      const o = other.hashes[alg];
      if (o === undefined) continue;
      if (o.toLowerCase() !== h.toLowerCase()) return false;
      common++;
    }
    return common > 0;
  }

  with(changes: { length?: number; hashes?: Hashes; custom?: JsonObject | undefined }): TargetFile {
    return new TargetFile(
      this.name,
      changes.length ?? this.length,
      changes.hashes ?? this.hashes,
      'custom' in changes ? changes.custom : this.custom,
      this.unrecognized,
    );
  }
}

function validateTargetCustom(c: JsonObject, path: string): void {
  if (c['hardwareIds'] !== undefined && c['hardwareIds'] !== null) expectStringArray(c['hardwareIds'], `${path}.hardwareIds`);
  if (c['releaseCounter'] !== undefined && c['releaseCounter'] !== null) expectInteger(c['releaseCounter'], `${path}.releaseCounter`, 0);
  if (c['uri'] !== undefined && c['uri'] !== null) expectString(c['uri'], `${path}.uri`);
  if (c['targetFormat'] !== undefined && c['targetFormat'] !== null) expectString(c['targetFormat'], `${path}.targetFormat`);
  if (c['ecuIdentifiers'] !== undefined) {
    const ids = expectObject(c['ecuIdentifiers'], `${path}.ecuIdentifiers`);
    for (const serial of Object.keys(ids)) {
      const p = pathKey(`${path}.ecuIdentifiers`, serial);
      const info = expectObject(ids[serial], p);
      expectNonEmptyString(info['hardwareId'], `${p}.hardwareId`);
    }
  }
}

// --- Delegations ---------------------------------------------------------------

/** One role of a multi-role delegation (TAP 3). */
export interface DelegatedRoleName {
  readonly name: string;
  readonly keyids: readonly string[];
  readonly threshold: number;
  /** Unknown fields of a role in a multi-role delegation (kept for lossless round trips). */
  readonly unrecognized?: JsonObject;
}

/**
 * A delegation: target path patterns (or TUF path hash prefixes), an optional
 * hardware-id filter, the terminating flag, and either one role (`name`,
 * `keyids`, `threshold`) or several (TAP 3: `roles` + `min_roles_in_agreement`).
 */
export class Delegation {
  constructor(
    readonly roles: readonly DelegatedRoleName[],
    /** How many roles must agree: 1 for an ordinary delegation. */
    readonly minRolesInAgreement: number,
    readonly paths: readonly string[] | undefined,
    readonly pathHashPrefixes: readonly string[] | undefined,
    readonly terminating: boolean,
    readonly hardwareIds: readonly string[] | undefined,
    /** Multi-role form on the wire (a `roles` list) rather than a single `name`. */
    readonly multiRole: boolean,
    readonly unrecognized: JsonObject = {},
    /** False when the wire omitted `terminating` (uptane dialect), so it is written back omitted. */
    readonly terminatingOnWire: boolean = true,
  ) {}

  /** Name of the single role of an ordinary delegation. */
  get name(): string {
    return (this.roles[0] as DelegatedRoleName).name;
  }

  static fromJSON(v: JsonValue | undefined, path: string, dialect: Dialect): Delegation {
    const o = expectObject(v, path);
    const omitted = o['terminating'] === undefined && dialect === 'uptane';
    const terminating = omitted ? false : expectBoolean(o['terminating'], `${path}.terminating`);
    let paths: string[] | undefined;
    let prefixes: string[] | undefined;
    if (o['paths'] !== undefined) paths = [...expectStringArray(o['paths'], `${path}.paths`)];
    if (o['path_hash_prefixes'] !== undefined) prefixes = [...expectStringArray(o['path_hash_prefixes'], `${path}.path_hash_prefixes`)];
    if (paths !== undefined && prefixes !== undefined) throw new FormatError(`${path} has both paths and path_hash_prefixes`, { path });
    if (paths === undefined && prefixes === undefined) throw new FormatError(`${path} needs paths or path_hash_prefixes`, { path: `${path}.paths` });
    let hardwareIds: string[] | undefined;
    if (o['hardwareIds'] !== undefined) hardwareIds = [...expectStringArray(o['hardwareIds'], `${path}.hardwareIds`)];
    const known = ['terminating', 'paths', 'path_hash_prefixes', 'hardwareIds'];
    if (o['roles'] !== undefined) {
      const list = o['roles'];
      if (!Array.isArray(list) || list.length === 0) throw new FormatError(`${path}.roles must be a non-empty array`, { path: `${path}.roles` });
      const roles = list.map((r, i) => parseRoleName(r, `${path}.roles[${i}]`, dialect));
      if (new Set(roles.map((r) => r.name)).size !== roles.length) throw new FormatError(`${path}.roles names a role twice`, { path: `${path}.roles` });
      const min = expectInteger(o['min_roles_in_agreement'], `${path}.min_roles_in_agreement`, 1);
      if (min > roles.length) throw new FormatError(`${path}.min_roles_in_agreement exceeds the number of roles`, { path: `${path}.min_roles_in_agreement` });
      return new Delegation(
        roles,
        min,
        paths,
        prefixes,
        terminating,
        hardwareIds,
        true,
        pickUnrecognized(o, [...known, 'roles', 'min_roles_in_agreement']),
        !omitted,
      );
    }
    const { unrecognized: _ignored, ...role } = parseRoleName(o, path, dialect);
    return new Delegation(
      [role],
      1,
      paths,
      prefixes,
      terminating,
      hardwareIds,
      false,
      pickUnrecognized(o, [...known, 'name', 'keyids', 'threshold']),
      !omitted,
    );
  }

  toJSON(): JsonObject {
    const out: JsonObject = { ...cloneJson(this.unrecognized) };
    if (this.terminating || this.terminatingOnWire) out['terminating'] = this.terminating;
    if (this.paths !== undefined) out['paths'] = [...this.paths];
    if (this.pathHashPrefixes !== undefined) out['path_hash_prefixes'] = [...this.pathHashPrefixes];
    if (this.hardwareIds !== undefined) out['hardwareIds'] = [...this.hardwareIds];
    if (this.multiRole) {
      out['roles'] = this.roles.map((r) => ({ ...cloneJson(r.unrecognized ?? {}), name: r.name, keyids: [...r.keyids], threshold: r.threshold }));
      out['min_roles_in_agreement'] = this.minRolesInAgreement;
    } else {
      const r = this.roles[0] as DelegatedRoleName;
      out['name'] = r.name;
      out['keyids'] = [...r.keyids];
      out['threshold'] = r.threshold;
    }
    return out;
  }
}

function parseRoleName(v: JsonValue | undefined, path: string, dialect: Dialect): DelegatedRoleName {
  const o = expectObject(v, path);
  const name = expectNonEmptyString(o['name'], `${path}.name`);
  if (!isNfc(name)) throw new FormatError(`${path}.name must be in Unicode NFC`, { path: `${path}.name` });
  if (['root', 'targets', 'snapshot', 'timestamp'].includes(name))
    throw new FormatError(`${path}.name may not be a top-level role name`, { path: `${path}.name` });
  const keyids = [...expectStringArray(o['keyids'], `${path}.keyids`)];
  if (new Set(keyids).size !== keyids.length) throw new FormatError(`${path}.keyids lists a key id twice`, { path: `${path}.keyids` });
  if (dialect === 'uptane') keyids.forEach((k, i) => checkKeyId(k, `${path}.keyids[${i}]`));
  const threshold = expectInteger(o['threshold'], `${path}.threshold`, 1);
  if (threshold > MAX_THRESHOLD) throw new FormatError(`${path}.threshold must be at most ${MAX_THRESHOLD}`, { path: `${path}.threshold` });
  return { name, keyids, threshold, unrecognized: pickUnrecognized(o, ['name', 'keyids', 'threshold']) };
}

/** TUF succinct hash-bin delegations (TAP 15). */
export class SuccinctRoles {
  constructor(
    readonly keyids: readonly string[],
    readonly threshold: number,
    readonly bitLength: number,
    readonly namePrefix: string,
    readonly unrecognized: JsonObject = {},
  ) {}

  static fromJSON(v: JsonValue | undefined, path: string): SuccinctRoles {
    const o = expectObject(v, path);
    const keyids = [...expectStringArray(o['keyids'], `${path}.keyids`)];
    const threshold = expectInteger(o['threshold'], `${path}.threshold`, 1);
    const bitLength = expectInteger(o['bit_length'], `${path}.bit_length`, 1);
    if (bitLength > 32) throw new FormatError(`${path}.bit_length must be between 1 and 32`, { path: `${path}.bit_length` });
    const namePrefix = expectString(o['name_prefix'], `${path}.name_prefix`);
    return new SuccinctRoles(keyids, threshold, bitLength, namePrefix, pickUnrecognized(o, ['keyids', 'threshold', 'bit_length', 'name_prefix']));
  }

  toJSON(): JsonObject {
    return { ...cloneJson(this.unrecognized), keyids: [...this.keyids], threshold: this.threshold, bit_length: this.bitLength, name_prefix: this.namePrefix };
  }

  get numberOfBins(): number {
    return 2 ** this.bitLength;
  }

  /** Hex digits in a bin suffix. */
  get suffixLength(): number {
    return (this.numberOfBins - 1).toString(16).length;
  }

  binName(index: number): string {
    return `${this.namePrefix}-${index.toString(16).padStart(this.suffixLength, '0')}`;
  }

  isDelegatedRole(name: string): boolean {
    const prefix = `${this.namePrefix}-`;
    if (!name.startsWith(prefix)) return false;
    const suffix = name.slice(prefix.length);
    if (suffix.length !== this.suffixLength || !/^[0-9a-f]+$/.test(suffix)) return false;
    return parseInt(suffix, 16) < this.numberOfBins;
  }
}

export class Delegations {
  constructor(
    readonly keys: ReadonlyMap<string, PublicKey>,
    /** In priority order (uptane-standard.md §5.2.3.2). */
    readonly roles: readonly Delegation[] | undefined,
    readonly succinctRoles: SuccinctRoles | undefined = undefined,
    readonly unrecognized: JsonObject = {},
  ) {}

  static fromJSON(v: JsonValue | undefined, path: string, dialect: Dialect): Delegations {
    const o = expectObject(v, path);
    const keysObj = expectObject(o['keys'], `${path}.keys`);
    const keys = new Map<string, PublicKey>();
    for (const id of Object.keys(keysObj)) {
      const p = pathKey(`${path}.keys`, id);
      if (dialect === 'uptane') checkKeyId(id, p);
      keys.set(id, PublicKey.fromJSON(keysObj[id], dialect, p));
    }
    let roles: Delegation[] | undefined;
    let succinct: SuccinctRoles | undefined;
    if (o['roles'] !== undefined) {
      const arr = o['roles'];
      if (!Array.isArray(arr)) throw new FormatError(`${path}.roles must be an array`, { path: `${path}.roles` });
      roles = arr.map((r, i) => Delegation.fromJSON(r, `${path}.roles[${i}]`, dialect));
      const names = new Set<string>();
      for (const d of roles) {
        for (const r of d.roles) {
          if (names.has(r.name)) throw new FormatError(`${path}.roles delegates to ${JSON.stringify(r.name)} twice`, { path: `${path}.roles` });
          names.add(r.name);
        }
      }
    }
    if (o['succinct_roles'] !== undefined) {
      if (dialect !== 'tuf') throw new FormatError(`${path}.succinct_roles exists only in the tuf dialect`, { path: `${path}.succinct_roles` });
      succinct = SuccinctRoles.fromJSON(o['succinct_roles'], `${path}.succinct_roles`);
    }
    if ((roles === undefined) === (succinct === undefined)) {
      throw new FormatError(`${path} needs exactly one of roles and succinct_roles`, { path: `${path}.roles` });
    }
    return new Delegations(keys, roles, succinct, pickUnrecognized(o, ['keys', 'roles', 'succinct_roles']));
  }

  toJSON(): JsonObject {
    const keys: JsonObject = {};
    for (const [id, k] of this.keys) setOwn(keys, id, k.toJSON());
    const out: JsonObject = { ...cloneJson(this.unrecognized), keys };
    if (this.roles !== undefined) out['roles'] = this.roles.map((r) => r.toJSON());
    if (this.succinctRoles !== undefined) out['succinct_roles'] = this.succinctRoles.toJSON();
    return out;
  }

  /** Keys and threshold with which a delegated role must be signed, or undefined if not delegated here. */
  roleKeys(name: string): DelegatedRoleName | undefined {
    if (this.roles) {
      for (const d of this.roles) for (const r of d.roles) if (r.name === name) return r;
      return undefined;
    }
    if (this.succinctRoles?.isDelegatedRole(name)) return { name, keyids: this.succinctRoles.keyids, threshold: this.succinctRoles.threshold };
    return undefined;
  }
}

// --- Targets ---------------------------------------------------------------------

export interface TargetsInit extends SignedCommon {
  readonly targets: ReadonlyMap<string, TargetFile>;
  readonly delegations?: Delegations | undefined;
  /** Top-level `signed.custom` (Director: correlationId, vehicleId). */
  readonly custom?: JsonObject | undefined;
}

export class Targets extends Signed {
  readonly type = 'targets' as const;
  readonly targets: ReadonlyMap<string, TargetFile>;
  readonly delegations: Delegations | undefined;
  readonly custom: JsonObject | undefined;

  constructor(init: TargetsInit) {
    super(init);
    this.targets = init.targets;
    this.delegations = init.delegations;
    this.custom = init.custom;
  }

  /** Director: the correlation id of the assignment (copied into events and reports). */
  get correlationId(): string | undefined {
    const v = this.custom?.['correlationId'];
    return typeof v === 'string' ? v : undefined;
  }

  /** Director: the vehicle (device) the file was made for. */
  get vehicleId(): string | undefined {
    const v = this.custom?.['vehicleId'];
    return typeof v === 'string' ? v : undefined;
  }

  /** Looks a target up by name, comparing names in Unicode NFC (uptane-standard.md §5.2). */
  find(name: string): TargetFile | undefined {
    const direct = this.targets.get(name);
    if (direct) return direct;
    // Built on the first miss: a delegation search asks every role along the way, and scanning
    // 10,000 names per question would make a miss cost far more than a hit.
    if (!this.nfcIndex) {
      this.nfcIndex = new Map();
      for (const [k, t] of this.targets) this.nfcIndex.set(k.normalize('NFC'), t);
    }
    return this.nfcIndex.get(name.normalize('NFC'));
  }

  private nfcIndex: Map<string, TargetFile> | undefined;

  static fromJSON(obj: JsonObject, dialect: Dialect): Targets {
    const common = parseCommon(obj, 'targets', dialect);
    const tObj = expectObject(obj['targets'], 'signed.targets');
    const targets = new Map<string, TargetFile>();
    const seen = new Set<string>();
    for (const name of Object.keys(tObj)) {
      if (name.length === 0) throw new FormatError('signed.targets has an empty target name', { path: pathKey('signed.targets', name) });
      // Two names that are equal once normalized would make lookups ambiguous.
      const nfc = name.normalize('NFC');
      if (seen.has(nfc)) {
        const path = pathKey('signed.targets', name);
        throw new FormatError(`${path} duplicates another target name after NFC normalization`, { path });
      }
      seen.add(nfc);
      let entry: TargetFile;
      try {
        // Paths are built only for the error: with 10,000 entries, building them eagerly costs more than the checks.
        entry = TargetFile.fromJSON(name, tObj[name], '');
      } catch (err) {
        if (err instanceof FormatError) TargetFile.fromJSON(name, tObj[name], pathKey('signed.targets', name)); // throws the same error, with its path
        throw err;
      }
      targets.set(name, entry);
    }
    const delegations = obj['delegations'] === undefined ? undefined : Delegations.fromJSON(obj['delegations'], 'signed.delegations', dialect);
    let custom: JsonObject | undefined;
    if (obj['custom'] !== undefined) {
      custom = cloneJson(expectObject(obj['custom'], 'signed.custom'));
      if (custom['correlationId'] !== undefined) expectString(custom['correlationId'], 'signed.custom.correlationId');
      if (custom['vehicleId'] !== undefined) expectString(custom['vehicleId'], 'signed.custom.vehicleId');
    }
    return new Targets({
      ...common,
      targets,
      delegations,
      custom,
      unrecognized: pickUnrecognized(obj, [...COMMON_FIELDS, 'targets', 'delegations', 'custom']),
    });
  }

  toJSON(dialect: Dialect): JsonObject {
    const out = this.commonJSON(dialect);
    const targets: JsonObject = {};
    for (const [name, t] of this.targets) setOwn(targets, name, t.toJSON());
    out['targets'] = targets;
    if (this.delegations !== undefined) out['delegations'] = this.delegations.toJSON();
    if (this.custom !== undefined) out['custom'] = cloneJson(this.custom);
    return out;
  }

  with(changes: Partial<TargetsInit>): Targets {
    return new Targets({
      version: this.version,
      expires: this.expires,
      typeString: this.typeString,
      specVersion: this.specVersion,
      unrecognized: this.unrecognized,
      targets: this.targets,
      delegations: this.delegations,
      custom: this.custom,
      ...changes,
    });
  }
}

export function parseTargets(input: Uint8Array | string | JsonValue, dialect: Dialect): Metadata<Targets> {
  const { signed, signatures, receivedSigned } = parseEnvelope(input);
  return new Metadata(Targets.fromJSON(signed, dialect), parseSignatures(signatures, dialect), dialect, signed, receivedSigned);
}

/**
 * The rule for names a repository publishes (uptane-standard.md §5.2.7 rule 3, A17): 1-254 characters of
 * A-Z a-z 0-9 . _ ~ + @ = : , - and /, in NFC, with no empty, "." or ".." segment and not absolute. The
 * server refuses other names on upload and the CLI before sending; clients accept a wider set (checkTargetName).
 */
export function isPublishableTargetName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 254 &&
    /^[A-Za-z0-9._~+@=:,-][A-Za-z0-9._~+@=:,/-]*$/.test(name) &&
    isNfc(name) &&
    !name.split('/').some((seg) => seg === '' || seg === '.' || seg === '..')
  );
}
