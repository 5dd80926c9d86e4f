/**
 * The trusted metadata of one repository, and the check procedures that may
 * change it: R (Root), T (Timestamp), S (Snapshot) and G (Targets) of
 * uptane-standard.md §4 (the Standard's §5.4.4.3–§5.4.4.6).
 *
 * Like tuf-js's TrustedMetadataStore, this class owns the order of the steps
 * and the rules; a caller can only feed it bytes in the prescribed order, and
 * every rejected file leaves the trusted state as it was. Time is an input.
 *
 * Persistence is the caller's: `state()` returns the bytes to store. Roots are
 * meant to be stored as soon as they are accepted (`updateRoot` returns them);
 * the rest only when the whole cycle has succeeded, so an aborted cycle leaves
 * the previous metadata on disk.
 */
import {
  EndlessDataError,
  FreezeError,
  MixAndMatchError,
  OrderError,
  RollbackError,
  SignatureError,
  BadEcuIdError,
  BadHardwareIdError,
  DirectorReplayError,
  FormatError,
} from '../errors.js';
import type { Dialect, PublicKey } from '../crypto/keys.js';
import type { Metadata, RoleKeys, RoleType, Signed } from '../metadata/base.js';
import { parseRoot, type Root } from '../metadata/root.js';
import { parseTargets, type Targets } from '../metadata/targets.js';
import { parseSnapshot, parseTimestamp, type MetaFile, type Snapshot, type Timestamp } from '../metadata/snapshot.js';
import { checkNow, limitsWith, type Limits } from './limits.js';

/** The bytes of a repository's trusted metadata, as stored by a client. */
export interface TrustedFiles {
  readonly root: Uint8Array;
  readonly timestamp?: Uint8Array | undefined;
  readonly snapshot?: Uint8Array | undefined;
  readonly targets?: Uint8Array | undefined;
  /** Delegated targets by role name (Image repository only). */
  readonly delegated?: ReadonlyMap<string, Uint8Array> | undefined;
}

export interface TrustedRepositoryOptions {
  readonly dialect: Dialect;
  /** Name for errors and reports: `director`, `image`, or a repository name. */
  readonly repository: string;
  /** Current time, from a secure source (FV-1). */
  readonly now: Date;
  readonly limits?: Partial<Limits>;
  /** Director repositories: targets may not delegate and use the Director byte limit. */
  readonly isDirector?: boolean;
  /**
   * The repository object of an earlier cycle. Files given here with the very
   * same bytes as its current ones (and under the very same root) are taken
   * over already parsed and verified instead of being parsed and verified
   * again: a Primary checks in every few seconds with unchanged metadata, and
   * parsing the keys of two roots and checking the signatures of eight files
   * was most of the CPU of such a check-in. A file that differs by one byte is
   * parsed and verified as usual. Any earlier object will do (one left
   * midway through a root rotation is ignored).
   */
  readonly reuse?: TrustedRepository | undefined;
}

interface Loaded<T extends Metadata<Signed>> {
  readonly md: T;
  readonly bytes: Uint8Array;
}

type LoadedRoot = Loaded<Metadata<Root>>;
type LoadedTimestamp = Loaded<Metadata<Timestamp>>;
type LoadedSnapshot = Loaded<Metadata<Snapshot>>;
type LoadedTargets = Loaded<Metadata<Targets>>;

export class TrustedRepository {
  readonly dialect: Dialect;
  readonly repository: string;
  readonly now: Date;
  readonly limits: Limits;
  readonly isDirector: boolean;

  private rootFile: LoadedRoot;
  private readonly initialRoot: Root;
  private rootRotations = 0;
  private rootFinal = false;

  // Previously trusted copies (rollback baselines), then what this cycle accepted.
  private timestampFile: LoadedTimestamp | undefined;
  private snapshotFile: LoadedSnapshot | undefined;
  private targetsFile: LoadedTargets | undefined;
  private readonly delegatedFiles = new Map<string, LoadedTargets>();

  /** Which roles have been (re)validated for this cycle against the current timestamp/snapshot. */
  private timestampChecked = false;
  private snapshotChecked = false;
  private targetsChecked = false;
  private readonly delegatedChecked = new Set<string>();

