/**
 * Uptane full verification (uptane-standard.md §4, the Standard's §5.4.4.2)
 * and partial verification (§5.4.4.1), with the per-ECU image checks of
 * §5.4.3.4. The orchestration is here, in the core, so that the Primary, a
 * full-verification Secondary and the test harness all run the very same
 * steps; I/O is injected as a RepositorySource.
 */
import {
  BadHardwareIdError,
  EndlessDataError,
  FreezeError,
  RollbackError,
  TargetMismatchError,
  TargetNotFoundError,
  UnsupportedAlgorithmError,
  BadEcuIdError,
  SignatureError,
} from '../errors.js';
import { hexEquals } from '../encoding.js';
import { parseJson } from '../json.js';
import type { Dialect } from '../crypto/keys.js';
import { isSupportedHash } from '../crypto/hash.js';
import type { Metadata } from '../metadata/base.js';
import { parseTargets, type TargetFile, type Targets } from '../metadata/targets.js';
import { checkDirectorTargets, TrustedRepository, type DirectorTargetsCheck } from './trusted.js';
import { resolveDelegations } from './delegations.js';
import { limitsWith, type Limits } from './limits.js';

/** Where a repository's metadata comes from (HTTP on a Primary, the Primary on a Secondary). */
export interface RepositorySource {
  /** `N.root.json`, or undefined when it does not exist (which ends the rotation walk, R-2.2). */
  root(version: number, maxBytes: number): Promise<Uint8Array | undefined>;
  timestamp(maxBytes: number): Promise<Uint8Array>;
  /** `version` lets consistent-snapshot repositories serve `VERSION.snapshot.json`. */
  snapshot(version: number, maxBytes: number): Promise<Uint8Array>;
  /** `targets.json` or a delegated role's file. */
  targets(role: string, version: number, maxBytes: number): Promise<Uint8Array>;
}

export interface RefreshHooks {
  /** Called with each accepted root, so it can be persisted at once. */
  readonly onRoot?: (bytes: Uint8Array, version: number) => Promise<void> | void;
  /** Called when R-4 discarded stored timestamp/snapshot, so the caller can persist that too. */
  readonly onDiscard?: () => Promise<void> | void;
}

/** Procedure R's loop: download N+1 until there is none, checking each, then. */
export async function updateRootChain(repo: TrustedRepository, source: RepositorySource, hooks: RefreshHooks = {}): Promise<number> {
  let count = 0;
  for (;;) {
    const next = repo.rootVersion + 1;
    const bytes = await source.root(next, repo.limits.rootBytes);
    if (bytes === undefined) break;
    const md = repo.updateRoot(bytes);
    count++;
    await hooks.onRoot?.(bytes, md.signed.version);
  }
  if (repo.finishRoot()) await hooks.onDiscard?.();
  return count;
}

/**
 * Root, Timestamp, Snapshot and top-level Targets of one repository, in the
 * order of FV-2…FV-5 (Director) and FV-6…FV-9 (Image). A stored snapshot or
 * targets file that is still current is kept rather than downloaded again.
 */
export async function refreshRepository(repo: TrustedRepository, source: RepositorySource, hooks: RefreshHooks = {}): Promise<Metadata<Targets>> {
  await updateRootChain(repo, source, hooks);
  repo.updateTimestamp(await source.timestamp(repo.limits.timestampBytes));
  if (repo.snapshotIsCurrent()) {
    repo.keepTrustedSnapshot();
  } else {
    const req = repo.snapshotRequest();
    repo.updateSnapshot(await source.snapshot(req.version, req.maxBytes));
  }
  if (repo.targetsIsCurrent()) return repo.keepTrustedTargets();
  const req = repo.targetsRequest();
  return repo.updateTargets(await source.targets('targets', req.version, req.maxBytes));
}

