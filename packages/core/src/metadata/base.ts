/**
 * The signed envelope shared by every role, in two wire dialects:
 *
 * | dialect | `_type`                        | signature             | canonical form |
 * |---------|--------------------------------|-----------------------|----------------|
 * | uptane  | `Root`/`Targets`/`Snapshot`/`Timestamp` | `{keyid, method, sig: base64}` | jsoncpp (aktualizr) |
 * | tuf     | `root`/`targets`/`snapshot`/`timestamp` + `spec_version` | `{keyid, sig: hex}` | OLPC |
 *
 * Signatures are always checked over the canonical form of the `signed` object
 * exactly as parsed (not over a re-built model), so what is verified is what
 * was received; the model is built from that same object.
 */
import { FormatError, SignatureError } from '../errors.js';
import { canonicalize, cloneStrictJson, parseJsonWithMember, serializeJson, type JsonObject, type JsonValue } from '../json.js';
import { fromBase64, fromHex, toBase64, toHex } from '../encoding.js';
import { parseExpires } from '../time.js';
import type { Dialect, PublicKey } from '../crypto/keys.js';
import type { Signer } from '../crypto/signer.js';
import { expectArray, expectInteger, expectObject, expectString, pickUnrecognized, cloneJson } from './guard.js';

export type { Dialect } from '../crypto/keys.js';

export type RoleType = 'root' | 'targets' | 'snapshot' | 'timestamp';
export const TOP_LEVEL_ROLES: readonly RoleType[] = ['root', 'targets', 'snapshot', 'timestamp'];

const UPTANE_TYPE: Record<RoleType, string> = { root: 'Root', targets: 'Targets', snapshot: 'Snapshot', timestamp: 'Timestamp' };

/** The `_type` string a dialect writes for a role. */
export function typeName(role: RoleType, dialect: Dialect): string {
  return dialect === 'uptane' ? UPTANE_TYPE[role] : role;
}

/** The TUF specification version we write (and the major version we accept). */
export const SPEC_VERSION = '1.0.31';

export interface SignedCommon {
  readonly version: number;
  /** `YYYY-MM-DDTHH:MM:SSZ` */
  readonly expires: string;
  /** Exact `_type` string as read; written as typeName(role, dialect) when absent. */
  readonly typeString?: string;
  readonly specVersion?: string;
  readonly unrecognized?: JsonObject;
}

/** Fields common to the payload of every role (uptane-standard.md §5.2.1). */
export abstract class Signed {
  abstract readonly type: RoleType;
  readonly version: number;
  readonly expires: string;
  /** Expiry as epoch milliseconds. */
  readonly expiresAt: number;
  readonly typeString: string | undefined;
  readonly specVersion: string | undefined;
  readonly unrecognized: JsonObject;

  constructor(common: SignedCommon) {
    if (!Number.isSafeInteger(common.version) || common.version < 1) throw new FormatError('version must be an integer >= 1', { path: 'signed.version' });
    this.version = common.version;
    this.expires = common.expires;
    this.expiresAt = parseExpires(common.expires, 'signed.expires');
    this.typeString = common.typeString;
    this.specVersion = common.specVersion;
    this.unrecognized = common.unrecognized ?? {};
  }

  /** Expired means the current time is at or past `expires` (the Standard accepts only now < expires). */
  isExpired(now: Date): boolean {
    // Written so that an invalid time (NaN) counts as expired: fail closed.
    return !(now.getTime() < this.expiresAt);
  }

  /** Fields of the payload known to every role, in wire form. */
  protected commonJSON(dialect: Dialect): JsonObject {
    const out: JsonObject = {
      ...cloneJson(this.unrecognized),
      _type: this.typeString ?? typeName(this.type, dialect),
      version: this.version,
      expires: this.expires,
    };
    if (dialect === 'tuf') out['spec_version'] = this.specVersion ?? SPEC_VERSION;
    else if (this.specVersion !== undefined) out['spec_version'] = this.specVersion;
    return out;
  }

  /** The payload in wire form, for signing and serializing. */
  abstract toJSON(dialect: Dialect): JsonObject;
}

export const COMMON_FIELDS = ['_type', 'version', 'expires', 'spec_version'] as const;

