/**
 * A compromised Image repository (capability (c)): the attacker exported the
 * Image repository's online keys (targets, snapshot, timestamp) from the real
 * server's admin API and signs Image metadata with them; the man in the middle
 * serves it. Also the Director's own snapshot and timestamp keys for the
 * snapshot rules, a fast-forward attack, and an Image repository that lost the
 * directed image (A21).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  LocalSigner,
  Metadata,
  MetaFile,
  PublicKey,
  RoleDefinition,
  Targets,
  TargetFile,
  Timestamp,
  expiresIn,
  generatePrivateKey,
  parseRoot,
  parseSnapshot,
  parseTimestamp,
  type JsonObject,
  type Signer,
} from '@uptide/core';
import { HW, ServerWorld } from './harness/server-world.js';
import { expectDefeated } from './harness/defeated.js';
import { currentFiles, exportKeys, serveForged, type RepoKeys } from './harness/forge.js';

let world: ServerWorld;
let dk: RepoKeys;
let ik: RepoKeys;
beforeAll(async () => {
  world = await ServerWorld.start();
  dk = await exportKeys(world.ts, 'director');
  ik = await exportKeys(world.ts, 'image');
  // A supplier's delegated role, so that snapshots list more than targets.json (S-6).
  const supplier = new LocalSigner(await generatePrivateKey('ed25519'), 'uptane');
  const id = supplier.publicKey.keyId('uptane');
  const set = await world.ts.api('PUT', '/api/v1/user_repo/trusted-delegations', {
    keys: { [id]: supplier.publicKey.toJSON() },
    roles: [{ name: 'supplier', keyids: [id], threshold: 1, paths: ['supplier/*'], terminating: false }],
  });
  if (set.status >= 300) throw new Error(`delegations: ${set.status} ${JSON.stringify(set.body)}`);
  const role = await Metadata.create(new Targets({ version: 1, expires: expiresIn(new Date(), 86400 * 30), targets: new Map() }), 'uptane', [supplier]);
  const put = await world.ts.api('PUT', '/api/v1/user_repo/delegations/supplier.json', role.toJSON());
  if (put.status >= 300) throw new Error(`delegated role: ${put.status} ${JSON.stringify(put.body)}`);
});
afterAll(async () => {
  await world?.close();
});

const failed = { report: 'VERIFICATION_FAILED' } as const;

/** Image targets with one more image in them. */
function adding(t: TargetFile): (current: Targets) => Targets {
  return (current) =>
    new Targets({ version: current.version, expires: current.expires, targets: new Map([...current.targets, [t.name, t]]), delegations: current.delegations });
}

describe('A7 rollback (compromised snapshot and timestamp keys)', () => {
  it('A7.3 an Image timestamp listing an older snapshot → ROLLBACK', async () => {
    const v = await world.vehicle();
    const old = world.oldImageFiles.snapshot;
    const oldEntry = MetaFile.describe(parseSnapshot(old, 'uptane').signed.version, old);
    await expectDefeated(v, () => serveForged(v, 'image', ik, { timestampEntry: () => oldEntry }), { code: 'ROLLBACK', ...failed });
  });

  it('A7.4 an Image snapshot listing targets at a lower version than the trusted snapshot → ROLLBACK (S-5)', async () => {
    const v = await world.vehicle();
    const old = world.oldImageFiles.targets;
    const version = (parseSnapshot(world.oldImageFiles.snapshot, 'uptane').signed.meta.get('targets.json') as MetaFile).version;
    await expectDefeated(
      v,
      () =>
        serveForged(v, 'image', ik, {
          snapshotMeta: (meta) => new Map([...meta, ['targets.json', MetaFile.describe(version, old)]]),
        }),
      { code: 'ROLLBACK', ...failed },
    );
  });

  it('A7.4 a Director snapshot listing targets at a lower version than the trusted snapshot → ROLLBACK (S-5)', async () => {
    const v = await world.vehicle();
    const old = v.mitm.recorded(v.deviceId, '/director/targets.json')[0] as Buffer;
    await expectDefeated(v, () => serveForged(v, 'director', dk, { snapshotMeta: (meta) => new Map([...meta, ['targets.json', MetaFile.describe(1, old)]]) }), {
      code: 'ROLLBACK',
    });
  });

  it('A7.5 an Image snapshot that no longer lists a delegated role it listed before → ROLLBACK (S-6)', async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'image', ik, { snapshotMeta: (meta) => new Map([...meta].filter(([k]) => k !== 'supplier.json')) }), {
      code: 'ROLLBACK',
      ...failed,
    });
  });

  it('A7.5 an Image snapshot that no longer lists targets.json → MALFORMED_METADATA (a snapshot must list it)', async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'image', ik, { snapshotMeta: (meta) => new Map([...meta].filter(([k]) => k !== 'targets.json')) }), {
      code: 'MALFORMED_METADATA',
      ...failed,
    });
  });

  it('A7.5 a Director snapshot that no longer lists targets.json → MALFORMED_METADATA', async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'director', dk, { snapshotMeta: () => new Map() }), { code: 'MALFORMED_METADATA' });
  });

  it('A7.6 older genuine Image targets listed at their own version by a compromised snapshot → ROLLBACK (S-5 before G-4)', async () => {
    const v = await world.vehicle();
    const old = world.oldImageFiles.targets;
    const version = (parseSnapshot(world.oldImageFiles.snapshot, 'uptane').signed.meta.get('targets.json') as MetaFile).version;
    await expectDefeated(
      v,
      async () => {
        await serveForged(v, 'image', ik, { snapshotMeta: (meta) => new Map([...meta, ['targets.json', MetaFile.describe(version, old)]]) });
        v.mitm.rule({ path: '/repo/targets.json', device: v.deviceId, body: old });
      },
      { code: 'ROLLBACK', ...failed },
    );
  });
});