/** Loads delegated roles for resolveDelegations through a repository and a source. */
export function delegatedLoader(repo: TrustedRepository, source: RepositorySource) {
  // Several roles may delegate to one role name with different keys: a file checked
  // against one delegator proves nothing about another, so the cache is per (delegator, role).
  const checkedPairs = new Set<string>();
  return async (role: string, delegator: string): Promise<Metadata<Targets>> => {
    const pair = JSON.stringify([delegator, role]);
    const already = repo.checkedTargets(role);
    if (already && checkedPairs.has(pair)) return already;
    let md: Metadata<Targets>;
    if (repo.targetsIsCurrent(role)) md = repo.keepTrustedDelegated(role, delegator);
    else {
      const req = repo.targetsRequest(role);
      md = repo.updateDelegatedTargets(await source.targets(role, req.version, req.maxBytes), role, delegator);
    }
    checkedPairs.add(pair);
    return md;
  };
}

/** What an ECU reports as installed: the non-custom metadata of its image. */
export interface InstalledImage {
  readonly filename: string;
  readonly length: number;
  readonly hashes: Readonly<Record<string, string>>;
}

/** Whether a target is the image already installed (same name, length and a matching hash). */
export function isInstalled(name: string, target: TargetFile, installed: InstalledImage | undefined): boolean {
  if (!installed) return false;
  if (installed.filename.normalize('NFC') !== name.normalize('NFC') || installed.length !== target.length) return false;
  let common = 0;
  for (const [alg, h] of Object.entries(target.hashes)) {
    const mine = installed.hashes[alg];
    if (mine === undefined) continue;
    if (!hexEquals(mine, h)) return false;
    common++;
  }
  return common > 0;
}

export interface CrossCheckInput {
  readonly ecuSerial: string;
  /** Hardware id the ECU registered with. */
  readonly hardwareId: string;
  /** Release counter of the image this ECU had been directed to before (10.2.3). */
  readonly previousReleaseCounter?: number | undefined;
}

/**
 * FV-10.2: a Director target and the Image repository's metadata about the
 * same file must agree on length and hashes (10.2.1) and on the "SHALL match"
 * custom fields, hardware id and release counter (10.2.2); the release counter
 * may not go down (10.2.3).
 */
export function crossCheckTargets(name: string, director: TargetFile, image: TargetFile, input: CrossCheckInput): void {
  const ctx = { repository: 'image', role: 'targets' };
  // 10.2.1
  if (director.length !== image.length) {
    throw new TargetMismatchError(`${name}: Director says ${director.length} bytes, Image repository ${image.length}`, ctx);
  }
  let common = 0;
  for (const [alg, h] of Object.entries(director.hashes)) {
    const other = image.hashes[alg];
    if (other === undefined) continue;
    if (!hexEquals(other, h)) throw new TargetMismatchError(`${name}: the ${alg} hashes of the Director and the Image repository differ`, ctx);
    common++;
  }
  if (common === 0) throw new TargetMismatchError(`${name}: the Director and the Image repository list no hash function in common`, ctx);
  // 10.2.2: hardware id. An Image target without hardware ids fits no ECU (as in aktualizr).
  const hw = input.hardwareId.normalize('NFC');
  const imageHw = image.hardwareIds;
  if (!imageHw || !imageHw.some((h) => h.normalize('NFC') === hw)) {
    throw new BadHardwareIdError(`${name} is not built for hardware ${JSON.stringify(input.hardwareId)} (ECU ${input.ecuSerial})`, ctx);
  }
  // 10.2.2: release counter, when the Director states one.
  const dc = director.releaseCounter;
  const ic = image.releaseCounter;
  if (dc !== undefined && dc !== ic) {
    throw new TargetMismatchError(`${name}: Director release counter ${dc} differs from the Image repository's ${String(ic)}`, ctx);
  }
  // 10.2.3
  const counter = ic ?? dc;
  if (counter !== undefined && input.previousReleaseCounter !== undefined && counter < input.previousReleaseCounter) {
    throw new RollbackError(
      `${name} has release counter ${counter}, lower than ${input.previousReleaseCounter} of the previous image of ECU ${input.ecuSerial}`,
      ctx,
    );
  }
}

export interface DirectedTarget {
  readonly name: string;
  readonly ecuSerial: string;
  readonly hardwareId: string;
  /** The Director's entry (what is downloaded and installed). */
  readonly target: TargetFile;
  /** The Image repository's entry that it was cross-checked against (absent when the Image repository was not consulted). */
  readonly imageTarget: TargetFile | undefined;
  readonly imageRole: string | undefined;
  /** False when the ECU already runs this image. */
  readonly isNew: boolean;
}

