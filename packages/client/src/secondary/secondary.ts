/**
 * An Uptane Secondary ECU (`uptide-secondary`) behind aktualizr's IP-Secondary
 * protocol (./protocol): it answers the Primary's requests in aktualizr's
 * message sequence and with its result codes, and does its own verification,
 * so a compromised Primary cannot make it install anything the repositories
 * did not sign for it (uptane-standard.md §5, §6.4, A18).
 *
 * - `getInfoReq` → serial, hardware id and the ECU's public key.
 * - `versionReq` → protocol version 2.
 * - `rootVerReq` / `putRootReq` → the version of a trusted root, and one new
 *   root checked with Procedure R against it and persisted at once.
 * - `putMetaReq2` → verification:
 *   - **full**: with the Director's timestamp and snapshot (which our Primary
 *     adds), core's `fullVerification` limited to this ECU; with only the
 *     Director's root and targets (what stock aktualizr sends), those two
 *     with Procedure R and G, then the Image repository in full and the
 *     cross-check, as aktualizr-secondary does.
 *   - **partial**: core's `partialVerification` (Director targets against the
 *     Director root held, with rotation).
 *   Then this ECU's own entry (hardware id, release counter). The result is
 *   kept in memory as the pending target; nothing but roots is persisted yet.
 * - `uploadDataReq` → the image streamed to disk, hashed on the way, refused
 *   beyond the target's length.
 * - `installReq` → every listed hash and the exact length; then the new
 *   metadata becomes the trusted baseline, and the installer runs under a
 *   pending-install marker.
 * - `manifestReq` → a fresh version report signed with the ECU key: report
 *   counter, latest verified time, installed image, typed attacks.
 *
 * A failed check answers `validationFailed` (metadata) or `downloadFailed`
 * (image), as aktualizr-secondary does, leaves the trusted metadata as it was,
 * and puts the typed error into the next version report.
 */
import { open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  attackReportFrom,
  BadEcuIdError,
  buildEcuVersionReport,
  canonicalize,
  checkOwnTarget,
  crossCheckTargets,
  delegatedLoader,
  EndlessDataError,
  fullVerification,
  generatePrivateKey,
  hexEquals,
  keyTypeOf,
  LocalSigner,
  MultiHasher,
  parseJson,
  parseRoot,
  partialVerification,
  privateKeyFromPem,
  privateKeyToPem,
  refreshRepository,
  resolveDelegations,
  RESULT_CODES,
  TargetNotFoundError,
  TrustedRepository,
  UNKNOWN_INSTALLED_IMAGE,
  UptaneError,
  verifyImage,
  type InstalledImage,
  type JsonValue,
  type Limits,
  type PublicKey,
  type RepositorySource,
  type TargetFile,
  type Targets,
  type TrustedFiles,
} from '@uptide/core';
import { createInstaller, FileInstaller, type Installer } from '../installers/index.js';
import { silentLogger, type Logger } from '../primary/log.js';
import { ensureDir, exists } from '../state/atomic.js';
import { StateError, StateStore, type RepositoryName } from '../state/store.js';
import type { SecondaryConfig, VerificationType } from './config.js';
import {
  KEY_TYPE,
  PROTOCOL_VERSION,
  REPO_TYPE,
  RESULT_CODE,
  SecondaryServer,
  type Endpoint,
  type GetInfoResp,
  type HandlerReply,
  type InstallReq,
  type IpUptaneMessage,
  type MetaJson,
  type PutMetaReq2,
  type PutRootReq,
  type UploadDataReq,
} from './protocol/index.js';

/**
 * Role names of delegated targets files in a `putMetaReq2` Image collection
 * (our extension; aktualizr sends only the four top-level roles, and
 * aktualizr-secondary ignores roles it does not know).
 */
export const DELEGATED_ROLE_PREFIX = 'delegations/';

const DIALECT = 'uptane';

/** One repository's files as the Primary sent them. */
export interface ReceivedFiles {
  readonly root: Uint8Array | undefined;
  readonly timestamp: Uint8Array | undefined;
  readonly snapshot: Uint8Array | undefined;
  readonly targets: Uint8Array | undefined;
  readonly delegated: ReadonlyMap<string, Uint8Array>;
}

interface Upload {
  readonly fh: FileHandle;
  readonly hasher: MultiHasher;
  received: number;
}

