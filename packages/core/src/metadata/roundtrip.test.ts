/**
 * Property-based tests of the metadata parsers:
 * - lossless: any valid document (unknown fields included) parses, and both the
 *   envelope (`toJSON`) and the model (`signed.toJSON(dialect)`) write back the
 *   input's canonical bytes;
 * - strict: any mutation of a valid document, structural or byte-level, either
 *   parses or throws an UptaneError; never a TypeError or anything else, and a
 *   document that parses can be serialized and verified without throwing
 *   anything but an UptaneError.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseRoot } from './root.js';
import { parseTargets } from './targets.js';
import { parseSnapshot, parseTimestamp } from './snapshot.js';
import type { Metadata, Signed } from './base.js';
import { UptaneError } from '../errors.js';
import { canonicalize, serializeJson, type JsonObject, type JsonValue } from '../json.js';
import { formatExpires } from '../time.js';
import { toBase64, toHex } from '../encoding.js';
import type { Dialect, PublicKey } from '../crypto/keys.js';
import { edSigner, rsaSigner } from '../testing/builders.js';
import { setOwn } from './guard.js';

type Role = 'root' | 'targets' | 'snapshot' | 'timestamp';
const PARSERS: Record<Role, (v: JsonValue | Uint8Array, d: Dialect) => Metadata<Signed>> = {
  root: parseRoot,
  targets: parseTargets,
  snapshot: parseSnapshot,
  timestamp: parseTimestamp,
};

const wellFormed = (s: string): boolean => Buffer.from(s, 'utf8').toString('utf8') === s;
const str = fc.string({ unit: 'binary', maxLength: 10 }).filter(wellFormed);
const nonEmpty = str.filter((s) => s.length > 0);
const unknownKey = str.map((s) => `x-${s}`);

const jsonValue: fc.Arbitrary<JsonValue> = fc.letrec<{ v: JsonValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', maxDepth: 3 },
    str,
    fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(str, tie('v'), { maxKeys: 3 }),
  ),
})).v;

const unknown = fc.dictionary(unknownKey, jsonValue, { maxKeys: 2 });
const withUnknown = <T extends JsonObject>(arb: fc.Arbitrary<T>): fc.Arbitrary<JsonObject> => fc.tuple(arb, unknown).map(([o, u]) => ({ ...u, ...o }));

const hex = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => toHex(b));
const hex64 = hex(32);
const version = fc.integer({ min: 1, max: 2 ** 31 });
const expires = fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T23:59:59Z'), noInvalidDate: true }).map((d) => formatExpires(d));
// Hash values are hex strings whatever the algorithm; unknown algorithms are kept.
const hashes = fc
  .tuple(fc.record({ sha256: hex64, sha512: hex(64) }, { requiredKeys: ['sha256'] }), fc.dictionary(unknownKey, hex(4), { maxKeys: 1 }))
  .map(([h, u]) => ({ ...u, ...h }) as JsonObject);

const signatures = (dialect: Dialect) =>
  fc.array(
    withUnknown(
      dialect === 'uptane'
        ? fc.record({
            keyid: hex64,
            method: fc.constantFrom('ed25519', 'rsassa-pss', 'rsassa-pss-sha256', 'RSASSA-PSS'),
            sig: fc.uint8Array({ minLength: 1, maxLength: 80 }).map(toBase64),
          })
        : fc.record({ keyid: fc.oneof(hex64, nonEmpty), sig: fc.uint8Array({ minLength: 1, maxLength: 80 }).map(toHex) }),
    ),
    { maxLength: 3 },
  );

function common(role: Role, dialect: Dialect) {
  const uptaneType = role[0]?.toUpperCase() + role.slice(1);
  return dialect === 'uptane'
    ? fc.record(
        { _type: fc.constantFrom(uptaneType, role.toUpperCase(), role), version, expires, spec_version: str },
        { requiredKeys: ['_type', 'version', 'expires'] },
      )
    : fc.record({ _type: fc.constant(role), version, expires, spec_version: fc.constantFrom('1.0.31', '1.0', '1.2.3') });
}

const keyPool = (dialect: Dialect): PublicKey[] => [
  edSigner('rt-1', dialect).publicKey,
  edSigner('rt-2', dialect).publicKey,
  rsaSigner(dialect, 'RSA_2048_C').publicKey,
];

const keyJson = (dialect: Dialect) =>
  fc
    .tuple(fc.constantFrom(...keyPool(dialect)), unknown, unknown)
    .map(([k, u1, u2]) => ({ ...u1, ...k.toJSON(), keyval: { ...u2, ...(k.toJSON()['keyval'] as JsonObject) } }) as JsonObject);
const keyMap = (dialect: Dialect) => fc.dictionary(dialect === 'uptane' ? hex64 : fc.oneof(hex64, nonEmpty), keyJson(dialect), { maxKeys: 3 });
const keyids = (dialect: Dialect) => fc.uniqueArray(dialect === 'uptane' ? hex64 : fc.oneof(hex64, nonEmpty), { maxLength: 3 });

const roleDef = (dialect: Dialect) => withUnknown(fc.record({ keyids: keyids(dialect), threshold: fc.integer({ min: 1, max: 1000 }) }));

const rootSigned = (dialect: Dialect) =>
  fc
    .tuple(
      common('root', dialect),
      keyMap(dialect),
      fc.record({ root: roleDef(dialect), targets: roleDef(dialect), snapshot: roleDef(dialect), timestamp: roleDef(dialect) }),
      fc.dictionary(
        str.map((s) => `extra-${s}`),
        roleDef(dialect),
        { maxKeys: 2 },
      ),
      dialect === 'uptane' ? fc.option(fc.boolean(), { nil: undefined }) : fc.boolean(),
      unknown,
    )
    .map(([c, keys, roles, extra, cs, u]) => {
      const out: JsonObject = { ...u, ...c, keys, roles: { ...extra, ...roles } };
      if (cs !== undefined) out['consistent_snapshot'] = cs;
      return out;
    });

const metaFile = withUnknown(fc.record({ version, length: fc.nat(), hashes }, { requiredKeys: ['version'] }));

const snapshotSigned = (dialect: Dialect) =>
  fc
    .tuple(
      common('snapshot', dialect),
      fc.dictionary(
        str.map((s) => `${s}.json`),
        metaFile,
        { maxKeys: 3 },
      ),
      metaFile,
      unknown,
    )
    .map(([c, meta, targets, u]) => ({ ...u, ...c, meta: { ...meta, 'targets.json': targets } }));

const timestampSigned = (dialect: Dialect) =>
  fc
    .tuple(
      common('timestamp', dialect),
      dialect === 'uptane' ? withUnknown(fc.record({ version, length: fc.nat(), hashes })) : metaFile,
      fc.dictionary(
        str.map((s) => `${s}.x`),
        metaFile,
        { maxKeys: 1 },
      ),
      unknown,
    )
    .map(([c, snap, other, u]) => ({ ...u, ...c, meta: { ...other, 'snapshot.json': snap } }));

const TOP = ['root', 'targets', 'snapshot', 'timestamp'];
const roleName = nonEmpty.filter((s) => s === s.normalize('NFC') && !TOP.includes(s));

const custom = withUnknown(
  fc.record(
    {
      hardwareIds: fc.option(fc.array(str, { maxLength: 3 }), { nil: null }),
      releaseCounter: fc.option(fc.nat(), { nil: null }),
      uri: fc.option(str, { nil: null }),
      targetFormat: fc.option(fc.constantFrom('BINARY', 'OSTREE'), { nil: null }),
      ecuIdentifiers: fc.dictionary(str, withUnknown(fc.record({ hardwareId: nonEmpty })), { maxKeys: 2 }),
      name: str,
      version: str,
    },
    { requiredKeys: [] },
  ),
);

const targetEntry = withUnknown(fc.record({ length: fc.nat(), hashes, custom }, { requiredKeys: ['length', 'hashes'] }));

const delegationsArb = (dialect: Dialect) =>
  fc
    .tuple(
      keyMap(dialect),
      fc.uniqueArray(roleName, { maxLength: 4 }),
      fc.array(
        fc.record(
          {
            paths: fc.array(str, { maxLength: 2 }),
            hashPrefixes: fc.array(hex(1), { maxLength: 2 }),
            usePrefixes: fc.boolean(),
            terminating: dialect === 'uptane' ? fc.option(fc.boolean(), { nil: undefined }) : fc.boolean(),
            hardwareIds: fc.option(fc.array(str, { maxLength: 2 }), { nil: undefined }),
            threshold: fc.integer({ min: 1, max: 3 }),
            keyids: keyids(dialect),
            multi: fc.boolean(),
            u: unknown,
          },
          { requiredKeys: ['paths', 'hashPrefixes', 'usePrefixes', 'threshold', 'keyids', 'multi', 'u'] },
        ),
        { maxLength: 4 },
      ),
      unknown,
    )
    .map(([keys, names, specs, u]) => {
      const roles: JsonObject[] = [];
      let i = 0;
      for (const s of specs) {
        const take = s.multi ? 2 : 1;
        const mine = names.slice(i, i + take);
        i += take;
        if (mine.length < take) break;
        const d: JsonObject = { ...s.u };
        if (s.usePrefixes) d['path_hash_prefixes'] = s.hashPrefixes;
        else d['paths'] = s.paths;
        if (s.terminating !== undefined) d['terminating'] = s.terminating;
        else if (dialect === 'tuf') d['terminating'] = false;
        if (s.hardwareIds !== undefined) d['hardwareIds'] = s.hardwareIds;
        if (s.multi) {
          d['roles'] = mine.map((name) => ({ name, keyids: s.keyids, threshold: s.threshold }));
          d['min_roles_in_agreement'] = 1;
        } else {
          d['name'] = mine[0] as string;
          d['keyids'] = s.keyids;
          d['threshold'] = s.threshold;
        }
        roles.push(d);
      }
      return { ...u, keys, roles } as JsonObject;
    });

const targetsSigned = (dialect: Dialect) =>
  fc
    .tuple(
      common('targets', dialect),
      fc.uniqueArray(fc.tuple(nonEmpty, targetEntry), { maxLength: 4, selector: ([n]) => n.normalize('NFC') }),
      fc.option(withUnknown(fc.record({ correlationId: str, vehicleId: str }, { requiredKeys: [] })), { nil: undefined }),
      fc.option(delegationsArb(dialect), { nil: undefined }),
      unknown,
    )
    .map(([c, entries, top, delegations, u]) => {
      const targets: JsonObject = {};
      for (const [n, e] of entries) setOwn(targets, n, e); // fast-check likes to try "__proto__"
      const out: JsonObject = { ...u, ...c, targets };
      if (top !== undefined) out['custom'] = top;
      if (delegations !== undefined) out['delegations'] = delegations;
      return out;
    });

const SIGNED: Record<Role, (d: Dialect) => fc.Arbitrary<JsonObject>> = {
  root: rootSigned,
  targets: targetsSigned,
  snapshot: snapshotSigned,
  timestamp: timestampSigned,
};

const documents = (role: Role, dialect: Dialect) =>
  fc.tuple(SIGNED[role](dialect), signatures(dialect)).map(([signed, sigs]) => ({ signed, signatures: sigs }) as JsonObject);

const text = (v: unknown): string => Buffer.from(canonicalize(v, 'tuf')).toString('utf8');

/** Everything a caller may do with parsed metadata; only UptaneErrors may come out. */
function exercise(md: Metadata<Signed>, dialect: Dialect): void {
  md.toBytes();
  md.signed.toJSON(dialect);
  md.signed.isExpired(new Date(0));
  const signer = edSigner('rt-1', dialect);
  try {
    md.verify(new Map([[signer.publicKey.keyId(dialect), signer.publicKey]]), { keyids: [signer.publicKey.keyId(dialect)], threshold: 1 });
  } catch (err) {
    if (!(err instanceof UptaneError)) throw err;
  }
}

