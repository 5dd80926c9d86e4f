/**
 * Uptane full verification (FV-1…FV-10 of uptane-standard.md §4) and partial
 * verification (§5), against a real Director and Image repository kept in
 * memory, plus the per-image checks an ECU runs. Each step has a passing case
 * and a failing case asserting the typed error and its code.
 */
import { describe, expect, it } from 'vitest';
import {
  ImageMismatchError,
  checkOwnTarget,
  crossCheckTargets,
  findEcuTarget,
  fullVerification,
  isInstalled,
  noSuchImage,
  partialVerification,
  verifyImage,
  type FullVerificationInput,
  type InstalledImage,
} from './uptane.js';
import {
  BadEcuIdError,
  BadHardwareIdError,
  DirectorReplayError,
  EndlessDataError,
  FreezeError,
  RollbackError,
  SignatureError,
  TargetMismatchError,
  TargetNotFoundError,
  UnsupportedAlgorithmError,
  type UptaneError,
} from '../errors.js';
import type { Dialect } from '../crypto/keys.js';
import { computeHashes } from '../crypto/hash.js';
import { Targets, type TargetFile } from '../metadata/targets.js';
import { EARLIER, LATER, NOW, TestRepo, delegation, delegations, directorTarget, edSigner, fileInfo, imageTarget, signBytes } from '../testing/builders.js';
import { catchUptaneError, rejectsUptaneError } from '../testing/errors.js';

const dialects = ['uptane', 'tuf'] as const;

function expectError(err: UptaneError, cls: abstract new (...args: never[]) => UptaneError, code: string): void {
  expect(err).toBeInstanceOf(cls);
  expect(err.code).toBe(code);
}

const PRIMARY = 'ecu-primary';
const SECONDARY = 'ecu-secondary';
const ECUS = new Map([
  [PRIMARY, 'hw-p'],
  [SECONDARY, 'hw-s'],
]);
const VIN = 'vin-0001';

/** A vehicle: Director and Image repositories, and what the ECUs run. */
class Vehicle {
  installed = new Map<string, InstalledImage>();
  private constructor(
    readonly dialect: Dialect,
    readonly director: TestRepo,
    readonly image: TestRepo,
  ) {}

  static async create(dialect: Dialect): Promise<Vehicle> {
    const director = await TestRepo.create({ dialect, director: true });
    const image = await TestRepo.create({ dialect });
    director.targetsCustom = { vehicleId: VIN, correlationId: 'urn:here-ota:mtu:1' };
    image.addTarget(imageTarget('primary_2.0', 'primary two', ['hw-p'], { releaseCounter: 2 }));
    image.addTarget(imageTarget('secondary_2.0', 'secondary two', ['hw-s']));
    await image.publish();
    return new Vehicle(dialect, director, image);
  }

  /** The Director assigns targets (name → ECU serial) and publishes. */
  async assign(assignments: Array<{ name: string; content: string; ecu: string; hw?: string; extra?: Record<string, number> }>): Promise<void> {
    this.director.targets.clear();
    for (const a of assignments) this.director.addTarget(directorTarget(a.name, a.content, { [a.ecu]: a.hw ?? (ECUS.get(a.ecu) as string) }, a.extra ?? {}));
    await this.director.publish();
  }

  input(overrides: Partial<FullVerificationInput> = {}): FullVerificationInput {
    return {
      director: this.director.trusted(),
      directorSource: this.director.source(),
      image: this.image.trusted(),
      imageSource: this.image.source(),
      vehicle: { ecus: ECUS, vehicleId: VIN },
      installed: this.installed,
      ...overrides,
    };
  }

  imageRequests(): string[] {
    return this.image.requests;
  }
}

const installedOf = (name: string, content: string): InstalledImage => ({ filename: name, ...fileInfo(content) });

