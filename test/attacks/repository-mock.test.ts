/**
 * Attacks that need repositories the real server does not make: role
 * thresholds above one, supplier delegations (ordered, terminating,
 * multi-role, hardware-filtered, nested, cyclic), online-key rotation (the
 * fast-forward recovery of R-4), and target names the server refuses to
 * store. The client's repository mock plays the repositories; the test holds
 * every key, so it plays the attacker who holds some of them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import {
  Metadata,
  MetaFile,
  RoleDefinition,
  Snapshot,
  TargetFile,
  Targets,
  Timestamp,
  expiresIn,
  parseRoot,
  parseSnapshot,
  parseTargets,
  type LocalSigner,
  type Root,
} from '@uptide/core';
import { newSigner, type RepoMock, type RootChain } from '../../packages/client/src/testing/repo-mock.js';
import { MockVehicle } from './harness/mock-world.js';
import { expectDefeated, type Image } from './harness/defeated.js';
import { editJson } from './harness/util.js';

const vehicles: MockVehicle[] = [];
afterEach(async () => {
  for (const v of vehicles.splice(0)) await v.close();
});

async function start(options: Parameters<typeof MockVehicle.start>[0] = {}): Promise<MockVehicle> {
  const v = await MockVehicle.start(options);
  vehicles.push(v);
  return v;
}

const failed = { report: 'VERIFICATION_FAILED' } as const;

/** An image in a delegated role, directed to the vehicle as the honest update. */
async function delegatedNext(v: MockVehicle, role: string, name: string, releaseCounter = 3): Promise<Image> {
  const bytes = randomBytes(2048);
  await v.mock.addImage(name, bytes, { hardwareIds: [v.hardwareId], releaseCounter, delegation: role });
  v.next = { name, bytes };
  await v.mock.assign(v.deviceId, name);
  return v.next;
}

/** An Image timestamp over the current snapshot, as the holder of `signers` makes it. */
async function imageTimestamp(mock: RepoMock, signers: LocalSigner[], version = mock.image.timestamp.version + 1): Promise<Uint8Array> {
  const ts = new Timestamp({
    version,
    expires: expiresIn(new Date(), 3600),
    snapshot: MetaFile.describe(mock.image.snapshot.version, mock.image.snapshot.bytes),
  });
  return (await Metadata.create(ts, 'uptane', signers)).toBytes();
}

/** A snapshot with `meta` changed and a timestamp over it, signed with the Image repository's online keys, served by the mock. */
async function forgeImageSnapshot(mock: RepoMock, change: (meta: Map<string, MetaFile>) => Map<string, MetaFile>, snapshotVersion?: number): Promise<void> {
  const keys = mock.image.root.keys;
  const current = parseSnapshot(mock.image.snapshot.bytes, 'uptane').signed;
  const sn = new Snapshot({ version: snapshotVersion ?? current.version + 1, expires: expiresIn(new Date(), 3600), meta: change(new Map(current.meta)) });
  const sBytes = (await Metadata.create(sn, 'uptane', keys.snapshot)).toBytes();
  const ts = new Timestamp({
    version: mock.image.timestamp.version + 1,
    expires: expiresIn(new Date(), 3600),
    snapshot: MetaFile.describe(sn.version, sBytes),
  });
  mock.tamper({ path: '/repo/snapshot.json', body: sBytes });
  mock.tamper({ path: '/repo/timestamp.json', body: (await Metadata.create(ts, 'uptane', keys.timestamp)).toBytes() });
}

/** Publishes root N+1 of a chain made by `change` from root N, signed by the chain's root keys. */
async function pushRoot(chain: RootChain, change: (root: Root) => Root): Promise<void> {
  const root = parseRoot(chain.latest, 'uptane').signed;
  const next = change(root.with({ version: root.version + 1, expires: expiresIn(new Date(), 86400 * 365) }));
  chain.versions.push((await Metadata.create(next, 'uptane', chain.keys.root)).toBytes());
}

