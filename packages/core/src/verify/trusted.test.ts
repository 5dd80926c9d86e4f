/**
 * Procedures R, T, S and G of uptane-standard.md §4 (TrustedRepository), and
 * the Director-only checks G-6…G-8 and the vehicle id (checkDirectorTargets):
 * for every numbered step a passing case and a failing case that asserts the
 * typed error and its code. Both dialects run the same steps.
 */
import { describe, expect, it } from 'vitest';
import { TrustedRepository, checkDirectorTargets } from './trusted.js';
import { refreshRepository, updateRootChain } from './uptane.js';
import {
  BadEcuIdError,
  BadHardwareIdError,
  DirectorReplayError,
  EndlessDataError,
  FormatError,
  FreezeError,
  MixAndMatchError,
  OrderError,
  RollbackError,
  SignatureError,
  type UptaneError,
} from '../errors.js';
import { Metadata } from '../metadata/base.js';
import { RoleDefinition, Root, parseRoot } from '../metadata/root.js';
import { Targets, parseTargets } from '../metadata/targets.js';
import { MetaFile, parseTimestamp } from '../metadata/snapshot.js';
import type { Dialect } from '../crypto/keys.js';
import {
  EARLIER,
  LATER,
  NOW,
  TestRepo,
  delegation,
  delegations,
  directorTarget,
  edSigner,
  imageTarget,
  rsaSigner,
  signBytes,
  tamper,
} from '../testing/builders.js';
import { catchUptaneError } from '../testing/errors.js';

const dialects = ['uptane', 'tuf'] as const;

function expectError(err: UptaneError, cls: abstract new (...args: never[]) => UptaneError, code: string): void {
  expect(err).toBeInstanceOf(cls);
  expect(err.code).toBe(code);
}

async function imageRepo(dialect: Dialect): Promise<TestRepo> {
  const repo = await TestRepo.create({ dialect });
  repo.addTarget(imageTarget('app_1.0', 'app one', ['hw-a']));
  await repo.publish();
  return repo;
}

/** Runs a whole refresh (R, T, S, G) of a repository from what a client stored. */
async function refresh(repo: TestRepo, stored = repo.provisioned(), options: Partial<ConstructorParameters<typeof TrustedRepository>[1]> = {}) {
  const trusted = repo.trusted(stored, options);
  await refreshRepository(trusted, repo.source());
  return trusted;
}

