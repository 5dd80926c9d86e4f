/**
 * Root rotation abuse (A15, procedure R) against the real server's root chains.
 * The attacker holds the server's online root keys where a test says so
 * (exported through the admin API) and serves `N+1.root.json` through the man
 * in the middle; legitimate rotations are pushed through the admin API
 * (`POST /api/v1/admin/repo/root`, `POST /api/v1/user_repo/root`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalSigner, Metadata, RoleDefinition, expiresIn, generatePrivateKey, parseRoot, type Root, type Signer } from '@uptide/core';
import { ServerWorld, type Vehicle } from './harness/server-world.js';
import { expectDefeated } from './harness/defeated.js';
import { exportKeys, type Repo } from './harness/forge.js';

let world: ServerWorld;
beforeAll(async () => {
  world = await ServerWorld.start();
});
afterAll(async () => {
  await world?.close();
});

const ADMIN: Record<Repo, string> = { director: '/api/v1/admin/repo', image: '/api/v1/user_repo' };
const WIRE: Record<Repo, string> = { director: '/director', image: '/repo' };
const newSigner = async () => new LocalSigner(await generatePrivateKey('ed25519'), 'uptane');

/** The server's current root of a repository and the root keys it holds. */
async function current(repo: Repo): Promise<{ root: Root; rootSigners: Signer[] }> {
  const keys = await exportKeys(world.ts, repo);
  return { root: keys.root.signed, rootSigners: keys.signers.root };
}

/** Root N+1 (or `version`) with new root keys if given; signed by `signers`. */
async function nextRoot(
  root: Root,
  signers: readonly Signer[],
  o: { rootKeys?: readonly Signer[]; version?: number; expiresSeconds?: number } = {},
): Promise<Uint8Array> {
  const keys = new Map(root.keys);
  const roles = new Map(root.roles);
  if (o.rootKeys) {
    for (const k of o.rootKeys) keys.set(k.publicKey.keyId('uptane'), k.publicKey);
    roles.set(
      'root',
      new RoleDefinition(
        o.rootKeys.map((k) => k.publicKey.keyId('uptane')),
        1,
      ),
    );
  }
  const next = root.with({ version: o.version ?? root.version + 1, expires: expiresIn(new Date(), o.expiresSeconds ?? 86400 * 365), keys, roles });
  return (await Metadata.create(next, 'uptane', signers)).toBytes();
}

async function push(repo: Repo, bytes: Uint8Array): Promise<void> {
  const res = await world.ts.api('POST', `${ADMIN[repo]}/root`, JSON.parse(Buffer.from(bytes).toString('utf8')));
  if (res.status !== 200) throw new Error(`push root: ${res.status} ${JSON.stringify(res.body)}`);
}

function serveRoot(v: Vehicle, repo: Repo, version: number, bytes: Uint8Array): void {
  v.mitm.rule({ path: `${WIRE[repo]}/${version}.root.json`, device: v.deviceId, status: 200, body: bytes });
}

const report = (repo: Repo) => (repo === 'image' ? { report: 'VERIFICATION_FAILED' as const } : {});

for (const repo of ['director', 'image'] as const) {
  describe(`A15 root rotation abuse (${repo})`, () => {
    it(`A15.1 ${repo} root N+1 signed only by its new root key → ARBITRARY_SOFTWARE`, async () => {
      const v = await world.vehicle();
      const { root } = await current(repo);
      const fresh = await newSigner();
      const bad = await nextRoot(root, [fresh], { rootKeys: [fresh] });
      await expectDefeated(v, () => serveRoot(v, repo, root.version + 1, bad), { code: 'ARBITRARY_SOFTWARE', ...report(repo) });
    });

    it(`A15.2 ${repo} root N+1 signed only by the old root key, not by the new one it lists → ARBITRARY_SOFTWARE`, async () => {
      const v = await world.vehicle();
      const { root, rootSigners } = await current(repo);
      const bad = await nextRoot(root, rootSigners, { rootKeys: [await newSigner()] });
      await expectDefeated(v, () => serveRoot(v, repo, root.version + 1, bad), { code: 'ARBITRARY_SOFTWARE', ...report(repo) });
    });

    it(`A15.3 ${repo} N+1.root that carries version N+2 (properly signed) → MIX_AND_MATCH`, async () => {
      const v = await world.vehicle();
      const { root, rootSigners } = await current(repo);
      const skip = await nextRoot(root, rootSigners, { version: root.version + 2 });
      await expectDefeated(v, () => serveRoot(v, repo, root.version + 1, skip), { code: 'MIX_AND_MATCH', ...report(repo) });
    });

    it(`A15.6 an oversized ${repo} root, complete and announced by Content-Length → ENDLESS_DATA`, async () => {
      const v = await world.vehicle();
      const { root, rootSigners } = await current(repo);
      const good = Buffer.from(await nextRoot(root, rootSigners));
      // Valid JSON, validly signed, padded with whitespace past the root byte limit (X of ).
      const huge = Buffer.concat([good.subarray(0, good.length - 1), Buffer.alloc(2 * 1024 * 1024, 0x20), Buffer.from('}')]);
      await expectDefeated(v, () => serveRoot(v, repo, root.version + 1, huge), { code: 'ENDLESS_DATA', ...report(repo) });
    });
  });
}

