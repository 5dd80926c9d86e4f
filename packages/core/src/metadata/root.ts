/** Root metadata (uptane-standard.md §5.2.2): the keys and thresholds of every top-level role. */
import { FormatError } from '../errors.js';
import type { JsonObject, JsonValue } from '../json.js';
import { PublicKey, checkKeyId, type Dialect } from '../crypto/keys.js';
import {
  Metadata,
  Signed,
  parseCommon,
  parseEnvelope,
  parseSignatures,
  COMMON_FIELDS,
  TOP_LEVEL_ROLES,
  type RoleKeys,
  type RoleType,
  type SignedCommon,
} from './base.js';
import { expectBoolean, expectInteger, expectObject, expectStringArray, pickUnrecognized, pathKey, cloneJson, setOwn } from './guard.js';

/** aktualizr refuses thresholds above 1000; so do we, in both dialects. */
export const MAX_THRESHOLD = 1000;

export class RoleDefinition implements RoleKeys {
  constructor(
    readonly keyids: readonly string[],
    readonly threshold: number,
    readonly unrecognized: JsonObject = {},
  ) {}

  static fromJSON(v: JsonValue | undefined, path: string, dialect: Dialect): RoleDefinition {
    const o = expectObject(v, path);
    const keyids = expectStringArray(o['keyids'], `${path}.keyids`);
    if (new Set(keyids).size !== keyids.length) throw new FormatError(`${path}.keyids lists a key id twice`, { path: `${path}.keyids` });
    if (dialect === 'uptane') keyids.forEach((k, i) => checkKeyId(k, `${path}.keyids[${i}]`));
    const threshold = expectInteger(o['threshold'], `${path}.threshold`, 1);
    if (threshold > MAX_THRESHOLD) throw new FormatError(`${path}.threshold must be at most ${MAX_THRESHOLD}`, { path: `${path}.threshold` });
    return new RoleDefinition([...keyids], threshold, pickUnrecognized(o, ['keyids', 'threshold']));
  }

  toJSON(): JsonObject {
    return { ...cloneJson(this.unrecognized), keyids: [...this.keyids], threshold: this.threshold };
  }

  /** Same key ids (in any order) and the same threshold. */
  sameAs(other: RoleKeys): boolean {
    if (this.threshold !== other.threshold || this.keyids.length !== other.keyids.length) return false;
    const set = new Set(this.keyids);
    return other.keyids.every((k) => set.has(k));
  }
}

export interface RootInit extends SignedCommon {
  readonly keys: ReadonlyMap<string, PublicKey>;
  readonly roles: ReadonlyMap<string, RoleDefinition>;
  readonly consistentSnapshot?: boolean;
}

export class Root extends Signed {
  readonly type = 'root' as const;
  readonly keys: ReadonlyMap<string, PublicKey>;
  /** Every role of the file, including extra ones (OTA CE's `offline-updates`…), in file order. */
  readonly roles: ReadonlyMap<string, RoleDefinition>;
  readonly consistentSnapshot: boolean | undefined;

  constructor(init: RootInit) {
    super(init);
    for (const r of TOP_LEVEL_ROLES) {
      if (!init.roles.has(r)) throw new FormatError(`signed.roles.${r} is missing`, { path: `signed.roles.${r}` });
    }
    this.keys = init.keys;
    this.roles = init.roles;
    this.consistentSnapshot = init.consistentSnapshot;
  }

  /** Keys and threshold of a top-level role. */
  role(name: RoleType): RoleDefinition {
    const r = this.roles.get(name);
    if (!r) throw new FormatError(`signed.roles.${name} is missing`, { path: `signed.roles.${name}` });
    return r;
  }

  /** The public keys of a role that the file lists (key ids without a key are skipped). */
  roleKeys(name: RoleType): PublicKey[] {
    return this.role(name)
      .keyids.map((id) => this.keys.get(id))
      .filter((k): k is PublicKey => k !== undefined);
  }

