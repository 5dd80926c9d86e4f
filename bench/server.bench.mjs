// bench/server: device check-ins and manifests per second through the real
// mTLS gateway, each beside a limit measured in the same run:
//   - check-ins (unchanged Director targets, with and without ETag) against a
//     bare Fastify HTTPS route serving the same bytes (goal: at least 50%);
//   - manifests (a Primary plus two Secondaries, Ed25519) against raw
//     crypto.verify of the same number of signatures: four per manifest, the
//     vehicle manifest's and each ECU report's (goal: at least 60%);
// on SQLite and on PostgreSQL, with zero errors.
//
// Usage: npm run build && node bench/server.bench.mjs [--seconds 5] [--db sqlite,postgres] [--devices 8]
//        [--manifests-per-device 400]
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync, verify as cryptoVerify, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { request } from 'node:https';
import Fastify from 'fastify';
import { loadConfig, startServer } from '../packages/server/dist/index.js';
import { dropPostgresSchema } from '../packages/server/dist/storage/database.js';
import { LocalSigner, UNKNOWN_INSTALLED_IMAGE, buildEcuVersionReport, buildVehicleManifest, canonicalize } from '../packages/core/dist/index.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    db: { type: 'string', default: 'sqlite,postgres' },
    devices: { type: 'string', default: '8' },
    'manifests-per-device': { type: 'string', default: '400' },
  },
});
const SECONDS = Number(values.seconds);
const DEVICES = Number(values.devices);
const PG_URL = process.env.UPTIDE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const LOADER = new URL('./lib/loader.mjs', import.meta.url).pathname;