describe('A10 arbitrary software (thresholds and delegated keys)', () => {
  it('A10.2 an Image timestamp signed by 1 of the 2 keys its root requires → ARBITRARY_SOFTWARE', async () => {
    const t1 = await newSigner();
    const t2 = await newSigner();
    const v = await start({ before: (m) => m.rotateRoot('image', { keys: { timestamp: [t1, t2] }, thresholds: { timestamp: 2 } }).then(() => undefined) });
    await expectDefeated(v, async () => v.mock.tamper({ path: '/repo/timestamp.json', body: await imageTimestamp(v.mock, [t1]) }), {
      code: 'ARBITRARY_SOFTWARE',
      ...failed,
    });
  });

  it('A10.3 threshold padding: one key’s signature repeated to reach a threshold of 2 → ARBITRARY_SOFTWARE', async () => {
    const t1 = await newSigner();
    const t2 = await newSigner();
    const v = await start({ before: (m) => m.rotateRoot('image', { keys: { timestamp: [t1, t2] }, thresholds: { timestamp: 2 } }).then(() => undefined) });
    const padded = editJson(await imageTimestamp(v.mock, [t1]), (d) => void (d.signatures = [d.signatures[0]!, d.signatures[0]!]));
    await expectDefeated(v, () => v.mock.tamper({ path: '/repo/timestamp.json', body: padded }), { code: 'ARBITRARY_SOFTWARE', ...failed });
  });

  it('A10.3 threshold padding: one key listed under two key ids, signing as both → ARBITRARY_SOFTWARE (unique keys count)', async () => {
    const t1 = await newSigner();
    const t2 = await newSigner();
    const alias = 'ab'.repeat(32);
    const v = await start({
      before: async (m) => {
        // The root lists t1 twice (its own id and an alias) and t2; honest timestamps carry t1 and t2.
        const chain = m.image.root;
        await pushRoot(chain, (r) => {
          const keys = new Map(r.keys);
          for (const k of [t1, t2]) keys.set(k.publicKey.keyId('uptane'), k.publicKey);
          keys.set(alias, t1.publicKey);
          const roles = new Map(r.roles);
          roles.set('timestamp', new RoleDefinition([t1.publicKey.keyId('uptane'), t2.publicKey.keyId('uptane'), alias], 2));
          return r.with({ keys, roles });
        });
        chain.keys = { ...chain.keys, timestamp: [t1, t2] };
        await m.image.publish();
      },
    });
    // The attacker holds t1 only: the same signature under both ids.
    const doubled = editJson(await imageTimestamp(v.mock, [t1]), (d) => void d.signatures.push({ ...d.signatures[0]!, keyid: alias }));
    await expectDefeated(v, () => v.mock.tamper({ path: '/repo/timestamp.json', body: doubled }), { code: 'ARBITRARY_SOFTWARE', ...failed });
  });

  it('A10.6 a delegated file signed with a key its delegating file does not list (online keys compromised, not the supplier’s) → ARBITRARY_SOFTWARE', async () => {
    const v = await start({ before: (m) => m.addDelegation({ name: 'supplier', paths: ['supplier/*'] }).then(() => undefined) });
    await delegatedNext(v, 'supplier', 'supplier/fw-3.bin');
    const role = v.mock.image.delegated('supplier')!;
    await expectDefeated(
      v,
      async () => {
        role.signWith = [await newSigner()];
        await v.mock.image.publish();
      },
      {
        code: 'ARBITRARY_SOFTWARE',
        ...failed,
        restore: async () => {
          role.signWith = undefined;
          await v.mock.image.publish();
        },
      },
    );
  });

  it('A10.6 a delegated file signed by 1 of the 2 supplier keys the delegation requires → ARBITRARY_SOFTWARE', async () => {
    const s1 = await newSigner();
    const s2 = await newSigner();
    const v = await start({
      before: (m) => m.addDelegation({ name: 'supplier', paths: ['supplier/*'], threshold: 2, signers: [s1, s2] }).then(() => undefined),
    });
    await delegatedNext(v, 'supplier', 'supplier/fw-3.bin');
    const role = v.mock.image.delegated('supplier')!;
    await expectDefeated(
      v,
      async () => {
        role.signWith = [s1];
        await v.mock.image.publish();
      },
      {
        code: 'ARBITRARY_SOFTWARE',
        ...failed,
        restore: async () => {
          role.signWith = undefined;
          await v.mock.image.publish();
        },
      },
    );
  });
});

