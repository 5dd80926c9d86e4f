/**
 * The offline targets ceremonies under `uptide keys`:
 *
 * - `targets pull|add|remove|sign|push|show`: the Image repository's
 *   top-level targets.json signed with offline keys, pushed with the role
 *   checksum it was pulled at (a stale one is refused: pull again);
 * - `delegate NAME …`: a path pattern (and hardware ids) delegated to a
 *   supplier's keys, written into targets.json (then signed and pushed);
 * - `delegation init|add|remove|sign|push|show NAME`: the supplier's side,
 *   its own delegated targets signed with its own keys.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import {
  Delegation,
  Delegations,
  Metadata,
  TargetFile,
  Targets,
  expiresIn,
  parseRoot,
  parseTargets,
  pathMatches,
  type Dialect,
  type JsonObject,
  type PublicKey,
  type RoleKeys,
  type Root,
} from '@uptide/core';
import { collect, example, integerOption, type Ctx } from '../cli.js';
import { checkHardwareIds, checkTargetFilename, compareDigests, defaultFilename, digestFile, uploadFile, uploadsPath, type FileDigest } from '../files.js';
import { CliError, UsageError, formatBytes, json, shortId, table, type CliIo } from '../io.js';
import { KEY_NAME_RE, resolvePublicKey, type KeyStore } from '../keystore.js';
import { describeThreshold, detectDialect, keyLabel, latestRoot, thresholdCheck, type ThresholdCheck } from '../repo.js';
import {
  TARGETS_DAYS,
  TOP_LEVEL,
  delegationRef,
  edit,
  guardUnpushed,
  loadWorking,
  pullTargets,
  saveWorking,
  delegationKeys,
  type Working,
  type WorkingRef,
} from '../working.js';
import type { AdminApi } from '../api.js';

interface EntryOptions {
  name: string;
  version: string;
  hardwareId: string[];
  releaseCounter?: number;
  filename?: string;
  url?: string;
  length?: number;
  sha256?: string;
}

function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Adds the options shared by `targets add` and `delegation add`. */
function entryOptions(cmd: Command): Command {
  return cmd
    .argument('[file]', 'the image file (hashed here; its bytes are uploaded unless --url is given)')
    .requiredOption('--name <name>', 'image name')
    .requiredOption('--version <version>', 'image version')
    .requiredOption('--hardware-id <hw>', 'hardware id the image is built for (repeat for several)', collect)
    .option('--release-counter <n>', 'release counter (devices refuse a lower one than they had)', integerOption('--release-counter'))
    .option('--filename <filename>', 'target filename (default NAME-VERSION plus the file extension)')
    .option('--url <url>', 'the image is served from this URL instead of the server (then give FILE, or --length and --sha256)')
    .option('--length <bytes>', 'image length, with --url and no FILE', integerOption('--length', 1))
    .option('--sha256 <hex>', 'image sha256, with --url and no FILE');
}

/**
 * A target entry with hashes and length computed here. The bytes go to the
 * server's uploads area (what the Image repository serves once a signed
 * targets.json lists the name), or stay at --url.
 */