describe.each(dialects)('full verification (%s)', (dialect) => {
  it('FV-1…FV-10: verifies both repositories in order and returns the cross-checked updates', async () => {
    const v = await Vehicle.create(dialect);
    await v.assign([
      { name: 'primary_2.0', content: 'primary two', ecu: PRIMARY },
      { name: 'secondary_2.0', content: 'secondary two', ecu: SECONDARY },
    ]);
    const result = await fullVerification(v.input());
    expect(result.imageChecked).toBe(true);
    expect(result.correlationId).toBe('urn:here-ota:mtu:1');
    expect(result.updates.map((u) => [u.ecuSerial, u.name, u.imageRole])).toEqual([
      [PRIMARY, 'primary_2.0', 'targets'],
      [SECONDARY, 'secondary_2.0', 'targets'],
    ]);
    // FV-2…FV-5 (Director) happen before FV-6…FV-9 (Image), each in the order R, T, S, G.
    expect(v.director.requests).toEqual(['root 2', 'timestamp', 'snapshot 1', 'targets targets 1']);
    expect(v.image.requests).toEqual(['root 2', 'timestamp', 'snapshot 1', 'targets targets 1']);
  });

  it('FV-4: a stored Director snapshot that matches the new timestamp means no new Director metadata is downloaded', async () => {
    const v = await Vehicle.create(dialect);
    await v.assign([{ name: 'primary_2.0', content: 'primary two', ecu: PRIMARY }]);
    v.installed.set(PRIMARY, installedOf('primary_2.0', 'primary two'));
    const result = await fullVerification(v.input({ director: v.director.trusted(v.director.current()) }));
    expect(v.director.requests).toEqual(['root 2', 'timestamp']);
    expect(result.updates).toEqual([]);
  });

  it('FV-6: stops when nothing is new (the Image repository is not consulted), unless asked to check it anyway', async () => {
    const v = await Vehicle.create(dialect);
    await v.assign([{ name: 'primary_2.0', content: 'primary two', ecu: PRIMARY }]);
    v.installed.set(PRIMARY, installedOf('primary_2.0', 'primary two'));
    const quiet = await fullVerification(v.input());
    expect(quiet.imageChecked).toBe(false);
    expect(quiet.updates).toEqual([]);
    expect(quiet.targets[0]?.isNew).toBe(false);
    expect(v.imageRequests()).toEqual([]);
    const checked = await fullVerification(v.input({ alwaysCheckImageRepository: true }));
    expect(checked.imageChecked).toBe(true);
    expect(checked.targets[0]?.imageTarget?.name).toBe('primary_2.0');
  });

  it('FV-8: a stored Image snapshot that matches the new timestamp is kept', async () => {
    const v = await Vehicle.create(dialect);
    await v.assign([{ name: 'primary_2.0', content: 'primary two', ecu: PRIMARY }]);
    await fullVerification(v.input({ image: v.image.trusted(v.image.current()) }));
    expect(v.image.requests).toEqual(['root 2', 'timestamp']);
  });

  it('FV-2…FV-5 failures abort before the Image repository: an expired Director timestamp is a freeze', async () => {
    const v = await Vehicle.create(dialect);
    v.director.expires.timestamp = EARLIER;
    await v.assign([{ name: 'primary_2.0', content: 'primary two', ecu: PRIMARY }]);
    const err = await rejectsUptaneError(fullVerification(v.input()));
    expectError(err, FreezeError, 'FREEZE');
    expect(err.repository).toBe('director');
    expect(v.imageRequests()).toEqual([]);
  });

  it('FV-6…FV-9 failures are reported against the Image repository', async () => {
    const v = await Vehicle.create(dialect);
    v.image.expires.snapshot = EARLIER;
    await v.image.publish();
    await v.assign([{ name: 'primary_2.0', content: 'primary two', ecu: PRIMARY }]);
    const err = await rejectsUptaneError(fullVerification(v.input()));
    expectError(err, FreezeError, 'FREEZE');
    expect(err.repository).toBe('image');
    expect(err.role).toBe('snapshot');
  });

  it('G-8 and the vehicle id run inside full verification', async () => {
    const v = await Vehicle.create(dialect);
    await v.assign([{ name: 'primary_2.0', content: 'primary two', ecu: 'ecu-stranger', hw: 'hw-p' }]);
    expectError(await rejectsUptaneError(fullVerification(v.input())), BadEcuIdError, 'BAD_ECU_ID');
    v.director.targetsCustom = { vehicleId: 'another-vin' };
    await v.assign([]);
    expectError(await rejectsUptaneError(fullVerification(v.input())), DirectorReplayError, 'DIRECTOR_REPLAY');
    v.director.targetsCustom = { vehicleId: VIN };
    await v.assign([]);
    const empty = await fullVerification(v.input());
    expect(empty.targets).toEqual([]);
    expect(empty.imageChecked).toBe(false);
  });

  it('FV-10 (Primary): cross-checks every Director image, not only its own', async () => {
    const v = await Vehicle.create(dialect);
    await v.assign([
      { name: 'primary_2.0', content: 'primary two', ecu: PRIMARY },
      { name: 'secondary_2.0', content: 'secondary tampered', ecu: SECONDARY },
    ]);
    expectError(await rejectsUptaneError(fullVerification(v.input())), TargetMismatchError, 'TARGET_MISMATCH');
  });

  it('FV-10 (Secondary): may limit the cross-check to its own ECU; no entry for it means nothing to do', async () => {
    const v = await Vehicle.create(dialect);
    await v.assign([
      { name: 'primary_2.0', content: 'primary two', ecu: PRIMARY },
      { name: 'secondary_2.0', content: 'secondary tampered', ecu: SECONDARY },
    ]);
    const mine = await fullVerification(v.input({ onlyEcu: { serial: PRIMARY, hardwareId: 'hw-p' }, vehicle: { vehicleId: VIN } }));
    expect(mine.updates.map((u) => u.ecuSerial)).toEqual([PRIMARY]);
    await v.assign([{ name: 'primary_2.0', content: 'primary two', ecu: PRIMARY }]);
    const none = await fullVerification(v.input({ onlyEcu: { serial: SECONDARY, hardwareId: 'hw-s' }, vehicle: { vehicleId: VIN } }));
    expect(none.targets).toEqual([]);
    expect(none.imageChecked).toBe(false);
    const wrongHw = await rejectsUptaneError(fullVerification(v.input({ onlyEcu: { serial: PRIMARY, hardwareId: 'hw-s' }, vehicle: { vehicleId: VIN } })));
    expectError(wrongHw, BadHardwareIdError, 'BAD_HARDWARE_ID');
  });

  it('FV-10.1: an image the Image repository does not list is not found; one behind a delegation is found', async () => {
    const v = await Vehicle.create(dialect);
    await v.assign([{ name: 'rogue.bin', content: 'rogue', ecu: PRIMARY }]);
    expectError(await rejectsUptaneError(fullVerification(v.input())), TargetNotFoundError, 'TARGET_NOT_FOUND');

    const supplier = edSigner('supplier', dialect);
    v.image.delegations = delegations([delegation('supplier', [supplier], dialect, { paths: ['supplier/*'] })], [supplier], dialect);
    v.image.setDelegated('supplier', { targets: [imageTarget('supplier/fw.bin', 'supplier fw', ['hw-s'])], signers: [supplier] });
    await v.image.publish();
    await v.assign([{ name: 'supplier/fw.bin', content: 'supplier fw', ecu: SECONDARY }]);
    const result = await fullVerification(v.input());
    expect(result.updates[0]?.imageRole).toBe('supplier');
    expect(v.image.requests).toContain('targets supplier 1');
  });

  it('FV-10.2.2 and 10.2.3: release counters must match and may not go down', async () => {
    const v = await Vehicle.create(dialect);
    await v.assign([{ name: 'primary_2.0', content: 'primary two', ecu: PRIMARY, extra: { releaseCounter: 2 } }]);
    expect((await fullVerification(v.input({ previousReleaseCounters: new Map([[PRIMARY, 2]]) }))).updates).toHaveLength(1);
    expectError(await rejectsUptaneError(fullVerification(v.input({ previousReleaseCounters: new Map([[PRIMARY, 3]]) }))), RollbackError, 'ROLLBACK');
    await v.assign([{ name: 'primary_2.0', content: 'primary two', ecu: PRIMARY, extra: { releaseCounter: 5 } }]);
    expectError(await rejectsUptaneError(fullVerification(v.input())), TargetMismatchError, 'TARGET_MISMATCH');
  });
});

