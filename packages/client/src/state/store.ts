/**
 * Everything the Primary keeps across restarts and power cuts, in one
 * directory, each file written atomically (state/atomic.ts):
 *
 * ```
 * <storage>/
 *   state.json               counters, clock floor, installed images, pending reports
 *   ecu-key.pem              the Primary's ECU private key (0600)
 *   install-pending.json     present only while an install runs
 *   events.json              events not yet accepted by the server
 *   tls/{client,pkey,ca}.pem device credentials from shared-credential provisioning
 *   metadata/<repo>/         trusted metadata, exact bytes as received
 *     root.json timestamp.json snapshot.json targets.json
 *     roots/<N>.root.json    every root version accepted
 *     delegated/<role>.json  delegated targets (Image repository)
 *   downloads/               partial and verified images
 *   lock                     pid of the process using the directory
 * ```
 *
 * A file that is present but unreadable, or of an unknown format, is an
 * error (StateError) rather than a reason to start afresh: silently
 * re-provisioning would lose the rollback baselines and the report counter.
 */
import { open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseJson, type AttackReport, type InstallationReport, type InstalledImage, type JsonObject, type JsonValue, type TrustedFiles } from '@uptide/core';
import { ensureDir, exists, readIfExists, removeDurably, removeStaleTempFiles, writeFileAtomic } from './atomic.js';

export const STATE_FORMAT = 'uptide-device-state';
export const STATE_VERSION = 1;

/** Most attack reports kept for the next manifest (the newest win). */
const MAX_PENDING_ATTACKS = 16;
/** Most events queued for the server (the oldest are dropped first). */
const MAX_EVENTS = 1000;

export type StateErrorCode = 'STATE_CORRUPT' | 'STATE_UNSUPPORTED' | 'STATE_LOCKED';

export class StateError extends Error {
  constructor(
    readonly code: StateErrorCode,
    message: string,
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StateError';
  }
}

export type RepositoryName = 'director' | 'image';

/** Marker written before an install starts and removed when it ended (either way). */
export interface PendingInstall {
  readonly ecuSerial: string;
  readonly targetName: string;
  readonly length: number;
  readonly hashes: Readonly<Record<string, string>>;
  readonly correlationId: string | undefined;
  readonly startedAt: string;
}

export interface DeviceState {
  readonly deviceId: string | undefined;
  readonly primaryEcuSerial: string | undefined;
  /** Last report counter used; the next report uses a larger one. */
  readonly reportCounter: number;
  /** Epoch ms of the latest verified time (the clock floor); 0 before the first verification. */
  readonly latestVerifiedTime: number;
  readonly installed: Readonly<Record<string, InstalledImage>>;
  readonly releaseCounters: Readonly<Record<string, number>>;
  /** sha256 of the ECU registration the server accepted. */
  readonly registration: string | undefined;
  /** sha256 of each device-data report the server accepted, by path. */
  readonly deviceData: Readonly<Record<string, string>>;
  readonly pendingInstallationReport: InstallationReport | undefined;
  readonly pendingAttacks: readonly AttackReport[];
}

const EMPTY_STATE: DeviceState = {
  deviceId: undefined,
  primaryEcuSerial: undefined,
  reportCounter: 0,
  latestVerifiedTime: 0,
  installed: {},
  releaseCounters: {},
  registration: undefined,
  deviceData: {},
  pendingInstallationReport: undefined,
  pendingAttacks: [],
};

const STATE_KEYS = [
  'format',
  'version',
  'deviceId',
  'primaryEcuSerial',
  'reportCounter',
  'latestVerifiedTime',
  'installed',
  'releaseCounters',
  'registration',
  'deviceData',
  'pendingInstallationReport',
  'pendingAttacks',
];

// --- strict readers for state.json ----------------------------------------------------