async function buildEntry(ctx: Ctx, cmd: Command, file: string | undefined, o: EntryOptions): Promise<{ entry: TargetFile; digest: FileDigest | undefined }> {
  const { io } = ctx;
  const hw = checkHardwareIds(o.hardwareId);
  let digest: FileDigest | undefined;
  let hashes: Record<string, string>;
  let length: number;
  const filename = o.filename ?? (file !== undefined ? defaultFilename(file, o.name, o.version) : `${o.name}-${o.version}`);
  checkTargetFilename(filename);
  if (o.url !== undefined) {
    if (!/^https?:\/\/\S+$/.test(o.url)) throw new UsageError('--url must be an http:// or https:// URL');
    if (file !== undefined) {
      digest = await digestFile(resolve(io.cwd, file));
      hashes = { ...digest.hashes };
      length = digest.length;
    } else {
      if (o.length === undefined || o.sha256 === undefined || !/^[0-9a-fA-F]{64}$/.test(o.sha256)) {
        throw new UsageError('with --url and no FILE, give --length and --sha256 (64 hex digits)');
      }
      hashes = { sha256: o.sha256.toLowerCase() };
      length = o.length;
    }
  } else {
    if (file === undefined) throw new UsageError('give the image FILE (or --url for an image served elsewhere)');
    const path = resolve(io.cwd, file);
    const up = await uploadFile<{ length: number; hashes: Record<string, string> }>(
      ctx.api(cmd),
      io,
      'PUT',
      uploadsPath(filename),
      path,
      `Uploading ${filename}`,
    );
    compareDigests(file, up.local, up.answer);
    digest = up.local;
    hashes = { ...digest.hashes };
    length = digest.length;
  }
  const now = isoSeconds(io.now());
  const custom: JsonObject = { name: o.name, version: o.version, hardwareIds: hw, targetFormat: 'BINARY', uri: o.url ?? null, createdAt: now, updatedAt: now };
  if (o.releaseCounter !== undefined) custom['releaseCounter'] = o.releaseCounter;
  return { entry: new TargetFile(filename, length, hashes, custom), digest };
}

/** A target of a targets file by filename or NAME@VERSION. */
function findEntry(t: Targets, key: string): string {
  if (t.targets.has(key)) return key;
  const at = key.lastIndexOf('@');
  if (at > 0) {
    const name = key.slice(0, at);
    const version = key.slice(at + 1);
    const hits = [...t.targets.values()].filter((e) => e.custom?.['name'] === name && e.custom?.['version'] === version);
    if (hits.length === 1) return (hits[0] as TargetFile).name;
    if (hits.length > 1) throw new UsageError(`${key} names ${hits.length} targets: give the filename`);
  }
  throw new CliError(`no target ${key} in the working copy`, { hint: 'see them with: uptide keys targets show', code: 'target_not_found' });
}

function describeEntry(e: TargetFile): string {
  const hw = e.hardwareIds?.join(',') ?? '';
  return `${e.name} (${formatBytes(e.length)}, sha256 ${(e.hashes['sha256'] ?? '').slice(0, 12)}…, for ${hw})`;
}

/** The Image root to check targets signers against: the latest copy in the key directory, or the server's. */
async function imageRootFor(ctx: Ctx, cmd: Command, store: KeyStore): Promise<{ root: Root; dialect: Dialect }> {
  const v = store.latestRootVersion('image');
  const bytes = v === undefined ? undefined : store.loadRoot('image', v);
  if (bytes) {
    const dialect = detectDialect(bytes);
    return { root: parseRoot(bytes, dialect).signed, dialect };
  }
  const r = await latestRoot(ctx.api(cmd), 'image', store);
  return { root: r.md.signed, dialect: r.dialect };
}

/** Signs a working copy with keys, each of which must be one the role lists. */
async function signWorking(
  ctx: Ctx,
  cmd: Command,
  store: KeyStore,
  w: Working,
  names: readonly string[],
  role: { label: string; keys: RoleKeys },
): Promise<Working> {
  const signers = [];
  for (const name of names) {
    const s = await store.signer(name, w.state.dialect, ctx.passphrases(cmd));
    const id = s.publicKey.keyId(w.state.dialect);
    if (!role.keys.keyids.includes(id)) {
      throw new CliError(`key ${name} (${shortId(id)}) is not one of the keys of ${role.label}: its signature would not count`, {
        hint: `the keys of ${role.label} are ${role.keys.keyids.map((k) => keyLabel(store, k, w.state.dialect)).join(', ')}`,
        code: 'not_a_role_key',
      });
    }
    signers.push(s);
  }
  return { state: w.state, md: await w.md.sign(signers) };
}

function requireThreshold(t: ThresholdCheck, what: string, store: KeyStore, dialect: Dialect, signHint: string): void {
  if (t.met) return;
  throw new CliError(`not signed enough to push: ${describeThreshold(t, what, store, dialect)}`, { hint: signHint, code: 'threshold_not_met' });
}