/** What a verified `putMetaReq2` leaves for the image transfer and the install. */
interface Pending {
  readonly name: string;
  /** This ECU's entry in Director targets. */
  readonly target: TargetFile;
  /** The Image repository's entry it was cross-checked against (full verification). */
  readonly imageTarget: TargetFile | undefined;
  readonly correlationId: string | undefined;
  readonly directorTargets: Targets;
  /** The metadata to trust once the image has been checked against it. */
  readonly director: TrustedFiles;
  readonly image: TrustedFiles | undefined;
  readonly verifiedAt: Date;
  upload: Upload | undefined;
  /** The transfer was refused: nothing more is taken until new metadata. */
  refused: boolean;
}

export interface SecondaryOptions {
  readonly config: SecondaryConfig;
  readonly log?: Logger;
  /** The system clock, in epoch ms (tests move it). */
  readonly clock?: () => number;
  /** Installs instead of the configured `[installer]` (the simulator's verify-only installer). */
  readonly installer?: Installer;
}

type Result = { result: number; description: string };

const ok = (description = ''): Result => ({ result: RESULT_CODE.ok, description });

function peekVersion(bytes: Uint8Array): number | undefined {
  try {
    const v = (parseJson(bytes) as { signed?: { version?: unknown } }).signed?.version;
    return typeof v === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A RepositorySource over what the Primary sent: the Secondary's copy of
 * Procedure R asks for root N+1 and gets the root of the bundle only when
 * that is its version (intermediate roots came before, through putRootReq).
 */
export class ReceivedSource implements RepositorySource {
  constructor(
    private readonly files: ReceivedFiles,
    private readonly repository: RepositoryName,
  ) {}

  root(version: number): Promise<Uint8Array | undefined> {
    const r = this.files.root;
    return Promise.resolve(r !== undefined && peekVersion(r) === version ? r : undefined);
  }

  timestamp(): Promise<Uint8Array> {
    return this.need('timestamp', this.files.timestamp);
  }

  snapshot(): Promise<Uint8Array> {
    return this.need('snapshot', this.files.snapshot);
  }

  targets(role: string): Promise<Uint8Array> {
    if (role === 'targets') return this.need('targets', this.files.targets);
    return this.need(role, this.files.delegated.get(role));
  }

  private need(role: string, bytes: Uint8Array | undefined): Promise<Uint8Array> {
    if (bytes === undefined) {
      return Promise.reject(new TargetNotFoundError(`the Primary sent no ${this.repository} ${role} metadata`, { repository: this.repository, role }));
    }
    return Promise.resolve(bytes);
  }
}

/** Splits a putMetaReq2 collection by role; a role sent twice is refused. */
export function receivedFiles(list: readonly MetaJson[], repository: RepositoryName, log: Logger): ReceivedFiles {
  const top = new Map<string, Uint8Array>();
  const delegated = new Map<string, Uint8Array>();
  for (const { role, json } of list) {
    const isDelegated = repository === 'image' && role.startsWith(DELEGATED_ROLE_PREFIX) && role.length > DELEGATED_ROLE_PREFIX.length;
    const name = isDelegated ? role.slice(DELEGATED_ROLE_PREFIX.length) : role;
    const into = isDelegated ? delegated : top;
    if (!isDelegated && !['root', 'timestamp', 'snapshot', 'targets'].includes(role)) {
      log.warn('ignoring metadata of an unknown role', { repository, role: role.slice(0, 100) });
      continue;
    }
    if (into.has(name)) throw new UptaneError('MALFORMED_METADATA', `the Primary sent two ${repository} ${role} files`, { repository, role: name });
    into.set(name, json);
  }
  return { root: top.get('root'), timestamp: top.get('timestamp'), snapshot: top.get('snapshot'), targets: top.get('targets'), delegated };
}

export class Secondary {
  private pending: Pending | undefined;
  private server: SecondaryServer | undefined;
  private readonly inflight = new Set<Promise<unknown>>();
  private closed = false;

  private constructor(
    readonly config: SecondaryConfig,
    readonly store: StateStore,
    private readonly signer: LocalSigner,
    readonly serial: string,
    private readonly installer: Installer,
    private readonly log: Logger,
    private readonly clock: () => number,
  ) {}

  /**
   * Opens the state directory, loads (or generates) the ECU key, trusts the
   * provisioned roots on first start, and settles an install that a power
   * cut interrupted.
   */
  static async open(options: SecondaryOptions): Promise<Secondary> {
    const { config } = options;
    const log = options.log ?? silentLogger;
    const store = await StateStore.open(config.secondary.storage);
    try {
      let pem = await store.readEcuKey();
      if (pem === undefined) {
        log.info('generating the ECU key', { type: config.secondary.keyType });
        pem = privateKeyToPem(await generatePrivateKey(config.secondary.keyType));
        await store.writeEcuKey(pem);
      }
      const key = privateKeyFromPem(pem);
      if (keyTypeOf(key) !== config.secondary.keyType) {
        log.warn('the stored ECU key is not of the configured key_type; keeping the stored key (the Director knows it)', {
          stored: keyTypeOf(key),
          configured: config.secondary.keyType,
        });
      }
      const signer = new LocalSigner(key, DIALECT);
      // As aktualizr-secondary: the default serial is the key id, and once chosen it stays.
      const serial = config.secondary.ecuSerial ?? store.state.primaryEcuSerial ?? signer.publicKey.keyId(DIALECT);
      if (store.state.primaryEcuSerial !== serial) await store.update(() => ({ primaryEcuSerial: serial }));
      const installer = options.installer ?? createInstaller(config.installer);
      const secondary = new Secondary(config, store, signer, serial, installer, log, options.clock ?? Date.now);
      await secondary.pinRoot('director', config.trust.directorRoot);
      if (config.secondary.verification === 'full') await secondary.pinRoot('image', config.trust.imageRoot as string);
      await rm(secondary.incomingPath, { force: true });
      await secondary.recoverInterruptedInstall();
      return secondary;
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  get hardwareId(): string {
    return this.config.secondary.hardwareId;
  }

  get verification(): VerificationType {
    return this.config.secondary.verification;
  }

  get publicKey(): PublicKey {
    return this.signer.publicKey;
  }

  /** What the ECU runs now, as recorded. */
  get installed(): InstalledImage | undefined {
    return this.store.state.installed[this.serial];
  }

  private get incomingPath(): string {
    return this.store.path('downloads', 'incoming.image');
  }

  private get limits(): Partial<Limits> {
    const l = this.config.limits;
    return {
      rootBytes: l.rootBytes,
      timestampBytes: l.timestampBytes,
      snapshotBytes: l.snapshotBytes,
      directorTargetsBytes: l.directorTargetsBytes,
      imageTargetsBytes: l.imageTargetsBytes,
    };
  }

  private now(): Date {
    return this.store.now(this.clock());
  }

  /** §5.4.1: the roots provisioned at installation are trusted on first start; after that, only what Procedure R accepts. */
  private async pinRoot(repo: RepositoryName, file: string): Promise<void> {
    if (await this.store.readMetadata(repo)) return;
    let bytes: Uint8Array;
    try {
      bytes = await readFile(file);
    } catch (err) {
      throw new StateError('STATE_CORRUPT', `cannot read the ${repo} root ${file}: ${(err as Error).message}`, file, { cause: err });
    }
    let version: number;
    try {
      version = new TrustedRepository({ root: bytes }, { dialect: DIALECT, repository: repo, now: this.now(), isDirector: repo === 'director' }).rootVersion;
    } catch (err) {
      throw new StateError('STATE_CORRUPT', `the ${repo} root ${file} is not a valid self-signed root: ${(err as Error).message}`, file, { cause: err });
    }
    await this.store.writeRoot(repo, bytes, version);
    this.log.info('trusting the provisioned root', { repository: repo, version });
  }

  private async trusted(repo: RepositoryName, now: Date): Promise<{ files: TrustedFiles; repo: TrustedRepository }> {
    const files = await this.store.readMetadata(repo);
    if (!files) throw new StateError('STATE_CORRUPT', `no trusted ${repo} root in ${this.store.dir}`, this.store.path('metadata', repo, 'root.json'));
    return { files, repo: new TrustedRepository(files, { dialect: DIALECT, repository: repo, now, limits: this.limits, isDirector: repo === 'director' }) };
  }

  /**
   * A file installer replaces its file atomically, so after a crash the file
   * holds the old image or the new one: when it is the new one, the install
   * did complete. Other installers cannot tell; the next cycle installs again.
   */
  private async recoverInterruptedInstall(): Promise<void> {
    const marker = await this.store.readPendingInstall();
    if (!marker) return;
    this.log.error('an installation was interrupted', { target: marker.targetName, started: marker.startedAt });
    if (this.installer instanceof FileInstaller && (await exists(this.installer.path))) {
      const { length, hashes } = await hashFile(this.installer.path);
      const matches = length === marker.length && Object.entries(marker.hashes).every(([alg, h]) => hashes[alg] !== undefined && hexEquals(hashes[alg], h));
      if (matches) {
        await this.store.update((s) => ({ installed: { ...s.installed, [this.serial]: { filename: marker.targetName, length: marker.length, hashes } } }));
        this.log.info('the interrupted installation had completed', { target: marker.targetName });
      }
    }
    await this.store.clearPendingInstall();
  }

  // --- The protocol ---------------------------------------------------------------------

  /** Answers one request (null: close the connection without answering, as aktualizr-secondary does for messages it does not handle). */
  handle(request: IpUptaneMessage): Promise<HandlerReply> {
    const p = this.dispatch(request);
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p)).catch(() => undefined);
    return p;
  }

  private async dispatch(request: IpUptaneMessage): Promise<HandlerReply> {
    switch (request.type) {
      case 'getInfoReq':
        return this.info();
      case 'versionReq':
        if (request.version < PROTOCOL_VERSION) this.log.warn('the Primary speaks an older protocol version', { version: request.version });
        return { type: 'versionResp', version: PROTOCOL_VERSION };
      case 'manifestReq':
        return { type: 'manifestResp', manifest: await this.versionReport() };
      case 'rootVerReq':
        return { type: 'rootVerResp', version: await this.rootVersion(request.repotype) };
      case 'putRootReq':
        return { type: 'putRootResp', ...(await this.putRoot(request)) };
      case 'putMetaReq2':
        return { type: 'putMetaResp2', ...(await this.putMetadata(request)) };
      case 'uploadDataReq':
        return { type: 'uploadDataResp', ...(await this.uploadData(request)) };
      case 'installReq':
        return { type: 'installResp2', ...(await this.install(request)) };
      default:
        // v1 messages, OSTree, responses: aktualizr-secondary (file) has no handler for them either.
        this.log.warn('no handler for this message; closing the connection', { type: request.type });
        return null;
    }
  }

  /** getInfoResp: aktualizr's key type numbers and the key as aktualizr writes it (hex for Ed25519, PEM for RSA). */
  info(): GetInfoResp {
    const type = keyTypeOf(this.signer.privateKey);
    const keyType = type === 'ecdsa-p256' ? KEY_TYPE.unknown : KEY_TYPE[type];
    return { type: 'getInfoResp', ecuSerial: this.serial, hwId: this.hardwareId, keyType, key: this.publicKey.public };
  }

  /** A fresh signed version report (§5.4.2.1.2); the attacks it carries are then handed over. */
  async versionReport(): Promise<Uint8Array> {
    const attacks = [...this.store.state.pendingAttacks];
    // Persisted before it is used: a counter is never sent twice, even across a crash.
    const counter = await this.store.nextReportCounter();
    const doc = await buildEcuVersionReport(
      {
        ecuSerial: this.serial,
        installedImage: this.installed ?? UNKNOWN_INSTALLED_IMAGE,
        latestVerifiedTime: new Date(this.store.state.latestVerifiedTime),
        counter,
        attacks,
      },
      this.signer,
    );
    await this.store.clearAttacks(attacks);
    return canonicalize(doc as unknown as JsonValue, DIALECT);
  }

  private repoOf(repotype: number): RepositoryName | undefined {
    if (repotype === REPO_TYPE.director) return 'director';
    if (repotype === REPO_TYPE.image) return 'image';
    return undefined;
  }

  /**
   * aktualizr-secondary answers -1 for an unknown repository. A partial
   * Secondary holds no Image root: 0, which aktualizr's Primary reads as "has
   * none" (it then offers 1.root.json, which we decline, and it goes on).
   */
  async rootVersion(repotype: number): Promise<number> {
    const repo = this.repoOf(repotype);
    if (repo === undefined) return -1;
    if (repo === 'image' && this.verification === 'partial') return 0;
    const files = await this.store.readMetadata(repo);
    if (!files) return 0;
    try {
      return parseRoot(files.root, DIALECT).signed.version;
    } catch {
      return -1;
    }
  }

  /** One root from the chain between what we trust and the latest (Procedure R, one step), persisted at once. */
  private async putRoot(req: PutRootReq): Promise<Result> {
    const repo = this.repoOf(req.repotype);
    if (repo === undefined) return { result: RESULT_CODE.internalError, description: `unknown repository type ${req.repotype}` };
    if (repo === 'image' && this.verification === 'partial') {
      return { result: RESULT_CODE.internalError, description: 'partial verification does not use the Image repository: root not needed' };
    }
    try {
      const now = this.now();
      const { files, repo: trusted } = await this.trusted(repo, now);
      // A root we already hold (a Primary that sends again) is no news.
      for (const r of await this.store.readRootChain(repo)) if (Buffer.compare(Buffer.from(r.bytes), Buffer.from(req.json)) === 0) return ok('already trusted');
      const before = trusted.root.signed;
      const next = trusted.updateRoot(req.json);
      await this.store.writeRoot(repo, req.json, next.signed.version);
      // R-4 (fast-forward recovery): new timestamp or snapshot keys end the old baselines. An intermediate
      // root may be expired, so this is done here rather than through finishRoot (R-3 is checked with the last).
      const timestampKeys = next.signed.roleChanged(before, 'timestamp');
      const snapshotKeys = next.signed.roleChanged(before, 'snapshot');
      if (timestampKeys || snapshotKeys) {
        await this.store.writeMetadata(repo, {
          root: req.json,
          timestamp: undefined,
          snapshot: undefined,
          targets: snapshotKeys ? undefined : files.targets,
          delegated: snapshotKeys ? new Map() : files.delegated,
        });
      }
      await this.dropPending();
      this.log.info('root accepted', { repository: repo, version: next.signed.version });
      return ok();
    } catch (err) {
      return this.refuse(err, RESULT_CODE.validationFailed, `${repo} root refused`);
    }
  }

  private async putMetadata(req: PutMetaReq2): Promise<Result> {
    await this.dropPending();
    try {
      const director = receivedFiles(req.directorRepo, 'director', this.log);
      const image = receivedFiles(req.imageRepo, 'image', this.log);
      const now = this.now();
      const pending = this.verification === 'full' ? await this.verifyFull(director, image, now) : await this.verifyPartial(director, now);
      if (pending.target.length > this.config.limits.maxImageBytes) {
        throw new EndlessDataError(`${pending.name} is ${pending.target.length} bytes, more than max_image_bytes (${this.config.limits.maxImageBytes})`, {
          role: 'image',
        });
      }
      const format = pending.imageTarget?.targetFormat ?? pending.target.targetFormat;
      if (format !== undefined && format.toUpperCase() === 'OSTREE') {
        return { result: RESULT_CODE.validationFailed, description: `${pending.name} is an OSTree target; this Secondary installs binary images only` };
      }
      this.pending = pending;
      this.log.info('metadata verified', { target: pending.name, bytes: pending.target.length, verification: this.verification });
      return ok();
    } catch (err) {
      return this.refuse(err, RESULT_CODE.validationFailed, 'metadata refused');
    }
  }

  private ownEcu(): { serial: string; hardwareId: string; previousReleaseCounter: number | undefined } {
    return { serial: this.serial, hardwareId: this.hardwareId, previousReleaseCounter: this.store.state.releaseCounters[this.serial] };
  }

  private noImageForMe(): BadEcuIdError {
    // A Primary sends metadata only to the ECUs the Director directs an image to.
    return new BadEcuIdError(`Director targets direct no image to this ECU (${this.serial})`, { repository: 'director', role: 'targets' });
  }

  /** PV-1, PV-2 and the checks of this ECU's own entry (§5.4.3.4). */
  private async verifyPartial(director: ReceivedFiles, now: Date): Promise<Pending> {
    const { files } = await this.trusted('director', now);
    const targets = director.targets;
    if (targets === undefined) throw new TargetNotFoundError('the Primary sent no Director targets', { repository: 'director', role: 'targets' });
    const pv = await this.checkDirectorRootAndTargets(files, director, targets, now);
    const mine = pv.target;
    if (!mine) throw this.noImageForMe();
    return {
      name: mine.name,
      target: mine.file,
      imageTarget: undefined,
      correlationId: pv.targets.signed.correlationId,
      directorTargets: pv.targets.signed,
      director: { root: pv.root, targets },
      image: undefined,
      verifiedAt: now,
      upload: undefined,
      refused: false,
    };
  }

  /** Director root (rotation with the root sent) and targets, with Procedure G; accepted roots are persisted. */
  private async checkDirectorRootAndTargets(files: TrustedFiles, director: ReceivedFiles, targets: Uint8Array, now: Date) {
    const own = this.ownEcu();
    const result = partialVerification({
      dialect: DIALECT,
      now,
      directorRoot: files.root,
      newRoots: director.root ? [director.root] : [],
      trustedTargets: files.targets,
      targets,
      ecuSerial: own.serial,
      hardwareId: own.hardwareId,
      previousReleaseCounter: own.previousReleaseCounter,
      limits: this.limits,
    });
    for (const r of result.acceptedRoots) await this.store.writeRoot('director', r, parseRoot(r, DIALECT).signed.version);
    return result;
  }

  /** FV-1…FV-10 for this ECU (onlyEcu), from what the Primary sent. */
  private async verifyFull(director: ReceivedFiles, image: ReceivedFiles, now: Date): Promise<Pending> {
    const own = this.ownEcu();
    const dir = await this.trusted('director', now);
    const img = await this.trusted('image', now);
    const hooks = (name: RepositoryName, repo: TrustedRepository) => ({
      onRoot: (b: Uint8Array, v: number) => this.store.writeRoot(name, b, v),
      onDiscard: () => this.store.writeMetadata(name, repo.state()),
    });
    const imageSource = new ReceivedSource(image, 'image');
    if (director.timestamp !== undefined && director.snapshot !== undefined) {
      const fv = await fullVerification({
        director: dir.repo,
        directorSource: new ReceivedSource(director, 'director'),
        image: img.repo,
        imageSource,
        // No G-8 and no vehicle id here: those are the Primary's (it knows the vehicle).
        vehicle: { requireVehicleIdWhenEmpty: false },
        installed: new Map(this.installed ? [[own.serial, this.installed]] : []),
        previousReleaseCounters: new Map(own.previousReleaseCounter === undefined ? [] : [[own.serial, own.previousReleaseCounter]]),
        onlyEcu: { serial: own.serial, hardwareId: own.hardwareId },
        // The Primary sent it because there is an image for us; check what we are given, even a reinstall.
        alwaysCheckImageRepository: true,
        hooks: { director: hooks('director', dir.repo), image: hooks('image', img.repo) },
      });
      const mine = fv.targets[0];
      if (!mine) throw this.noImageForMe();
      checkOwnTarget(mine.name, mine.target, own.serial, own.hardwareId, own.previousReleaseCounter);
      return {
        name: mine.name,
        target: mine.target,
        imageTarget: mine.imageTarget,
        correlationId: fv.correlationId,
        directorTargets: fv.directorTargets.signed,
        director: dir.repo.state(),
        image: img.repo.state(),
        verifiedAt: now,
        upload: undefined,
        refused: false,
      };
    }
    // Stock aktualizr sends the Director's root and targets only (its Director timestamp and snapshot are
    // never fetched): check those two as aktualizr-secondary does, then the Image repository in full.
    const targets = director.targets;
    if (targets === undefined) throw new TargetNotFoundError('the Primary sent no Director targets', { repository: 'director', role: 'targets' });
    const pv = await this.checkDirectorRootAndTargets(dir.files, director, targets, now);
    const mine = pv.target;
    if (!mine) throw this.noImageForMe();
    const imageTop = await refreshRepository(img.repo, imageSource, hooks('image', img.repo));
    const resolved = await resolveDelegations(imageTop, mine.name, {
      dialect: DIALECT,
      hardwareId: own.hardwareId,
      load: delegatedLoader(img.repo, imageSource),
      limits: img.repo.limits,
    });
    crossCheckTargets(mine.name, mine.file, resolved.target, {
      ecuSerial: own.serial,
      hardwareId: own.hardwareId,
      previousReleaseCounter: own.previousReleaseCounter,
    });
    return {
      name: mine.name,
      target: mine.file,
      imageTarget: resolved.target,
      correlationId: pv.targets.signed.correlationId,
      directorTargets: pv.targets.signed,
      director: { root: pv.root, timestamp: dir.files.timestamp, snapshot: dir.files.snapshot, targets },
      image: img.repo.state(),
      verifiedAt: now,
      upload: undefined,
      refused: false,
    };
  }

  /** One chunk of the image: appended to the incoming file, hashed, and never beyond the target's length. */
  private async uploadData(req: UploadDataReq): Promise<Result> {
    const p = this.pending;
    if (!p) return { result: RESULT_CODE.generalError, description: 'no verified target to receive an image for: send the metadata first' };
    if (p.refused) return { result: RESULT_CODE.downloadFailed, description: 'the image transfer was refused; send the metadata again' };
    try {
      if (!p.upload) {
        await ensureDir(dirname(this.incomingPath));
        await rm(this.incomingPath, { force: true });
        p.upload = { fh: await open(this.incomingPath, 'wx', 0o600), hasher: new MultiHasher(), received: 0 };
      }
      const u = p.upload;
      const total = u.received + req.data.length;
      if (total > p.target.length) {
        throw new EndlessDataError(`${p.name}: ${total} bytes received, more than the ${p.target.length} its metadata gives`, { role: 'image' });
      }
      let written = 0;
      while (written < req.data.length) written += (await u.fh.write(req.data, written, req.data.length - written)).bytesWritten;
      u.hasher.update(req.data);
      u.received = total;
      return ok();
    } catch (err) {
      p.refused = true;
      await this.closeUpload(p, true);
      return this.refuse(err, RESULT_CODE.downloadFailed, 'image transfer refused');
    }
  }

  private async closeUpload(p: Pending, remove: boolean): Promise<void> {
    const u = p.upload;
    p.upload = undefined;
    if (u) await u.fh.close().catch(() => undefined);
    if (remove) await rm(this.incomingPath, { force: true });
  }

  private async dropPending(): Promise<void> {
    const p = this.pending;
    this.pending = undefined;
    if (p) await this.closeUpload(p, true);
  }

  /** The serial a target name is directed to in these Director targets, if any other. */
  private directedElsewhere(targets: Targets, name: string): string | undefined {
    const t = targets.find(name);
    if (!t) return undefined;
    for (const serial of t.ecuIdentifiers.keys()) if (serial.normalize('NFC') !== this.serial.normalize('NFC')) return serial;
    return undefined;
  }

  /** §5.4.3.4 on the received image, then §5.4.3.5. */
  private async install(req: InstallReq): Promise<Result> {
    const p = this.pending;
    if (!p) return { result: RESULT_CODE.internalError, description: 'no verified target to install: send the metadata and the image first' };
    // aktualizr puts the target's filename in `hash`; anything but the verified target is not for us.
    if (req.hash.normalize('NFC') !== p.name.normalize('NFC')) {
      const other = this.directedElsewhere(p.directorTargets, req.hash);
      const ctx = { repository: 'director', role: 'targets' };
      const err =
        other !== undefined
          ? new BadEcuIdError(`${req.hash} is directed to ECU ${other}, not to this one (${this.serial})`, ctx)
          : new TargetNotFoundError(`Director targets direct no ${req.hash} to this ECU (${this.serial})`, ctx);
      await this.dropPending();
      return this.refuse(err, RESULT_CODE.validationFailed, 'installation refused');
    }
    if (p.refused || !p.upload) return { result: RESULT_CODE.downloadFailed, description: `the image of ${p.name} has not been received` };
    const u = p.upload;
    await u.fh.sync();
    await this.closeUpload(p, false);
    const actual = { length: u.received, hashes: u.hasher.digest() };
    try {
      verifyImage(p.name, p.target, actual);
      if (p.imageTarget) verifyImage(p.name, p.imageTarget, actual);
    } catch (err) {
      await this.dropPending();
      return this.refuse(err, RESULT_CODE.downloadFailed, 'image refused');
    }
    this.pending = undefined;
    try {
      // Image and metadata agree: this metadata is now the trusted baseline (the Primary does the same).
      await this.store.writeMetadata('director', p.director);
      if (p.image) await this.store.writeMetadata('image', p.image);
      await this.store.recordVerifiedTime(p.verifiedAt);
      await this.store.writePendingInstall({
        ecuSerial: this.serial,
        targetName: p.name,
        length: actual.length,
        hashes: actual.hashes,
        correlationId: p.correlationId,
        startedAt: new Date(this.clock()).toISOString(),
      });
      this.log.info('installing', { target: p.name, installer: this.installer.type });
      const outcome = await this.installer.install(
        { ecuSerial: this.serial, targetName: p.name, imagePath: this.incomingPath, target: p.target, correlationId: p.correlationId },
        this.log,
      );
      if (outcome.success) {
        const counter = p.imageTarget?.releaseCounter ?? p.target.releaseCounter;
        await this.store.update((s) => ({
          installed: { ...s.installed, [this.serial]: { filename: p.name, length: actual.length, hashes: actual.hashes } },
          releaseCounters: counter === undefined ? s.releaseCounters : { ...s.releaseCounters, [this.serial]: counter },
        }));
        this.log.info('installed', { target: p.name });
      } else {
        this.log.error('installation failed', { target: p.name, code: outcome.code, error: outcome.description });
      }
      await this.store.clearPendingInstall();
      const code = outcome.success ? RESULT_CODE.ok : (RESULT_CODES[outcome.code as keyof typeof RESULT_CODES] ?? RESULT_CODE.installFailed);
      return { result: code === RESULT_CODE.ok && !outcome.success ? RESULT_CODE.installFailed : code, description: outcome.description };
    } finally {
      await rm(this.incomingPath, { force: true });
    }
  }

  /** A refused request: the typed error goes into the next version report; the answer carries its code. */
  private async refuse(err: unknown, result: number, what: string): Promise<Result> {
    if (err instanceof UptaneError) {
      await this.store.addAttack(attackReportFrom(err));
      this.log.error(`${what}: nothing installed`, { code: err.code, repository: err.repository, role: err.role, error: err.message });
      return { result, description: `${err.code}: ${err.message}` };
    }
    this.log.error(`${what}: internal error`, { error: (err as Error)?.message ?? String(err) });
    return { result: RESULT_CODE.internalError, description: (err as Error)?.message ?? String(err) };
  }

  // --- Serving ---------------------------------------------------------------------------

  /**
   * Announces itself to the Primary's wait port when configured (before
   * listening, as aktualizr-secondary does), then listens.
   */
  async listen(): Promise<Endpoint> {
    if (this.server) throw new Error('already listening');
    const n = this.config.network;
    const server = new SecondaryServer((req) => this.handle(req), {
      host: n.host,
      port: n.port,
      maxConnections: n.maxConnections,
      idleTimeoutMs: n.idleTimeoutSeconds * 1000,
      messageTimeoutMs: n.messageTimeoutSeconds * 1000,
      onError: (err, { remote }) =>
        this.log.warn('connection ended with an error', { remote: remote ? `${remote.host}:${remote.port}` : undefined, error: err.message }),
    });
    this.server = server;
    if (n.primary) {
      const reached = await server.announceToPrimary(n.primary, { connectTimeoutMs: 5000 });
      if (reached) this.log.info('announced to the Primary', { primary: `${n.primary.host}:${n.primary.port}` });
      else
        this.log.warn('the Primary is not waiting for Secondaries; it will connect when it needs this one', { primary: `${n.primary.host}:${n.primary.port}` });
    }
    const address = await server.listen();
    this.log.info('listening', {
      address: `${address.host}:${address.port}`,
      serial: this.serial,
      hardware_id: this.hardwareId,
      verification: this.verification,
    });
    return address;
  }

  get address(): Endpoint | undefined {
    return this.server?.address;
  }

  /** Stops serving; a request in progress (an install) finishes first. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const server = this.server;
    const stopping = server ? server.close() : Promise.resolve();
    await Promise.allSettled([...this.inflight]);
    await stopping;
    await this.dropPending();
    await this.store.close();
  }
}

/** A file's length and its hashes with every supported algorithm. */
export async function hashFile(path: string): Promise<{ length: number; hashes: Record<string, string> }> {
  const fh = await open(path, 'r');
  const hasher = new MultiHasher();
  try {
    for await (const chunk of fh.createReadStream({ autoClose: false })) hasher.update(chunk as Buffer);
  } finally {
    await fh.close();
  }
  return { length: hasher.length, hashes: hasher.digest() };
}