function parsesOrUptaneError(role: Role, dialect: Dialect, input: JsonValue | Uint8Array): void {
  let md: Metadata<Signed>;
  try {
    md = PARSERS[role](input, dialect);
  } catch (err) {
    if (err instanceof UptaneError) return;
    throw err;
  }
  exercise(md, dialect);
}

/** All paths into a JSON value, for mutations. */
function paths(v: JsonValue, prefix: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out));
  else if (v !== null && typeof v === 'object') for (const k of Object.keys(v)) paths(v[k] as JsonValue, [...prefix, k], out);
  return out;
}

type Mutation = { kind: 'delete' | 'replace' | 'add'; value: JsonValue; key: string };
function mutate(doc: JsonValue, path: Array<string | number>, m: Mutation): JsonValue {
  const copy = JSON.parse(JSON.stringify(doc)) as JsonValue;
  if (path.length === 0) return m.kind === 'replace' ? m.value : copy;
  let parent = copy as JsonObject | JsonValue[];
  for (const p of path.slice(0, -1)) parent = (parent as Record<string | number, JsonValue>)[p] as JsonObject;
  const last = path[path.length - 1] as string | number;
  const target = (parent as Record<string | number, JsonValue>)[last];
  if (m.kind === 'delete') {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last as string];
  } else if (m.kind === 'add' && target !== null && typeof target === 'object' && !Array.isArray(target)) {
    target[m.key] = m.value;
  } else {
    (parent as Record<string | number, JsonValue>)[last] = m.value;
  }
  return copy;
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('delete', 'replace', 'add'),
  value: fc.oneof(jsonValue, fc.constantFrom<JsonValue>(-1, 0, '', [], {}, 'ED25519', 'Targets', '2026-01-01T00:00:00Z', 'x'.repeat(64), 2 ** 53 - 1)),
  key: fc.oneof(str, fc.constantFrom('terminating', 'roles', 'keys', 'custom', 'delegations', '__proto__', 'length', 'hashes')),
});

