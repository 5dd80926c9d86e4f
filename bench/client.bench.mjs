// bench/client: the device client, each figure beside a limit measured in the same run.
//   (a) A fresh refresh of an Image repository (root, timestamp, snapshot, targets of N entries)
//       through the client's own code path: HttpClient and the Primary's HttpRepositorySource over
//       HTTP on 127.0.0.1 from a small static server, core's TrustedRepository and
//       refreshRepository (the byte limit raised to fit). Limit: JSON.parse of the same four
//       files, SHA-256 of the two that are checked by hash, one raw signature check per file.
//       Beside it, the same repository in TUF form refreshed by tuf-js and by our TUF client.
//   (b) Update cycles of a real Primary (its own process) against a real uptide-server (its own
//       process): one with nothing new, and ones that install a small and a 100 MB image with the
//       file installer. Wall time and peak resident memory; limit: a plain HTTPS download of the
//       same bytes to a file, with the same client certificate, in the same run.
//   (c) uptide-sim with 1,000 devices against a real server: check-ins per second once every
//       device is ready, and the CPU each process used meanwhile (what limits it).
//
// Usage: npm run build && node bench/client.bench.mjs [--sections a,b,c] [--targets 10000,100000]
//        [--tuf-targets 1000,10000] [--image-mb 100] [--devices 1000] [--secondaries 1]
//        [--interval 1] [--seconds 30] [--concurrency 256]
import { fork, spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, verify as cryptoVerify } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { Updater } from 'tuf-js';
import {
  LocalSigner,
  Metadata,
  MetaFile,
  RoleDefinition,
  Root,
  Snapshot,
  TargetFile,
  Targets,
  Timestamp,
  TrustedRepository,
  refreshRepository,
} from '../packages/core/dist/index.js';
import { HttpClient, StateStore, TufUpdater } from '../packages/client/dist/index.js';
import { HttpRepositorySource } from '../packages/client/dist/primary/source.js';

const { values } = parseArgs({
  options: {
    sections: { type: 'string', default: 'a,b,c' },
    targets: { type: 'string', default: '10000,100000' },
    'tuf-targets': { type: 'string', default: '1000,10000' },
    'image-mb': { type: 'string', default: '100' },
    devices: { type: 'string', default: '1000' },
    secondaries: { type: 'string', default: '1' },
    interval: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '60' },
    concurrency: { type: 'string', default: '256' },
  },
});
const SECTIONS = new Set(values.sections.split(','));
const list = (s) => s.split(',').filter(Boolean).map(Number);
const ROOT_DIR = new URL('..', import.meta.url).pathname;
const SERVER_BIN = join(ROOT_DIR, 'packages/server/dist/bin/uptide-server.js');
const SIM_BIN = join(ROOT_DIR, 'packages/client/dist/bin/uptide-sim.js');
const WORK = mkdtempSync(join(tmpdir(), 'uptide-bench-client-'));
process.on('exit', () => rmSync(WORK, { recursive: true, force: true }));

