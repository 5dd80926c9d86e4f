/**
 * DER codec for aktualizr's IP-Secondary messages: the ASN.1 module `IpUptane`
 * in aktualizr's `src/libaktualizr-posix/asn1/messages/ipuptane_message.asn1`.
 *
 * Facts of the schema this codec relies on:
 * - The module has no tagging default, so tags are EXPLICIT: each top-level
 *   CHOICE alternative `[n] AKxxxMes` is a constructed context tag `0xA0 | n`
 *   wrapping the message's own SEQUENCE (`0x30`). Example: getInfoReq is
 *   `A0 02 30 00`.
 * - The inner CHOICEs (`manifest`, `imageRepo`, `directorRepo`, v1 `image` and
 *   `director`) are untagged with a single alternative, so they encode as that
 *   alternative alone.
 * - Every message SEQUENCE and the top-level CHOICE are extensible (`...`):
 *   elements after the known fields are skipped (as asn1c does), and a top-level
 *   tag we do not know is reported as `UNKNOWN_MESSAGE` (asn1c decodes it to
 *   "nothing", and aktualizr-secondary then closes the connection).
 * - All ENUMERATED types are extensible or cast from C++ enums, so any integer
 *   value is accepted and returned as a number; named values are below.
 * - aktualizr encodes with asn1c's `der_encode` and decodes with `ber_decode`;
 *   we emit DER and accept only DER (definite, minimal lengths and integers,
 *   primitive strings), which everything aktualizr sends is.
 * The byte vectors in codec.test.ts were checked against asn1c 0.9.28 compiled
 * from that schema with aktualizr's flags.
 */
import {
  DerReader,
  ID_ENUMERATED,
  ID_INTEGER,
  ID_OCTET_STRING,
  ID_SEQUENCE,
  ID_UTF8_STRING,
  CLASS_CONTEXT,
  concat,
  decodeInteger,
  decodeUtf8,
  encodeIntegerContent,
  encodeUtf8,
  isWellFormedString,
  primitive,
  readHeader,
  tlv,
} from './der.js';
import type { Encoded } from './der.js';
import { IpUptaneError } from './errors.js';

// ---------------------------------------------------------------------------
// Named values

/**
 * `keyType` on the wire. The schema lists ed25519(0), rsa2048(1), rsa4096(2),
 * unknownKey(255), but both aktualizr sides just cast the C++ `KeyType` enum
 * (types.h), which has RSA3072 in between; so these are the real numbers.
 */
export const KEY_TYPE = { ed25519: 0, rsa2048: 1, rsa3072: 2, rsa4096: 3, unknown: 255 } as const;

/** `AKInstallationResultCode`, the same numbers as aktualizr's `data::ResultCode::Numeric` and the manifest's result codes. */
export const RESULT_CODE = {
  ok: 0,
  alreadyProcessed: 1,
  validationFailed: 3,
  installFailed: 4,
  downloadFailed: 5,
  internalError: 18,
  generalError: 19,
  needCompletion: 21,
  customError: 22,
  operationCancelled: 23,
  unknown: -1,
} as const;

/** `AKRepoType`. */
export const REPO_TYPE = { director: 0, image: 1 } as const;

/** `AKInstallationResult`, the v1 result of putMetaResp and sendFirmwareResp. */
export const INSTALLATION_RESULT_V1 = { success: 0, failure: 1 } as const;

/** The newest protocol version (aktualizr's Primary offers 2 in versionReq; a Secondary that does not answer is v1). */
export const PROTOCOL_VERSION = 2;

/** aktualizr's Primary sends images in uploadDataReq chunks of this many bytes (the last one shorter). */
export const UPLOAD_CHUNK_SIZE = 1024;

