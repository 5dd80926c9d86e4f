/**
 * The one assertion of the suite: an attack is defeated. After the attacked
 * cycle (uptane-standard.md §9, "expected client outcome"):
 *
 * 1. the cycle fails with the typed error (its code), and an attack code is
 *    also the cycle's attack report;
 * 2. nothing is installed: the installed image, the state's record of it and
 *    the download directory are as before;
 * 3. the previously trusted metadata is unchanged on disk, byte for byte
 *    (roots excepted where a test says a root was legitimately accepted);
 * 4. the attack is in the next version report the device sends (typed and in
 *    the `attacks_detected` string aktualizr's servers read) and, against the
 *    real server, visible through the admin API (`GET /api/v1/devices/:id/attacks`);
 * 5. once the attacker stops, the next honest cycle succeeds and installs
 *    the update, reporting no attack.
 */
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect } from 'vitest';
import type { VehicleManifest } from '@uptide/core';
import type { CycleResult, Primary } from '@uptide/client';

/** Failures of the transport (HttpError codes): the device reports them as errors, not as attacks. */
export const TRANSPORT_CODES: readonly string[] = ['HTTP_STATUS', 'NETWORK', 'TIMEOUT', 'BAD_RESPONSE', 'INSECURE_URL', 'TOO_MANY_REDIRECTS'];

export interface Image {
  readonly name: string;
  readonly bytes: Buffer;
}

export interface ServerAttack {
  readonly code: string;
  readonly ecu: string | null;
  readonly source: string;
  readonly message: string;
}

/** A device under attack, whatever plays the servers (the real server behind a MitM, or the repository mock). */
export interface Scene {
  readonly primary: Primary;
  readonly deviceId: string;
  readonly serial: string;
  /** The device's state directory. */
  readonly storage: string;
  /** Where the file installer writes the image. */
  readonly installedPath: string;
  /** What the device runs before the attack. */
  readonly installed: Image;
  /** What the honest cycle after the attack installs. */
  readonly next: Image;
  /** Every manifest the device sent, oldest first. */
  manifests(): VehicleManifest[];
  /** Attacks the server shows for the device through its admin API; undefined without a real server. */
  serverAttacks(): Promise<ServerAttack[] | undefined>;
  /** Installation reports the server recorded (newest first); undefined without a real server. */
  serverInstallReports(): Promise<Array<{ success: boolean; code: string }> | undefined>;
  /** Stops the attacker and makes sure `next` is directed to the device again. */
  heal(): Promise<void>;
}

export interface Expectation {
  /** The typed error code of the attacked cycle (an UptaneError code, or HTTP_STATUS/NETWORK for dropped requests). */
  readonly code: string;
  /** The failed-installation code the device reports when it trusted the Director's directive. */
  readonly report?: 'VERIFICATION_FAILED' | 'DOWNLOAD_FAILED';
  /** More undoing, before `heal` (e.g. the operator puts back what the attack removed). */
  readonly restore?: () => Promise<void>;
  /** What the honest cycle installs (default: the scene's `next`); null: it only has to succeed. */
  readonly next?: Image | null;
  /** Roots legitimately accepted during the attacked cycle (compare everything else). */
  readonly rootsMayChange?: boolean;
  /** A partial download stays for a resume (slow retrieval or a cut connection of an image). */
  readonly partialDownload?: boolean;
  /** More checks right after the attacked cycle. */
  readonly check?: (r: CycleResult) => void | Promise<void>;
}

/** Every file under a directory, by relative path, with its bytes. */
export function snapshotTree(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (!existsSync(dir)) return out;
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

function withoutRoots(t: Map<string, Buffer>): Map<string, Buffer> {
  return new Map([...t].filter(([k]) => !/(^|\/)(roots\/|root\.json$)/.test(k)));
}

function expectSameTree(after: Map<string, Buffer>, before: Map<string, Buffer>): void {
  expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
  for (const [k, v] of before) expect(after.get(k)?.equals(v), `metadata/${k} changed`).toBe(true);
}

/** Runs `arrange` (the attacker gets ready), then the attacked cycle and the honest one, checking the five properties. */
export async function expectDefeated(scene: Scene, arrange: () => unknown, e: Expectation): Promise<CycleResult> {
  const metadataDir = join(scene.storage, 'metadata');
  const before = snapshotTree(metadataDir);
  const sentBefore = scene.manifests().length;
  await arrange();

  const r = await scene.primary.cycle();
  // 1. The typed error.
  expect(r.ok, `the attacked cycle succeeded: ${JSON.stringify(r)}`).toBe(false);
  expect(r.error?.code).toBe(e.code);
  // Every failed Uptane check (an UptaneError code) is reported; transport failures are not attacks.
  const isAttack = !TRANSPORT_CODES.includes(e.code);
  if (isAttack) expect(r.attack?.code).toBe(e.code);
  else expect(r.attack).toBeUndefined();
  // 2. Nothing installed.
  expect(readFileSync(scene.installedPath).equals(scene.installed.bytes), 'the installed image changed').toBe(true);
  expect(scene.primary.store.state.installed[scene.serial]?.filename).toBe(scene.installed.name);
  const downloads = join(scene.storage, 'downloads');
  const left = existsSync(downloads) ? readdirSync(downloads) : [];
  if (e.partialDownload) expect(left.length).toBeLessThanOrEqual(1);
  else expect(left).toEqual([]);
  // 3. The trusted metadata unchanged, byte for byte.
  const after = snapshotTree(metadataDir);
  if (e.rootsMayChange) expectSameTree(withoutRoots(after), withoutRoots(before));
  else expectSameTree(after, before);
  await e.check?.(r);

  // 4. Reported in the next version report, and on the server.
  const sent = scene.manifests().slice(sentBefore);
  const reported = sent.flatMap((m) => m.reports.get(scene.serial)?.attacks ?? []).map((a) => a.code);
  const strings = sent.map((m) => m.reports.get(scene.serial)?.attacksDetected ?? '').join(';');
  if (isAttack) {
    expect(reported, 'the attack is not in the version report sent after the attacked cycle').toContain(e.code);
    expect(strings).toContain(e.code);
    const onServer = await scene.serverAttacks();
    if (onServer !== undefined) expect(onServer.filter((a) => a.source === 'reported' && a.ecu === scene.serial).map((a) => a.code)).toContain(e.code);
  } else {
    // A dropped request is an error, not an attack claim: reports carry none.
    expect(reported).toEqual([]);
  }
  const last = sent.at(-1);
  if (e.report) {
    const item = sent.map((m) => m.installationReport).find((x) => x !== undefined);
    expect(item?.result.success).toBe(false);
    expect(item?.items.find((i) => i.ecu === scene.serial)?.result.code).toBe(e.report);
    const onServer = await scene.serverInstallReports();
    if (onServer !== undefined) expect(onServer[0]?.success).toBe(false);
  } else if (last) {
    expect(last.installationReport).toBeUndefined();
  }

  // 5. The next honest cycle succeeds.
  await e.restore?.();
  await scene.heal();
  const next = e.next === undefined ? scene.next : e.next;
  const honest = await scene.primary.cycle();
  expect(honest.error, `the honest cycle failed: ${JSON.stringify(honest.error)}`).toBeUndefined();
  expect(honest.ok).toBe(true);
  if (next) {
    // (A bundle installs more than `next`.)
    expect(honest.installed).toContain(next.name);
    expect(readFileSync(scene.installedPath).equals(next.bytes)).toBe(true);
  }
  const afterHonest = scene.manifests().at(-1);
  expect(afterHonest?.reports.get(scene.serial)?.attacks).toEqual([]);
  return r;
}
