/**
 * The two repositories as the admin API exposes them, and the root checks the
 * ceremonies share: downloading a root chain, checking each step with the
 * core's own procedure R (what a device will do), and saying which keys signed
 * and which still must.
 */
import type { Metadata } from '@uptide/core';
import {
  LocalSigner,
  TrustedRepository,
  parseJson,
  parseRoot,
  privateKeyFromPem,
  type Dialect,
  type PublicKey,
  type RoleKeys,
  type Root,
  type Signature,
} from '@uptide/core';
import type { AdminApi } from './api.js';
import { CliError, UsageError, shortId } from './io.js';
import type { KeyStore, RepoName } from './keystore.js';

export type { RepoName } from './keystore.js';

export interface RepoApi {
  readonly label: string;
  rootFile(version?: number): string;
  readonly pushRoot: string;
  privateKey(keyId: string): string;
  /** Roles the server signs online: a new root must leave their keys as they are. */
  readonly onlineRoles: readonly ('targets' | 'snapshot' | 'timestamp')[];
}

export const REPOS: Record<RepoName, RepoApi> = {
  image: {
    label: 'Image repository',
    rootFile: (v) => `/api/v1/user_repo/${v === undefined ? '' : `${v}.`}root.json`,
    pushRoot: '/api/v1/user_repo/root',
    privateKey: (id) => `/api/v1/user_repo/root/private_keys/${id}`,
    onlineRoles: ['snapshot', 'timestamp'],
  },
  director: {
    label: 'Director',
    rootFile: (v) => `/api/v1/admin/repo/${v === undefined ? '' : `${v}.`}root.json`,
    pushRoot: '/api/v1/admin/repo/root',
    privateKey: (id) => `/api/v1/admin/repo/private_keys/${id}`,
    onlineRoles: ['targets', 'snapshot', 'timestamp'],
  },
};

export function parseRepo(value: string | undefined): RepoName {
  const v = value ?? 'image';
  if (v === 'image' || v === 'director') return v;
  throw new UsageError(`--repo must be image or director, not ${JSON.stringify(v)}`);
}

/** uptane (OTA CE, aktualizr) or tuf, from a root's `_type` and signature form. */
export function detectDialect(bytes: Uint8Array): Dialect {
  let doc: unknown;
  try {
    doc = parseJson(bytes);
  } catch (err) {
    throw new CliError(`not a root metadata file: ${(err as Error).message}`, { code: 'malformed_json' });
  }
  const signed = (doc as { signed?: { _type?: unknown } } | null)?.signed;
  if (!signed || typeof signed._type !== 'string') throw new CliError('not a root metadata file (no signed._type)', { code: 'malformed_metadata' });
  return signed._type === 'root' ? 'tuf' : 'uptane';
}

export interface ServerRoot {
  readonly dialect: Dialect;
  readonly bytes: Uint8Array;
  readonly md: Metadata<Root>;
}

/** The latest root the server serves for a repository (kept in the key directory too). */
export async function latestRoot(api: AdminApi, repo: RepoName, store?: KeyStore): Promise<ServerRoot> {
  const res = await api.request('GET', REPOS[repo].rootFile());
  const bytes = new Uint8Array(res.body);
  const dialect = detectDialect(bytes);
  const md = parseRoot(bytes, dialect);
  store?.keepRoot(repo, md.signed.version, bytes);
  return { dialect, bytes, md };
}

/** Every root version from 1 to the latest, as the server serves them (kept in the key directory). */
export async function fetchRootChain(api: AdminApi, repo: RepoName, store?: KeyStore): Promise<{ dialect: Dialect; chain: Uint8Array[] }> {
  const latest = await latestRoot(api, repo);
  const chain: Uint8Array[] = [];
  for (let v = 1; v < latest.md.signed.version; v++) {
    const res = await api.request('GET', REPOS[repo].rootFile(v), { accept: [404] });
    if (res.status === 404)
      throw new CliError(`the server has no ${repo} root version ${v} (it serves up to ${latest.md.signed.version})`, { code: 'root_not_found' });
    chain.push(new Uint8Array(res.body));
  }
  chain.push(latest.bytes);
  chain.forEach((bytes, i) => store?.keepRoot(repo, i + 1, bytes));
  return { dialect: latest.dialect, chain };
}

// --- who signed what ----------------------------------------------------------------------

export interface ThresholdCheck {
  readonly threshold: number;
  /** Key ids the role lists. */
  readonly keyids: readonly string[];
  /** Key ids with a valid signature (one per key material). */
  readonly signedBy: readonly string[];
  readonly met: boolean;
}

export interface SignatureCheck {
  readonly keyid: string;
  readonly valid: boolean;
  /** Listed as a root key by the previous version / by this version. */
  readonly inPrevious: boolean;
  readonly inThis: boolean;
}

export interface RootSignatures {
  readonly signatures: readonly SignatureCheck[];
  /** The previous root's threshold over this one (absent for version 1). */
  readonly previous: ThresholdCheck | undefined;
  readonly own: ThresholdCheck;
}

