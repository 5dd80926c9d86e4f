/**
 * ECU version reports and vehicle version manifests (uptane-standard.md §3) in
 * the shape aktualizr sends and OTA CE reads (device-api.md §3), plus what the
 * Standard asks and aktualizr leaves out:
 *
 * - `report_counter` in every ECU's report (aktualizr: Primary only), a string
 *   holding an integer that grows every cycle, and an optional random `nonce`;
 * - `timeserver_time` = the latest time the ECU verified (aktualizr: always 1970);
 * - `attacks_detected`: still the string OTA CE expects (codes and messages,
 *   empty when none), with the typed list in `attacks`.
 *
 * Both are signed over the uptane (jsoncpp) canonical form of `signed`, which
 * is what aktualizr produces and OTA CE verifies.
 */
import { BadEcuIdError, ManifestError, UptaneError, type ErrorCode } from '../errors.js';
import { canonicalize, cloneStrictJson, parseJson, type JsonObject, type JsonValue } from '../json.js';
import { fromBase64, toBase64 } from '../encoding.js';
import type { PublicKey } from '../crypto/keys.js';
import type { Signer } from '../crypto/signer.js';
import { formatExpires } from '../time.js';
import { expectArray, expectInteger, expectObject, expectString, pathKey, setOwn } from '../metadata/guard.js';
import type { InstalledImage } from '../verify/uptane.js';

