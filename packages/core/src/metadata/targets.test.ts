import { describe, expect, it } from 'vitest';
import { SuccinctRoles, Targets, parseTargets, type Delegation, type Delegations, type TargetFile } from './targets.js';
import { FormatError } from '../errors.js';
import { canonicalize, type JsonObject } from '../json.js';
import { LATER, directorTarget, edSigner, imageTarget } from '../testing/builders.js';
import { catchUptaneError } from '../testing/errors.js';

const SHA = 'b02a'.padEnd(64, '0');
const KEYID = 'c'.repeat(64);

function targetsDoc(signed: JsonObject): string {
  return JSON.stringify({ signed: { _type: 'Targets', version: 1, expires: LATER, targets: {}, ...signed }, signatures: [] });
}

function roundTrips(text: string, dialect: 'uptane' | 'tuf'): void {
  const md = parseTargets(text, dialect);
  const signed = (JSON.parse(text) as { signed: JsonObject }).signed;
  // The model writes back exactly what it read (unknown fields included).
  expect(Buffer.from(canonicalize(md.signed.toJSON(dialect), dialect)).toString()).toBe(Buffer.from(canonicalize(signed, dialect)).toString());
}

describe('target entries', () => {
  it('reads an Image repository entry with OTA CE custom fields (nulls kept)', () => {
    const entry = {
      custom: {
        name: 'mypkg',
        version: '0.0.2',
        hardwareIds: ['ota-ce-device'],
        targetFormat: 'BINARY',
        uri: null,
        createdAt: '2026-08-01T10:00:00Z',
        updatedAt: '2026-08-01T10:00:00Z',
        releaseCounter: 4,
        vendor: { any: ['thing'] },
      },
      hashes: { sha256: SHA },
      length: 35445,
    };
    const text = targetsDoc({ targets: { 'mypkg_0.0.2': entry } });
    const t = parseTargets(text, 'uptane').signed.targets.get('mypkg_0.0.2') as TargetFile;
    expect(t.hardwareIds).toEqual(['ota-ce-device']);
    expect(t.releaseCounter).toBe(4);
    expect(t.uri).toBeUndefined();
    expect(t.targetFormat).toBe('BINARY');
    expect(t.ecuIdentifiers.size).toBe(0);
    roundTrips(text, 'uptane');
  });

  it('reads a Director entry: ECU identifiers, uri, correlation id and vehicle id', () => {
    const text = targetsDoc({
      custom: { correlationId: 'urn:here-ota:mtu:1', vehicleId: 'vin-1' },
      targets: { a: { custom: { ecuIdentifiers: { ecu1: { hardwareId: 'hw' } }, uri: 'https://cdn/a' }, hashes: { sha256: SHA }, length: 1 } },
    });
    const md = parseTargets(text, 'uptane');
    expect(md.signed.correlationId).toBe('urn:here-ota:mtu:1');
    expect(md.signed.vehicleId).toBe('vin-1');
    const t = md.signed.targets.get('a') as TargetFile;
    expect([...t.ecuIdentifiers]).toEqual([['ecu1', { hardwareId: 'hw' }]]);
    expect(t.uri).toBe('https://cdn/a');
    roundTrips(text, 'uptane');
  });

  it.each([
    ['length', { hashes: { sha256: SHA } }, 'signed.targets["a"].length'],
    ['a negative length', { length: -1, hashes: { sha256: SHA } }, 'signed.targets["a"].length'],
    ['a float length', { length: 1.5, hashes: { sha256: SHA } }, null],
    ['hashes', { length: 1 }, 'signed.targets["a"].hashes'],
    ['an empty hashes', { length: 1, hashes: {} }, 'signed.targets["a"].hashes'],
    ['a non-hex hash', { length: 1, hashes: { sha256: 'zz' } }, 'signed.targets["a"].hashes["sha256"]'],
    ['a non-object custom', { length: 1, hashes: { sha256: SHA }, custom: [] }, 'signed.targets["a"].custom'],
    ['hardwareIds', { length: 1, hashes: { sha256: SHA }, custom: { hardwareIds: 'hw' } }, 'signed.targets["a"].custom.hardwareIds'],
    ['a hardware id', { length: 1, hashes: { sha256: SHA }, custom: { hardwareIds: ['hw', 3] } }, 'signed.targets["a"].custom.hardwareIds[1]'],
    ['releaseCounter', { length: 1, hashes: { sha256: SHA }, custom: { releaseCounter: -1 } }, 'signed.targets["a"].custom.releaseCounter'],
    ['uri', { length: 1, hashes: { sha256: SHA }, custom: { uri: 5 } }, 'signed.targets["a"].custom.uri'],
    ['targetFormat', { length: 1, hashes: { sha256: SHA }, custom: { targetFormat: true } }, 'signed.targets["a"].custom.targetFormat'],
    ['ecuIdentifiers', { length: 1, hashes: { sha256: SHA }, custom: { ecuIdentifiers: [] } }, 'signed.targets["a"].custom.ecuIdentifiers'],
    ['an ECU entry', { length: 1, hashes: { sha256: SHA }, custom: { ecuIdentifiers: { e1: 'hw' } } }, 'signed.targets["a"].custom.ecuIdentifiers["e1"]'],
    [
      'a hardwareId',
      { length: 1, hashes: { sha256: SHA }, custom: { ecuIdentifiers: { e1: { hardwareId: '' } } } },
      'signed.targets["a"].custom.ecuIdentifiers["e1"].hardwareId',
    ],
  ])('refuses a malformed %s, naming the field', (_what, entry, path) => {
    const err = catchUptaneError(() => parseTargets(targetsDoc({ targets: { a: entry as JsonObject } }), 'uptane'));
    // Floats never get past the strict JSON parser; everything else is a FormatError with its path.
    if (path === null) expect(err.code).toBe('MALFORMED_JSON');
    else {
      expect(err).toBeInstanceOf(FormatError);
      expect(err.path).toBe(path);
    }
  });

  it('refuses malformed top-level custom fields', () => {
    expect(catchUptaneError(() => parseTargets(targetsDoc({ custom: 'x' }), 'uptane')).path).toBe('signed.custom');
    expect(catchUptaneError(() => parseTargets(targetsDoc({ custom: { correlationId: 1 } }), 'uptane')).path).toBe('signed.custom.correlationId');
    expect(catchUptaneError(() => parseTargets(targetsDoc({ custom: { vehicleId: [] } }), 'uptane')).path).toBe('signed.custom.vehicleId');
    expect(catchUptaneError(() => parseTargets(targetsDoc({ targets: [] }), 'uptane')).path).toBe('signed.targets');
  });

  it('compares target names in NFC and refuses two names equal after normalization', () => {
    const composed = 'caf\u00e9.bin';
    const decomposed = 'cafe\u0301.bin';
    const entry = { length: 1, hashes: { sha256: SHA } };
    const md = parseTargets(targetsDoc({ targets: { [decomposed]: entry } }), 'uptane');
    expect(md.signed.find(composed)).toBe(md.signed.targets.get(decomposed));
    expect(md.signed.find(decomposed)).toBe(md.signed.targets.get(decomposed));
    expect(md.signed.find('cafe.bin')).toBeUndefined();
    expect(md.signed.find(composed)).toBe(md.signed.targets.get(decomposed)); // again, from the index built on the miss
    const err = catchUptaneError(() => parseTargets(targetsDoc({ targets: { [composed]: entry, [decomposed]: entry } }), 'uptane'));
    expect(err.path).toBe(`signed.targets[${JSON.stringify(decomposed)}]`);
    expect(catchUptaneError(() => parseTargets(targetsDoc({ targets: { '': entry } }), 'uptane')).path).toBe('signed.targets[""]');
  });

  it('says whether two entries describe the same file', () => {
    const a = imageTarget('a', 'content', ['hw']);
    expect(a.sameFileAs(directorTarget('a', 'content', { e: 'hw' }))).toBe(true);
    expect(a.sameFileAs(directorTarget('a', 'other!!', { e: 'hw' }))).toBe(false);
    expect(a.sameFileAs(a.with({ hashes: { sha512: 'ab' } }))).toBe(false); // nothing in common
    expect(a.sameFileAs(a.with({ hashes: { sha256: (a.hashes['sha256'] as string).toUpperCase() } }))).toBe(true);
    expect(a.with({ custom: undefined }).custom).toBeUndefined();
  });
});

