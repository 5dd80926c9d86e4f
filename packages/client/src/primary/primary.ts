/**
 * The Primary: the ECU that talks to the servers on behalf of the vehicle.
 *
 * Start-up: open the state directory, load (or generate) the ECU key, report
 * an install that a power cut interrupted. Then each cycle, in the order of
 * the Uptane Standard §5.4.2 (uptane-standard.md §6.3):
 *
 * 1. provision (device credentials or shared credentials), register the ECUs
 *    (again whenever the set changes) and report device data when it changed;
 * 2. send the signed vehicle manifest (every ECU's version report, with the
 *    installation report and attack reports still owed to the server);
 * 3. full verification (`fullVerification` of the core) of the Director
 *    (root chain, timestamp, snapshot, targets) and, when something is new,
 *    of the Image repository, with the cross-check;
 * 4. download each new image, streaming, with its length as the byte limit,
 *    and check every hash and the exact length (`verifyImage`);
 * 5. persist the verified metadata, then install through the ECU (the
 *    Primary's own through its installer) under a pending-install marker;
 * 6. send the manifest again with the installation report; flush events.
 *
 * On any failed check nothing is installed, the trusted metadata on disk stays
 * as it was (roots accepted on the way excepted, as the Standard wants), and
 * the typed error goes into the next manifest as an attack report.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  attackReportFrom,
  buildVehicleManifest,
  canonicalize,
  checkDirectorTargets,
  EndlessDataError,
  fullVerification,
  generatePrivateKey,
  isInstalled,
  keyTypeOf,
  LocalSigner,
  privateKeyFromPem,
  privateKeyToPem,
  TrustedRepository,
  UptaneError,
  verifyImage,
  type AttackReport,
  type DirectedTarget,
  type InstallationReport,
  type InstallationResult,
  type InstalledImage,
  type JsonObject,
  type SignedDocument,
  type TrustedFiles,
} from '@uptide/core';
import { ConfigError, endpoints as resolveEndpoints, type DeviceConfig, type Endpoints, type SecondarySection } from '../config/config.js';
import { HttpClient, HttpError, type HttpClientOptions } from '../http/client.js';
import { createInstaller, type InstallOutcome, type Installer } from '../installers/index.js';
import { ensureDir } from '../state/atomic.js';
import { StateError, StateStore, type DeviceCredentials, type RepositoryName } from '../state/store.js';
import { CLIENT_NAME, CLIENT_VERSION, configReport, installedPackages, networkInfo, systemInfo } from './device-data.js';
import { openIpSecondaries, type IpSecondaries } from '../secondary/ip-secondary.js';
import { EcuError, PrimaryEcu, type Ecu, type ImageDelivery, type MetadataBundle, type RepositoryMetadata } from './ecu.js';
import { ecuEvent, EventQueue } from './events.js';
import { silentLogger, type Logger } from './log.js';
import { commonName, errorCode } from './identity.js';
import { HttpRepositorySource, imageUrl } from './source.js';

/** aktualizr's cap on responses to POST and PUT. */
const MAX_API_RESPONSE = 64 * 1024;

export interface PrimaryOptions {
  readonly config: DeviceConfig;
  readonly log?: Logger;
  /** The system clock, in epoch ms (tests move it). */
  readonly clock?: () => number;
  /** Delay between HTTP retries (tests shorten it). */
  readonly retryDelayMs?: number;
  /**
   * More ECUs of this vehicle, driven through the same Ecu interface. The IP
   * Secondaries of the configuration (`[[secondaries]]`) are added to these.
   */
  readonly secondaries?: readonly Ecu[];
  /** Installs the Primary's own images instead of the configured `[installer]` (the simulator's verify-only installer). */
  readonly installer?: Installer;
}

export interface CycleError {
  /** An UptaneError code (ROLLBACK, FREEZE…), or NETWORK, HTTP_STATUS, PROVISIONING_FAILED, REGISTRATION_FAILED, … */
  readonly code: string;
  readonly message: string;
}

export interface CycleResult {
  readonly ok: boolean;
  /** New targets the Director listed for this vehicle. */
  readonly updates: number;
  /** Target names installed successfully in this cycle. */
  readonly installed: readonly string[];
  readonly error: CycleError | undefined;
  /** Set when the failure was a failed Uptane check (also queued for the next manifest). */
  readonly attack: AttackReport | undefined;
}

/** An error of the Primary's own steps (registration, a missing root…). */
export class PrimaryError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'PrimaryError';
  }
}

/** Why an install report item failed, when the failure came before the install. */
class UpdateFailure extends Error {
  constructor(
    readonly resultCode: 'VERIFICATION_FAILED' | 'DOWNLOAD_FAILED',
    override readonly cause: unknown,
  ) {
    super((cause as Error).message, { cause });
  }
}

