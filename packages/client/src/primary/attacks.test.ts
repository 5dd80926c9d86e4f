/**
 * The Primary against the attack classes of uptane-standard.md §9, at least
 * one presentation each. Every case checks the same five things: nothing is
 * installed, the trusted metadata on disk is unchanged, the cycle fails with
 * the typed error, the attack is in the manifest sent next, and the next
 * honest cycle installs the update.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expiresIn, Metadata, MetaFile, Timestamp, type ErrorCode } from '@uptide/core';
import { loadConfig } from '../config/config.js';
import { newSigner, RepoMock } from '../testing/repo-mock.js';
import { writeDeviceSetup, type DeviceSetup, type DeviceSetupOptions } from '../testing/device-setup.js';
import { memoryLogger } from './log.js';
import { Primary } from './primary.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void>)();
});

const V0 = randomBytes(20_000);
const V1 = randomBytes(20_000);
const V2 = randomBytes(20_000);

interface Ctx {
  readonly mock: RepoMock;
  readonly setup: DeviceSetup;
  readonly primary: Primary;
  readonly serial: string;
  readonly hw: string;
  readonly dev: string;
}

/** A device running fw-1.bin (release counter 1), with fw-2.bin (counter 2) on the Image repository. */
async function prepared(options: DeviceSetupOptions = {}): Promise<Ctx> {
  const mock = await RepoMock.start();
  cleanups.push(() => mock.close());
  const setup = writeDeviceSetup(mock, options);
  const primary = await Primary.open({ config: loadConfig(setup.configPath), log: memoryLogger(), retryDelayMs: 10 });
  cleanups.push(() => primary.close());
  const ctx = { mock, setup, primary, serial: primary.primaryEcu.serial, hw: setup.hardwareId, dev: setup.deviceId };
  expect((await primary.cycle()).ok).toBe(true);
  await mock.addImage('fw-1.bin', V1, { hardwareIds: [ctx.hw], releaseCounter: 1 });
  await mock.assign(ctx.dev, 'fw-1.bin');
  expect((await primary.cycle()).installed).toEqual(['fw-1.bin']);
  expect((await primary.cycle()).ok).toBe(true);
  await mock.addImage('fw-2.bin', V2, { hardwareIds: [ctx.hw], releaseCounter: 2 });
  return ctx;
}

function digestTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

interface Expectation {
  readonly code: ErrorCode;
  /** The installation report item code, when the Director's directive was trusted. */
  readonly report?: 'VERIFICATION_FAILED' | 'DOWNLOAD_FAILED';
  /** Undo the attack (default: remove every tamper rule). */
  readonly restore?: () => Promise<void>;
  /** What the honest cycle installs (default fw-2.bin). */
  readonly next?: { readonly name: string; readonly bytes: Buffer };
  /** Roots may change (root rotation cases): compare the rest. */
  readonly ignoreRoots?: boolean;
  /** A partial download stays for a resume (slow retrieval of an image). */
  readonly partial?: boolean;
  /** More checks right after the attacked cycle. */
  readonly check?: () => void;
}

/** Runs the attacked cycle, checks the five properties, then the honest one. */
async function expectRejected(ctx: Ctx, e: Expectation, before: Record<string, string>): Promise<void> {
  const { mock, setup, primary, serial } = ctx;
  const r = await primary.cycle();
  // The typed error.
  expect(r.ok).toBe(false);
  expect(r.error?.code).toBe(e.code);
  expect(r.attack?.code).toBe(e.code);
  // Nothing installed.
  expect(readFileSync(setup.installedPath).equals(V1)).toBe(true);
  expect(primary.store.state.installed[serial]?.filename).toBe('fw-1.bin');
  expect(readdirSync(join(setup.storage, 'downloads'))).toHaveLength(e.partial ? 1 : 0);
  // Trusted metadata unchanged on disk.
  const after = digestTree(join(setup.storage, 'metadata'));
  const strip = (t: Record<string, string>) => (e.ignoreRoots ? Object.fromEntries(Object.entries(t).filter(([k]) => !k.includes('root'))) : t);
  expect(strip(after)).toEqual(strip(before));
  // The attack in the next manifest, typed and in the string OTA CE reads.
  const m = mock.lastManifest(ctx.dev);
  const report = m?.reports.get(serial);
  expect(report?.attacks.map((a) => a.code)).toContain(e.code);
  expect(report?.attacksDetected).toContain(e.code);
  expect(mock.manifestsOf(ctx.dev).at(-1)?.verified).toBe(true);
  if (e.report) expect(m?.installationReport?.items[0]?.result).toMatchObject({ success: false, code: e.report });
  else expect(m?.installationReport).toBeUndefined();
  e.check?.();
  // The next honest cycle succeeds (and reports no attack).
  if (e.restore) await e.restore();
  else mock.clearTampers();
  const next = e.next ?? { name: 'fw-2.bin', bytes: V2 };
  const ok = await primary.cycle();
  expect(ok).toMatchObject({ ok: true, installed: [next.name] });
  expect(readFileSync(setup.installedPath).equals(next.bytes)).toBe(true);
  expect(mock.lastManifest(ctx.dev)?.reports.get(serial)?.attacks).toEqual([]);
}