/** What aktualizr reports before anything was installed. */
export const UNKNOWN_INSTALLED_IMAGE: InstalledImage = {
  filename: 'unknown',
  length: 0,
  hashes: { sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
};

export interface AttackReport {
  readonly code: ErrorCode;
  readonly message: string;
  readonly repository?: string | undefined;
  readonly role?: string | undefined;
}

/** A signed document with a `signed` payload and signatures by ECU keys. */
export interface SignedDocument {
  readonly signed: JsonObject;
  readonly signatures: ReadonlyArray<{ readonly keyid: string; readonly method: string; readonly sig: string }>;
}

async function signDocument(signed: JsonObject, signer: Signer): Promise<SignedDocument> {
  const data = canonicalize(signed, 'uptane');
  const sig = await signer.sign(data);
  // aktualizr writes `rsassa-pss` for its RSA manifests; OTA CE accepts both spellings.
  const method = signer.publicKey.algorithm === 'ed25519' ? 'ed25519' : 'rsassa-pss';
  return { signed, signatures: [{ keyid: signer.publicKey.keyId('uptane'), method, sig: toBase64(sig) }] };
}

function parseSignedDocument(v: JsonValue | undefined, path: string): SignedDocument {
  const o = expectObject(v, path);
  const signed = expectObject(o['signed'], `${path}.signed`);
  const sigs = expectArray(o['signatures'], `${path}.signatures`).map((s, i) => {
    const p = `${path}.signatures[${i}]`;
    const so = expectObject(s, p);
    const keyid = expectString(so['keyid'], `${p}.keyid`);
    if (!/^[0-9a-fA-F]{64}$/.test(keyid)) throw new ManifestError(`${p}.keyid must be 64 hex characters`, { path: `${p}.keyid` });
    return { keyid, method: expectString(so['method'], `${p}.method`), sig: expectString(so['sig'], `${p}.sig`) };
  });
  if (sigs.length === 0) throw new ManifestError(`${path} is not signed`, { path: `${path}.signatures` });
  return { signed, signatures: sigs };
}

/**
 * True when any signature verifies with `key` (the key registered for the
 * ECU). Key ids are ignored, as OTA CE does: aktualizr computes them its own way.
 */
export function verifySignedDocument(doc: SignedDocument, key: PublicKey, canonicalSigned?: Uint8Array): boolean {
  // Callers that also hash the payload pass its canonical bytes, so they are computed once.
  const data = canonicalSigned ?? canonicalize(doc.signed, 'uptane');
  for (const s of doc.signatures) {
    let sig: Uint8Array;
    try {
      sig = fromBase64(s.sig);
    } catch {
      continue;
    }
    if (key.verify(data, sig, s.method)) return true;
  }
  return false;
}

/** verifySignedDocument with the signature checks in libuv's thread pool (for servers). */
export async function verifySignedDocumentAsync(doc: SignedDocument, key: PublicKey, canonicalSigned?: Uint8Array): Promise<boolean> {
  const data = canonicalSigned ?? canonicalize(doc.signed, 'uptane');
  for (const s of doc.signatures) {
    let sig: Uint8Array;
    try {
      sig = fromBase64(s.sig);
    } catch {
      continue;
    }
    if (await key.verifyAsync(data, sig, s.method)) return true;
  }
  return false;
}

// --- ECU version report -------------------------------------------------------------

export interface EcuVersionReportInput {
  readonly ecuSerial: string;
  readonly installedImage: InstalledImage;
  /** The latest time this ECU verified (FV-1). */
  readonly latestVerifiedTime: Date;
  readonly previousVerifiedTime?: Date | undefined;
  /** Grows every cycle (replay protection, §5.4.2.1.2). */
  readonly counter: number;
  readonly nonce?: string | undefined;
  readonly attacks?: readonly AttackReport[];
  readonly custom?: JsonObject | undefined;
}

export interface EcuVersionReport {
  readonly ecuSerial: string;
  readonly installedImage: InstalledImage;
  readonly attacksDetected: string;
  readonly attacks: readonly AttackReport[];
  readonly timeserverTime: string | undefined;
  readonly previousTimeserverTime: string | undefined;
  /** Absent in reports of stock aktualizr Secondaries. */
  readonly counter: number | undefined;
  readonly nonce: string | undefined;
  readonly document: SignedDocument;
}

export function formatAttacks(attacks: readonly AttackReport[]): string {
  return attacks.map((a) => `${a.code}: ${a.message}`).join('; ');
}

export async function buildEcuVersionReport(input: EcuVersionReportInput, signer: Signer): Promise<SignedDocument> {
  if (!Number.isSafeInteger(input.counter) || input.counter < 0)
    throw new UptaneError('BAD_ARGUMENT', `report counter must be a non-negative integer, got ${input.counter}`);
  const attacks = input.attacks ?? [];
  const signed: JsonObject = {
    ecu_serial: input.ecuSerial,
    installed_image: {
      filepath: input.installedImage.filename,
      fileinfo: { hashes: { ...input.installedImage.hashes }, length: input.installedImage.length },
    },
    attacks_detected: formatAttacks(attacks),
    timeserver_time: formatExpires(input.latestVerifiedTime),
    previous_timeserver_time: formatExpires(input.previousVerifiedTime ?? input.latestVerifiedTime),
    report_counter: String(input.counter),
  };
  if (attacks.length > 0) {
    signed['attacks'] = attacks.map((a) => {
      const o: JsonObject = { code: a.code, message: a.message };
      if (a.repository !== undefined) o['repository'] = a.repository;
      if (a.role !== undefined) o['role'] = a.role;
      return o;
    });
  }
  if (input.nonce !== undefined) signed['nonce'] = input.nonce;
  if (input.custom !== undefined) signed['custom'] = input.custom;
  return signDocument(signed, signer);
}

const SHA256_RE = /^[0-9a-fA-F]{64}$/;

/** Parses (does not verify) one ECU version report, checking what OTA CE's Director checks. */
export function parseEcuVersionReport(value: JsonValue | undefined, path = 'report'): EcuVersionReport {
  const doc = parseSignedDocument(value, path);
  const s = doc.signed;
  const sp = `${path}.signed`;
  const ecuSerial = expectString(s['ecu_serial'], `${sp}.ecu_serial`);
  const img = expectObject(s['installed_image'], `${sp}.installed_image`);
  const filename = expectString(img['filepath'], `${sp}.installed_image.filepath`);
  // OTA CE's rule (device-api.md §3.3): non-empty, under 254 characters, and no ".." anywhere in it.
  if (filename.length === 0 || filename.length >= 254 || filename.includes('..')) {
    throw new ManifestError(`${sp}.installed_image.filepath must be 1-253 characters without ".."`, { path: `${sp}.installed_image.filepath` });
  }
  const fileinfo = expectObject(img['fileinfo'], `${sp}.installed_image.fileinfo`);
  const length = expectInteger(fileinfo['length'], `${sp}.installed_image.fileinfo.length`, 0);
  const hashesObj = expectObject(fileinfo['hashes'], `${sp}.installed_image.fileinfo.hashes`);
  const hashes: Record<string, string> = {};
  for (const k of Object.keys(hashesObj)) setOwn(hashes, k, expectString(hashesObj[k], pathKey(`${sp}.installed_image.fileinfo.hashes`, k)));
  if (hashes['sha256'] === undefined || !SHA256_RE.test(hashes['sha256'])) {
    throw new ManifestError(`${sp}.installed_image.fileinfo.hashes.sha256 must be 64 hex characters`, { path: `${sp}.installed_image.fileinfo.hashes.sha256` });
  }
  const attacksDetected = s['attacks_detected'] === undefined ? '' : expectString(s['attacks_detected'], `${sp}.attacks_detected`);
  const attacks: AttackReport[] = [];
  if (s['attacks'] !== undefined) {
    expectArray(s['attacks'], `${sp}.attacks`).forEach((a, i) => {
      const ao = expectObject(a, `${sp}.attacks[${i}]`);
      const repository = ao['repository'] === undefined ? undefined : expectString(ao['repository'], `${sp}.attacks[${i}].repository`);
      const role = ao['role'] === undefined ? undefined : expectString(ao['role'], `${sp}.attacks[${i}].role`);
      attacks.push({
        code: expectString(ao['code'], `${sp}.attacks[${i}].code`) as ErrorCode,
        message: expectString(ao['message'], `${sp}.attacks[${i}].message`),
        repository,
        role,
      });
    });
  } else if (attacksDetected.length > 0) {
    // A plain string from another client: keep it as one untyped report.
    attacks.push({ code: 'ARBITRARY_SOFTWARE', message: attacksDetected });
  }
  let counter: number | undefined;
  if (s['report_counter'] !== undefined) {
    const rc = s['report_counter'];
    const text = typeof rc === 'number' ? String(rc) : expectString(rc, `${sp}.report_counter`);
    if (!/^(0|[1-9][0-9]{0,15})$/.test(text) || !Number.isSafeInteger(Number(text))) {
      throw new ManifestError(`${sp}.report_counter must be a non-negative integer`, { path: `${sp}.report_counter` });
    }
    counter = Number(text);
  }
  const nonce = s['nonce'] === undefined ? undefined : expectString(s['nonce'], `${sp}.nonce`);
  const timeserverTime = s['timeserver_time'] === undefined ? undefined : expectString(s['timeserver_time'], `${sp}.timeserver_time`);
  const previousTimeserverTime =
    s['previous_timeserver_time'] === undefined ? undefined : expectString(s['previous_timeserver_time'], `${sp}.previous_timeserver_time`);
  return {
    ecuSerial,
    installedImage: { filename, length, hashes },
    attacksDetected,
    attacks,
    timeserverTime,
    previousTimeserverTime,
    counter,
    nonce,
    document: doc,
  };
}

// --- Installation report ----------------------------------------------------------------

export const INSTALLATION_REPORT_CONTENT_TYPE = 'application/vnd.com.here.otac.installationReport.v1';

/** aktualizr's result codes with their numbers on the IP-Secondary wire (device-api.md §3.1). */
export const RESULT_CODES = {
  OK: 0,
  ALREADY_PROCESSED: 1,
  VERIFICATION_FAILED: 3,
  INSTALL_FAILED: 4,
  DOWNLOAD_FAILED: 5,
  INTERNAL_ERROR: 18,
  GENERAL_ERROR: 19,
  NEED_COMPLETION: 21,
  CUSTOM_ERROR: 22,
  OPERATION_CANCELLED: 23,
  UNKNOWN: -1,
} as const;
export type ResultCode = keyof typeof RESULT_CODES;

export function resultCodeFromNumber(n: number): ResultCode {
  for (const [k, v] of Object.entries(RESULT_CODES)) if (v === n) return k as ResultCode;
  return 'UNKNOWN';
}

export interface InstallationResult {
  readonly success: boolean;
  readonly code: string;
  readonly description: string;
}

export interface InstallationReport {
  readonly correlationId: string;
  readonly result: InstallationResult;
  readonly rawReport: string;
  readonly items: ReadonlyArray<{ readonly ecu: string; readonly result: InstallationResult }>;
}

export function installationReportToJSON(r: InstallationReport): JsonObject {
  const res = (x: InstallationResult): JsonObject => ({ success: x.success, code: x.code, description: x.description });
  return {
    content_type: INSTALLATION_REPORT_CONTENT_TYPE,
    report: {
      correlation_id: r.correlationId,
      result: res(r.result),
      raw_report: r.rawReport,
      items: r.items.map((i) => ({ ecu: i.ecu, result: res(i.result) })),
    },
  };
}

function parseResult(v: JsonValue | undefined, path: string): InstallationResult {
  const o = expectObject(v, path);
  const success = o['success'];
  if (typeof success !== 'boolean') throw new ManifestError(`${path}.success must be a boolean`, { path: `${path}.success` });
  return {
    success,
    code: expectString(o['code'], `${path}.code`),
    description: o['description'] === undefined ? '' : expectString(o['description'], `${path}.description`),
  };
}

export function parseInstallationReport(v: JsonValue | undefined, path = 'installation_report'): InstallationReport {
  const o = expectObject(v, path);
  const report = expectObject(o['report'], `${path}.report`);
  const rp = `${path}.report`;
  const items = report['items'] === undefined ? [] : expectArray(report['items'], `${rp}.items`);
  return {
    correlationId: expectString(report['correlation_id'], `${rp}.correlation_id`),
    result: parseResult(report['result'], `${rp}.result`),
    rawReport: report['raw_report'] === undefined ? '' : expectString(report['raw_report'], `${rp}.raw_report`),
    items: items.map((it, i) => {
      const io = expectObject(it, `${rp}.items[${i}]`);
      return { ecu: expectString(io['ecu'], `${rp}.items[${i}].ecu`), result: parseResult(io['result'], `${rp}.items[${i}].result`) };
    }),
  };
}

// --- Vehicle version manifest --------------------------------------------------------------

export interface VehicleManifestInput {
  readonly primaryEcuSerial: string;
  /** The vehicle identifier (device id); aktualizr leaves it out, the Standard asks for it. */
  readonly vehicleId?: string | undefined;
  /** Each ECU's signed version report, by serial (the Primary's own included). */
  readonly reports: ReadonlyMap<string, SignedDocument>;
  readonly installationReport?: InstallationReport | undefined;
  readonly custom?: JsonObject | undefined;
}

export interface VehicleManifest {
  readonly primaryEcuSerial: string;
  readonly vehicleId: string | undefined;
  readonly reports: ReadonlyMap<string, EcuVersionReport>;
  readonly installationReport: InstallationReport | undefined;
  readonly document: SignedDocument;
}

export async function buildVehicleManifest(input: VehicleManifestInput, primarySigner: Signer): Promise<SignedDocument> {
  const reports: JsonObject = {};
  for (const [serial, doc] of input.reports) setOwn(reports, serial, { signatures: doc.signatures.map((s) => ({ ...s })), signed: doc.signed });
  const signed: JsonObject = { primary_ecu_serial: input.primaryEcuSerial, ecu_version_manifests: reports };
  if (input.vehicleId !== undefined) signed['vin'] = input.vehicleId;
  if (input.installationReport !== undefined) signed['installation_report'] = installationReportToJSON(input.installationReport);
  if (input.custom !== undefined) signed['custom'] = input.custom;
  return signDocument(signed, primarySigner);
}

/** Parses a vehicle manifest (bytes or JSON) without verifying signatures. */
export function parseVehicleManifest(input: Uint8Array | string | JsonValue): VehicleManifest {
  // A private, checked copy: the signatures are verified later over `signed`, which the caller must not be able to change.
  const value = typeof input === 'string' || input instanceof Uint8Array ? parseJson(input) : cloneStrictJson(input);
  const doc = parseSignedDocument(value, 'manifest');
  const s = doc.signed;
  const primaryEcuSerial = expectString(s['primary_ecu_serial'], 'manifest.signed.primary_ecu_serial');
  const vehicleId = s['vin'] === undefined ? undefined : expectString(s['vin'], 'manifest.signed.vin');
  const reports = new Map<string, EcuVersionReport>();
  const evm = s['ecu_version_manifests'];
  if (evm === undefined && s['ecu_version_manifest'] !== undefined) {
    // The v1 array form, still decoded by OTA CE.
    expectArray(s['ecu_version_manifest'], 'manifest.signed.ecu_version_manifest').forEach((r, i) => {
      const rep = parseEcuVersionReport(r, `manifest.signed.ecu_version_manifest[${i}]`);
      if (reports.has(rep.ecuSerial)) throw new ManifestError(`two reports for ECU ${rep.ecuSerial}`);
      reports.set(rep.ecuSerial, rep);
    });
  } else {
    const map = expectObject(evm, 'manifest.signed.ecu_version_manifests');
    for (const serial of Object.keys(map)) {
      const rep = parseEcuVersionReport(map[serial], pathKey('manifest.signed.ecu_version_manifests', serial));
      if (rep.ecuSerial !== serial) {
        throw new ManifestError(`the report under ${JSON.stringify(serial)} is for ECU ${JSON.stringify(rep.ecuSerial)}`, {
          path: pathKey('manifest.signed.ecu_version_manifests', serial),
        });
      }
      reports.set(serial, rep);
    }
  }
  const installationReport =
    s['installation_report'] === undefined ? undefined : parseInstallationReport(s['installation_report'], 'manifest.signed.installation_report');
  return { primaryEcuSerial, vehicleId, reports, installationReport, document: doc };
}

// --- Verification (Director side, device-api.md §3.3) ---------------------------------------

/** Throws a ManifestError unless the report carries a signature by the ECU's registered key. */
export function verifyEcuVersionReport(report: EcuVersionReport, key: PublicKey, path = 'report'): void {
  if (!verifySignedDocument(report.document, key)) {
    throw new ManifestError(`the version report of ECU ${JSON.stringify(report.ecuSerial)} is not signed by its registered key`, {
      path: `${path}.signatures`,
    });
  }
}

export interface VehicleManifestKeys {
  /** The Primary ECU registered for the vehicle. */
  readonly primaryEcuSerial: string;
  /** Registered public key of every ECU of the vehicle, the Primary's included, by serial. */
  readonly ecuKeys: ReadonlyMap<string, PublicKey>;
}

/**
 * The Director's checks of a parsed vehicle manifest, in OTA CE's order: the
 * Primary's signature on the whole, then each ECU report is from an ECU of this
 * vehicle and signed by that ECU's key, then the Primary serial is the
 * registered one. Key ids are ignored (aktualizr computes its own). Report
 * contents (filepath, sha256, report under its own serial) were checked by
 * parseVehicleManifest. Throws BadEcuIdError for a report of an unknown ECU,
 * ManifestError otherwise.
 */
export function verifyVehicleManifest(manifest: VehicleManifest, keys: VehicleManifestKeys): void {
  const primaryKey = keys.ecuKeys.get(keys.primaryEcuSerial);
  if (!primaryKey) throw new ManifestError(`no key is registered for the Primary ECU ${JSON.stringify(keys.primaryEcuSerial)}`);
  if (!verifySignedDocument(manifest.document, primaryKey)) {
    throw new ManifestError('the vehicle manifest is not signed by the registered Primary key', { path: 'manifest.signatures' });
  }
  for (const [serial, report] of manifest.reports) {
    const path = pathKey('manifest.signed.ecu_version_manifests', serial);
    const key = keys.ecuKeys.get(serial);
    if (!key) throw new BadEcuIdError(`the manifest holds a report of ECU ${JSON.stringify(serial)}, which is not in this vehicle`, { path });
    verifyEcuVersionReport(report, key, path);
  }
  if (manifest.primaryEcuSerial !== keys.primaryEcuSerial) {
    throw new ManifestError(`primary_ecu_serial is ${JSON.stringify(manifest.primaryEcuSerial)}, not the registered ${JSON.stringify(keys.primaryEcuSerial)}`, {
      path: 'manifest.signed.primary_ecu_serial',
    });
  }
}

/** The entry of a version report for an error a check raised (the client maps errors to reports in one place). */
export function attackReportFrom(err: { code: ErrorCode; message: string; repository?: string | undefined; role?: string | undefined }): AttackReport {
  return { code: err.code, message: err.message, repository: err.repository, role: err.role };
}