  constructor(files: TrustedFiles, options: TrustedRepositoryOptions) {
    this.dialect = options.dialect;
    this.repository = options.repository;
    checkNow(options.now);
    this.now = options.now;
    this.limits = limitsWith(options.limits);
    this.isDirector = options.isDirector ?? options.repository === 'director';

    // Parsed and verified files of an earlier cycle, usable only under the same root (byte for byte), and
    // not from an object left between a root rotation and R-4 (its baselines are not yet checked against that root).
    const candidate = options.reuse;
    const earlier = candidate?.dialect === this.dialect && (candidate.rootRotations === 0 || candidate.rootFinal) ? candidate : undefined;
    const sameRoot = earlier !== undefined && sameBytes(earlier.rootFile.bytes, files.root);

    // The stored root is the trust anchor; it must still carry a threshold of its own keys.
    let root: Metadata<Root>;
    if (sameRoot) root = earlier.rootFile.md;
    else {
      root = parseRoot(files.root, this.dialect);
      uniqueSignatures(root, this.ctx('root'));
      root.verify(root.signed.keys, root.signed.role('root'), this.ctx('root'));
    }
    this.rootFile = { md: root, bytes: files.root };
    this.initialRoot = root.signed;

    // Stored copies are baselines for rollback checks. One that does not parse
    // or no longer verifies is dropped, as if it were absent.
    const reused = <T extends Metadata<Signed>>(had: Loaded<T> | undefined, bytes: Uint8Array | undefined): Loaded<T> | undefined =>
      sameRoot && had !== undefined && bytes !== undefined && sameBytes(had.bytes, bytes) ? { md: had.md, bytes } : undefined;
    this.timestampFile =
      reused(earlier?.timestampFile, files.timestamp) ?? this.loadStored(files.timestamp, (b) => parseTimestamp(b, this.dialect), 'timestamp');
    this.snapshotFile = reused(earlier?.snapshotFile, files.snapshot) ?? this.loadStored(files.snapshot, (b) => parseSnapshot(b, this.dialect), 'snapshot');
    this.targetsFile = reused(earlier?.targetsFile, files.targets) ?? this.loadStored(files.targets, (b) => parseTargets(b, this.dialect), 'targets');
    for (const [role, bytes] of files.delegated ?? []) {
      // Delegated files are only parsed here (their signatures are checked against their delegator when used).
      const had = earlier?.delegatedFiles.get(role);
      if (had && sameBytes(had.bytes, bytes)) {
        this.delegatedFiles.set(role, { md: had.md, bytes });
        continue;
      }
      try {
        this.delegatedFiles.set(role, { md: parseTargets(bytes, this.dialect), bytes });
      } catch {
        // Dropped: signatures of delegated files are checked against their delegator when used.
      }
    }
  }

  private ctx(role: string): { repository: string; role: string } {
    return { repository: this.repository, role };
  }

  private loadStored<T extends Metadata<Signed>>(bytes: Uint8Array | undefined, parse: (b: Uint8Array) => T, role: RoleType): Loaded<T> | undefined {
    if (!bytes) return undefined;
    try {
      const md = parse(bytes);
      md.verify(this.rootFile.md.signed.keys, this.rootFile.md.signed.role(role), this.ctx(role));
      return { md, bytes };
    } catch {
      return undefined;
    }
  }

  // --- Procedure R: Root -------------------------------------------------------

  get root(): Metadata<Root> {
    return this.rootFile.md;
  }

  /** N: the version of the latest trusted root (the client then tries N+1). */
  get rootVersion(): number {
    return this.rootFile.md.signed.version;
  }

