/**
 * The Primary's side of an IP Secondary: an `Ecu` (primary/ecu.ts) driven
 * over aktualizr's IP-Secondary protocol, so that the Primary's cycle treats
 * it like its own ECU. It talks to our `uptide-secondary` and to stock
 * `aktualizr-secondary` alike, in aktualizr's message sequence
 * (ipuptanesecondary.cc, sotauptaneclient.cc):
 *
 * - start-up: `getInfoReq` to each configured address; the ones that do not
 *   answer are waited for on `secondaries_wait_port`; what each reported
 *   (serial, hardware id, key) is kept, so a Secondary that is off later is
 *   still registered and its last report reused;
 * - version report: `versionReq`, `manifestReq`; the report must be signed by
 *   the key the Secondary reported, or it is refused (and the Primary reports
 *   that as its own attack);
 * - update: `getInfoReq` until reachable (`preinstall_wait`), `versionReq`,
 *   `rootVerReq` then `putRootReq` for each root the Secondary lacks (Director
 *   then Image), `putMetaReq2` with the latest files, `uploadDataReq` in
 *   1 KiB chunks, `installReq` with the target name.
 *
 * What goes into `putMetaReq2` (§5.4.2.6, only what the Secondary needs):
 * Director root and targets (aktualizr's pair) and, for a full-verification
 * Secondary, the Director timestamp and snapshot and the Image repository's
 * root, timestamp, snapshot, targets and every delegated targets file read
 * while resolving its image (role `delegations/<name>`). Stock
 * aktualizr-secondary ignores the roles it does not know.
 */
import { open } from 'node:fs/promises';
import {
  DEFAULT_LIMITS,
  ManifestError,
  parseEcuVersionReport,
  parseJson,
  parseTargets,
  PublicKey,
  resolveDelegations,
  resultCodeFromNumber,
  TargetNotFoundError,
  verifySignedDocument,
  type AttackReport,
  type EcuVersionReport,
  type InstalledImage,
  type JsonObject,
  type JsonValue,
  type SignedDocument,
} from '@uptide/core';
import type { DeviceConfig, SecondarySection } from '../config/config.js';
import type { InstallOutcome } from '../installers/index.js';
import { EcuError, type Ecu, type ImageDelivery, type MetadataBundle, type RepositoryMetadata } from '../primary/ecu.js';
import type { Logger } from '../primary/log.js';
import { ensureDir, readIfExists, removeStaleTempFiles, writeFileAtomic } from '../state/atomic.js';
import type { StateStore } from '../state/store.js';
import {
  isIpUptaneError,
  keyTypeName,
  PROTOCOL_VERSION,
  REPO_TYPE,
  RESULT_CODE,
  SecondaryClient,
  UPLOAD_CHUNK_SIZE,
  waitForSecondaries,
  type Endpoint,
  type GetInfoResp,
  type IpUptaneMessage,
  type MessageOf,
  type MessageType,
  type MetaJson,
} from './protocol/index.js';
import { DELEGATED_ROLE_PREFIX } from './secondary.js';

const DIALECT = 'uptane';

/** Who a Secondary says it is (getInfoResp). */
export interface SecondaryIdentity {
  readonly serial: string;
  readonly hardwareId: string;
  readonly publicKey: PublicKey;
}

/** A getInfoResp as an identity; aktualizr sends the key as hex (Ed25519) or PEM (RSA). */
export function identityFromInfo(info: GetInfoResp): SecondaryIdentity {
  const type = keyTypeName(info.keyType);
  if (type === undefined) throw new EcuError('INTERNAL_ERROR', `Secondary ${info.ecuSerial} reported an unknown key type ${info.keyType}`);
  const publicKey = PublicKey.fromJSON({ keytype: type === 'ED25519' ? 'ED25519' : 'RSA', keyval: { public: info.key } }, DIALECT, 'getInfoResp.key');
  if (info.ecuSerial.length === 0 || info.hwId.length === 0) throw new EcuError('INTERNAL_ERROR', 'a Secondary reported an empty serial or hardware id');
  return { serial: info.ecuSerial, hardwareId: info.hwId, publicKey };
}

export interface IpSecondaryTimeouts {
  /** One request, connection included. */
  readonly requestMs: number;
  /** installReq (the Secondary's installer may take long). */
  readonly installMs: number;
  /** How long to keep pinging an unreachable Secondary before its update fails. */
  readonly preinstallWaitMs: number;
}