class Reader {
  constructor(readonly file: string) {}
  fail(what: string): never {
    throw new StateError(
      'STATE_CORRUPT',
      `${this.file}: ${what}. The state directory is damaged; restore it from a backup, or delete it to provision the device afresh`,
      this.file,
    );
  }
  obj(v: JsonValue | undefined, path: string): JsonObject {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(`${path} must be an object`);
    return v as JsonObject;
  }
  str(v: JsonValue | undefined, path: string): string {
    if (typeof v !== 'string') this.fail(`${path} must be a string`);
    return v as string;
  }
  optStr(v: JsonValue | undefined, path: string): string | undefined {
    return v === undefined ? undefined : this.str(v, path);
  }
  int(v: JsonValue | undefined, path: string): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail(`${path} must be a non-negative integer`);
    return v as number;
  }
  bool(v: JsonValue | undefined, path: string): boolean {
    if (typeof v !== 'boolean') this.fail(`${path} must be a boolean`);
    return v as boolean;
  }
  arr(v: JsonValue | undefined, path: string): JsonValue[] {
    if (!Array.isArray(v)) this.fail(`${path} must be an array`);
    return v as JsonValue[];
  }
  hashes(v: JsonValue | undefined, path: string): Record<string, string> {
    const o = this.obj(v, path);
    const out: Record<string, string> = {};
    for (const k of Object.keys(o)) out[k] = this.str(o[k], `${path}.${k}`);
    return out;
  }
  installed(v: JsonValue | undefined, path: string): InstalledImage {
    const o = this.obj(v, path);
    return {
      filename: this.str(o['filename'], `${path}.filename`),
      length: this.int(o['length'], `${path}.length`),
      hashes: this.hashes(o['hashes'], `${path}.hashes`),
    };
  }
  result(v: JsonValue | undefined, path: string): { success: boolean; code: string; description: string } {
    const o = this.obj(v, path);
    return {
      success: this.bool(o['success'], `${path}.success`),
      code: this.str(o['code'], `${path}.code`),
      description: this.str(o['description'], `${path}.description`),
    };
  }
}

function parseState(bytes: Uint8Array, file: string): DeviceState {
  const r = new Reader(file);
  let doc: JsonValue;
  try {
    doc = parseJson(bytes);
  } catch (err) {
    throw new StateError(
      'STATE_CORRUPT',
      `${file} is not valid JSON (${(err as Error).message}); restore it from a backup, or delete the state directory to provision afresh`,
      file,
      {
        cause: err,
      },
    );
  }
  const o = r.obj(doc, 'state');
  if (o['format'] !== STATE_FORMAT) r.fail(`format is ${JSON.stringify(o['format'])}, not ${STATE_FORMAT}`);
  if (o['version'] !== STATE_VERSION) {
    throw new StateError(
      'STATE_UNSUPPORTED',
      `${file} has state version ${JSON.stringify(o['version'])}; this uptide-device reads version ${STATE_VERSION}. Run the uptide-device that wrote it`,
      file,
    );
  }
  for (const k of Object.keys(o)) if (!STATE_KEYS.includes(k)) r.fail(`unknown field ${JSON.stringify(k)}`);
  const installed: Record<string, InstalledImage> = {};
  const inst = r.obj(o['installed'], 'installed');
  for (const k of Object.keys(inst)) installed[k] = r.installed(inst[k], `installed.${k}`);
  const releaseCounters: Record<string, number> = {};
  const rc = r.obj(o['releaseCounters'], 'releaseCounters');
  for (const k of Object.keys(rc)) releaseCounters[k] = r.int(rc[k], `releaseCounters.${k}`);
  const deviceData: Record<string, string> = {};
  const dd = r.obj(o['deviceData'], 'deviceData');
  for (const k of Object.keys(dd)) deviceData[k] = r.str(dd[k], `deviceData.${k}`);
  let pendingInstallationReport: InstallationReport | undefined;
  if (o['pendingInstallationReport'] !== undefined) {
    const p = r.obj(o['pendingInstallationReport'], 'pendingInstallationReport');
    pendingInstallationReport = {
      correlationId: r.str(p['correlationId'], 'pendingInstallationReport.correlationId'),
      result: r.result(p['result'], 'pendingInstallationReport.result'),
      rawReport: r.str(p['rawReport'], 'pendingInstallationReport.rawReport'),
      items: r.arr(p['items'], 'pendingInstallationReport.items').map((it, i) => {
        const io = r.obj(it, `pendingInstallationReport.items[${i}]`);
        return {
          ecu: r.str(io['ecu'], `pendingInstallationReport.items[${i}].ecu`),
          result: r.result(io['result'], `pendingInstallationReport.items[${i}].result`),
        };
      }),
    };
  }
  const pendingAttacks: AttackReport[] = r.arr(o['pendingAttacks'], 'pendingAttacks').map((a, i) => {
    const ao = r.obj(a, `pendingAttacks[${i}]`);
    return {
      code: r.str(ao['code'], `pendingAttacks[${i}].code`) as AttackReport['code'],
      message: r.str(ao['message'], `pendingAttacks[${i}].message`),
      repository: r.optStr(ao['repository'], `pendingAttacks[${i}].repository`),
      role: r.optStr(ao['role'], `pendingAttacks[${i}].role`),
    };
  });
  return {
    deviceId: r.optStr(o['deviceId'], 'deviceId'),
    primaryEcuSerial: r.optStr(o['primaryEcuSerial'], 'primaryEcuSerial'),
    reportCounter: r.int(o['reportCounter'], 'reportCounter'),
    latestVerifiedTime: r.int(o['latestVerifiedTime'], 'latestVerifiedTime'),
    installed,
    releaseCounters,
    registration: r.optStr(o['registration'], 'registration'),
    deviceData,
    pendingInstallationReport,
    pendingAttacks,
  };
}