export interface VehicleInfo extends DirectorTargetsCheck {
  /** Serial → hardware id of every ECU of the vehicle (required on a Primary for G-8). */
  readonly ecus?: ReadonlyMap<string, string>;
}

export interface FullVerificationInput {
  readonly director: TrustedRepository;
  readonly directorSource: RepositorySource;
  readonly image: TrustedRepository;
  readonly imageSource: RepositorySource;
  readonly vehicle: VehicleInfo;
  /** What each ECU runs now, by serial. */
  readonly installed: ReadonlyMap<string, InstalledImage>;
  readonly previousReleaseCounters?: ReadonlyMap<string, number>;
  /** A Secondary may limit the cross-check to its own ECU (FV-10, MAY). */
  readonly onlyEcu?: { readonly serial: string; readonly hardwareId: string };
  /** Also refresh the Image repository when nothing is new (FV-6, MAY; for urgent Image root rotation). */
  readonly alwaysCheckImageRepository?: boolean;
  readonly hooks?: { readonly director?: RefreshHooks; readonly image?: RefreshHooks };
}

export interface FullVerificationResult {
  readonly directorTargets: Metadata<Targets>;
  /** Every Director target for this vehicle (or for `onlyEcu`), cross-checked when the Image repository was consulted. */
  readonly targets: readonly DirectedTarget[];
  /** The subset that is not installed yet. */
  readonly updates: readonly DirectedTarget[];
  readonly imageChecked: boolean;
  readonly correlationId: string | undefined;
}

/**
 * FV-1…FV-10. Throws a typed UptaneError at the first failing check; nothing
 * the repositories accepted after their roots is trusted unless it returns.
 */
export async function fullVerification(input: FullVerificationInput): Promise<FullVerificationResult> {
  // FV-2…FV-5
  const director = await refreshRepository(input.director, input.directorSource, input.hooks?.director);
  // Director-only checks (G-6…G-8, vehicle id). A Secondary passes no ECU map (G-8 is the Primary's).
  checkDirectorTargets(director.signed, input.vehicle);

  const directed: Array<Omit<DirectedTarget, 'imageTarget' | 'imageRole'>> = [];
  for (const [name, t] of director.signed.targets) {
    for (const [serial, info] of t.ecuIdentifiers) {
      if (input.onlyEcu && serial.normalize('NFC') !== input.onlyEcu.serial.normalize('NFC')) continue;
      directed.push({
        name,
        ecuSerial: serial,
        hardwareId: info.hardwareId,
        target: t,
        isNew: !isInstalled(name, t, input.installed.get(serial)),
      });
    }
  }
  if (input.onlyEcu && directed.length === 0) {
    // §5.4.3.3 step 4: no entry for this ECU; nothing to do (not an attack).
    return { directorTargets: director, targets: [], updates: [], imageChecked: false, correlationId: director.signed.correlationId };
  }
  if (input.onlyEcu) {
    for (const d of directed) {
      if (d.hardwareId.normalize('NFC') !== input.onlyEcu.hardwareId.normalize('NFC')) {
        throw new BadHardwareIdError(
          `Director targets give this ECU hardware id ${JSON.stringify(d.hardwareId)}, but it is ${JSON.stringify(input.onlyEcu.hardwareId)}`,
          {
            repository: 'director',
            role: 'targets',
          },
        );
      }
    }
  }

  // FV-6: stop when nothing is new (SHOULD), unless asked to look at the Image repository anyway.
  const anyNew = directed.some((d) => d.isNew);
  if (!anyNew && !input.alwaysCheckImageRepository) {
    return {
      directorTargets: director,
      targets: directed.map((d) => ({ ...d, imageTarget: undefined, imageRole: undefined })),
      updates: [],
      imageChecked: false,
      correlationId: director.signed.correlationId,
    };
  }

  // FV-6…FV-9
  const imageTop = await refreshRepository(input.image, input.imageSource, input.hooks?.image);
  const load = delegatedLoader(input.image, input.imageSource);

  // FV-10: every Director target, resolved through delegations (10.1) and cross-checked (10.2).
  const checked: DirectedTarget[] = [];
  for (const d of directed) {
    const resolved = await resolveDelegations(imageTop, d.name, {
      dialect: input.image.dialect,
      hardwareId: d.hardwareId,
      load,
      limits: input.image.limits,
    });
    crossCheckTargets(d.name, d.target, resolved.target, {
      ecuSerial: d.ecuSerial,
      hardwareId: d.hardwareId,
      previousReleaseCounter: input.previousReleaseCounters?.get(d.ecuSerial),
    });
    checked.push({ ...d, imageTarget: resolved.target, imageRole: resolved.role });
  }
  return {
    directorTargets: director,
    targets: checked,
    updates: checked.filter((c) => c.isNew),
    imageChecked: true,
    correlationId: director.signed.correlationId,
  };
}