function renew(w: Working, days: number, io: CliIo): Working {
  if (w.md.signatures.length > 0) io.err('Note: the new expiry changes the content, so the signatures made so far are dropped.\n');
  const next = w.md.signed.with({ version: w.state.baseVersion + 1, expires: expiresIn(io.now(), days * 86400) });
  return { state: { ...w.state, dirty: true }, md: Metadata.of(next, w.state.dialect) };
}

function showWorking(io: CliIo, w: Working, ref: WorkingRef, asJson: boolean | undefined, signatures: ThresholdCheck | undefined, store: KeyStore): void {
  const t = w.md.signed;
  if (asJson) {
    io.out(
      json({
        file: ref.files(store).doc,
        version: t.version,
        pulledVersion: w.state.baseVersion,
        unpushedChanges: w.state.dirty,
        expires: t.expires,
        signatures: signatures ?? null,
        targets: [...t.targets.values()].map((e) => ({ filename: e.name, length: e.length, hashes: e.hashes, custom: e.custom ?? null })),
        delegations: t.delegations?.roles?.map((d) => d.toJSON()) ?? [],
      }),
    );
    return;
  }
  let s = `${ref.label}: version ${t.version} (pulled at ${w.state.baseVersion})${w.state.dirty ? ', changed, not pushed' : ', as on the server'}; expires ${t.expires}\n`;
  if (signatures) s += `${describeThreshold(signatures, 'signatures', store, w.state.dialect)}\n`;
  s += '\n';
  s +=
    t.targets.size === 0
      ? 'No targets.\n'
      : table(
          ['FILENAME', 'NAME', 'VERSION', 'HARDWARE IDS', 'SIZE', 'SHA256', 'URI'],
          [...t.targets.values()].map((e) => [
            e.name,
            String(e.custom?.['name'] ?? ''),
            String(e.custom?.['version'] ?? ''),
            e.hardwareIds?.join(',') ?? '',
            formatBytes(e.length),
            (e.hashes['sha256'] ?? '').slice(0, 12),
            e.uri ?? '',
          ]),
        );
  for (const d of t.delegations?.roles ?? []) {
    s += `delegation ${d.name}: paths ${d.paths?.join(', ') ?? '-'}${d.hardwareIds ? `, hardware ids ${d.hardwareIds.join(', ')}` : ''}, ${d.roles[0]?.threshold ?? 1} of ${d.roles[0]?.keyids.length ?? 0} key(s)${d.terminating ? ', terminating' : ''}\n`;
  }
  io.out(s);
}

/** The delegation of a role in the server's top-level targets.json (undefined when not delegated there). */
async function serverDelegation(
  api: AdminApi,
  dialect: Dialect,
  name: string,
): Promise<{ keys: ReadonlyMap<string, PublicKey>; role: RoleKeys; delegation: Delegation } | undefined> {
  const res = await api.request('GET', '/api/v1/user_repo/targets.json');
  const d = parseTargets(new Uint8Array(res.body), dialect).signed.delegations;
  const delegation = d?.roles?.find((x) => x.roles.some((r) => r.name === name));
  const role = d?.roleKeys(name);
  if (!d || !delegation || !role) return undefined;
  return { keys: d.keys, role, delegation };
}

