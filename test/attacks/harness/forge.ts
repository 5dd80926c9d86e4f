/**
 * A malicious Director and a malicious Image repository (capability (c)):
 * the attacker holds the server's online keys, exported through the admin API
 * (`GET /api/v1/admin/repo/private_keys/:id`, `GET /api/v1/user_repo/root/private_keys/:id`),
 * and signs whatever metadata it likes with them. The man in the middle then
 * serves it to one device in place of the server's answers.
 */
import {
  LocalSigner,
  Metadata,
  MetaFile,
  Snapshot,
  Targets,
  TargetFile,
  Timestamp,
  expiresIn,
  parseRoot,
  parseSnapshot,
  parseTargets,
  parseTimestamp,
  privateKeyFromPem,
  type JsonObject,
  type Root,
  type RoleType,
  type Signer,
} from '@uptide/core';
import type { TestServer } from '../../../packages/server/src/testing/harness.js';
import type { Vehicle } from './server-world.js';

export type Repo = 'director' | 'image';

/** A repository's current root and the private keys the server holds for it. */
export interface RepoKeys {
  readonly root: Metadata<Root>;
  readonly rootBytes: Buffer;
  readonly signers: Record<RoleType, Signer[]>;
}

const BASE: Record<Repo, string> = { director: '/api/v1/admin/repo', image: '/api/v1/user_repo' };
const KEYS: Record<Repo, string> = { director: '/api/v1/admin/repo/private_keys', image: '/api/v1/user_repo/root/private_keys' };

/** Exports every online key of a repository (what an attacker who compromised the server holds). */
export async function exportKeys(ts: TestServer, repo: Repo): Promise<RepoKeys> {
  const rootBytes = (await ts.api('GET', `${BASE[repo]}/root.json`)).raw;
  const root = parseRoot(rootBytes, 'uptane');
  const signers = { root: [], targets: [], snapshot: [], timestamp: [] } as Record<RoleType, Signer[]>;
  for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
    for (const id of root.signed.role(role).keyids) {
      const res = await ts.api<{ private: string }>('GET', `${KEYS[repo]}/${id}`);
      if (res.status === 200) signers[role].push(new LocalSigner(privateKeyFromPem(res.body.private), 'uptane'));
    }
  }
  return { root, rootBytes, signers };
}

export interface ForgeOptions {
  /** Changes the targets file (default: as the server signed it). */
  readonly targets?: (current: Targets) => Targets;
  /** Who signs each role (default: the role's exported keys). */
  readonly signers?: Partial<Record<'targets' | 'snapshot' | 'timestamp', Signer[]>>;
  /** Versions (default: one above what the server serves). */
  readonly versions?: Partial<Record<'targets' | 'snapshot' | 'timestamp', number>>;
  /** Expiry in seconds from now per role (negative: already expired). */
  readonly expiresIn?: Partial<Record<'targets' | 'snapshot' | 'timestamp', number>>;
  /** Changes the snapshot's meta (after targets were signed). */
  readonly snapshotMeta?: (meta: Map<string, MetaFile>, targetsBytes: Uint8Array) => Map<string, MetaFile>;
  /** Changes the timestamp's snapshot entry. */
  readonly timestampEntry?: (entry: MetaFile, snapshotBytes: Uint8Array) => MetaFile;
}

export interface ForgedFiles {
  readonly timestamp: Buffer;
  readonly snapshot: Buffer;
  readonly targets: Buffer;
}

const DAY = 86400;