describe.each(dialects)('Procedure R: Root (%s)', (dialect) => {
  it('R-1: the stored root must carry a threshold of its own root keys', async () => {
    const repo = await TestRepo.create({ dialect });
    expect(repo.trusted().rootVersion).toBe(1);
    const forged = await signBytes(repo.rootPayload(1), dialect, [edSigner('intruder', dialect)]);
    expectError(
      catchUptaneError(() => repo.trusted({ root: forged })),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
  });

  it('R-2.3 passes with a threshold of the old and of the new root keys, and R-2.5 hands each root over to persist', async () => {
    const repo = await TestRepo.create({ dialect });
    await repo.rotateRoot({ keys: { root: [edSigner('root-2', dialect)] } });
    await repo.rotateRoot({ keys: { root: [edSigner('root-3', dialect)] } });
    await repo.publish();
    const trusted = repo.trusted();
    const persisted: number[] = [];
    // repeat until N+1 does not exist.
    expect(await updateRootChain(trusted, repo.source(), { onRoot: (_b, v) => void persisted.push(v) })).toBe(2);
    expect(persisted).toEqual([2, 3]);
    expect(trusted.rootVersion).toBe(3);
    expect(repo.requests).toEqual(['root 2', 'root 3', 'root 4']);
    expect(Buffer.from(trusted.state().root).equals(Buffer.from(repo.roots[2] as Uint8Array))).toBe(true);
  });

  it('R-2.3 fails without a threshold of the old root keys (arbitrary software), leaving the trusted root', async () => {
    const repo = await TestRepo.create({ dialect });
    const newKey = edSigner('root-new', dialect);
    const v2 = await repo.rotateRoot({ keys: { root: [newKey] }, signers: [newKey] });
    const trusted = repo.trusted();
    expectError(
      catchUptaneError(() => trusted.updateRoot(v2)),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
    expect(trusted.rootVersion).toBe(1);
  });

  it('R-2.3 fails without a threshold of the new root keys', async () => {
    const repo = await TestRepo.create({ dialect });
    const oldKey = repo.keys.root[0] as ReturnType<typeof edSigner>;
    const v2 = await repo.rotateRoot({ keys: { root: [edSigner('root-new', dialect)] }, signers: [oldKey] });
    const err = catchUptaneError(() => repo.trusted().updateRoot(v2));
    expectError(err, SignatureError, 'ARBITRARY_SOFTWARE');
    expect(err.role).toBe('root');
    expect(err.repository).toBe('image');
  });

  it('R-2.3 counts unique keys: a threshold of 2 is not met by one key listed under two key ids', async () => {
    const a = edSigner('dup-a', dialect);
    const b = edSigner('dup-b', dialect);
    const alias = 'ab'.repeat(32);
    const base = await TestRepo.create({ dialect });
    const payload = (version: number, rootIds: string[], extraKeys: Array<[string, typeof a.publicKey]>) => {
      const p = base.rootPayload(version);
      const roles = new Map(p.roles);
      roles.set('root', new RoleDefinition(rootIds, 2));
      return p.with({ roles, keys: new Map([...p.keys, ...extraKeys]) });
    };
    // Root 1: root role = {a, b}, threshold 2.
    const r1 = await signBytes(
      payload(
        1,
        [a.publicKey.keyId(dialect), b.publicKey.keyId(dialect)],
        [
          [a.publicKey.keyId(dialect), a.publicKey],
          [b.publicKey.keyId(dialect), b.publicKey],
        ],
      ),
      dialect,
      [a, b],
    );
    const trusted = new TrustedRepository({ root: r1 }, { dialect, repository: 'image', now: NOW });
    // Root 2 lists a under a second id as well and is signed by a twice (under both ids) and not by b.
    const p2 = payload(
      2,
      [a.publicKey.keyId(dialect), alias],
      [
        [a.publicKey.keyId(dialect), a.publicKey],
        [alias, a.publicKey],
      ],
    );
    const signed = await Metadata.create(p2, dialect, [a]);
    const sig = signed.signatures[0] as (typeof signed.signatures)[number];
    const v2 = new Metadata(p2, [sig, { ...sig, keyid: alias }], dialect).toBytes();
    expectError(
      catchUptaneError(() => trusted.updateRoot(v2)),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
    // The same with b's real signature passes.
    const good = await Metadata.create(
      p2.with({
        roles: new Map([...p2.roles, ['root', new RoleDefinition([a.publicKey.keyId(dialect), b.publicKey.keyId(dialect)], 2)]]),
        keys: new Map([...p2.keys, [b.publicKey.keyId(dialect), b.publicKey]]),
      }),
      dialect,
      [a, b],
    );
    expect(trusted.updateRoot(good.toBytes()).signed.version).toBe(2);
  });

  it('R-2.3 refuses a signature list naming one key id twice', async () => {
    const repo = await TestRepo.create({ dialect });
    const v2 = await repo.rotateRoot();
    const doubled = tamper(v2, (d) => d.signatures.push(d.signatures[0] as (typeof d.signatures)[number]));
    expectError(
      catchUptaneError(() => repo.trusted().updateRoot(doubled)),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
  });

  it('R-2.4 fails when N+1 holds an older version (rollback) or a version other than N+1', async () => {
    const repo = await TestRepo.create({ dialect });
    await repo.rotateRoot();
    const trusted = repo.trusted({ root: repo.roots[1] as Uint8Array });
    // The client trusts 2 and asks for 3; the server answers with root 2 again, or root 1.
    expectError(
      catchUptaneError(() => trusted.updateRoot(repo.roots[1] as Uint8Array)),
      RollbackError,
      'ROLLBACK',
    );
    const v4 = await repo.rotateRoot({ version: 4 });
    expectError(
      catchUptaneError(() => trusted.updateRoot(v4)),
      MixAndMatchError,
      'MIX_AND_MATCH',
    );
    expect(trusted.rootVersion).toBe(2);
  });

  it('R-2.2: root files are limited to X bytes (endless data), and the walk to a number of rotations', async () => {
    const repo = await TestRepo.create({ dialect });
    const v2 = await repo.rotateRoot();
    expectError(
      catchUptaneError(() => repo.trusted(repo.provisioned(), { limits: { rootBytes: v2.byteLength - 1 } }).updateRoot(v2)),
      EndlessDataError,
      'ENDLESS_DATA',
    );
    expect(repo.trusted(repo.provisioned(), { limits: { rootBytes: v2.byteLength } }).updateRoot(v2).signed.version).toBe(2);
    const v3 = await repo.rotateRoot();
    const limited = repo.trusted(repo.provisioned(), { limits: { maxRootRotations: 1 } });
    limited.updateRoot(v2);
    expectError(
      catchUptaneError(() => limited.updateRoot(v3)),
      EndlessDataError,
      'ENDLESS_DATA',
    );
  });

  it('R-3: the final root must not be expired (freeze); an expired intermediate root is fine', async () => {
    const repo = await TestRepo.create({ dialect });
    await repo.rotateRoot({ expires: EARLIER });
    await repo.rotateRoot({ expires: LATER });
    await repo.publish();
    expect((await refresh(repo)).rootVersion).toBe(3);

    const frozen = await TestRepo.create({ dialect });
    await frozen.rotateRoot({ expires: EARLIER });
    await frozen.publish();
    const trusted = frozen.trusted();
    const err = await updateRootChain(trusted, frozen.source()).catch((e: UptaneError) => e);
    expectError(err as UptaneError, FreezeError, 'FREEZE');
    // The timestamp cannot be checked either: R-3 runs first.
    expectError(
      catchUptaneError(() => trusted.updateTimestamp(frozen.files.timestamp as Uint8Array)),
      FreezeError,
      'FREEZE',
    );
  });

  it('R-4: a rotated timestamp key wipes the stored timestamp and snapshot, so the repository can restart their versions', async () => {
    const repo = await imageRepo(dialect);
    await repo.publish();
    await repo.publish(); // timestamp and snapshot at version 3
    const stored = repo.current();
    // Fast-forward recovery: new timestamp key, versions restart at 1.
    await repo.rotateRoot({ keys: { timestamp: [edSigner('ts-2', dialect)] } });
    repo.versions.timestamp = 0;
    await repo.publishTimestamp();
    const trusted = repo.trusted(stored);
    let discarded = false;
    await updateRootChain(trusted, repo.source(), { onDiscard: () => void (discarded = true) });
    expect(discarded).toBe(true);
    expect(trusted.state().timestamp).toBeUndefined();
    expect(trusted.state().snapshot).toBeUndefined();
    expect(trusted.updateTimestamp(repo.files.timestamp as Uint8Array)).toBe(true);
    expect(trusted.timestamp?.signed.version).toBe(1);
  });

  it('R-4: without a key change the stored timestamp stays the rollback baseline', async () => {
    const repo = await imageRepo(dialect);
    const old = repo.files.timestamp as Uint8Array;
    await repo.publish();
    await repo.rotateRoot(); // same keys, new version
    const trusted = repo.trusted(repo.current());
    await updateRootChain(trusted, repo.source());
    expect(trusted.state().timestamp).toBeDefined();
    expectError(
      catchUptaneError(() => trusted.updateTimestamp(old)),
      RollbackError,
      'ROLLBACK',
    );
  });

  it('R-4: a rotated snapshot key also lets targets restart their versions', async () => {
    const repo = await imageRepo(dialect);
    await repo.publish();
    const stored = repo.current();
    await repo.rotateRoot({ keys: { snapshot: [edSigner('sn-2', dialect)] } });
    repo.versions.snapshot = 0;
    repo.versions.targets = 0;
    await repo.publish();
    const trusted = await refresh(repo, stored);
    expect(trusted.targets?.signed.version).toBe(1);
  });

  it('the root cannot change once the timestamp was checked (order)', async () => {
    const repo = await imageRepo(dialect);
    const v2 = await repo.rotateRoot();
    const trusted = repo.trusted();
    trusted.updateTimestamp(repo.files.timestamp as Uint8Array);
    expectError(
      catchUptaneError(() => trusted.updateRoot(v2)),
      OrderError,
      'BAD_ORDER',
    );
  });
});

describe.each(dialects)('Procedure T: Timestamp (%s)', (dialect) => {
  it('T-1: refuses more than Y bytes (endless data)', async () => {
    const repo = await imageRepo(dialect);
    const ts = repo.files.timestamp as Uint8Array;
    expect(repo.trusted(repo.provisioned(), { limits: { timestampBytes: ts.byteLength } }).updateTimestamp(ts)).toBe(true);
    expectError(
      catchUptaneError(() => repo.trusted(repo.provisioned(), { limits: { timestampBytes: ts.byteLength - 1 } }).updateTimestamp(ts)),
      EndlessDataError,
      'ENDLESS_DATA',
    );
  });

  it('T-2: needs a threshold of the timestamp keys of the latest root (arbitrary software)', async () => {
    const repo = await imageRepo(dialect);
    const forged = await signBytes(parseTimestamp(repo.files.timestamp as Uint8Array, dialect).signed, dialect, [edSigner('intruder', dialect)]);
    const trusted = repo.trusted();
    expectError(
      catchUptaneError(() => trusted.updateTimestamp(forged)),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
    expect(trusted.timestamp).toBeUndefined();
    // Threshold 2: one of two keys is not enough.
    const two = await TestRepo.create({ dialect, keys: { timestamp: [edSigner('t1', dialect), rsaSigner(dialect)] }, thresholds: { timestamp: 2 } });
    await two.publish();
    expect(two.trusted().updateTimestamp(two.files.timestamp as Uint8Array)).toBe(true);
    const one = await signBytes(parseTimestamp(two.files.timestamp as Uint8Array, dialect).signed, dialect, [edSigner('t1', dialect)]);
    expectError(
      catchUptaneError(() => two.trusted().updateTimestamp(one)),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
  });

  it('T-3: a version below the trusted one, or a lower snapshot version, is a rollback; the same version keeps the trusted copy', async () => {
    const repo = await imageRepo(dialect);
    const old = repo.files.timestamp as Uint8Array;
    await repo.publish();
    const trusted = repo.trusted(repo.current());
    expectError(
      catchUptaneError(() => trusted.updateTimestamp(old)),
      RollbackError,
      'ROLLBACK',
    );
    expect(trusted.updateTimestamp(repo.files.timestamp as Uint8Array)).toBe(false);
    // A newer timestamp that lists an older snapshot.
    const current = parseTimestamp(repo.files.timestamp as Uint8Array, dialect).signed;
    const back = await signBytes(
      current.with({ version: current.version + 1, snapshot: new MetaFile(current.snapshot.version - 1, current.snapshot.length, current.snapshot.hashes) }),
      dialect,
      repo.keys.timestamp,
    );
    expectError(
      catchUptaneError(() => repo.trusted(repo.current()).updateTimestamp(back)),
      RollbackError,
      'ROLLBACK',
    );
  });

  it('T-4: an expired timestamp is a freeze', async () => {
    const repo = await TestRepo.create({ dialect });
    repo.expires.timestamp = EARLIER;
    await repo.publish();
    expectError(
      catchUptaneError(() => repo.trusted().updateTimestamp(repo.files.timestamp as Uint8Array)),
      FreezeError,
      'FREEZE',
    );
    expect(repo.trusted(repo.provisioned(), { now: new Date('2025-12-31T00:00:00Z') }).updateTimestamp(repo.files.timestamp as Uint8Array)).toBe(true);
  });

  it('refuses a timestamp whose signatures name one key id twice', async () => {
    const repo = await imageRepo(dialect);
    const doubled = tamper(repo.files.timestamp as Uint8Array, (d) => d.signatures.push(d.signatures[0] as (typeof d.signatures)[number]));
    expectError(
      catchUptaneError(() => repo.trusted().updateTimestamp(doubled)),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
  });

  it('refuses a malformed timestamp with a FormatError, and a document of another role', async () => {
    const repo = await imageRepo(dialect);
    expectError(
      catchUptaneError(() => repo.trusted().updateTimestamp(Buffer.from('{"signed":{},"signatures":[]}'))),
      FormatError,
      'MALFORMED_METADATA',
    );
    expectError(
      catchUptaneError(() => repo.trusted().updateTimestamp(repo.files.snapshot as Uint8Array)),
      FormatError,
      'MALFORMED_METADATA',
    );
  });
});

describe.each(dialects)('Procedure S: Snapshot (%s)', (dialect) => {
  it('S-1: downloads at most the length the timestamp gives, or the snapshot limit without one (endless data)', async () => {
    const repo = await imageRepo(dialect);
    const trusted = repo.trusted();
    trusted.updateTimestamp(repo.files.timestamp as Uint8Array);
    const req = trusted.snapshotRequest();
    expect(req).toEqual({ version: 1, maxBytes: (repo.files.snapshot as Uint8Array).byteLength });
    expectError(
      catchUptaneError(() => trusted.updateSnapshot(Buffer.concat([repo.files.snapshot as Uint8Array, Buffer.from(' ')]))),
      EndlessDataError,
      'ENDLESS_DATA',
    );
    if (dialect === 'tuf') {
      await repo.publish({ timestampLengthAndHashes: false });
      const t2 = repo.trusted(repo.provisioned(), { limits: { snapshotBytes: 10 } });
      t2.updateTimestamp(repo.files.timestamp as Uint8Array);
      expect(t2.snapshotRequest().maxBytes).toBe(10);
      expectError(
        catchUptaneError(() => t2.updateSnapshot(repo.files.snapshot as Uint8Array)),
        EndlessDataError,
        'ENDLESS_DATA',
      );
    }
  });

  it('S-2: hashes and version must match the timestamp (mix-and-match)', async () => {
    const repo = await imageRepo(dialect);
    const first = repo.files.snapshot as Uint8Array;
    await repo.publish();
    const trusted = repo.trusted();
    trusted.updateTimestamp(repo.files.timestamp as Uint8Array);
    // Same length, one byte changed: the hashes differ (checked before the file is even parsed).
    const text = Buffer.from(repo.files.snapshot as Uint8Array).toString('latin1');
    const sameLength = Buffer.from(text.replace(LATER, LATER.replace('2027', '2099')), 'latin1');
    expect(sameLength.byteLength).toBe((repo.files.snapshot as Uint8Array).byteLength);
    expectError(
      catchUptaneError(() => trusted.updateSnapshot(sameLength)),
      MixAndMatchError,
      'MIX_AND_MATCH',
    );
    // The previous snapshot served for the new timestamp.
    expectError(
      catchUptaneError(() => trusted.updateSnapshot(first)),
      MixAndMatchError,
      'MIX_AND_MATCH',
    );
    expect(trusted.updateSnapshot(repo.files.snapshot as Uint8Array).signed.version).toBe(2);
    // Version: a timestamp without hashes (tuf allows it) that names version 2 while the file is version 1.
    if (dialect === 'tuf') {
      const r = await imageRepo(dialect);
      const v1 = r.files.snapshot as Uint8Array;
      await r.publish({ timestampLengthAndHashes: false });
      const t = r.trusted();
      t.updateTimestamp(r.files.timestamp as Uint8Array);
      expectError(
        catchUptaneError(() => t.updateSnapshot(v1)),
        MixAndMatchError,
        'MIX_AND_MATCH',
      );
      expect(t.updateSnapshot(r.files.snapshot as Uint8Array).signed.version).toBe(2);
    }
  });

  it('S-3: needs a threshold of the snapshot keys (arbitrary software)', async () => {
    const repo = await imageRepo(dialect);
    expect((await refresh(repo)).snapshot?.signed.version).toBe(1);
    // A snapshot signed by a key the root does not list for the snapshot role.
    repo.keys.snapshot = [edSigner('intruder', dialect)];
    await repo.publishSnapshot();
    const trusted = repo.trusted();
    trusted.updateTimestamp(repo.files.timestamp as Uint8Array);
    expectError(
      catchUptaneError(() => trusted.updateSnapshot(repo.files.snapshot as Uint8Array)),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
  });

  it('S-4: a snapshot older than the trusted one is a rollback', async () => {
    const repo = await imageRepo(dialect);
    await repo.publish();
    await repo.publish();
    const newer = repo.current(); // snapshot 3
    // The client has snapshot 3 but lost its timestamp; the server offers a new timestamp for a re-signed snapshot 2.
    const trusted = repo.trusted({ root: newer.root, snapshot: newer.snapshot });
    repo.versions.snapshot = 1;
    await repo.publishSnapshot();
    trusted.updateTimestamp(repo.files.timestamp as Uint8Array);
    expectError(
      catchUptaneError(() => trusted.updateSnapshot(repo.files.snapshot as Uint8Array)),
      RollbackError,
      'ROLLBACK',
    );
    // Snapshot 3 again (same content as stored) passes.
    const again = repo.trusted({ root: newer.root, snapshot: newer.snapshot });
    await repo.publishSnapshot();
    again.updateTimestamp(repo.files.timestamp as Uint8Array);
    expect(again.updateSnapshot(repo.files.snapshot as Uint8Array).signed.version).toBe(3);
  });

  it('S-5: a targets file listed at a lower version than before is a rollback', async () => {
    const repo = await imageRepo(dialect);
    await repo.publish(); // targets 2
    const stored = repo.current();
    repo.versions.targets = 0;
    await repo.publish(); // targets 1 again, snapshot 3
    const trusted = repo.trusted(stored);
    trusted.updateTimestamp(repo.files.timestamp as Uint8Array);
    expectError(
      catchUptaneError(() => trusted.updateSnapshot(repo.files.snapshot as Uint8Array)),
      RollbackError,
      'ROLLBACK',
    );
  });

  it('S-6: a targets file listed before must still be listed', async () => {
    const repo = await imageRepo(dialect);
    const supplier = edSigner('supplier', dialect);
    repo.delegations = delegations([delegation('supplier', [supplier], dialect)], [supplier], dialect);
    repo.setDelegated('supplier', { signers: [supplier] });
    await repo.publish();
    const stored = repo.current();
    repo.delegations = undefined;
    repo.delegated.clear();
    repo.files.delegated.clear();
    await repo.publish();
    const trusted = repo.trusted(stored);
    trusted.updateTimestamp(repo.files.timestamp as Uint8Array);
    const err = catchUptaneError(() => trusted.updateSnapshot(repo.files.snapshot as Uint8Array));
    expectError(err, RollbackError, 'ROLLBACK');
    expect(err.message).toContain('supplier.json');
  });

  it('S-7: an expired snapshot is a freeze, also when the stored one is kept (FV-4/FV-8)', async () => {
    const repo = await TestRepo.create({ dialect });
    repo.expires.snapshot = EARLIER;
    await repo.publish();
    const trusted = repo.trusted();
    trusted.updateTimestamp(repo.files.timestamp as Uint8Array);
    expectError(
      catchUptaneError(() => trusted.updateSnapshot(repo.files.snapshot as Uint8Array)),
      FreezeError,
      'FREEZE',
    );
    const kept = repo.trusted(repo.current());
    kept.updateTimestamp(repo.files.timestamp as Uint8Array);
    expect(kept.snapshotIsCurrent()).toBe(true);
    expectError(
      catchUptaneError(() => kept.keepTrustedSnapshot()),
      FreezeError,
      'FREEZE',
    );
  });

  it('FV-4/FV-8: a stored snapshot matching the new timestamp is kept without a download', async () => {
    const repo = await imageRepo(dialect);
    const trusted = await refresh(repo, repo.current());
    expect(repo.requests).toEqual(['root 2', 'timestamp']);
    expect(trusted.snapshot?.signed.version).toBe(1);
    // A timestamp that moved on: the stored snapshot is no longer current, and cannot be kept.
    await repo.publish();
    const t2 = repo.trusted(repo.provisioned());
    t2.updateTimestamp(repo.files.timestamp as Uint8Array);
    expect(t2.snapshotIsCurrent()).toBe(false);
    expectError(
      catchUptaneError(() => t2.keepTrustedSnapshot()),
      OrderError,
      'BAD_ORDER',
    );
  });

  it('the snapshot needs a checked timestamp first, and cannot change after the targets (order)', async () => {
    const repo = await imageRepo(dialect);
    const trusted = repo.trusted();
    expectError(
      catchUptaneError(() => trusted.updateSnapshot(repo.files.snapshot as Uint8Array)),
      OrderError,
      'BAD_ORDER',
    );
    expectError(
      catchUptaneError(() => trusted.snapshotRequest()),
      OrderError,
      'BAD_ORDER',
    );
    trusted.updateTimestamp(repo.files.timestamp as Uint8Array);
    trusted.updateSnapshot(repo.files.snapshot as Uint8Array);
    trusted.updateTargets(repo.files.targets as Uint8Array);
    expectError(
      catchUptaneError(() => trusted.updateSnapshot(repo.files.snapshot as Uint8Array)),
      OrderError,
      'BAD_ORDER',
    );
    expectError(
      catchUptaneError(() => trusted.updateTimestamp(repo.files.timestamp as Uint8Array)),
      OrderError,
      'BAD_ORDER',
    );
  });
});

describe.each(dialects)('Procedure G: Targets (%s)', (dialect) => {
  async function atTargets(repo: TestRepo, stored = repo.provisioned(), options: Partial<ConstructorParameters<typeof TrustedRepository>[1]> = {}) {
    const trusted = repo.trusted(stored, options);
    trusted.updateTimestamp(repo.files.timestamp as Uint8Array);
    if (trusted.snapshotIsCurrent()) trusted.keepTrustedSnapshot();
    else trusted.updateSnapshot(repo.files.snapshot as Uint8Array);
    return trusted;
  }

  it('G-1: at most the snapshot length, or Z bytes without one (Director limit below the Image one)', async () => {
    const repo = await imageRepo(dialect);
    const trusted = await atTargets(repo);
    expect(trusted.targetsRequest()).toEqual({ version: 1, maxBytes: (repo.files.targets as Uint8Array).byteLength });
    expectError(
      catchUptaneError(() => trusted.updateTargets(Buffer.concat([repo.files.targets as Uint8Array, Buffer.from('\n')]))),
      EndlessDataError,
      'ENDLESS_DATA',
    );
    await repo.publish({ snapshotLengthAndHashes: false });
    const image = await atTargets(repo, repo.provisioned(), { limits: { imageTargetsBytes: 100 } });
    expect(image.targetsRequest().maxBytes).toBe(100);
    expectError(
      catchUptaneError(() => image.updateTargets(repo.files.targets as Uint8Array)),
      EndlessDataError,
      'ENDLESS_DATA',
    );
    const director = await TestRepo.create({ dialect, director: true });
    director.targetsCustom = { vehicleId: 'vin' };
    await director.publish({ snapshotLengthAndHashes: false });
    const d = await atTargets(director);
    expect(d.targetsRequest().maxBytes).toBe(64 * 1024);
    expect(d.updateTargets(director.files.targets as Uint8Array).signed.version).toBe(1);
  });

  it('G-1: bytes that do not match the snapshot hashes are mix-and-match', async () => {
    const repo = await imageRepo(dialect);
    const old = repo.files.targets as Uint8Array;
    repo.addTarget(imageTarget('app_2.0', 'two', ['hw-a']));
    await repo.publish();
    const trusted = await atTargets(repo);
    expectError(
      catchUptaneError(() => trusted.updateTargets(old)),
      MixAndMatchError,
      'MIX_AND_MATCH',
    );
  });

  it('G-2: the version must equal the snapshot entry (mix-and-match)', async () => {
    const repo = await imageRepo(dialect);
    const v1 = repo.files.targets as Uint8Array;
    await repo.publish({ snapshotLengthAndHashes: false }); // snapshot lists targets 2 without hashes
    const trusted = await atTargets(repo);
    expectError(
      catchUptaneError(() => trusted.updateTargets(v1)),
      MixAndMatchError,
      'MIX_AND_MATCH',
    );
    expect(trusted.updateTargets(repo.files.targets as Uint8Array).signed.version).toBe(2);
  });

  it('G-3: top-level targets need a threshold of the root targets keys (arbitrary software)', async () => {
    const repo = await imageRepo(dialect);
    const forged = await signBytes(repo.targetsPayload(), dialect, [edSigner('intruder', dialect)]);
    repo.files.targets = forged;
    await repo.publishSnapshot();
    const trusted = await atTargets(repo);
    expectError(
      catchUptaneError(() => trusted.updateTargets(forged)),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
  });

  it('G-3: delegated targets need a threshold of the keys their delegator lists', async () => {
    const repo = await imageRepo(dialect);
    const supplier = edSigner('supplier', dialect);
    const other = edSigner('other', dialect);
    repo.delegations = delegations([delegation('supplier', [supplier], dialect)], [supplier], dialect);
    repo.setDelegated('supplier', { targets: [imageTarget('s.bin', 's', ['hw-a'])], signers: [other] });
    await repo.publish();
    const trusted = await atTargets(repo);
    trusted.updateTargets(repo.files.targets as Uint8Array);
    const bytes = repo.files.delegated.get('supplier') as Uint8Array;
    expectError(
      catchUptaneError(() => trusted.updateDelegatedTargets(bytes, 'supplier', 'targets')),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
    // A role the delegator does not delegate to.
    expectError(
      catchUptaneError(() => trusted.updateDelegatedTargets(bytes, 'supplier', 'supplier')),
      OrderError,
      'BAD_ORDER',
    );
    repo.setDelegated('supplier', { targets: [imageTarget('s.bin', 's', ['hw-a'])], signers: [supplier] });
    await repo.publish();
    const ok = await atTargets(repo);
    ok.updateTargets(repo.files.targets as Uint8Array);
    expect(ok.updateDelegatedTargets(repo.files.delegated.get('supplier') as Uint8Array, 'supplier', 'targets').signed.targets.size).toBe(1);
    // A delegated file must come after its delegator (order), and must be delegated by it.
    const early = await atTargets(repo);
    expectError(
      catchUptaneError(() => early.updateDelegatedTargets(repo.files.delegated.get('supplier') as Uint8Array, 'supplier', 'targets')),
      OrderError,
      'BAD_ORDER',
    );
    repo.setDelegated('stranger', { signers: [supplier] });
    await repo.publish();
    const s = await atTargets(repo);
    s.updateTargets(repo.files.targets as Uint8Array);
    expectError(
      catchUptaneError(() => s.updateDelegatedTargets(repo.files.delegated.get('stranger') as Uint8Array, 'stranger', 'targets')),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
  });

  it('G-4: a targets file older than the trusted one is a rollback', async () => {
    const repo = await imageRepo(dialect);
    await repo.publish();
    await repo.publish(); // targets 3
    const stored = repo.current();
    repo.versions.targets = 1;
    await repo.publish(); // targets 2
    // Without the stored snapshot (so S-5 does not fire first), G-4 compares with the stored targets.
    const trusted = await atTargets(repo, { root: stored.root, targets: stored.targets });
    expectError(
      catchUptaneError(() => trusted.updateTargets(repo.files.targets as Uint8Array)),
      RollbackError,
      'ROLLBACK',
    );
  });

  it('G-5: expired targets are a freeze (top-level and delegated)', async () => {
    const repo = await TestRepo.create({ dialect });
    repo.expires.targets = EARLIER;
    await repo.publish();
    const trusted = await atTargets(repo);
    expectError(
      catchUptaneError(() => trusted.updateTargets(repo.files.targets as Uint8Array)),
      FreezeError,
      'FREEZE',
    );
    const r2 = await imageRepo(dialect);
    const supplier = edSigner('supplier', dialect);
    r2.delegations = delegations([delegation('supplier', [supplier], dialect)], [supplier], dialect);
    r2.setDelegated('supplier', { signers: [supplier], expires: EARLIER });
    await r2.publish();
    const t2 = await atTargets(r2);
    t2.updateTargets(r2.files.targets as Uint8Array);
    expectError(
      catchUptaneError(() => t2.updateDelegatedTargets(r2.files.delegated.get('supplier') as Uint8Array, 'supplier', 'targets')),
      FreezeError,
      'FREEZE',
    );
    // Stored targets kept for the cycle are still checked for expiry.
    const r3 = await TestRepo.create({ dialect });
    r3.expires.targets = EARLIER;
    await r3.publish();
    const t3 = await atTargets(r3, r3.current());
    expect(t3.targetsIsCurrent()).toBe(true);
    expectError(
      catchUptaneError(() => t3.keepTrustedTargets()),
      FreezeError,
      'FREEZE',
    );
  });

  it('G-6: Director targets may not delegate', async () => {
    const director = await TestRepo.create({ dialect, director: true });
    const k = edSigner('d', dialect);
    director.delegations = delegations([delegation('x', [k], dialect)], [k], dialect);
    await director.publish();
    const trusted = await atTargets(director);
    expectError(
      catchUptaneError(() => trusted.updateTargets(director.files.targets as Uint8Array)),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
    expectError(
      catchUptaneError(() => trusted.updateDelegatedTargets(director.files.targets as Uint8Array, 'x', 'targets')),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
  });

  it('keeps the stored targets when they are current, and reports what to persist', async () => {
    const repo = await imageRepo(dialect);
    const first = await refresh(repo);
    const state = first.state();
    expect(state.timestamp && state.snapshot && state.targets).toBeTruthy();
    repo.requests.length = 0;
    const second = await refresh(repo, state);
    expect(repo.requests).toEqual(['root 2', 'timestamp']);
    expect(second.targets?.signed.targets.has('app_1.0')).toBe(true);
    expect(second.checkedTargets('targets')).toBe(second.targets);
  });
});

describe('Director checks (G-6, G-7, G-8, vehicle id)', () => {
  const ecus = new Map([
    ['ecu-primary', 'hw-p'],
    ['ecu-2', 'hw-s'],
  ]);
  const targetsWith = (list: ReturnType<typeof directorTarget>[], custom?: Record<string, string>) =>
    new Targets({ version: 1, expires: LATER, targets: new Map(list.map((t) => [t.name, t])), custom });

  it('passes a well-formed Director targets file', () => {
    const t = targetsWith([directorTarget('a', 'a', { 'ecu-primary': 'hw-p' }), directorTarget('b', 'b', { 'ecu-2': 'hw-s' })], { vehicleId: 'vin-1' });
    expect(() => checkDirectorTargets(t, { ecus, vehicleId: 'vin-1' })).not.toThrow();
  });

  it('G-6: refuses delegations', async () => {
    const k = edSigner('d', 'uptane');
    const t = targetsWith([directorTarget('a', 'a', { 'ecu-primary': 'hw-p' })]).with({
      delegations: delegations([delegation('x', [k], 'uptane')], [k], 'uptane'),
    });
    expectError(
      catchUptaneError(() => checkDirectorTargets(t, { ecus })),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
  });

  it('G-7: refuses an ECU identifier that appears twice, also when equal only after NFC', () => {
    const twice = targetsWith([directorTarget('a', 'a', { 'ecu-primary': 'hw-p' }), directorTarget('b', 'b', { 'ecu-primary': 'hw-p' })]);
    expectError(
      catchUptaneError(() => checkDirectorTargets(twice, {})),
      BadEcuIdError,
      'BAD_ECU_ID',
    );
    const nfc = targetsWith([directorTarget('a', 'a', { 'caf\u00e9': 'hw' }), directorTarget('b', 'b', { 'cafe\u0301': 'hw' })]);
    expectError(
      catchUptaneError(() => checkDirectorTargets(nfc, {})),
      BadEcuIdError,
      'BAD_ECU_ID',
    );
  });

  it('G-8: every ECU must be in the vehicle, with the hardware id it registered (compared in NFC)', () => {
    const stranger = targetsWith([directorTarget('a', 'a', { 'ecu-9': 'hw-p' })]);
    expectError(
      catchUptaneError(() => checkDirectorTargets(stranger, { ecus })),
      BadEcuIdError,
      'BAD_ECU_ID',
    );
    // A Secondary (no ECU map) does not run G-8.
    expect(() => checkDirectorTargets(stranger, { requireVehicleIdWhenEmpty: false })).not.toThrow();
    const wrongHw = targetsWith([directorTarget('a', 'a', { 'ecu-2': 'hw-p' })]);
    expectError(
      catchUptaneError(() => checkDirectorTargets(wrongHw, { ecus })),
      BadHardwareIdError,
      'BAD_HARDWARE_ID',
    );
    const nfcEcus = new Map([['e\u0301cu', 'hw-\u00e9']]);
    expect(() => checkDirectorTargets(targetsWith([directorTarget('a', 'a', { '\u00e9cu': 'hw-e\u0301' })]), { ecus: nfcEcus })).not.toThrow();
  });

  it('refuses a Director target that names no ECU', () => {
    const none = targetsWith([directorTarget('a', 'a', {})]);
    const err = catchUptaneError(() => checkDirectorTargets(none, { ecus }));
    expectError(err, FormatError, 'MALFORMED_METADATA');
    expect(err.path).toBe('signed.targets["a"].custom.ecuIdentifiers');
  });

  it('refuses target names unsafe on the ECU: empty, "." or ".." segments, a leading "/", control characters (A17)', () => {
    for (const name of ['../x.bin', 'a/../../x.bin', '/etc/x.bin', 'a//b.bin', 'a/./b.bin', '..\\x.bin', 'a\u0000.bin', 'a\n.bin', 'a/']) {
      const err = catchUptaneError(() => checkDirectorTargets(targetsWith([directorTarget(name, 'a', { 'ecu-primary': 'hw-p' })]), { ecus }));
      expectError(err, FormatError, 'MALFORMED_METADATA');
      expect(err.path).toBe(`signed.targets[${JSON.stringify(name)}]`);
    }
    for (const name of ['dir/a b+c!*(x).bin', 'fw-1.0_rc~2.bin', 'caf\u00e9.bin', '..a.bin', 'a..b/c']) {
      expect(() => checkDirectorTargets(targetsWith([directorTarget(name, 'a', { 'ecu-primary': 'hw-p' })]), { ecus })).not.toThrow();
    }
  });

  it('vehicle id: empty Director targets must name this vehicle (Director replay)', () => {
    expectError(
      catchUptaneError(() => checkDirectorTargets(targetsWith([]), { ecus, vehicleId: 'vin-1' })),
      DirectorReplayError,
      'DIRECTOR_REPLAY',
    );
    expectError(
      catchUptaneError(() => checkDirectorTargets(targetsWith([], { vehicleId: 'vin-2' }), { ecus, vehicleId: 'vin-1' })),
      DirectorReplayError,
      'DIRECTOR_REPLAY',
    );
    expect(() => checkDirectorTargets(targetsWith([], { vehicleId: 'vin-1' }), { ecus, vehicleId: 'vin-1' })).not.toThrow();
    expect(() => checkDirectorTargets(targetsWith([], { vehicleId: 'cafe\u0301' }), { vehicleId: 'caf\u00e9' })).not.toThrow();
    // A non-empty file for another vehicle is a replay too.
    expectError(
      catchUptaneError(() =>
        checkDirectorTargets(targetsWith([directorTarget('a', 'a', { 'ecu-primary': 'hw-p' })], { vehicleId: 'vin-2' }), { ecus, vehicleId: 'vin-1' }),
      ),
      DirectorReplayError,
      'DIRECTOR_REPLAY',
    );
    // OTA CE compatibility: the check can be relaxed.
    expect(() => checkDirectorTargets(targetsWith([]), { ecus, requireVehicleIdWhenEmpty: false })).not.toThrow();
  });
});

describe('inputs', () => {
  it('refuses an invalid current time and limits that would switch a check off (fail closed)', async () => {
    const repo = await imageRepo('uptane');
    expect(catchUptaneError(() => repo.trusted(repo.provisioned(), { now: new Date('not a date') })).code).toBe('BAD_ARGUMENT');
    for (const bad of [Number.NaN, -1, 1.5, '100' as unknown as number]) {
      expect(catchUptaneError(() => repo.trusted(repo.provisioned(), { limits: { timestampBytes: bad } })).code).toBe('BAD_ARGUMENT');
    }
    // An override left undefined keeps the default.
    expect(repo.trusted(repo.provisioned(), { limits: { timestampBytes: undefined } as never }).limits.timestampBytes).toBe(64 * 1024);
    // Metadata checked against an invalid time counts as expired.
    expect(parseTargets(repo.files.targets as Uint8Array, 'uptane').signed.isExpired(new Date(Number.NaN))).toBe(true);
  });
});

describe('stored files', () => {
  it('drops stored files that no longer parse or verify instead of failing', async () => {
    const repo = await imageRepo('uptane');
    const good = repo.current();
    const trusted = repo.trusted({
      root: good.root,
      timestamp: Buffer.from('garbage'),
      snapshot: tamper(good.snapshot as Uint8Array, (d) => (d.signed['version'] = 99)),
      targets: good.targets,
      delegated: new Map([['x', Buffer.from('{')]]),
    });
    expect(trusted.timestamp).toBeUndefined();
    expect(trusted.snapshot).toBeUndefined();
    expect(trusted.targets).toBeDefined();
    expect(trusted.state().delegated?.size).toBe(0);
  });

  it('a parsed stored root that is not the trust anchor of this dialect fails to load', async () => {
    const repo = await imageRepo('tuf');
    expect(() => new TrustedRepository({ root: repo.roots[0] as Uint8Array }, { dialect: 'uptane', repository: 'image', now: NOW })).toThrow(FormatError);
    expect(parseRoot(repo.roots[0] as Uint8Array, 'tuf').signed).toBeInstanceOf(Root);
    expect(parseTargets(repo.files.targets as Uint8Array, 'tuf').signed.version).toBe(1);
  });
});