interface Identity {
  readonly deviceId: string;
  readonly endpoints: Endpoints;
  readonly http: HttpClient;
}

interface Downloaded {
  readonly update: DirectedTarget;
  readonly ecu: Ecu;
  readonly path: string;
  readonly installed: InstalledImage;
}

export class Primary {
  private identity: Identity | undefined;
  private readonly events: EventQueue;
  private readonly ecusBySerial: Map<string, Ecu>;
  /** Each repository's object of the latest cycle, for TrustedRepository reuse. */
  private readonly lastRepository = new Map<RepositoryName, TrustedRepository>();
  /** Configured IP Secondaries not reached yet (asked again at each cycle). */
  private missingSecondaries: readonly SecondarySection[] = [];
  private cycling = false;

  private constructor(
    readonly config: DeviceConfig,
    readonly store: StateStore,
    private readonly signer: LocalSigner,
    readonly primaryEcu: PrimaryEcu,
    private readonly log: Logger,
    private readonly clock: () => number,
    private readonly retryDelayMs: number | undefined,
    secondaries: readonly Ecu[],
  ) {
    this.events = new EventQueue(store, log);
    this.ecusBySerial = new Map<string, Ecu>([[primaryEcu.serial, primaryEcu]]);
    for (const e of secondaries) this.addEcu(e);
  }

  private addEcu(e: Ecu): void {
    if (this.ecusBySerial.has(e.serial)) throw new PrimaryError('BAD_ECU_ID', `two ECUs with the serial ${e.serial}`);
    this.ecusBySerial.set(e.serial, e);
  }