describe('A7, A8, A9 on delegated targets', () => {
  it('A7.6 a delegated targets file rolled back to an older version (snapshot key compromised) → ROLLBACK (S-5)', async () => {
    const v = await start({ before: (m) => m.addDelegation({ name: 'supplier', paths: ['supplier/*'] }).then(() => undefined) });
    const role = v.mock.image.delegated('supplier')!;
    const old = Buffer.from(role.bytes);
    const oldVersion = role.version;
    const fw3 = await delegatedNext(v, 'supplier', 'supplier/fw-3.bin');
    // Installed through the supplier's newer file, which is now the trusted baseline.
    expect((await v.primary.cycle()).installed).toEqual([fw3.name]);
    v.installed = fw3;
    await delegatedNext(v, 'supplier', 'supplier/fw-4.bin', 4);
    await expectDefeated(
      v,
      async () => {
        await forgeImageSnapshot(v.mock, (meta) => new Map([...meta, ['supplier.json', MetaFile.describe(oldVersion, old)]]));
        v.mock.tamper({ path: '/repo/delegations/supplier.json', body: old });
      },
      { code: 'ROLLBACK', ...failed },
    );
  });

  it('A8.11 an endless delegated targets file → ENDLESS_DATA (the length the snapshot gives)', async () => {
    const v = await start({ before: (m) => m.addDelegation({ name: 'supplier', paths: ['supplier/*'] }).then(() => undefined) });
    await delegatedNext(v, 'supplier', 'supplier/fw-3.bin');
    await expectDefeated(v, () => v.mock.tamper({ path: '/repo/delegations/supplier.json', endless: true }), { code: 'ENDLESS_DATA', ...failed });
  });

  it('A9.4 a compromised supplier key signs a new version of its file that the snapshot does not list → MIX_AND_MATCH', async () => {
    const v = await start({ before: (m) => m.addDelegation({ name: 'supplier', paths: ['supplier/*'] }).then(() => undefined) });
    await delegatedNext(v, 'supplier', 'supplier/fw-3.bin');
    const role = v.mock.image.delegated('supplier')!;
    // The supplier's next version, signed with its key, never published: shorter than the listed one
    // (a longer one is refused by the length the snapshot gives before its hash is even computed).
    const current = parseTargets(role.bytes, 'uptane').signed;
    const evil = new TargetFile('supplier/e', 1, { sha256: 'ee'.repeat(32) }, { hardwareIds: [v.hardwareId] });
    const newer = new Targets({ version: current.version + 1, expires: current.expires, targets: new Map([[evil.name, evil]]) });
    const signed = (await Metadata.create(newer, 'uptane', role.signers)).toBytes();
    expect(signed.length).toBeLessThan(role.bytes.length);
    await expectDefeated(v, () => v.mock.tamper({ path: '/repo/delegations/supplier.json', body: signed }), { code: 'MIX_AND_MATCH', ...failed });
  });
});