const fmt = (n, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ms = (t) => `${fmt(t, t < 10 ? 2 : t < 100 ? 1 : 0)} ms`;
const mib = (b) => `${fmt(b, 1)} MiB`;
const rows = [];
function row(section, what, value, limit, ratio, goal, met) {
  rows.push({ section, what, value, limit, ratio, goal, met });
  const verdict = met === undefined ? '' : met ? '  ok' : '  MISSED';
  console.log(
    `${section.padEnd(2)} ${what.padEnd(64)} ${value.padStart(14)}  limit ${limit.padStart(14)}  ${ratio.padStart(7)}${goal ? `  (goal ${goal})` : ''}${verdict}`,
  );
}
const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (t) => new Promise((r) => setTimeout(r, t));

console.log(`bench/client — node ${process.version}, ${process.platform}/${process.arch}, sections ${[...SECTIONS].join(',')}\n`);

// --- (a) a fresh refresh of an Image repository --------------------------------------------------

const EXPIRES = new Date(Date.now() + 365 * 86400_000).toISOString().replace(/\.\d+Z$/, 'Z');

function sampleTargets(n) {
  const targets = new Map();
  for (let i = 0; i < n; i++) {
    const name = `app-${String(i).padStart(6, '0')}_1.${i % 7}.${i % 13}.bin`;
    const bytes = Buffer.from(name);
    targets.set(
      name,
      new TargetFile(
        name,
        1000 + i,
        { sha256: createHash('sha256').update(bytes).digest('hex') },
        {
          name: name.split('_')[0],
          version: `1.${i % 7}.${i % 13}`,
          hardwareIds: [`hw-${i % 16}`],
          targetFormat: 'BINARY',
          uri: null,
          createdAt: '2026-01-01T00:00:00Z',
          updatedAt: '2026-01-01T00:00:00Z',
        },
      ),
    );
  }
  return targets;
}

/** A signed repository (root 1, timestamp, snapshot, targets of n entries) in one dialect, as served files. */
async function buildRepository(n, dialect) {
  const signers = {};
  for (const role of ['root', 'timestamp', 'snapshot', 'targets']) signers[role] = new LocalSigner(generateKeyPairSync('ed25519').privateKey, dialect);
  const keys = new Map();
  const roles = new Map();
  for (const [role, s] of Object.entries(signers)) {
    keys.set(s.publicKey.keyId(dialect), s.publicKey);
    roles.set(role, new RoleDefinition([s.publicKey.keyId(dialect)], 1));
  }
  const consistentSnapshot = dialect === 'tuf' ? false : undefined;
  const root = (await Metadata.create(new Root({ version: 1, expires: EXPIRES, keys, roles, consistentSnapshot }), dialect, [signers.root])).toBytes();
  const targets = (await Metadata.create(new Targets({ version: 1, expires: EXPIRES, targets: sampleTargets(n) }), dialect, [signers.targets])).toBytes();
  const snapshot = (
    await Metadata.create(new Snapshot({ version: 1, expires: EXPIRES, meta: new Map([['targets.json', MetaFile.describe(1, targets)]]) }), dialect, [
      signers.snapshot,
    ])
  ).toBytes();
  const timestamp = (
    await Metadata.create(new Timestamp({ version: 1, expires: EXPIRES, snapshot: MetaFile.describe(1, snapshot) }), dialect, [signers.timestamp])
  ).toBytes();
  const files = { root: Buffer.from(root), timestamp: Buffer.from(timestamp), snapshot: Buffer.from(snapshot), targets: Buffer.from(targets) };
  const publicKeys = Object.fromEntries(Object.entries(signers).map(([role, s]) => [role, s.publicKey.keyObject()]));
  return { files, publicKeys };
}

/** The limit: JSON.parse of each file, SHA-256 of snapshot and targets, one raw signature check per file. */
function unavoidable(repo) {
  const { files, publicKeys } = repo;
  createHash('sha256').update(files.snapshot).digest();
  createHash('sha256').update(files.targets).digest();
  for (const role of ['root', 'timestamp', 'snapshot', 'targets']) {
    const doc = JSON.parse(files[role].toString('utf8'));
    // The uptane dialect signs the jsoncpp canonical form, which JSON.stringify need not match byte for byte: the check costs the same.
    const sig = doc.signatures[0].sig;
    cryptoVerify(null, Buffer.from(JSON.stringify(doc.signed)), publicKeys[role], Buffer.from(sig, sig.length === 128 ? 'hex' : 'base64'));
  }
}

/** A static file server on 127.0.0.1: path → bytes, 404 for the rest. */
async function staticServer(files) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const body = files.get(path);
    if (!body) {
      res.writeHead(404, { 'content-length': 0 });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

async function refreshOurs(base, repo, n) {
  const http = new HttpClient({ allowInsecureHttp: true, retries: 0 });
  try {
    const trusted = new TrustedRepository(
      { root: repo.files.root },
      { dialect: 'uptane', repository: 'image', now: new Date(), limits: { imageTargetsBytes: repo.files.targets.length + 1024 } },
    );
    const t = await refreshRepository(trusted, new HttpRepositorySource(http, base));
    if (t.signed.targets.size !== n) throw new Error(`expected ${n} targets, got ${t.signed.targets.size}`);
    return trusted;
  } finally {
    http.close();
  }
}

async function refreshTufJs(base, repo, n) {
  const dir = mkdtempSync(join(WORK, 'tufjs-'));
  writeFileSync(join(dir, 'root.json'), repo.files.root);
  const updater = new Updater({
    metadataDir: dir,
    metadataBaseUrl: base,
    targetDir: dir,
    targetBaseUrl: `${base}/targets`,
    config: { targetsMaxLength: repo.files.targets.length + 1024, snapshotMaxLength: repo.files.snapshot.length + 1024, fetchRetry: 0 },
  });
  await updater.refresh();
  const info = await updater.getTargetInfo(`app-${String(n - 1).padStart(6, '0')}_1.${(n - 1) % 7}.${(n - 1) % 13}.bin`);
  if (!info) throw new Error('tuf-js did not find the last target');
  rmSync(dir, { recursive: true, force: true });
}

async function refreshOurTuf(base, repo, n) {
  const dir = mkdtempSync(join(WORK, 'ourtuf-'));
  writeFileSync(join(dir, 'root.json'), repo.files.root);
  const updater = new TufUpdater({ metadataDir: dir, metadataUrl: base, limits: { imageTargetsBytes: repo.files.targets.length + 1024 } });
  const t = await updater.refresh();
  if (t.signed.targets.size !== n) throw new Error(`expected ${n} targets`);
  rmSync(dir, { recursive: true, force: true });
}

/** Best wall time (ms) of each function over `runs` alternating rounds, after one warm-up each. */
async function bestOf(fns, runs) {
  const best = fns.map(() => Infinity);
  for (const fn of fns) await fn();
  for (let r = 0; r < runs; r++) {
    for (let k = 0; k < fns.length; k++) {
      globalThis.gc?.();
      const t0 = now();
      await fns[k]();
      best[k] = Math.min(best[k], now() - t0);
    }
  }
  return best;
}

async function sectionA() {
  const files = new Map();
  const repos = {};
  const sizes = [...new Set([...list(values.targets), ...list(values['tuf-targets'])])].sort((a, b) => a - b);
  for (const n of sizes) {
    for (const dialect of ['uptane', 'tuf']) {
      const repo = await buildRepository(n, dialect);
      repos[`${dialect}-${n}`] = repo;
      for (const [role, bytes] of Object.entries(repo.files)) {
        files.set(`/${dialect}-${n}/${role}.json`, bytes);
        if (role === 'root') files.set(`/${dialect}-${n}/1.root.json`, bytes);
      }
    }
  }
  const { server, url } = await staticServer(files);
  try {
    for (const n of list(values.targets)) {
      const repo = repos[`uptane-${n}`];
      const base = `${url}/uptane-${n}`;
      const goalMs = n <= 10_000 ? 500 : 3000;
      const runs = n <= 10_000 ? 7 : 3;
      const [oursMs, limitMs] = await bestOf([() => refreshOurs(base, repo, n), () => unavoidable(repo)], runs);
      const size = `${fmt(repo.files.targets.length / 2 ** 20, 1)} MiB`;
      row(
        'a',
        `fresh refresh, ${fmt(n)} targets (targets.json ${size}), uptane`,
        ms(oursMs),
        ms(limitMs),
        `${fmt(oursMs / limitMs, 2)}×`,
        `< ${goalMs} ms, ≤ 3×`,
        oursMs < goalMs && oursMs <= 3 * limitMs,
      );
      // What the Primary does next with a verified refresh: store the files (atomic, fsync).
      const trusted = await refreshOurs(base, repo, n);
      const [persistMs] = await bestOf(
        [
          async () => {
            const store = await StateStore.open(mkdtempSync(join(WORK, 'store-')));
            await store.writeMetadata('image', trusted.state());
            await store.close();
          },
        ],
        3,
      );
      row('a', `  then storing the verified files (StateStore.writeMetadata)`, ms(persistMs), '', '', '');
    }
    for (const n of list(values['tuf-targets'])) {
      const repo = repos[`tuf-${n}`];
      const base = `${url}/tuf-${n}`;
      // tuf-js grows quadratically with the number of targets: few runs, and not at 100,000.
      const runs = n <= 1000 ? 3 : 1;
      const [tufjsMs, oursMs, limitMs] = await bestOf([() => refreshTufJs(base, repo, n), () => refreshOurTuf(base, repo, n), () => unavoidable(repo)], runs);
      row('a', `tuf-js 5.0.1: fresh refresh, ${fmt(n)} targets, tuf form`, ms(tufjsMs), ms(limitMs), `${fmt(tufjsMs / limitMs, 1)}×`, '');
      row('a', `  ours (uptide-tuf's TufUpdater), same repository`, ms(oursMs), ms(limitMs), `${fmt(oursMs / limitMs, 2)}×`, '');
    }
  } finally {
    server.close();
  }
}

// --- servers and devices for (b) and (c) ---------------------------------------------------------

/** uptide-server in its own process on ports the system picks; resolves with its URLs and token. */
async function startServer() {
  const dataDir = mkdtempSync(join(WORK, 'server-'));
  const child = spawn(process.execPath, [SERVER_BIN, '--data-dir', dataDir, '--http-port', '0', '--device-port', '0', '--log-level', 'warn'], {
    env: { ...process.env, UPTIDE_KEY_PASSPHRASE: 'bench' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const deadline = Date.now() + 60_000;
  while (!/device gateway\s+(https?:\/\/\S+)/.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`uptide-server did not start:\n${out}`);
    await sleep(100);
  }
  const admin = new URL(/admin API\s+(https?:\/\/\S+)/.exec(out)[1]).origin;
  const gateway = /device gateway\s+(https?:\/\/\S+)/.exec(out)[1];
  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  return {
    child,
    admin,
    gateway,
    token,
    async api(method, path, body, headers = {}) {
      const res = await fetch(admin + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body && !(body instanceof Uint8Array) ? { 'content-type': 'application/json' } : {}), ...headers },
        body: body === undefined ? undefined : body instanceof Uint8Array ? body : JSON.stringify(body),
      });
      const text = await res.text();
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
      return text ? JSON.parse(text) : undefined;
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    },
  };
}

/** CPU seconds (user + system) of a process, or of one of its threads. */
function cpuSeconds(pid, tid) {
  const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

// --- (b) update cycles -------------------------------------------------------------------------

function ask(child, msg) {
  return new Promise((resolve, reject) => {
    const onError = (err) => reject(err);
    child.once('error', onError);
    child.once('message', (m) => {
      child.off('error', onError);
      resolve(m);
    });
    child.send(msg);
  });
}

async function sectionB() {
  const srv = await startServer();
  try {
    const info = await srv.api('GET', '/api/v1/provisioning/info');
    const dir = mkdtempSync(join(WORK, 'device-'));
    writeFileSync(join(dir, 'ca.pem'), info.serverCa);
    writeFileSync(join(dir, 'director-root.json'), JSON.stringify(info.directorRoot));
    writeFileSync(join(dir, 'image-root.json'), JSON.stringify(info.imageRoot));
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const issued = await srv.api('POST', '/api/v1/devices/bench-car/credentials', { publicKey: publicKey.export({ format: 'pem', type: 'spki' }) });
    const key = privateKey.export({ format: 'pem', type: 'pkcs8' });
    writeFileSync(join(dir, 'client.pem'), issued.certificate);
    writeFileSync(join(dir, 'pkey.pem'), key);
    writeFileSync(
      join(dir, 'uptide-device.toml'),
      [
        '[device]',
        'id = "bench-car"',
        'storage = "storage"',
        '[server]',
        `gateway = "${srv.gateway}"`,
        '[tls]',
        'ca = "ca.pem"',
        'cert = "client.pem"',
        'key = "pkey.pem"',
        '[trust]',
        'director_root = "director-root.json"',
        'image_root = "image-root.json"',
        '[primary]',
        'hardware_id = "bench-hw"',
        '[installer]',
        'type = "file"',
        'path = "installed/image.bin"',
        '',
      ].join('\n'),
    );
    const imageMb = Number(values['image-mb']);
    const images = { 'small.bin': 1, 'big-a.bin': imageMb, 'big-b.bin': imageMb, 'huge.bin': 3 * imageMb };
    for (const [name, mb] of Object.entries(images)) {
      const bytes = Buffer.alloc(mb * 2 ** 20);
      for (let i = 0; i < bytes.length; i += 4096) bytes.writeUInt32LE((i * 2654435761 + name.length) >>> 0, i);
      await srv.api('PUT', `/api/v1/user_repo/targets/${name}?name=${name}&version=1&hardwareIds=bench-hw`, bytes, {
        'content-type': 'application/octet-stream',
      });
    }

    const child = fork(join(ROOT_DIR, 'bench/client-cycle.mjs'), [], {
      cwd: dir,
      execArgv: ['--expose-gc', '--max-semi-space-size=2'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    try {
      let r = await ask(child, { cmd: 'open', config: join(dir, 'uptide-device.toml') });
      if (!r.ok) throw new Error(JSON.stringify(r));
      r = await ask(child, { cmd: 'cycle' }); // registration, device data, first metadata
      if (!r.ok) throw new Error(`first cycle failed: ${JSON.stringify(r.error)}`);

      // Nothing new: the cycle a device runs every poll interval.
      const idle = [];
      for (let i = 0; i < 30; i++) idle.push(await ask(child, { cmd: 'cycle' }));
      if (idle.some((c) => !c.ok)) throw new Error(`an idle cycle failed: ${JSON.stringify(idle.find((c) => !c.ok).error)}`);
      const idleMs = idle.map((c) => c.ms).sort((a, b) => a - b);
      const idlePeak = Math.max(...idle.map((c) => c.hwm ?? c.sampled));

      // The limit of an install: a plain HTTPS download of the same bytes to a file, same certificate.
      const agent = new Agent({ keepAlive: true, cert: issued.certificate, key, ca: info.serverCa });
      const plainDownload = async (name) => {
        const file = join(dir, 'plain.bin');
        const t0 = now();
        await new Promise((resolve, reject) => {
          const req = httpsRequest(`${srv.gateway}/repo/targets/${name}`, { agent }, (res) => {
            if (res.statusCode !== 200) reject(new Error(`plain download: HTTP ${res.statusCode}`));
            pipeline(res, createWriteStream(file)).then(resolve, reject);
          });
          req.on('error', reject);
          req.end();
        });
        const t = now() - t0;
        if (statSync(file).size !== images[name] * 2 ** 20) throw new Error('plain download: wrong size');
        rmSync(file);
        return t;
      };

      const install = async (name) => {
        await srv.api('POST', '/api/v1/updates', { image: name, devices: ['bench-car'] });
        const c = await ask(child, { cmd: 'cycle' });
        if (!c.ok || c.installed[0] !== name) throw new Error(`install of ${name} failed: ${JSON.stringify(c.error)}`);
        return c;
      };
      // The memory limit: a bare Node process that downloads the same bytes to a file (no client code loaded).
      const plainProcess = async (name) => {
        const script = `
          import { Agent, request } from 'node:https'; import { createWriteStream, readFileSync, writeFileSync } from 'node:fs'; import { pipeline } from 'node:stream/promises';
          const [url, file, cert, key, ca] = process.argv.slice(1);
          try { writeFileSync('/proc/self/clear_refs', '5'); } catch {}
          const agent = new Agent({ cert: readFileSync(cert), key: readFileSync(key), ca: readFileSync(ca) });
          await new Promise((resolve, reject) => request(url, { agent }, (res) => pipeline(res, createWriteStream(file)).then(resolve, reject)).on('error', reject).end());
          console.log(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);`;
        const out = await new Promise((resolve, reject) => {
          const c = spawn(
            process.execPath,
            [
              '--input-type=module',
              '-e',
              script,
              `${srv.gateway}/repo/targets/${name}`,
              join(dir, 'plain.bin'),
              join(dir, 'client.pem'),
              join(dir, 'pkey.pem'),
              join(dir, 'ca.pem'),
            ],
            {
              stdio: ['ignore', 'pipe', 'inherit'],
            },
          );
          let o = '';
          c.stdout.on('data', (d) => (o += d));
          c.on('exit', (code) => (code === 0 ? resolve(o) : reject(new Error(`plain download process exited ${code}`))));
        });
        rmSync(join(dir, 'plain.bin'), { force: true });
        return Number(out.trim()) / 1024;
      };
      const small = install('small.bin');
      const smallResult = await small;
      const big = [];
      const plain = [];
      for (const name of ['big-a.bin', 'big-b.bin', 'big-a.bin']) {
        plain.push(await plainDownload(name));
        big.push(await install(name));
      }
      const plainPeak = await plainProcess('big-a.bin');
      const huge = await install('huge.bin');
      const plainHugePeak = await plainProcess('huge.bin');
      const plainMs = Math.min(...plain);
      const bigMs = Math.min(...big.map((c) => c.ms));
      const peak = (c) => c.hwm ?? c.sampled;
      const bigPeak = Math.max(...big.map(peak));
      const smallPeak = peak(smallResult);
      agent.destroy();

      row('b', `cycle with nothing new (median of ${idle.length})`, ms(idleMs[Math.floor(idleMs.length / 2)]), '', '', '');
      row('b', `  its peak memory (RSS)`, mib(idlePeak), '', '', '< 80 MiB', idlePeak < 80);
      row(
        'b',
        `cycle installing a ${imageMb} MiB image (best of ${big.length})`,
        ms(bigMs),
        ms(plainMs),
        `${fmt(bigMs / plainMs, 2)}×`,
        '≤ 2× plain download',
        bigMs <= 2 * plainMs,
      );
      row('b', `  its peak memory (RSS, kernel peak)`, mib(bigPeak), mib(plainPeak), `+${mib(bigPeak - plainPeak)}`, '< 80 MiB', bigPeak < 80);
      row('b', `cycle installing a 1 MiB image: peak memory`, mib(smallPeak), '', '', '');
      row(
        'b',
        `cycle installing a ${3 * imageMb} MiB image: time, peak memory`,
        `${ms(huge.ms)}, ${mib(peak(huge))}`,
        mib(plainHugePeak),
        `+${mib(peak(huge) - bigPeak)} vs ${imageMb} MiB`,
        'flat in image size',
        peak(huge) - bigPeak < 8,
      );
      console.log(
        `\n(b) limit: plain HTTPS GET of the same ${imageMb} MiB with the same client certificate, piped to a file (best of ${plain.length}: ${plain.map((t) => fmt(t)).join(', ')} ms);` +
          ` installs: ${big.map((c) => fmt(c.ms)).join(', ')} ms. Memory limit column: the kernel peak of a bare Node process downloading the same bytes to a file.` +
          ` Peak heap/external/arrayBuffers during the ${imageMb} MiB install: ${['heapUsed', 'external', 'arrayBuffers'].map((k) => fmt(Math.max(...big.map((c) => c.parts?.[k] ?? 0)), 1)).join(' / ')} MiB. Peak memory is the kernel's VmHWM,` +
          ` reset before each cycle${smallResult.hwm === undefined ? ' (not available here: sampled every 2 ms instead)' : ''}.`,
      );
    } finally {
      await ask(child, { cmd: 'close' }).catch(() => {});
    }
  } finally {
    await srv.stop();
  }
}

// --- (c) the simulator ---------------------------------------------------------------------------

async function sectionC() {
  const srv = await startServer();
  const devices = Number(values.devices);
  const interval = Number(values.interval);
  const seconds = Number(values.seconds);
  try {
    const dataDir = mkdtempSync(join(WORK, 'sim-'));
    const args = [
      ...['--devices', String(devices), '--secondaries', values.secondaries, '--interval', String(interval), '--duration', String(seconds)],
      ...['--concurrency', values.concurrency, '--data-dir', dataDir, '--status', '5', '--json'],
    ];
    const sim = spawn(process.execPath, [SIM_BIN, ...args], {
      env: { ...process.env, UPTIDE_SERVER: srv.admin, UPTIDE_TOKEN: srv.token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    sim.stdout.on('data', (d) => (out += d));
    let ready;
    let last;
    const sample = () => ({
      t: now(),
      sim: cpuSeconds(sim.pid),
      simMain: cpuSeconds(sim.pid, sim.pid),
      server: cpuSeconds(srv.child.pid),
      serverMain: cpuSeconds(srv.child.pid, srv.child.pid),
    });
    sim.stderr.on('data', (d) => {
      err += d;
      process.stderr.write(d);
      // The steady state: after every device's first check-in (registration, first TLS handshake, first metadata).
      if (!ready && /every device has checked in/.test(err)) ready = sample();
    });
    const exited = new Promise((r) => sim.once('exit', r));
    const sampler = setInterval(() => {
      try {
        if (ready) last = sample();
      } catch {
        // The simulator is exiting.
      }
    }, 500);
    const code = await exited;
    clearInterval(sampler);
    if (code !== 0) throw new Error(`uptide-sim exited ${code}:\n${err.slice(-2000)}`);
    if (!ready || !last) throw new Error('the fleet never reached a steady state (not every device checked in): lengthen --seconds');
    const s = JSON.parse(out);
    const span = (last.t - ready.t) / 1000;
    const pct = (k) => `${fmt((100 * (last[k] - ready[k])) / span)} %`;
    row(
      'c',
      `uptide-sim, ${fmt(devices)} devices × (1 + ${values.secondaries} IP Secondary), interval ${interval} s: check-ins/s`,
      `${fmt(s.steadyCheckInsPerSecond, 1)}/s`,
      `${fmt(s.offeredCheckInsPerSecond, 0)}/s`,
      `${fmt((100 * s.steadyCheckInsPerSecond) / s.offeredCheckInsPerSecond, 1)}%`,
      'offered',
    );
    row('c', `  check-in latency p50 / p95`, `${fmt(s.latencyMs.p50)} / ${fmt(s.latencyMs.p95)} ms`, '', '', '');
    row('c', `  CPU, simulator process: main thread / all threads (of one core)`, `${pct('simMain')} / ${pct('sim')}`, '', '', '');
    row('c', `  CPU, uptide-server process: main thread / all threads`, `${pct('serverMain')} / ${pct('server')}`, '', '', '');
    console.log(
      `\n(c) ${s.ready} devices ready after ${s.setupSeconds} s (provisioned through the admin API: a P-256 key and certificate each, ECU keys, state` +
        ` directories); steady state (every device had checked in once) for the last ${s.steadySeconds} s; ${s.checkIns} check-ins in all, ${s.failedCheckIns} failed, errors ${JSON.stringify(s.errors)}.` +
        ` CPU figures cover the steady part only; 100 % is one core, the machine has ${(await import('node:os')).cpus().length}.`,
    );
  } finally {
    await srv.stop();
  }
}

if (SECTIONS.has('a')) await sectionA();
if (SECTIONS.has('b')) await sectionB();
if (SECTIONS.has('c')) await sectionC();

console.log('\nMarkdown:\n');
console.log('| | measurement | ours | limit (same run) | ratio | goal | |');
console.log('|---|---|---:|---:|---:|---|---|');
for (const r of rows)
  console.log(
    `| ${r.section} | ${r.what.trim()} | ${r.value} | ${r.limit} | ${r.ratio} | ${r.goal ?? ''} | ${r.met === undefined ? '' : r.met ? 'met' : 'missed'} |`,
  );