function stateToJson(s: DeviceState): JsonObject {
  const out: JsonObject = {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    reportCounter: s.reportCounter,
    latestVerifiedTime: s.latestVerifiedTime,
    installed: Object.fromEntries(Object.entries(s.installed).map(([k, v]) => [k, { filename: v.filename, length: v.length, hashes: { ...v.hashes } }])),
    releaseCounters: { ...s.releaseCounters },
    deviceData: { ...s.deviceData },
    pendingAttacks: s.pendingAttacks.map((a) => {
      const o: JsonObject = { code: a.code, message: a.message };
      if (a.repository !== undefined) o['repository'] = a.repository;
      if (a.role !== undefined) o['role'] = a.role;
      return o;
    }),
  };
  if (s.deviceId !== undefined) out['deviceId'] = s.deviceId;
  if (s.primaryEcuSerial !== undefined) out['primaryEcuSerial'] = s.primaryEcuSerial;
  if (s.registration !== undefined) out['registration'] = s.registration;
  const p = s.pendingInstallationReport;
  if (p !== undefined) {
    out['pendingInstallationReport'] = {
      correlationId: p.correlationId,
      result: { ...p.result },
      rawReport: p.rawReport,
      items: p.items.map((i) => ({ ecu: i.ecu, result: { ...i.result } })),
    };
  }
  return out;
}

function encodeRole(role: string): string {
  return encodeURIComponent(role);
}

export interface DeviceCredentials {
  /** Client certificate, followed by its chain (PEM). */
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

export class StateStore {
  private current: DeviceState;
  private queue: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    state: DeviceState,
    private readonly lockFile: string,
  ) {
    this.current = state;
  }

  /** Opens (creating if needed) a state directory, taking its lock. */
  static async open(dir: string): Promise<StateStore> {
    await ensureDir(dir);
    const lockFile = join(dir, 'lock');
    await takeLock(lockFile);
    try {
      for (const sub of [
        '',
        'metadata/director',
        'metadata/image',
        'metadata/director/roots',
        'metadata/image/roots',
        'metadata/image/delegated',
        'tls',
        'downloads',
      ]) {
        const d = join(dir, sub);
        await removeStaleTempFiles(d);
      }
      const file = join(dir, 'state.json');
      const bytes = await readIfExists(file);
      let state: DeviceState;
      if (bytes === undefined) {
        // No state.json but other state: a damaged directory, not a fresh one.
        for (const f of ['ecu-key.pem', 'metadata/director/root.json', 'metadata/image/root.json']) {
          if (await exists(join(dir, f))) {
            throw new StateError(
              'STATE_CORRUPT',
              `${file} is missing but ${f} exists; restore state.json from a backup, or delete ${dir} to provision the device afresh`,
              file,
            );
          }
        }
        state = EMPTY_STATE;
      } else {
        state = parseState(bytes, file);
      }
      const store = new StateStore(dir, state, lockFile);
      if (bytes === undefined) await store.write();
      return store;
    } catch (err) {
      await rm(lockFile, { force: true });
      throw err;
    }
  }

  /** Releases the directory lock. */
  async close(): Promise<void> {
    await this.queue;
    await rm(this.lockFile, { force: true });
  }