  /**
   * for one downloaded `N+1.root.json`. On success the new root
   * is trusted and returned with its bytes, which the caller should persist now
   * . On failure nothing changes.
   */
  updateRoot(bytes: Uint8Array): Metadata<Root> {
    if (this.rootFinal) throw new OrderError('root cannot be updated after the timestamp', this.ctx('root'));
    if (bytes.byteLength > this.limits.rootBytes) {
      throw new EndlessDataError(`root is ${bytes.byteLength} bytes, more than the limit of ${this.limits.rootBytes}`, this.ctx('root'));
    }
    if (this.rootRotations >= this.limits.maxRootRotations) {
      throw new EndlessDataError(`more than ${this.limits.maxRootRotations} root rotations in one cycle`, this.ctx('root'));
    }
    const trusted = this.rootFile.md.signed;
    const next = parseRoot(bytes, this.dialect);
    // a threshold of the trusted root's root keys…
    uniqueSignatures(next, this.ctx('root'));
    next.verify(trusted.keys, trusted.role('root'), this.ctx('root'));
    // versions advance by exactly one.
    const expected = trusted.version + 1;
    if (next.signed.version < expected) {
      throw new RollbackError(`root version ${next.signed.version} served as version ${expected} (trusted: ${trusted.version})`, this.ctx('root'));
    }
    if (next.signed.version !== expected) {
      throw new MixAndMatchError(`root version ${next.signed.version} served as version ${expected}`, this.ctx('root'));
    }
    // …and a threshold of its own root keys.
    next.verify(next.signed.keys, next.signed.role('root'), this.ctx('root'));
    this.rootFile = { md: next, bytes };
    this.rootRotations++;
    return next;
  }

  /**
   * the final root must not be expired; when the timestamp or
   * snapshot keys changed, the stored timestamp and snapshot are discarded
   * (fast-forward attack recovery). Called automatically before the timestamp.
   * Returns true when stored files were discarded (callers persist `state()`).
   */
  finishRoot(): boolean {
    if (this.rootFinal) return false;
    const root = this.rootFile.md.signed;
    if (root.isExpired(this.now)) {
      throw new FreezeError(`root version ${root.version} expired at ${root.expires}`, this.ctx('root'));
    }
    this.rootFinal = true;
    let dropped = false;
    if (root.version !== this.initialRoot.version) {
      if (root.roleChanged(this.initialRoot, 'timestamp') || root.roleChanged(this.initialRoot, 'snapshot')) {
        dropped = this.timestampFile !== undefined || this.snapshotFile !== undefined;
        this.timestampFile = undefined;
        this.snapshotFile = undefined;
      }
      // A snapshot key rotation is also how a repository recovers its targets from a
      // fast-forward attack (TUF §5.3.11; uptane-standard.md §8.1 item 4: it "lets rotated
      // repositories restart version numbers"). Without a stored snapshot, the stored targets
      // would still block the restarted versions through G-4, so they stop being baselines too.
      if (root.roleChanged(this.initialRoot, 'snapshot')) {
        dropped = dropped || this.targetsFile !== undefined || this.delegatedFiles.size > 0;
        this.targetsFile = undefined;
        this.delegatedFiles.clear();
      }
      // Files that no longer verify with the new root's keys stop being baselines.
      const ts = this.timestampFile;
      if (ts && !this.stillValid(ts.md, 'timestamp')) {
        this.timestampFile = undefined;
        dropped = true;
      }
      const sn = this.snapshotFile;
      if (sn && !this.stillValid(sn.md, 'snapshot')) {
        this.snapshotFile = undefined;
        dropped = true;
      }
      const tg = this.targetsFile;
      if (tg && !this.stillValid(tg.md, 'targets')) {
        this.targetsFile = undefined;
        dropped = true;
      }
    }
    return dropped;
  }

  private stillValid(md: Metadata<Timestamp> | Metadata<Snapshot> | Metadata<Targets>, role: RoleType): boolean {
    try {
      md.verify(this.rootFile.md.signed.keys, this.rootFile.md.signed.role(role), this.ctx(role));
      return true;
    } catch {
      return false;
    }
  }

  // --- Procedure T: Timestamp ------------------------------------------------------

  get timestamp(): Metadata<Timestamp> | undefined {
    return this.timestampFile?.md;
  }

