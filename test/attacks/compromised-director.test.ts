/**
 * A compromised Director (capability (c)): the attacker exported the
 * Director's online keys from the real server's admin API and signs whatever
 * Director metadata it likes; the man in the middle serves it to one vehicle.
 * The Image repository stays honest, and the Primary's cross-check against it
 * (FV-10), its own vehicle's ECUs (G-7, G-8) and its vehicle id are what stop
 * the attacker. Also: another vehicle's genuine Director metadata replayed (A4.5).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Delegations, LocalSigner, Metadata, Targets, TargetFile, Timestamp, expiresIn, generatePrivateKey, parseTimestamp } from '@uptide/core';
import { HW, ServerWorld, type Vehicle } from './harness/server-world.js';
import { expectDefeated } from './harness/defeated.js';
import { currentFiles, directing, directorEntry, exportKeys, imageEntry, serveForged, type RepoKeys } from './harness/forge.js';

let world: ServerWorld;
let dk: RepoKeys;
let ik: RepoKeys;
beforeAll(async () => {
  world = await ServerWorld.start();
  await world.upload('fw-z.bin', randomBytes(4096), { hardwareIds: ['board-z'], releaseCounter: 9 });
  await world.upload('fw-1b.bin', randomBytes(4096), { releaseCounter: 1 });
  dk = await exportKeys(world.ts, 'director');
  ik = await exportKeys(world.ts, 'image');
});
afterAll(async () => {
  await world?.close();
});

const newSigner = async () => new LocalSigner(await generatePrivateKey('ed25519'), 'uptane');

/** Director targets directing one image to this vehicle's Primary, as the compromised Director signs them. */
async function directs(v: Vehicle, name: string, extra: Record<string, string | number> = {}, ecus?: Record<string, string>) {
  return directorEntry(await imageEntry(world.ts, name), ecus ?? { [v.serial]: HW }, extra);
}

describe('A4 freeze (compromised Director)', () => {
  it('A4.2 Director targets signed already expired → FREEZE (G-5)', async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'director', dk, { expiresIn: { targets: -60 } }), { code: 'FREEZE' });
  });

  it('A4.2 Director snapshot signed already expired → FREEZE (S-7)', async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'director', dk, { expiresIn: { snapshot: -60 } }), { code: 'FREEZE' });
  });

  it('A4.1 Director timestamp signed already expired → FREEZE (T-4)', async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'director', dk, { expiresIn: { timestamp: -60 } }), { code: 'FREEZE' });
  });

  it("A4.5 another vehicle's genuine empty Director metadata replayed → DIRECTOR_REPLAY", async () => {
    const other = await world.vehicle({ noUpdate: true });
    const v = await world.vehicle();
    // The other vehicle's current metadata: nothing to install, signed by the same Director keys, newer versions.
    const files = await currentFiles(other, 'director');
    expect(parseTimestamp(files.timestamp, 'uptane').signed.version).toBeGreaterThanOrEqual(
      parseTimestamp(v.lastServed('/director/timestamp.json'), 'uptane').signed.version,
    );
    await expectDefeated(
      v,
      () => {
        v.mitm.rule({ path: '/director/timestamp.json', device: v.deviceId, body: files.timestamp });
        v.mitm.rule({ path: '/director/snapshot.json', device: v.deviceId, body: files.snapshot });
        v.mitm.rule({ path: '/director/targets.json', device: v.deviceId, body: files.targets });
      },
      { code: 'DIRECTOR_REPLAY' },
    );
  });

  it('A4.5 empty Director targets that name no vehicle → DIRECTOR_REPLAY', async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([], {}) }), { code: 'DIRECTOR_REPLAY' });
  });

  it('A4.5 Director targets made for another vehicle id → DIRECTOR_REPLAY', async () => {
    const v = await world.vehicle();
    const entry = await directs(v, 'fw-2.bin');
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([entry], { vehicleId: 'another-car' }) }), { code: 'DIRECTOR_REPLAY' });
  });
});

