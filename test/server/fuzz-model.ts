/**
 * The fuzzer's model of the server: for every route, where valid parameter
 * values come from, what a valid body looks like, and the arbitraries that
 * turn it hostile (malformed JSON, wrong types, huge numbers and strings,
 * duplicate keys, deep nesting, oversized bodies, non-NFC names, path
 * traversal, bad content types, random headers and methods, bad credentials).
 *
 * A case is generated from data only (fast-check arbitraries); it is turned
 * into bytes against the live fixtures by `materialize`, which may sign (the
 * manifest route re-signs a mutated payload so the Director's checks past the
 * signature are reached too).
 */
import fc from 'fast-check';
import { generateKeyPairSync } from 'node:crypto';
import { PublicKey, canonicalize, toBase64, type JsonObject } from '@uptide/core';
import type { Fixtures, RawRequest, RouteId } from './support.js';
import type { TestDevice } from '../../packages/server/src/testing/harness.js';

// --- JSON text with raw tokens and duplicate keys ------------------------------------------------

/** A JSON token written as is (numbers JSON.stringify cannot produce, escapes of lone surrogates…). */
export class RawJson {
  constructor(readonly text: string) {}
}
/** An object written with one key twice. */
export class DupKeys {
  constructor(
    readonly obj: Record<string, unknown>,
    readonly key: string,
    readonly second: unknown,
  ) {}
}

