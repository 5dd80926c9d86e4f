import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_THRESHOLD, RoleDefinition, Root, buildRoot, parseRoot } from './root.js';
import { FormatError } from '../errors.js';
import { canonicalize, parseJson, type JsonObject } from '../json.js';
import { LATER, TestRepo, edSigner, rsaSigner } from '../testing/builders.js';
import { catchUptaneError } from '../testing/errors.js';

async function rootJson(dialect: 'uptane' | 'tuf'): Promise<{ signed: JsonObject; signatures: JsonObject[] }> {
  const repo = await TestRepo.create({ dialect, keys: { targets: [rsaSigner(dialect)] } });
  return parseJson(repo.roots[0] as Uint8Array) as { signed: JsonObject; signatures: JsonObject[] };
}

function withSigned(doc: { signed: JsonObject; signatures: JsonObject[] }, change: (s: JsonObject) => void): string {
  const copy = JSON.parse(JSON.stringify(doc)) as { signed: JsonObject };
  change(copy.signed);
  return JSON.stringify(copy);
}

describe.each(['uptane', 'tuf'] as const)('Root (%s)', (dialect) => {
  let awaitDoc: { signed: JsonObject; signatures: JsonObject[] };
  beforeAll(async () => {
    awaitDoc = await rootJson(dialect);
  });

  it('parses keys and the four roles and writes them back unchanged', async () => {
    const doc = await rootJson(dialect);
    const md = parseRoot(JSON.stringify(doc), dialect);
    expect(md.signed.keys.size).toBe(4);
    expect([...md.signed.roles.keys()].sort()).toEqual(['root', 'snapshot', 'targets', 'timestamp']);
    expect(md.signed.roleKeys('targets')[0]?.algorithm).toBe('rsa');
    expect(canonicalize(md.signed.toJSON(dialect), dialect)).toEqual(canonicalize(doc.signed, dialect));
    expect(md.signed.consistentSnapshot).toBe(dialect === 'tuf' ? false : undefined);
  });

  it('keeps extra roles (OTA CE offline-updates) and unknown fields', async () => {
    const doc = await rootJson(dialect);
    const text = withSigned(doc, (s) => {
      (s['roles'] as JsonObject)['offline-updates'] = { keyids: [], threshold: 1, note: 'x' };
      s['x-custom'] = true;
    });
    const md = parseRoot(text, dialect);
    expect(md.signed.roles.get('offline-updates')?.threshold).toBe(1);
    expect(canonicalize(md.signed.toJSON(dialect), dialect)).toEqual(canonicalize((JSON.parse(text) as { signed: JsonObject }).signed, dialect));
  });

  it.each([
    ['a missing role', (s: JsonObject) => delete (s['roles'] as JsonObject)['snapshot'], 'signed.roles.snapshot'],
    ['a threshold of 0', (s: JsonObject) => (((s['roles'] as JsonObject)['root'] as JsonObject)['threshold'] = 0), 'signed.roles.root.threshold'],
    [
      `a threshold above ${MAX_THRESHOLD}`,
      (s: JsonObject) => (((s['roles'] as JsonObject)['root'] as JsonObject)['threshold'] = MAX_THRESHOLD + 1),
      'signed.roles.root.threshold',
    ],
    [
      'a key id listed twice',
      (s: JsonObject) => {
        const r = (s['roles'] as JsonObject)['root'] as JsonObject;
        r['keyids'] = [...(r['keyids'] as string[]), ...(r['keyids'] as string[])];
      },
      'signed.roles.root.keyids',
    ],
    ['keys that are not an object', (s: JsonObject) => (s['keys'] = []), 'signed.keys'],
    ['roles that are not an object', (s: JsonObject) => (s['roles'] = 'all'), 'signed.roles'],
    ['a keyids that is not a list', (s: JsonObject) => (((s['roles'] as JsonObject)['targets'] as JsonObject)['keyids'] = 'k'), 'signed.roles.targets.keyids'],
    ['a non-boolean consistent_snapshot', (s: JsonObject) => (s['consistent_snapshot'] = 'no'), 'signed.consistent_snapshot'],
  ])('refuses %s with FormatError naming the field', async (_what, change, path) => {
    const err = catchUptaneError(() => parseRoot(withSigned(awaitDoc, change), dialect));
    expect(err).toBeInstanceOf(FormatError);
    expect(err.path).toBe(path);
  });

  it('says whether the keys or threshold of a role changed (R-4), by key material', async () => {
    const a = edSigner('rc-a', dialect);
    const b = edSigner('rc-b', dialect);
    const base = {
      version: 1,
      expires: LATER,
      dialect,
      keys: { root: [a.publicKey], targets: [a.publicKey], snapshot: [a.publicKey], timestamp: [a.publicKey] },
    };
    const r1 = buildRoot(base);
    expect(r1.roleChanged(buildRoot({ ...base, version: 2 }), 'timestamp')).toBe(false);
    expect(r1.roleChanged(buildRoot({ ...base, keys: { ...base.keys, timestamp: [b.publicKey] } }), 'timestamp')).toBe(true);
    expect(r1.roleChanged(buildRoot({ ...base, keys: { ...base.keys, timestamp: [a.publicKey, b.publicKey] } }), 'timestamp')).toBe(true);
    expect(r1.roleChanged(buildRoot({ ...base, thresholds: { timestamp: 2 } }), 'timestamp')).toBe(true);
    if (dialect === 'tuf') {
      // TUF key ids are names chosen by the writer: the same id may be re-bound to another key.
      const id = a.publicKey.keyId('tuf');
      const rebound = r1.with({ keys: new Map([...r1.keys, [id, b.publicKey]]) });
      expect(r1.roleChanged(rebound, 'timestamp')).toBe(true);
    }
  });
});