describe('A11 fast-forward and its recovery', () => {
  it('A11.2 a timestamp fast-forwarded by a compromised key: stuck (ROLLBACK) until the root rotates the timestamp and snapshot keys, then recovered (R-4)', async () => {
    const v = await start();
    v.mock.tamper({ path: '/repo/timestamp.json', body: await imageTimestamp(v.mock, v.mock.image.root.keys.timestamp, 2 ** 31 - 1) });
    expect(await v.primary.cycle()).toMatchObject({ ok: true, installed: ['fw-2.bin'] });
    v.mock.clearTampers();
    const fw3 = randomBytes(2048);
    await v.mock.addImage('fw-3.bin', fw3, { hardwareIds: [v.hardwareId], releaseCounter: 3 });
    await v.mock.assign(v.deviceId, 'fw-3.bin');
    // Without a rotation the honest, lower version is refused.
    expect((await v.primary.cycle()).error?.code).toBe('ROLLBACK');
    // The OEM rotates the online keys in a new root; the device drops its stored timestamp and snapshot.
    await v.mock.rotateRoot('image', { keys: { timestamp: [await newSigner()], snapshot: [await newSigner()] } });
    await v.mock.assign(v.deviceId, 'fw-3.bin');
    expect(await v.primary.cycle()).toMatchObject({ ok: true, installed: ['fw-3.bin'] });
    const stored = JSON.parse(readFileSync(join(v.storage, 'metadata', 'image', 'timestamp.json'), 'utf8')) as { signed: { version: number } };
    expect(stored.signed.version).toBeLessThan(1000);
  });

  it('A11.3 a snapshot fast-forwarded by compromised snapshot and timestamp keys: stuck until they rotate, then recovered', async () => {
    const v = await start();
    await forgeImageSnapshot(v.mock, (meta) => meta, 2 ** 31 - 1);
    expect(await v.primary.cycle()).toMatchObject({ ok: true, installed: ['fw-2.bin'] });
    v.mock.clearTampers();
    await v.mock.addImage('fw-3.bin', randomBytes(2048), { hardwareIds: [v.hardwareId], releaseCounter: 3 });
    await v.mock.assign(v.deviceId, 'fw-3.bin');
    expect((await v.primary.cycle()).error?.code).toBe('ROLLBACK');
    await v.mock.rotateRoot('image', { keys: { timestamp: [await newSigner()], snapshot: [await newSigner()] } });
    await v.mock.assign(v.deviceId, 'fw-3.bin');
    expect(await v.primary.cycle()).toMatchObject({ ok: true, installed: ['fw-3.bin'] });
  });
});