describe('FV-10.2: crossCheckTargets', () => {
  const image = imageTarget('fw', 'firmware', ['hw-a', 'hw-b'], { releaseCounter: 3 });
  const input = { ecuSerial: 'e1', hardwareId: 'hw-a' };

  it('passes when length, hashes and the "SHALL match" fields agree', () => {
    expect(() => crossCheckTargets('fw', directorTarget('fw', 'firmware', { e1: 'hw-a' }), image, input)).not.toThrow();
    expect(() =>
      crossCheckTargets('fw', directorTarget('fw', 'firmware', { e1: 'hw-a' }, { releaseCounter: 3 }), image, { ...input, previousReleaseCounter: 3 }),
    ).not.toThrow();
    // Hashes compare case-insensitively, over the algorithms both list.
    const upper = directorTarget('fw', 'firmware', { e1: 'hw-a' });
    const both = upper.with({ hashes: { sha256: (upper.hashes['sha256'] as string).toUpperCase(), sha512: computeHashes(Buffer.from('firmware'))['sha512'] } });
    expect(() => crossCheckTargets('fw', both, image, input)).not.toThrow();
  });

  it('10.2.1: length, each common hash, and at least one common hash', () => {
    const d = directorTarget('fw', 'firmware', { e1: 'hw-a' });
    expectError(
      catchUptaneError(() => crossCheckTargets('fw', d.with({ length: d.length + 1 }), image, input)),
      TargetMismatchError,
      'TARGET_MISMATCH',
    );
    expectError(
      catchUptaneError(() => crossCheckTargets('fw', d.with({ hashes: { sha256: 'ab'.repeat(32) } }), image, input)),
      TargetMismatchError,
      'TARGET_MISMATCH',
    );
    expectError(
      catchUptaneError(() => crossCheckTargets('fw', d.with({ hashes: { sha512: 'ab'.repeat(64) } }), image, input)),
      TargetMismatchError,
      'TARGET_MISMATCH',
    );
  });

  it('10.2.2: the ECU hardware id must be among the image hardware ids (an image without any fits no ECU)', () => {
    const d = directorTarget('fw', 'firmware', { e1: 'hw-c' });
    expectError(
      catchUptaneError(() => crossCheckTargets('fw', d, image, { ecuSerial: 'e1', hardwareId: 'hw-c' })),
      BadHardwareIdError,
      'BAD_HARDWARE_ID',
    );
    expectError(
      catchUptaneError(() => crossCheckTargets('fw', directorTarget('fw', 'firmware', { e1: 'hw-a' }), imageTarget('fw', 'firmware', undefined), input)),
      BadHardwareIdError,
      'BAD_HARDWARE_ID',
    );
    const nfc = imageTarget('fw', 'firmware', ['caf\u00e9']);
    expect(() => crossCheckTargets('fw', directorTarget('fw', 'firmware', { e1: 'x' }), nfc, { ecuSerial: 'e1', hardwareId: 'cafe\u0301' })).not.toThrow();
  });

  it('10.2.2: a release counter the Director states must equal the Image one', () => {
    const d = directorTarget('fw', 'firmware', { e1: 'hw-a' }, { releaseCounter: 4 });
    expectError(
      catchUptaneError(() => crossCheckTargets('fw', d, image, input)),
      TargetMismatchError,
      'TARGET_MISMATCH',
    );
  });

  it('10.2.3: the release counter may not be lower than the previous one', () => {
    const d = directorTarget('fw', 'firmware', { e1: 'hw-a' });
    expect(() => crossCheckTargets('fw', d, image, { ...input, previousReleaseCounter: 3 })).not.toThrow();
    expectError(
      catchUptaneError(() => crossCheckTargets('fw', d, image, { ...input, previousReleaseCounter: 4 })),
      RollbackError,
      'ROLLBACK',
    );
  });
});

