/**
 * The working copies of the offline-signed targets ceremonies, kept in the
 * key directory between commands (pull, add, sign, push may run on different
 * days and, for signing, on different machines that share the directory):
 *
 * - the Image repository's top-level `targets.json`, with the role checksum
 *   (`x-ats-role-checksum`) and version it was pulled at;
 * - a supplier's delegated targets `NAME.json`, with the version the server had.
 *
 * Any edit raises the version to one above the pulled one and drops the
 * signatures (they covered the old content); signing never edits.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Targets } from '@uptide/core';
import { Metadata, PublicKey, expiresIn, parseTargets, type Dialect, type JsonObject } from '@uptide/core';
import type { AdminApi } from './api.js';
import { CliError } from './io.js';
import { readJsonFile, writeFileAtomic, type KeyStore } from './keystore.js';

export const TARGETS_DAYS = 90;

export interface WorkingState {
  /** uptane or tuf: how the file is written and signed. */
  readonly dialect: Dialect;
  /** The version on the server when pulled (0: none yet). */
  readonly baseVersion: number;
  /** x-ats-role-checksum of the pulled targets.json (top-level targets only). */
  readonly checksum?: string | undefined;
  /** True once edited after the pull and not pushed yet. */
  readonly dirty: boolean;
  readonly pulledAt: string;
  /** Delegated roles: the keys and threshold the top-level targets gave the role at init (to check signers offline). */
  readonly delegation?:
    | {
        readonly keyids: readonly string[];
        readonly threshold: number;
        readonly paths: readonly string[];
        /** The delegation's public keys by key id, in the repository's dialect. */
        readonly keys: Readonly<Record<string, JsonObject>>;
      }
    | undefined;
}

export interface Working {
  readonly state: WorkingState;
  readonly md: Metadata<Targets>;
}

/** Where a working copy lives: `image/targets` or `delegations/NAME`. */
export interface WorkingRef {
  readonly files: (store: KeyStore) => { doc: string; state: string };
  readonly label: string;
  readonly pullHint: string;
}

export const TOP_LEVEL: WorkingRef = {
  files: (store) => ({ doc: store.path('image', 'targets.json'), state: store.path('image', 'targets.state.json') }),
  label: 'targets.json',
  pullHint: 'run "uptide keys targets pull" first',
};

export function delegationRef(name: string): WorkingRef {
  return {
    files: (store) => ({ doc: store.path('delegations', `${name}.json`), state: store.path('delegations', `${name}.state.json`) }),
    label: `${name}.json`,
    pullHint: `run "uptide keys delegation init ${name}" first`,
  };
}

export function hasWorking(store: KeyStore, ref: WorkingRef): boolean {
  return existsSync(ref.files(store).state);
}

export function loadWorking(store: KeyStore, ref: WorkingRef): Working {
  const f = ref.files(store);
  if (!existsSync(f.state) || !existsSync(f.doc))
    throw new CliError(`no working copy of ${ref.label} in ${store.dir}`, { hint: ref.pullHint, code: 'not_pulled' });
  const state = readJsonFile(f.state, 'state file') as unknown as WorkingState;
  if (state.dialect !== 'uptane' && state.dialect !== 'tuf') throw new CliError(`${f.state} is damaged`, { hint: ref.pullHint, code: 'bad_state' });
  let md: Metadata<Targets>;
  try {
    md = parseTargets(readFileSync(f.doc), state.dialect);
  } catch (err) {
    throw new CliError(`${f.doc} is not valid targets metadata: ${(err as Error).message}`, { hint: ref.pullHint, code: 'bad_state' });
  }
  return { state, md };
}

export function saveWorking(store: KeyStore, ref: WorkingRef, w: Working): void {
  const f = ref.files(store);
  // Pretty for people reviewing it; signatures cover the canonical form, not these bytes.
  writeFileAtomic(f.doc, JSON.stringify(w.md.toJSON(), null, 2) + '\n');
  writeFileAtomic(f.state, JSON.stringify(w.state, null, 2) + '\n');
}

/** Refuses to throw away edits that were not pushed. */
export function guardUnpushed(store: KeyStore, ref: WorkingRef, force: boolean | undefined): void {
  if (force || !hasWorking(store, ref)) return;
  const w = loadWorking(store, ref);
  if (w.state.dirty) {
    throw new CliError(`the working ${ref.label} has changes that were not pushed`, {
      hint: 'push them first, or add --force to discard them',
      code: 'unpushed_changes',
    });
  }
}

/** Downloads targets.json with its role checksum and makes it the working copy. */
export async function pullTargets(api: AdminApi, store: KeyStore, dialect: Dialect, now: Date): Promise<Working> {
  const res = await api.request('GET', '/api/v1/user_repo/targets.json');
  const checksum = res.headers['x-ats-role-checksum'];
  if (typeof checksum !== 'string') throw new CliError('the server sent targets.json without an x-ats-role-checksum header', { code: 'bad_response' });
  const md = parseTargets(new Uint8Array(res.body), dialect);
  const w: Working = { state: { dialect, baseVersion: md.signed.version, checksum, dirty: false, pulledAt: now.toISOString() }, md };
  saveWorking(store, TOP_LEVEL, w);
  return w;
}

/**
 * Applies an edit: version one above the pulled one, expiry kept when already
 * edited (or the default lifetime from now), and no signatures.
 */
export function edit(w: Working, now: Date, change: (t: Targets) => Targets): Working {
  const version = w.state.baseVersion + 1;
  const expires = w.state.dirty ? w.md.signed.expires : expiresIn(now, TARGETS_DAYS * 86400);
  const next = change(w.md.signed).with({ version, expires });
  return { state: { ...w.state, dirty: true }, md: Metadata.of(next, w.state.dialect) };
}

/** The public keys of a delegated role recorded at init. */
export function delegationKeys(w: Working): ReadonlyMap<string, PublicKey> {
  const out = new Map<string, PublicKey>();
  for (const [id, k] of Object.entries(w.state.delegation?.keys ?? {})) out.set(id, PublicKey.fromJSON(k, w.state.dialect));
  return out;
}
