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
 * - uptane: aktualizr calls C fnmatch without flags, so `*` also matches `/`,
 *   a backslash escapes the next character and `[^…]` negates like `[!…]`;
 * - tuf: the TUF specification (python-tuf, Python's fnmatch) matches segment
 *   by segment, so `*` never crosses a `/` and the number of segments must be
 *   equal; a backslash is an ordinary character.
 * Both pattern and name are compared in NFC (uptane-standard.md §5.2).
 */
export function pathMatches(pattern: string, target: string, dialect: Dialect): boolean {
  const pat = pattern.normalize('NFC');
  const name = target.normalize('NFC');
  if (dialect === 'uptane') return globMatch(tokenizeGlob(pat, true), Array.from(name));
  const ps = pat.split('/');
  const ts = name.split('/');
  if (ps.length !== ts.length) return false;
  return ps.every((p, i) => globMatch(tokenizeGlob(p, false), Array.from(ts[i] as string)));
}

type GlobToken =
  | { readonly kind: 'star' }
  | { readonly kind: 'one' }
  | { readonly kind: 'literal'; readonly cp: number }
  | { readonly kind: 'class'; readonly negate: boolean; readonly ranges: ReadonlyArray<readonly [number, number]> };

/**
 * Reads an fnmatch pattern (`*`, `?`, `[seq]`, `[!seq]`). Odd cases follow
 * Python's fnmatch and C fnmatch alike: a `]` right after `[` or `[!` is a
 * literal, an unclosed `[` is a literal, a reversed range matches nothing and
 * a class left empty never matches. `cStyle` adds C's backslash escapes and
 * `[^…]`.
 */
function tokenizeGlob(glob: string, cStyle: boolean): GlobToken[] {
  const chars = Array.from(glob); // code points, so astral characters stay whole
  const cp = (c: string): number => c.codePointAt(0) as number;
  const n = chars.length;
  const out: GlobToken[] = [];
  let i = 0;
  while (i < n) {
    const c = chars[i++] as string;
    if (c === '*') {
      if (out[out.length - 1]?.kind !== 'star') out.push({ kind: 'star' });
    } else if (c === '?') out.push({ kind: 'one' });
    else if (c === '\\' && cStyle && i < n) out.push({ kind: 'literal', cp: cp(chars[i++] as string) });
    else if (c === '[') {
      let j = i;
      const negate = chars[j] === '!' || (cStyle && chars[j] === '^');
      if (negate) j++;
      // Members, with whether each was an unescaped '-' (a range operator when between two members).
      const members: Array<{ cp: number; dash: boolean }> = [];
      let closed = false;
      for (let first = true; j < n; first = false, j++) {
        const m = chars[j] as string;
        if (m === ']' && !first) {
          closed = true;
          break;
        }
        if (m === '\\' && cStyle && j + 1 < n) members.push({ cp: cp(chars[++j] as string), dash: false });
        else members.push({ cp: cp(m), dash: m === '-' });
      }
      if (!closed) {
        out.push({ kind: 'literal', cp: 0x5b });
        continue;
      }
      i = j + 1;
      const ranges: Array<[number, number]> = [];
      for (let k = 0; k < members.length; k++) {
        const lo = (members[k] as { cp: number }).cp;
        const hi = members[k + 2];
        if (members[k + 1]?.dash && hi !== undefined) {
          if (lo <= hi.cp) ranges.push([lo, hi.cp]);
          k += 2;
        } else ranges.push([lo, lo]);
      }
      out.push({ kind: 'class', negate, ranges });
    } else out.push({ kind: 'literal', cp: cp(c) });
  }
  return out;
}

function tokenMatches(t: GlobToken, cp: number): boolean {
  switch (t.kind) {
    case 'one':
      return true;
    case 'literal':
      return t.cp === cp;
    case 'class':
      return t.ranges.some(([lo, hi]) => cp >= lo && cp <= hi) !== t.negate;
    case 'star':
      return false;
  }
}

/**
 * Glob matching with one backtracking point per star: O(pattern × name) in the
 * worst case, so no delegation pattern can make a client spin (a RegExp with
 * several stars can backtrack exponentially).
 */
function globMatch(tokens: readonly GlobToken[], text: readonly string[]): boolean {
  const cps = text.map((c) => c.codePointAt(0) as number);
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < cps.length) {
    const tok = tokens[p];
    if (tok !== undefined && tok.kind === 'star') {
      starP = p++;
      starT = t;
    } else if (tok !== undefined && tokenMatches(tok, cps[t] as number)) {
      p++;
      t++;
    } else if (starP >= 0) {
      p = starP + 1;
      t = ++starT;
    } else return false;
  }
  while (tokens[p]?.kind === 'star') p++;
  return p === tokens.length;
}

/**
 * The same fnmatch pattern as an anchored RegExp (for callers that want one;
 * the verifier itself uses the linear matcher above): `starCrossesSlash` true
 * reads it as the uptane dialect does (C fnmatch), false as one tuf segment.
 * Every character is escaped, so no pattern makes the RegExp constructor throw.
 */
export function globToRegExp(glob: string, starCrossesSlash: boolean): RegExp {
  const star = starCrossesSlash ? '[\\s\\S]*' : '[^/]*';
  const one = starCrossesSlash ? '[\\s\\S]' : '[^/]';
  const hex = (cp: number): string => `\\u{${cp.toString(16)}}`;
  let re = '';
  for (const t of tokenizeGlob(glob, starCrossesSlash)) {
    if (t.kind === 'star') re += star;
    else if (t.kind === 'one') re += one;
    else if (t.kind === 'literal') re += hex(t.cp);
    else {
      const cls = t.ranges.map(([lo, hi]) => (lo === hi ? hex(lo) : `${hex(lo)}-${hex(hi)}`)).join('');
      if (cls === '') re += t.negate ? one : '(?!)';
      else re += t.negate ? (starCrossesSlash ? `[^${cls}]` : `(?!/)[^${cls}]`) : `[${cls}]`;
    }
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