function load(job) {
  return new Promise((resolve, reject) => {
    const child = fork(LOADER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', resolve);
    child.once('error', reject);
    child.send(job);
  });
}

async function api(server, token, method, path, body) {
  const res = await fetch(server.adminUrl + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

function deviceRequest(base, creds, method, path, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(base + path);
    const req = request(
      u,
      { method, cert: creds.cert, key: creds.key, ca: creds.ca, agent: false, headers: body ? { 'content-type': 'application/json' } : {} },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks), headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function ecu(serial, hw) {
  const { privateKey } = generateKeyPairSync('ed25519');
  const signer = new LocalSigner(privateKey, 'uptane');
  return { serial, hw, signer, counter: 0 };
}

async function manifestBody(primary, ecus) {
  const reports = new Map();
  for (const e of ecus) {
    e.counter++;
    reports.set(
      e.serial,
      await buildEcuVersionReport(
        { ecuSerial: e.serial, installedImage: UNKNOWN_INSTALLED_IMAGE, latestVerifiedTime: new Date(), counter: e.counter },
        e.signer,
      ),
    );
  }
  const doc = await buildVehicleManifest({ primaryEcuSerial: primary.serial, reports }, primary.signer);
  return Buffer.from(canonicalize(doc, 'uptane')).toString('utf8');
}

async function benchDb(db) {
  const dataDir = mkdtempSync(join(tmpdir(), 'uptide-bench-'));
  const schema = db === 'postgres' ? `bench_${randomUUID().replace(/-/g, '').slice(0, 16)}` : undefined;
  const config = {
    ...loadConfig({
      env: {},
      flags: {
        dataDir,
        httpPort: 0,
        devicePort: 0,
        logLevel: 'silent',
        keyPassphrase: 'bench',
        jobs: false,
        ...(db === 'postgres' ? { databaseUrl: PG_URL, databaseSchema: schema } : {}),
      },
    }),
    scryptN: 1024,
  };
  const server = await startServer(config);
  const token = server.firstToken;
  const gw = new URL(server.gatewayUrl);
  const devices = [];
  for (let i = 0; i < DEVICES; i++) {
    const id = `bench-${i}`;
    const c = await api(server, token, 'POST', `/api/v1/devices/${id}/credentials`, {});
    const creds = { cert: c.certificate, key: c.privateKey, ca: c.serverCa };
    const ecus = [ecu(`${id}-p`, 'hw-a'), ecu(`${id}-s1`, 'hw-b'), ecu(`${id}-s2`, 'hw-c')];
    const reg = {
      primary_ecu_serial: ecus[0].serial,
      ecus: ecus.map((e) => ({
        ecu_serial: e.serial,
        hardware_identifier: e.hw,
        clientKey: { keytype: 'ED25519', keyval: { public: e.signer.publicKey.public } },
      })),
    };
    const r = await deviceRequest(server.gatewayUrl, creds, 'POST', '/director/ecus', JSON.stringify(reg));
    if (r.status !== 201) throw new Error(`register: ${r.status} ${r.body}`);
    devices.push({ id, creds, ecus });
  }
  // Each device's own targets (they differ: each names its vehicle) and ETag.
  for (const d of devices) d.etag = (await deviceRequest(server.gatewayUrl, d.creds, 'GET', '/director/targets.json')).headers.etag;
  const targetsBytes = (await deviceRequest(server.gatewayUrl, devices[0].creds, 'GET', '/director/targets.json')).body;

  // The limit: a bare Fastify HTTPS route serving the same bytes, same TLS settings, same client.
  const tls = server.services.provisioning.gatewayTls();
  const bare = Fastify({ https: { cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: false } });
  bare.get('/director/targets.json', async (_req, reply) => reply.header('content-type', 'application/json').send(targetsBytes));
  await bare.listen({ host: '127.0.0.1', port: 0 });
  const barePort = bare.server.address().port;

  const workers = devices.map((d) => ({ cert: d.creds.cert, key: d.creds.key }));
  const common = {
    host: '127.0.0.1',
    method: 'GET',
    path: '/director/targets.json',
    seconds: SECONDS,
    ca: tls.ca.concat([server.services.provisioning.serverCaPem]),
    workers,
  };
  const bareRes = await load({ ...common, port: barePort, okStatuses: [200] });
  const checkin = await load({ ...common, port: Number(gw.port), okStatuses: [200] });
  const checkin304 = await load({
    ...common,
    workers: devices.map((d) => ({ cert: d.creds.cert, key: d.creds.key, headers: { 'if-none-match': d.etag } })),
    port: Number(gw.port),
    okStatuses: [304],
  });
  await bare.close();

  // Manifests: pre-signed bodies with growing counters, sent in order per device.
  const perDevice = Number(values['manifests-per-device']);
  const bodies = [];
  for (const d of devices) {
    const list = [];
    for (let i = 0; i < perDevice; i++) list.push(await manifestBody(d.ecus[0], d.ecus));
    bodies.push(list);
  }
  const man = await load({
    host: '127.0.0.1',
    port: Number(gw.port),
    method: 'PUT',
    path: '/director/manifest',
    seconds: SECONDS * 4,
    ca: common.ca,
    workers: devices.map((d, i) => ({ cert: d.creds.cert, key: d.creds.key, bodies: bodies[i] })),
    okStatuses: [200],
  });

  // The limit: crypto.verify of the same signatures (four per manifest: the Primary's outer one and three ECU reports) with cached keys.
  const sigs = [];
  for (const d of devices.slice(0, 2))
    for (const e of d.ecus) {
      const data = Buffer.from('x'.repeat(600));
      sigs.push({ key: e.signer.publicKey.keyObject(), data, sig: await e.signer.sign(data) });
    }
  const n = 30_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const s = sigs[i % sigs.length];
    if (!cryptoVerify(null, s.data, s.key, s.sig)) throw new Error('bad signature');
  }
  const rawVerifyPerSec = n / (Number(process.hrtime.bigint() - t0) / 1e9);
  const rawManifestsPerSec = rawVerifyPerSec / 4;

  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
  if (schema) await dropPostgresSchema(PG_URL, schema);

  const rate = (r) => r.requests / r.seconds;
  return {
    db,
    bareRps: rate(bareRes),
    checkinRps: rate(checkin),
    checkin304Rps: rate(checkin304),
    manifestRps: rate(man),
    rawManifestsPerSec,
    errors: bareRes.errors + checkin.errors + checkin304.errors + man.errors,
    statuses: { checkin: checkin.statuses, checkin304: checkin304.statuses, manifest: man.statuses },
  };
}

const results = [];
for (const db of values.db.split(',')) results.push(await benchDb(db));
const pct = (a, b) => `${((a / b) * 100).toFixed(0)}%`;
console.log(`\nbench/server (${DEVICES} devices, ${SECONDS}s per check-in run; node ${process.version})`);
for (const r of results) {
  console.log(`\n[${r.db}]`);
  console.log(`  limit: bare Fastify HTTPS route, same bytes     ${r.bareRps.toFixed(0)} req/s`);
  console.log(
    `  check-in, Director targets, 200                ${r.checkinRps.toFixed(0)} req/s  = ${pct(r.checkinRps, r.bareRps)} of the limit (goal >= 50%)`,
  );
  console.log(
    `  check-in, Director targets, If-None-Match 304   ${r.checkin304Rps.toFixed(0)} req/s  = ${pct(r.checkin304Rps, r.bareRps)} of the limit (goal >= 50%)`,
  );
  console.log(`  limit: crypto.verify of 4 Ed25519 signatures    ${r.rawManifestsPerSec.toFixed(0)} manifests/s`);
  console.log(
    `  manifests (Primary + 2 Secondaries)            ${r.manifestRps.toFixed(0)} manifests/s  = ${pct(r.manifestRps, r.rawManifestsPerSec)} of the limit (goal >= 60%)`,
  );
  console.log(`  errors: ${r.errors}   statuses: ${JSON.stringify(r.statuses)}`);
}
if (results.some((r) => r.errors > 0)) process.exitCode = 1;
