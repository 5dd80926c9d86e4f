/**
 * The admin commands against a real server on 127.0.0.1: images, devices
 * (provisioning for both clients, and a device that then updates with the
 * files written), groups, updates, fleet credentials; and the refusals a
 * script must be able to trust (usage 2, failures 1, with what to do next).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { Command } from 'commander';
import { parseRoot } from '@uptide/core';
import { buildProgram } from './cli.js';
import { processIo } from './io.js';
import { cliFor, ok as okWith, startTestServer, tempDir, type CliRunner, type TestServer } from './testing/harness.js';
import { TestDevice } from './testing/device.js';

let ts: TestServer;
let cli: CliRunner;
let work: string;
const image = randomBytes(150_000);
const sha256 = createHash('sha256').update(image).digest('hex');

const ok = (args: readonly string[], env?: Record<string, string | undefined>) => okWith(cli, args, env);

beforeAll(async () => {
  ts = await startTestServer();
  work = tempDir('uptide-cli-');
  cli = cliFor(ts, work);
  writeFileSync(join(work, 'fw.bin'), image);
});
afterAll(async () => {
  await ts?.close();
});

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('usage and errors', () => {
  it('shows help with examples and exits 0', async () => {
    const r = await cli(['images', 'upload', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('Example:');
    expect(r.out).toContain('uptide images upload');
    const top = await cli(['--help']);
    expect(top.code).toBe(0);
    expect(top.out).toContain('Exit status: 0 success, 1 failure, 2 wrong usage');
    expect((await cli(['--version'])).out.trim()).toBe('0.1.0');
  });

  it('has an example in the --help of every command', async () => {
    const paths: string[][] = [];
    const walk = (cmd: Command, path: string[]) => {
      for (const sub of cmd.commands) {
        paths.push([...path, sub.name()]);
        walk(sub, [...path, sub.name()]);
      }
    };
    walk(buildProgram(processIo()), []);
    expect(paths.length).toBeGreaterThan(30);
    for (const p of paths) {
      const r = await cli([...p, '--help']);
      expect(r.code, p.join(' ')).toBe(0);
      expect(r.out, p.join(' ')).toMatch(/Examples?:\n {2}\$ uptide /);
    }
  });

  it('exits 2 on wrong usage', async () => {
    expect((await cli(['images', 'bogus'])).code).toBe(2);
    expect((await cli(['images', 'upload', 'fw.bin', '--name', 'x'])).code).toBe(2);
    expect((await cli(['images', 'upload', 'fw.bin', '--name', 'x', '--version', '1', '--hardware-id', 'hw', '--release-counter', '-1'])).code).toBe(2);
    const both = await cli(['updates', 'launch', '--image', 'x@1', '--devices', 'a', '--group', 'g']);
    expect(both.code).toBe(2);
    expect(both.err).toContain('exactly one of --devices and --group');
    expect((await cli(['devices', 'list', '--status', 'Bogus'])).code).toBe(2);
    expect((await cli(['devices', 'provision', 'bad id!', '--out', 'x'])).code).toBe(2);
  });

  it('says the server is down, and how to fix it', async () => {
    const r = await cli(['images', 'list'], { UPTIDE_SERVER: `http://127.0.0.1:${await closedPort()}` });
    expect(r.code).toBe(1);
    expect(r.err).toContain('cannot reach the Uptide server');
    expect(r.err).toContain('npm start');
  });

  it('says the token is wrong or missing, and where the right one is', async () => {
    const wrong = await cli(['devices', 'list'], { UPTIDE_TOKEN: 'upt_wrong' });
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain('refused the API token');
    expect(wrong.err).toContain('admin-token');
    const none = await cli(['devices', 'list'], { UPTIDE_TOKEN: undefined });
    expect(none.code).toBe(1);
    expect(none.err).toContain('no API token');
    // ./data/admin-token in the working directory is used when nothing else is set.
    const dir = tempDir('uptide-cli-token-');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'data', 'admin-token'), `${ts.token}\n`);
    const fromFile = await cliFor(undefined, dir)(['devices', 'list', '--json'], { UPTIDE_SERVER: ts.adminUrl });
    expect(fromFile.code).toBe(0);
    // --server and --token flags win over the environment.
    const flags = await cli(['devices', 'list', '--json', '--server', ts.adminUrl, '--token', ts.token], {
      UPTIDE_SERVER: 'http://127.0.0.1:1',
      UPTIDE_TOKEN: 'x',
    });
    expect(flags.code).toBe(0);
  });

  it('points the operator at the admin API when given another server', async () => {
    const r = await cli(['images', 'list'], { UPTIDE_SERVER: `${ts.adminUrl}/nothing-here` });
    expect(r.code).toBe(1);
    expect(r.err).toContain('admin API');
  });
});

describe('images', () => {
  it('uploads with the hashes computed here, lists, shows, deletes', async () => {
    const up = await ok([
      'images',
      'upload',
      'fw.bin',
      '--name',
      'fw',
      '--version',
      '1.0',
      '--hardware-id',
      'board-a',
      '--hardware-id',
      'board-b',
      '--release-counter',
      '1',
    ]);
    expect(up.code).toBe(0);
    expect(up.out).toContain(sha256);
    expect(up.out).toContain('Uploaded fw-1.0.bin');
    expect(up.err).toContain('uptide updates launch --image fw@1.0');
    const j = await cli(['images', 'upload', 'fw.bin', '--name', 'fw', '--version', '1.0-json', '--hardware-id', 'board-a', '--json']);
    expect(j.code).toBe(0);
    const parsed = JSON.parse(j.out) as { image: { filename: string; hashes: Record<string, string> }; local: { length: number } };
    expect(parsed.image.filename).toBe('fw-1.0-json.bin');
    expect(parsed.local.length).toBe(image.length);
    expect(parsed.image.hashes['sha256']).toBe(sha256);

    const list = await cli(['images', 'list', '--json']);
    expect((JSON.parse(list.out) as Array<{ filename: string }>).map((i) => i.filename).sort()).toEqual(['fw-1.0-json.bin', 'fw-1.0.bin']);
    const table = await cli(['images', 'list']);
    expect(table.out).toMatch(/^FILENAME\s+NAME\s+VERSION/);
    const show = await cli(['images', 'show', 'fw@1.0']);
    expect(show.code).toBe(0);
    expect(show.out).toContain('board-a, board-b');
    expect(show.out).toContain(sha256);
    expect(JSON.parse((await cli(['images', 'show', 'fw-1.0.bin', '--json'])).out).releaseCounter).toBe(1);

    expect((await cli(['images', 'delete', 'fw@1.0-json'])).code).toBe(0);
    const gone = await cli(['images', 'show', 'fw@1.0-json']);
    expect(gone.code).toBe(1);
    expect(gone.err).toContain('uptide images list');
  });

  it('draws a progress bar on a terminal only', async () => {
    const tty = cliFor(ts, work, {}, { tty: true });
    const r = await okWith(tty, ['images', 'upload', 'fw.bin', '--name', 'fw', '--version', 'tty', '--hardware-id', 'board-a']);
    expect(r.err).toContain('Uploading fw-tty.bin [##############################] 100%');
    const plain = await ok(['images', 'upload', 'fw.bin', '--name', 'fw', '--version', 'plain', '--hardware-id', 'board-a']);
    expect(plain.err).not.toContain('Uploading');
    await ok(['images', 'delete', 'fw@tty']);
    await ok(['images', 'delete', 'fw@plain']);
  });

  it('refuses a missing or empty file before contacting the server', async () => {
    writeFileSync(join(work, 'empty.bin'), '');
    const empty = await cli(['images', 'upload', 'empty.bin', '--name', 'e', '--version', '1', '--hardware-id', 'hw']);
    expect(empty.code).toBe(2);
    expect(empty.err).toContain('empty');
    expect((await cli(['images', 'upload', 'nope.bin', '--name', 'e', '--version', '1', '--hardware-id', 'hw'])).code).toBe(2);
    expect((await cli(['images', 'upload', 'fw.bin', '--name', 'e', '--version', '1', '--hardware-id', 'bad hw'])).code).toBe(2);
  });
});

describe('devices, groups, updates', () => {
  it('provisions a device for our client; the device updates with the files written', async () => {
    const r = await cli([
      'devices',
      'provision',
      'car-1',
      '--out',
      'car-1',
      '--hardware-id',
      'board-a',
      '--ecu-serial',
      'car-1-primary',
      '--gateway',
      ts.gatewayUrl,
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('npx uptide-device --config');
    const dir = join(work, 'car-1');
    for (const f of ['client.pem', 'pkey.pem', 'ca.pem', 'director/root.json', 'repo/root.json', 'uptide-device.toml'])
      expect(existsSync(join(dir, f))).toBe(true);
    expect(statSync(join(dir, 'pkey.pem')).mode & 0o777).toBe(0o600);
    const toml = readFileSync(join(dir, 'uptide-device.toml'), 'utf8');
    expect(toml).toContain(`gateway = "${ts.gatewayUrl}"`);
    expect(toml).toContain('hardware_id = "board-a"');
    expect(toml).toContain('ecu_serial = "car-1-primary"');
    expect(toml).toContain('director_root = "director/root.json"');
    // The roots are the server's, byte for byte.
    const served = await fetch(`${ts.adminUrl}/api/v1/user_repo/root.json`, { headers: { authorization: `Bearer ${ts.token}` } });
    expect(Buffer.from(await served.arrayBuffer()).equals(readFileSync(join(dir, 'repo/root.json')))).toBe(true);
    expect(parseRoot(readFileSync(join(dir, 'director/root.json')), 'uptane').signed.version).toBe(1);

    const dev = new TestDevice(dir, ts.gatewayUrl, 'car-1-primary', 'board-a', 'car-1');
    await dev.registerEcus();
    expect((await dev.cycle()).installed).toEqual([]);

    const shown = await cli(['devices', 'show', 'car-1']);
    expect(shown.code).toBe(0);
    expect(shown.out).toContain('car-1-primary');
    expect(shown.out).toContain('board-a');
    expect(shown.out).toContain('Attacks reported\n  none');

    const launch = await cli(['updates', 'launch', '--image', 'fw@1.0', '--devices', 'car-1']);
    expect(launch.code).toBe(0);
    const updateId = launch.out.trim();
    expect(updateId).toMatch(/^[0-9a-f-]{36}$/);
    expect(launch.err).toContain('1 device(s): car-1');

    const before = JSON.parse((await cli(['updates', 'show', updateId, '--json'])).out) as { devices: Array<{ status: string }> };
    expect(before.devices[0]?.status).toBe('assigned');
    expect((await dev.cycle()).installed).toEqual(['fw-1.0.bin']);
    const after = await cli(['updates', 'show', updateId]);
    expect(after.out).toMatch(/car-1\s+car-1-primary\s+board-a\s+fw-1\.0\.bin\s+completed/);
    const details = JSON.parse((await cli(['devices', 'show', 'car-1', '--json'])).out) as {
      deviceStatus: string;
      ecus: Array<{ installedImage: { filepath: string } }>;
    };
    expect(details.deviceStatus).toBe('UpToDate');
    expect(details.ecus[0]?.installedImage.filepath).toBe('fw-1.0.bin');
    expect((await cli(['updates', 'list'])).out).toContain(updateId);
  });

  it('writes a sota.toml for aktualizr with the import layout it reads', async () => {
    const r = await cli(['devices', 'provision', 'car-2', '--out', 'car-2', '--client', 'aktualizr', '--hardware-id', 'board-a', '--json']);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.out) as { config: string; run: string };
    expect(res.run).toContain('aktualizr -c');
    const toml = readFileSync(res.config, 'utf8');
    const dir = join(work, 'car-2');
    expect(toml).toContain(`base_path = "${dir}"`);
    expect(toml).toContain('primary_ecu_hardware_id = "board-a"');
    expect(toml).toContain('type = "none"');
    expect(toml).toContain('key_type = "ED25519"');
    expect(toml).toContain('tls_pkey_path = "pkey.pem"');
    expect(existsSync(join(dir, 'repo', 'root.json'))).toBe(true);
    // A second provision into the same directory would replace the device key: refused.
    const again = await cli(['devices', 'provision', 'car-2', '--out', 'car-2', '--hardware-id', 'board-a']);
    expect(again.code).toBe(1);
    expect(again.err).toContain('--force');
  });

  it('infers the hardware id only when the images name exactly one', async () => {
    const r = await cli(['devices', 'provision', 'car-3', '--out', 'car-3']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('board-a, board-b');
  });

  it('lists devices with filters, manages groups, launches to a group, cancels', async () => {
    const list = JSON.parse((await cli(['devices', 'list', '--json'])).out) as Array<{ deviceId: string }>;
    expect(list.map((d) => d.deviceId).sort()).toEqual(['car-1', 'car-2']);
    expect(JSON.parse((await cli(['devices', 'list', '--status', 'UpToDate', '--json'])).out)).toHaveLength(1);
    expect(JSON.parse((await cli(['devices', 'list', '--name-contains', '2', '--json'])).out)).toHaveLength(1);
    expect((await cli(['devices', 'list'])).out).toMatch(/^DEVICE\s+STATUS/);

    expect((await cli(['groups', 'create', 'fleet-a'])).code).toBe(0);
    const dup = await cli(['groups', 'create', 'fleet-a']);
    expect(dup.code).toBe(1);
    expect(dup.err).toContain('uptide groups list');
    expect((await cli(['groups', 'add', 'fleet-a', 'car-1', 'car-2'])).code).toBe(0);
    expect(JSON.parse((await cli(['groups', 'show', 'fleet-a', '--json'])).out).devices.sort()).toEqual(['car-1', 'car-2']);
    expect((await cli(['groups', 'list'])).out).toMatch(/fleet-a\s+2/);
    expect(JSON.parse((await cli(['devices', 'list', '--group', 'fleet-a', '--json'])).out)).toHaveLength(2);
    expect((await cli(['groups', 'remove', 'fleet-a', 'car-2'])).code).toBe(0);
    const notMember = await cli(['groups', 'remove', 'fleet-a', 'car-2']);
    expect(notMember.code).toBe(1);

    // car-1 runs fw-1.0 on board-a; the json build of fw 1.0 is deleted; upload 2.0 and send it to the group.
    writeFileSync(join(work, 'fw2.bin'), randomBytes(1000));
    expect((await cli(['images', 'upload', 'fw2.bin', '--name', 'fw', '--version', '2.0', '--hardware-id', 'board-a'])).code).toBe(0);
    const dry = await cli(['updates', 'launch', '--image', 'fw@2.0', '--group', 'fleet-a', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.err).toContain('would update 1 device(s): car-1');
    const launch = await cli(['updates', 'launch', '--image', 'fw@2.0', '--group', 'fleet-a', '--json']);
    const id = (JSON.parse(launch.out) as { id: string }).id;
    const cancel = await cli(['updates', 'cancel', id]);
    expect(cancel.code).toBe(0);
    expect(cancel.err).toContain('Cancelled on 1 device(s): car-1');
    expect(JSON.parse((await cli(['updates', 'show', id, '--json'])).out).devices[0].status).toBe('cancelled');

    // An update that reaches no device is a failure a script can see.
    const none = await cli(['updates', 'launch', '--image', 'fw@2.0', '--devices', 'car-2']);
    expect(none.code).toBe(1);
    expect(none.err).toContain('no ECU with a hardware id the image is built for');
    expect((await cli(['groups', 'delete', 'fleet-a'])).code).toBe(0);
  });

  it('says what to do for an unknown device, group, update or image', async () => {
    const dev = await cli(['devices', 'show', 'nobody']);
    expect(dev.code).toBe(1);
    expect(dev.err).toContain('uptide devices list');
    expect((await cli(['groups', 'show', 'nothing'])).err).toContain('uptide groups list');
    expect((await cli(['updates', 'show', 'nothing'])).err).toContain('uptide updates list');
    const img = await cli(['updates', 'launch', '--image', 'nope@1', '--devices', 'car-1']);
    expect(img.code).toBe(1);
    expect(img.err).toContain('uptide images list');
  });

  it('writes a fleet credentials.zip', async () => {
    const r = await cli(['provisioning', 'credentials', '--out', 'credentials.zip']);
    expect(r.code).toBe(0);
    const zip = readFileSync(join(work, 'credentials.zip'));
    expect(zip.subarray(0, 2).toString('latin1')).toBe('PK');
    expect(zip.includes(Buffer.from('autoprov_credentials.p12'))).toBe(true);
    expect(statSync(join(work, 'credentials.zip')).mode & 0o777).toBe(0o600);
    expect((await cli(['provisioning', 'credentials', '--out', 'credentials.zip'])).code).toBe(1);
  });
});