  /**
   * T-1…T-4 for a downloaded `timestamp.json`. Returns false when the trusted
   * timestamp has the same version (it is kept, as python-tuf does).
   */
  updateTimestamp(bytes: Uint8Array): boolean {
    this.finishRoot();
    if (this.snapshotChecked) throw new OrderError('timestamp cannot be updated after the snapshot', this.ctx('timestamp'));
    if (bytes.byteLength > this.limits.timestampBytes) {
      throw new EndlessDataError(`timestamp is ${bytes.byteLength} bytes, more than the limit of ${this.limits.timestampBytes}`, this.ctx('timestamp'));
    }
    const root = this.rootFile.md.signed;
    const next = parseTimestamp(bytes, this.dialect);
    // T-2
    uniqueSignatures(next, this.ctx('timestamp'));
    next.verify(root.keys, root.role('timestamp'), this.ctx('timestamp'));
    const trusted = this.timestampFile?.md.signed;
    let updated = true;
    if (trusted) {
      // T-3
      if (next.signed.version < trusted.version) {
        throw new RollbackError(`timestamp version ${next.signed.version} is lower than the trusted ${trusted.version}`, this.ctx('timestamp'));
      }
      if (next.signed.snapshot.version < trusted.snapshot.version) {
        throw new RollbackError(
          `timestamp lists snapshot version ${next.signed.snapshot.version}, lower than the trusted ${trusted.snapshot.version}`,
          this.ctx('timestamp'),
        );
      }
      if (next.signed.version === trusted.version) updated = false;
    }
    const candidate = updated ? { md: next, bytes } : (this.timestampFile as LoadedTimestamp);
    // T-4 (applies to whichever copy we keep).
    if (candidate.md.signed.isExpired(this.now)) {
      throw new FreezeError(`timestamp version ${candidate.md.signed.version} expired at ${candidate.md.signed.expires}`, this.ctx('timestamp'));
    }
    this.timestampFile = candidate;
    this.timestampChecked = true;
    return updated;
  }

  // --- Procedure S: Snapshot ---------------------------------------------------------

  get snapshot(): Metadata<Snapshot> | undefined {
    return this.snapshotFile?.md;
  }

  private requireTimestamp(): Metadata<Timestamp> {
    if (!this.timestampChecked || !this.timestampFile) throw new OrderError('the timestamp must be checked first', this.ctx('snapshot'));
    return this.timestampFile.md;
  }

  /** The snapshot version and byte limit to request (S-1). */
  snapshotRequest(): { version: number; maxBytes: number } {
    const entry = this.requireTimestamp().signed.snapshot;
    return { version: entry.version, maxBytes: entry.length ?? this.limits.snapshotBytes };
  }

  /**
   * FV-4 / FV-8: the stored snapshot is the one the new timestamp describes
   * (same version, and same hashes and length when the timestamp lists them).
   */
  snapshotIsCurrent(): boolean {
    const entry = this.requireTimestamp().signed.snapshot;
    const stored = this.snapshotFile;
    if (!stored || stored.md.signed.version !== entry.version) return false;
    return entry.mismatch(stored.bytes) === undefined;
  }

  /** Keeps the stored snapshot for this cycle (after snapshotIsCurrent), still checking expiry (S-7). */
  keepTrustedSnapshot(): Metadata<Snapshot> {
    if (!this.snapshotIsCurrent()) throw new OrderError('the stored snapshot is not the current one', this.ctx('snapshot'));
    const sn = this.snapshotFile as LoadedSnapshot;
    this.checkExpiry(sn.md, 'snapshot');
    this.snapshotChecked = true;
    return sn.md;
  }

  /** S-1…S-7 for a downloaded snapshot. */
  updateSnapshot(bytes: Uint8Array): Metadata<Snapshot> {
    const ts = this.requireTimestamp();
    if (this.targetsChecked) throw new OrderError('snapshot cannot be updated after targets', this.ctx('snapshot'));
    const entry = ts.signed.snapshot;
    // S-1
    const max = entry.length ?? this.limits.snapshotBytes;
    if (bytes.byteLength > max) throw new EndlessDataError(`snapshot is ${bytes.byteLength} bytes, more than ${max}`, this.ctx('snapshot'));
    // S-2 (hashes and length before anything is parsed)
    const mismatch = entry.mismatch(bytes);
    if (mismatch !== undefined) throw new MixAndMatchError(`snapshot does not match the timestamp: ${mismatch}`, this.ctx('snapshot'));
    const next = parseSnapshot(bytes, this.dialect);
    // S-3
    const root = this.rootFile.md.signed;
    uniqueSignatures(next, this.ctx('snapshot'));
    next.verify(root.keys, root.role('snapshot'), this.ctx('snapshot'));
    // S-2 (version)
    if (next.signed.version !== entry.version) {
      throw new MixAndMatchError(`snapshot version ${next.signed.version} differs from the timestamp's ${entry.version}`, this.ctx('snapshot'));
    }
    const trusted = this.snapshotFile?.md.signed;
    if (trusted) {
      // S-4
      if (next.signed.version < trusted.version) {
        throw new RollbackError(`snapshot version ${next.signed.version} is lower than the trusted ${trusted.version}`, this.ctx('snapshot'));
      }
      // S-5 and S-6
      for (const [name, old] of trusted.meta) {
        const now = next.signed.meta.get(name);
        if (!now) throw new RollbackError(`snapshot no longer lists ${name}`, this.ctx('snapshot'));
        if (now.version < old.version) {
          throw new RollbackError(`snapshot lists ${name} at version ${now.version}, lower than the trusted ${old.version}`, this.ctx('snapshot'));
        }
      }
    }
    // S-7
    this.checkExpiry(next, 'snapshot');
    this.snapshotFile = { md: next, bytes };
    this.snapshotChecked = true;
    return next;
  }

