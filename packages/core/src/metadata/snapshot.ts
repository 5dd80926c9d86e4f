/** Snapshot (§5.2.4) and Timestamp (§5.2.5) metadata, and the MetaFile entries they list. */
import { FormatError } from '../errors.js';
import type { JsonObject, JsonValue } from '../json.js';
import { isHex } from '../encoding.js';
import type { Dialect } from '../crypto/keys.js';
import { Metadata, Signed, parseCommon, parseEnvelope, parseSignatures, COMMON_FIELDS, type SignedCommon } from './base.js';
import { cloneJson, expectInteger, expectObject, expectString, pathKey, pickUnrecognized, setOwn } from './guard.js';
import { computeHashes, firstHashMismatch } from '../crypto/hash.js';

/** What one metadata file says about another: version, and optionally length and hashes. */
export class MetaFile {
  constructor(
    readonly version: number,
    readonly length: number | undefined = undefined,
    readonly hashes: Readonly<Record<string, string>> | undefined = undefined,
    readonly unrecognized: JsonObject = {},
  ) {}

  static fromJSON(v: JsonValue | undefined, path: string, requireLengthAndHashes = false): MetaFile {
    const o = expectObject(v, path);
    const version = expectInteger(o['version'], `${path}.version`, 1);
    let length: number | undefined;
    let hashes: Record<string, string> | undefined;
    if (o['length'] !== undefined || requireLengthAndHashes) length = expectInteger(o['length'], `${path}.length`, 0);
    if (o['hashes'] !== undefined || requireLengthAndHashes) {
      const h = expectObject(o['hashes'], `${path}.hashes`);
      const keys = Object.keys(h);
      if (keys.length === 0) throw new FormatError(`${path}.hashes must list at least one hash`, { path: `${path}.hashes` });
      hashes = {};
      for (const k of keys) {
        const d = expectString(h[k], pathKey(`${path}.hashes`, k));
        if (d.length === 0 || !isHex(d)) throw new FormatError(`${pathKey(`${path}.hashes`, k)} must be a hex digest`, { path: pathKey(`${path}.hashes`, k) });
        setOwn(hashes, k, d);
      }
    }
    return new MetaFile(version, length, hashes, pickUnrecognized(o, ['version', 'length', 'hashes']));
  }

  toJSON(): JsonObject {
    const out: JsonObject = { ...cloneJson(this.unrecognized), version: this.version };
    if (this.length !== undefined) out['length'] = this.length;
    if (this.hashes !== undefined) out['hashes'] = cloneJson(this.hashes as JsonObject);
    return out;
  }

  /** Describes exact bytes: version plus their length and hashes. */
  static describe(version: number, bytes: Uint8Array): MetaFile {
    return new MetaFile(version, bytes.byteLength, computeHashes(bytes));
  }

  /**
   * Whether bytes match the length and every listed hash (when listed).
   * Returns a reason string on mismatch, undefined on match.
   */
  mismatch(bytes: Uint8Array): string | undefined {
    if (this.length !== undefined && bytes.byteLength !== this.length) return `length ${bytes.byteLength} differs from ${this.length}`;
    if (this.hashes !== undefined) {
      const bad = firstHashMismatch(this.hashes, computeHashes(bytes));
      if (bad !== undefined) return `${bad} hash differs`;
    }
    return undefined;
  }
}

function parseMeta(v: JsonValue | undefined, path: string): Map<string, MetaFile> {
  const o = expectObject(v, path);
  const meta = new Map<string, MetaFile>();
  for (const name of Object.keys(o)) meta.set(name, MetaFile.fromJSON(o[name], pathKey(path, name)));
  return meta;
}

function metaToJSON(meta: ReadonlyMap<string, MetaFile>): JsonObject {
  const out: JsonObject = {};
  for (const [k, m] of meta) setOwn(out, k, m.toJSON());
  return out;
}

export interface SnapshotInit extends SignedCommon {
  readonly meta: ReadonlyMap<string, MetaFile>;
}

export class Snapshot extends Signed {
  readonly type = 'snapshot' as const;
  /** `targets.json`, every `<delegated role>.json`, and optionally `root.json`. */
  readonly meta: ReadonlyMap<string, MetaFile>;

