/**
 * `uptide keys …`: offline keys (generate, list, export-public) and the
 * root ceremonies (move-offline, root prepare/sign/push, verify-root). The
 * targets and delegation ceremonies are in targets.ts.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import {
  KEY_TYPES,
  Metadata,
  RoleDefinition,
  TrustedRepository,
  expiresIn,
  generatePrivateKey,
  parseRoot,
  type Dialect,
  type KeyType,
  type LocalSigner,
  type PublicKey,
  type Root,
} from '@uptide/core';
import { collect, example, integerOption, type Ctx } from '../cli.js';
import { CliError, UsageError, asCliError, json, shortId, table } from '../io.js';
import { readJsonFile, resolvePublicKey, toDialect, writeFileAtomic } from '../keystore.js';
import {
  REPOS,
  checkOnlineRolesKept,
  checkRootStep,
  deleteStaleOnlineKeys,
  describeThreshold,
  detectDialect,
  fetchRootChain,
  keyLabel,
  latestRoot,
  onlineRootSigners,
  parseRepo,
  rootSignatures,
  type RepoName,
} from '../repo.js';
import { TARGETS_DAYS, pullTargets } from '../working.js';
import { registerTargetCeremonies } from './targets.js';

export const ROOT_DAYS = 365;

/** Keys only ever listed by roles that drop out are dropped from `keys` too. */
function pruneKeys(keys: ReadonlyMap<string, PublicKey>, roles: ReadonlyMap<string, RoleDefinition>): Map<string, PublicKey> {
  const used = new Set<string>();
  for (const r of roles.values()) for (const id of r.keyids) used.add(id);
  return new Map([...keys].filter(([id]) => used.has(id)));
}

/** Checks a root chain step by step with procedure R (signatures and versions; expiry only of the last). */
function checkChain(chain: readonly Uint8Array[], dialect: Dialect, repo: RepoName, now: Date): void {
  const trusted = new TrustedRepository({ root: chain[0] as Uint8Array }, { dialect, repository: repo, now });
  for (const bytes of chain.slice(1)) trusted.updateRoot(bytes);
}