describe('Root, uptane specifics', () => {
  it('requires 64-hex key ids (OTA CE ids) in keys and roles', async () => {
    const doc = await rootJson('uptane');
    const badKeys = withSigned(doc, (s) => {
      const keys = s['keys'] as JsonObject;
      const [id] = Object.keys(keys);
      keys['short'] = keys[id as string] as JsonObject;
    });
    expect(catchUptaneError(() => parseRoot(badKeys, 'uptane')).path).toBe('signed.keys["short"]');
    const badRole = withSigned(doc, (s) => (((s['roles'] as JsonObject)['root'] as JsonObject)['keyids'] = ['short']));
    expect(catchUptaneError(() => parseRoot(badRole, 'uptane')).path).toBe('signed.roles.root.keyids[0]');
    // The tuf dialect takes key ids as opaque names.
    const tufDoc = await rootJson('tuf');
    expect(() =>
      parseRoot(
        withSigned(tufDoc, (s) => {
          const keys = s['keys'] as JsonObject;
          keys['short'] = keys[Object.keys(keys)[0] as string] as JsonObject;
        }),
        'tuf',
      ),
    ).not.toThrow();
  });

  it('requires consistent_snapshot in tuf only', async () => {
    const up = await rootJson('uptane');
    expect(() =>
      parseRoot(
        withSigned(up, (s) => delete s['consistent_snapshot']),
        'uptane',
      ),
    ).not.toThrow();
    const tuf = await rootJson('tuf');
    expect(
      catchUptaneError(() =>
        parseRoot(
          withSigned(tuf, (s) => delete s['consistent_snapshot']),
          'tuf',
        ),
      ).path,
    ).toBe('signed.consistent_snapshot');
  });

  it('refuses a Root built without a top-level role', () => {
    expect(() => new Root({ version: 1, expires: LATER, keys: new Map(), roles: new Map([['root', new RoleDefinition([], 1)]]) })).toThrow(FormatError);
  });
});