  // --- Procedure G: Targets ------------------------------------------------------------

  get targets(): Metadata<Targets> | undefined {
    return this.targetsFile?.md;
  }

  private requireSnapshot(role: string): Metadata<Snapshot> {
    if (!this.snapshotChecked || !this.snapshotFile) throw new OrderError('the snapshot must be checked first', this.ctx(role));
    return this.snapshotFile.md;
  }

  private snapshotEntry(role: string): MetaFile {
    const file = role === 'targets' ? 'targets.json' : `${role}.json`;
    const entry = this.requireSnapshot(role).signed.meta.get(file);
    if (!entry) throw new MixAndMatchError(`snapshot does not list ${file}`, this.ctx(role));
    return entry;
  }

  private targetsLimit(): number {
    return this.isDirector ? this.limits.directorTargetsBytes : this.limits.imageTargetsBytes;
  }

  /** The version and byte limit to request for targets or a delegated role (G-1). */
  targetsRequest(role = 'targets'): { version: number; maxBytes: number } {
    const entry = this.snapshotEntry(role);
    return { version: entry.version, maxBytes: entry.length ?? this.targetsLimit() };
  }

  /** Whether the stored targets file (top-level or delegated) is the one the snapshot lists. */
  targetsIsCurrent(role = 'targets'): boolean {
    const entry = this.snapshotEntry(role);
    const stored = role === 'targets' ? this.targetsFile : this.delegatedFiles.get(role);
    if (!stored || stored.md.signed.version !== entry.version) return false;
    return entry.mismatch(stored.bytes) === undefined;
  }

  /** Keeps the stored top-level targets for this cycle, still checking expiry (G-5). */
  keepTrustedTargets(): Metadata<Targets> {
    if (!this.targetsIsCurrent('targets')) throw new OrderError('the stored targets are not the current ones', this.ctx('targets'));
    const tg = this.targetsFile as LoadedTargets;
    this.checkExpiry(tg.md, 'targets');
    this.targetsChecked = true;
    return tg.md;
  }

  /** G-1…G-6 for the top-level targets. */
  updateTargets(bytes: Uint8Array): Metadata<Targets> {
    const entry = this.snapshotEntry('targets');
    const root = this.rootFile.md.signed;
    const next = this.checkTargetsFile(bytes, entry, 'targets', root.keys, root.role('targets'), this.targetsFile?.md);
    this.targetsFile = { md: next, bytes };
    this.targetsChecked = true;
    return next;
  }

  /** The verified targets of a role for this cycle (`targets` or a delegated role), if loaded. */
  checkedTargets(role: string): Metadata<Targets> | undefined {
    if (role === 'targets') return this.targetsChecked ? this.targetsFile?.md : undefined;
    return this.delegatedChecked.has(role) ? this.delegatedFiles.get(role)?.md : undefined;
  }

  /** Keeps a stored delegated file for this cycle after checking it against its delegator. */
  keepTrustedDelegated(role: string, delegator: string): Metadata<Targets> {
    if (!this.targetsIsCurrent(role)) throw new OrderError(`the stored ${role} is not the current one`, this.ctx(role));
    const stored = this.delegatedFiles.get(role) as LoadedTargets;
    const keys = this.delegationKeys(role, delegator);
    stored.md.verify(keys.keys, keys.role, this.ctx(role));
    this.checkExpiry(stored.md, role);
    this.delegatedChecked.add(role);
    return stored.md;
  }

