import { describe, expect, it } from 'vitest';
import { Metadata, parseCommon, parseEnvelope, parseSignatures, signatureToJSON, typeName, type Signature } from './base.js';
import { Targets, parseTargets } from './targets.js';
import { parseRoot } from './root.js';
import { parseTimestamp } from './snapshot.js';
import { PublicKey } from '../crypto/keys.js';
import { FormatError, JsonError, SignatureError } from '../errors.js';
import { canonicalize, type JsonObject } from '../json.js';
import { LATER, NOW, TestRepo, edSigner, rsaSigner, signBytes } from '../testing/builders.js';
import { catchUptaneError } from '../testing/errors.js';

const dialects = ['uptane', 'tuf'] as const;

function targetsPayload(version = 1): Targets {
  return new Targets({ version, expires: LATER, targets: new Map() });
}

describe.each(dialects)('unique-key thresholds (%s)', (dialect) => {
  const a = edSigner('thr-a', dialect);
  const b = edSigner('thr-b', dialect);
  const c = rsaSigner(dialect, 'RSA_2048_B');
  const keysOf = (...signers: Array<typeof a>) => new Map(signers.map((s) => [s.publicKey.keyId(dialect), s.publicKey] as const));
  const role = (threshold: number, ...signers: Array<typeof a>) => ({ keyids: signers.map((s) => s.publicKey.keyId(dialect)), threshold });

  it('passes with a threshold of valid signatures by authorised keys', async () => {
    const md = await Metadata.create(targetsPayload(), dialect, [a, b, c]);
    expect(md.verify(keysOf(a, b, c), role(3, a, b, c))).toBe(3);
    expect(md.verify(keysOf(a, b, c), role(2, a, b))).toBe(2);
  });

  it('fails below the threshold with SignatureError (ARBITRARY_SOFTWARE) naming repository and role', async () => {
    const md = await Metadata.create(targetsPayload(), dialect, [a]);
    const err = catchUptaneError(() => md.verify(keysOf(a, b), role(2, a, b), { repository: 'image' }));
    expect(err).toBeInstanceOf(SignatureError);
    expect(err.code).toBe('ARBITRARY_SOFTWARE');
    expect(err.isAttack).toBe(true);
    expect(err.repository).toBe('image');
    expect(err.role).toBe('targets');
  });

  it('counts one signature repeated in the list once', async () => {
    const md = await Metadata.create(targetsPayload(), dialect, [a]);
    const repeated = new Metadata(md.signed, [md.signatures[0] as Signature, md.signatures[0] as Signature], dialect);
    expect(() => repeated.verify(keysOf(a, b), role(2, a, b))).toThrow(SignatureError);
    expect(repeated.verify(keysOf(a, b), role(1, a, b))).toBe(1);
  });

  it('counts the same key listed under two key ids once', async () => {
    const md = await Metadata.create(targetsPayload(), dialect, [a]);
    const sig = md.signatures[0] as Signature;
    const aliasId = 'f'.repeat(64);
    const keys = new Map([...keysOf(a), [aliasId, a.publicKey] as const]);
    const twoIds = new Metadata(md.signed, [sig, { ...sig, keyid: aliasId }], dialect);
    const r = { keyids: [a.publicKey.keyId(dialect), aliasId], threshold: 2 };
    expect(() => twoIds.verify(keys, r)).toThrow(SignatureError);
    expect(twoIds.verify(keys, { ...r, threshold: 1 })).toBe(1);
    // Also when the alias spells the key differently on the wire (upper-case hex vs lower-case).
    if (dialect === 'uptane') {
      const json = a.publicKey.toJSON();
      const upper = PublicKey.fromJSON({ ...json, keyval: { public: (json['keyval'] as JsonObject)['public'] as string } }, dialect);
      const keys2 = new Map([...keysOf(a), [aliasId, upper] as const]);
      expect(() => twoIds.verify(keys2, r)).toThrow(SignatureError);
    }
  });

  it('ignores signatures by unknown or unauthorised keys and invalid extra signatures', async () => {
    const md = await Metadata.create(targetsPayload(), dialect, [a, b, c]);
    const bad: Signature = { ...(md.signatures[1] as Signature), value: new Uint8Array(64) };
    const mixed = new Metadata(md.signed, [bad, ...md.signatures], dialect);
    // c is known (in the map) but not authorised for this role; b's first signature is garbage.
    expect(mixed.verify(keysOf(a, b, c), role(2, a, b))).toBe(2);
    expect(() => mixed.verify(keysOf(a), role(2, a, b))).toThrow(SignatureError);
  });

  it('fails when the payload changed after signing', async () => {
    const md = await Metadata.create(targetsPayload(1), dialect, [a]);
    const moved = new Metadata(targetsPayload(2), md.signatures, dialect);
    expect(() => moved.verify(keysOf(a), role(1, a))).toThrow(SignatureError);
  });

  it('verifies over the payload exactly as parsed, not over a rebuilt model', async () => {
    // An unknown field is covered by the signature: dropping it on re-serialization would break verification.
    const signed = { ...targetsPayload().toJSON(dialect), x_vendor: { nested: [1, 'two'] } };
    const sig = await a.sign(canonicalize(signed, dialect));
    const wire: JsonObject = {
      signed,
      signatures: [signatureToJSON({ keyid: a.publicKey.keyId(dialect), value: sig, method: a.publicKey.defaultMethod(dialect) }, dialect)],
    };
    const md = parseTargets(Buffer.from(JSON.stringify(wire)), dialect);
    expect(md.verify(keysOf(a), role(1, a))).toBe(1);
    expect(md.signed.unrecognized).toEqual({ x_vendor: { nested: [1, 'two'] } });
  });

  it('replaces an earlier signature by the same key when signing again, and can drop all', async () => {
    const md = await Metadata.create(targetsPayload(), dialect, [a, b]);
    const again = await md.sign([a]);
    expect(again.signatures.map((s) => s.keyid).sort()).toEqual([a.publicKey.keyId(dialect), b.publicKey.keyId(dialect)].sort());
    expect(md.unsigned().signatures).toHaveLength(0);
    expect(() => md.unsigned().verify(keysOf(a), role(1, a))).toThrow(SignatureError);
  });
});