/** Parses the fields common to every payload and checks `_type` against the expected role. */
export function parseCommon(obj: JsonObject, role: RoleType, dialect: Dialect): SignedCommon {
  const t = expectString(obj['_type'], 'signed._type');
  // OTA CE decoders and aktualizr compare `_type` case-insensitively; TUF requires the exact lowercase name.
  const ok = dialect === 'uptane' ? t.toLowerCase() === role : t === role;
  if (!ok) throw new FormatError(`signed._type is ${JSON.stringify(t)}, expected ${JSON.stringify(typeName(role, dialect))}`, { path: 'signed._type', role });
  let specVersion: string | undefined;
  if (dialect === 'tuf' || obj['spec_version'] !== undefined) {
    specVersion = expectString(obj['spec_version'], 'signed.spec_version');
    if (dialect === 'tuf') {
      const m = /^(\d+)\.(\d+)(?:\.(\d+))?$/.exec(specVersion);
      if (!m || m[1] !== '1')
        throw new FormatError(`signed.spec_version ${JSON.stringify(specVersion)} is not a supported 1.x version`, { path: 'signed.spec_version', role });
    }
  }
  return {
    typeString: t,
    version: expectInteger(obj['version'], 'signed.version', 1),
    expires: expectString(obj['expires'], 'signed.expires'),
    specVersion,
  };
}

export interface Signature {
  readonly keyid: string;
  /** Raw signature bytes. */
  readonly value: Uint8Array;
  /** Signature method (uptane dialect). */
  readonly method?: string;
  readonly unrecognized?: JsonObject;
  /** `sig` exactly as read (upper-case hex, say), written back when it still encodes `value`. */
  readonly sigText?: string;
}

export function parseSignatures(v: JsonValue | undefined, dialect: Dialect): Signature[] {
  const arr = expectArray(v, 'signatures');
  return arr.map((item, i) => {
    const path = `signatures[${i}]`;
    const o = expectObject(item, path);
    const keyid = expectString(o['keyid'], `${path}.keyid`);
    const sig = expectString(o['sig'], `${path}.sig`);
    if (dialect === 'uptane') {
      const method = expectString(o['method'], `${path}.method`);
      return { keyid, method, value: fromBase64(sig, `${path}.sig`), unrecognized: pickUnrecognized(o, ['keyid', 'sig', 'method']), sigText: sig };
    }
    const sigObj: Signature = { keyid, value: fromHex(sig, `${path}.sig`), unrecognized: pickUnrecognized(o, ['keyid', 'sig', 'method']), sigText: sig };
    return o['method'] === undefined ? sigObj : { ...sigObj, method: expectString(o['method'], `${path}.method`) };
  });
}

export function signatureToJSON(s: Signature, dialect: Dialect): JsonObject {
  const encoded = dialect === 'uptane' ? toBase64(s.value) : toHex(s.value);
  // Keep the spelling we read unless the bytes were replaced since (e.g. `{ ...sig, value }`).
  const sig = s.sigText !== undefined && sameEncoding(s.sigText, encoded, dialect) ? s.sigText : encoded;
  const out: JsonObject = { ...(s.unrecognized ?? {}), keyid: s.keyid, sig };
  if (s.method !== undefined) out['method'] = s.method;
  return out;
}

function sameEncoding(text: string, canonical: string, dialect: Dialect): boolean {
  if (text === canonical) return true;
  if (dialect === 'tuf') return text.toLowerCase() === canonical;
  // Base64 with non-zero padding bits decodes to the same bytes; compare by decoding.
  try {
    return toBase64(fromBase64(text)) === canonical;
  } catch {
    return false;
  }
}

/** Keys and threshold that must sign a role. */
export interface RoleKeys {
  readonly keyids: readonly string[];
  readonly threshold: number;
}

export interface VerifyContext {
  readonly repository?: string;
  readonly role?: string;
}

/**
 * Counts signatures by unique authorised keys over `data` and throws unless the
 * threshold is met. Unique means unique key material: the same key listed under
 * two key ids, or one signature repeated, counts once (uptane-standard.md §2.2.6).
 * Extra signatures by unknown keys, or invalid ones, do not fail the check.
 */
export function verifyThreshold(
  data: Uint8Array,
  signatures: readonly Signature[],
  keys: ReadonlyMap<string, PublicKey>,
  role: RoleKeys,
  ctx: VerifyContext = {},
): number {
  const authorised = new Set(role.keyids);
  const counted = new Set<string>();
  for (const sig of signatures) {
    if (!authorised.has(sig.keyid)) continue;
    const key = keys.get(sig.keyid);
    if (!key) continue;
    const fp = key.fingerprint();
    if (counted.has(fp)) continue;
    if (key.verify(data, sig.value, sig.method)) counted.add(fp);
  }
  if (counted.size < role.threshold) {
    const where = ctx.role ? `${ctx.repository ? ctx.repository + ' ' : ''}${ctx.role}` : 'metadata';
    throw new SignatureError(`${where} has ${counted.size} valid signature(s) from authorised keys; ${role.threshold} required`, ctx);
  }
  return counted.size;
}