export function toJsonText(v: unknown): string {
  if (v instanceof RawJson) return v.text;
  if (v instanceof DupKeys) {
    const parts = Object.entries(v.obj).map(([k, x]) => `${JSON.stringify(k)}:${toJsonText(x)}`);
    parts.push(`${JSON.stringify(v.key)}:${toJsonText(v.second)}`);
    return `{${parts.join(',')}}`;
  }
  if (Array.isArray(v)) return `[${v.map(toJsonText).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)}:${toJsonText(x)}`)
      .join(',')}}`;
  if (v === undefined) return 'null';
  return JSON.stringify(v);
}

// --- hostile values ---------------------------------------------------------------------------------

const LONG = 'x'.repeat(70_000);
export const NASTY_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '../../etc/passwd',
  '..',
  '.',
  '/',
  '/abs/path',
  'a//b',
  'a/./b',
  '%2e%2e%2f',
  'e\u0301', // not NFC
  '\u212b', // ANGSTROM SIGN: NFC changes it
  '\u202eevil',
  'x'.repeat(65),
  'x'.repeat(129),
  'x'.repeat(256),
  'x'.repeat(513),
  'x'.repeat(5000),
  LONG,
  '😀',
  '\\',
  '"',
  '<script>',
  "' OR 1=1 --",
  '\r\n',
  '\t',
  'null',
  'urn:x:' + 'y'.repeat(300),
];
export const NASTY_NUMBERS = [
  '0',
  '-1',
  '-0',
  '1.5',
  '1e3',
  '1E2',
  '1e300',
  '-1e300',
  '1e400',
  '9007199254740991',
  '9007199254740993',
  '123456789012345678901234567890',
  '2147483648',
  '4294967296',
  '9223372036854775807',
  '9223372036854775808',
  '-9223372036854775809',
  '0.1',
];

export const nastyString: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  // Lone surrogates, which JSON.stringify escapes and our parser must refuse.
  { weight: 1, arbitrary: fc.constantFrom(new RawJson('"\\ud800"'), new RawJson('"a\\udfffb"')) as unknown as fc.Arbitrary<string> },
);

export const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: nastyString },
  { weight: 4, arbitrary: fc.constantFrom(...NASTY_NUMBERS).map((t) => new RawJson(t)) },
  { weight: 2, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, [], {}, [[]], { a: null }) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);

/** Raw JSON texts that are malformed or ambiguous. */
export const NASTY_JSON_TEXTS = [
  '',
  '{',
  '}',
  '[',
  '{"a":',
  '{"a":1,}',
  '[1,]',
  "{'a':1}",
  '{"a":1}{"b":2}',
  '{"a":1,"a":2}',
  '{"deviceId":"a","deviceId":"b"}',
  'NaN',
  'Infinity',
  '1e400',
  '-',
  '"\\ud800"',
  '"\\x41"',
  '"\u0001"',
  '\ufeff{}',
  '{"a":"\\u0000"}',
  'null',
  'true',
  '0',
  '"string"',
  '[]',
  '{}',
  ' \n\t{} ',
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"x":1}}}',
];

// --- URL pieces -------------------------------------------------------------------------------------

/** Percent-encodes the UTF-8 bytes of a string (lone surrogates become U+FFFD), keeping unreserved characters. */
export function pct(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9._~-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const NASTY_SEGMENTS = [
  '..',
  '.',
  '%2e%2e',
  '%2E%2E%2F..%2Fetc%2Fpasswd',
  '..%2f..%2f',
  '%00',
  'a%00b',
  '%ff',
  '%c0%ae',
  '%',
  '%zz',
  '%2F',
  '%5C',
  'x'.repeat(300),
  'x'.repeat(4000),
  'x'.repeat(17_000),
  '%F0%9F%98%80',
  'e%CC%81',
  '%E2%84%AB',
  '~',
  '@',
  'root.json',
  '0.root.json',
  '99999999999.root.json',
  '-1.root.json',
  'targets.json',
  ';',
  ',',
  '%20',
  '+',
  'a%2Fb',
  '%ED%A0%80',
  '0'.repeat(64),
];
/** Wildcard values may hold raw slashes. */
const NASTY_WILDCARDS = ['a/../../b', '../x', '//', 'a//b', 'a/./b', '/abs', 'a/', 'x/'.repeat(200), 'fz/firmware-1.0.bin/..', 'dir/'];

export type Segment = { kind: 'valid'; pick: number } | { kind: 'nasty'; value: string };

const segmentArb: fc.Arbitrary<Segment> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('valid' as const), pick: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('nasty' as const),
      value: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...NASTY_SEGMENTS) },
        { weight: 1, arbitrary: fc.constantFrom(...NASTY_WILDCARDS) },
        { weight: 2, arbitrary: fc.string({ maxLength: 30 }).map(pct) },
        { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }).map(pct) },
      ),
    }),
  },
);

export const QUERY_KEYS = [
  'name',
  'version',
  'hardwareIds',
  'targetFormat',
  'releaseCounter',
  'nameContains',
  'offset',
  'limit',
  'groupId',
  'hardwareId',
  'status',
  'correlationId',
  'primaryHardwareId',
];
const queryValue: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      '1',
      '0',
      '-1',
      '1000',
      '1001',
      '1e3',
      '1.5',
      '9007199254740993',
      '99999999999999999999999',
      '1e400',
      'true',
      'BINARY',
      'OSTREE',
      'NotSeen',
      'UpToDate',
      'fz-board',
      'a%2Cb%2C%2Cc',
      '%2C',
      '',
      '%00',
      '%ff',
      '%',
      'x'.repeat(300),
      'urn:x:y',
    ),
  },
  { weight: 2, arbitrary: fc.string({ maxLength: 30 }).map(pct) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }).map(pct) },
);
const queryArb = fc.array(
  fc.tuple(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...QUERY_KEYS) }, { weight: 1, arbitrary: fc.string({ maxLength: 10 }).map(pct) }), queryValue),
  { maxLength: 4 },
);

export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'PROPFIND', 'SEARCH', 'LOCK', 'MKCOL', 'FOO'];

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/JSON',
  'application/vnd.foo+json',
  'text/plain',
  'application/toml',
  'application/octet-stream',
  'multipart/form-data; boundary=xyz',
  'multipart/form-data',
  'application/x-www-form-urlencoded',
  '',
  'garbage',
  'application/json; charset=utf-16le',
  '*/*',
  'application/json, text/plain',
];

const HEADER_NAMES = [
  'range',
  'if-range',
  'if-none-match',
  'x-ats-role-checksum',
  'accept',
  'accept-encoding',
  'content-encoding',
  'x-request-id',
  'x-forwarded-for',
  'x-ats-device-uuid',
  'x-ats-namespace',
  'cookie',
  'origin',
  'expect',
  'transfer-encoding',
  'x-http-method-override',
];
const headerValue: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'bytes=0-',
      'bytes=-1',
      'bytes=5-1',
      'bytes=0-0,2-3',
      'bytes=99999999999999999999-',
      'bytes=-0',
      'gzip',
      'deflate',
      '*',
      '"abc"',
      'W/"x"',
      '100-continue',
      'chunked',
      'DELETE',
      'fz-other',
      'x'.repeat(9000),
    ),
  },
  { weight: 2, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')) },
);

export type BodyPlan =
  | { kind: 'template' }
  | { kind: 'mutate'; at: number; op: 'replace' | 'delete' | 'add' | 'wrap' | 'dup'; value: unknown; key: string }
  | { kind: 'random'; value: unknown }
  | { kind: 'raw'; text: string }
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'none' }
  | { kind: 'oversized' }
  | { kind: 'deep'; depth: number }
  | { kind: 'multipart'; field: string; truncated: boolean; extraFields: number };

const bodyArb: fc.Arbitrary<BodyPlan> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'template' as const }) },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('mutate' as const),
      at: fc.nat(),
      op: fc.constantFrom('replace' as const, 'replace' as const, 'replace' as const, 'delete' as const, 'add' as const, 'wrap' as const, 'dup' as const),
      value: nastyValue,
      key: fc.oneof(fc.constantFrom('__proto__', 'constructor', 'extra', ''), fc.string({ maxLength: 10 })),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('random' as const), value: fc.jsonValue({ maxDepth: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('raw' as const), text: fc.constantFrom(...NASTY_JSON_TEXTS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ maxLength: 200 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'oversized' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deep' as const), depth: fc.constantFrom(63, 64, 65, 100, 10_000) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('multipart' as const),
      field: fc.constantFrom('file', 'other', ''),
      truncated: fc.boolean(),
      extraFields: fc.constantFrom(0, 1, 11),
    }),
  },
);

export type AdminAuth = 'valid' | 'none' | 'garbage' | 'malformed' | 'revoked';
export type DeviceAuth = 'valid' | 'bootstrap' | 'none' | 'other' | 'revoked';

export interface FuzzCase {
  readonly route: number;
  readonly method: string | null;
  readonly params: readonly Segment[];
  readonly keepBaseQuery: boolean;
  readonly query: ReadonlyArray<readonly [string, string]>;
  readonly body: BodyPlan;
  readonly contentType: string | null;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly auth: number;
}

export const caseArb: fc.Arbitrary<FuzzCase> = fc.record({
  route: fc.nat(),
  method: fc.oneof({ weight: 9, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom(...METHODS) }),
  params: fc.array(segmentArb, { minLength: 3, maxLength: 3 }),
  keepBaseQuery: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  query: queryArb,
  body: bodyArb,
  contentType: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 2, arbitrary: fc.constantFrom(...CONTENT_TYPES) }),
  headers: fc.array(fc.tuple(fc.constantFrom(...HEADER_NAMES), headerValue), { maxLength: 2 }),
  // Mostly valid credentials, so that requests reach the handlers.
  auth: fc.oneof({ weight: 16, arbitrary: fc.constant(0) }, { weight: 4, arbitrary: fc.integer({ min: 1, max: 4 }) }),
});

// --- the route model ----------------------------------------------------------------------------------

export type Side = 'admin' | 'device';

/** What the fuzzer needs from the live server at materialization time. */
export interface Live {
  readonly fx: Fixtures;
  /** Current bytes of an admin GET (e.g. targets.json), for templates that must be close to valid. */
  adminGet(path: string): Promise<{ bytes: Buffer; headers: Record<string, string | string[] | undefined> }>;
}

type BodyTemplate =
  | { type: 'json'; value: (fx: Fixtures) => unknown }
  | { type: 'raw-json'; bytes: (live: Live) => Promise<{ bytes: Buffer; headers?: Record<string, string> }> }
  | { type: 'bytes' }
  | { type: 'text' }
  | { type: 'manifest' }
  | { type: 'none' };

export interface RouteModel extends RouteId {
  readonly side: Side;
  /** Valid values for each `:param` / `*`, in order (already percent-encoded). */
  readonly params: ReadonlyArray<(fx: Fixtures) => string[]>;
  readonly baseQuery?: (fx: Fixtures) => string;
  readonly body: BodyTemplate;
}

const enc = (s: string) => s.split('/').map(pct).join('/');
const supplierKey = (() => {
  const { publicKey } = generateKeyPairSync('ed25519');
  const pub = PublicKey.fromKeyObject(publicKey, 'uptane');
  return { id: pub.keyId('uptane'), json: pub.toJSON() };
})();

function ecuRegistration(d: TestDevice): JsonObject {
  return {
    primary_ecu_serial: d.primary.serial,
    ecus: d.ecus.map((e) => {
      const pub = PublicKey.fromKeyObject(e.signer.publicKey.keyObject(), 'uptane');
      return { ecu_serial: e.serial, hardware_identifier: e.hardwareId, clientKey: { keytype: pub.keytype, keyval: { public: pub.public } } };
    }),
  };
}

/** The model of every route; `fuzz.test.ts` checks that it covers every route the apps serve. */
export function routeModels(): RouteModel[] {
  const image = (fx: Fixtures) => [enc(fx.image.filename), enc(fx.externalImage), 'fz-new.bin', enc(`${fx.image.filename.split('/')[0]}-firmware@1.0`)];
  const repoFiles = () => ['root.json', '1.root.json', '2.root.json', 'snapshot.json', 'timestamp.json', 'targets.json'];
  const devices = (fx: Fixtures) => [fx.device.deviceId, fx.other.deviceId, fx.victimId];
  const admin = (method: string, path: string, body: BodyTemplate = { type: 'none' }, params: RouteModel['params'] = [], baseQuery?: RouteModel['baseQuery']) =>
    ({ method, path, side: 'admin', params, body, ...(baseQuery ? { baseQuery } : {}) }) as RouteModel;
  const device = (method: string, path: string, body: BodyTemplate = { type: 'none' }, params: RouteModel['params'] = []) =>
    ({ method, path, side: 'device', params, body }) as RouteModel;
  const rootOf = (path: string) => async (live: Live) => ({ bytes: (await live.adminGet(path)).bytes });
  const mtu = (fx: Fixtures) => ({
    targets: {
      [`${fx.image.filename.split('/')[0]}-board`]: {
        to: { target: fx.image.filename, checksum: { method: 'sha256', hash: fx.image.sha256 }, targetLength: fx.image.length, uri: null },
        from: null,
        targetFormat: 'BINARY',
        generateDiff: false,
      },
    },
  });
  return [
    // --- Image repository ---
    admin('PUT', '/api/v1/user_repo/targets/*', { type: 'bytes' }, [image], (fx) => `name=n&version=1&hardwareIds=${fx.image.filename.split('/')[0]}-board`),
    admin(
      'POST',
      '/api/v1/user_repo/targets/*',
      {
        type: 'json',
        value: (fx) => ({
          uri: 'https://example.com/a.bin',
          checksum: { method: 'sha256', hash: 'cd'.repeat(32) },
          length: 10,
          name: 'ext',
          version: '2',
          hardwareIds: [`${fx.image.filename.split('/')[0]}-board`],
          targetFormat: 'BINARY',
          releaseCounter: 1,
        }),
      },
      [image],
    ),
    admin('GET', '/api/v1/user_repo/targets/*', { type: 'none' }, [image]),
    admin('DELETE', '/api/v1/user_repo/targets/*', { type: 'none' }, [(fx) => [enc(fx.externalImage), 'fz-new.bin']]),
    admin('GET', '/api/v1/user_repo/targets.json'),
    admin('PUT', '/api/v1/user_repo/targets', {
      type: 'raw-json',
      bytes: async (live) => {
        const t = await live.adminGet('/api/v1/user_repo/targets.json');
        return { bytes: t.bytes, headers: { 'x-ats-role-checksum': String(t.headers['x-ats-role-checksum']) } };
      },
    }),
    admin('PUT', '/api/v1/user_repo/uploads/*', { type: 'bytes' }, [image]),
    admin('GET', '/api/v1/user_repo/:file', { type: 'none' }, [repoFiles]),
    admin('POST', '/api/v1/user_repo/root', { type: 'raw-json', bytes: rootOf('/api/v1/user_repo/root.json') }),
    admin('GET', '/api/v1/user_repo/root/private_keys/:keyId', { type: 'none' }, [(fx) => Object.values(fx.imageKeys)]),
    // Never the targets key (that would switch the repository to offline targets for the rest of the run).
    admin('DELETE', '/api/v1/user_repo/root/private_keys/:keyId', { type: 'none' }, [
      (fx) => [fx.imageKeys['root'] as string, fx.imageKeys['snapshot'] as string],
    ]),
    admin('POST', '/api/v1/user_repo/keys/:role', { type: 'none' }, [() => ['targets', 'snapshot', 'timestamp', 'root']]),
    admin('PUT', '/api/v1/user_repo/trusted-delegations', {
      type: 'json',
      value: () => ({
        keys: { [supplierKey.id]: supplierKey.json },
        roles: [{ name: 'supplier', keyids: [supplierKey.id], threshold: 1, paths: ['supplier/*'], terminating: false }],
      }),
    }),
    admin(
      'PUT',
      '/api/v1/user_repo/delegations/:file',
      {
        type: 'json',
        value: () => ({
          signatures: [{ keyid: supplierKey.id, method: 'ed25519', sig: 'AA==' }],
          signed: { _type: 'Targets', expires: '2099-01-01T00:00:00Z', version: 1, targets: {} },
        }),
      },
      [() => ['supplier.json', 'targets.json', 'root.json']],
    ),
    admin('GET', '/api/v1/user_repo/delegations/:file', { type: 'none' }, [() => ['supplier.json', 'targets.json']]),
    admin('GET', '/api/v1/images'),
    admin('GET', '/api/v1/images/*', { type: 'none' }, [image]),
    // --- Director ---
    admin('POST', '/api/v1/multi_target_updates', { type: 'json', value: mtu }),
    admin('GET', '/api/v1/multi_target_updates/:id', { type: 'none' }, [(fx) => [fx.updateId]]),
    admin('POST', '/api/v1/assignments', {
      type: 'json',
      value: (fx) => ({ mtuId: fx.updateId, devices: [fx.device.deviceId], correlationId: 'urn:x:fuzz', dryRun: true }),
    }),
    admin('PATCH', '/api/v1/assignments', { type: 'json', value: (fx) => [fx.victimId] }),
    admin('GET', '/api/v1/assignments/:device', { type: 'none' }, [devices]),
    admin('DELETE', '/api/v1/assignments/:device', { type: 'none' }, [(fx) => [fx.victimId, fx.other.deviceId]]),
    admin('POST', '/api/v1/updates', { type: 'json', value: (fx) => ({ image: fx.image.filename, devices: [fx.device.deviceId], name: 'u', dryRun: true }) }),
    admin('GET', '/api/v1/updates'),
    admin('GET', '/api/v1/updates/:id', { type: 'none' }, [(fx) => [fx.updateId]]),
    admin('POST', '/api/v1/updates/:id/cancel', { type: 'none' }, [(fx) => [fx.updateId]]),
    admin('GET', '/api/v1/fleet/stats'),
    admin('GET', '/api/v1/admin/devices'),
    admin('GET', '/api/v1/admin/devices/hardware_identifiers'),
    admin('GET', '/api/v1/admin/devices/:device', { type: 'none' }, [devices]),
    admin('GET', '/api/v1/admin/devices/:device/ecus/:ecu/public_key', { type: 'none' }, [devices, (fx) => [fx.device.primary.serial]]),
    admin('GET', '/api/v1/admin/repo/:file', { type: 'none' }, [() => ['root.json', '1.root.json', '2.root.json']]),
    admin('POST', '/api/v1/admin/repo/root', { type: 'raw-json', bytes: rootOf('/api/v1/admin/repo/root.json') }),
    admin('POST', '/api/v1/admin/repo/keys/:role', { type: 'none' }, [() => ['targets', 'snapshot', 'timestamp', 'root']]),
    admin('GET', '/api/v1/admin/repo/private_keys/:keyId', { type: 'none' }, [(fx) => Object.values(fx.directorKeys)]),
    admin('DELETE', '/api/v1/admin/repo/private_keys/:keyId', { type: 'none' }, [
      (fx) => [fx.directorKeys['root'] as string, fx.directorKeys['targets'] as string],
    ]),
    // --- registry ---
    admin('POST', '/api/v1/devices', { type: 'json', value: () => ({ deviceId: 'fz-created', deviceName: 'n', deviceType: 't' }) }),
    admin('GET', '/api/v1/devices'),
    admin('GET', '/api/v1/devices/:id', { type: 'none' }, [devices]),
    admin('DELETE', '/api/v1/devices/:id', { type: 'none' }, [(fx) => [fx.victimId]]),
    ...['ecus', 'events', 'installation_history', 'attacks', 'system_info', 'system_info/network', 'system_info/config', 'packages'].map((p) =>
      admin('GET', `/api/v1/devices/:id/${p}`, { type: 'none' }, [devices]),
    ),
    admin('GET', '/api/v1/attacks'),
    admin(
      'POST',
      '/api/v1/devices/:id/credentials',
      {
        type: 'json',
        value: () => ({
          publicKey: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' }).toString(),
          ttlDays: 10,
          deviceName: 'n',
        }),
      },
      [(fx) => [fx.victimId, 'fz-new-dev']],
    ),
    admin('GET', '/api/v1/devices/:id/credentials', { type: 'none' }, [devices]),
    admin('DELETE', '/api/v1/devices/:id/credentials/:serial', { type: 'none' }, [(fx) => [fx.victimId], (fx) => [fx.victimSerial]]),
    admin('POST', '/api/v1/provisioning/credentials'),
    admin('GET', '/api/v1/provisioning/credentials'),
    admin('DELETE', '/api/v1/provisioning/credentials/:serial', { type: 'none' }, [() => ['1234abcd']]),
    admin('GET', '/api/v1/provisioning/info'),
    admin('POST', '/api/v1/device_groups', { type: 'json', value: () => ({ name: 'fuzz group', groupType: 'static' }) }),
    admin('GET', '/api/v1/device_groups'),
    admin('GET', '/api/v1/device_groups/:group', { type: 'none' }, [(fx) => [fx.groupId, pct(fx.groupName)]]),
    admin('DELETE', '/api/v1/device_groups/:group', { type: 'none' }, [() => [pct('fuzz group')]]),
    admin('GET', '/api/v1/device_groups/:group/devices', { type: 'none' }, [(fx) => [fx.groupId]]),
    admin('POST', '/api/v1/device_groups/:group/devices/:device', { type: 'none' }, [(fx) => [fx.groupId], devices]),
    admin('DELETE', '/api/v1/device_groups/:group/devices/:device', { type: 'none' }, [(fx) => [fx.groupId], (fx) => [fx.other.deviceId]]),
    // --- namespaces and tokens ---
    admin('GET', '/api/v1/whoami'),
    admin('GET', '/api/v1/namespaces'),
    admin('POST', '/api/v1/namespaces', { type: 'json', value: () => ({ name: 'fz-ns' }) }),
    admin('GET', '/api/v1/tokens'),
    admin('POST', '/api/v1/tokens', { type: 'json', value: () => ({ name: 'fuzz token', system: false }) }),
    admin('DELETE', '/api/v1/tokens/:id', { type: 'none' }, [(fx) => [fx.spareTokenId]]),
    admin('GET', '/healthz'),
    admin('GET', '/metrics'),
    admin('GET', '/'),
    // --- device gateway ---
    device('POST', '/devices', { type: 'json', value: () => ({ deviceId: 'fz-auto', ttl: '36000' }) }),
    device('POST', '/director/ecus', { type: 'json', value: (fx) => ecuRegistration(fx.device) }),
    device('PUT', '/director/manifest', { type: 'manifest' }),
    device('GET', '/director/:file', { type: 'none' }, [() => ['targets.json', 'snapshot.json', 'timestamp.json', 'root.json', '1.root.json', '2.root.json']]),
    device('GET', '/repo/:file', { type: 'none' }, [repoFiles]),
    device('GET', '/repo/delegations/:file', { type: 'none' }, [() => ['supplier.json', 'targets.json']]),
    device('GET', '/repo/targets/*', { type: 'none' }, [image]),
    ...['/system_info', '/system_info/'].map((p) => device('PUT', p, { type: 'json', value: () => ({ id: 'root', class: 'system', children: [] }) })),
    device('PUT', '/system_info/network', { type: 'json', value: () => ({ local_ipv4: '10.0.0.2', mac: 'aa:bb:cc:dd:ee:ff', hostname: 'car' }) }),
    device('POST', '/system_info/config', { type: 'text' }),
    device('PUT', '/core/installed', { type: 'json', value: () => [{ name: 'pkg', version: '1.0' }] }),
    ...['/events', '/events/'].map((p) =>
      device('POST', p, {
        type: 'json',
        value: (fx) => [
          {
            id: 'ev-fuzz',
            deviceTime: '2026-01-01T00:00:00Z',
            eventType: { id: 'EcuDownloadStarted', version: 0 },
            event: { ecu: fx.device.primary.serial, correlationId: 'urn:here-ota:mtu:1' },
          },
        ],
      }),
    ),
    device('GET', '/campaigner/campaigns'),
  ];
}

// --- turning a case into bytes ---------------------------------------------------------------------

/** Every path (list of keys) into a JSON value, the root included. */
function pathsOf(v: unknown, prefix: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => pathsOf(x, [...prefix, i], out));
  else if (v && typeof v === 'object' && !(v instanceof RawJson) && !(v instanceof DupKeys))
    for (const [k, x] of Object.entries(v)) pathsOf(x, [...prefix, k], out);
  return out;
}

function clone(v: unknown): unknown {
  if (v instanceof RawJson || v instanceof DupKeys) return v;
  if (Array.isArray(v)) return v.map(clone);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clone(x)]));
  return v;
}

/** Applies one mutation to a copy of a JSON template. */
export function mutate(template: unknown, plan: Extract<BodyPlan, { kind: 'mutate' }>): unknown {
  const root = { v: clone(template) } as Record<string, unknown>;
  const paths = pathsOf(root['v']).map((p) => ['v', ...p]);
  const path = paths[plan.at % paths.length] as Array<string | number>;
  const parentPath = path.slice(0, -1);
  const last = path[path.length - 1] as string | number;
  let parent: unknown = root;
  for (const k of parentPath) parent = (parent as Record<string | number, unknown>)[k];
  const p = parent as Record<string | number, unknown>;
  const target = p[last];
  switch (plan.op) {
    case 'replace':
      p[last] = plan.value;
      break;
    case 'delete':
      if (Array.isArray(p) && typeof last === 'number') p.splice(last, 1);
      else if (last !== 'v') delete p[last];
      else p[last] = plan.value;
      break;
    case 'add':
      if (Array.isArray(target)) target.push(plan.value);
      else if (target && typeof target === 'object')
        Object.defineProperty(target, plan.key, { value: plan.value, enumerable: true, writable: true, configurable: true });
      else p[last] = plan.value;
      break;
    case 'wrap':
      p[last] = [target];
      break;
    case 'dup':
      if (target && typeof target === 'object' && !Array.isArray(target) && Object.keys(target).length > 0) {
        const k = Object.keys(target)[0] as string;
        p[last] = new DupKeys(target as Record<string, unknown>, k, plan.value);
      } else p[last] = plan.value;
      break;
  }
  return root['v'];
}

/** Signs a payload as an ECU does; payloads that cannot be canonicalized get a junk signature (they are refused earlier). */
async function signLike(signed: unknown, signer: { publicKey: PublicKey; sign(d: Uint8Array): Promise<Uint8Array> }): Promise<unknown> {
  let sig = 'AAAA';
  try {
    sig = toBase64(await signer.sign(canonicalize(signed, 'uptane')));
  } catch {
    // Floats, raw tokens, duplicate keys: not canonicalizable; the server refuses them before any signature check.
  }
  return { signatures: [{ keyid: signer.publicKey.keyId('uptane'), method: 'ed25519', sig }], signed };
}

let counter = 1_000_000;

function reportPayload(serial: string, now: string, withAttacks: boolean): Record<string, unknown> {
  return {
    ecu_serial: serial,
    installed_image: { filepath: 'fz/firmware-1.0.bin', fileinfo: { hashes: { sha256: '00'.repeat(32) }, length: 1 } },
    attacks_detected: '',
    timeserver_time: now,
    previous_timeserver_time: now,
    report_counter: String(++counter),
    // Reports may carry typed attacks: give the mutations something to bite on.
    ...(withAttacks ? { attacks: [{ code: 'FREEZE', message: 'stale timestamp', repository: 'director', role: 'timestamp' }] } : {}),
  };
}

function vehiclePayload(primary: string, reports: Record<string, unknown>): Record<string, unknown> {
  return {
    primary_ecu_serial: primary,
    ecu_version_manifests: reports,
    installation_report: {
      content_type: 'application/vnd.com.here.otac.installationReport.v1',
      report: {
        correlation_id: 'urn:here-ota:mtu:fuzz',
        result: { success: false, code: 'INSTALL_FAILED', description: 'd' },
        raw_report: 'r',
        items: [{ ecu: primary, result: { success: false, code: 'INSTALL_FAILED', description: 'd' } }],
      },
    },
  };
}

/**
 * A manifest for the fixture device with one mutation applied before signing:
 * `at % (ECUs + 1)` picks an ECU's report (or, last, the vehicle manifest), `at / (ECUs + 1)` the path in it.
 */
async function mutatedManifest(d: TestDevice, plan: BodyPlan): Promise<string> {
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const n = d.ecus.length;
  const which = plan.kind === 'mutate' ? plan.at % (n + 1) : n;
  const inner = plan.kind === 'mutate' ? { ...plan, at: Math.floor(plan.at / (n + 1)) } : undefined;
  const reports: Record<string, unknown> = {};
  for (const [i, e] of d.ecus.entries()) {
    let payload: unknown = reportPayload(e.serial, now, i === which);
    if (inner && i === which) payload = mutate(payload, inner);
    reports[e.serial] = await signLike(payload, e.signer);
  }
  let signed: unknown = vehiclePayload(d.primary.serial, reports);
  if (inner && which === n) signed = mutate(signed, inner);
  return toJsonText(await signLike(signed, d.primary.signer));
}

/** The `at` values that put a value at each leaf of the Primary's report and of the vehicle manifest (outside the embedded reports). */
function manifestLeafAts(d: TestDevice): number[] {
  const n = d.ecus.length;
  const leaves = (v: unknown, skip?: string) =>
    pathsOf(v)
      .map((p, i) => ({ p, i, leaf: p.reduce<unknown>((x, k) => (x as Record<string | number, unknown>)[k], v) }))
      .filter((x) => (x.leaf === null || typeof x.leaf !== 'object') && (skip === undefined || x.p[0] !== skip))
      .map((x) => x.i);
  const fakeEnvelope = (serial: string) => ({
    signatures: [{ keyid: '0'.repeat(64), method: 'ed25519', sig: 'AA' }],
    signed: reportPayload(serial, 'now', false),
  });
  const sampleVehicle = vehiclePayload('p', Object.fromEntries(d.ecus.map((e) => [e.serial, fakeEnvelope(e.serial)])));
  return [...leaves(reportPayload('s', 'now', true)).map((i) => i * (n + 1)), ...leaves(sampleVehicle, 'ecu_version_manifests').map((i) => i * (n + 1) + n)];
}

function multipart(plan: Extract<BodyPlan, { kind: 'multipart' }>, payload: Buffer): { body: Buffer; contentType: string } {
  const b = 'fuzzboundary';
  const parts: Buffer[] = [];
  for (let i = 0; i < plan.extraFields; i++) parts.push(Buffer.from(`--${b}\r\ncontent-disposition: form-data; name="f${i}"\r\n\r\nv\r\n`));
  parts.push(Buffer.from(`--${b}\r\ncontent-disposition: form-data; name="${plan.field}"; filename="x.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`));
  parts.push(payload);
  parts.push(Buffer.from(`\r\n--${b}--\r\n`));
  let body = Buffer.concat(parts);
  if (plan.truncated) body = body.subarray(0, Math.max(1, body.length - 30));
  return { body, contentType: `multipart/form-data; boundary=${b}` };
}