describe('A9 mix-and-match (compromised keys)', () => {
  it('A9.1 an Image snapshot of the version the timestamp lists, but other bytes → MIX_AND_MATCH (S-2)', async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'image', ik, { timestampEntry: (e) => new MetaFile(e.version, e.length, { sha256: '00'.repeat(32) }) }), {
      code: 'MIX_AND_MATCH',
      ...failed,
    });
  });

  it('A9.2 Image targets of the version the snapshot lists, but other bytes → MIX_AND_MATCH', async () => {
    const v = await world.vehicle();
    await expectDefeated(
      v,
      () =>
        serveForged(v, 'image', ik, {
          snapshotMeta: (meta) => {
            const e = meta.get('targets.json') as MetaFile;
            return new Map([...meta, ['targets.json', new MetaFile(e.version, e.length, { sha256: '00'.repeat(32) })]]);
          },
        }),
      { code: 'MIX_AND_MATCH', ...failed },
    );
  });

  it('A9.2 Director targets whose signed version differs from the version the snapshot lists (no hashes) → MIX_AND_MATCH (G-2)', async () => {
    const v = await world.vehicle();
    await expectDefeated(
      v,
      () =>
        serveForged(v, 'director', dk, {
          snapshotMeta: (meta) => new Map([...meta, ['targets.json', new MetaFile((meta.get('targets.json') as MetaFile).version + 3)]]),
        }),
      { code: 'MIX_AND_MATCH' },
    );
  });
});

describe('A10 arbitrary software (compromised Image repository)', () => {
  it('A10.1 Image targets with no signature (snapshot and timestamp by the compromised keys) → ARBITRARY_SOFTWARE', async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'image', ik, { signers: { targets: [] } }), { code: 'ARBITRARY_SOFTWARE', ...failed });
  });

  it("A10.5 Image targets signed with the Image repository's snapshot key → ARBITRARY_SOFTWARE", async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'image', ik, { signers: { targets: ik.signers.snapshot } }), { code: 'ARBITRARY_SOFTWARE', ...failed });
  });

  it("A10.5 Image timestamp signed with the Director's timestamp key → ARBITRARY_SOFTWARE (each repository's own root decides)", async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'image', ik, { signers: { timestamp: dk.signers.timestamp } }), { code: 'ARBITRARY_SOFTWARE', ...failed });
  });

  for (const [right, wrong] of [
    ['sha256', 'sha512'],
    ['sha512', 'sha256'],
  ] as const) {
    it(`A10.7 an image whose ${right} matches but whose ${wrong} does not, both repositories agreeing (every listed hash is checked) → ARBITRARY_SOFTWARE`, async () => {
      const v = await world.vehicle();
      // Both repositories lie alike about one hash (beyond the threat model: this is the image check alone).
      const lie = (t: Targets) => {
        const fw = t.targets.get('fw-2.bin') as TargetFile;
        const image = world.image('fw-2.bin').bytes;
        const hashes = { sha256: createHash('sha256').update(image).digest('hex'), sha512: createHash('sha512').update(image).digest('hex') };
        const lying = new TargetFile(fw.name, fw.length, { ...hashes, [wrong]: 'ab'.repeat(wrong === 'sha256' ? 32 : 64) }, fw.custom);
        return new Targets({
          version: t.version,
          expires: t.expires,
          targets: new Map([...t.targets, [fw.name, lying]]),
          delegations: t.delegations,
          custom: t.custom,
        });
      };
      await expectDefeated(
        v,
        async () => {
          await serveForged(v, 'image', ik, { targets: lie });
          await serveForged(v, 'director', dk, { targets: lie });
        },
        { code: 'ARBITRARY_SOFTWARE', ...failed },
      );
    });
  }

  it('A10.10 a malicious image published by the compromised Image repository is never installed: the Director does not direct it', async () => {
    const v = await world.vehicle();
    const malware = randomBytes(2048);
    const evil = new TargetFile(
      'evil.bin',
      malware.length,
      { sha256: 'ef'.repeat(32) },
      { hardwareIds: [HW], releaseCounter: 99, targetFormat: 'BINARY', uri: null },
    );
    await serveForged(v, 'image', ik, { targets: adding(evil) });
    // The update the Director directs goes in; the attacker's image is not even downloaded.
    expect(await v.primary.cycle()).toMatchObject({ ok: true, installed: ['fw-2.bin'] });
    expect(world.mitm.exchanges.some((e) => e.device === v.deviceId && e.path.includes('evil'))).toBe(false);
  });
});