const RUNS = 80;

describe.each(['uptane', 'tuf'] as const)('metadata round trips and strictness (%s)', (dialect) => {
  describe.each(['root', 'targets', 'snapshot', 'timestamp'] as const)('%s', (role) => {
    it('parses every valid document and writes back its canonical bytes (envelope and model)', () => {
      fc.assert(
        fc.property(documents(role, dialect), (doc) => {
          const bytes = serializeJson(doc, dialect);
          const md = PARSERS[role](bytes, dialect);
          expect(Buffer.from(md.toBytes()).toString()).toBe(Buffer.from(bytes).toString());
          expect(text(md.toJSON())).toBe(text(doc));
          expect(Buffer.from(canonicalize(md.toJSON(), dialect)).equals(Buffer.from(canonicalize(doc, dialect)))).toBe(true);
          expect(text(md.signed.toJSON(dialect))).toBe(text(doc['signed']));
          // Parsing the JSON value instead of bytes gives the same.
          expect(text(PARSERS[role](doc, dialect).toJSON())).toBe(text(doc));
        }),
        { numRuns: RUNS },
      );
    });

    it('answers any structural mutation with a document or an UptaneError', () => {
      fc.assert(
        fc.property(
          documents(role, dialect).chain((doc) => fc.tuple(fc.constant(doc), fc.constantFrom(...paths(doc)), mutation)),
          ([doc, path, m]) => {
            parsesOrUptaneError(role, dialect, mutate(doc, path, m));
            parsesOrUptaneError(role, dialect, Buffer.from(JSON.stringify(mutate(doc, path, m)), 'utf8'));
          },
        ),
        { numRuns: RUNS + 40 },
      );
    });

    it('answers any byte-level mutation with a document or an UptaneError', () => {
      fc.assert(
        fc.property(
          documents(role, dialect),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')), { minLength: 1, maxLength: 4 }),
          (doc, edits) => {
            const bytes = Array.from(serializeJson(doc, dialect));
            for (const [pos, byte, op] of edits) {
              const i = bytes.length === 0 ? 0 : pos % bytes.length;
              if (op === 'set') bytes[i] = byte;
              else if (op === 'insert') bytes.splice(i, 0, byte);
              else bytes.splice(i, 1);
            }
            parsesOrUptaneError(role, dialect, Uint8Array.from(bytes));
          },
        ),
        { numRuns: RUNS },
      );
    });
  });
});

describe('awkward field names', () => {
  it('keeps an unknown "__proto__" field as data, without touching prototypes', () => {
    const doc = `{"signatures":[],"signed":{"__proto__":{"polluted":true},"_type":"Targets","expires":"2030-01-01T00:00:00Z","targets":{"__proto__":{"hashes":{"sha256":"${'a'.repeat(64)}"},"length":1}},"version":1}}`;
    const md = parseTargets(Buffer.from(doc), 'uptane');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(md.signed.targets.get('__proto__')?.length).toBe(1);
    expect(Buffer.from(md.toBytes()).toString()).toBe(doc);
    expect(Object.prototype.hasOwnProperty.call(md.signed.unrecognized, '__proto__')).toBe(true);
    // The model writes the entry named __proto__ back too.
    expect(Buffer.from(canonicalize(md.signed.toJSON('uptane'), 'uptane')).toString()).toBe(doc.slice('{"signatures":[],"signed":'.length, -1));
  });
});
