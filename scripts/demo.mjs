// `npm run demo`: the README's walk, scripted. Starts a local server in a
// temporary directory, publishes an image, provisions a device with our client
// and one Secondary, starts a small simulated fleet (each device with a
// Secondary), launches the update to all of them and watches it complete.
// Everything runs on 127.0.0.1 with the built commands; nothing is left behind
// unless --keep is given.
//
// Usage: npm run demo [-- --devices N] [-- --keep] [-- --timeout S]
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, appendFileSync, rmSync, mkdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs, promisify } from 'node:util';

const root = resolve(new URL('..', import.meta.url).pathname);
const bin = {
  server: join(root, 'packages/server/dist/bin/uptide-server.js'),
  cli: join(root, 'packages/cli/dist/bin/uptide.js'),
  device: join(root, 'packages/client/dist/bin/uptide-device.js'),
  secondary: join(root, 'packages/client/dist/bin/uptide-secondary.js'),
  sim: join(root, 'packages/client/dist/bin/uptide-sim.js'),
};

const { values } = parseArgs({
  options: { devices: { type: 'string', default: '3' }, keep: { type: 'boolean', default: false }, timeout: { type: 'string', default: '120' } },
});
const SIM_DEVICES = Number(values.devices);
const TIMEOUT_MS = Number(values.timeout) * 1000;

const dir = mkdtempSync(join(tmpdir(), 'uptide-demo-'));
const children = [];
const say = (s) => process.stdout.write(`\n\u001b[1m==> ${s}\u001b[0m\n`);
const step = (s) => process.stdout.write(`    ${s}\n`);

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function canConnect(port) {
  return new Promise((res) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      res(true);
    });
    sock.once('error', () => res(false));
  });
}

