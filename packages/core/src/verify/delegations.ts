/**
 * Procedure D (uptane-standard.md §5.4.4.7) and Procedure M (§5.4.4.8):
 * finding the Image repository's metadata about one target by a preorder
 * depth-first search of the delegation graph, in priority order, honouring
 * terminating delegations, path patterns, hardware-id filters and multi-role
 * thresholds, with a bound on roles visited and on depth.
 *
 * Delegated files are loaded lazily through `load`, which fetches the bytes
 * and hands them to the TrustedRepository (so each one is checked with
 * Procedure G against its delegator's keys before it is searched).
 */
import { createHash } from 'node:crypto';
import { DelegationLimitError, TargetNotFoundError, UptaneError } from '../errors.js';
import type { Dialect } from '../crypto/keys.js';
import type { Metadata } from '../metadata/base.js';
import type { Delegation, TargetFile, Targets } from '../metadata/targets.js';
import type { Limits } from './limits.js';

/** Loads and verifies a delegated role's metadata (fetch + TrustedRepository.updateDelegatedTargets). */
export type DelegatedLoader = (role: string, delegator: string) => Promise<Metadata<Targets>>;

export interface ResolveOptions {
  readonly dialect: Dialect;
  /** The hardware id of the ECU that will install the target (D-4.1). Omit to match any. */
  readonly hardwareId?: string;
  readonly load: DelegatedLoader;
  readonly limits: Pick<Limits, 'maxDelegations' | 'maxDelegationDepth'>;
}

export interface ResolvedTarget {
  readonly target: TargetFile;
  /** The role whose metadata lists the target (`targets` or a delegated role). */
  readonly role: string;
}

type SearchResult = { found: ResolvedTarget } | { terminated: true } | undefined;

/**
 * Path matching differs between the dialects on purpose:
 * - uptane: aktualizr uses fnmatch without flags, so `*` also matches `/`;
 * - tuf: the TUF specification (and python-tuf) match segment by segment, so
 *   `*` never crosses a `/` and the number of segments must be equal.
 */
export function pathMatches(pattern: string, target: string, dialect: Dialect): boolean {
  if (dialect === 'uptane') return globToRegExp(pattern, true).test(target);
  const ps = pattern.split('/');
  const ts = target.split('/');
  if (ps.length !== ts.length) return false;
  return ps.every((p, i) => globToRegExp(p, false).test(ts[i] as string));
}

/** fnmatch-style glob (`*`, `?`, `[seq]`, `[!seq]`) as an anchored RegExp. */
export function globToRegExp(glob: string, starCrossesSlash: boolean): RegExp {
  let re = '';
  const star = starCrossesSlash ? '[\\s\\S]*' : '[^/]*';
  const one = starCrossesSlash ? '[\\s\\S]' : '[^/]';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') re += star;
    else if (c === '?') re += one;
    else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close === -1) {
        re += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, close);
      let negate = false;
      if (body.startsWith('!')) {
        negate = true;
        body = body.slice(1);
      }
      body = body.replace(/\\/g, '\\\\').replace(/\^/g, '\\^').replace(/\]/g, '\\]');
      re += `[${negate ? '^' : ''}${body}]`;
      i = close;
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'u');
}

function delegationApplies(d: Delegation, target: string, hardwareId: string | undefined, dialect: Dialect): boolean {
  // D-4.1: hardware ids (an omitted list matches any hardware, §5.2.3.2)…
  if (d.hardwareIds !== undefined && hardwareId !== undefined) {
    const hw = hardwareId.normalize('NFC');
    if (!d.hardwareIds.some((h) => h.normalize('NFC') === hw)) return false;
  }
  // …and the target name against the paths.
  if (d.paths !== undefined) return d.paths.some((p) => pathMatches(p, target, dialect));
  if (d.pathHashPrefixes !== undefined) {
    const digest = createHash('sha256').update(target, 'utf8').digest('hex');
    return d.pathHashPrefixes.some((p) => digest.startsWith(p));
  }
  return false;
}

/**
 * Resolves the trusted metadata about `targetName`, starting from the verified
 * top-level targets. Throws TargetNotFoundError when no role provides it, and
 * passes on any verification error of a delegated file (D-1: abort).
 */