/** The textual names of a key type number, as core's key model spells the algorithms. */
export function keyTypeName(keyType: number): 'ED25519' | 'RSA2048' | 'RSA3072' | 'RSA4096' | undefined {
  switch (keyType) {
    case KEY_TYPE.ed25519:
      return 'ED25519';
    case KEY_TYPE.rsa2048:
      return 'RSA2048';
    case KEY_TYPE.rsa3072:
      return 'RSA3072';
    case KEY_TYPE.rsa4096:
      return 'RSA4096';
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------
// Message types

/** One metadata file of a collection (`AKMetaJson`): the role name and the exact bytes of the file. */
export interface MetaJson {
  role: string;
  json: Uint8Array;
}

/** v1 `AKImageMetaJson`. */
export interface ImageMetaJson {
  root: Uint8Array;
  timestamp: Uint8Array;
  snapshot: Uint8Array;
  targets: Uint8Array;
}

/** v1 `AKDirectorMetaJson`. */
export interface DirectorMetaJson {
  root: Uint8Array;
  targets: Uint8Array;
}

export interface GetInfoReq {
  type: 'getInfoReq';
}
export interface GetInfoResp {
  type: 'getInfoResp';
  ecuSerial: string;
  hwId: string;
  /** See KEY_TYPE. */
  keyType: number;
  /** The public key as aktualizr's `PublicKey::Value()`: PEM for RSA, hex for Ed25519. */
  key: string;
}
export interface ManifestReq {
  type: 'manifestReq';
}
export interface ManifestResp {
  type: 'manifestResp';
  /** The `json` alternative: the bytes of the Secondary's signed ECU version report. */
  manifest: Uint8Array;
}
/** v1. */
export interface PutMetaReq {
  type: 'putMetaReq';
  image: ImageMetaJson;
  director: DirectorMetaJson;
}
/** v1. */
export interface PutMetaResp {
  type: 'putMetaResp';
  /** See INSTALLATION_RESULT_V1. */
  result: number;
}
/** v1: the whole image in one message. */
export interface SendFirmwareReq {
  type: 'sendFirmwareReq';
  firmware: Uint8Array;
}
/** v1. */
export interface SendFirmwareResp {
  type: 'sendFirmwareResp';
  /** See INSTALLATION_RESULT_V1. */
  result: number;
}
export interface InstallReq {
  type: 'installReq';
  /** Named `hash` in the schema, but aktualizr puts the target's file name here. */
  hash: string;
}
/** v1. */
export interface InstallResp {
  type: 'installResp';
  /** See RESULT_CODE. */
  result: number;
}
export interface UploadDataReq {
  type: 'uploadDataReq';
  data: Uint8Array;
}
export interface UploadDataResp {
  type: 'uploadDataResp';
  result: number;
  description: string;
}
export interface DownloadOstreeRevReq {
  type: 'downloadOstreeRevReq';
  /** The treehub credentials archive. */
  tlsCred: Uint8Array;
}
export interface DownloadOstreeRevResp {
  type: 'downloadOstreeRevResp';
  result: number;
  description: string;
}
export interface PutMetaReq2 {
  type: 'putMetaReq2';
  /** aktualizr sends root, timestamp, snapshot and targets. */
  imageRepo: MetaJson[];
  /** aktualizr sends root and targets (nothing for a `Tuf` Secondary). */
  directorRepo: MetaJson[];
}
export interface PutMetaResp2 {
  type: 'putMetaResp2';
  result: number;
  description: string;
}
export interface InstallResp2 {
  type: 'installResp2';
  result: number;
  description: string;
}
export interface VersionReq {
  type: 'versionReq';
  version: number;
}
export interface VersionResp {
  type: 'versionResp';
  version: number;
}
export interface RootVerReq {
  type: 'rootVerReq';
  /** See REPO_TYPE. */
  repotype: number;
}
export interface RootVerResp {
  type: 'rootVerResp';
  /** aktualizr-secondary answers -1 for an unknown repotype. */
  version: number;
}
export interface PutRootReq {
  type: 'putRootReq';
  repotype: number;
  json: Uint8Array;
}
export interface PutRootResp {
  type: 'putRootResp';
  result: number;
  description: string;
}

/** `AKIpUptaneMes`: every alternative of the top-level CHOICE. */
export type IpUptaneMessage =
  | GetInfoReq
  | GetInfoResp
  | ManifestReq
  | ManifestResp
  | PutMetaReq
  | PutMetaResp
  | SendFirmwareReq
  | SendFirmwareResp
  | InstallReq
  | InstallResp
  | UploadDataReq
  | UploadDataResp
  | DownloadOstreeRevReq
  | DownloadOstreeRevResp
  | PutMetaReq2
  | PutMetaResp2
  | InstallResp2
  | VersionReq
  | VersionResp
  | RootVerReq
  | RootVerResp
  | PutRootReq
  | PutRootResp;

export type MessageType = IpUptaneMessage['type'];
export type MessageOf<T extends MessageType> = Extract<IpUptaneMessage, { type: T }>;

/** The context tag number of each alternative. */
export const MESSAGE_TAGS = {
  getInfoReq: 0,
  getInfoResp: 1,
  manifestReq: 2,
  manifestResp: 3,
  putMetaReq: 4,
  putMetaResp: 5,
  sendFirmwareReq: 6,
  sendFirmwareResp: 7,
  installReq: 8,
  installResp: 9,
  uploadDataReq: 10,
  uploadDataResp: 11,
  downloadOstreeRevReq: 12,
  downloadOstreeRevResp: 13,
  putMetaReq2: 14,
  putMetaResp2: 15,
  installResp2: 16,
  versionReq: 17,
  versionResp: 18,
  rootVerReq: 19,
  rootVerResp: 20,
  putRootReq: 21,
  putRootResp: 22,
} as const satisfies Record<MessageType, number>;

export const MESSAGE_TYPES = Object.keys(MESSAGE_TAGS) as MessageType[];

const TYPE_BY_TAG: readonly MessageType[] = (() => {
  const out: MessageType[] = [];
  for (const t of MESSAGE_TYPES) out[MESSAGE_TAGS[t]] = t;
  return out;
})();

export function messageTypeOfTag(tagNumber: number): MessageType | undefined {
  return TYPE_BY_TAG[tagNumber];
}

/**
 * What aktualizr answers to each request: installReq gets installResp2 from a
 * v2 Secondary and installResp from a v1 one.
 */
export const RESPONSE_TYPES: Partial<Record<MessageType, readonly MessageType[]>> = {
  getInfoReq: ['getInfoResp'],
  manifestReq: ['manifestResp'],
  putMetaReq: ['putMetaResp'],
  sendFirmwareReq: ['sendFirmwareResp'],
  installReq: ['installResp2', 'installResp'],
  uploadDataReq: ['uploadDataResp'],
  downloadOstreeRevReq: ['downloadOstreeRevResp'],
  putMetaReq2: ['putMetaResp2'],
  versionReq: ['versionResp'],
  rootVerReq: ['rootVerResp'],
  putRootReq: ['putRootResp'],
};

// ---------------------------------------------------------------------------
// Size limits

export interface MessageLimits {
  /** Upper bound for any message, header included. */
  readonly maxMessageSize: number;
  /** Lower bounds per message type (each still capped by maxMessageSize); types not listed get `defaultTypeSize`. */
  readonly maxSizeByType: Partial<Record<MessageType, number>>;
  /** Limit for types not in maxSizeByType, and for unknown top-level tags. */
  readonly defaultTypeSize: number;
}

/**
 * 16 MiB: one putMetaReq2 carries the Image repository's root, timestamp,
 * snapshot and targets plus the Director's root and targets, and core's default
 * limit for Image targets alone is 8 MiB (aktualizr's). Only the messages that
 * carry metadata or a whole v1 image may be that large; every other message is
 * small, so it gets 1 MiB and a peer cannot make us buffer more by lying in a
 * length field.
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;
export const DEFAULT_TYPE_MESSAGE_SIZE = 1024 * 1024;

export const DEFAULT_MESSAGE_LIMITS: MessageLimits = {
  maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
  maxSizeByType: { putMetaReq: DEFAULT_MAX_MESSAGE_SIZE, putMetaReq2: DEFAULT_MAX_MESSAGE_SIZE, sendFirmwareReq: DEFAULT_MAX_MESSAGE_SIZE },
  defaultTypeSize: DEFAULT_TYPE_MESSAGE_SIZE,
};

/** Limits from a single size (every type gets it) or a partial override of the defaults. */
export function messageLimits(limits?: number | Partial<MessageLimits>): MessageLimits {
  if (limits === undefined) return DEFAULT_MESSAGE_LIMITS;
  if (typeof limits === 'number') return { maxMessageSize: limits, maxSizeByType: {}, defaultTypeSize: limits };
  return { ...DEFAULT_MESSAGE_LIMITS, ...limits };
}

/** The most bytes (header included) a message with this top-level context tag may have. */
export function maxSizeForTag(limits: MessageLimits, tagNumber: number): number {
  const type = messageTypeOfTag(tagNumber);
  const perType = type === undefined ? undefined : limits.maxSizeByType[type];
  return Math.min(limits.maxMessageSize, perType ?? limits.defaultTypeSize);
}

// ---------------------------------------------------------------------------
// Schema: the fields of each message SEQUENCE, in order.

type FieldKind =
  | 'utf8' // UTF8String → string
  | 'text' // OCTET STRING that aktualizr fills from a std::string → string (strict UTF-8)
  | 'bytes' // OCTET STRING → Uint8Array
  | 'int' // INTEGER → number
  | 'enum' // ENUMERATED → number
  | 'collection' // CHOICE { collection AKMetaCollection } → MetaJson[]
  | 'imageMetaJson' // CHOICE { json AKImageMetaJson } → ImageMetaJson
  | 'directorMetaJson'; // CHOICE { json AKDirectorMetaJson } → DirectorMetaJson

type Schema = readonly (readonly [name: string, kind: FieldKind])[];

const SCHEMA: Record<MessageType, Schema> = {
  getInfoReq: [],
  getInfoResp: [
    ['ecuSerial', 'utf8'],
    ['hwId', 'utf8'],
    ['keyType', 'enum'],
    ['key', 'text'],
  ],
  manifestReq: [],
  manifestResp: [['manifest', 'bytes']],
  putMetaReq: [
    ['image', 'imageMetaJson'],
    ['director', 'directorMetaJson'],
  ],
  putMetaResp: [['result', 'enum']],
  sendFirmwareReq: [['firmware', 'bytes']],
  sendFirmwareResp: [['result', 'enum']],
  installReq: [['hash', 'text']],
  installResp: [['result', 'enum']],
  uploadDataReq: [['data', 'bytes']],
  uploadDataResp: [
    ['result', 'enum'],
    ['description', 'text'],
  ],
  downloadOstreeRevReq: [['tlsCred', 'bytes']],
  downloadOstreeRevResp: [
    ['result', 'enum'],
    ['description', 'text'],
  ],
  putMetaReq2: [
    ['imageRepo', 'collection'],
    ['directorRepo', 'collection'],
  ],
  putMetaResp2: [
    ['result', 'enum'],
    ['description', 'text'],
  ],
  installResp2: [
    ['result', 'enum'],
    ['description', 'text'],
  ],
  versionReq: [['version', 'int']],
  versionResp: [['version', 'int']],
  rootVerReq: [['repotype', 'enum']],
  rootVerResp: [['version', 'int']],
  putRootReq: [
    ['repotype', 'enum'],
    ['json', 'bytes'],
  ],
  putRootResp: [
    ['result', 'enum'],
    ['description', 'text'],
  ],
};

const IMAGE_META_FIELDS = ['root', 'timestamp', 'snapshot', 'targets'] as const;
const DIRECTOR_META_FIELDS = ['root', 'targets'] as const;

// ---------------------------------------------------------------------------
// Encoding

function argError(message: string, path: string): IpUptaneError {
  return new IpUptaneError('BAD_ARGUMENT', message, { path });
}

function field(obj: unknown, name: string, path: string): unknown {
  if (typeof obj !== 'object' || obj === null || !(name in obj)) throw argError(`missing field ${path}`, path);
  return (obj as Record<string, unknown>)[name];
}

function encString(v: unknown, id: number, path: string): Encoded {
  if (typeof v !== 'string') throw argError(`${path} must be a string`, path);
  if (!isWellFormedString(v)) throw argError(`${path} has a lone surrogate, which UTF-8 cannot carry`, path);
  return primitive(id, encodeUtf8(v));
}

function encBytes(v: unknown, path: string): Encoded {
  if (!(v instanceof Uint8Array)) throw argError(`${path} must be a Uint8Array`, path);
  return primitive(ID_OCTET_STRING, v);
}

function encInt(v: unknown, id: number, path: string): Encoded {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw argError(`${path} must be a safe integer`, path);
  return primitive(id, encodeIntegerContent(v));
}

function encField(v: unknown, kind: FieldKind, path: string): Encoded {
  switch (kind) {
    case 'utf8':
      return encString(v, ID_UTF8_STRING, path);
    case 'text':
      return encString(v, ID_OCTET_STRING, path);
    case 'bytes':
      return encBytes(v, path);
    case 'int':
      return encInt(v, ID_INTEGER, path);
    case 'enum':
      return encInt(v, ID_ENUMERATED, path);
    case 'collection': {
      if (!Array.isArray(v)) throw argError(`${path} must be an array`, path);
      const items = v.map((item: unknown, i) =>
        tlv(ID_SEQUENCE, [
          encString(field(item, 'role', `${path}[${i}].role`), ID_OCTET_STRING, `${path}[${i}].role`),
          encBytes(field(item, 'json', `${path}[${i}].json`), `${path}[${i}].json`),
        ]),
      );
      return tlv(ID_SEQUENCE, items);
    }
    case 'imageMetaJson':
      return tlv(
        ID_SEQUENCE,
        IMAGE_META_FIELDS.map((f) => encBytes(field(v, f, `${path}.${f}`), `${path}.${f}`)),
      );
    case 'directorMetaJson':
      return tlv(
        ID_SEQUENCE,
        DIRECTOR_META_FIELDS.map((f) => encBytes(field(v, f, `${path}.${f}`), `${path}.${f}`)),
      );
  }
}

export interface EncodeOptions {
  /** Refuse to produce a message the peer would refuse (default: no check). */
  readonly limits?: number | Partial<MessageLimits>;
}

/** DER encoding of one message; throws IpUptaneError('BAD_ARGUMENT') for values the schema cannot carry. */
export function encodeMessage(msg: IpUptaneMessage, options: EncodeOptions = {}): Uint8Array {
  const type = (msg as { type?: unknown }).type;
  if (typeof type !== 'string' || !Object.hasOwn(MESSAGE_TAGS, type)) throw argError(`unknown message type ${String(type)}`, 'type');
  const t = type as MessageType;
  const body = tlv(
    ID_SEQUENCE,
    SCHEMA[t].map(([name, kind]) => encField(field(msg, name, `${t}.${name}`), kind, `${t}.${name}`)),
  );
  const tag = MESSAGE_TAGS[t];
  const out = concat(tlv(0xa0 | tag, [body]));
  if (options.limits !== undefined) {
    const max = maxSizeForTag(messageLimits(options.limits), tag);
    if (out.length > max) throw new IpUptaneError('MESSAGE_TOO_LARGE', `${t} of ${out.length} bytes exceeds the limit of ${max}`, { path: t });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Decoding

export interface DecodeOptions {
  /** Size limits (default DEFAULT_MESSAGE_LIMITS). */
  readonly limits?: number | Partial<MessageLimits>;
  /** Skip elements after the known fields of a SEQUENCE, as X.680 extensibility requires (default true). */
  readonly allowExtensions?: boolean;
}

function decField(r: DerReader, kind: FieldKind, path: string, allowExt: boolean): unknown {
  switch (kind) {
    case 'utf8': {
      const { start, end } = r.expect(ID_UTF8_STRING, 'UTF8String', path);
      return decodeUtf8(r.bytes(start, end), start, path);
    }
    case 'text': {
      const { start, end } = r.expect(ID_OCTET_STRING, 'OCTET STRING', path);
      return decodeUtf8(r.bytes(start, end), start, path);
    }
    case 'bytes': {
      const { start, end } = r.expect(ID_OCTET_STRING, 'OCTET STRING', path);
      return r.bytes(start, end);
    }
    case 'int':
    case 'enum': {
      const id = kind === 'int' ? ID_INTEGER : ID_ENUMERATED;
      const { start, end } = r.expect(id, kind === 'int' ? 'INTEGER' : 'ENUMERATED', path);
      return decodeInteger(r.bytesView(), start, end, path);
    }
    case 'collection': {
      // SEQUENCE OF AKMetaJson: the count is bounded by the message size (each item takes at least 6 bytes).
      const { start, end } = r.expect(ID_SEQUENCE, 'SEQUENCE OF AKMetaJson', path);
      const list = r.sub(start, end, path);
      const items: MetaJson[] = [];
      while (!list.atEnd()) {
        const p = `${path}[${items.length}]`;
        const { start: s, end: e } = list.expect(ID_SEQUENCE, 'AKMetaJson', p);
        const item = list.sub(s, e, p);
        const role = decField(item, 'text', `${p}.role`, allowExt) as string;
        const json = decField(item, 'bytes', `${p}.json`, allowExt) as Uint8Array;
        item.skipExtensions(allowExt);
        items.push({ role, json });
      }
      return items;
    }
    case 'imageMetaJson':
    case 'directorMetaJson': {
      const names = kind === 'imageMetaJson' ? IMAGE_META_FIELDS : DIRECTOR_META_FIELDS;
      const { start, end } = r.expect(ID_SEQUENCE, kind === 'imageMetaJson' ? 'AKImageMetaJson' : 'AKDirectorMetaJson', path);
      const seq = r.sub(start, end, path);
      const out: Record<string, Uint8Array> = {};
      for (const n of names) out[n] = decField(seq, 'bytes', `${path}.${n}`, allowExt) as Uint8Array;
      seq.skipExtensions(allowExt);
      return out;
    }
  }
}

/**
 * Decodes exactly one DER-encoded `AKIpUptaneMes`. Throws IpUptaneError, and
 * nothing else, for anything malformed, truncated, oversized, followed by
 * trailing bytes, or of an unknown CHOICE alternative.
 */
export function decodeMessage(bytes: Uint8Array, options: DecodeOptions = {}): IpUptaneMessage {
  if (!(bytes instanceof Uint8Array)) throw argError('decodeMessage needs a Uint8Array', '');
  const limits = messageLimits(options.limits);
  const allowExt = options.allowExtensions ?? true;
  const header = readHeader(bytes, 0, bytes.length, 'AKIpUptaneMes');
  if (header === undefined) throw new IpUptaneError('TRUNCATED', 'truncated message header', { offset: 0 });
  if (header.tagClass !== CLASS_CONTEXT || !header.constructed) {
    throw new IpUptaneError('BAD_MESSAGE', `top-level tag must be a constructed context tag, found class ${header.tagClass} number ${header.tagNumber}`, {
      offset: 0,
    });
  }
  const total = header.headerLength + header.length;
  const max = maxSizeForTag(limits, header.tagNumber);
  if (total > max) throw new IpUptaneError('MESSAGE_TOO_LARGE', `message of ${total} bytes exceeds the limit of ${max}`, { offset: 0 });
  if (total > bytes.length) throw new IpUptaneError('TRUNCATED', `message needs ${total} bytes, got ${bytes.length}`, { offset: bytes.length });
  if (total < bytes.length) throw new IpUptaneError('BAD_MESSAGE', `${bytes.length - total} trailing bytes after the message`, { offset: total });
  const type = messageTypeOfTag(header.tagNumber);
  if (type === undefined) throw new IpUptaneError('UNKNOWN_MESSAGE', `unknown message tag [${header.tagNumber}]`, { offset: 0 });

  // The explicit tag holds exactly one element: the message's SEQUENCE.
  const outer = new DerReader(bytes, header.headerLength, total, type);
  const { start, end } = outer.expect(ID_SEQUENCE, `${type} SEQUENCE`, type);
  outer.finish();
  const seq = outer.sub(start, end, type);
  const msg: Record<string, unknown> = { type };
  for (const [name, kind] of SCHEMA[type]) msg[name] = decField(seq, kind, `${type}.${name}`, allowExt);
  seq.skipExtensions(allowExt);
  return msg as unknown as IpUptaneMessage;
}

/** Narrows a message to one of the expected types, or throws IpUptaneError('UNEXPECTED_RESPONSE'). */
export function expectMessage<T extends MessageType>(msg: IpUptaneMessage, expected: T | readonly T[]): MessageOf<T> {
  const list: readonly MessageType[] = typeof expected === 'string' ? [expected] : expected;
  if (!list.includes(msg.type)) throw new IpUptaneError('UNEXPECTED_RESPONSE', `expected ${list.join(' or ')}, got ${msg.type}`, { path: msg.type });
  return msg as MessageOf<T>;
}