/** What the Primary remembers of a Secondary across restarts (`<storage>/secondaries/<address>.json`). */
interface Remembered {
  readonly identity: SecondaryIdentity;
  readonly report: SignedDocument | undefined;
  /** The report carries attacks the Director has not accepted yet. */
  readonly undelivered: boolean;
}

const CACHE_FORMAT = 'uptide-ip-secondary';

function cacheFile(store: StateStore, address: string): string {
  return store.path('secondaries', `${encodeURIComponent(address)}.json`);
}

async function readRemembered(store: StateStore, address: string, log: Logger): Promise<Remembered | undefined> {
  const bytes = await readIfExists(cacheFile(store, address));
  if (bytes === undefined) return undefined;
  try {
    const o = parseJson(bytes) as JsonObject;
    if (o['format'] !== CACHE_FORMAT || o['version'] !== 1) throw new Error('unknown format');
    const identity = {
      serial: String(o['serial']),
      hardwareId: String(o['hardwareId']),
      publicKey: PublicKey.fromJSON(o['key'], DIALECT),
    };
    const report = o['report'] === undefined ? undefined : (parseEcuVersionReport(o['report'] as JsonValue).document as SignedDocument);
    return { identity, report, undelivered: o['undelivered'] === true };
  } catch (err) {
    // Only a cache: the Secondary is asked again.
    log.warn('ignoring a damaged Secondary cache file', { file: cacheFile(store, address), error: (err as Error).message });
    return undefined;
  }
}

async function writeRemembered(store: StateStore, address: string, r: Remembered): Promise<void> {
  await ensureDir(store.path('secondaries'));
  const o: JsonObject = {
    format: CACHE_FORMAT,
    version: 1,
    address,
    serial: r.identity.serial,
    hardwareId: r.identity.hardwareId,
    key: r.identity.publicKey.toJSON(),
    undelivered: r.undelivered,
  };
  if (r.report) o['report'] = r.report as unknown as JsonValue;
  await writeFileAtomic(cacheFile(store, address), JSON.stringify(o) + '\n');
}

/** The delegated targets files read while resolving `name` (what a Secondary's own search will ask for). */
export async function delegationsOnPath(image: RepositoryMetadata, name: string, hardwareId: string): Promise<Map<string, Uint8Array>> {
  const used = new Map<string, Uint8Array>();
  if (image.targets === undefined || image.delegated.size === 0) return used;
  try {
    await resolveDelegations(parseTargets(image.targets, DIALECT), name, {
      dialect: DIALECT,
      hardwareId,
      limits: DEFAULT_LIMITS,
      load: (role) => {
        const bytes = image.delegated.get(role);
        if (bytes === undefined) return Promise.reject(new TargetNotFoundError(`no ${role} metadata`, { repository: 'image', role }));
        used.set(role, bytes);
        return Promise.resolve(parseTargets(bytes, DIALECT));
      },
    });
  } catch {
    // The Primary resolved this target when it verified it; what the walk read is what is needed.
  }
  return used;
}

/** aktualizr's result code names (`VERIFICATION_FAILED`…) for a wire number. */
function resultName(n: number): string {
  return resultCodeFromNumber(n);
}