  constructor(init: SnapshotInit) {
    super(init);
    this.meta = init.meta;
  }

  static fromJSON(obj: JsonObject, dialect: Dialect): Snapshot {
    const common = parseCommon(obj, 'snapshot', dialect);
    const meta = parseMeta(obj['meta'], 'signed.meta');
    if (!meta.has('targets.json')) throw new FormatError('signed.meta must list targets.json', { path: 'signed.meta' });
    return new Snapshot({ ...common, meta, unrecognized: pickUnrecognized(obj, [...COMMON_FIELDS, 'meta']) });
  }

  toJSON(dialect: Dialect): JsonObject {
    const out = this.commonJSON(dialect);
    out['meta'] = metaToJSON(this.meta);
    return out;
  }

  with(changes: Partial<SnapshotInit>): Snapshot {
    return new Snapshot({
      version: this.version,
      expires: this.expires,
      typeString: this.typeString,
      specVersion: this.specVersion,
      unrecognized: this.unrecognized,
      meta: this.meta,
      ...changes,
    });
  }
}

export interface TimestampInit extends SignedCommon {
  readonly snapshot: MetaFile;
  /** Other entries of `meta`, kept for lossless round trips. */
  readonly otherMeta?: ReadonlyMap<string, MetaFile>;
}

export class Timestamp extends Signed {
  readonly type = 'timestamp' as const;
  /** The `snapshot.json` entry. */
  readonly snapshot: MetaFile;
  readonly otherMeta: ReadonlyMap<string, MetaFile>;

  constructor(init: TimestampInit) {
    super(init);
    this.snapshot = init.snapshot;
    this.otherMeta = init.otherMeta ?? new Map();
  }

  static fromJSON(obj: JsonObject, dialect: Dialect): Timestamp {
    const common = parseCommon(obj, 'timestamp', dialect);
    const metaObj = expectObject(obj['meta'], 'signed.meta');
    if (metaObj['snapshot.json'] === undefined) throw new FormatError('signed.meta must list snapshot.json', { path: 'signed.meta' });
    // aktualizr requires hashes, length and version for snapshot.json (device-api.md §2.10).
    const snapshot = MetaFile.fromJSON(metaObj['snapshot.json'], 'signed.meta["snapshot.json"]', dialect === 'uptane');
    const otherMeta = new Map<string, MetaFile>();
    for (const k of Object.keys(metaObj)) {
      if (k !== 'snapshot.json') otherMeta.set(k, MetaFile.fromJSON(metaObj[k], pathKey('signed.meta', k)));
    }
    return new Timestamp({ ...common, snapshot, otherMeta, unrecognized: pickUnrecognized(obj, [...COMMON_FIELDS, 'meta']) });
  }

  toJSON(dialect: Dialect): JsonObject {
    const out = this.commonJSON(dialect);
    const meta = metaToJSON(this.otherMeta);
    meta['snapshot.json'] = this.snapshot.toJSON();
    out['meta'] = meta;
    return out;
  }

  with(changes: Partial<TimestampInit>): Timestamp {
    return new Timestamp({
      version: this.version,
      expires: this.expires,
      typeString: this.typeString,
      specVersion: this.specVersion,
      unrecognized: this.unrecognized,
      snapshot: this.snapshot,
      otherMeta: this.otherMeta,
      ...changes,
    });
  }
}

export function parseSnapshot(input: Uint8Array | string | JsonValue, dialect: Dialect): Metadata<Snapshot> {
  const { signed, signatures, receivedSigned } = parseEnvelope(input);
  return new Metadata(Snapshot.fromJSON(signed, dialect), parseSignatures(signatures, dialect), dialect, signed, receivedSigned);
}

export function parseTimestamp(input: Uint8Array | string | JsonValue, dialect: Dialect): Metadata<Timestamp> {
  const { signed, signatures, receivedSigned } = parseEnvelope(input);
  return new Metadata(Timestamp.fromJSON(signed, dialect), parseSignatures(signatures, dialect), dialect, signed, receivedSigned);
}