describe('A7 rollback of the image (compromised Director)', () => {
  it('A7.7 an older image directed with a release counter the Image repository does not give it → TARGET_MISMATCH', async () => {
    const v = await world.vehicle();
    const entry = await directs(v, 'fw-0.bin', { releaseCounter: 5 });
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([entry]) }), { code: 'TARGET_MISMATCH', report: 'VERIFICATION_FAILED' });
  });

  it('A7.8 an older image directed with its true, lower release counter → ROLLBACK (10.2.3)', async () => {
    const v = await world.vehicle();
    const entry = await directs(v, 'fw-0.bin');
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([entry]) }), { code: 'ROLLBACK', report: 'VERIFICATION_FAILED' });
  });

  it('A7.8 an older image without any release counter in the Director metadata → ROLLBACK (the Image repository gives it)', async () => {
    const v = await world.vehicle();
    const entry = await directs(v, 'fw-0.bin');
    const bare = new TargetFile(entry.name, entry.length, entry.hashes, { ecuIdentifiers: { [v.serial]: { hardwareId: HW } }, uri: null });
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([bare]) }), { code: 'ROLLBACK', report: 'VERIFICATION_FAILED' });
  });

  it('A7.8 the honest Director refuses to assign an image with a lower release counter', async () => {
    const v = await world.vehicle({ noUpdate: true });
    const res = await world.ts.api<{ affected: string[]; notAffected: Array<{ device: string; reason: string }> }>('POST', '/api/v1/updates', {
      image: 'fw-0.bin',
      devices: [v.deviceId],
    });
    expect(res.body.notAffected).toEqual([{ device: v.deviceId, reason: 'release_counter_rollback' }]);
  });

  it('A7.9 an equal release counter with a different image is accepted (≤ is allowed)', async () => {
    const v = await world.vehicle();
    const entry = await directs(v, 'fw-1b.bin');
    await serveForged(v, 'director', dk, { targets: directing([entry]) });
    expect(await v.primary.cycle()).toMatchObject({ ok: true, installed: ['fw-1b.bin'] });
  });
});

describe('A9 mix-and-match (compromised Director)', () => {
  it('A9.3 Director and Image repository disagree on the hashes → TARGET_MISMATCH', async () => {
    const v = await world.vehicle();
    const good = await directs(v, 'fw-2.bin');
    const bad = new TargetFile(good.name, good.length, { sha256: 'ab'.repeat(32) }, good.custom);
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([bad]) }), { code: 'TARGET_MISMATCH', report: 'VERIFICATION_FAILED' });
  });

  it('A9.3 Director and Image repository disagree on the length → TARGET_MISMATCH', async () => {
    const v = await world.vehicle();
    const good = await directs(v, 'fw-2.bin');
    const bad = new TargetFile(good.name, good.length + 1, good.hashes, good.custom);
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([bad]) }), { code: 'TARGET_MISMATCH', report: 'VERIFICATION_FAILED' });
  });

  it('A9.3 Director and Image repository disagree on the release counter → TARGET_MISMATCH', async () => {
    const v = await world.vehicle();
    const entry = await directs(v, 'fw-2.bin', { releaseCounter: 3 });
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([entry]) }), { code: 'TARGET_MISMATCH', report: 'VERIFICATION_FAILED' });
  });

  it('A9.5 the Director never assigns a new bundle over one in flight (a possibly half-installed bundle)', async () => {
    const v = await world.vehicle();
    await currentFiles(v, 'director'); // the vehicle fetched its directive for fw-2.bin: in flight
    const res = await world.ts.api<{ notAffected: Array<{ device: string; reason: string }> }>('POST', '/api/v1/updates', {
      image: 'fw-1b.bin',
      devices: [v.deviceId],
    });
    expect(res.body.notAffected).toEqual([{ device: v.deviceId, reason: 'update_in_progress' }]);
  });
});