export function registerKeys(program: Command, ctx: Ctx): void {
  const { io } = ctx;
  const keys = program
    .command('keys')
    .description('offline keys and the key ceremonies (root and targets keys that never touch the server)')
    .option('--key-dir <dir>', 'the key directory (default: UPTIDE_KEY_DIR or ./uptide-keys)')
    .option('--passphrase-file <file>', 'read key passphrases from this file (default: UPTIDE_KEY_PASSPHRASE, or a prompt)')
    .addHelpText('after', '\nThe ceremonies step by step, what to keep where, and what to do when a key is lost: docs/keys.md\n');
  example(keys, 'uptide keys generate oem-root && uptide keys generate oem-targets', 'uptide keys move-offline --root-key oem-root --targets-key oem-targets');

  // --- generate, list, export-public ---------------------------------------------------------

  example(
    keys
      .command('generate')
      .description('generate a key pair; the private key is sealed with a passphrase (scrypt + AES-256-GCM) in the key directory')
      .argument('<name>', 'a name for the key: 1-64 characters of A-Z a-z 0-9 . _ -')
      .option('--type <type>', `${KEY_TYPES.filter((t) => t !== 'ecdsa-p256').join(', ')} (aktualizr accepts these)`, 'ed25519')
      .option('--json', 'print JSON')
      .action(async (name: string, o: { type: string; json?: boolean }, cmd: Command) => {
        if (!(['ed25519', 'rsa2048', 'rsa3072', 'rsa4096'] as const).includes(o.type as 'ed25519')) {
          throw new UsageError(`--type must be ed25519, rsa2048, rsa3072 or rsa4096, not ${JSON.stringify(o.type)}`);
        }
        const store = ctx.keys(cmd);
        if (store.has(name)) throw new CliError(`a key named ${name} exists already in ${store.dir}`, { hint: 'pick another name', code: 'key_exists' });
        const passphrase = await ctx.passphrases(cmd).create(name);
        const info = store.save(name, await generatePrivateKey(o.type as KeyType), passphrase);
        const id = info.publicKey.keyId('uptane');
        if (o.json) return io.out(json({ name, type: info.type, keyid: id, file: store.path('keys', `${name}.key.json`) }));
        io.out(`${id}\n`);
        io.err(
          `Generated ${info.type} key ${name} (key id ${id}) in ${store.path('keys', `${name}.key.json`)}.\n` +
            'Back the key directory up now (two copies, offline); without the file and its passphrase the key is gone.\n',
        );
      }),
    'uptide keys generate alice-root',
    'UPTIDE_KEY_PASSPHRASE=… uptide keys generate ci-targets --type rsa4096',
  );

  example(
    keys
      .command('list')
      .description('the keys of the key directory, with the roles they hold in the roots seen last')
      .option('--json', 'print JSON')
      .action(async (o: { json?: boolean }, cmd: Command) => {
        const store = ctx.keys(cmd);
        const roots: Array<{ repo: RepoName; root: Root; dialect: Dialect }> = [];
        for (const repo of ['image', 'director'] as const) {
          const v = store.latestRootVersion(repo);
          const bytes = v === undefined ? undefined : store.loadRoot(repo, v);
          if (bytes) {
            const dialect = detectDialect(bytes);
            roots.push({ repo, root: parseRoot(bytes, dialect).signed, dialect });
          }
        }
        const rows = store.list().map((k) => {
          const roles: string[] = [];
          for (const r of roots) {
            const id = toDialect(k.publicKey, r.dialect).keyId(r.dialect);
            for (const [role, def] of r.root.roles) if (def.keyids.includes(id)) roles.push(`${r.repo} ${role} (v${r.root.version})`);
          }
          return { name: k.name, type: k.type, keyid: k.publicKey.keyId('uptane'), roles };
        });
        if (o.json) return io.out(json(rows));
        if (rows.length === 0) return io.err(`No keys in ${store.dir}. Generate one with: uptide keys generate NAME\n`);
        io.out(
          table(
            ['NAME', 'TYPE', 'KEY ID', 'ROLES'],
            rows.map((r) => [r.name, r.type, r.keyid, r.roles.join(', ') || '-']),
          ),
        );
      }),
    'uptide keys list',
  );

  example(
    keys
      .command('export-public')
      .description('write the public half of a key (for suppliers, auditors and root ceremonies); needs no passphrase')
      .argument('<name>')
      .option('--out <file>', 'write to a file instead of standard output')
      .action(async (name: string, o: { out?: string }, cmd: Command) => {
        const store = ctx.keys(cmd);
        const info = store.info(name);
        const text = JSON.stringify(info.publicKey.toJSON(), null, 2) + '\n';
        if (o.out) {
          writeFileSync(resolve(io.cwd, o.out), text);
          io.err(`Wrote the public key of ${name} (key id ${info.publicKey.keyId('uptane')}) to ${o.out}.\n`);
        } else io.out(text);
      }),
    'uptide keys export-public supplier-a --out supplier-a.pub.json',
  );

  // --- move-offline -----------------------------------------------------------------------------

  example(
    keys
      .command('move-offline')
      .description(
        "take the Image repository's root and targets keys off the server: root N+1 lists your offline root and targets keys (snapshot and timestamp stay online), signed by the server's old root key and your new one; checked as a device would before it is pushed; targets.json is re-signed with the offline key; then the server's copies are deleted",
      )
      .requiredOption('--root-key <name>', 'the new offline root key (uptide keys generate NAME)')
      .requiredOption('--targets-key <name>', 'the new offline targets key')
      .option('--expires-in <days>', `root lifetime in days (default ${ROOT_DAYS}); sign a new root before it ends`, integerOption('--expires-in', 1))
      .action(async (o: { rootKey: string; targetsKey: string; expiresIn?: number }, cmd: Command) => {
        if (o.rootKey === o.targetsKey)
          throw new UsageError('use two different keys for root and targets', 'the root key should live offline in a safe; the targets key signs releases');
        const api = ctx.api(cmd);
        const store = ctx.keys(cmd);
        const pass = ctx.passphrases(cmd);
        const now = io.now();
        const { dialect, chain } = await fetchRootChain(api, 'image', store);
        checkChain(chain, dialect, 'image', now);
        const currentBytes = chain[chain.length - 1] as Uint8Array;
        const current = parseRoot(currentBytes, dialect).signed;
        // Unlock the offline keys before touching the server: a wrong passphrase stops here.
        const rootSigner = await store.signer(o.rootKey, dialect, pass);
        const targetsSigner = await store.signer(o.targetsKey, dialect, pass);
        const old = await onlineRootSigners(api, 'image', current, dialect);
        if (old.length < current.role('root').threshold) {
          throw new CliError(
            `the server holds ${old.length} of the ${current.role('root').threshold} root key(s) needed: the Image repository's root is already offline`,
            {
              hint: 'rotate offline keys with "uptide keys root prepare/sign/push" (docs/keys.md)',
              code: 'already_offline',
            },
          );
        }
        const rootId = rootSigner.publicKey.keyId(dialect);
        const targetsId = targetsSigner.publicKey.keyId(dialect);
        const roles = new Map(current.roles);
        roles.set('root', new RoleDefinition([rootId], 1));
        roles.set('targets', new RoleDefinition([targetsId], 1));
        const allKeys = new Map(current.keys);
        allKeys.set(rootId, rootSigner.publicKey);
        allKeys.set(targetsId, targetsSigner.publicKey);
        const next = current.with({
          version: current.version + 1,
          expires: expiresIn(now, (o.expiresIn ?? ROOT_DAYS) * 86400),
          keys: pruneKeys(allKeys, roles),
          roles,
        });
        const md = await Metadata.of(next, dialect).sign([...old, rootSigner]);
        const bytes = md.toBytes();
        checkRootStep(currentBytes, bytes, dialect, 'image', now);
        checkOnlineRolesKept(current, next, 'image');

        await api.request('POST', REPOS.image.pushRoot, { body: bytes });
        const served = await latestRoot(api, 'image', store);
        if (!Buffer.from(served.bytes).equals(Buffer.from(bytes))) {
          throw new CliError(`after the push the server serves root version ${served.md.signed.version}, not the one pushed`, {
            hint: 'run "uptide keys verify-root" and find out what changed the server; the online keys were NOT deleted',
            code: 'push_not_served',
          });
        }
        io.err(`Pushed Image root version ${next.version}: root key ${o.rootKey}, targets key ${o.targetsKey}; snapshot and timestamp stay online.\n`);

        // Devices check targets.json against the new targets key right away: re-sign it now.
        let targetsError: CliError | undefined;
        try {
          const pulled = await pullTargets(api, store, dialect, now);
          const t = pulled.md.signed.with({ version: pulled.md.signed.version + 1, expires: expiresIn(now, TARGETS_DAYS * 86400) });
          const signedTargets = await Metadata.of(t, dialect).sign([targetsSigner]);
          signedTargets.verify(next.keys, next.role('targets'), { repository: 'image', role: 'targets' });
          await api.request('PUT', '/api/v1/user_repo/targets', {
            body: signedTargets.toBytes(),
            headers: { 'x-ats-role-checksum': pulled.state.checksum ?? '' },
          });
          await pullTargets(api, store, dialect, now);
          io.err(`Re-signed targets.json (version ${t.version}) with ${o.targetsKey}.\n`);
        } catch (err) {
          targetsError = asCliError(err);
        }
        // The old keys are listed nowhere in the new root: the server's copies only add risk.
        const deleted = await deleteStaleOnlineKeys(api, 'image', current, next);
        io.err(`Deleted the server's copies of ${deleted.length} key(s) the new root no longer lists: ${deleted.map(shortId).join(', ') || 'none'}.\n`);
        if (targetsError) {
          throw new CliError(`root version ${next.version} is pushed, but re-signing targets.json failed: ${targetsError.message}`, {
            hint: `devices refuse the old targets.json until you run: uptide keys targets pull && uptide keys targets sign --key ${o.targetsKey} && uptide keys targets push`,
            code: targetsError.code,
          });
        }
        io.err(
          `The server now accepts only targets signed with ${o.targetsKey} (uptide keys targets …). Copies of every root are in ${store.path('roots', 'image')}.\n` +
            'Back up the key directory now, and keep the root key offline.\n',
        );
        io.out(`${next.version}\n`);
      }),
    'uptide keys move-offline --root-key oem-root --targets-key oem-targets',
  );

  // --- root rotation (m of n) ------------------------------------------------------------------

  const root = example(
    keys.command('root').description('rotate root keys, m of n: prepare, have each key holder sign, push'),
    'uptide keys root prepare --add-key alice --add-key bob.pub.json --add-key carol.pub.json --remove-key oem-root --threshold 2 --out root-3.json',
    'uptide keys root sign root-3.json --key alice          # each key holder, old and new',
    'uptide keys root push root-3.json',
  );

  example(
    root
      .command('prepare')
      .description('write root N+1 (unsigned) from the server’s root N with keys added or removed and a threshold')
      .option('--repo <repo>', 'image or director', 'image')
      .option('--add-key <key>', 'a key to list (key name, or a public key file from its holder); repeat', collect)
      .option('--remove-key <key>', 'a key to drop (key name, public key file, or key id); repeat', collect)
      .option('--threshold <n>', 'signatures required (default: unchanged)', integerOption('--threshold', 1))
      .option('--role <role>', 'root, or targets (Image repository only: rotating the offline targets keys)', 'root')
      .option('--expires-in <days>', `lifetime in days (default ${ROOT_DAYS})`, integerOption('--expires-in', 1))
      .option('--out <file>', 'where to write it (default <repo>-root-<N+1>.json)')
      .action(
        async (
          o: { repo: string; addKey: string[]; removeKey: string[]; threshold?: number; role: string; expiresIn?: number; out?: string },
          cmd: Command,
        ) => {
          const repo = parseRepo(o.repo);
          if (o.role !== 'root' && o.role !== 'targets') throw new UsageError('--role must be root or targets');
          if (o.role === 'targets' && repo === 'director') throw new UsageError('the Director signs targets online; only its root keys can be rotated');
          if (o.addKey.length === 0 && o.removeKey.length === 0 && o.threshold === undefined && o.expiresIn === undefined) {
            throw new UsageError('nothing to change: give --add-key, --remove-key, --threshold or --expires-in');
          }
          const api = ctx.api(cmd);
          const store = ctx.keys(cmd);
          const now = io.now();
          const { dialect, chain } = await fetchRootChain(api, repo, store);
          checkChain(chain, dialect, repo, now);
          const current = parseRoot(chain[chain.length - 1] as Uint8Array, dialect).signed;
          const def = current.role(o.role as 'root' | 'targets');
          let ids = [...def.keyids];
          const allKeys = new Map(current.keys);
          for (const spec of o.addKey) {
            const { key } = resolvePublicKey(store, io, spec, dialect);
            const id = key.keyId(dialect);
            if (ids.includes(id)) throw new UsageError(`${spec} (${shortId(id)}) is already a ${o.role} key`);
            allKeys.set(id, key);
            ids.push(id);
          }
          for (const spec of o.removeKey) {
            const id = /^[0-9a-fA-F]{64}$/.test(spec) ? spec.toLowerCase() : resolvePublicKey(store, io, spec, dialect).key.keyId(dialect);
            if (!ids.includes(id)) throw new UsageError(`${spec} (${shortId(id)}) is not a ${o.role} key of version ${current.version}`);
            ids = ids.filter((k) => k !== id);
          }
          const threshold = o.threshold ?? def.threshold;
          if (ids.length === 0) throw new UsageError(`the ${o.role} role would have no key left`);
          if (threshold > ids.length)
            throw new UsageError(`a threshold of ${threshold} needs at least ${threshold} keys; the ${o.role} role would have ${ids.length}`);
          const roles = new Map(current.roles);
          roles.set(o.role, new RoleDefinition(ids, threshold));
          const next = current.with({
            version: current.version + 1,
            expires: expiresIn(now, (o.expiresIn ?? ROOT_DAYS) * 86400),
            keys: pruneKeys(allKeys, roles),
            roles,
          });
          const out = resolve(io.cwd, o.out ?? `${repo}-root-${next.version}.json`);
          writeFileAtomic(out, JSON.stringify(Metadata.of(next, dialect).toJSON(), null, 2) + '\n');
          const rootDef = next.role('root');
          const oldRoot = current.role('root');
          io.out(`${out}\n`);
          io.err(
            `Wrote ${repo} root version ${next.version} (unsigned) to ${out}.\n` +
              `It needs ${oldRoot.threshold} signature(s) from the root keys of version ${current.version}: ${oldRoot.keyids.map((k) => keyLabel(store, k, dialect)).join(', ')}\n` +
              `and ${rootDef.threshold} from its own root keys: ${rootDef.keyids.map((k) => keyLabel(store, k, dialect)).join(', ')}.\n` +
              `Each key holder runs: uptide keys root sign ${o.out ?? `${repo}-root-${next.version}.json`} --repo ${repo} --key NAME\n` +
              `${oldRoot.keyids.some((k) => !store.nameOf(k, dialect)) ? `(root keys still on the server sign with: uptide keys root sign FILE --repo ${repo} --online)\n` : ''}` +
              `Then: uptide keys root push ${o.out ?? `${repo}-root-${next.version}.json`} --repo ${repo}\n`,
          );
        },
      ),
    'uptide keys root prepare --repo image --add-key bob.pub.json --add-key carol.pub.json --threshold 2 --out root-3.json',
    'uptide keys root prepare --repo director --add-key alice --add-key bob --add-key carol --remove-key 3f2a… --threshold 2',
  );

  example(
    root
      .command('sign')
      .description('add signatures to a prepared root (each key holder, on the machine that holds their key)')
      .argument('<file>', 'the root file from "uptide keys root prepare"')
      .option('--repo <repo>', 'image or director', 'image')
      .option('--key <name>', 'a key of the key directory; repeat', collect)
      .option('--online', "also sign with the root keys the server still holds (the first rotation away from the server's root key)")
      .action(async (file: string, opts: { repo: string; key?: string[]; online?: boolean }, cmd: Command) => {
        const o = { ...opts, key: opts.key ?? [] };
        const repo = parseRepo(o.repo);
        if (o.key.length === 0 && !o.online) throw new UsageError('give --key NAME (or --online for the server’s root keys)');
        const store = ctx.keys(cmd);
        const path = resolve(io.cwd, file);
        const bytes = new Uint8Array(Buffer.from(JSON.stringify(readJsonFile(path, 'root file'))));
        const dialect = detectDialect(bytes);
        const md = parseRoot(bytes, dialect);
        const prevBytes = store.loadRoot(repo, md.signed.version - 1);
        const previous = prevBytes ? parseRoot(prevBytes, dialect).signed : undefined;
        const signers: LocalSigner[] = [];
        for (const name of o.key) {
          const signer = await store.signer(name, dialect, ctx.passphrases(cmd));
          const id = signer.publicKey.keyId(dialect);
          const inNew = md.signed.role('root').keyids.includes(id);
          const inOld = previous?.role('root').keyids.includes(id);
          if (!inNew && inOld === false) {
            throw new CliError(
              `key ${name} (${shortId(id)}) is a root key of neither version ${md.signed.version - 1} nor ${md.signed.version}: its signature would not count`,
              {
                hint: 'sign with a key that "uptide keys root prepare" listed',
                code: 'not_a_root_key',
              },
            );
          }
          if (!inNew && inOld === undefined)
            io.err(`Note: no copy of ${repo} root version ${md.signed.version - 1} here, so ${name} cannot be checked against it.\n`);
          signers.push(signer);
        }
        if (o.online) {
          const api = ctx.api(cmd);
          const cur = await latestRoot(api, repo, store);
          if (cur.md.signed.version !== md.signed.version - 1) {
            throw new CliError(`the server's ${repo} root is version ${cur.md.signed.version}; this file is version ${md.signed.version}`, {
              hint: 'prepare a new root from the current one',
              code: 'stale_root',
            });
          }
          const online = await onlineRootSigners(api, repo, cur.md.signed, dialect);
          if (online.length === 0) throw new CliError(`the server holds no root key of the ${REPOS[repo].label}`, { code: 'no_online_root_key' });
          signers.push(...online);
        }
        const signed = await md.sign(signers);
        writeFileAtomic(path, JSON.stringify(signed.toJSON(), null, 2) + '\n');
        const report = rootSignatures(signed, previous);
        io.err(`Signed ${file} with ${signers.length} key(s).\n`);
        if (report.previous) io.err(`  ${describeThreshold(report.previous, `root keys of version ${md.signed.version - 1}`, store, dialect)}\n`);
        io.err(`  ${describeThreshold(report.own, `root keys of version ${md.signed.version}`, store, dialect)}\n`);
      }),
    'uptide keys root sign image-root-3.json --key alice',
    'uptide keys root sign director-root-2.json --repo director --online --key alice',
  );

  example(
    root
      .command('push')
      .description(
        'check a signed root exactly as devices will (thresholds of old and new, version, expiry), push it, then delete server copies of keys it no longer lists',
      )
      .argument('<file>')
      .option('--repo <repo>', 'image or director', 'image')
      .action(async (file: string, o: { repo: string }, cmd: Command) => {
        const repo = parseRepo(o.repo);
        const api = ctx.api(cmd);
        const store = ctx.keys(cmd);
        const now = io.now();
        const bytesIn = new Uint8Array(Buffer.from(JSON.stringify(readJsonFile(resolve(io.cwd, file), 'root file'))));
        const cur = await latestRoot(api, repo, store);
        const dialect = cur.dialect;
        const md = parseRoot(bytesIn, dialect);
        if (md.signed.version !== cur.md.signed.version + 1) {
          throw new CliError(
            `the server's ${repo} root is version ${cur.md.signed.version}; this file is version ${md.signed.version} (it must be ${cur.md.signed.version + 1})`,
            {
              hint: 'prepare a new root from the current one (uptide keys root prepare)',
              code: 'stale_root',
            },
          );
        }
        const report = rootSignatures(md, cur.md.signed);
        if (!report.previous?.met || !report.own.met) {
          const lines = [report.previous as NonNullable<typeof report.previous>, report.own]
            .map((t, i) => (t.met ? undefined : describeThreshold(t, `root keys of version ${md.signed.version - 1 + i}`, store, dialect)))
            .filter(Boolean);
          throw new CliError(`${file} is not signed enough to push: ${lines.join('; ')}`, {
            hint: `each missing key holder runs: uptide keys root sign ${file} --repo ${repo} --key NAME`,
            code: 'threshold_not_met',
          });
        }
        const bytes = md.toBytes();
        checkRootStep(cur.bytes, bytes, dialect, repo, now);
        checkOnlineRolesKept(cur.md.signed, md.signed, repo);
        await api.request('POST', REPOS[repo].pushRoot, { body: bytes });
        const served = await latestRoot(api, repo, store);
        if (!Buffer.from(served.bytes).equals(Buffer.from(bytes))) {
          throw new CliError(`after the push the server serves root version ${served.md.signed.version}, not the one pushed`, {
            hint: 'run "uptide keys verify-root" to see what the server serves',
            code: 'push_not_served',
          });
        }
        const deleted = await deleteStaleOnlineKeys(api, repo, cur.md.signed, md.signed);
        io.out(`${md.signed.version}\n`);
        io.err(
          `Pushed ${repo} root version ${md.signed.version} (root threshold ${md.signed.role('root').threshold} of ${md.signed.role('root').keyids.length}).\n` +
            (deleted.length ? `Deleted the server's copies of keys it no longer lists: ${deleted.map(shortId).join(', ')}.\n` : ''),
        );
        if (repo === 'image' && md.signed.roleChanged(cur.md.signed, 'targets')) {
          io.err(
            'The targets keys changed: devices refuse the current targets.json until it is signed with the new ones. Now run:\n' +
              '  uptide keys targets pull && uptide keys targets sign --key NEW_TARGETS_KEY && uptide keys targets push\n',
          );
        }
      }),
    'uptide keys root push image-root-3.json',
  );

  // --- verify-root -------------------------------------------------------------------------------

  example(
    keys
      .command('verify-root')
      .description('download the whole root chain and verify it as a device does, showing who signed each version and whether both thresholds were met')
      .option('--repo <repo>', 'image or director', 'image')
      .option('--json', 'print JSON')
      .action(async (o: { repo: string; json?: boolean }, cmd: Command) => {
        const repo = parseRepo(o.repo);
        const api = ctx.api(cmd);
        const store = ctx.keys(cmd);
        const now = io.now();
        const { dialect, chain } = await fetchRootChain(api, repo, store);
        const versions: unknown[] = [];
        let failure: string | undefined;
        let trusted: TrustedRepository | undefined;
        let previous: Root | undefined;
        let text = `${REPOS[repo].label} root chain: ${chain.length} version(s), ${dialect} dialect\n`;
        for (const bytes of chain) {
          const md = parseRoot(bytes, dialect);
          const v = md.signed.version;
          const report = rootSignatures(md, previous);
          let error: string | undefined;
          try {
            if (!trusted) trusted = new TrustedRepository({ root: bytes }, { dialect, repository: repo, now });
            else trusted.updateRoot(bytes);
          } catch (err) {
            error = asCliError(err).message;
            failure ??= `version ${v}: ${error}`;
          }
          versions.push({
            version: v,
            expires: md.signed.expires,
            rootKeys: md.signed.role('root').keyids,
            threshold: md.signed.role('root').threshold,
            signatures: report.signatures.map((s) => ({ ...s, name: store.nameOf(s.keyid, dialect) ?? null })),
            previousThreshold: report.previous ?? null,
            ownThreshold: report.own,
            ok: error === undefined,
            error: error ?? null,
          });
          text += `\nversion ${v}  expires ${md.signed.expires}  root threshold ${md.signed.role('root').threshold} of ${md.signed.role('root').keyids.length}\n`;
          for (const s of report.signatures) {
            const where = [s.inPrevious ? `root key of v${v - 1}` : '', s.inThis ? `root key of v${v}` : ''].filter(Boolean).join(', ') || 'not a root key';
            text += `  ${s.valid ? 'valid  ' : 'INVALID'} ${keyLabel(store, s.keyid, dialect)}  (${where})\n`;
          }
          if (report.previous) text += `  ${describeThreshold(report.previous, `threshold of v${v - 1}`, store, dialect)}\n`;
          text += `  ${describeThreshold(report.own, `threshold of v${v}`, store, dialect)}\n`;
          if (error) text += `  REFUSED: ${error}\n`;
          if (error) break;
          previous = md.signed;
        }
        const last = parseRoot(chain[chain.length - 1] as Uint8Array, dialect).signed;
        const daysLeft = Math.floor((last.expiresAt - now.getTime()) / 86_400_000);
        const expired = last.isExpired(now);
        if (expired) failure ??= `the latest root (version ${last.version}) expired at ${last.expires}`;
        if (o.json) io.out(json({ repo, dialect, ok: failure === undefined, failure: failure ?? null, latestExpiresInDays: daysLeft, versions }));
        else {
          text += failure
            ? `\nFAILED: ${failure}\n`
            : `\nOK: every version is signed by a threshold of the previous root keys and of its own.\nThe latest root (version ${last.version}) expires in ${daysLeft} day(s)${daysLeft < 30 ? ': sign a new root version soon (uptide keys root prepare --expires-in 365)' : ''}.\n`;
          io.out(text);
        }
        if (failure) throw new CliError(`the ${repo} root chain does not verify: ${failure}`, { code: 'root_chain_invalid' });
      }),
    'uptide keys verify-root',
    'uptide keys verify-root --repo director --json',
  );

  registerTargetCeremonies(keys, ctx);
}