describe('delegations', () => {
  const key = edSigner('deleg', 'uptane').publicKey;
  const tufKey = edSigner('deleg', 'tuf').publicKey;
  const keys = { [key.keyId('uptane')]: key.toJSON() };

  it('reads single and multi-role delegations with paths, hardware ids and the terminating flag', () => {
    const text = targetsDoc({
      delegations: {
        keys,
        roles: [
          { name: 'supplier1', keyids: [key.keyId('uptane')], threshold: 1, paths: ['supplier1/*'], terminating: true, hardwareIds: ['hw-a'] },
          {
            roles: [
              { name: 'qa', keyids: [key.keyId('uptane')], threshold: 1 },
              { name: 'release', keyids: [key.keyId('uptane')], threshold: 1 },
            ],
            min_roles_in_agreement: 2,
            paths: ['*'],
            terminating: false,
          },
        ],
      },
    });
    const d = parseTargets(text, 'uptane').signed.delegations as Delegations;
    const [one, multi] = d.roles as [Delegation, Delegation];
    expect(one.name).toBe('supplier1');
    expect(one.terminating).toBe(true);
    expect(one.hardwareIds).toEqual(['hw-a']);
    expect(multi.multiRole).toBe(true);
    expect(multi.minRolesInAgreement).toBe(2);
    expect(d.roleKeys('release')?.threshold).toBe(1);
    expect(d.roleKeys('nobody')).toBeUndefined();
    roundTrips(text, 'uptane');
  });

  it('defaults terminating to false in the uptane dialect (OTA CE may omit it) and writes back what it read', () => {
    const text = targetsDoc({ delegations: { keys, roles: [{ name: 's', keyids: [key.keyId('uptane')], threshold: 1, paths: ['*'] }] } });
    expect((parseTargets(text, 'uptane').signed.delegations?.roles?.[0] as Delegation).terminating).toBe(false);
    roundTrips(text, 'uptane');
  });

  it('keeps unknown fields of the roles of a multi-role delegation', () => {
    const text = targetsDoc({
      delegations: {
        keys,
        roles: [{ roles: [{ name: 'qa', keyids: [], threshold: 1, x: 1 }], min_roles_in_agreement: 1, paths: ['*'], terminating: false }],
      },
    });
    roundTrips(text, 'uptane');
  });

  it.each([
    ['no paths', { name: 's', keyids: [], threshold: 1, terminating: false }, 'signed.delegations.roles[0].paths'],
    [
      'paths and path_hash_prefixes',
      { name: 's', keyids: [], threshold: 1, terminating: false, paths: [], path_hash_prefixes: [] },
      'signed.delegations.roles[0]',
    ],
    ['a top-level role name', { name: 'snapshot', keyids: [], threshold: 1, terminating: false, paths: [] }, 'signed.delegations.roles[0].name'],
    ['a name that is not NFC', { name: 'cafe\u0301', keyids: [], threshold: 1, terminating: false, paths: [] }, 'signed.delegations.roles[0].name'],
    ['an empty name', { name: '', keyids: [], threshold: 1, terminating: false, paths: [] }, 'signed.delegations.roles[0].name'],
    ['a short key id', { name: 's', keyids: ['ab'], threshold: 1, terminating: false, paths: [] }, 'signed.delegations.roles[0].keyids[0]'],
    ['a repeated key id', { name: 's', keyids: [KEYID, KEYID], threshold: 1, terminating: false, paths: [] }, 'signed.delegations.roles[0].keyids'],
    ['a threshold of 0', { name: 's', keyids: [], threshold: 0, terminating: false, paths: [] }, 'signed.delegations.roles[0].threshold'],
    ['a non-boolean terminating', { name: 's', keyids: [], threshold: 1, terminating: 'yes', paths: [] }, 'signed.delegations.roles[0].terminating'],
    ['non-string paths', { name: 's', keyids: [], threshold: 1, terminating: false, paths: [1] }, 'signed.delegations.roles[0].paths[0]'],
    ['an empty multi-role list', { roles: [], min_roles_in_agreement: 1, terminating: false, paths: [] }, 'signed.delegations.roles[0].roles'],
    [
      'min_roles_in_agreement above the number of roles',
      { roles: [{ name: 'a', keyids: [], threshold: 1 }], min_roles_in_agreement: 2, terminating: false, paths: [] },
      'signed.delegations.roles[0].min_roles_in_agreement',
    ],
    [
      'a role named twice in a multi-role delegation',
      {
        roles: [
          { name: 'a', keyids: [], threshold: 1 },
          { name: 'a', keyids: [], threshold: 1 },
        ],
        min_roles_in_agreement: 1,
        terminating: false,
        paths: [],
      },
      'signed.delegations.roles[0].roles',
    ],
  ])('refuses a delegation with %s', (_what, role, path) => {
    const err = catchUptaneError(() => parseTargets(targetsDoc({ delegations: { keys, roles: [role as JsonObject] } }), 'uptane'));
    expect(err).toBeInstanceOf(FormatError);
    expect(err.path).toBe(path);
  });

  it('refuses the same role delegated twice, and malformed delegation containers', () => {
    const r = { name: 's', keyids: [], threshold: 1, paths: ['*'] };
    expect(catchUptaneError(() => parseTargets(targetsDoc({ delegations: { keys, roles: [r, r] } }), 'uptane')).path).toBe('signed.delegations.roles');
    expect(catchUptaneError(() => parseTargets(targetsDoc({ delegations: { roles: [] } }), 'uptane')).path).toBe('signed.delegations.keys');
    expect(catchUptaneError(() => parseTargets(targetsDoc({ delegations: { keys, roles: {} } }), 'uptane')).path).toBe('signed.delegations.roles');
    expect(catchUptaneError(() => parseTargets(targetsDoc({ delegations: { keys } }), 'uptane')).path).toBe('signed.delegations.roles');
    expect(catchUptaneError(() => parseTargets(targetsDoc({ delegations: { keys: { short: key.toJSON() }, roles: [] } }), 'uptane')).path).toBe(
      'signed.delegations.keys["short"]',
    );
  });

  it('reads TUF succinct hash-bin delegations, and refuses them in the uptane dialect', () => {
    const succinct = { keyids: [tufKey.keyId('tuf')], threshold: 1, bit_length: 4, name_prefix: 'bin' };
    const text = JSON.stringify({
      signed: {
        _type: 'targets',
        spec_version: '1.0.31',
        version: 1,
        expires: LATER,
        targets: {},
        delegations: { keys: { [tufKey.keyId('tuf')]: tufKey.toJSON() }, succinct_roles: succinct },
      },
      signatures: [],
    });
    const sr = parseTargets(text, 'tuf').signed.delegations?.succinctRoles as SuccinctRoles;
    expect(sr.numberOfBins).toBe(16);
    expect(sr.binName(10)).toBe('bin-a');
    expect(sr.isDelegatedRole('bin-f')).toBe(true);
    expect(sr.isDelegatedRole('bin-10')).toBe(false);
    expect(sr.isDelegatedRole('other-1')).toBe(false);
    expect(new SuccinctRoles([], 1, 9, 'b').binName(5)).toBe('b-005');
    roundTrips(text, 'tuf');
    expect(catchUptaneError(() => parseTargets(targetsDoc({ delegations: { keys, succinct_roles: succinct } }), 'uptane')).path).toBe(
      'signed.delegations.succinct_roles',
    );
    const both = JSON.parse(text) as { signed: { delegations: JsonObject } };
    both.signed.delegations['roles'] = [];
    expect(catchUptaneError(() => parseTargets(JSON.stringify(both), 'tuf')).path).toBe('signed.delegations.roles');
    const big = JSON.parse(text) as { signed: { delegations: { succinct_roles: JsonObject } } };
    big.signed.delegations.succinct_roles['bit_length'] = 33;
    expect(catchUptaneError(() => parseTargets(JSON.stringify(big), 'tuf')).path).toBe('signed.delegations.succinct_roles.bit_length');
  });

  it('requires terminating in the tuf dialect', () => {
    const text = JSON.stringify({
      signed: {
        _type: 'targets',
        spec_version: '1.0.31',
        version: 1,
        expires: LATER,
        targets: {},
        delegations: { keys: {}, roles: [{ name: 's', keyids: [], threshold: 1, paths: ['*'] }] },
      },
      signatures: [],
    });
    expect(catchUptaneError(() => parseTargets(text, 'tuf')).path).toBe('signed.delegations.roles[0].terminating');
  });

  it('builds Targets in memory and writes the dialect forms', () => {
    const t = new Targets({ version: 1, expires: LATER, targets: new Map([['a', imageTarget('a', 'x', ['hw'])]]) });
    expect(t.toJSON('uptane')['_type']).toBe('Targets');
    expect(t.toJSON('tuf')['_type']).toBe('targets');
    expect(t.toJSON('tuf')['spec_version']).toBe('1.0.31');
    expect(t.with({ version: 2 }).targets.size).toBe(1);
  });
});
