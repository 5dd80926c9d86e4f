import { describe, expect, it } from 'vitest';
import { MetaFile, Snapshot, Timestamp, parseSnapshot, parseTimestamp } from './snapshot.js';
import { FormatError } from '../errors.js';
import { canonicalize, type JsonObject } from '../json.js';
import { LATER } from '../testing/builders.js';
import { catchUptaneError } from '../testing/errors.js';

const SHA = 'a'.repeat(64);

function doc(signed: JsonObject): string {
  return JSON.stringify({ signed, signatures: [] });
}

describe('MetaFile', () => {
  it('describes bytes by version, length and hashes, and finds mismatches', () => {
    const bytes = Buffer.from('{"signed":{}}');
    const m = MetaFile.describe(3, bytes);
    expect(m.length).toBe(bytes.byteLength);
    expect(Object.keys(m.hashes ?? {})).toEqual(['sha256', 'sha512']);
    expect(m.mismatch(bytes)).toBeUndefined();
    expect(m.mismatch(Buffer.from('{"signed":{ }}'))).toMatch(/length/);
    expect(m.mismatch(Buffer.from('{"signed":[]}'))).toMatch(/sha256 hash/);
    expect(new MetaFile(3).mismatch(Buffer.from('anything'))).toBeUndefined();
    expect(new MetaFile(3, undefined, { md5: 'ff' }).mismatch(bytes)).toMatch(/no supported hash/);
  });

  it('parses strictly, naming the field', () => {
    expect(MetaFile.fromJSON({ version: 1 }, 'm').length).toBeUndefined();
    const cases: Array<[JsonObject, string]> = [
      [{}, 'm.version'],
      [{ version: 0 }, 'm.version'],
      [{ version: 1, length: -1 }, 'm.length'],
      [{ version: 1, hashes: {} }, 'm.hashes'],
      [{ version: 1, hashes: { sha256: 'xyz' } }, 'm.hashes["sha256"]'],
      [{ version: 1, hashes: { sha256: '' } }, 'm.hashes["sha256"]'],
      [{ version: 1, hashes: { sha256: 5 } }, 'm.hashes["sha256"]'],
    ];
    for (const [v, path] of cases) expect(catchUptaneError(() => MetaFile.fromJSON(v, 'm')).path).toBe(path);
    // Required length and hashes (the uptane timestamp's snapshot entry).
    expect(catchUptaneError(() => MetaFile.fromJSON({ version: 1 }, 'm', true)).path).toBe('m.length');
    expect(catchUptaneError(() => MetaFile.fromJSON({ version: 1, length: 1 }, 'm', true)).path).toBe('m.hashes');
  });
});

describe('Timestamp', () => {
  const base = { _type: 'Timestamp', version: 2, expires: LATER };

  it('reads the snapshot.json entry and keeps other entries', () => {
    const signed = { ...base, meta: { 'snapshot.json': { version: 5, length: 10, hashes: { sha256: SHA } }, 'other.json': { version: 1 } } };
    const md = parseTimestamp(doc(signed), 'uptane');
    expect(md.signed.snapshot.version).toBe(5);
    expect(md.signed.otherMeta.get('other.json')?.version).toBe(1);
    expect(canonicalize(md.signed.toJSON('uptane'), 'uptane')).toEqual(canonicalize(signed, 'uptane'));
  });

  it('requires length and hashes of snapshot.json in the uptane dialect (aktualizr does), not in tuf', () => {
    const signed = { ...base, meta: { 'snapshot.json': { version: 5 } } };
    expect(catchUptaneError(() => parseTimestamp(doc(signed), 'uptane')).path).toBe('signed.meta["snapshot.json"].length');
    expect(parseTimestamp(doc({ ...signed, _type: 'timestamp', spec_version: '1.0.31' }), 'tuf').signed.snapshot.length).toBeUndefined();
  });

  it('refuses a timestamp without snapshot.json', () => {
    const err = catchUptaneError(() => parseTimestamp(doc({ ...base, meta: {} }), 'uptane'));
    expect(err).toBeInstanceOf(FormatError);
    expect(err.path).toBe('signed.meta');
    expect(catchUptaneError(() => parseTimestamp(doc({ ...base }), 'uptane')).path).toBe('signed.meta');
  });

  it('builds a copy with changes', () => {
    const t = new Timestamp({ version: 1, expires: LATER, snapshot: new MetaFile(1) });
    expect(t.with({ version: 2 }).version).toBe(2);
    expect(t.with({ version: 2 }).snapshot.version).toBe(1);
  });
});

describe('Snapshot', () => {
  const base = { _type: 'Snapshot', version: 2, expires: LATER };

  it('lists targets.json, delegated roles and optionally root.json', () => {
    const signed = {
      ...base,
      meta: { 'root.json': { version: 1 }, 'targets.json': { version: 3 }, 'supplier.json': { version: 1, length: 4, hashes: { sha256: SHA } } },
    };
    const md = parseSnapshot(doc(signed), 'uptane');
    expect([...md.signed.meta.keys()]).toEqual(['root.json', 'targets.json', 'supplier.json']);
    expect(canonicalize(md.signed.toJSON('uptane'), 'uptane')).toEqual(canonicalize(signed, 'uptane'));
  });

  it('refuses a snapshot without targets.json, or with a malformed entry', () => {
    expect(catchUptaneError(() => parseSnapshot(doc({ ...base, meta: { 'a.json': { version: 1 } } }), 'uptane')).path).toBe('signed.meta');
    expect(catchUptaneError(() => parseSnapshot(doc({ ...base, meta: { 'targets.json': { version: 'x' } } }), 'uptane')).path).toBe(
      'signed.meta["targets.json"].version',
    );
  });

  it('builds a copy with changes', () => {
    const s = new Snapshot({ version: 1, expires: LATER, meta: new Map([['targets.json', new MetaFile(1)]]) });
    expect(s.with({ version: 4 }).meta.get('targets.json')?.version).toBe(1);
  });
});