describe('A10 arbitrary software (compromised Director)', () => {
  it('A10.1 Director targets with no signature (timestamp and snapshot by the compromised keys) → ARBITRARY_SOFTWARE', async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'director', dk, { signers: { targets: [] } }), { code: 'ARBITRARY_SOFTWARE' });
  });

  it('A10.1 Director targets signed by a key the Director root does not list → ARBITRARY_SOFTWARE', async () => {
    const v = await world.vehicle();
    const stranger = await newSigner();
    await expectDefeated(v, () => serveForged(v, 'director', dk, { signers: { targets: [stranger] } }), { code: 'ARBITRARY_SOFTWARE' });
  });

  it("A10.5 Director targets signed with the Director's timestamp key (a wrong role's key) → ARBITRARY_SOFTWARE", async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'director', dk, { signers: { targets: dk.signers.timestamp } }), { code: 'ARBITRARY_SOFTWARE' });
  });

  it("A10.5 Director snapshot signed with the Director's targets key → ARBITRARY_SOFTWARE", async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'director', dk, { signers: { snapshot: dk.signers.targets } }), { code: 'ARBITRARY_SOFTWARE' });
  });

  it('A10.4 a Director timestamp signed by the right key over a non-canonical serialization → ARBITRARY_SOFTWARE', async () => {
    const v = await world.vehicle();
    const current = await currentFiles(v, 'director');
    const ts = parseTimestamp(current.timestamp, 'uptane').signed;
    const next = new Timestamp({ version: ts.version + 1, expires: expiresIn(new Date(), 3600), snapshot: ts.snapshot });
    const json = next.toJSON('uptane');
    const signer = dk.signers.timestamp[0] as LocalSigner;
    // Pretty-printed bytes are not what the Standard signs: the canonical form is.
    const value = await signer.sign(Buffer.from(JSON.stringify(json, null, 2)));
    const doc = new Metadata(next, [{ keyid: signer.publicKey.keyId('uptane'), value, method: signer.publicKey.defaultMethod('uptane') }], 'uptane');
    await expectDefeated(v, () => v.mitm.rule({ path: '/director/timestamp.json', device: v.deviceId, body: doc.toBytes() }), { code: 'ARBITRARY_SOFTWARE' });
  });

  it('A10.9 a malicious image the Image repository does not list → TARGET_NOT_FOUND (no Director-only trust)', async () => {
    const v = await world.vehicle();
    const malware = randomBytes(4096);
    const evil = directorEntry(new TargetFile('malware.bin', malware.length, { sha256: 'cd'.repeat(32) }, {}), { [v.serial]: HW });
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([evil]) }), { code: 'TARGET_NOT_FOUND', report: 'VERIFICATION_FAILED' });
    expect(world.mitm.exchanges.some((e) => e.device === v.deviceId && e.path.includes('malware'))).toBe(false);
  });
});

describe('A12 wrong hardware (compromised Director)', () => {
  it('A12.1 Director targets that give this ECU another hardware id → BAD_HARDWARE_ID', async () => {
    const v = await world.vehicle();
    const entry = await directs(v, 'fw-2.bin', {}, { [v.serial]: 'board-z' });
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([entry]) }), { code: 'BAD_HARDWARE_ID' });
  });

  it('A12.2 an image the Image repository lists only for other hardware → BAD_HARDWARE_ID', async () => {
    const v = await world.vehicle();
    const entry = await directs(v, 'fw-z.bin');
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([entry]) }), { code: 'BAD_HARDWARE_ID', report: 'VERIFICATION_FAILED' });
  });
});

describe('A13 ECU retargeting (compromised Director)', () => {
  it('A13.1 the same ECU named by two Director targets → BAD_ECU_ID', async () => {
    const v = await world.vehicle();
    const a = await directs(v, 'fw-2.bin');
    const b = await directs(v, 'fw-1b.bin');
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([a, b]) }), { code: 'BAD_ECU_ID' });
  });

  it('A13.2 Director targets for an ECU that is not in this vehicle → BAD_ECU_ID', async () => {
    const v = await world.vehicle();
    const entry = await directs(v, 'fw-2.bin', {}, { 'ecu-of-another-car': HW });
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([entry]) }), { code: 'BAD_ECU_ID' });
  });

  it('A13.2 one target for this ECU and an ECU of another vehicle → BAD_ECU_ID', async () => {
    const v = await world.vehicle();
    const entry = await directs(v, 'fw-2.bin', {}, { [v.serial]: HW, 'ecu-of-another-car': HW });
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: directing([entry]) }), { code: 'BAD_ECU_ID' });
  });
});

describe('A20 role confusion (compromised Director)', () => {
  it("A20.6 Director targets signed with the Image repository's targets key → ARBITRARY_SOFTWARE", async () => {
    const v = await world.vehicle();
    await expectDefeated(v, () => serveForged(v, 'director', dk, { signers: { targets: ik.signers.targets } }), { code: 'ARBITRARY_SOFTWARE' });
  });

  it('A20.7 Director targets that delegate (a Director-only rule, G-6) → ARBITRARY_SOFTWARE', async () => {
    const v = await world.vehicle();
    const delegating = (t: Targets) =>
      new Targets({ version: t.version, expires: t.expires, targets: t.targets, custom: t.custom, delegations: new Delegations(new Map(), []) });
    await expectDefeated(v, () => serveForged(v, 'director', dk, { targets: delegating }), { code: 'ARBITRARY_SOFTWARE' });
  });
});