describe('A14 delegation abuse', () => {
  it('A14.1 a supplier signs an image outside its delegated paths → TARGET_NOT_FOUND', async () => {
    const v = await start({ before: (m) => m.addDelegation({ name: 'supplier', paths: ['supplier/*'] }).then(() => undefined) });
    await expectDefeated(
      v,
      async () => {
        await v.mock.addImage('oem/brakes.bin', randomBytes(1000), { hardwareIds: [v.hardwareId], releaseCounter: 7, delegation: 'supplier' });
        await v.mock.assign(v.deviceId, 'oem/brakes.bin');
      },
      { code: 'TARGET_NOT_FOUND', ...failed },
    );
  });

  it('A14.2 a lower-priority role signs another version of an image a higher-priority role covers → the earlier delegation wins (TARGET_MISMATCH)', async () => {
    const v = await start({
      before: async (m) => {
        await m.addDelegation({ name: 'first', paths: ['shared/*'] });
        await m.addDelegation({ name: 'second', paths: ['shared/*'] });
      },
    });
    const evil = await v.mock.addImage('shared/fw.bin', randomBytes(2048), { hardwareIds: [v.hardwareId], releaseCounter: 5, delegation: 'second' });
    await delegatedNext(v, 'first', 'shared/fw.bin');
    await expectDefeated(v, () => v.mock.assign(v.deviceId, 'shared/fw.bin', { override: { length: evil.length, hashes: evil.hashes } }), {
      code: 'TARGET_MISMATCH',
      ...failed,
    });
  });

  it('A14.3 a terminating delegation that lacks the image ends the search: a later role listing it is not consulted → TARGET_NOT_FOUND', async () => {
    const v = await start({
      before: async (m) => {
        await m.addDelegation({ name: 'owner', paths: ['t/*'], terminating: true });
        await m.addDelegation({ name: 'intruder', paths: ['t/*'] });
      },
    });
    await delegatedNext(v, 'owner', 't/fw.bin');
    await expectDefeated(
      v,
      async () => {
        await v.mock.addImage('t/evil.bin', randomBytes(1000), { hardwareIds: [v.hardwareId], releaseCounter: 9, delegation: 'intruder' });
        await v.mock.assign(v.deviceId, 't/evil.bin');
      },
      { code: 'TARGET_NOT_FOUND', ...failed },
    );
  });

  it('A14.4 a multi-role delegation needing 2 roles in agreement, one compromised role signing alone → TARGET_NOT_FOUND', async () => {
    const v = await start({
      before: (m) =>
        m.addDelegation({ name: 'group', paths: ['multi/*'], roles: [{ name: 'r1' }, { name: 'r2' }], minRolesInAgreement: 2 }).then(() => undefined),
    });
    const bytes = randomBytes(2048);
    for (const r of ['r1', 'r2']) await v.mock.addImage('multi/fw.bin', bytes, { hardwareIds: [v.hardwareId], releaseCounter: 3, delegation: r });
    v.next = { name: 'multi/fw.bin', bytes };
    await v.mock.assign(v.deviceId, 'multi/fw.bin');
    await expectDefeated(
      v,
      async () => {
        await v.mock.addImage('multi/evil.bin', randomBytes(1000), { hardwareIds: [v.hardwareId], releaseCounter: 9, delegation: 'r1' });
        await v.mock.assign(v.deviceId, 'multi/evil.bin');
      },
      { code: 'TARGET_NOT_FOUND', ...failed },
    );
  });

  it('A14.4 a multi-role delegation with two agreeing sets in conflict → the set with the earliest-listed role wins (TARGET_MISMATCH)', async () => {
    const v = await start({
      before: (m) =>
        m
          .addDelegation({ name: 'group', paths: ['multi/*'], roles: [{ name: 'r1' }, { name: 'r2' }, { name: 'r3' }, { name: 'r4' }], minRolesInAgreement: 2 })
          .then(() => undefined),
    });
    const evil = randomBytes(2048);
    for (const r of ['r3', 'r4']) await v.mock.addImage('multi/fw.bin', evil, { hardwareIds: [v.hardwareId], releaseCounter: 3, delegation: r });
    const evilEntry = v.mock.image.delegated('r3')!.targets.get('multi/fw.bin')!;
    const good = randomBytes(2048);
    for (const r of ['r1', 'r2']) await v.mock.addImage('multi/fw.bin', good, { hardwareIds: [v.hardwareId], releaseCounter: 3, delegation: r });
    v.next = { name: 'multi/fw.bin', bytes: good };
    await expectDefeated(v, () => v.mock.assign(v.deviceId, 'multi/fw.bin', { override: { length: evilEntry.length, hashes: evilEntry.hashes } }), {
      code: 'TARGET_MISMATCH',
      ...failed,
    });
  });

  it('A14.5 a delegation whose hardware ids exclude this ECU is skipped → TARGET_NOT_FOUND', async () => {
    const v = await start({ before: (m) => m.addDelegation({ name: 'other-ecu', paths: ['hw/*'], hardwareIds: ['other-board'] }).then(() => undefined) });
    await expectDefeated(
      v,
      async () => {
        await v.mock.addImage('hw/fw.bin', randomBytes(1000), { hardwareIds: [v.hardwareId], releaseCounter: 9, delegation: 'other-ecu' });
        await v.mock.assign(v.deviceId, 'hw/fw.bin');
      },
      { code: 'TARGET_NOT_FOUND', ...failed },
    );
  });

  it('A14.6 a delegation cycle (a → b → a) is bounded: no hang → TARGET_NOT_FOUND', async () => {
    const v = await start({
      before: async (m) => {
        await m.addDelegation({ name: 'a', paths: ['loop/*'] });
        await m.addDelegation({ name: 'b', paths: ['loop/*'], delegator: 'a' });
        await m.addDelegation({ name: 'a', paths: ['loop/*'], delegator: 'b' });
      },
    });
    await expectDefeated(v, () => v.mock.assign(v.deviceId, 'loop/fw.bin', { override: { length: 10, hashes: { sha256: 'ab'.repeat(32) } } }), {
      code: 'TARGET_NOT_FOUND',
      ...failed,
    });
  });

  it('A14.6 a chain of 40 nested delegations stops at the limit → DELEGATION_LIMIT', async () => {
    const v = await start({
      before: async (m) => {
        for (let i = 0; i < 40; i++) await m.addDelegation({ name: `d${i}`, paths: ['deep/*'], ...(i > 0 ? { delegator: `d${i - 1}` } : {}) });
      },
    });
    await expectDefeated(
      v,
      async () => {
        await v.mock.addImage('deep/fw.bin', randomBytes(1000), { hardwareIds: [v.hardwareId], releaseCounter: 9, delegation: 'd39' });
        await v.mock.assign(v.deviceId, 'deep/fw.bin');
      },
      { code: 'DELEGATION_LIMIT', ...failed },
    );
  });

  it('A14.7 a delegated role the snapshot does not list → MIX_AND_MATCH (missing role)', async () => {
    const v = await start();
    await expectDefeated(
      v,
      async () => {
        await v.mock.addDelegation({ name: 'late', paths: ['late/*'] });
        await v.mock.addImage('late/fw.bin', randomBytes(1000), { hardwareIds: [v.hardwareId], releaseCounter: 9, delegation: 'late' });
        await v.mock.assign(v.deviceId, 'late/fw.bin');
        await forgeImageSnapshot(v.mock, (meta) => new Map([...meta].filter(([k]) => k !== 'late.json')));
      },
      { code: 'MIX_AND_MATCH', ...failed },
    );
  });

  it('A14.7 a delegated file of another version than the snapshot lists → MIX_AND_MATCH', async () => {
    const v = await start({ before: (m) => m.addDelegation({ name: 'supplier', paths: ['supplier/*'] }).then(() => undefined) });
    const old = Buffer.from(v.mock.image.delegated('supplier')!.bytes);
    await delegatedNext(v, 'supplier', 'supplier/fw-3.bin');
    await expectDefeated(v, () => v.mock.tamper({ path: '/repo/delegations/supplier.json', body: old }), { code: 'MIX_AND_MATCH', ...failed });
  });
});