  /** Opens the state directory, loads or creates the ECU key, and reports an install a power cut interrupted. */
  static async open(options: PrimaryOptions): Promise<Primary> {
    const { config } = options;
    const log = options.log ?? silentLogger;
    const store = await StateStore.open(config.device.storage);
    try {
      let pem = await store.readEcuKey();
      if (pem === undefined) {
        log.info('generating the ECU key', { type: config.primary.keyType });
        pem = privateKeyToPem(await generatePrivateKey(config.primary.keyType));
        await store.writeEcuKey(pem);
      }
      const key = privateKeyFromPem(pem);
      if (keyTypeOf(key) !== config.primary.keyType) {
        log.warn('the stored ECU key is not of the configured key_type; keeping the stored key (the Director knows it)', {
          stored: keyTypeOf(key),
          configured: config.primary.keyType,
        });
      }
      const signer = new LocalSigner(key, 'uptane');
      // aktualizr's default serial is derived from the ECU key; once chosen it is kept.
      const serial = config.primary.ecuSerial ?? store.state.primaryEcuSerial ?? signer.publicKey.keyId('uptane');
      if (store.state.primaryEcuSerial !== serial) await store.update(() => ({ primaryEcuSerial: serial }));
      const installer = options.installer ?? createInstaller(config.installer);
      const ecu = new PrimaryEcu(serial, config.primary.hardwareId, signer, store, installer);
      // aktualizr's start-up: ask each IP Secondary who it is, waiting on the wait port for the late ones.
      const ip = await openIpSecondaries({ config, store, log, wait: true, onRefusedReport: (a) => store.addAttack(a) });
      const primary = new Primary(config, store, signer, ecu, log, options.clock ?? Date.now, options.retryDelayMs, options.secondaries ?? []);
      primary.joinIpSecondaries(ip);
      await primary.recoverInterruptedInstall();
      return primary;
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /** Every ECU of this vehicle, the Primary first. */
  get ecus(): readonly Ecu[] {
    return [...this.ecusBySerial.values()];
  }

  get deviceId(): string | undefined {
    return this.identity?.deviceId ?? this.config.device.id ?? this.store.state.deviceId;
  }

  async close(): Promise<void> {
    this.identity?.http.close();
    await this.store.close();
  }

  // --- Start-up -------------------------------------------------------------------------

  /** Configured Secondaries that were never reached are asked again; one that answers joins (and is registered). */
  private async discoverSecondaries(): Promise<void> {
    if (this.missingSecondaries.length === 0) return;
    const found = await openIpSecondaries(
      { config: this.config, store: this.store, log: this.log, wait: false, onRefusedReport: (a) => this.store.addAttack(a) },
      this.missingSecondaries,
    );
    this.joinIpSecondaries(found);
  }

  /** Adds the IP Secondaries that answered; one whose serial is already taken stays out (and is asked again later). */
  private joinIpSecondaries(found: IpSecondaries): void {
    const missing = [...found.missing];
    for (const e of found.ecus) {
      try {
        this.addEcu(e);
      } catch {
        this.log.error('a Secondary reported a serial already used in this vehicle; it is left out', { ecu: e.serial, address: e.address });
        const section = this.config.secondaries.find((s) => s.address === e.address);
        if (section) missing.push(section);
      }
    }
    this.missingSecondaries = missing;
  }

  /** A marker left by an install that never finished becomes a failed installation report. */
  private async recoverInterruptedInstall(): Promise<void> {
    const marker = await this.store.readPendingInstall();
    if (!marker) return;
    const description = `INSTALL_INTERRUPTED: the installation of ${marker.targetName} started at ${marker.startedAt} did not finish (power loss or crash)`;
    this.log.error('an installation was interrupted', { target: marker.targetName, ecu: marker.ecuSerial, started: marker.startedAt });
    const ecu = this.ecusBySerial.get(marker.ecuSerial);
    const result: InstallationResult = { success: false, code: 'INSTALL_FAILED', description };
    await this.store.update(() => ({
      pendingInstallationReport: installationReport(marker.correlationId, [{ ecu: marker.ecuSerial, hardwareId: ecu?.hardwareId ?? 'unknown', result }]),
    }));
    await this.events.add(ecuEvent('EcuInstallationCompleted', marker.ecuSerial, marker.correlationId, false, this.now()));
    await this.store.clearPendingInstall();
  }

  private now(): Date {
    return this.store.now(this.clock());
  }

  private httpOptions(): Omit<HttpClientOptions, 'tls' | 'trustedOrigins'> {
    const l = this.config.limits;
    return {
      allowInsecureHttp: this.config.server.allowInsecureHttp,
      connectTimeoutMs: l.connectTimeoutSeconds * 1000,
      idleTimeoutMs: l.idleTimeoutSeconds * 1000,
      minSpeed: { bytesPerSecond: l.minSpeedBytesPerSecond, windowMs: l.minSpeedWindowSeconds * 1000 },
      retries: l.retries,
      retryDelayMs: this.retryDelayMs,
      userAgent: `${CLIENT_NAME}/${CLIENT_VERSION}`,
    };
  }

  /** Device credentials from files, from an earlier provisioning, or provisioned now with shared credentials. */
  private async ensureIdentity(): Promise<Identity> {
    if (this.identity) return this.identity;
    const { config } = this;
    let credentials: DeviceCredentials | undefined;
    let gatewayFromZip: string | undefined;
    const readPem = async (path: string, what: string): Promise<string> => {
      try {
        return await readFile(path, 'utf8');
      } catch (err) {
        throw new ConfigError(`cannot read the ${what} ${path}: ${(err as Error).message}`, 'tls', 'check the path under [tls]');
      }
    };
    const extraCa = config.tls?.ca ? await readPem(config.tls.ca, 'CA certificate') : undefined;
    if (config.tls?.cert && config.tls.key) {
      credentials = { cert: await readPem(config.tls.cert, 'device certificate'), key: await readPem(config.tls.key, 'device key'), ca: extraCa ?? '' };
    } else if (config.provision) {
      // Loaded only here: shared-credential provisioning is the only user of node-forge and yauzl.
      const { readCredentialsZip, provisionWithSharedCredentials } = await import('./provision.js');
      if (config.server.gateway === undefined) gatewayFromZip = (await readCredentialsZip(config.provision.credentials)).gatewayUrl;
      credentials = await this.store.readCredentials();
      if (!credentials) {
        const ep = resolveEndpoints(config, gatewayFromZip);
        const got = await provisionWithSharedCredentials(
          {
            credentialsZip: config.provision.credentials,
            p12Password: config.provision.p12Password,
            expiryDays: config.provision.expiryDays,
            server: ep.provisioning,
            deviceId: config.device.id,
            ca: extraCa,
            http: this.httpOptions(),
          },
          this.store,
          this.log,
        );
        await this.store.writeCredentials(got.credentials);
        credentials = got.credentials;
        this.log.info('provisioned', { device: got.deviceId });
      }
    }
    const endpoints = resolveEndpoints(config, gatewayFromZip);
    const deviceId =
      config.device.id ??
      this.store.state.deviceId ??
      (credentials ? commonName(credentials.cert.split(/(?<=-----END CERTIFICATE-----)/)[0] as string) : undefined);
    if (deviceId === undefined) {
      throw new ConfigError(
        'no device id: [device] id is not set and there is no client certificate to take it from',
        'device.id',
        'set id = "<device id>" under [device]',
      );
    }
    if (this.store.state.deviceId !== deviceId) await this.store.update(() => ({ deviceId }));
    const ca = [extraCa, credentials?.ca].filter((x): x is string => !!x).join('');
    const http = new HttpClient({
      ...this.httpOptions(),
      tls: { ca: ca || undefined, cert: credentials?.cert, key: credentials?.key },
      trustedOrigins: [endpoints.gateway, endpoints.director, endpoints.repo].filter((u) => u.startsWith('https:')),
    });
    this.identity = { deviceId, endpoints, http };
    this.log.info('device identity', { device: deviceId, ecu: this.primaryEcu.serial, gateway: endpoints.gateway });
    return this.identity;
  }

  /** `POST <director>/ecus`, whenever the set of (serial, hardware id, key) differs from what the server accepted. */
  private async ensureRegistered(id: Identity): Promise<void> {
    const body: JsonObject = {
      primary_ecu_serial: this.primaryEcu.serial,
      ecus: this.ecus.map((e) => ({ ecu_serial: e.serial, hardware_identifier: e.hardwareId, clientKey: e.publicKey.toJSON() })),
    };
    const bytes = canonicalize(body, 'uptane');
    const hash = createHash('sha256').update(bytes).digest('hex');
    if (this.store.state.registration === hash) return;
    const res = await id.http.request('POST', `${id.endpoints.director}/ecus`, { body: bytes, maxBytes: MAX_API_RESPONSE });
    const ok = res.status >= 200 && res.status < 300;
    // The answer to an earlier attempt may have been lost: "already registered" for a set we never saw accepted is that set.
    const again = errorCode(res.body) === 'ecu_already_registered' && this.store.state.registration === undefined;
    if (!ok && !again) {
      throw new PrimaryError('REGISTRATION_FAILED', `ECU registration refused: HTTP ${res.status} ${res.body.subarray(0, 200).toString('utf8')}`);
    }
    await this.store.update(() => ({ registration: hash }));
    this.log.info('ECUs registered', { ecus: this.ecus.length });
  }

  /** Device data, each report only when it changed since the server last accepted it. */
  private async reportDeviceData(id: Identity): Promise<void> {
    const reports: Array<[string, string, Uint8Array, string]> = [
      ['PUT', '/system_info', canonicalize(systemInfo(), 'uptane'), 'application/json'],
      ['PUT', '/system_info/network', canonicalize(networkInfo(), 'uptane'), 'application/json'],
      ['PUT', '/core/installed', canonicalize(installedPackages(this.primaryEcu.installedImage()), 'uptane'), 'application/json'],
      ['POST', '/system_info/config', Buffer.from(configReport(this.config, id.endpoints), 'utf8'), 'application/toml'],
    ];
    for (const [method, path, body, contentType] of reports) {
      const hash = createHash('sha256').update(body).digest('hex');
      if (this.store.state.deviceData[path] === hash) continue;
      try {
        const res = await id.http.request(method, `${id.endpoints.gateway}${path}`, { body, contentType, maxBytes: MAX_API_RESPONSE });
        // A 404 means the server does not collect this report; do not try again until it changes.
        if ((res.status >= 200 && res.status < 300) || res.status === 404) {
          await this.store.update((s) => ({ deviceData: { ...s.deviceData, [path]: hash } }));
        } else this.log.warn('device data not accepted', { path, status: res.status });
      } catch (err) {
        this.log.warn('cannot send device data', { path, error: (err as Error).message });
      }
    }
  }

  // --- Manifest ---------------------------------------------------------------------------

  /** The other ECUs' version reports; one that has none (unreachable, never reported) is left out, as aktualizr does. */
  private async otherReports(): Promise<Map<Ecu, SignedDocument>> {
    const out = new Map<Ecu, SignedDocument>();
    for (const ecu of this.ecus) {
      if (ecu === this.primaryEcu) continue;
      try {
        out.set(ecu, await ecu.versionReport([]));
      } catch (err) {
        this.log.error('no version report of an ECU for the manifest', { ecu: ecu.serial, error: (err as Error).message });
      }
    }
    return out;
  }

  /** Builds the signed vehicle manifest with every ECU's fresh version report. */
  async buildManifest(
    attacks: readonly AttackReport[],
    report: InstallationReport | undefined,
    others?: ReadonlyMap<Ecu, SignedDocument>,
  ): Promise<SignedDocument> {
    const theirs = others ?? (await this.otherReports());
    const reports = new Map<string, SignedDocument>([[this.primaryEcu.serial, await this.primaryEcu.versionReport(attacks)]]);
    for (const [ecu, doc] of theirs) reports.set(ecu.serial, doc);
    return buildVehicleManifest({ primaryEcuSerial: this.primaryEcu.serial, vehicleId: this.deviceId, reports, installationReport: report }, this.signer);
  }

  /** `PUT <director>/manifest`. On a 2xx the installation report and attack reports it carried are settled. */
  async sendManifest(): Promise<boolean> {
    const id = await this.ensureIdentity();
    // Secondaries first: a report refused on the way becomes one of the Primary's attacks in this manifest.
    const others = await this.otherReports();
    const attacks = [...this.store.state.pendingAttacks];
    const report = this.store.state.pendingInstallationReport;
    const doc = await this.buildManifest(attacks, report, others);
    let status: number;
    try {
      status = (await id.http.request('PUT', `${id.endpoints.director}/manifest`, { body: canonicalize(doc, 'uptane'), maxBytes: MAX_API_RESPONSE })).status;
    } catch (err) {
      this.log.warn('cannot send the manifest', { error: (err as Error).message });
      return false;
    }
    if (status < 200 || status >= 300) {
      this.log.warn('the manifest was not accepted; its reports will be sent again', { status });
      return false;
    }
    // Nothing carried, nothing to settle: no state write (a check-in makes enough of them).
    if (report !== undefined || attacks.length > 0) {
      await this.store.update((s) => ({
        pendingInstallationReport: s.pendingInstallationReport === report ? undefined : s.pendingInstallationReport,
        pendingAttacks: s.pendingAttacks.filter((a) => !attacks.includes(a)),
      }));
    }
    for (const [ecu, r] of others) await ecu.reportDelivered?.(r);
    this.log.debug('manifest sent', { attacks: attacks.length, report: report !== undefined });
    return true;
  }

  // --- Verification -------------------------------------------------------------------------

  /** The stored trusted metadata, or the pinned initial root, or (trust on first use) `1.root.json`. */
  private async trustedFiles(repo: RepositoryName, id: Identity): Promise<TrustedFiles> {
    const stored = await this.store.readMetadata(repo);
    if (stored) return stored;
    const pinned = repo === 'director' ? this.config.trust.directorRoot : this.config.trust.imageRoot;
    let root: Uint8Array;
    if (pinned !== undefined) {
      try {
        root = await readFile(pinned);
      } catch (err) {
        throw new ConfigError(`cannot read the pinned ${repo} root ${pinned}: ${(err as Error).message}`, `trust.${repo}_root`, 'check the path under [trust]');
      }
    } else if (this.config.trust.trustOnFirstUse) {
      const base = repo === 'director' ? id.endpoints.director : id.endpoints.repo;
      this.log.warn('trusting the first root the server serves (trust_on_first_use)', { repository: repo });
      root = await id.http.get(`${base}/1.root.json`, this.config.limits.rootBytes);
    } else {
      throw new PrimaryError('NO_TRUSTED_ROOT', `no trusted ${repo} root: pin one under [trust]`);
    }
    // The constructor checks that the root carries a threshold of its own keys.
    let probe: TrustedRepository;
    try {
      probe = new TrustedRepository({ root }, { dialect: 'uptane', repository: repo, now: this.now(), isDirector: repo === 'director' });
    } catch (err) {
      if (pinned === undefined) throw err;
      throw new ConfigError(
        `the pinned ${repo} root ${pinned} is not a valid self-signed root: ${(err as Error).message}`,
        `trust.${repo}_root`,
        'pin the 1.root.json the server serves',
      );
    }
    await this.store.writeRoot(repo, root, probe.rootVersion);
    return { root };
  }

  /** The repository's trusted state for this cycle; a stored root that no longer loads is a damaged state directory. */
  private async openRepository(repo: RepositoryName, id: Identity, now: Date): Promise<TrustedRepository> {
    const files = await this.trustedFiles(repo, id);
    try {
      // Files unchanged since the last cycle are taken over parsed and verified (reuse compares bytes).
      const trusted = new TrustedRepository(files, {
        dialect: 'uptane',
        repository: repo,
        now,
        limits: this.limits(),
        isDirector: repo === 'director',
        reuse: this.lastRepository.get(repo),
      });
      this.lastRepository.set(repo, trusted);
      return trusted;
    } catch (err) {
      const file = this.store.path('metadata', repo, 'root.json');
      throw new StateError(
        'STATE_CORRUPT',
        `the trusted ${repo} root ${file} cannot be loaded (${(err as Error).message}); restore it from metadata/${repo}/roots/, or re-provision the device`,
        file,
        {
          cause: err,
        },
      );
    }
  }

  private limits() {
    const l = this.config.limits;
    return {
      rootBytes: l.rootBytes,
      timestampBytes: l.timestampBytes,
      snapshotBytes: l.snapshotBytes,
      directorTargetsBytes: l.directorTargetsBytes,
      imageTargetsBytes: l.imageTargetsBytes,
    };
  }

  /** Director targets that verified and passed the Director-only checks, and what they direct that is new. */
  private verifiedDirectives(director: TrustedRepository, vehicle: Parameters<typeof checkDirectorTargets>[1]) {
    const targets = director.checkedTargets('targets');
    if (!targets) return undefined;
    try {
      checkDirectorTargets(targets.signed, vehicle);
    } catch {
      return undefined;
    }
    const items: Array<{ ecu: string; hardwareId: string }> = [];
    for (const [name, t] of targets.signed.targets) {
      for (const [serial, info] of t.ecuIdentifiers) {
        if (!isInstalled(name, t, this.ecusBySerial.get(serial)?.installedImage())) items.push({ ecu: serial, hardwareId: info.hardwareId });
      }
    }
    return items.length > 0 ? { correlationId: targets.signed.correlationId, items } : undefined;
  }

  // --- The cycle ------------------------------------------------------------------------------

  /** One update cycle. Never throws: failures are in the result (and logged, and reported to the server). */
  async cycle(): Promise<CycleResult> {
    if (this.cycling) throw new PrimaryError('BUSY', 'a cycle is already running');
    this.cycling = true;
    try {
      return await this.runCycle();
    } finally {
      this.cycling = false;
    }
  }

  private async runCycle(): Promise<CycleResult> {
    let id: Identity;
    try {
      id = await this.ensureIdentity();
      await this.discoverSecondaries();
      await this.ensureRegistered(id);
      await this.reportDeviceData(id);
    } catch (err) {
      this.log.error('cannot reach the server as this device', { error: (err as Error).message });
      return failed(err);
    }
    await this.sendManifest();

    const now = this.now();
    const installedNames: string[] = [];
    let updates = 0;
    let result: CycleResult;
    let director: TrustedRepository | undefined;
    const vehicle = {
      ecus: new Map(this.ecus.map((e) => [e.serial, e.hardwareId])),
      vehicleId: id.deviceId,
      requireVehicleIdWhenEmpty: this.config.trust.requireVehicleId,
    };
    try {
      // A repository that re-signs between our timestamp and snapshot (or targets) requests looks exactly
      // like mix-and-match; one immediate retry with a fresh timestamp tells such a race from an attack,
      // which would show again (and is then reported).
      const verifyOnce = async () => {
        const dir = await this.openRepository('director', id, now);
        director = dir;
        const img = await this.openRepository('image', id, now);
        const result = await fullVerification({
          director: dir,
          directorSource: new HttpRepositorySource(id.http, id.endpoints.director),
          image: img,
          imageSource: new HttpRepositorySource(id.http, id.endpoints.repo, this.config.server.delegationsPath),
          vehicle,
          installed: new Map(this.ecus.flatMap((e) => (e.installedImage() ? [[e.serial, e.installedImage() as InstalledImage] as const] : []))),
          previousReleaseCounters: new Map(Object.entries(this.store.state.releaseCounters)),
          hooks: {
            director: { onRoot: (b, v) => this.store.writeRoot('director', b, v), onDiscard: () => this.store.writeMetadata('director', dir.state()) },
            image: { onRoot: (b, v) => this.store.writeRoot('image', b, v), onDiscard: () => this.store.writeMetadata('image', img.state()) },
          },
        });
        return { verified: result, dir, img };
      };
      let attempt: Awaited<ReturnType<typeof verifyOnce>>;
      try {
        attempt = await verifyOnce();
      } catch (err) {
        if (!mayBeResigningRace(err)) throw err;
        this.log.info('metadata changed while it was fetched; fetching it again once', { code: (err as UptaneError).code, role: (err as UptaneError).role });
        attempt = await verifyOnce();
      }
      const { verified, img: image } = attempt;
      director = attempt.dir;
      updates = verified.updates.length;
      if (updates > 0) this.log.info('updates found', { count: updates, targets: verified.updates.map((u) => u.name).join(',') });
      else this.log.debug('nothing new to install');

      // Partial downloads of images no longer directed would only take space.
      await this.pruneDownloads(new Set(verified.updates.map((u) => downloadName(u))));
      // Images first, all of them verified, before anything is persisted or installed.
      const downloaded: Downloaded[] = [];
      for (const u of verified.updates) downloaded.push(await this.fetchImage(id, u, verified.correlationId));

      // Everything checked: this metadata is now the trusted baseline (§5.4.4, "what to store").
      await this.store.writeMetadata('director', director.state());
      if (verified.imageChecked) await this.store.writeMetadata('image', image.state());
      await this.store.recordVerifiedTime(now);

      if (downloaded.length > 0) {
        const bundle = await this.metadataBundle(director, verified.imageChecked ? image : undefined);
        const items: ReportItem[] = [];
        // The Primary's own image first: a Secondary that cannot be reached only delays its own update.
        downloaded.sort((a, b) => Number(b.ecu === this.primaryEcu) - Number(a.ecu === this.primaryEcu));
        for (const d of downloaded) {
          const outcome = await this.installOne(d, bundle, verified.correlationId);
          if (outcome.success) installedNames.push(d.update.name);
          items.push({ ecu: d.ecu.serial, hardwareId: d.ecu.hardwareId, result: outcome });
        }
        await this.store.update(() => ({ pendingInstallationReport: installationReport(verified.correlationId, items) }));
        // Several ECUs may share an image file; it goes once every install is done.
        for (const path of new Set(downloaded.map((d) => d.path))) await rm(path, { force: true });
      }
      const allOk = installedNames.length === downloaded.length;
      result = {
        ok: allOk,
        updates,
        installed: installedNames,
        error: allOk ? undefined : { code: 'INSTALL_FAILED', message: 'an installation failed' },
        attack: undefined,
      };
    } catch (caught) {
      const err = caught instanceof UpdateFailure ? caught.cause : caught;
      let attack: AttackReport | undefined;
      if (err instanceof UptaneError) {
        attack = attackReportFrom(err);
        await this.store.addAttack(attack);
        this.log.error('verification failed: nothing installed', { code: err.code, repository: err.repository, role: err.role, error: err.message });
      } else {
        this.log.error('update cycle failed', { error: (err as Error).message });
      }
      // Tell the Director which of its directives failed, when we trust what it directed.
      const directives = director ? this.verifiedDirectives(director, vehicle) : undefined;
      if (directives && (err instanceof UptaneError || caught instanceof UpdateFailure)) {
        const code = caught instanceof UpdateFailure ? caught.resultCode : 'VERIFICATION_FAILED';
        const message = (err as Error).message;
        await this.store.update(() => ({
          pendingInstallationReport: installationReport(
            directives.correlationId,
            directives.items.map((i) => ({ ...i, result: { success: false, code, description: message } })),
          ),
        }));
      }
      result = { ...failed(err), updates, attack };
    }

    if (this.store.state.pendingInstallationReport !== undefined || this.store.state.pendingAttacks.length > 0) await this.sendManifest();
    await this.events.flush(id.http, id.endpoints.gateway);
    return result;
  }

  /** Downloads one image (resuming a partial one) and checks every hash and the exact length. */
  private async fetchImage(id: Identity, u: DirectedTarget, correlationId: string | undefined): Promise<Downloaded> {
    const ecu = this.ecusBySerial.get(u.ecuSerial);
    // G-8 already refused unknown ECUs; this guards the invariant.
    if (!ecu) throw new PrimaryError('BAD_ECU_ID', `no ECU ${u.ecuSerial} in this vehicle`);
    const target = u.target;
    await this.events.add(ecuEvent('EcuDownloadStarted', ecu.serial, correlationId, undefined, this.now()));
    try {
      if (target.length > this.config.limits.maxImageBytes) {
        throw new EndlessDataError(`${u.name} is ${target.length} bytes, more than max_image_bytes (${this.config.limits.maxImageBytes})`, { role: 'image' });
      }
      const dir = this.store.path('downloads');
      await ensureDir(dir);
      const path = join(dir, downloadName(u));
      const url = imageUrl(id.endpoints.repo, u.name, target, u.imageTarget);
      this.log.info('downloading', { target: u.name, bytes: target.length, url });
      let got;
      try {
        got = await id.http.download(url, path, { maxBytes: target.length });
      } catch (err) {
        throw new UpdateFailure('DOWNLOAD_FAILED', err);
      }
      try {
        // §5.4.2.4: against the Director's metadata, every hash; the Image repository's agrees (cross-checked).
        verifyImage(u.name, target, got);
        if (u.imageTarget) verifyImage(u.name, u.imageTarget, got);
      } catch (err) {
        await rm(path, { force: true });
        throw new UpdateFailure('VERIFICATION_FAILED', err);
      }
      if (got.resumedFrom > 0) this.log.info('download resumed', { target: u.name, from: got.resumedFrom });
      await this.events.add(ecuEvent('EcuDownloadCompleted', ecu.serial, correlationId, true, this.now()));
      return { update: u, ecu, path, installed: { filename: u.name, length: got.length, hashes: got.hashes } };
    } catch (err) {
      await this.events.add(ecuEvent('EcuDownloadCompleted', ecu.serial, correlationId, false, this.now()));
      throw err;
    }
  }

  private async pruneDownloads(keep: ReadonlySet<string>): Promise<void> {
    const dir = this.store.path('downloads');
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const n of names) if (!keep.has(n)) await rm(join(dir, n), { force: true });
  }

  /** The metadata ECUs verify themselves (Secondaries); raw bytes as trusted. */
  private async metadataBundle(director: TrustedRepository, image: TrustedRepository | undefined): Promise<MetadataBundle> {
    const repoMeta = async (name: RepositoryName, repo: TrustedRepository): Promise<RepositoryMetadata> => {
      const s = repo.state();
      return {
        roots: (await this.store.readRootChain(name)).map((r) => r.bytes),
        timestamp: s.timestamp,
        snapshot: s.snapshot,
        targets: s.targets,
        delegated: s.delegated ?? new Map(),
      };
    };
    return { director: await repoMeta('director', director), image: image ? await repoMeta('image', image) : undefined };
  }

  /** Installs one verified image under the pending-install marker. */
  private async installOne(d: Downloaded, bundle: MetadataBundle, correlationId: string | undefined): Promise<InstallOutcome> {
    const { ecu, update } = d;
    await this.store.writePendingInstall({
      ecuSerial: ecu.serial,
      targetName: update.name,
      length: update.target.length,
      hashes: update.target.hashes,
      correlationId,
      startedAt: new Date(this.clock()).toISOString(),
    });
    await this.events.add(ecuEvent('EcuInstallationStarted', ecu.serial, correlationId, undefined, this.now()));
    let outcome: InstallOutcome;
    try {
      const image: ImageDelivery = { targetName: update.name, path: d.path, target: update.target, imageTarget: update.imageTarget, correlationId };
      await ecu.putMetadata(bundle, image);
      await ecu.putImage(image);
      outcome = await ecu.install(image, this.log);
    } catch (err) {
      const code = err instanceof EcuError ? err.resultCode : err instanceof UptaneError ? 'VERIFICATION_FAILED' : 'INSTALL_FAILED';
      outcome = { success: false, code, description: (err as Error).message };
    }
    if (outcome.success) {
      const counter = update.imageTarget?.releaseCounter ?? update.target.releaseCounter;
      await this.store.update((s) => ({
        installed: { ...s.installed, [ecu.serial]: d.installed },
        releaseCounters: counter === undefined ? s.releaseCounters : { ...s.releaseCounters, [ecu.serial]: counter },
      }));
      this.log.info('installed', { target: update.name, ecu: ecu.serial });
    } else {
      this.log.error('installation failed', { target: update.name, ecu: ecu.serial, code: outcome.code, error: outcome.description });
    }
    await this.events.add(ecuEvent('EcuInstallationCompleted', ecu.serial, correlationId, outcome.success, this.now()));
    await this.store.clearPendingInstall();
    return outcome;
  }

  /**
   * Cycles every poll interval until the signal aborts (a cycle in progress
   * finishes first). With `once`, runs one cycle and returns its result.
   */
  async run(options: { once?: boolean; signal?: AbortSignal } = {}): Promise<CycleResult | undefined> {
    let last: CycleResult | undefined;
    for (;;) {
      if (options.signal?.aborted) return last;
      last = await this.cycle();
      if (options.once) return last;
      await sleep(this.config.device.pollIntervalSeconds * 1000, options.signal);
    }
  }
}

interface ReportItem {
  readonly ecu: string;
  readonly hardwareId: string;
  readonly result: InstallationResult;
}

/**
 * aktualizr's installation report: the device-level result is OK when every
 * ECU succeeded, else `hwid:CODE` of each failed ECU joined with `|`.
 */
export function installationReport(correlationId: string | undefined, items: readonly ReportItem[]): InstallationReport {
  const failures = items.filter((i) => !i.result.success);
  const result: InstallationResult =
    failures.length === 0
      ? { success: true, code: 'OK', description: 'all installations succeeded' }
      : {
          success: false,
          code: failures.map((f) => `${f.hardwareId}:${f.result.code}`).join('|'),
          description: failures.map((f) => `${f.ecu}: ${f.result.description}`).join('; '),
        };
  return {
    correlationId: correlationId ?? '',
    result,
    rawReport: items.map((i) => `${i.ecu}: ${i.result.code}: ${i.result.description}`).join('\n'),
    items: items.map((i) => ({ ecu: i.ecu, result: i.result })),
  };
}

/** Downloads are named by the image's hash (hex, so never a path), which lets a resume find them. */
function downloadName(u: DirectedTarget): string {
  const h = u.target.hashes['sha256'] ?? u.target.hashes['sha512'] ?? createHash('sha256').update(u.name).digest('hex');
  return `${h.toLowerCase()}.image`;
}

function failed(err: unknown): CycleResult {
  const code =
    err instanceof UptaneError || err instanceof HttpError || err instanceof PrimaryError
      ? err.code
      : (err as { code?: unknown })?.code !== undefined && typeof (err as { code?: unknown }).code === 'string'
        ? (err as { code: string }).code
        : err instanceof ConfigError
          ? 'CONFIG'
          : 'INTERNAL_ERROR';
  return { ok: false, updates: 0, installed: [], error: { code, message: (err as Error)?.message ?? String(err) }, attack: undefined };
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolveSleep) => {
    if (signal?.aborted) {
      resolveSleep();
      return;
    }
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolveSleep();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Whether a failure could be a repository re-signing between two of our
 * requests: the snapshot or a targets file no longer matching (or longer than)
 * what the timestamp or snapshot fetched a moment before said.
 */
function mayBeResigningRace(err: unknown): boolean {
  if (!(err instanceof UptaneError)) return false;
  if (err.code !== 'MIX_AND_MATCH' && err.code !== 'ENDLESS_DATA') return false;
  return err.role !== undefined && err.role !== 'root' && err.role !== 'timestamp';
}