  /** G-1…G-5 for a delegated targets file, with keys from its delegator (G-3). */
  updateDelegatedTargets(bytes: Uint8Array, role: string, delegator: string): Metadata<Targets> {
    if (this.isDirector) throw new SignatureError('the Director repository may not delegate', this.ctx(role));
    const entry = this.snapshotEntry(role);
    const keys = this.delegationKeys(role, delegator);
    const next = this.checkTargetsFile(bytes, entry, role, keys.keys, keys.role, this.delegatedFiles.get(role)?.md);
    this.delegatedFiles.set(role, { md: next, bytes });
    this.delegatedChecked.add(role);
    return next;
  }

  private delegationKeys(role: string, delegator: string): { keys: ReadonlyMap<string, PublicKey>; role: RoleKeys } {
    const parent = this.checkedTargets(delegator);
    if (!parent) throw new OrderError(`delegator ${delegator} must be checked before ${role}`, this.ctx(role));
    const delegations = parent.signed.delegations;
    const r = delegations?.roleKeys(role);
    if (!delegations || !r) throw new SignatureError(`${delegator} does not delegate to ${role}`, this.ctx(role));
    return { keys: delegations.keys, role: r };
  }

  private checkTargetsFile(
    bytes: Uint8Array,
    entry: MetaFile,
    role: string,
    keys: ReadonlyMap<string, PublicKey>,
    roleKeys: RoleKeys,
    trusted: Metadata<Targets> | undefined,
  ): Metadata<Targets> {
    // G-1
    const max = entry.length ?? this.targetsLimit();
    if (bytes.byteLength > max) throw new EndlessDataError(`${role} is ${bytes.byteLength} bytes, more than ${max}`, this.ctx(role));
    if (entry.hashes !== undefined || entry.length !== undefined) {
      const mismatch = entry.mismatch(bytes);
      if (mismatch !== undefined) throw new MixAndMatchError(`${role} does not match the snapshot: ${mismatch}`, this.ctx(role));
    }
    const next = parseTargets(bytes, this.dialect);
    // G-3
    uniqueSignatures(next, this.ctx(role));
    next.verify(keys, roleKeys, this.ctx(role));
    // G-2
    if (next.signed.version !== entry.version) {
      throw new MixAndMatchError(`${role} version ${next.signed.version} differs from the snapshot's ${entry.version}`, this.ctx(role));
    }
    // G-4
    if (trusted && next.signed.version < trusted.signed.version) {
      throw new RollbackError(`${role} version ${next.signed.version} is lower than the trusted ${trusted.signed.version}`, this.ctx(role));
    }
    // G-5
    this.checkExpiry(next, role);
    // G-6
    if (this.isDirector && next.signed.delegations !== undefined) {
      throw new SignatureError('Director targets may not delegate', this.ctx(role));
    }
    return next;
  }

  private checkExpiry(md: Metadata<Snapshot> | Metadata<Targets>, role: string): void {
    if (md.signed.isExpired(this.now)) {
      throw new FreezeError(`${role} version ${md.signed.version} expired at ${md.signed.expires}`, this.ctx(role));
    }
  }

  /** What a client stores for this repository now (trusted root plus the files accepted so far). */
  state(): TrustedFiles {
    const delegated = new Map<string, Uint8Array>();
    for (const [k, v] of this.delegatedFiles) delegated.set(k, v.bytes);
    return {
      root: this.rootFile.bytes,
      timestamp: this.timestampFile?.bytes,
      snapshot: this.snapshotFile?.bytes,
      targets: this.targetsFile?.bytes,
      delegated,
    };
  }
}

/**
 * A signature list may name each key id once (TUF specification, "signatures"; aktualizr
 * refuses it too, as NonUniqueSignatures). A repeated entry can only be an
 * attempt to make one key count several times towards a threshold.
 */
function uniqueSignatures(md: Metadata<Signed>, ctx: { repository: string; role: string }): void {
  const seen = new Set<string>();
  for (const sig of md.signatures) {
    if (seen.has(sig.keyid)) throw new SignatureError(`${ctx.role} lists two signatures by key ${sig.keyid}`, ctx);
    seen.add(sig.keyid);
  }
}