// --- Partial verification ------------------------------------------------------------

export interface PartialVerificationInput {
  readonly dialect: Dialect;
  readonly now: Date;
  /** The Director root this ECU trusts. */
  readonly directorRoot: Uint8Array;
  /** Newer Director roots offered by the Primary, in order (optional Director root rotation). */
  readonly newRoots?: readonly Uint8Array[];
  /** The Director targets this ECU verified last (rollback baseline, G-4). */
  readonly trustedTargets?: Uint8Array | undefined;
  readonly targets: Uint8Array;
  readonly ecuSerial: string;
  readonly hardwareId: string;
  readonly previousReleaseCounter?: number | undefined;
  readonly limits?: Partial<Limits>;
}

export interface PartialVerificationResult {
  /** The Director root now trusted (persist it). */
  readonly root: Uint8Array;
  /** Each accepted new root, in order. */
  readonly acceptedRoots: readonly Uint8Array[];
  readonly targets: Metadata<Targets>;
  /** This ECU's entry, or undefined when the Director lists nothing for it. */
  readonly target: { readonly name: string; readonly file: TargetFile } | undefined;
}

/**
 * PV-1…PV-2: Director targets checked with Procedure G against the Director
 * root the ECU holds (G-2 skipped, as the Standard allows), optionally after a
 * Director root rotation; then this ECU's own entry (§5.4.3.4 steps 2-5).
 */
export function partialVerification(input: PartialVerificationInput): PartialVerificationResult {
  const limits = limitsWith(input.limits);
  const repo = new TrustedRepository(
    { root: input.directorRoot },
    { dialect: input.dialect, repository: 'director', now: input.now, limits, isDirector: true },
  );
  const acceptedRoots: Uint8Array[] = [];
  for (const r of input.newRoots ?? []) {
    const parsedVersion = repo.rootVersion;
    // Roots the ECU already has (same or older version) are skipped, not errors.
    if (peekVersion(r, limits.rootBytes) <= parsedVersion) continue;
    repo.updateRoot(r);
    acceptedRoots.push(r);
  }
  repo.finishRoot();
  const root = repo.root.signed;
  const ctx = { repository: 'director', role: 'targets' };
  if (input.targets.byteLength > limits.directorTargetsBytes) {
    throw new EndlessDataError(`Director targets are ${input.targets.byteLength} bytes, more than ${limits.directorTargetsBytes}`, ctx);
  }
  const targets = parseTargets(input.targets, input.dialect);
  // G-3
  targets.verify(root.keys, root.role('targets'), ctx);
  // G-4 against the last verified targets (if they still verify under this root).
  if (input.trustedTargets) {
    let previous: Metadata<Targets> | undefined;
    try {
      previous = parseTargets(input.trustedTargets, input.dialect);
      previous.verify(root.keys, root.role('targets'), ctx);
    } catch {
      previous = undefined;
    }
    if (previous && targets.signed.version < previous.signed.version) {
      throw new RollbackError(`Director targets version ${targets.signed.version} is lower than the trusted ${previous.signed.version}`, ctx);
    }
  }
  // G-5
  if (targets.signed.isExpired(input.now)) throw new FreezeError(`Director targets expired at ${targets.signed.expires}`, ctx);
  // G-6, G-7 (no G-8 on a Secondary; no vehicle-id requirement: the Secondary does not know it).
  checkDirectorTargets(targets.signed, { requireVehicleIdWhenEmpty: false });
  const mine = findEcuTarget(targets.signed, input.ecuSerial);
  if (mine) checkOwnTarget(mine.name, mine.file, input.ecuSerial, input.hardwareId, input.previousReleaseCounter);
  return { root: repo.state().root, acceptedRoots, targets, target: mine };
}