/** Signs targets, snapshot and timestamp for a repository from the server's current files. */
export async function forgeFiles(
  keys: RepoKeys,
  current: { timestamp: Buffer; snapshot: Buffer; targets: Buffer },
  o: ForgeOptions = {},
): Promise<ForgedFiles> {
  const ts = parseTimestamp(current.timestamp, 'uptane').signed;
  const sn = parseSnapshot(current.snapshot, 'uptane').signed;
  const tg = parseTargets(current.targets, 'uptane').signed;
  const exp = (role: 'targets' | 'snapshot' | 'timestamp', dflt: number) => expiresIn(new Date(), o.expiresIn?.[role] ?? dflt);
  const base = o.targets ? o.targets(tg) : tg;
  const targets = new Targets({
    version: o.versions?.targets ?? tg.version + 1,
    expires: exp('targets', 30 * DAY),
    targets: base.targets,
    delegations: base.delegations,
    custom: base.custom,
  });
  const tBytes = (await Metadata.create(targets, 'uptane', o.signers?.targets ?? keys.signers.targets)).toBytes();
  let meta = new Map(sn.meta);
  meta.set('targets.json', MetaFile.describe(targets.version, tBytes));
  if (o.snapshotMeta) meta = o.snapshotMeta(meta, tBytes);
  const snapshot = new Snapshot({ version: o.versions?.snapshot ?? sn.version + 1, expires: exp('snapshot', 30 * DAY), meta });
  const sBytes = (await Metadata.create(snapshot, 'uptane', o.signers?.snapshot ?? keys.signers.snapshot)).toBytes();
  let entry = MetaFile.describe(snapshot.version, sBytes);
  if (o.timestampEntry) entry = o.timestampEntry(entry, sBytes);
  const timestamp = new Timestamp({ version: o.versions?.timestamp ?? ts.version + 1, expires: exp('timestamp', DAY), snapshot: entry });
  const tsBytes = (await Metadata.create(timestamp, 'uptane', o.signers?.timestamp ?? keys.signers.timestamp)).toBytes();
  return { timestamp: Buffer.from(tsBytes), snapshot: Buffer.from(sBytes), targets: Buffer.from(tBytes) };
}

/** The server's current files of a repository, as the device would get them (fetched by the attacker as that device). */
export async function currentFiles(v: Vehicle, repo: Repo): Promise<{ timestamp: Buffer; snapshot: Buffer; targets: Buffer }> {
  const base = repo === 'director' ? '/director' : '/repo';
  const get = async (f: string) => {
    const r = await v.mitm.fetchUpstream(v.deviceId, `${base}/${f}`);
    if (r.status !== 200) throw new Error(`${base}/${f}: ${r.status}`);
    return r.body;
  };
  // Timestamp last: it describes the snapshot fetched just before.
  const targets = await get('targets.json');
  const snapshot = await get('snapshot.json');
  const timestamp = await get('timestamp.json');
  return { timestamp, snapshot, targets };
}

/** Forges a repository's files for one device and has the man in the middle serve them. */
export async function serveForged(v: Vehicle, repo: Repo, keys: RepoKeys, o: ForgeOptions = {}): Promise<ForgedFiles> {
  const files = await forgeFiles(keys, await currentFiles(v, repo), o);
  const base = repo === 'director' ? '/director' : '/repo';
  v.mitm.rule({ path: `${base}/timestamp.json`, device: v.deviceId, body: files.timestamp });
  v.mitm.rule({ path: `${base}/snapshot.json`, device: v.deviceId, body: files.snapshot });
  v.mitm.rule({ path: `${base}/targets.json`, device: v.deviceId, body: files.targets });
  return files;
}

/** A Director target for ECUs (serial → hardware id) describing an image as the Image repository does. */
export function directorEntry(image: TargetFile, ecus: Readonly<Record<string, string>>, extra: JsonObject = {}): TargetFile {
  const ecuIdentifiers: JsonObject = {};
  for (const [s, hw] of Object.entries(ecus)) ecuIdentifiers[s] = { hardwareId: hw };
  const custom: JsonObject = { ecuIdentifiers, uri: null };
  if (image.releaseCounter !== undefined) custom['releaseCounter'] = image.releaseCounter;
  return new TargetFile(image.name, image.length, { ...image.hashes }, { ...custom, ...extra });
}

/** Director targets that direct exactly these entries (keeping the vehicle id and correlation id unless told). */
export function directing(entries: readonly TargetFile[], custom?: JsonObject): (current: Targets) => Targets {
  return (current) =>
    new Targets({
      version: current.version,
      expires: current.expires,
      targets: new Map(entries.map((e) => [e.name, e])),
      custom: custom ?? { ...(current.custom ?? {}), correlationId: `urn:here-ota:mtu:forged-${Math.random().toString(16).slice(2)}` },
    });
}

/** The Image repository's entry for an image, as the server signed it. */
export async function imageEntry(ts: TestServer, name: string): Promise<TargetFile> {
  const t = parseTargets((await ts.api('GET', '/api/v1/user_repo/targets.json')).raw, 'uptane').signed.targets.get(name);
  if (!t) throw new Error(`the Image repository does not list ${name}`);
  return t;
}