  get state(): DeviceState {
    return this.current;
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  private write(): Promise<void> {
    const bytes = Buffer.from(JSON.stringify(stateToJson(this.current), null, 2) + '\n', 'utf8');
    return writeFileAtomic(this.path('state.json'), bytes);
  }

  /** Applies a change and persists it before resolving; changes are serialized. */
  update(change: (s: DeviceState) => Partial<DeviceState>): Promise<DeviceState> {
    const run = async (): Promise<DeviceState> => {
      this.current = { ...this.current, ...change(this.current) };
      await this.write();
      return this.current;
    };
    const p = this.queue.then(run, run);
    this.queue = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  /** The next report counter, persisted before it is returned (so it is never reused after a crash). */
  async nextReportCounter(): Promise<number> {
    const s = await this.update((s) => ({ reportCounter: s.reportCounter + 1 }));
    return s.reportCounter;
  }

  /** The current time, never earlier than the latest verified time (the clock does not go back). */
  now(systemNow: number = Date.now()): Date {
    return new Date(Math.max(systemNow, this.current.latestVerifiedTime));
  }

  async recordVerifiedTime(t: Date): Promise<void> {
    if (t.getTime() <= this.current.latestVerifiedTime) return;
    await this.update(() => ({ latestVerifiedTime: t.getTime() }));
  }

  async addAttack(report: AttackReport): Promise<void> {
    await this.update((s) => ({ pendingAttacks: [...s.pendingAttacks, report].slice(-MAX_PENDING_ATTACKS) }));
  }

  /** Removes the attack reports a manifest carried once the server accepted it. */
  async clearAttacks(sent: readonly AttackReport[]): Promise<void> {
    if (sent.length === 0) return;
    await this.update((s) => ({ pendingAttacks: s.pendingAttacks.filter((a) => !sent.includes(a)) }));
  }

  // --- ECU key --------------------------------------------------------------------

  async readEcuKey(): Promise<string | undefined> {
    return (await readIfExists(this.path('ecu-key.pem')))?.toString('utf8');
  }

  async writeEcuKey(pem: string): Promise<void> {
    await writeFileAtomic(this.path('ecu-key.pem'), pem, 0o600);
  }

  // --- Device credentials ---------------------------------------------------------------

  async readCredentials(): Promise<DeviceCredentials | undefined> {
    const [cert, key, ca] = await Promise.all(['client.pem', 'pkey.pem', 'ca.pem'].map((f) => readIfExists(this.path('tls', f))));
    if (!cert && !key && !ca) return undefined;
    if (!cert || !key || !ca) {
      throw new StateError(
        'STATE_CORRUPT',
        `${this.path('tls')} holds only part of the device credentials; delete the state directory to provision afresh`,
        this.path('tls'),
      );
    }
    return { cert: cert.toString('utf8'), key: key.toString('utf8'), ca: ca.toString('utf8') };
  }

  async writeCredentials(c: DeviceCredentials): Promise<void> {
    await ensureDir(this.path('tls'));
    // The key last: its presence means the set is complete.
    await writeFileAtomic(this.path('tls', 'ca.pem'), c.ca, 0o600);
    await writeFileAtomic(this.path('tls', 'client.pem'), c.cert, 0o600);
    await writeFileAtomic(this.path('tls', 'pkey.pem'), c.key, 0o600);
  }

  // --- Pending install marker -------------------------------------------------------------

  async readPendingInstall(): Promise<PendingInstall | undefined> {
    const file = this.path('install-pending.json');
    const bytes = await readIfExists(file);
    if (bytes === undefined) return undefined;
    const r = new Reader(file);
    let doc: JsonValue;
    try {
      doc = parseJson(bytes);
    } catch (err) {
      throw new StateError('STATE_CORRUPT', `${file} is not valid JSON; delete it (the interrupted install will not be reported)`, file, { cause: err });
    }
    const o = r.obj(doc, 'marker');
    return {
      ecuSerial: r.str(o['ecuSerial'], 'ecuSerial'),
      targetName: r.str(o['targetName'], 'targetName'),
      length: r.int(o['length'], 'length'),
      hashes: r.hashes(o['hashes'], 'hashes'),
      correlationId: r.optStr(o['correlationId'], 'correlationId'),
      startedAt: r.str(o['startedAt'], 'startedAt'),
    };
  }

  async writePendingInstall(p: PendingInstall): Promise<void> {
    const o: JsonObject = { ecuSerial: p.ecuSerial, targetName: p.targetName, length: p.length, hashes: { ...p.hashes }, startedAt: p.startedAt };
    if (p.correlationId !== undefined) o['correlationId'] = p.correlationId;
    await writeFileAtomic(this.path('install-pending.json'), JSON.stringify(o) + '\n');
  }

  async clearPendingInstall(): Promise<void> {
    await removeDurably(this.path('install-pending.json'));
  }

  // --- Events -------------------------------------------------------------------------------

  async readEvents(): Promise<JsonObject[]> {
    const file = this.path('events.json');
    const bytes = await readIfExists(file);
    if (bytes === undefined) return [];
    const r = new Reader(file);
    let doc: JsonValue;
    try {
      doc = parseJson(bytes);
    } catch (err) {
      throw new StateError('STATE_CORRUPT', `${file} is not valid JSON; delete it (queued events will be lost)`, file, { cause: err });
    }
    return r.arr(doc, 'events').map((e, i) => r.obj(e, `events[${i}]`));
  }

  async writeEvents(events: readonly JsonObject[]): Promise<void> {
    const kept = events.slice(-MAX_EVENTS);
    if (kept.length === 0) await removeDurably(this.path('events.json'));
    else await writeFileAtomic(this.path('events.json'), JSON.stringify(kept) + '\n');
  }

  // --- Trusted metadata ------------------------------------------------------------------------

  private metaPath(repo: RepositoryName, ...parts: string[]): string {
    return this.path('metadata', repo, ...parts);
  }

  /** The stored trusted metadata of a repository, or undefined when no root is trusted yet. */
  async readMetadata(repo: RepositoryName): Promise<TrustedFiles | undefined> {
    const root = await readIfExists(this.metaPath(repo, 'root.json'));
    if (!root) return undefined;
    const delegated = new Map<string, Uint8Array>();
    const ddir = this.metaPath(repo, 'delegated');
    let names: string[] = [];
    try {
      names = await readdir(ddir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const n of names) {
      if (!n.endsWith('.json') || n.startsWith('.')) continue;
      delegated.set(decodeURIComponent(n.slice(0, -'.json'.length)), await readFile(join(ddir, n)));
    }
    return {
      root,
      timestamp: await readIfExists(this.metaPath(repo, 'timestamp.json')),
      snapshot: await readIfExists(this.metaPath(repo, 'snapshot.json')),
      targets: await readIfExists(this.metaPath(repo, 'targets.json')),
      delegated,
    };
  }

  /** Persists a newly trusted root at once (Procedure ), as the latest and under its version. */
  async writeRoot(repo: RepositoryName, bytes: Uint8Array, version: number): Promise<void> {
    await ensureDir(this.metaPath(repo, 'roots'));
    await writeFileAtomic(this.metaPath(repo, 'roots', `${version}.root.json`), bytes);
    await writeFileAtomic(this.metaPath(repo, 'root.json'), bytes);
  }

  /** Every root version this device has trusted, oldest first (for Secondaries that need the chain). */
  async readRootChain(repo: RepositoryName): Promise<Array<{ version: number; bytes: Uint8Array }>> {
    let names: string[] = [];
    try {
      names = await readdir(this.metaPath(repo, 'roots'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const out: Array<{ version: number; bytes: Uint8Array }> = [];
    for (const n of names) {
      const m = /^(\d+)\.root\.json$/.exec(n);
      if (m) out.push({ version: Number(m[1]), bytes: await readFile(this.metaPath(repo, 'roots', n)) });
    }
    return out.sort((a, b) => a.version - b.version);
  }

  /**
   * Makes the stored metadata of a repository equal to `files`: writes what
   * changed, removes what is no longer trusted. Only called after a whole
   * verification succeeded (or when Procedure R-4 discarded files).
   */
  async writeMetadata(repo: RepositoryName, files: TrustedFiles): Promise<void> {
    await ensureDir(this.metaPath(repo, 'delegated'));
    const put = async (path: string, bytes: Uint8Array | undefined): Promise<void> => {
      if (bytes === undefined) {
        await removeDurably(path);
        return;
      }
      const old = await readIfExists(path);
      if (old && Buffer.compare(old, bytes) === 0) return;
      await writeFileAtomic(path, bytes);
    };
    // Leaves first, timestamp last: each file is checked on its own at the next start anyway.
    const keep = new Set<string>();
    for (const [role, bytes] of files.delegated ?? []) {
      const name = `${encodeRole(role)}.json`;
      keep.add(name);
      await put(this.metaPath(repo, 'delegated', name), bytes);
    }
    for (const n of await readdir(this.metaPath(repo, 'delegated'))) {
      if (n.endsWith('.json') && !n.startsWith('.') && !keep.has(n)) await removeDurably(this.metaPath(repo, 'delegated', n));
    }
    await put(this.metaPath(repo, 'targets.json'), files.targets);
    await put(this.metaPath(repo, 'snapshot.json'), files.snapshot);
    await put(this.metaPath(repo, 'timestamp.json'), files.timestamp);
    await put(this.metaPath(repo, 'root.json'), files.root);
  }
}

/** One process per state directory: two would reuse report counters and race on files. */
async function takeLock(lockFile: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(lockFile, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number((await readIfExists(lockFile))?.toString('utf8').trim());
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new StateError('STATE_LOCKED', `another uptide-device (pid ${pid}) is using ${lockFile}; stop it first`, lockFile);
    }
    // A lock left by a process that died (power loss, kill -9): take it over.
    await rm(lockFile, { force: true });
  }
  throw new StateError('STATE_LOCKED', `cannot take the lock ${lockFile}`, lockFile);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