function peekVersion(bytes: Uint8Array, maxBytes: number): number {
  // Too big to parse: updateRoot refuses it (endless data) before parsing anything.
  if (bytes.byteLength > maxBytes) return Number.MAX_SAFE_INTEGER;
  try {
    const doc = parseJson(bytes) as { signed?: { version?: unknown } };
    const v = doc.signed?.version;
    return typeof v === 'number' ? v : Number.MAX_SAFE_INTEGER;
  } catch {
    // Unparseable: let updateRoot report it properly.
    return Number.MAX_SAFE_INTEGER;
  }
}

/** This ECU's entry in Director targets (§5.4.3.3 step 2). */
export function findEcuTarget(targets: Targets, ecuSerial: string): { name: string; file: TargetFile } | undefined {
  const serial = ecuSerial.normalize('NFC');
  for (const [name, t] of targets.targets) {
    for (const s of t.ecuIdentifiers.keys()) if (s.normalize('NFC') === serial) return { name, file: t };
  }
  return undefined;
}

/** §5.4.3.4 steps 3 and 5: hardware id and release counter of this ECU's own Director entry. */
export function checkOwnTarget(name: string, target: TargetFile, ecuSerial: string, hardwareId: string, previousReleaseCounter?: number): void {
  const ctx = { repository: 'director', role: 'targets' };
  let info: { hardwareId: string } | undefined;
  for (const [s, i] of target.ecuIdentifiers) if (s.normalize('NFC') === ecuSerial.normalize('NFC')) info = i;
  if (!info) throw new BadEcuIdError(`${name} is not for ECU ${ecuSerial}`, ctx);
  if (info.hardwareId.normalize('NFC') !== hardwareId.normalize('NFC')) {
    throw new BadHardwareIdError(`${name} is for hardware ${JSON.stringify(info.hardwareId)}; this ECU is ${JSON.stringify(hardwareId)}`, ctx);
  }
  const hw = target.hardwareIds;
  if (hw && !hw.some((h) => h.normalize('NFC') === hardwareId.normalize('NFC'))) {
    throw new BadHardwareIdError(`${name} is not built for hardware ${JSON.stringify(hardwareId)}`, ctx);
  }
  const rc = target.releaseCounter;
  if (rc !== undefined && previousReleaseCounter !== undefined && rc < previousReleaseCounter) {
    throw new RollbackError(`${name} has release counter ${rc}, lower than the previous ${previousReleaseCounter}`, ctx);
  }
}

// --- Image checks (§5.4.2.4, §5.4.3.4 step 7) --------------------------------------------

/** Image bytes that do not match their metadata (tampered image: arbitrary software). */
export class ImageMismatchError extends SignatureError {}

/**
 * Every listed hash must match and the length must be exact. Hash functions
 * we cannot compute fail the check rather than being skipped.
 */
export function verifyImage(name: string, target: TargetFile, actual: { readonly length: number; readonly hashes: Readonly<Record<string, string>> }): void {
  const ctx = { role: 'image' };
  if (actual.length > target.length) throw new EndlessDataError(`${name} is longer than the ${target.length} bytes its metadata gives`, ctx);
  if (actual.length !== target.length) throw new ImageMismatchError(`${name} is ${actual.length} bytes, its metadata says ${target.length}`, ctx);
  for (const [alg, want] of Object.entries(target.hashes)) {
    if (!isSupportedHash(alg)) throw new UnsupportedAlgorithmError(`${name}: cannot verify the ${alg} hash`, ctx);
    const got = actual.hashes[alg];
    if (got === undefined || !hexEquals(got, want)) throw new ImageMismatchError(`${name}: the ${alg} hash does not match`, ctx);
  }
}

/** Names a Director target that cannot be found for this ECU. */
export function noSuchImage(ecuSerial: string): TargetNotFoundError {
  return new TargetNotFoundError(`Director targets list no image for ECU ${ecuSerial}`, { repository: 'director', role: 'targets' });
}