async function attack(ctx: Ctx, arrange: () => Promise<unknown>, e: Expectation): Promise<void> {
  const before = digestTree(join(ctx.setup.storage, 'metadata'));
  await arrange();
  await expectRejected(ctx, e, before);
}

describe('the Primary rejects', () => {
  describe('rollback', () => {
    it('an Image repository timestamp older than the trusted one', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
          ctx.mock.tamper({ path: '/repo/timestamp.json', body: ctx.mock.image.timestamp.history[0] as Uint8Array });
        },
        // The Director's directive verified, so its failure is reported too.
        { code: 'ROLLBACK', report: 'VERIFICATION_FAILED' },
      );
    });

    it('a Director timestamp older than the trusted one', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
          ctx.mock.tamper({ path: '/director/timestamp.json', body: ctx.mock.director(ctx.dev).timestamp.history[0] as Uint8Array });
        },
        { code: 'ROLLBACK' },
      );
    });

    it('an older image with a lower release counter directed by a compromised Director', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          await ctx.mock.addImage('fw-0.bin', V0, { hardwareIds: [ctx.hw], releaseCounter: 0 });
          await ctx.mock.assign(ctx.dev, 'fw-0.bin');
        },
        { code: 'ROLLBACK', report: 'VERIFICATION_FAILED', restore: async () => void (await ctx.mock.assign(ctx.dev, 'fw-2.bin')) },
      );
    });
  });

  describe('freeze', () => {
    it('an expired Image repository timestamp', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          ctx.mock.image.expiries = { timestamp: -60 };
          await ctx.mock.image.publish();
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
        },
        {
          code: 'FREEZE',
          report: 'VERIFICATION_FAILED',
          restore: async () => {
            ctx.mock.image.expiries = {};
            await ctx.mock.image.publish();
          },
        },
      );
    });

    it('expired Director targets', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          ctx.mock.director(ctx.dev).expiries = { targets: -60 };
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
        },
        {
          code: 'FREEZE',
          restore: async () => {
            ctx.mock.director(ctx.dev).expiries = {};
            await ctx.mock.director(ctx.dev).publish();
          },
        },
      );
    });
  });

  describe('mix-and-match', () => {
    it('an Image repository snapshot other than the one the timestamp lists', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
          ctx.mock.tamper({ path: '/repo/snapshot.json', body: ctx.mock.image.snapshot.history.at(-2) as Uint8Array });
        },
        { code: 'MIX_AND_MATCH', report: 'VERIFICATION_FAILED' },
      );
    });

    it('Director targets other than those the Director snapshot lists', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          const d = ctx.mock.director(ctx.dev);
          const old = d.targetsFile.history.at(-1) as Uint8Array;
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
          ctx.mock.tamper({ path: '/director/targets.json', body: old });
        },
        { code: 'MIX_AND_MATCH' },
      );
    });
  });

  describe('a repository re-signing between two requests (not an attack)', () => {
    it('fetches once more and installs without reporting an attack', async () => {
      const ctx = await prepared();
      await ctx.mock.assign(ctx.dev, 'fw-2.bin');
      // Once: the snapshot served is not the one the timestamp just listed, as when the server re-signs in between.
      const race = ctx.mock.tamper({ path: '/repo/snapshot.json', body: ctx.mock.image.snapshot.history.at(-2) as Uint8Array, times: 1 });
      const r = await ctx.primary.cycle();
      expect(race.hits).toBe(1);
      expect(r.ok).toBe(true);
      expect(r.installed).toEqual(['fw-2.bin']);
      await ctx.primary.cycle();
      const manifest = ctx.mock.lastManifest(ctx.dev);
      expect(manifest).toBeDefined();
      expect([...(manifest?.reports.values() ?? [])].every((rep) => rep.attacks.length === 0)).toBe(true);
    });
  });

  describe('arbitrary software', () => {
    it('a timestamp signed by a key the root does not list', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
          const img = ctx.mock.image;
          const forged = await Metadata.create(
            new Timestamp({
              version: img.timestamp.version + 1,
              expires: expiresIn(new Date(), 3600),
              snapshot: MetaFile.describe(img.snapshot.version, img.snapshot.bytes),
            }),
            'uptane',
            [await newSigner()],
          );
          ctx.mock.tamper({ path: '/repo/timestamp.json', body: forged.toBytes() });
        },
        { code: 'ARBITRARY_SOFTWARE', report: 'VERIFICATION_FAILED' },
      );
    });

    it('a Director timestamp changed after it was signed', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
          ctx.mock.tamper({
            path: '/director/timestamp.json',
            body: (orig) => {
              const doc = JSON.parse(orig.toString('utf8')) as { signed: { version: number } };
              doc.signed.version += 100;
              return JSON.stringify(doc);
            },
          });
        },
        { code: 'ARBITRARY_SOFTWARE' },
      );
    });

    it('tampered image bytes', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
          ctx.mock.tamper({
            path: '/repo/targets/fw-2.bin',
            body: (orig) => {
              const b = Buffer.from(orig);
              b[100] = (b[100] as number) ^ 0xff;
              return b;
            },
          });
        },
        { code: 'ARBITRARY_SOFTWARE', report: 'VERIFICATION_FAILED' },
      );
    });

    it('an image whose sha256 matches but whose sha512 does not (every hash is checked)', async () => {
      const ctx = await prepared();
      const V3 = randomBytes(5000);
      await attack(
        ctx,
        async () => {
          await ctx.mock.addImage('fw-3.bin', V3, {
            hardwareIds: [ctx.hw],
            releaseCounter: 3,
            hashes: ['sha256', 'sha512'],
            hashOverride: { sha512: 'ab'.repeat(64) },
          });
          await ctx.mock.assign(ctx.dev, 'fw-3.bin');
        },
        {
          code: 'ARBITRARY_SOFTWARE',
          report: 'VERIFICATION_FAILED',
          restore: async () => void (await ctx.mock.assign(ctx.dev, 'fw-2.bin')),
        },
      );
    });

    it('a new Director root signed only by the new root key, keeping the good root before it', async () => {
      const ctx = await prepared();
      const oldRoot = ctx.mock.directorRoot.keys.root;
      const newRoot = await newSigner();
      const rootsDir = join(ctx.setup.storage, 'metadata', 'director', 'roots');
      await attack(
        ctx,
        async () => {
          await ctx.mock.rotateRoot('director', { keys: { targets: [await newSigner()] } });
          // Version 3 lacks a signature by the version-2 root key.
          await ctx.mock.rotateRoot('director', { keys: { root: [newRoot] }, signers: [newRoot] });
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
        },
        {
          code: 'ARBITRARY_SOFTWARE',
          ignoreRoots: true,
          check: () => {
            // Version 2 was good and is trusted now; version 3 was refused.
            expect(readdirSync(rootsDir).sort()).toEqual(['1.root.json', '2.root.json']);
            expect(readFileSync(join(rootsDir, '..', 'root.json')).equals(Buffer.from(ctx.mock.directorRoot.bytes(2) as Uint8Array))).toBe(true);
          },
          restore: async () => {
            ctx.mock.directorRoot.versions.pop();
            await ctx.mock.rotateRoot('director', { signers: [...oldRoot, newRoot] });
          },
        },
      );
      expect(readdirSync(rootsDir).sort()).toEqual(['1.root.json', '2.root.json', '3.root.json']);
    });
  });

  describe('endless data', () => {
    it('an image announced with a Content-Length longer than its metadata allows', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
          ctx.mock.tamper({ path: '/repo/targets/fw-2.bin', endless: true, contentLength: 1024 * 1024 * 1024 });
        },
        { code: 'ENDLESS_DATA', report: 'DOWNLOAD_FAILED' },
      );
    });

    it('an image streamed without Content-Length beyond its length', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
          ctx.mock.tamper({ path: '/repo/targets/fw-2.bin', endless: true });
        },
        { code: 'ENDLESS_DATA', report: 'DOWNLOAD_FAILED' },
      );
    });

    it('an endless timestamp (the Y byte limit)', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
          ctx.mock.tamper({ path: '/director/timestamp.json', endless: true });
        },
        { code: 'ENDLESS_DATA' },
      );
    });
  });

  describe('slow retrieval', () => {
    it('an image trickled below the minimum speed', async () => {
      const ctx = await prepared({ limits: { min_speed_window: 0.5 } });
      await attack(
        ctx,
        async () => {
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
          ctx.mock.tamper({ path: '/repo/targets/fw-2.bin', bytesPerSecond: 300 });
        },
        { code: 'SLOW_RETRIEVAL', report: 'DOWNLOAD_FAILED', partial: true },
      );
    });

    it('Director targets trickled below the minimum speed', async () => {
      const ctx = await prepared({ limits: { min_speed_window: 0.5 } });
      await attack(
        ctx,
        async () => {
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
          ctx.mock.tamper({ path: '/director/targets.json', bytesPerSecond: 100 });
        },
        { code: 'SLOW_RETRIEVAL' },
      );
    });
  });

  describe('wrong hardware', () => {
    it('Director targets that give this ECU another hardware id', async () => {
      const ctx = await prepared();
      await attack(ctx, () => ctx.mock.assign(ctx.dev, 'fw-2.bin', { hardwareId: 'other-board' }), {
        code: 'BAD_HARDWARE_ID',
        restore: async () => void (await ctx.mock.assign(ctx.dev, 'fw-2.bin')),
      });
    });

    it('an image the Image repository lists for other hardware only', async () => {
      const ctx = await prepared();
      await attack(
        ctx,
        async () => {
          await ctx.mock.addImage('other-fw.bin', V0, { hardwareIds: ['other-board'], releaseCounter: 9 });
          await ctx.mock.assign(ctx.dev, 'other-fw.bin');
        },
        { code: 'BAD_HARDWARE_ID', report: 'VERIFICATION_FAILED', restore: async () => void (await ctx.mock.assign(ctx.dev, 'fw-2.bin')) },
      );
    });
  });

  describe('ECU retargeting', () => {
    it('Director targets for an ECU that is not in this vehicle', async () => {
      const ctx = await prepared();
      const t = ctx.mock.findImage('fw-2.bin');
      await attack(
        ctx,
        () =>
          ctx.mock.setDirectorTargets(
            ctx.dev,
            [{ name: 'fw-2.bin', ecus: { 'ecu-of-another-car': ctx.hw }, length: t?.length ?? 0, hashes: t?.hashes ?? {} }],
            {
              correlationId: 'urn:here-ota:mtu:00000000-0000-0000-0000-000000000001',
            },
          ),
        { code: 'BAD_ECU_ID', restore: async () => void (await ctx.mock.assign(ctx.dev, 'fw-2.bin')) },
      );
    });
  });

  describe('Director replay', () => {
    it("another vehicle's (empty) Director metadata", async () => {
      const ctx = await prepared();
      const other = ctx.mock.director('another-vehicle');
      for (let i = 0; i < 12; i++) await other.publish();
      await attack(
        ctx,
        async () => {
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
          ctx.mock.tamper({ path: '/director/timestamp.json', deviceId: ctx.dev, body: other.timestamp.bytes });
          ctx.mock.tamper({ path: '/director/snapshot.json', deviceId: ctx.dev, body: other.snapshot.bytes });
          ctx.mock.tamper({ path: '/director/targets.json', deviceId: ctx.dev, body: other.targetsFile.bytes });
        },
        { code: 'DIRECTOR_REPLAY' },
      );
    });

    it('empty Director targets that name no vehicle', async () => {
      const ctx = await prepared();
      await attack(ctx, () => ctx.mock.setDirectorTargets(ctx.dev, [], { vehicleId: null }), {
        code: 'DIRECTOR_REPLAY',
        restore: async () => {
          ctx.mock.director(ctx.dev).vehicleId = ctx.dev;
          await ctx.mock.assign(ctx.dev, 'fw-2.bin');
        },
      });
    });
  });

  describe('target mismatch', () => {
    it('Director and Image repository disagreeing on the length', async () => {
      const ctx = await prepared();
      const t = ctx.mock.findImage('fw-2.bin');
      await attack(ctx, () => ctx.mock.assign(ctx.dev, 'fw-2.bin', { override: { length: (t?.length ?? 0) + 1 } }), {
        code: 'TARGET_MISMATCH',
        report: 'VERIFICATION_FAILED',
        restore: async () => void (await ctx.mock.assign(ctx.dev, 'fw-2.bin')),
      });
    });

    it('Director and Image repository disagreeing on the hash', async () => {
      const ctx = await prepared();
      await attack(ctx, () => ctx.mock.assign(ctx.dev, 'fw-2.bin', { override: { hashes: { sha256: 'cd'.repeat(32) } } }), {
        code: 'TARGET_MISMATCH',
        report: 'VERIFICATION_FAILED',
        restore: async () => void (await ctx.mock.assign(ctx.dev, 'fw-2.bin')),
      });
    });

    it('an image the Image repository does not list at all', async () => {
      const ctx = await prepared();
      await attack(ctx, () => ctx.mock.assign(ctx.dev, 'malware.bin', { override: { length: 10, hashes: { sha256: 'ef'.repeat(32) } } }), {
        code: 'TARGET_NOT_FOUND',
        report: 'VERIFICATION_FAILED',
        restore: async () => void (await ctx.mock.assign(ctx.dev, 'fw-2.bin')),
      });
    });
  });
});
