/**
 * Freeze and time attacks (A4, A22) against the real server, with the clock
 * the server and the device share moved by the test: metadata replayed after
 * it expired, a rotation hidden until the trusted root expired, a device clock
 * pushed back behind the last verified time, and one pushed far ahead.
 *
 * The device takes no time from the network (no time server, so there is no
 * time response to forge or replay: A22's signed-time variants do not apply);
 * its time is its own clock, never earlier than the last time it verified.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Metadata, expiresIn, parseTimestamp } from '@uptide/core';
import { ServerWorld } from './harness/server-world.js';
import { expectDefeated } from './harness/defeated.js';
import { exportKeys } from './harness/forge.js';

const DAY = 86_400_000;

let world: ServerWorld;
beforeAll(async () => {
  world = await ServerWorld.start();
});
afterEach(() => world.clock.reset());
afterAll(async () => {
  await world?.close();
});

describe('A4 freeze (time)', () => {
  it('A4.1 the trusted Director timestamp replayed after it expired (same version) → FREEZE (T-4)', async () => {
    const v = await world.vehicle();
    const trusted = v.lastServed('/director/timestamp.json');
    // Eight days on: the Director timestamp (seven-day lifetime) the device holds has expired; the server has re-signed.
    world.clock.offsetMs = 8 * DAY;
    await expectDefeated(v, () => v.mitm.rule({ path: '/director/timestamp.json', device: v.deviceId, body: trusted }), { code: 'FREEZE' });
  });

  it('A4.4 a device clock pushed back cannot revive expired metadata: the last verified time is the floor → FREEZE', async () => {
    const v = await world.vehicle({ noUpdate: true });
    const trustedImageTimestamp = v.lastServed('/repo/timestamp.json');
    const expires = parseTimestamp(trustedImageTimestamp, 'uptane').signed.expiresAt;
    // A day after the stored Image timestamp expired, a cycle with nothing new verifies the Director
    // only: the floor moves past that expiry.
    world.clock.offsetMs = expires + DAY - Date.now();
    expect((await v.primary.cycle()).ok).toBe(true);
    const floor = v.primary.store.state.latestVerifiedTime;
    expect(floor).toBeGreaterThan(expires);
    await world.launch(v.deviceId, 'fw-2.bin');
    await expectDefeated(
      v,
      () => {
        // The attacker freezes the Image repository at the stored timestamp and sets the device's clock back before its expiry.
        world.clock.deviceOffsetMs = -1.5 * DAY;
        v.mitm.rule({ path: '/repo/timestamp.json', device: v.deviceId, body: trustedImageTimestamp });
      },
      {
        code: 'FREEZE',
        report: 'VERIFICATION_FAILED',
        check: () => expect(v.primary.store.state.latestVerifiedTime).toBe(floor),
        restore: async () => void (world.clock.deviceOffsetMs = 0),
      },
    );
  });
});

describe('A22 time-source attacks', () => {
  it('A22.3 a device clock ten years ahead: everything looks expired → FREEZE, the last good time is not advanced, and the right time recovers', async () => {
    const v = await world.vehicle();
    const floor = v.primary.store.state.latestVerifiedTime;
    await expectDefeated(v, () => void (world.clock.deviceOffsetMs = 3650 * DAY), {
      code: 'FREEZE',
      // Had the failed cycle recorded its time, the device could never verify again.
      check: () => expect(v.primary.store.state.latestVerifiedTime).toBe(floor),
      restore: async () => void (world.clock.deviceOffsetMs = 0),
    });
  });

  it('A22.2 a device clock set earlier than the last verified time is not used: reports and checks use the floor', async () => {
    const v = await world.vehicle();
    world.clock.offsetMs = 2 * DAY;
    expect((await v.primary.cycle()).installed).toEqual(['fw-2.bin']);
    const floor = v.primary.store.state.latestVerifiedTime;
    // The device's clock goes back a week; the next report still carries at least the floor.
    world.clock.deviceOffsetMs = -7 * DAY;
    expect((await v.primary.cycle()).ok).toBe(true);
    expect(v.primary.store.state.latestVerifiedTime).toBeGreaterThanOrEqual(floor);
    const report = v.manifests().at(-1)?.reports.get(v.serial);
    // (Reports carry whole seconds.)
    expect(Date.parse(report?.timeserverTime ?? '')).toBeGreaterThanOrEqual(Math.floor(floor / 1000) * 1000);
  });
});

// Last: the server signs a year ahead here, and what it signed then stays valid for the tests after it.
describe('A4 freeze (a hidden rotation)', () => {
  it('A4.3 a root rotation hidden until the trusted root expired: the expired root is the newest the device sees → FREEZE (R-3)', async () => {
    const v = await world.vehicle();
    // The OEM renewed both roots (a new version each, with a long life) …
    const renew = async (repo: 'director' | 'image', path: string) => {
      const keys = await exportKeys(world.ts, repo);
      const root = keys.root.signed;
      const next = root.with({ version: root.version + 1, expires: expiresIn(new Date(), 730 * 86400) });
      const pushed = await world.ts.api('POST', path, (await Metadata.create(next, 'uptane', keys.signers.root)).toJSON());
      expect(pushed.status).toBe(200);
      return root;
    };
    const root = await renew('director', '/api/v1/admin/repo/root');
    await renew('image', '/api/v1/user_repo/root');
    // … a year passes, and the attacker answers 404 for the new root, so the device's version 1 (expired now) looks like the latest.
    world.clock.offsetMs = 366 * DAY;
    await expectDefeated(v, () => v.mitm.rule({ path: `/director/${root.version + 1}.root.json`, device: v.deviceId, status: 404, body: '' }), {
      code: 'FREEZE',
    });
  });
});
