/**
 * The key ceremonies end to end against a real server, with a device that
 * keeps its trusted metadata and must keep updating across every rotation
 * (full verification through the mTLS gateway, with the files `uptide devices
 * provision` wrote): taking the Image root and targets keys offline, offline
 * targets with the role checksum, an Image root rotated to 2 of 3 keys held by
 * different people, the Director root rotated the same way, and a supplier
 * delegation; and the refusals (too few signatures, wrong keys, wrong
 * passphrase, stale checksum, paths outside the delegation).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseRoot } from '@uptide/core';
import { cliFor, ok as okWith, startTestServer, tempDir, type CliRunner, type TestServer } from './testing/harness.js';
import { TestDevice } from './testing/device.js';

let ts: TestServer;
let oem: CliRunner;
let dev: TestDevice;
let bob: CliRunner;
const shared = tempDir('uptide-ceremony-shared-');

const ok = (args: readonly string[], env?: Record<string, string | undefined>) => okWith(oem, args, env);

async function api(method: string, path: string): Promise<{ status: number; body: Buffer }> {
  const res = await fetch(ts.adminUrl + path, { method, headers: { authorization: `Bearer ${ts.token}` } });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

async function serverRootVersion(repo: 'image' | 'director'): Promise<number> {
  const r = await api('GET', repo === 'image' ? '/api/v1/user_repo/root.json' : '/api/v1/admin/repo/root.json');
  return parseRoot(r.body, 'uptane').signed.version;
}

function image(name: string, size = 3000): string {
  const file = join(oem.cwd, name);
  writeFileSync(file, randomBytes(size));
  return name;
}

/** Adds an image to targets offline (sign, push), launches it, and checks the device installs it. */
async function shipOffline(version: string, targetsKey = 'oem-targets'): Promise<void> {
  await ok(['keys', 'targets', 'pull', '--force']);
  await ok(['keys', 'targets', 'add', image(`fw-${version}.bin`), '--name', 'fw', '--version', version, '--hardware-id', 'hw-a']);
  await ok(['keys', 'targets', 'sign', '--key', targetsKey]);
  await ok(['keys', 'targets', 'push']);
  const id = (await ok(['updates', 'launch', '--image', `fw@${version}`, '--devices', 'car'])).out.trim();
  expect((await dev.cycle()).installed).toEqual([`fw-${version}.bin`]);
  expect(JSON.parse((await ok(['updates', 'show', id, '--json'])).out).devices[0].status).toBe('completed');
}

beforeAll(async () => {
  ts = await startTestServer();
  oem = cliFor(ts, tempDir('uptide-ceremony-oem-'));
});
afterAll(async () => {
  await ts?.close();
});