describe.each(dialects)('partial verification (%s)', (dialect) => {
  async function director() {
    const repo = await TestRepo.create({ dialect, director: true });
    repo.addTarget(directorTarget('secondary_2.0', 'secondary two', { [SECONDARY]: 'hw-s' }, { releaseCounter: 4 }));
    await repo.publish();
    return repo;
  }
  const base = (repo: TestRepo) => ({
    dialect,
    now: NOW,
    directorRoot: repo.roots[0] as Uint8Array,
    targets: repo.files.targets as Uint8Array,
    ecuSerial: SECONDARY,
    hardwareId: 'hw-s',
  });

  it('PV-2: checks Director targets with the Director root the ECU holds (no snapshot needed: G-2 skipped) and returns its entry', async () => {
    const repo = await director();
    const r = partialVerification(base(repo));
    expect(r.target?.name).toBe('secondary_2.0');
    expect(r.acceptedRoots).toEqual([]);
    // An empty list without a vehicle id is fine on a Secondary (it does not know the vehicle id).
    repo.targets.clear();
    await repo.publish();
    expect(partialVerification(base(repo)).target).toBeUndefined();
  });

  it('G-3: targets not signed by the Director targets key are refused', async () => {
    const repo = await director();
    const forged = await signBytes(repo.targetsPayload(), dialect, [edSigner('intruder', dialect)]);
    expectError(
      catchUptaneError(() => partialVerification({ ...base(repo), targets: forged })),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
  });

  it('G-4: targets older than the last verified ones are a rollback', async () => {
    const repo = await director();
    const v1 = repo.files.targets as Uint8Array;
    await repo.publish();
    expect(partialVerification({ ...base(repo), trustedTargets: v1 }).targets.signed.version).toBe(2);
    expectError(
      catchUptaneError(() => partialVerification({ ...base(repo), targets: v1, trustedTargets: repo.files.targets })),
      RollbackError,
      'ROLLBACK',
    );
  });

  it('G-5: expired targets are a freeze; R-3 applies to the Director root', async () => {
    const repo = await director();
    repo.expires.targets = EARLIER;
    await repo.publish();
    expectError(
      catchUptaneError(() => partialVerification(base(repo))),
      FreezeError,
      'FREEZE',
    );
    const old = await TestRepo.create({ dialect, director: true });
    old.expires.root = EARLIER;
    const expiredRoot = await signBytes(old.rootPayload(1), dialect, old.keys.root);
    expectError(
      catchUptaneError(() => partialVerification({ ...base(repo), directorRoot: expiredRoot })),
      FreezeError,
      'FREEZE',
    );
  });

  it('G-6 and G-7 apply: no delegations, no ECU twice', async () => {
    const repo = await director();
    repo.addTarget(directorTarget('other', 'other', { [SECONDARY]: 'hw-s' }));
    await repo.publish();
    expectError(
      catchUptaneError(() => partialVerification(base(repo))),
      BadEcuIdError,
      'BAD_ECU_ID',
    );
    repo.targets.delete('other');
    const k = edSigner('x', dialect);
    repo.delegations = delegations([delegation('x', [k], dialect)], [k], dialect);
    await repo.publish();
    expectError(
      catchUptaneError(() => partialVerification(base(repo))),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
  });

  it('refuses Director targets above the byte limit (endless data)', async () => {
    const repo = await director();
    const size = (repo.files.targets as Uint8Array).byteLength;
    expectError(
      catchUptaneError(() => partialVerification({ ...base(repo), limits: { directorTargetsBytes: size - 1 } })),
      EndlessDataError,
      'ENDLESS_DATA',
    );
  });

  it('optional Director root rotation: a new targets key is trusted only through a verified root', async () => {
    const repo = await director();
    const newTargetsKey = edSigner('director-targets-2', dialect);
    await repo.rotateRoot({ keys: { targets: [newTargetsKey] } });
    await repo.publish();
    // Without the new root, the targets signed by the new key do not verify.
    expectError(
      catchUptaneError(() => partialVerification(base(repo))),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
    const r = partialVerification({ ...base(repo), newRoots: [repo.roots[0] as Uint8Array, repo.roots[1] as Uint8Array] });
    expect(r.acceptedRoots).toHaveLength(1);
    expect(Buffer.from(r.root).equals(Buffer.from(repo.roots[1] as Uint8Array))).toBe(true);
    expect(r.target?.name).toBe('secondary_2.0');
    // A new root above the root byte limit is refused before it is parsed (endless data).
    expectError(
      catchUptaneError(() => partialVerification({ ...base(repo), newRoots: [repo.roots[1] as Uint8Array], limits: { rootBytes: 100 } })),
      EndlessDataError,
      'ENDLESS_DATA',
    );
    // A root not signed by the held root's keys is refused.
    const rogue = await TestRepo.create({ dialect, director: true, name: 'rogue' });
    const rogue2 = await rogue.rotateRoot();
    expectError(
      catchUptaneError(() => partialVerification({ ...base(repo), newRoots: [rogue2] })),
      SignatureError,
      'ARBITRARY_SOFTWARE',
    );
  });

  it('§5.4.3.4: the ECU own entry must carry its hardware id and a release counter not below the previous', async () => {
    const repo = await director();
    expectError(
      catchUptaneError(() => partialVerification({ ...base(repo), hardwareId: 'hw-other' })),
      BadHardwareIdError,
      'BAD_HARDWARE_ID',
    );
    expect(partialVerification({ ...base(repo), previousReleaseCounter: 4 }).target?.name).toBe('secondary_2.0');
    expectError(
      catchUptaneError(() => partialVerification({ ...base(repo), previousReleaseCounter: 5 })),
      RollbackError,
      'ROLLBACK',
    );
  });
});

describe('per-ECU checks', () => {
  const t = directorTarget('fw', 'firmware', { 'e\u0301cu': 'hw-a' }, { releaseCounter: 2 });
  const targets = new Targets({ version: 1, expires: LATER, targets: new Map([['fw', t]]) });

  it('finds the entry for an ECU (serials compared in NFC)', () => {
    expect(findEcuTarget(targets, '\u00e9cu')?.name).toBe('fw');
    expect(findEcuTarget(targets, 'ecu')).toBeUndefined();
  });

  it('checkOwnTarget: ECU id, hardware id (Director and Image lists), release counter', () => {
    expect(() => checkOwnTarget('fw', t, '\u00e9cu', 'hw-a', 2)).not.toThrow();
    expectError(
      catchUptaneError(() => checkOwnTarget('fw', t, 'other', 'hw-a')),
      BadEcuIdError,
      'BAD_ECU_ID',
    );
    expectError(
      catchUptaneError(() => checkOwnTarget('fw', t, '\u00e9cu', 'hw-b')),
      BadHardwareIdError,
      'BAD_HARDWARE_ID',
    );
    const withList = t.with({ custom: { ...(t.custom ?? {}), hardwareIds: ['hw-z'] } });
    expectError(
      catchUptaneError(() => checkOwnTarget('fw', withList, '\u00e9cu', 'hw-a')),
      BadHardwareIdError,
      'BAD_HARDWARE_ID',
    );
    expectError(
      catchUptaneError(() => checkOwnTarget('fw', t, '\u00e9cu', 'hw-a', 3)),
      RollbackError,
      'ROLLBACK',
    );
  });

  it('isInstalled: same name (NFC), length and a matching hash', () => {
    const fw = imageTarget('caf\u00e9', 'firmware', ['hw']);
    expect(isInstalled('caf\u00e9', fw, installedOf('cafe\u0301', 'firmware'))).toBe(true);
    expect(isInstalled('caf\u00e9', fw, installedOf('caf\u00e9', 'firmwarE'))).toBe(false);
    expect(isInstalled('caf\u00e9', fw, installedOf('other', 'firmware'))).toBe(false);
    expect(isInstalled('caf\u00e9', fw, { filename: 'caf\u00e9', length: fw.length, hashes: { sha512: 'ab' } })).toBe(false);
    expect(isInstalled('caf\u00e9', fw, undefined)).toBe(false);
  });

  it('verifyImage: exact length and every listed hash (tampered image = arbitrary software)', () => {
    const fw = imageTarget('fw', 'firmware', ['hw']);
    const ok = { length: fw.length, hashes: computeHashes(Buffer.from('firmware')) };
    expect(() => verifyImage('fw', fw, ok)).not.toThrow();
    expectError(
      catchUptaneError(() => verifyImage('fw', fw, { ...ok, length: fw.length + 1 })),
      EndlessDataError,
      'ENDLESS_DATA',
    );
    const short = catchUptaneError(() => verifyImage('fw', fw, { ...ok, length: fw.length - 1 }));
    expectError(short, ImageMismatchError, 'ARBITRARY_SOFTWARE');
    expectError(
      catchUptaneError(() => verifyImage('fw', fw, { ...ok, hashes: computeHashes(Buffer.from('firmwarE')) })),
      ImageMismatchError,
      'ARBITRARY_SOFTWARE',
    );
    const odd: TargetFile = fw.with({ hashes: { ...fw.hashes, blake2b: 'ab' } });
    expectError(
      catchUptaneError(() => verifyImage('fw', odd, ok)),
      UnsupportedAlgorithmError,
      'UNSUPPORTED_ALGORITHM',
    );
  });

  it('noSuchImage names the ECU', () => {
    const err = noSuchImage('e9');
    expectError(err, TargetNotFoundError, 'TARGET_NOT_FOUND');
    expect(err.message).toContain('e9');
  });
});