export async function resolveDelegations(topLevel: Metadata<Targets>, targetName: string, options: ResolveOptions): Promise<ResolvedTarget> {
  const name = targetName.normalize('NFC');
  const visited = new Set<string>();
  let rolesVisited = 0;

  const visit = async (role: string, delegator: string, depth: number): Promise<Metadata<Targets>> => {
    rolesVisited++;
    if (rolesVisited > options.limits.maxDelegations) {
      throw new DelegationLimitError(`more than ${options.limits.maxDelegations} delegated roles visited looking for ${targetName}`, {
        repository: 'image',
        role,
      });
    }
    if (depth > options.limits.maxDelegationDepth) {
      throw new DelegationLimitError(`delegations deeper than ${options.limits.maxDelegationDepth} looking for ${targetName}`, { repository: 'image', role });
    }
    return options.load(role, delegator);
  };

  const search = async (md: Metadata<Targets>, role: string, depth: number): Promise<SearchResult> => {
    // D-2
    const t = md.signed.find(name);
    if (t) return { found: { target: t, role } };
    const delegations = md.signed.delegations;
    if (!delegations) return undefined;
    // Succinct hash bins (TAP 15): exactly one bin is responsible for a path.
    if (delegations.succinctRoles) {
      const sr = delegations.succinctRoles;
      const digest = createHash('sha256').update(name, 'utf8').digest();
      const bin = digest.readUInt32BE(0) >>> (32 - sr.bitLength);
      const binRole = sr.binName(bin);
      if (visited.has(binRole)) return undefined;
      visited.add(binRole);
      const child = await visit(binRole, role, depth + 1);
      return search(child, binRole, depth + 1);
    }
    // D-4, in priority order.
    for (const d of delegations.roles ?? []) {
      if (!delegationApplies(d, name, options.hardwareId, options.dialect)) continue;
      if (d.multiRole) {
        // D-4.2 / Procedure M
        const found = await multiRole(d, role, depth);
        if (found) return { found };
        if (d.terminating) return { terminated: true };
        continue;
      }
      const childRole = d.name;
      // A role reached twice (a cycle or a diamond) is searched once.
      if (visited.has(childRole)) {
        if (d.terminating) return { terminated: true };
        continue;
      }
      visited.add(childRole);
      // D-4.3: recurse (D-1 loads and checks the file; errors abort the search).
      const child = await visit(childRole, role, depth + 1);
      const r = await search(child, childRole, depth + 1);
      if (r) return r;
      // D-3: a terminating delegation without the target ends the search.
      if (d.terminating) return { terminated: true };
    }
    return undefined;
  };

  const multiRole = async (d: Delegation, delegator: string, depth: number): Promise<ResolvedTarget | undefined> => {
    // M-1: resolve the target under each role of the delegation.
    const answers: Array<{ index: number; result: ResolvedTarget }> = [];
    for (let i = 0; i < d.roles.length; i++) {
      const r = d.roles[i] as { name: string };
      if (visited.has(r.name)) continue;
      visited.add(r.name);
      let found: SearchResult;
      try {
        const child = await visit(r.name, delegator, depth + 1);
        found = await search(child, r.name, depth + 1);
      } catch (err) {
        // A role whose file fails verification simply does not agree; limits still abort.
        if (err instanceof DelegationLimitError || !(err instanceof UptaneError)) throw err;
        found = undefined;
      }
      if (found && 'found' in found) answers.push({ index: i, result: found.found });
    }
    // M-2: group identical answers; drop groups below the agreement threshold.
    const groups: Array<{ key: string; members: number[]; result: ResolvedTarget }> = [];
    for (const a of answers) {
      const key = agreementKey(a.result.target);
      const g = groups.find((x) => x.key === key);
      if (g) g.members.push(a.index);
      else groups.push({ key, members: [a.index], result: a.result });
    }
    const qualifying = groups.filter((g) => g.members.length >= d.minRolesInAgreement);
    if (qualifying.length === 0) return undefined; // M-5
    // M-3: on conflict, the group with the earliest-listed role wins. M-4 otherwise.
    qualifying.sort((a, b) => Math.min(...a.members) - Math.min(...b.members));
    return (qualifying[0] as { result: ResolvedTarget }).result;
  };

  const r = await search(topLevel, 'targets', 0);
  if (r && 'found' in r) return r.found;
  throw new TargetNotFoundError(
    r && 'terminated' in r
      ? `no trusted metadata for ${targetName}: a terminating delegation does not list it`
      : `no trusted metadata for ${targetName} in the Image repository`,
    { repository: 'image', role: 'targets' },
  );
}

/** What multi-role delegations must agree on: length, hashes and the "SHALL match" custom fields. */
function agreementKey(t: TargetFile): string {
  const hashes = Object.keys(t.hashes)
    .sort()
    .map((k) => `${k}=${(t.hashes[k] as string).toLowerCase()}`)
    .join(',');
  const hw = [...(t.hardwareIds ?? [])].sort().join(',');
  return `${t.length}|${hashes}|${hw}|${t.releaseCounter ?? ''}`;
}