describe('key ceremonies while a device keeps updating', () => {
  it('starts online: upload, provision, the device installs fw 1.0', async () => {
    await ok(['images', 'upload', image('fw1.bin'), '--name', 'fw', '--version', '1.0', '--hardware-id', 'hw-a']);
    await ok(['devices', 'provision', 'car', '--out', 'car', '--hardware-id', 'hw-a', '--ecu-serial', 'car-ecu', '--gateway', ts.gatewayUrl]);
    dev = new TestDevice(join(oem.cwd, 'car'), ts.gatewayUrl, 'car-ecu', 'hw-a', 'car');
    await dev.registerEcus();
    await ok(['updates', 'launch', '--image', 'fw@1.0', '--devices', 'car']);
    expect((await dev.cycle()).installed).toEqual(['fw-1.0.bin']);
  });

  it("takes the Image repository's root and targets keys offline", async () => {
    await ok(['keys', 'generate', 'oem-root']);
    await ok(['keys', 'generate', 'oem-targets']);
    const v1 = parseRoot((await api('GET', '/api/v1/user_repo/root.json')).body, 'uptane').signed;
    const onlineRoot = v1.role('root').keyids[0] as string;
    const onlineTargets = v1.role('targets').keyids[0] as string;

    const same = await oem(['keys', 'move-offline', '--root-key', 'oem-root', '--targets-key', 'oem-root']);
    expect(same.code).toBe(2);
    const wrong = await oem(['keys', 'move-offline', '--root-key', 'oem-root', '--targets-key', 'oem-targets'], {
      UPTIDE_KEY_PASSPHRASE: 'not the passphrase',
    });
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain('wrong passphrase for key oem-root');
    expect(await serverRootVersion('image')).toBe(1);

    const r = await ok(['keys', 'move-offline', '--root-key', 'oem-root', '--targets-key', 'oem-targets']);
    expect(r.out.trim()).toBe('2');
    expect(r.err).toContain('Re-signed targets.json');
    expect(await serverRootVersion('image')).toBe(2);
    // The server's copies of the old root and targets keys are gone; snapshot and timestamp stay online.
    expect((await api('GET', `/api/v1/user_repo/root/private_keys/${onlineRoot}`)).status).toBe(404);
    expect((await api('GET', `/api/v1/user_repo/root/private_keys/${onlineTargets}`)).status).toBe(404);
    const v2 = parseRoot((await api('GET', '/api/v1/user_repo/root.json')).body, 'uptane').signed;
    expect((await api('GET', `/api/v1/user_repo/root/private_keys/${v2.role('timestamp').keyids[0]}`)).status).toBe(200);
    // Every root is kept in the key directory.
    for (const v of [1, 2]) expect(existsSync(join(oem.cwd, 'uptide-keys', 'roots', 'image', `${v}.root.json`))).toBe(true);
    expect((await ok(['keys', 'list'])).out).toMatch(/oem-root\s+ed25519\s+[0-9a-f]{64}\s+image root \(v2\)/);

    // Online uploads are refused now, with what to do instead.
    const up = await oem(['images', 'upload', image('x.bin'), '--name', 'x', '--version', '1', '--hardware-id', 'hw-a']);
    expect(up.code).toBe(1);
    expect(up.err).toContain('uptide keys targets add');
    // Doing it twice is refused: the root is offline already.
    const again = await oem(['keys', 'move-offline', '--root-key', 'oem-root', '--targets-key', 'oem-targets']);
    expect(again.code).toBe(1);
    expect(again.err).toContain('already offline');
    // The device walks from root 1 to 2 on its next update.
    expect((await dev.cycle()).installed).toEqual([]);
  });

  it('signs targets offline; refuses unsigned pushes and keys that are not targets keys', async () => {
    await ok(['keys', 'targets', 'pull', '--force']);
    await ok(['keys', 'targets', 'add', image('fw-2.0.bin', 5000), '--name', 'fw', '--version', '2.0', '--hardware-id', 'hw-a', '--release-counter', '2']);
    const unsigned = await oem(['keys', 'targets', 'push']);
    expect(unsigned.code).toBe(1);
    expect(unsigned.err).toContain('not signed enough');
    expect(unsigned.err).toContain('oem-targets');
    const wrongKey = await oem(['keys', 'targets', 'sign', '--key', 'oem-root']);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.err).toContain('is not one of the keys');
    const shown = JSON.parse((await ok(['keys', 'targets', 'show', '--json'])).out) as { unpushedChanges: boolean; targets: Array<{ filename: string }> };
    expect(shown.unpushedChanges).toBe(true);
    expect(shown.targets.map((t) => t.filename).sort()).toEqual(['fw-1.0.bin', 'fw-2.0.bin']);
    await ok(['keys', 'targets', 'sign', '--key', 'oem-targets']);
    await ok(['keys', 'targets', 'push']);
    const nothing = await oem(['keys', 'targets', 'push']);
    expect(nothing.code).toBe(1);
    expect(nothing.err).toContain('nothing to push');

    await ok(['updates', 'launch', '--image', 'fw@2.0', '--devices', 'car']);
    expect((await dev.cycle()).installed).toEqual(['fw-2.0.bin']);
    expect(parseRoot(dev.image.root, 'uptane').signed.version).toBe(2);
  });

  it('refuses a push with a stale role checksum and says to pull again', async () => {
    // A second operator works from a copy of the key directory.
    const other = cliFor(ts, tempDir('uptide-ceremony-oem2-'));
    cpSync(join(oem.cwd, 'uptide-keys'), join(other.cwd, 'uptide-keys'), { recursive: true });
    await ok(['keys', 'targets', 'pull']);
    await ok(['keys', 'targets', 'add', image('a.bin'), '--name', 'a', '--version', '1', '--hardware-id', 'hw-a']);
    await ok(['keys', 'targets', 'sign', '--key', 'oem-targets']);

    writeFileSync(join(other.cwd, 'b.bin'), randomBytes(100));
    await okWith(other, ['keys', 'targets', 'pull', '--force']);
    await okWith(other, ['keys', 'targets', 'add', 'b.bin', '--name', 'b', '--version', '1', '--hardware-id', 'hw-a']);
    await okWith(other, ['keys', 'targets', 'sign', '--key', 'oem-targets']);
    await okWith(other, ['keys', 'targets', 'push']);

    const stale = await oem(['keys', 'targets', 'push']);
    expect(stale.code).toBe(1);
    expect(stale.err).toContain('changed on the server since you pulled it');
    expect(stale.err).toContain('uptide keys targets pull');
    const keep = await oem(['keys', 'targets', 'pull']);
    expect(keep.code).toBe(1);
    expect(keep.err).toContain('--force');
    await ok(['keys', 'targets', 'pull', '--force']);
    await ok(['keys', 'targets', 'add', 'a.bin', '--name', 'a', '--version', '1', '--hardware-id', 'hw-a']);
    await ok(['keys', 'targets', 'sign', '--key', 'oem-targets']);
    await ok(['keys', 'targets', 'push']);
    const names = JSON.parse((await ok(['images', 'list', '--json'])).out) as Array<{ filename: string }>;
    expect(names.map((n) => n.filename)).toEqual(expect.arrayContaining(['a-1.bin', 'b-1.bin']));
  });

  it('rotates the Image root to 2 of 3 keys held by three people', async () => {
    await ok(['keys', 'generate', 'alice']);
    await ok(['keys', 'generate', 'dave']);
    bob = cliFor(ts, tempDir('uptide-ceremony-bob-'));
    const carol = cliFor(ts, tempDir('uptide-ceremony-carol-'));
    await okWith(bob, ['keys', 'generate', 'bob']);
    await okWith(carol, ['keys', 'generate', 'carol']);
    await okWith(bob, ['keys', 'export-public', 'bob', '--out', join(shared, 'bob.pub.json')]);
    await okWith(carol, ['keys', 'export-public', 'carol', '--out', join(shared, 'carol.pub.json')]);
    const file = join(shared, 'image-root-3.json');

    const tooHigh = await oem(['keys', 'root', 'prepare', '--add-key', 'alice', '--remove-key', 'oem-root', '--threshold', '2', '--out', file]);
    expect(tooHigh.code).toBe(2);
    expect(tooHigh.err).toContain('needs at least 2 keys');
    const prep = await ok([
      'keys',
      'root',
      'prepare',
      '--add-key',
      'alice',
      '--add-key',
      join(shared, 'bob.pub.json'),
      '--add-key',
      join(shared, 'carol.pub.json'),
      '--remove-key',
      'oem-root',
      '--threshold',
      '2',
      '--out',
      file,
    ]);
    expect(prep.err).toContain('needs 1 signature(s) from the root keys of version 2: oem-root');
    expect(prep.err).toContain('and 2 from its own root keys: alice');

    const unsigned = await oem(['keys', 'root', 'push', file]);
    expect(unsigned.code).toBe(1);
    expect(unsigned.err).toContain('not signed enough to push');
    expect(unsigned.err).toContain('oem-root');
    expect((await ok(['keys', 'root', 'sign', file, '--key', 'oem-root'])).err).toContain('root keys of version 2: 1 of 1 required signature(s), met');
    await ok(['keys', 'root', 'sign', file, '--key', 'alice']);
    const oneOfTwo = await oem(['keys', 'root', 'push', file]);
    expect(oneOfTwo.code).toBe(1);
    expect(oneOfTwo.err).toMatch(/root keys of version 3: 1 of 2 required signature\(s\); 1 more from: [0-9a-f]{12}, [0-9a-f]{12}/);
    const notListed = await oem(['keys', 'root', 'sign', file, '--key', 'dave']);
    expect(notListed.code).toBe(1);
    expect(notListed.err).toContain('a root key of neither version 2 nor 3');
    const wrongPass = await bob(['keys', 'root', 'sign', file, '--key', 'bob'], { UPTIDE_KEY_PASSPHRASE: 'nope' });
    expect(wrongPass.code).toBe(1);
    expect(wrongPass.err).toContain('wrong passphrase');
    const bobSigned = await okWith(bob, ['keys', 'root', 'sign', file, '--key', 'bob']);
    expect(bobSigned.err).toContain('root keys of version 3: 2 of 2 required signature(s), met');

    expect((await ok(['keys', 'root', 'push', file])).out.trim()).toBe('3');
    expect(await serverRootVersion('image')).toBe(3);
    const again = await oem(['keys', 'root', 'push', file]);
    expect(again.code).toBe(1);
    expect(again.err).toContain('must be 4');

    const verify = await ok(['keys', 'verify-root']);
    expect(verify.out).toContain('version 3');
    expect(verify.out).toContain('OK: every version is signed by a threshold');
    await shipOffline('3.0');
    expect(parseRoot(dev.image.root, 'uptane').signed.version).toBe(3);
  });

  it('rotates the Director root to 2 of 3 offline keys', async () => {
    for (const k of ['d1', 'd2', 'd3']) await ok(['keys', 'generate', k]);
    const chain = JSON.parse((await ok(['keys', 'verify-root', '--repo', 'director', '--json'])).out) as { versions: Array<{ rootKeys: string[] }> };
    const onlineRoot = chain.versions[0]?.rootKeys[0] as string;
    expect((await oem(['keys', 'root', 'prepare', '--repo', 'director', '--role', 'targets', '--add-key', 'd1'])).code).toBe(2);
    const file = join(shared, 'director-root-2.json');
    await ok([
      'keys',
      'root',
      'prepare',
      '--repo',
      'director',
      '--add-key',
      'd1',
      '--add-key',
      'd2',
      '--add-key',
      'd3',
      '--remove-key',
      onlineRoot,
      '--threshold',
      '2',
      '--out',
      file,
    ]);
    await ok(['keys', 'root', 'sign', file, '--repo', 'director', '--key', 'd1']);
    const noOld = await oem(['keys', 'root', 'push', file, '--repo', 'director']);
    expect(noOld.code).toBe(1);
    expect(noOld.err).toContain('root keys of version 1: 0 of 1');
    await ok(['keys', 'root', 'sign', file, '--repo', 'director', '--online', '--key', 'd2']);
    const pushed = await ok(['keys', 'root', 'push', file, '--repo', 'director']);
    expect(pushed.err).toContain("Deleted the server's copies");
    expect(await serverRootVersion('director')).toBe(2);
    expect((await api('GET', `/api/v1/admin/repo/private_keys/${onlineRoot}`)).status).toBe(404);
    await ok(['keys', 'verify-root', '--repo', 'director']);
    await shipOffline('4.0');
    expect(parseRoot(dev.director.root, 'uptane').signed.version).toBe(2);
  });

  it('delegates supplier-a/* to a supplier, who signs its own targets', async () => {
    const supplier = cliFor(ts, tempDir('uptide-ceremony-supplier-'));
    await okWith(supplier, ['keys', 'generate', 'supplier']);
    await okWith(supplier, ['keys', 'generate', 'intruder']);
    await okWith(supplier, ['keys', 'export-public', 'supplier', '--out', join(shared, 'supplier.pub.json')]);

    const early = await supplier(['keys', 'delegation', 'init', 'supplier-a']);
    expect(early.code).toBe(1);
    expect(early.err).toContain('uptide keys delegate supplier-a');

    await ok(['keys', 'targets', 'pull', '--force']);
    await ok(['keys', 'delegate', 'supplier-a', '--paths', 'supplier-a/*', '--hardware-id', 'hw-a', '--key', join(shared, 'supplier.pub.json')]);
    await ok(['keys', 'targets', 'sign', '--key', 'oem-targets']);
    await ok(['keys', 'targets', 'push']);
    expect((await ok(['keys', 'targets', 'show'])).out).toContain('delegation supplier-a: paths supplier-a/*, hardware ids hw-a, 1 of 1 key(s)');

    await okWith(supplier, ['keys', 'delegation', 'init', 'supplier-a']);
    writeFileSync(join(supplier.cwd, 'ecu.bin'), randomBytes(2048));
    const outside = await supplier(['keys', 'delegation', 'add', 'ecu.bin', 'supplier-a', '--name', 'ecu', '--version', '1', '--hardware-id', 'hw-a']);
    expect(outside.code).toBe(1);
    expect(outside.err).toContain('outside the paths delegated to supplier-a');
    await okWith(supplier, [
      'keys',
      'delegation',
      'add',
      'ecu.bin',
      'supplier-a',
      '--name',
      'ecu',
      '--version',
      '1',
      '--hardware-id',
      'hw-a',
      '--filename',
      'supplier-a/ecu-1.bin',
    ]);
    const intruder = await supplier(['keys', 'delegation', 'sign', 'supplier-a', '--key', 'intruder']);
    expect(intruder.code).toBe(1);
    expect(intruder.err).toContain('not one of the keys of the delegation to supplier-a');
    const unsigned = await supplier(['keys', 'delegation', 'push', 'supplier-a']);
    expect(unsigned.code).toBe(1);
    expect(unsigned.err).toContain('not signed enough');
    await okWith(supplier, ['keys', 'delegation', 'sign', 'supplier-a', '--key', 'supplier']);
    expect((await okWith(supplier, ['keys', 'delegation', 'push', 'supplier-a'])).out.trim()).toBe('1');

    // A device finds the supplier's image through the delegation, signed by the supplier's key.
    const found = await dev.resolveImageTarget('supplier-a/ecu-1.bin');
    expect(found.role).toBe('supplier-a');
    expect(found.target.length).toBe(2048);
    // The Director sends it; the device installs the supplier's image after checking it through the delegation.
    await ok(['updates', 'launch', '--image', 'supplier-a/ecu-1.bin', '--devices', 'car']);
    expect((await dev.cycle()).installed).toEqual(['supplier-a/ecu-1.bin']);
    // The supplier ships a second version.
    writeFileSync(join(supplier.cwd, 'ecu2.bin'), randomBytes(1024));
    await okWith(supplier, [
      'keys',
      'delegation',
      'add',
      'ecu2.bin',
      'supplier-a',
      '--name',
      'ecu',
      '--version',
      '2',
      '--hardware-id',
      'hw-a',
      '--filename',
      'supplier-a/ecu-2.bin',
    ]);
    await okWith(supplier, ['keys', 'delegation', 'sign', 'supplier-a', '--key', 'supplier']);
    expect((await okWith(supplier, ['keys', 'delegation', 'push', 'supplier-a'])).out.trim()).toBe('2');
    expect((await dev.resolveImageTarget('supplier-a/ecu-2.bin')).target.length).toBe(1024);
    // And the device keeps updating from the top-level targets.
    await shipOffline('5.0');
  });

  it('rotates the offline targets key with the root key holders', async () => {
    await ok(['keys', 'generate', 'release-2']);
    const file = join(shared, 'image-root-4.json');
    await ok(['keys', 'root', 'prepare', '--role', 'targets', '--add-key', 'release-2', '--remove-key', 'oem-targets', '--out', file]);
    await ok(['keys', 'root', 'sign', file, '--key', 'alice']);
    await okWith(bob, ['keys', 'root', 'sign', file, '--key', 'bob']);
    const pushed = await ok(['keys', 'root', 'push', file]);
    expect(pushed.err).toContain('The targets keys changed');
    expect((await oem(['keys', 'targets', 'sign', '--key', 'oem-targets', '--expires-in', '30'])).err).toContain('is not one of the keys');
    await shipOffline('6.0', 'release-2');
    expect(parseRoot(dev.image.root, 'uptane').signed.version).toBe(4);
  });

  it('verifies both root chains, naming who signed each version', async () => {
    const image = JSON.parse((await ok(['keys', 'verify-root', '--json'])).out) as {
      ok: boolean;
      versions: Array<{ version: number; signatures: Array<{ name: string | null; valid: boolean }>; ownThreshold: { met: boolean } }>;
    };
    expect(image.ok).toBe(true);
    expect(image.versions.map((v) => v.version)).toEqual([1, 2, 3, 4]);
    expect(image.versions[2]?.signatures.map((s) => s.name ?? '-').sort()).toEqual(['-', 'alice', 'oem-root']);
    expect(image.versions.every((v) => v.ownThreshold.met && v.signatures.every((s) => s.valid))).toBe(true);
    const director = await ok(['keys', 'verify-root', '--repo', 'director']);
    expect(director.out).toContain('d1');
    expect(director.out).toContain('d2');
    expect((await ok(['keys', 'list'])).out).toMatch(/d1\s+ed25519\s+[0-9a-f]{64}\s+director root \(v2\)/);
  });
});