describe('A11 fast-forward', () => {
  it('A11.1 a compromised Image timestamp key signs version 2^31-1: accepted, every honest timestamp then ROLLBACK, until the OEM rotates the online keys on the server (R-4)', async () => {
    const v = await world.vehicle();
    const cur = await currentFiles(v, 'image');
    const sn = parseSnapshot(cur.snapshot, 'uptane').signed;
    const huge = new Timestamp({ version: 2 ** 31 - 1, expires: expiresIn(new Date(), 3600), snapshot: MetaFile.describe(sn.version, cur.snapshot) });
    const forged = (await Metadata.create(huge, 'uptane', ik.signers.timestamp as Signer[])).toBytes();
    v.mitm.rule({ path: '/repo/timestamp.json', device: v.deviceId, body: forged });
    // Signed by the right key: nothing to detect yet, and it is now the trusted baseline.
    expect(await v.primary.cycle()).toMatchObject({ ok: true, installed: ['fw-2.bin'] });
    v.mitm.clearRules();
    // The honest repository's next timestamp is refused (T-3) — every cycle, the attacker need not stay.
    await world.upload(`fw-3-${v.deviceId}.bin`, randomBytes(4096), { releaseCounter: 3 });
    await world.launch(v.deviceId, `fw-3-${v.deviceId}.bin`);
    for (let i = 0; i < 2; i++) {
      const r = await v.primary.cycle();
      expect(r.error?.code).toBe('ROLLBACK');
      expect(r.attack?.role).toBe('timestamp');
      // The failed report ended the assignment; the operator tries again, in vain.
      await world.launch(v.deviceId, `fw-3-${v.deviceId}.bin`);
    }
    expect((await v.serverAttacks()).map((a) => a.code)).toContain('ROLLBACK');

    // Recovery: the server makes new timestamp and snapshot keys, and a root ceremony lists them.
    const root = parseRoot((await world.ts.api('GET', '/api/v1/user_repo/root.json')).raw, 'uptane').signed;
    const keys = new Map(root.keys);
    const roles = new Map(root.roles);
    for (const role of ['timestamp', 'snapshot'] as const) {
      const made = await world.ts.api<{ keyid: string; key: JsonObject }>('POST', `/api/v1/user_repo/keys/${role}`);
      expect(made.status).toBe(201);
      keys.set(made.body.keyid, PublicKey.fromJSON(made.body.key, 'uptane'));
      roles.set(role, new RoleDefinition([made.body.keyid], 1));
    }
    const next = await Metadata.create(
      root.with({ version: root.version + 1, expires: expiresIn(new Date(), 365 * 86400), keys, roles }),
      'uptane',
      ik.signers.root,
    );
    expect((await world.ts.api('POST', '/api/v1/user_repo/root', next.toJSON())).status).toBe(200);
    // The device walks to the new root, drops its stored timestamp and snapshot, and accepts the low versions again.
    expect(await v.primary.cycle()).toMatchObject({ ok: true, installed: [`fw-3-${v.deviceId}.bin`] });
    const stored = parseTimestamp(readFileSync(join(v.storage, 'metadata', 'image', 'timestamp.json')), 'uptane').signed;
    expect(stored.version).toBeLessThan(1000);
    // (Later tests forge with the keys the server holds now.)
    ik = await exportKeys(world.ts, 'image');
  });
});

describe('A21 image not on the Image repository', () => {
  it('A21.2 the directed image removed from the Image repository → TARGET_NOT_FOUND (no install on Director trust alone)', async () => {
    const v = await world.vehicle();
    const fw2 = world.image('fw-2.bin');
    await expectDefeated(v, () => world.ts.api('DELETE', '/api/v1/user_repo/targets/fw-2.bin'), {
      code: 'TARGET_NOT_FOUND',
      ...failed,
      restore: () => world.upload('fw-2.bin', fw2.bytes, { releaseCounter: 2 }),
    });
  });
});