describe('A17 path traversal and unsafe target names', () => {
  for (const [label, name] of [
    ['a parent-directory name', '../../../escape.bin'],
    ['a name with a parent segment inside', 'fw/../../escape.bin'],
    ['an absolute path', '/etc/uptide-escape.bin'],
    ['a NUL byte', 'fw\u0000.bin'],
    ['a control character', 'fw\n.bin'],
  ] as const) {
    it(`A17 ${label} (both repositories listing it) → MALFORMED_METADATA, no request outside the image store, no file outside the state`, async () => {
      const v = await start();
      await expectDefeated(
        v,
        async () => {
          await v.mock.addImage(name, randomBytes(500), { hardwareIds: [v.hardwareId], releaseCounter: 5 });
          await v.mock.assign(v.deviceId, name);
        },
        { code: 'MALFORMED_METADATA' },
      );
      expect(v.mock.requestsTo(/escape|^\/etc\//).length).toBe(0);
      expect(v.mock.requests.every((r) => !r.path.includes('..'))).toBe(true);
      // Nothing where the name would lead from the download directory or the installer's.
      for (const base of [join(v.storage, 'downloads'), dirname(v.installedPath)])
        expect(existsSync(resolve(base, [...name].filter((c) => c >= ' ').join('')))).toBe(false);
      expect(existsSync('/etc/uptide-escape.bin')).toBe(false);
    });
  }

  it('A17 a look-alike name (a different code point) is another image → TARGET_NOT_FOUND', async () => {
    const v = await start();
    // U+2010 HYPHEN looks like "-": the Director names an image the Image repository does not have.
    await expectDefeated(
      v,
      () => v.mock.assign(v.deviceId, 'fw\u20102.bin', { override: { length: v.next.bytes.length, hashes: v.mock.findImage('fw-2.bin')!.hashes } }),
      {
        code: 'TARGET_NOT_FOUND',
        ...failed,
      },
    );
  });

  it('A17 the same name in NFD at the Director and NFC at the Image repository is one image (NFC before comparing)', async () => {
    const v = await start();
    const bytes = randomBytes(1000);
    await v.mock.addImage('caf\u00e9.bin', bytes, { hardwareIds: [v.hardwareId], releaseCounter: 4 });
    const t = v.mock.findImage('caf\u00e9.bin')!;
    await v.mock.setDirectorTargets(
      v.deviceId,
      [{ name: 'cafe\u0301.bin', ecus: { [v.serial]: v.hardwareId }, length: t.length, hashes: t.hashes, custom: { releaseCounter: 4 } }],
      { correlationId: 'urn:here-ota:mtu:nfc' },
    );
    v.mock.image.blobs.set('cafe\u0301.bin', bytes);
    expect(await v.primary.cycle()).toMatchObject({ ok: true });
  });
});