describe('A15 root rotation abuse (chains)', () => {
  it('A15.4 a chain whose middle version is bad: the good root before it is trusted (R-2.5), the cycle aborts, the next resumes from it', async () => {
    const v = await world.vehicle();
    const { root, rootSigners } = await current('director');
    // The OEM rotates legitimately to N+1 (same keys, new version).
    const good = await nextRoot(root, rootSigners);
    await push('director', good);
    const n1 = root.version + 1;
    // The attacker adds N+2 signed by a key of its own.
    const fresh = await newSigner();
    const bad = await nextRoot(parseRoot(good, 'uptane').signed, [fresh], { rootKeys: [fresh] });
    const rootsDir = join(v.storage, 'metadata', 'director', 'roots');
    await expectDefeated(v, () => serveRoot(v, 'director', n1 + 1, bad), {
      code: 'ARBITRARY_SOFTWARE',
      rootsMayChange: true,
      check: () => {
        expect(readdirSync(rootsDir)).toContain(`${n1}.root.json`);
        expect(readdirSync(rootsDir)).not.toContain(`${n1 + 1}.root.json`);
        expect(readFileSync(join(rootsDir, '..', 'root.json')).equals(Buffer.from(good))).toBe(true);
      },
      // The OEM's real N+2 arrives; the device walks on from N+1.
      restore: () => nextRoot(parseRoot(good, 'uptane').signed, rootSigners).then((b) => push('director', b)),
    });
    expect(readdirSync(rootsDir)).toContain(`${n1 + 1}.root.json`);
  });

  it('A15.5 the final root expired → FREEZE (R-3), though each step of the chain verified', async () => {
    const v = await world.vehicle();
    const { root, rootSigners } = await current('image');
    // An attacker with the online root key publishes N+1 that expired a minute ago.
    const expired = await nextRoot(root, rootSigners, { expiresSeconds: -60 });
    const n1 = root.version + 1;
    await expectDefeated(v, () => serveRoot(v, 'image', n1, expired), {
      code: 'FREEZE',
      report: 'VERIFICATION_FAILED',
      rootsMayChange: true,
      // R-2 accepted and stored it (each step verifies); R-3 refuses to go on with it.
      check: () => expect(readdirSync(join(v.storage, 'metadata', 'image', 'roots'))).toContain(`${n1}.root.json`),
      // The OEM publishes its own N+1 and N+2 with the same root key: the device, holding the expired N+1, walks to N+2.
      restore: async () => {
        const own = await nextRoot(root, rootSigners);
        await push('image', own);
        await push('image', await nextRoot(parseRoot(own, 'uptane').signed, rootSigners));
      },
    });
  });

  it("A15.7 a Director root N+1 signed by the Image repository's root key → ARBITRARY_SOFTWARE (two independent chains)", async () => {
    const v = await world.vehicle();
    const { root } = await current('director');
    const imageRoot = (await exportKeys(world.ts, 'image')).signers.root;
    const bad = await nextRoot(root, imageRoot, { rootKeys: imageRoot });
    await expectDefeated(v, () => serveRoot(v, 'director', root.version + 1, bad), { code: 'ARBITRARY_SOFTWARE' });
  });
});