  /**
   * Whether the keys or threshold of a role differ between two roots.
   * Compares key material too: a TUF key id is a name, and a new root may bind
   * the same id to another key.
   */
  roleChanged(other: Root, name: RoleType): boolean {
    if (!this.role(name).sameAs(other.role(name))) return true;
    const material = (root: Root): string =>
      root
        .role(name)
        .keyids.map((id) => root.keys.get(id)?.fingerprint() ?? `missing:${id}`)
        .sort()
        .join(',');
    return material(this) !== material(other);
  }

  static fromJSON(obj: JsonObject, dialect: Dialect): Root {
    const common = parseCommon(obj, 'root', dialect);
    const keysObj = expectObject(obj['keys'], 'signed.keys');
    const keys = new Map<string, PublicKey>();
    for (const id of Object.keys(keysObj)) {
      const path = pathKey('signed.keys', id);
      if (dialect === 'uptane') checkKeyId(id, path);
      keys.set(id, PublicKey.fromJSON(keysObj[id], dialect, path));
    }
    const rolesObj = expectObject(obj['roles'], 'signed.roles');
    const roles = new Map<string, RoleDefinition>();
    for (const name of Object.keys(rolesObj)) {
      roles.set(name, RoleDefinition.fromJSON(rolesObj[name], `signed.roles.${name}`, dialect));
    }
    let consistentSnapshot: boolean | undefined;
    if (dialect === 'tuf' || obj['consistent_snapshot'] !== undefined) {
      consistentSnapshot = expectBoolean(obj['consistent_snapshot'], 'signed.consistent_snapshot');
    }
    return new Root({
      ...common,
      keys,
      roles,
      consistentSnapshot,
      unrecognized: pickUnrecognized(obj, [...COMMON_FIELDS, 'keys', 'roles', 'consistent_snapshot']),
    });
  }

  toJSON(dialect: Dialect): JsonObject {
    const out = this.commonJSON(dialect);
    const keys: JsonObject = {};
    for (const [id, k] of this.keys) setOwn(keys, id, k.toJSON());
    const roles: JsonObject = {};
    for (const [name, r] of this.roles) setOwn(roles, name, r.toJSON());
    out['keys'] = keys;
    out['roles'] = roles;
    if (this.consistentSnapshot !== undefined) out['consistent_snapshot'] = this.consistentSnapshot;
    else if (dialect === 'tuf') out['consistent_snapshot'] = false;
    return out;
  }

  /** A copy with some fields replaced (for building the next version). */
  with(changes: Partial<RootInit>): Root {
    return new Root({
      version: this.version,
      expires: this.expires,
      typeString: this.typeString,
      specVersion: this.specVersion,
      unrecognized: this.unrecognized,
      keys: this.keys,
      roles: this.roles,
      consistentSnapshot: this.consistentSnapshot,
      ...changes,
    });
  }
}

export function parseRoot(input: Uint8Array | string | JsonValue, dialect: Dialect): Metadata<Root> {
  const { signed, signatures, receivedSigned } = parseEnvelope(input);
  return new Metadata(Root.fromJSON(signed, dialect), parseSignatures(signatures, dialect), dialect, signed, receivedSigned);
}

/** Builds a Root from signers per role (threshold 1 unless given). */
export function buildRoot(options: {
  version: number;
  expires: string;
  keys: Partial<Record<RoleType, readonly PublicKey[]>> & Record<RoleType, readonly PublicKey[]>;
  thresholds?: Partial<Record<RoleType, number>>;
  dialect: Dialect;
  consistentSnapshot?: boolean;
}): Root {
  const keys = new Map<string, PublicKey>();
  const roles = new Map<string, RoleDefinition>();
  for (const role of TOP_LEVEL_ROLES) {
    const ids: string[] = [];
    for (const k of options.keys[role]) {
      const id = k.keyId(options.dialect);
      keys.set(id, k);
      if (!ids.includes(id)) ids.push(id);
    }
    roles.set(role, new RoleDefinition(ids, options.thresholds?.[role] ?? 1));
  }
  return new Root({
    version: options.version,
    expires: options.expires,
    keys,
    roles,
    consistentSnapshot: options.consistentSnapshot ?? false,
  });
}