describe('the envelope', () => {
  it('reads signatures per dialect: base64 with method (uptane), hex (tuf)', async () => {
    const s = edSigner('env', 'uptane');
    const up = (await Metadata.create(targetsPayload(), 'uptane', [s])).toJSON();
    expect(up['signatures']).toEqual([{ keyid: s.publicKey.keyId('uptane'), method: 'ed25519', sig: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/) }]);
    const t = edSigner('env', 'tuf');
    const tu = (await Metadata.create(targetsPayload(), 'tuf', [t])).toJSON();
    expect(tu['signatures']).toEqual([{ keyid: t.publicKey.keyId('tuf'), sig: expect.stringMatching(/^[0-9a-f]{128}$/) }]);
  });

  it('names the field of a malformed signature list', () => {
    const cases: Array<[unknown, 'uptane' | 'tuf', string]> = [
      [null, 'uptane', 'signatures'],
      [{}, 'tuf', 'signatures'],
      [[5], 'tuf', 'signatures[0]'],
      [[{ sig: 'AA==' }], 'uptane', 'signatures[0].keyid'],
      [[{ keyid: 'a', sig: 'AA==' }], 'uptane', 'signatures[0].method'],
      [[{ keyid: 'a', method: 'ed25519', sig: 'not base64!' }], 'uptane', 'signatures[0].sig'],
      [[{ keyid: 'a', sig: 'xyz' }], 'tuf', 'signatures[0].sig'],
      [[{ keyid: 'a', sig: 'AA==' }], 'tuf', 'signatures[0].sig'],
      [[{ keyid: 'a', sig: '00', method: 3 }], 'tuf', 'signatures[0].method'],
    ];
    for (const [v, dialect, path] of cases) {
      const err = catchUptaneError(() => parseSignatures(v as never, dialect));
      expect(err).toBeInstanceOf(FormatError);
      expect(err.path).toBe(path);
    }
  });

  it('refuses top-level fields other than signed and signatures, and a missing payload', () => {
    expect(catchUptaneError(() => parseEnvelope({ signed: {}, signatures: [], extra: 1 })).path).toBe('extra');
    expect(catchUptaneError(() => parseEnvelope({ signatures: [] })).path).toBe('signed');
    expect(catchUptaneError(() => parseEnvelope([])).path).toBe('metadata');
    expect(catchUptaneError(() => parseEnvelope('{"signed":{},"signed":{}}'))).toBeInstanceOf(JsonError);
  });

  it('checks _type per dialect: any case in uptane (as aktualizr), the exact lowercase name in tuf', () => {
    const base = { version: 1, expires: LATER };
    expect(parseCommon({ ...base, _type: 'TARGETS' }, 'targets', 'uptane').typeString).toBe('TARGETS');
    expect(catchUptaneError(() => parseCommon({ ...base, _type: 'Targets', spec_version: '1.0.0' }, 'targets', 'tuf')).path).toBe('signed._type');
    expect(catchUptaneError(() => parseCommon({ ...base, _type: 'Root' }, 'targets', 'uptane')).path).toBe('signed._type');
    expect(typeName('snapshot', 'uptane')).toBe('Snapshot');
    expect(typeName('snapshot', 'tuf')).toBe('snapshot');
  });

  it('requires a 1.x spec_version in tuf and keeps an optional one in uptane', () => {
    const base = { _type: 'targets', version: 1, expires: LATER };
    expect(catchUptaneError(() => parseCommon(base, 'targets', 'tuf')).path).toBe('signed.spec_version');
    expect(catchUptaneError(() => parseCommon({ ...base, spec_version: '2.0.0' }, 'targets', 'tuf')).path).toBe('signed.spec_version');
    expect(catchUptaneError(() => parseCommon({ ...base, spec_version: 'one' }, 'targets', 'tuf')).path).toBe('signed.spec_version');
    expect(parseCommon({ ...base, spec_version: '1.0' }, 'targets', 'tuf').specVersion).toBe('1.0');
    expect(parseCommon({ ...base, _type: 'Targets', spec_version: 'anything' }, 'targets', 'uptane').specVersion).toBe('anything');
    expect(parseCommon({ ...base, _type: 'Targets' }, 'targets', 'uptane').specVersion).toBeUndefined();
  });

  it('requires an integer version >= 1 and a valid expires', async () => {
    const s = edSigner('v', 'uptane');
    const good = (await Metadata.create(targetsPayload(), 'uptane', [s])).toJSON() as { signed: JsonObject; signatures: unknown };
    for (const [change, path] of [
      [{ version: 0 }, 'signed.version'],
      [{ version: '1' }, 'signed.version'],
      [{ version: undefined }, 'signed.version'],
      [{ expires: '2026-01-01T00:00:00.000Z' }, 'signed.expires'],
      [{ expires: 20260101 }, 'signed.expires'],
    ] as const) {
      const doc = { ...good, signed: { ...good.signed, ...change } };
      const err = catchUptaneError(() => parseTargets(JSON.stringify(doc), 'uptane'));
      expect(err.path, JSON.stringify(change)).toBe(path);
    }
  });

  it('refuses a document of another role (role confusion)', async () => {
    const repo = await TestRepo.create({ dialect: 'uptane' });
    await repo.publish();
    expect(catchUptaneError(() => parseTimestamp(repo.files.targets as Uint8Array, 'uptane')).path).toBe('signed._type');
    expect(catchUptaneError(() => parseRoot(repo.files.timestamp as Uint8Array, 'uptane')).path).toBe('signed._type');
  });

  it('hashes and serves the canonical bytes of the whole envelope', async () => {
    const s = edSigner('bytes', 'uptane');
    const bytes = await signBytes(targetsPayload(), 'uptane', [s]);
    const md = parseTargets(bytes, 'uptane');
    expect(Buffer.from(md.toBytes()).equals(Buffer.from(bytes))).toBe(true);
    expect(md.signed.isExpired(NOW)).toBe(false);
    expect(md.signed.isExpired(new Date(LATER))).toBe(true); // at expiry it is expired
  });
});