export interface Materialized {
  readonly side: Side;
  readonly route: RouteModel;
  readonly request: RawRequest;
  readonly auth: AdminAuth | DeviceAuth;
}

const ADMIN_AUTHS: AdminAuth[] = ['valid', 'none', 'garbage', 'malformed', 'revoked'];
const DEVICE_AUTHS: DeviceAuth[] = ['valid', 'bootstrap', 'none', 'other', 'revoked'];

/** Builds the request of a case against the live fixtures. */
export async function materialize(c: FuzzCase, routes: readonly RouteModel[], live: Live): Promise<Materialized> {
  const route = routes[c.route % routes.length] as RouteModel;
  const fx = live.fx;
  // Path: each `:param` or `*` from its pool, or hostile.
  let i = 0;
  const path = route.path.replace(/:\w+|\*/g, () => {
    const seg = c.params[i] as Segment;
    const pool = route.params[i]?.(fx) ?? ['x'];
    i++;
    return seg.kind === 'valid' ? (pool[seg.pick % pool.length] as string) : seg.value;
  });
  const query = [...(c.keepBaseQuery && route.baseQuery ? [route.baseQuery(fx)] : []), ...c.query.map(([k, v]) => `${k}=${v}`)].join('&');
  const headers: Record<string, string> = {};
  for (const [k, v] of c.headers) headers[k] = v;
  // Node's client refuses these combinations itself; keep the request sendable.
  delete headers['transfer-encoding'];

  let body: Buffer | undefined;
  let contentType: string | undefined;
  const tmpl = route.body;
  const plan = c.body;
  const templateValue = async (): Promise<{ value: unknown; raw?: Buffer }> => {
    if (tmpl.type === 'json') return { value: tmpl.value(fx) };
    if (tmpl.type === 'raw-json') {
      const r = await tmpl.bytes(live);
      Object.assign(headers, r.headers ?? {});
      return { value: JSON.parse(r.bytes.toString('utf8')) as unknown, raw: r.bytes };
    }
    return { value: {} };
  };
  if (tmpl.type === 'manifest' && (plan.kind === 'template' || plan.kind === 'mutate')) {
    body = Buffer.from(await mutatedManifest(fx.device, plan));
    contentType = 'application/json';
  } else if (tmpl.type === 'bytes' && (plan.kind === 'template' || plan.kind === 'mutate' || plan.kind === 'bytes')) {
    body = Buffer.from(plan.kind === 'bytes' ? plan.bytes : new Uint8Array([1, 2, 3, plan.kind === 'mutate' ? plan.at % 256 : 0]));
    contentType = 'application/octet-stream';
  } else if (tmpl.type === 'text' && (plan.kind === 'template' || plan.kind === 'mutate')) {
    body = Buffer.from(plan.kind === 'mutate' ? `[pacman]\ntype = ${toJsonText(plan.value)}\n` : '[pacman]\ntype = "none"\n');
    contentType = 'application/toml';
  } else {
    switch (plan.kind) {
      case 'template': {
        const t = await templateValue();
        if (tmpl.type !== 'none') {
          body = t.raw ?? Buffer.from(toJsonText(t.value));
          contentType = 'application/json';
        }
        break;
      }
      case 'mutate': {
        const t = await templateValue();
        body = Buffer.from(toJsonText(mutate(t.value, plan)));
        contentType = 'application/json';
        break;
      }
      case 'random':
        body = Buffer.from(JSON.stringify(plan.value));
        contentType = 'application/json';
        break;
      case 'raw':
        body = Buffer.from(plan.text);
        contentType = 'application/json';
        break;
      case 'bytes':
        body = Buffer.from(plan.bytes);
        contentType = 'application/json';
        break;
      case 'none':
        break;
      case 'oversized':
        // Just over the limits: 1 MiB for JSON bodies, 64 KiB for images on the fuzz server.
        body = Buffer.from(`{"a":"${'x'.repeat(1024 * 1024 + 16)}"}`);
        contentType = tmpl.type === 'bytes' ? 'application/octet-stream' : 'application/json';
        break;
      case 'deep':
        body = Buffer.from('['.repeat(plan.depth) + ']'.repeat(plan.depth));
        contentType = 'application/json';
        break;
      case 'multipart': {
        const m = multipart(plan, Buffer.from('image bytes'));
        body = m.body;
        contentType = m.contentType;
        break;
      }
    }
  }
  if (c.contentType !== null) contentType = c.contentType;
  if (body !== undefined && contentType !== undefined && contentType !== '') headers['content-type'] = contentType;

  let auth: AdminAuth | DeviceAuth;
  if (route.side === 'admin') {
    auth = ADMIN_AUTHS[c.auth % ADMIN_AUTHS.length] as AdminAuth;
    const value = {
      valid: `Bearer ${fx.token}`,
      none: undefined,
      garbage: `Bearer upt_${'A'.repeat(43)}`,
      malformed: c.auth % 2 === 0 ? 'Basic dXNlcjpwYXNz' : `Bearer ${fx.token} extra`,
      revoked: `Bearer ${REVOKED_TOKEN.value}`,
    }[auth];
    if (value !== undefined) headers['authorization'] = value;
  } else {
    auth = DEVICE_AUTHS[c.auth % DEVICE_AUTHS.length] as DeviceAuth;
  }
  const method = c.method ?? route.method;
  return { side: route.side, route, auth, request: { method, path: query ? `${path}?${query}` : path, headers, ...(body !== undefined ? { body } : {}) } };
}