/** Reads bytes or text as strict JSON and returns the envelope's parts. */
export function parseEnvelope(input: Uint8Array | string | JsonValue): { signed: JsonObject; signatures: JsonValue; receivedSigned?: Uint8Array } {
  let doc: JsonValue;
  let signedText: string | undefined;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    const parsed = parseJsonWithMember(input, 'signed');
    doc = parsed.value;
    signedText = parsed.memberText;
  } else {
    // An in-memory value is copied (and checked to be JSON) so the caller cannot change what was verified afterwards.
    doc = cloneStrictJson(input);
  }
  const env = expectObject(doc, 'metadata');
  for (const k of Object.keys(env)) {
    if (k !== 'signed' && k !== 'signatures') throw new FormatError(`unexpected top-level field ${JSON.stringify(k)}`, { path: k });
  }
  const out = { signed: expectObject(env['signed'], 'signed'), signatures: env['signatures'] ?? null };
  return signedText === undefined ? out : { ...out, receivedSigned: Buffer.from(signedText, 'utf8') };
}

/**
 * A signed document: payload plus signatures. Generic over the role payload.
 * Instances are immutable; `sign` returns a new one.
 */
export class Metadata<T extends Signed> {
  private bytesCache: Uint8Array | undefined;
  private signedBytesCache: Uint8Array | undefined;

  constructor(
    readonly signed: T,
    readonly signatures: readonly Signature[],
    readonly dialect: Dialect,
    /** The `signed` object exactly as parsed (absent for metadata built in memory). */
    private readonly signedJson?: JsonObject,
    /**
     * The bytes of `signed` exactly as received. Repositories serve canonical
     * JSON, so these usually are the signed bytes already; checking them first
     * avoids re-serializing a large payload. They parse to `signedJson` (same
     * strict parser), so a signature over them covers exactly what the model holds.
     */
    private readonly receivedSigned?: Uint8Array,
  ) {}

  /** Canonical bytes of the payload: what signatures cover. */
  signedBytes(): Uint8Array {
    if (!this.signedBytesCache) this.signedBytesCache = canonicalize(this.signedJson ?? this.signed.toJSON(this.dialect), this.dialect);
    return this.signedBytesCache;
  }

  toJSON(): JsonObject {
    return {
      signatures: this.signatures.map((s) => signatureToJSON(s, this.dialect)),
      signed: cloneJson(this.signedJson ?? this.signed.toJSON(this.dialect)),
    };
  }

  /**
   * Canonical bytes of the whole envelope: what repositories serve, hash and
   * measure (device-api.md §2.9: snapshot/timestamp hashes cover exactly these).
   */
  toBytes(): Uint8Array {
    // Canonical (uptane) or canonical-ordered with JSON escapes (tuf): OLPC output is not JSON when a string holds a newline.
    if (!this.bytesCache) this.bytesCache = serializeJson(this.toJSON(), this.dialect);
    return this.bytesCache;
  }

  /** Checks a threshold of the given keys signed this payload. */
  verify(keys: ReadonlyMap<string, PublicKey>, role: RoleKeys, ctx: VerifyContext = {}): number {
    const context = { role: this.signed.type, ...ctx };
    if (this.receivedSigned !== undefined && this.signedBytesCache === undefined) {
      try {
        return verifyThreshold(this.receivedSigned, this.signatures, keys, role, context);
      } catch (err) {
        // Not canonical as received (or not signed at all): check over the canonical form, as the Standard says.
        if (!(err instanceof SignatureError)) throw err;
      }
    }
    return verifyThreshold(this.signedBytes(), this.signatures, keys, role, context);
  }

  /** Adds signatures by each signer (replacing earlier signatures by the same key id). */
  async sign(signers: readonly Signer[]): Promise<Metadata<T>> {
    const data = this.signedBytes();
    const added: Signature[] = [];
    for (const s of signers) {
      const keyid = s.publicKey.keyId(this.dialect);
      const method = s.publicKey.defaultMethod(this.dialect);
      const value = await s.sign(data);
      added.push(method === undefined ? { keyid, value } : { keyid, value, method });
    }
    const addedIds = new Set(added.map((a) => a.keyid));
    const kept = this.signatures.filter((s) => !addedIds.has(s.keyid));
    return new Metadata(this.signed, [...kept, ...added], this.dialect, this.signedJson);
  }

  /** The same payload with no signatures (to collect a fresh set, as in a key ceremony). */
  unsigned(): Metadata<T> {
    return new Metadata(this.signed, [], this.dialect, this.signedJson);
  }

  /** Wraps a payload built in memory. */
  static of<U extends Signed>(signed: U, dialect: Dialect): Metadata<U> {
    return new Metadata(signed, [], dialect);
  }

  /** Builds and signs in one step. */
  static async create<U extends Signed>(signed: U, dialect: Dialect, signers: readonly Signer[]): Promise<Metadata<U>> {
    return Metadata.of(signed, dialect).sign(signers);
  }
}