// --- Director-only checks of Director targets (G-6…G-8, vehicle id) -----------------

export interface DirectorTargetsCheck {
  /** The ECUs of this vehicle: serial → hardware id (G-8 and the hardware-id check). Omit on a Secondary. */
  readonly ecus?: ReadonlyMap<string, string>;
  /** This vehicle's identifier (device id), checked against `custom.vehicleId` when present. */
  readonly vehicleId?: string;
  /** Refuse an empty target list that does not name this vehicle (§5.2.3.1). Default true. */
  readonly requireVehicleIdWhenEmpty?: boolean;
}

/**
 * Checks a verified Director targets file: no delegations (G-6), each ECU
 * identifier at most once (G-7), every ECU present in the vehicle (G-8) with the
 * hardware id it registered, and the vehicle identifier (Director replay).
 */
export function checkDirectorTargets(targets: Targets, check: DirectorTargetsCheck): void {
  const ctx = { repository: 'director', role: 'targets' };
  if (targets.delegations !== undefined) throw new SignatureError('Director targets may not delegate', ctx);
  const seen = new Set<string>();
  for (const [name, t] of targets.targets) {
    checkTargetName(name, ctx);
    const ids = t.ecuIdentifiers;
    if (ids.size === 0)
      throw new FormatError(`Director target ${JSON.stringify(name)} names no ECU`, {
        ...ctx,
        path: `signed.targets[${JSON.stringify(name)}].custom.ecuIdentifiers`,
      });
    for (const [serial, info] of ids) {
      const nfc = serial.normalize('NFC');
      if (seen.has(nfc)) throw new BadEcuIdError(`ECU ${JSON.stringify(serial)} appears in more than one Director target`, ctx);
      seen.add(nfc);
      if (check.ecus) {
        const hw = lookupNfc(check.ecus, serial);
        if (hw === undefined) throw new BadEcuIdError(`Director targets name ECU ${JSON.stringify(serial)}, which is not in this vehicle`, ctx);
        if (hw.normalize('NFC') !== info.hardwareId.normalize('NFC')) {
          throw new BadHardwareIdError(
            `Director targets give ECU ${JSON.stringify(serial)} hardware id ${JSON.stringify(info.hardwareId)}, but it is ${JSON.stringify(hw)}`,
            ctx,
          );
        }
      }
    }
  }
  const vid = targets.vehicleId;
  if (vid !== undefined && check.vehicleId !== undefined && vid.normalize('NFC') !== check.vehicleId.normalize('NFC')) {
    throw new DirectorReplayError(`Director targets were made for vehicle ${JSON.stringify(vid)}, not ${JSON.stringify(check.vehicleId)}`, ctx);
  }
  if (targets.targets.size === 0 && vid === undefined && (check.requireVehicleIdWhenEmpty ?? true)) {
    throw new DirectorReplayError('empty Director targets without a vehicle identifier could be replayed from another vehicle', ctx);
  }
}

/**
 * A directed image's name must be safe to use on the ECU (§5.2.7 rule 3, A17):
 * it becomes part of a URL under the Image repository's `targets/`, a log
 * line, and an argument of installer commands. So no empty, `.` or `..` path
 * segment (which would climb out of `targets/` once the URL is resolved, or
 * out of a directory an installer writes under), no leading `/`, and no
 * control characters (a NUL or a newline).
 */
export function checkTargetName(name: string, ctx: { repository?: string; role?: string } = {}): void {
  const path = `signed.targets[${JSON.stringify(name)}]`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) throw new FormatError(`target name ${JSON.stringify(name)} contains a control character`, { ...ctx, path });
  if (name.split(/[/\\]/).some((seg) => seg === '' || seg === '.' || seg === '..')) {
    throw new FormatError(`target name ${JSON.stringify(name)} has an empty, "." or ".." path segment`, { ...ctx, path });
  }
}

function lookupNfc<V>(map: ReadonlyMap<string, V>, key: string): V | undefined {
  const direct = map.get(key);
  if (direct !== undefined) return direct;
  const nfc = key.normalize('NFC');
  for (const [k, v] of map) if (k.normalize('NFC') === nfc) return v;
  return undefined;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a === b || (a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b));
}