function start(name, file, args, env = {}) {
  const log = join(dir, `${name}.log`);
  const child = spawn(process.execPath, [file, ...args], { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (c) => appendFileSync(log, c));
  child.stderr.on('data', (c) => appendFileSync(log, c));
  children.push(child);
  return child;
}

const run = promisify(execFile);
let cliEnv = {};
async function uptide(...args) {
  const { stdout } = await run(process.execPath, [bin.cli, ...args], { cwd: dir, env: { ...process.env, ...cliEnv } });
  return stdout;
}
async function uptideJson(...args) {
  return JSON.parse(await uptide(...args, '--json'));
}

async function waitFor(what, check, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    const v = await check().catch((err) => {
      if (err.fatal) throw err;
      last = err;
      return undefined;
    });
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function main() {
  say(`Starting the server (data in ${join(dir, 'data')})`);
  const [httpPort, devicePort, secondaryPort] = [await freePort(), await freePort(), await freePort()];
  start('server', bin.server, ['--data-dir', join(dir, 'data'), '--http-port', String(httpPort), '--device-port', String(devicePort), '--log-level', 'warn']);
  const adminUrl = `http://127.0.0.1:${httpPort}`;
  await waitFor('the server', async () => (await fetch(`${adminUrl}/healthz`)).ok, 60_000);
  const token = await waitFor('the admin token', async () => readFileSync(join(dir, 'data/admin-token'), 'utf8').trim(), 10_000);
  cliEnv = { UPTIDE_SERVER: adminUrl, UPTIDE_TOKEN: token };
  step(`admin API ${adminUrl}, device gateway https://127.0.0.1:${devicePort}`);

  say('Publishing an image for two hardware types (the Primary board and its Secondary ECU)');
  writeFileSync(join(dir, 'firmware.bin'), randomBytes(256 * 1024));
  process.stdout.write(
    await uptide('images', 'upload', 'firmware.bin', '--name', 'firmware', '--version', '1.0', '--hardware-id', 'demo-board', '--hardware-id', 'demo-ecu'),
  );

  say('Provisioning a device: key made here, certificate from the server, pinned roots, uptide-device.toml');
  process.stdout.write(await uptide('devices', 'provision', 'demo-car', '--out', 'demo-car', '--hardware-id', 'demo-board'));

  say('Adding a Secondary ECU to it (full verification, over the aktualizr IP-Secondary protocol)');
  const sec = join(dir, 'demo-car-ecu');
  mkdirSync(sec, { recursive: true });
  writeFileSync(
    join(sec, 'uptide-secondary.toml'),
    [
      '[secondary]',
      'storage = "storage"',
      'hardware_id = "demo-ecu"',
      'verification = "full"',
      '',
      '[network]',
      'host = "127.0.0.1"',
      `port = ${secondaryPort}`,
      '',
      '[trust]',
      `director_root = "${join(dir, 'demo-car/director/root.json')}"`,
      `image_root = "${join(dir, 'demo-car/repo/root.json')}"`,
      '',
      '[installer]',
      'type = "file"',
      'path = "installed/image.bin"',
      '',
    ].join('\n'),
  );
  start('secondary', bin.secondary, ['--config', join(sec, 'uptide-secondary.toml')]);
  await waitFor('the Secondary to listen', () => canConnect(secondaryPort), 30_000);
  const deviceConfig = join(dir, 'demo-car/uptide-device.toml');
  const toml = readFileSync(deviceConfig, 'utf8').replace(/poll_interval = \d+/, 'poll_interval = 2');
  writeFileSync(deviceConfig, `${toml}\n[[secondaries]]\naddress = "127.0.0.1:${secondaryPort}"\nverification = "full"\n`);
  step('demo-car-ecu listens on 127.0.0.1:' + secondaryPort + '; the Primary lists it in [[secondaries]]');

  say('Starting the device (uptide-device, checking in every 2 s)');
  start('device', bin.device, ['--config', deviceConfig]);

  say(`Starting a simulated fleet: ${SIM_DEVICES} devices, each a real Primary with a Secondary`);
  start('sim', bin.sim, [
    '--devices',
    String(SIM_DEVICES),
    '--secondaries',
    '1',
    '--interval',
    '2',
    '--prefix',
    'sim',
    '--group',
    'demo-fleet',
    '--hardware-id',
    'demo-board',
    '--secondary-hardware-id',
    'demo-ecu',
    '--data-dir',
    join(dir, 'sim'),
    '--status',
    '0',
    '--server',
    adminUrl,
    '--token',
    token,
  ]);

  const expected = SIM_DEVICES + 1;
  await waitFor('every device to register its ECUs', async () => {
    const list = await uptideJson('devices', 'list');
    const seen = (Array.isArray(list) ? list : list.values).filter((d) => d.lastSeen !== null);
    return seen.length >= expected;
  });
  // The device registers its Secondary once it has reached it; an update launched before would skip that ECU.
  await waitFor('demo-car to register its Secondary', async () => (await uptideJson('devices', 'show', 'demo-car')).ecus.length === 2);
  await uptide('groups', 'add', 'demo-fleet', 'demo-car');
  step(`${expected} devices online; demo-car joins the group demo-fleet`);

  say('Launching the update to the group');
  const launched = (await uptide('updates', 'launch', '--image', 'firmware@1.0', '--group', 'demo-fleet')).trim();
  process.stdout.write(launched + '\n');
  const id = /[0-9a-f]{8}-[0-9a-f-]{27}/.exec(launched)?.[0];
  if (!id) throw new Error('no update id in the launch output');

  say('Watching it (Primaries and Secondaries verify, download, install and report)');
  const final = await waitFor('the update to complete', async () => {
    const s = await uptideJson('updates', 'show', id);
    const counts = s.counts ?? {};
    step(`completed ${counts.completed ?? 0} / ${expected}, in flight ${counts.in_flight ?? 0}, failed ${counts.failed ?? 0}`);
    if ((counts.failed ?? 0) > 0) throw Object.assign(new Error('an installation failed'), { fatal: true });
    return (counts.completed ?? 0) === expected ? s : undefined;
  });
  process.stdout.write(await uptide('updates', 'show', id));
  const ecus = final.devices.reduce((n, d) => n + d.ecus.length, 0);
  say(`Done: ${expected} devices, ${ecus} ECUs updated and verified end to end.`);
}

async function stop() {
  for (const c of children) c.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (values.keep) process.stdout.write(`\nKept ${dir} (logs: *.log)\n`);
  else rmSync(dir, { recursive: true, force: true });
}

process.on('SIGINT', () => void stop().then(() => process.exit(130)));
main().then(
  async () => {
    await stop();
    process.exit(0);
  },
  async (err) => {
    process.stderr.write(`\ndemo failed: ${err.message}\n(logs in ${dir}; run with --keep to keep them)\n`);
    for (const name of ['server', 'device', 'secondary', 'sim']) {
      try {
        const log = readFileSync(join(dir, `${name}.log`), 'utf8')
          .trim()
          .split('\n')
          .slice(-15)
          .join('\n');
        process.stderr.write(`\n--- last lines of ${name}.log ---\n${log}\n`);
      } catch {
        /* no log */
      }
    }
    values.keep = true;
    await stop();
    process.exit(1);
  },
);