function versionOf(bytes: Uint8Array): number | undefined {
  try {
    const v = (parseJson(bytes) as { signed?: { version?: unknown } }).signed?.version;
    return typeof v === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface IpSecondaryOptions {
  readonly endpoint: Endpoint;
  /** The configured address (`host:port`), which names the cache file. */
  readonly address: string;
  readonly verification: 'full' | 'partial';
  readonly identity: SecondaryIdentity;
  readonly timeouts: IpSecondaryTimeouts;
  readonly store: StateStore;
  readonly log: Logger;
  /** A report that did not verify with the Secondary's key: the Primary reports it as its own attack. */
  readonly onRefusedReport?: (attack: AttackReport) => Promise<void> | void;
  /** What was remembered from an earlier run. */
  readonly remembered?: Remembered | undefined;
}

export class IpSecondary implements Ecu {
  private readonly client: SecondaryClient;
  private report: SignedDocument | undefined;
  private parsed: EcuVersionReport | undefined;
  private undelivered: boolean;

  constructor(private readonly options: IpSecondaryOptions) {
    this.client = new SecondaryClient(options.endpoint, { connectTimeoutMs: options.timeouts.requestMs, timeoutMs: options.timeouts.requestMs });
    const r = options.remembered;
    const same = r !== undefined && r.identity.serial === options.identity.serial && r.identity.publicKey.equals(options.identity.publicKey);
    this.report = same ? r.report : undefined;
    this.parsed = this.report ? parseEcuVersionReport(this.report as unknown as JsonValue) : undefined;
    this.undelivered = same ? r.undelivered : false;
  }

  get serial(): string {
    return this.options.identity.serial;
  }

  get hardwareId(): string {
    return this.options.identity.hardwareId;
  }

  get publicKey(): PublicKey {
    return this.options.identity.publicKey;
  }

  get endpoint(): Endpoint {
    return this.options.endpoint;
  }

  /** The address configured in `[[secondaries]]`. */
  get address(): string {
    return this.options.address;
  }

  get verification(): 'full' | 'partial' {
    return this.options.verification;
  }

  /** As the Secondary last reported it (in a report that verified). */
  installedImage(): InstalledImage | undefined {
    return this.parsed?.installedImage;
  }

  /** Writes what the Primary keeps of this Secondary (identity, last report). */
  async remember(): Promise<void> {
    await writeRemembered(this.options.store, this.options.address, { identity: this.options.identity, report: this.report, undelivered: this.undelivered });
  }

  private rpc<T extends MessageType>(msg: IpUptaneMessage, expect: T | readonly T[], timeoutMs?: number): Promise<MessageOf<T>> {
    return this.client.request(msg, { expect, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
  }

  /** getInfoReq as a ping. */
  async ping(): Promise<boolean> {
    try {
      await this.rpc({ type: 'getInfoReq' }, 'getInfoResp');
      return true;
    } catch {
      return false;
    }
  }

  /** versionReq; a Secondary that closes without answering but still answers a ping speaks version 1. */
  async protocolVersion(): Promise<number> {
    try {
      const r = await this.rpc({ type: 'versionReq', version: PROTOCOL_VERSION }, 'versionResp');
      return Math.min(r.version, PROTOCOL_VERSION);
    } catch (err) {
      if (isIpUptaneError(err, 'CONNECTION_CLOSED') && (await this.ping())) return 1;
      throw err;
    }
  }

  /**
   * The Secondary's own signed report (§5.4.2.1). A report carrying attacks is
   * reused until a manifest with it was accepted (reportDelivered), so the
   * attacks reach the Director even when a manifest is lost; an unreachable
   * Secondary's last report is reused, as aktualizr does.
   */
  async versionReport(): Promise<SignedDocument> {
    if (this.undelivered && this.report) return this.report;
    let fresh: { doc: SignedDocument; parsed: EcuVersionReport };
    try {
      fresh = await this.fetchReport();
    } catch (err) {
      if (err instanceof ManifestError) {
        const attack: AttackReport = { code: 'BAD_MANIFEST', message: `the version report of Secondary ${this.serial} was refused: ${err.message}` };
        this.options.log.error('refused a Secondary version report', { ecu: this.serial, error: err.message });
        await this.options.onRefusedReport?.(attack);
      } else {
        this.options.log.warn('cannot reach a Secondary; its last report is reused', { ecu: this.serial, error: (err as Error).message });
      }
      if (this.report) return this.report;
      throw err;
    }
    this.report = fresh.doc;
    this.parsed = fresh.parsed;
    this.undelivered = fresh.parsed.attacks.length > 0;
    await this.remember();
    return fresh.doc;
  }

  async reportDelivered(report: SignedDocument): Promise<void> {
    if (this.undelivered && report === this.report) {
      this.undelivered = false;
      await this.remember();
    }
  }

  private async fetchReport(): Promise<{ doc: SignedDocument; parsed: EcuVersionReport }> {
    await this.protocolVersion();
    const resp = await this.rpc({ type: 'manifestReq' }, 'manifestResp');
    let parsed: EcuVersionReport;
    try {
      parsed = parseEcuVersionReport(parseJson(resp.manifest));
    } catch (err) {
      throw new ManifestError(`not a version report: ${(err as Error).message}`, { cause: err });
    }
    if (parsed.ecuSerial !== this.serial) throw new ManifestError(`the report is for ECU ${parsed.ecuSerial}, not ${this.serial}`);
    // §5.4.2.1: only a report signed with this Secondary's key goes into the vehicle manifest.
    if (!verifySignedDocument(parsed.document, this.publicKey))
      throw new ManifestError(`the report is not signed by the key Secondary ${this.serial} registered`);
    return { doc: parsed.document, parsed };
  }

  /** aktualizr's waitSecondariesReachable: ping every second until it answers or the wait is over. */
  private async waitReachable(): Promise<void> {
    const deadline = Date.now() + this.options.timeouts.preinstallWaitMs;
    for (;;) {
      if (await this.ping()) return;
      if (Date.now() >= deadline) {
        throw new EcuError('INTERNAL_ERROR', `Secondary ${this.serial} at ${this.options.address} is not reachable`);
      }
      await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
    }
  }

  /** rootVerReq, then putRootReq for each root between the Secondary's and the latest (the latest goes with the metadata). */
  private async sendRoots(repo: 'director' | 'image', roots: readonly Uint8Array[]): Promise<void> {
    const byVersion = new Map<number, Uint8Array>();
    for (const r of roots) {
      const v = versionOf(r);
      if (v !== undefined) byVersion.set(v, r);
    }
    const latest = Math.max(0, ...byVersion.keys());
    const repotype = repo === 'director' ? REPO_TYPE.director : REPO_TYPE.image;
    const have = (await this.rpc({ type: 'rootVerReq', repotype }, 'rootVerResp')).version;
    if (have < 0) throw new EcuError('INTERNAL_ERROR', `Secondary ${this.serial} reported an invalid ${repo} root version ${have}`);
    for (let v = have + 1; v < latest; v++) {
      const bytes = byVersion.get(v);
      if (bytes === undefined)
        throw new EcuError('INTERNAL_ERROR', `Secondary ${this.serial} needs ${repo} root version ${v}, which this Primary does not hold`);
      const r = await this.rpc({ type: 'putRootReq', repotype, json: bytes }, 'putRootResp');
      if (r.result === RESULT_CODE.ok) continue;
      // As aktualizr: a Secondary that answered 0 and declines 1.root.json does not take roots this way.
      if (v === 1) {
        this.options.log.warn('the Secondary does not take roots one by one; going on', { ecu: this.serial, repository: repo });
        return;
      }
      throw new EcuError(resultName(r.result), `Secondary ${this.serial} refused ${repo} root version ${v}: ${r.description}`);
    }
  }

  /**
   * A Secondary that stops answering is not a failed verification: the
   * transport's errors become the result code aktualizr would report for the step.
   */
  private async step<T>(code: string, what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (isIpUptaneError(err)) throw new EcuError(code, `Secondary ${this.serial} ${what}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  putMetadata(bundle: MetadataBundle, image: ImageDelivery): Promise<void> {
    return this.step('INTERNAL_ERROR', 'did not take the metadata', () => this.sendMetadata(bundle, image));
  }

  putImage(image: ImageDelivery): Promise<void> {
    return this.step('DOWNLOAD_FAILED', 'did not take the image', () => this.sendImage(image));
  }

  install(image: ImageDelivery): Promise<InstallOutcome> {
    return this.step('INSTALL_FAILED', 'stopped answering during the installation', () => this.runInstall(image));
  }

  private async sendMetadata(bundle: MetadataBundle, image: ImageDelivery): Promise<void> {
    const full = this.verification === 'full';
    await this.waitReachable();
    const version = await this.protocolVersion();
    if (version < 2) throw new EcuError('INTERNAL_ERROR', `Secondary ${this.serial} speaks IP-Secondary protocol version ${version}; version 2 is needed`);
    const directorRoot = bundle.director.roots.at(-1);
    if (directorRoot === undefined || bundle.director.targets === undefined) throw new EcuError('INTERNAL_ERROR', 'no trusted Director metadata to send');
    await this.sendRoots('director', bundle.director.roots);
    const directorRepo: MetaJson[] = [
      { role: 'root', json: directorRoot },
      { role: 'targets', json: bundle.director.targets },
    ];
    const imageRepo: MetaJson[] = [];
    if (full) {
      const img = bundle.image;
      const imageRoot = img?.roots.at(-1);
      if (!img || imageRoot === undefined || img.timestamp === undefined || img.snapshot === undefined || img.targets === undefined) {
        throw new EcuError('INTERNAL_ERROR', 'no trusted Image repository metadata to send to a full-verification Secondary');
      }
      await this.sendRoots('image', img.roots);
      // Our extension: the Director's timestamp and snapshot, so a full-verification Secondary runs the whole procedure.
      if (bundle.director.timestamp !== undefined && bundle.director.snapshot !== undefined) {
        directorRepo.push({ role: 'timestamp', json: bundle.director.timestamp }, { role: 'snapshot', json: bundle.director.snapshot });
      }
      imageRepo.push(
        { role: 'root', json: imageRoot },
        { role: 'timestamp', json: img.timestamp },
        { role: 'snapshot', json: img.snapshot },
        { role: 'targets', json: img.targets },
      );
      for (const [role, json] of await delegationsOnPath(img, image.targetName, this.hardwareId))
        imageRepo.push({ role: `${DELEGATED_ROLE_PREFIX}${role}`, json });
    }
    const r = await this.rpc({ type: 'putMetaReq2', directorRepo, imageRepo }, 'putMetaResp2');
    if (r.result !== RESULT_CODE.ok) throw new EcuError(resultName(r.result), `Secondary ${this.serial} refused the metadata: ${r.description}`);
  }

  /** The verified image in uploadDataReq chunks of 1 KiB (aktualizr's size), over one connection. */
  private async sendImage(image: ImageDelivery): Promise<void> {
    const conn = await this.client.connect();
    const fh = await open(image.path, 'r');
    try {
      const block = Buffer.alloc(64 * UPLOAD_CHUNK_SIZE);
      let sent = 0;
      for (;;) {
        const { bytesRead } = await fh.read(block, 0, block.length, sent);
        if (bytesRead === 0) break;
        for (let off = 0; off < bytesRead; off += UPLOAD_CHUNK_SIZE) {
          const data = block.subarray(off, Math.min(off + UPLOAD_CHUNK_SIZE, bytesRead));
          const r = await conn.request({ type: 'uploadDataReq', data }, { expect: 'uploadDataResp' });
          if (r.result !== RESULT_CODE.ok) throw new EcuError(resultName(r.result), `Secondary ${this.serial} refused the image: ${r.description}`);
        }
        sent += bytesRead;
      }
      if (sent !== image.target.length)
        throw new EcuError('DOWNLOAD_FAILED', `${image.targetName} is ${sent} bytes on the Primary, ${image.target.length} in its metadata`);
    } finally {
      await fh.close();
      await conn.close();
    }
  }

  private async runInstall(image: ImageDelivery): Promise<InstallOutcome> {
    const r = await this.rpc({ type: 'installReq', hash: image.targetName }, ['installResp2', 'installResp'], this.options.timeouts.installMs);
    const description = r.type === 'installResp2' ? r.description : '';
    // aktualizr's InstallationResult::isSuccess: OK and ALREADY_PROCESSED.
    const success = r.result === RESULT_CODE.ok || r.result === RESULT_CODE.alreadyProcessed;
    const code = success ? 'OK' : resultName(r.result);
    return { success, code, description: description || `Secondary ${this.serial}: ${code}` };
  }
}

async function getInfo(endpoint: Endpoint, timeoutMs: number): Promise<GetInfoResp> {
  return new SecondaryClient(endpoint, { connectTimeoutMs: timeoutMs, timeoutMs }).request({ type: 'getInfoReq' }, { expect: 'getInfoResp' });
}

function timeoutsOf(config: DeviceConfig): IpSecondaryTimeouts {
  const s = config.ipSecondaries;
  return { requestMs: s.requestTimeoutSeconds * 1000, installMs: s.installTimeoutSeconds * 1000, preinstallWaitMs: s.preinstallWaitSeconds * 1000 };
}

export interface IpSecondaries {
  readonly ecus: IpSecondary[];
  /** Configured Secondaries never reached and not remembered: asked again each cycle. */
  readonly missing: SecondarySection[];
}

export interface OpenIpSecondariesOptions {
  readonly config: DeviceConfig;
  readonly store: StateStore;
  readonly log: Logger;
  readonly onRefusedReport?: (attack: AttackReport) => Promise<void> | void;
  /** Wait on `[ip_secondaries] wait_port` for the ones that do not answer (start-up only). */
  readonly wait: boolean;
}

/** Builds the Ecu of a Secondary that answered getInfo (or that was remembered). */
async function makeIpSecondary(
  options: OpenIpSecondariesOptions,
  s: SecondarySection,
  info: GetInfoResp | undefined,
  remembered: Remembered | undefined,
): Promise<IpSecondary | undefined> {
  const { log, store } = options;
  let identity: SecondaryIdentity | undefined;
  if (info) {
    try {
      identity = identityFromInfo(info);
    } catch (err) {
      log.error('a Secondary reported an unusable identity', { address: s.address, error: (err as Error).message });
    }
  }
  if (identity && remembered && (remembered.identity.serial !== identity.serial || !remembered.identity.publicKey.equals(identity.publicKey))) {
    log.warn('the Secondary at this address changed (serial or key); registering the new one', {
      address: s.address,
      was: remembered.identity.serial,
      now: identity.serial,
    });
  }
  if (!identity && remembered) {
    log.warn('a Secondary is not reachable; using what it reported before', { address: s.address, ecu: remembered.identity.serial });
    identity = remembered.identity;
  }
  if (!identity) return undefined;
  const ecu = new IpSecondary({
    endpoint: { host: s.host, port: s.port },
    address: s.address,
    verification: s.verification,
    identity,
    timeouts: timeoutsOf(options.config),
    store,
    log,
    onRefusedReport: options.onRefusedReport,
    remembered,
  });
  if (info) await ecu.remember();
  log.info('Secondary', {
    address: s.address,
    ecu: identity.serial,
    hardware_id: identity.hardwareId,
    verification: s.verification,
    reachable: info !== undefined,
  });
  return ecu;
}

/**
 * aktualizr's start-up: getInfo to each configured Secondary; those that do
 * not answer are waited for on the wait port (when configured); those still
 * missing are taken from what they reported before, or asked again later.
 */
export async function openIpSecondaries(
  options: OpenIpSecondariesOptions,
  sections: readonly SecondarySection[] = options.config.secondaries,
): Promise<IpSecondaries> {
  const { config, store, log } = options;
  if (sections.length === 0) return { ecus: [], missing: [] };
  await ensureDir(store.path('secondaries'));
  await removeStaleTempFiles(store.path('secondaries'));
  const timeoutMs = config.ipSecondaries.requestTimeoutSeconds * 1000;
  const infos = new Map<SecondarySection, GetInfoResp>();
  await Promise.all(
    sections.map(async (s) => {
      try {
        infos.set(s, await getInfo({ host: s.host, port: s.port }, timeoutMs));
      } catch (err) {
        log.debug('Secondary not reachable', { address: s.address, error: (err as Error).message });
      }
    }),
  );
  const unreached = sections.filter((s) => !infos.has(s));
  const waitPort = config.ipSecondaries.waitPort;
  if (options.wait && unreached.length > 0 && waitPort !== undefined) {
    log.info('waiting for Secondaries to connect', {
      port: waitPort,
      secondaries: unreached.map((s) => s.address).join(','),
      seconds: config.ipSecondaries.waitTimeoutSeconds,
    });
    try {
      const result = await waitForSecondaries({
        host: config.ipSecondaries.waitHost,
        port: waitPort,
        expected: unreached.map((s) => ({ host: s.host, port: s.port })),
        timeoutMs: config.ipSecondaries.waitTimeoutSeconds * 1000,
        requestTimeoutMs: timeoutMs,
        onError: (err, { remote }) => log.warn('wait port', { error: err.message, remote: remote ? `${remote.host}:${remote.port}` : undefined }),
      });
      for (const a of result.arrived) {
        const s = unreached.find((u) => u.host === a.endpoint.host && u.port === a.endpoint.port);
        if (s) infos.set(s, a.info);
      }
    } catch (err) {
      log.error('cannot wait for Secondaries', { port: waitPort, error: (err as Error).message });
    }
  }
  const ecus: IpSecondary[] = [];
  const missing: SecondarySection[] = [];
  for (const s of sections) {
    const ecu = await makeIpSecondary(options, s, infos.get(s), await readRemembered(store, s.address, log));
    if (ecu) ecus.push(ecu);
    else {
      log.error('a configured Secondary was not reached and is not known; it will be asked again each cycle', { address: s.address });
      missing.push(s);
    }
  }
  return { ecus, missing };
}