/** A revoked admin token, set by the test once it has created and revoked one. */
export const REVOKED_TOKEN = { value: '' };

// --- the boundary sweep ------------------------------------------------------------------------------

/** Values at the edges of what the storage layers accept: column sizes, integer widths, NUL, floats. */
export const BOUNDARY_VALUES: readonly unknown[] = [
  'x'.repeat(65),
  'x'.repeat(129),
  'x'.repeat(256),
  'x'.repeat(513),
  'a\u0000b',
  new RawJson('1e300'),
  2147483648,
  -1,
  new RawJson('1.5'),
];

/**
 * Deterministic cases: every leaf of every JSON body template (and of the
 * signed manifest payloads) replaced by every boundary value, with valid
 * credentials and parameters, so that each field reaches storage.
 */
export function sweepCases(routes: readonly RouteModel[], fx: Fixtures): FuzzCase[] {
  const out: FuzzCase[] = [];
  const base = {
    method: null,
    params: [0, 0, 0].map(() => ({ kind: 'valid' as const, pick: 0 })),
    keepBaseQuery: true,
    query: [],
    contentType: null,
    headers: [],
    auth: 0,
  };
  routes.forEach((route, r) => {
    let ats: number[] = [];
    if (route.body.type === 'json') {
      const paths = pathsOf(route.body.value(fx));
      const tmpl = route.body.value(fx);
      ats = paths
        .map((p, i) => ({ i, leaf: p.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], tmpl) }))
        .filter((x) => x.leaf === null || typeof x.leaf !== 'object')
        .map((x) => x.i);
    } else if (route.body.type === 'manifest') {
      ats = manifestLeafAts(fx.device);
    }
    for (const at of ats) for (const value of BOUNDARY_VALUES) out.push({ ...base, route: r, body: { kind: 'mutate', at, op: 'replace', value, key: '' } });
  });
  return out;
}