export function thresholdCheck(data: Uint8Array, sigs: readonly Signature[], keys: ReadonlyMap<string, PublicKey>, role: RoleKeys): ThresholdCheck {
  const counted = new Set<string>();
  const signedBy: string[] = [];
  for (const sig of sigs) {
    if (!role.keyids.includes(sig.keyid)) continue;
    const key = keys.get(sig.keyid);
    if (!key) continue;
    const fp = key.fingerprint();
    if (counted.has(fp)) continue;
    if (key.verify(data, sig.value, sig.method)) {
      counted.add(fp);
      signedBy.push(sig.keyid);
    }
  }
  return { threshold: role.threshold, keyids: [...role.keyids], signedBy, met: counted.size >= role.threshold };
}

/** Which signatures of a root are valid, and whether the previous root's and its own root thresholds are met. */
export function rootSignatures(md: Metadata<Root>, previous: Root | undefined): RootSignatures {
  const data = md.signedBytes();
  const own = md.signed;
  const signatures = md.signatures.map((sig) => {
    const key = own.keys.get(sig.keyid) ?? previous?.keys.get(sig.keyid);
    return {
      keyid: sig.keyid,
      valid: key !== undefined && key.verify(data, sig.value, sig.method),
      inPrevious: previous?.role('root').keyids.includes(sig.keyid) ?? false,
      inThis: own.role('root').keyids.includes(sig.keyid),
    };
  });
  return {
    signatures,
    previous: previous ? thresholdCheck(data, md.signatures, previous.keys, previous.role('root')) : undefined,
    own: thresholdCheck(data, md.signatures, own.keys, own.role('root')),
  };
}

/** "alice (3f2a91c0d4e1)" when the key is in the key directory, else the short id. */
export function keyLabel(store: KeyStore | undefined, keyId: string, dialect: Dialect): string {
  const name = store?.nameOf(keyId, dialect);
  return name ? `${name} (${shortId(keyId)})` : shortId(keyId);
}

export function describeThreshold(t: ThresholdCheck, what: string, store: KeyStore | undefined, dialect: Dialect): string {
  const base = `${what}: ${t.signedBy.length} of ${t.threshold} required signature(s)`;
  if (t.met) return `${base}, met`;
  const missing = t.keyids.filter((k) => !t.signedBy.includes(k)).map((k) => keyLabel(store, k, dialect));
  return `${base}; ${t.threshold - t.signedBy.length} more from: ${missing.join(', ')}`;
}

/**
 * Checks root N+1 exactly as a device will (procedure R: thresholds of the
 * trusted and of the new root, version N+1, not expired), so a root that would
 * brick devices is refused here, before it reaches the server.
 */
export function checkRootStep(currentBytes: Uint8Array, nextBytes: Uint8Array, dialect: Dialect, repo: RepoName, now: Date): void {
  const trusted = new TrustedRepository({ root: currentBytes }, { dialect, repository: repo, now });
  trusted.updateRoot(nextBytes);
  trusted.finishRoot();
}

/** Refuses a new root that changes keys the server must hold to sign online. */
export function checkOnlineRolesKept(current: Root, next: Root, repo: RepoName): void {
  for (const role of REPOS[repo].onlineRoles) {
    if (next.roleChanged(current, role)) {
      throw new CliError(`the new root changes the ${role} keys of the ${REPOS[repo].label}, which the server signs with online`, {
        hint: `leave ${role} as it is: the server holds those keys and must keep signing ${role} for devices to update`,
        code: 'online_role_changed',
      });
    }
  }
}

/** Signers for the root keys the server still holds online (exported over the admin API, kept in memory only). */
export async function onlineRootSigners(api: AdminApi, repo: RepoName, root: Root, dialect: Dialect): Promise<LocalSigner[]> {
  const signers: LocalSigner[] = [];
  for (const id of root.role('root').keyids) {
    const res = await api.request('GET', REPOS[repo].privateKey(id), { accept: [404] });
    if (res.status === 404) continue;
    const body = JSON.parse(res.body.toString('utf8')) as { private?: string };
    if (typeof body.private !== 'string') continue;
    const signer = new LocalSigner(privateKeyFromPem(body.private), dialect);
    // A key id is what the server claims; the key must really be the one the root lists.
    if (signer.publicKey.keyId(dialect) === id || root.keys.get(id)?.equals(signer.publicKey)) signers.push(signer);
  }
  return signers;
}

/** Deletes the server's private copies of keys a root no longer lists anywhere. Returns the ids deleted. */
export async function deleteStaleOnlineKeys(api: AdminApi, repo: RepoName, previous: Root, next: Root): Promise<string[]> {
  const listed = new Set<string>();
  for (const r of next.roles.values()) for (const id of r.keyids) listed.add(id);
  const deleted: string[] = [];
  const candidates = new Set<string>();
  for (const r of previous.roles.values()) for (const id of r.keyids) if (!listed.has(id)) candidates.add(id);
  for (const id of candidates) {
    const res = await api.request('DELETE', REPOS[repo].privateKey(id), { accept: [404, 409] });
    if (res.status === 204 || res.status === 200) deleted.push(id);
  }
  return deleted;
}