export function registerTargetCeremonies(keys: Command, ctx: Ctx): void {
  const { io } = ctx;
  const targets = example(
    keys.command('targets').description("the Image repository's targets signed offline: pull, add, remove, sign, push"),
    'uptide keys targets pull && uptide keys targets add fw.bin --name fw --version 2.0 --hardware-id board-a',
    'uptide keys targets sign --key oem-targets && uptide keys targets push',
  );

  example(
    targets
      .command('pull')
      .description('download targets.json and its role checksum into the key directory (the working copy)')
      .option('--force', 'discard changes that were not pushed')
      .action(async (o: { force?: boolean }, cmd: Command) => {
        const store = ctx.keys(cmd);
        guardUnpushed(store, TOP_LEVEL, o.force);
        const api = ctx.api(cmd);
        const { dialect, md: root } = await latestRoot(api, 'image', store);
        const w = await pullTargets(api, store, dialect, io.now());
        const check = thresholdCheck(w.md.signedBytes(), w.md.signatures, root.signed.keys, root.signed.role('targets'));
        io.err(`Pulled targets.json version ${w.md.signed.version} (${w.md.signed.targets.size} target(s)) into ${TOP_LEVEL.files(store).doc}.\n`);
        if (!check.met) io.err('Warning: it is not signed by the targets keys of the current root; devices refuse it until you sign and push a new version.\n');
      }),
    'uptide keys targets pull',
  );

  example(
    entryOptions(
      targets.command('add').description('add an image to the working targets.json: hashes and length computed here; the bytes are uploaded to the server'),
    ).action(async (file: string | undefined, o: EntryOptions, cmd: Command) => {
      const store = ctx.keys(cmd);
      const w = loadWorking(store, TOP_LEVEL);
      const { entry } = await buildEntry(ctx, cmd, file, o);
      const replaced = w.md.signed.targets.has(entry.name);
      const next = edit(w, io.now(), (t) => t.with({ targets: new Map([...t.targets, [entry.name, entry]]) }));
      saveWorking(store, TOP_LEVEL, next);
      io.err(
        `${replaced ? 'Replaced' : 'Added'} ${describeEntry(entry)} in targets.json version ${next.md.signed.version}.\nNext: uptide keys targets sign --key TARGETS_KEY\n`,
      );
    }),
    'uptide keys targets add build/fw.bin --name fw --version 1.3.0 --hardware-id board-a',
    'uptide keys targets add --url https://cdn.example.com/fw-1.3.0.bin --length 1048576 --sha256 9f86… --name fw --version 1.3.0 --hardware-id board-a',
  );

  example(
    targets
      .command('remove')
      .description('remove an image from the working targets.json')
      .argument('<image>', 'filename or NAME@VERSION')
      .action(async (key: string, _o: unknown, cmd: Command) => {
        const store = ctx.keys(cmd);
        const w = loadWorking(store, TOP_LEVEL);
        const name = findEntry(w.md.signed, key);
        const next = edit(w, io.now(), (t) => t.with({ targets: new Map([...t.targets].filter(([k]) => k !== name)) }));
        saveWorking(store, TOP_LEVEL, next);
        io.err(`Removed ${name} from targets.json version ${next.md.signed.version}.\nNext: uptide keys targets sign --key TARGETS_KEY\n`);
      }),
    'uptide keys targets remove fw@1.2.0',
  );

  example(
    targets
      .command('sign')
      .description('sign the working targets.json with offline targets keys (each must be a targets key of the Image root)')
      .option('--key <name>', 'a targets key; repeat for a threshold', collect)
      .option(
        '--expires-in <days>',
        `lifetime in days (default ${TARGETS_DAYS} from the first change); also renews an unchanged targets.json`,
        integerOption('--expires-in', 1),
      )
      .action(async (opts: { key?: string[]; expiresIn?: number }, cmd: Command) => {
        const o = { ...opts, key: opts.key ?? [] };
        if (o.key.length === 0) throw new UsageError('give --key NAME');
        const store = ctx.keys(cmd);
        let w = loadWorking(store, TOP_LEVEL);
        if (o.expiresIn !== undefined) w = renew(w, o.expiresIn, io);
        else if (!w.state.dirty) {
          throw new CliError('nothing to sign: the working targets.json is the one pulled', {
            hint: 'change it first (uptide keys targets add/remove, uptide keys delegate), or give --expires-in DAYS to renew it',
            code: 'nothing_to_sign',
          });
        }
        const { root } = await imageRootFor(ctx, cmd, store);
        const signed = await signWorking(ctx, cmd, store, w, o.key, {
          label: `the Image root version ${root.version}'s targets role`,
          keys: root.role('targets'),
        });
        saveWorking(store, TOP_LEVEL, signed);
        const check = thresholdCheck(signed.md.signedBytes(), signed.md.signatures, root.keys, root.role('targets'));
        io.err(`Signed targets.json version ${signed.md.signed.version}. ${describeThreshold(check, 'targets', store, signed.state.dialect)}.\n`);
        if (check.met) io.err('Next: uptide keys targets push\n');
      }),
    'uptide keys targets sign --key oem-targets',
  );

  example(
    targets
      .command('push')
      .description('push the signed targets.json with the role checksum it was pulled at; the server then re-signs snapshot and timestamp')
      .action(async (_o: unknown, cmd: Command) => {
        const store = ctx.keys(cmd);
        const w = loadWorking(store, TOP_LEVEL);
        if (!w.state.dirty) throw new CliError('nothing to push: the working targets.json is the one pulled', { code: 'nothing_to_push' });
        const api = ctx.api(cmd);
        const { md: root, dialect } = await latestRoot(api, 'image', store);
        const check = thresholdCheck(w.md.signedBytes(), w.md.signatures, root.signed.keys, root.signed.role('targets'));
        requireThreshold(check, 'targets', store, dialect, 'sign with: uptide keys targets sign --key TARGETS_KEY');
        if (w.md.signed.isExpired(io.now()))
          throw new CliError(`targets.json expired at ${w.md.signed.expires}`, { hint: 'sign again with --expires-in DAYS', code: 'expired' });
        const res = await api.request('PUT', '/api/v1/user_repo/targets', {
          body: w.md.toBytes(),
          headers: { 'x-ats-role-checksum': w.state.checksum ?? '' },
          accept: [412],
        });
        if (res.status === 412) {
          throw new CliError('targets.json changed on the server since you pulled it (stale role checksum); nothing was pushed', {
            hint: 'run "uptide keys targets pull --force", re-apply your changes (add/remove/delegate), sign and push again',
            code: 'role_checksum_mismatch',
          });
        }
        await pullTargets(api, store, dialect, io.now());
        io.err(`Pushed targets.json version ${w.md.signed.version}; the server re-signed snapshot and timestamp.\n`);
        io.out(`${w.md.signed.version}\n`);
      }),
    'uptide keys targets push',
  );

  example(
    targets
      .command('show')
      .description('the working targets.json: version, signatures, targets, delegations')
      .option('--json', 'print JSON')
      .action(async (o: { json?: boolean }, cmd: Command) => {
        const store = ctx.keys(cmd);
        const w = loadWorking(store, TOP_LEVEL);
        const { root } = await imageRootFor(ctx, cmd, store);
        showWorking(io, w, TOP_LEVEL, o.json, thresholdCheck(w.md.signedBytes(), w.md.signatures, root.keys, root.role('targets')), store);
      }),
    'uptide keys targets show',
  );

  // --- delegations: the OEM side ----------------------------------------------------------------------

  example(
    keys
      .command('delegate')
      .description("delegate target paths (and hardware ids) to a supplier's keys in the working targets.json; then sign and push it")
      .argument('<role>', 'name of the delegated role (the supplier), 1-64 characters of A-Z a-z 0-9 . _ -')
      .option('--paths <pattern>', "target filename pattern the supplier may sign, e.g. 'supplier/*'; repeat", collect)
      .option('--hardware-id <hw>', 'only for these hardware ids; repeat', collect)
      .option('--key <key>', "the supplier's public key (file from uptide keys export-public, or a key name); repeat", collect)
      .option('--threshold <n>', 'supplier signatures required', integerOption('--threshold', 1))
      .option('--terminating', 'a target matching the paths is only looked for here, never in later delegations')
      .option('--remove', 'remove the delegation instead')
      .action(
        async (
          name: string,
          o: { paths: string[]; hardwareId: string[]; key: string[]; threshold?: number; terminating?: boolean; remove?: boolean },
          cmd: Command,
        ) => {
          if (!KEY_NAME_RE.test(name) || ['root', 'targets', 'snapshot', 'timestamp'].includes(name)) {
            throw new UsageError(
              `invalid role name ${JSON.stringify(name)}`,
              'use 1-64 characters of A-Z a-z 0-9 . _ - (not root, targets, snapshot or timestamp)',
            );
          }
          const store = ctx.keys(cmd);
          const w = loadWorking(store, TOP_LEVEL);
          const dialect = w.state.dialect;
          const existing = w.md.signed.delegations;
          if (existing?.succinctRoles)
            throw new CliError('targets.json uses succinct hash-bin delegations, which this command does not edit', { code: 'unsupported' });
          const others = (existing?.roles ?? []).filter((d) => !d.roles.some((r) => r.name === name));
          const had = (existing?.roles?.length ?? 0) !== others.length;
          let roles = others;
          const allKeys = new Map(existing?.keys ?? []);
          if (o.remove) {
            if (!had) throw new CliError(`targets.json does not delegate to ${name}`, { code: 'delegation_not_found' });
          } else {
            if (o.paths.length === 0) throw new UsageError('give --paths PATTERN (e.g. --paths "supplier/*")');
            if (o.key.length === 0) throw new UsageError("give the supplier's public key with --key FILE");
            const ids: string[] = [];
            for (const spec of o.key) {
              const { key } = resolvePublicKey(store, io, spec, dialect);
              const id = key.keyId(dialect);
              if (!ids.includes(id)) ids.push(id);
              allKeys.set(id, key);
            }
            const threshold = o.threshold ?? 1;
            if (threshold > ids.length) throw new UsageError(`a threshold of ${threshold} needs at least ${threshold} keys; --key gave ${ids.length}`);
            const hw = o.hardwareId.length > 0 ? checkHardwareIds(o.hardwareId) : undefined;
            roles = [...others, new Delegation([{ name, keyids: ids, threshold }], 1, o.paths, undefined, o.terminating ?? false, hw, false)];
          }
          const used = new Set(roles.flatMap((d) => d.roles.flatMap((r) => [...r.keyids])));
          const keysLeft = new Map([...allKeys].filter(([id]) => used.has(id)));
          const delegations = roles.length === 0 && !existing ? undefined : new Delegations(keysLeft, roles, undefined, existing?.unrecognized ?? {});
          const next = edit(w, io.now(), (t) => t.with({ delegations }));
          saveWorking(store, TOP_LEVEL, next);
          io.err(
            `${o.remove ? 'Removed the delegation to' : had ? 'Replaced the delegation to' : 'Delegated'} ${name}${o.remove ? '' : ` (paths ${o.paths.join(', ')})`} in targets.json version ${next.md.signed.version}.\n` +
              'Next: uptide keys targets sign --key TARGETS_KEY && uptide keys targets push\n',
          );
        },
      ),
    "uptide keys delegate supplier-a --paths 'supplier-a/*' --hardware-id board-b --key supplier-a.pub.json",
  );

  // --- delegations: the supplier side ---------------------------------------------------------------

  const delegation = example(
    keys.command('delegation').description("a supplier's delegated targets, signed with the supplier's own keys: init, add, remove, sign, push"),
    'uptide keys delegation init supplier-a',
    "uptide keys delegation add ecu.bin supplier-a --name ecu --version 2.0 --hardware-id board-b --filename 'supplier-a/ecu-2.0.bin'",
    'uptide keys delegation sign supplier-a --key supplier-a && uptide keys delegation push supplier-a',
  );

  example(
    delegation
      .command('init')
      .description('start a working copy of a delegated role (from the server’s current file, if any)')
      .argument('<role>')
      .option('--force', 'discard changes that were not pushed')
      .action(async (name: string, o: { force?: boolean }, cmd: Command) => {
        if (!KEY_NAME_RE.test(name)) throw new UsageError(`invalid role name ${JSON.stringify(name)}`);
        const store = ctx.keys(cmd);
        const ref = delegationRef(name);
        guardUnpushed(store, ref, o.force);
        const api = ctx.api(cmd);
        const { dialect } = await latestRoot(api, 'image', store);
        const now = io.now();
        const del = await serverDelegation(api, dialect, name);
        if (!del) {
          throw new CliError(`the Image repository's targets.json does not delegate to ${name}`, {
            hint: `the OEM adds it with: uptide keys delegate ${name} --paths 'PATTERN' --key YOUR_KEY.pub.json, then signs and pushes targets`,
            code: 'delegation_not_found',
          });
        }
        const res = await api.request('GET', `/api/v1/user_repo/delegations/${encodeURIComponent(name)}.json`, { accept: [404] });
        const md =
          res.status === 404
            ? Metadata.of(new Targets({ version: 1, expires: expiresIn(now, TARGETS_DAYS * 86400), targets: new Map() }), dialect)
            : parseTargets(new Uint8Array(res.body), dialect);
        const base = res.status === 404 ? 0 : md.signed.version;
        saveWorking(store, ref, {
          state: {
            dialect,
            baseVersion: base,
            dirty: false,
            pulledAt: now.toISOString(),
            delegation: {
              keyids: del.role.keyids,
              threshold: del.role.threshold,
              paths: del.delegation.paths ?? [],
              keys: Object.fromEntries(
                del.role.keyids.flatMap((id) => {
                  const k = del.keys.get(id);
                  return k ? [[id, k.toJSON()]] : [];
                }),
              ),
            },
          },
          md,
        });
        io.err(
          `Working copy of ${name}.json in ${ref.files(store).doc} (${base === 0 ? 'new' : `version ${base} on the server`}).\n` +
            `Delegated paths: ${del.delegation.paths?.join(', ') ?? '-'}${del.delegation.hardwareIds ? `; hardware ids: ${del.delegation.hardwareIds.join(', ')}` : ''}; ${del.role.threshold} signature(s) of: ${del.role.keyids.map((k) => keyLabel(store, k, dialect)).join(', ')}\n`,
        );
      }),
    'uptide keys delegation init supplier-a',
  );

  example(
    entryOptions(delegation.command('add').description("add an image to the delegated role's working copy (its filename must match the delegated paths)"))
      .argument('<role>')
      .action(async (file: string | undefined, name: string, o: EntryOptions, cmd: Command) => {
        const store = ctx.keys(cmd);
        const ref = delegationRef(name);
        const w = loadWorking(store, ref);
        const filename = o.filename ?? (file !== undefined ? defaultFilename(file, o.name, o.version) : `${o.name}-${o.version}`);
        const paths = w.state.delegation?.paths ?? [];
        if (paths.length > 0 && !paths.some((p) => pathMatches(p, filename, w.state.dialect))) {
          throw new CliError(`${filename} is outside the paths delegated to ${name} (${paths.join(', ')}): devices would never look for it there`, {
            hint: `give --filename matching ${paths.join(' or ')}`,
            code: 'outside_delegation',
          });
        }
        const { entry } = await buildEntry(ctx, cmd, file, { ...o, filename });
        const next = edit(w, io.now(), (t) => t.with({ targets: new Map([...t.targets, [entry.name, entry]]) }));
        saveWorking(store, ref, next);
        io.err(
          `Added ${describeEntry(entry)} to ${name}.json version ${next.md.signed.version}.\nNext: uptide keys delegation sign ${name} --key SUPPLIER_KEY\n`,
        );
      }),
    "uptide keys delegation add build/ecu.bin supplier-a --name ecu --version 2.0 --hardware-id board-b --filename 'supplier-a/ecu-2.0.bin'",
  );

  example(
    delegation
      .command('remove')
      .description("remove an image from the delegated role's working copy")
      .argument('<role>')
      .argument('<image>', 'filename or NAME@VERSION')
      .action(async (name: string, key: string, _o: unknown, cmd: Command) => {
        const store = ctx.keys(cmd);
        const ref = delegationRef(name);
        const w = loadWorking(store, ref);
        const filename = findEntry(w.md.signed, key);
        const next = edit(w, io.now(), (t) => t.with({ targets: new Map([...t.targets].filter(([k]) => k !== filename)) }));
        saveWorking(store, ref, next);
        io.err(`Removed ${filename} from ${name}.json version ${next.md.signed.version}.\n`);
      }),
    'uptide keys delegation remove supplier-a ecu@2.0',
  );

  example(
    delegation
      .command('sign')
      .description("sign the delegated role's working copy with the supplier's keys")
      .argument('<role>')
      .option('--key <name>', 'a key of the delegation; repeat for a threshold', collect)
      .option(
        '--expires-in <days>',
        `lifetime in days (default ${TARGETS_DAYS} from the first change); also renews an unchanged file`,
        integerOption('--expires-in', 1),
      )
      .action(async (name: string, opts: { key?: string[]; expiresIn?: number }, cmd: Command) => {
        const o = { ...opts, key: opts.key ?? [] };
        if (o.key.length === 0) throw new UsageError('give --key NAME');
        const store = ctx.keys(cmd);
        const ref = delegationRef(name);
        let w = loadWorking(store, ref);
        if (o.expiresIn !== undefined) w = renew(w, o.expiresIn, io);
        else if (!w.state.dirty)
          throw new CliError(`nothing to sign: ${name}.json is as it was at init`, { hint: 'add images first, or give --expires-in', code: 'nothing_to_sign' });
        const role = w.state.delegation ?? { keyids: [], threshold: 1 };
        const signed = await signWorking(ctx, cmd, store, w, o.key, { label: `the delegation to ${name}`, keys: role });
        saveWorking(store, ref, signed);
        io.err(`Signed ${name}.json version ${signed.md.signed.version}.\nNext: uptide keys delegation push ${name}\n`);
      }),
    'uptide keys delegation sign supplier-a --key supplier-a',
  );

  example(
    delegation
      .command('push')
      .description("push the delegated role's signed file; checked first against the delegation in the server's targets.json")
      .argument('<role>')
      .action(async (name: string, _o: unknown, cmd: Command) => {
        const store = ctx.keys(cmd);
        const ref = delegationRef(name);
        const w = loadWorking(store, ref);
        if (!w.state.dirty) throw new CliError(`nothing to push: ${name}.json is as it was at init`, { code: 'nothing_to_push' });
        const api = ctx.api(cmd);
        const del = await serverDelegation(api, w.state.dialect, name);
        if (del) {
          const check = thresholdCheck(w.md.signedBytes(), w.md.signatures, del.keys, del.role);
          requireThreshold(check, `the delegation to ${name}`, store, w.state.dialect, `sign with: uptide keys delegation sign ${name} --key SUPPLIER_KEY`);
        }
        const res = await api.request('PUT', `/api/v1/user_repo/delegations/${encodeURIComponent(name)}.json`, { body: w.md.toBytes(), accept: [409] });
        if (res.status === 409) {
          throw new CliError(`the server has ${name}.json at version ${w.md.signed.version} or newer already`, {
            hint: `start again from the server's file: uptide keys delegation init ${name} --force`,
            code: 'rollback',
          });
        }
        saveWorking(store, ref, { state: { ...w.state, baseVersion: w.md.signed.version, dirty: false }, md: w.md });
        io.err(`Pushed ${name}.json version ${w.md.signed.version}; the server re-signed snapshot and timestamp.\n`);
        io.out(`${w.md.signed.version}\n`);
      }),
    'uptide keys delegation push supplier-a',
  );

  example(
    delegation
      .command('show')
      .description("the delegated role's working copy")
      .argument('<role>')
      .option('--json', 'print JSON')
      .action(async (name: string, o: { json?: boolean }, cmd: Command) => {
        const store = ctx.keys(cmd);
        const ref = delegationRef(name);
        const w = loadWorking(store, ref);
        const d = w.state.delegation;
        const check = d ? thresholdCheck(w.md.signedBytes(), w.md.signatures, delegationKeys(w), d) : undefined;
        showWorking(io, w, ref, o.json, check, store);
      }),
    'uptide keys delegation show supplier-a',
  );
}
