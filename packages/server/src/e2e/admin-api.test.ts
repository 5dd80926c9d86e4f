/**
 * The admin API over real HTTP, good and bad input, on SQLite and PostgreSQL:
 * images (raw, multipart, external, delete), offline targets with the role
 * checksum, root rotation, delegations, devices, groups, updates, tokens,
 * namespaces, provisioning, OpenAPI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import yauzl from 'yauzl';
import {
  Delegations,
  Delegation,
  LocalSigner,
  Metadata,
  RoleDefinition,
  TargetFile,
  Targets,
  expiresIn,
  parseRoot,
  parseTargets,
  privateKeyFromPem,
  type Root,
} from '@uptide/core';
import { startTestServer, type DbKind, type TestServer } from '../testing/harness.js';

function unzip(buf: Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const out = new Map<string, Buffer>();
      zip.readEntry();
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return reject(e);
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            out.set(entry.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(out));
    });
  });
}

for (const db of ['sqlite', 'postgres'] as DbKind[]) {
  describe(`admin API on ${db}`, () => {
    let ts: TestServer;
    beforeAll(async () => {
      ts = await startTestServer({ db });
    });
    afterAll(async () => {
      await ts?.close();
    });

    it('requires a valid token', async () => {
      const none = await fetch(`${ts.adminUrl}/api/v1/images`);
      expect(none.status).toBe(401);
      expect(((await none.json()) as { code: string }).code).toBe('unauthorized');
      const bad = await fetch(`${ts.adminUrl}/api/v1/images`, { headers: { authorization: 'Bearer upt_nope' } });
      expect(bad.status).toBe(401);
      expect((await ts.api('GET', '/api/v1/images')).status).toBe(200);
    });

    it('serves health, metrics and an OpenAPI document', async () => {
      expect((await fetch(`${ts.adminUrl}/healthz`)).status).toBe(200);
      const doc = (await (await fetch(`${ts.adminUrl}/docs/json`)).json()) as { paths: Record<string, unknown> };
      expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/v1/user_repo/targets/{*}', '/api/v1/updates', '/api/v1/devices']));
      expect(await (await fetch(`${ts.adminUrl}/metrics`)).text()).toContain('uptide_uptime_seconds');
    });

    it('uploads images raw and multipart, lists, downloads with Range, deletes', async () => {
      const bytes = randomBytes(5000);
      const raw = await ts.api<{ hashes: Record<string, string>; length: number }>(
        'PUT',
        '/api/v1/user_repo/targets/a.bin?name=a&version=1&hardwareIds=hw1&releaseCounter=3',
        new Uint8Array(bytes),
      );
      expect(raw.status).toBe(201);
      expect(raw.body.length).toBe(5000);
      expect(raw.body.hashes['sha512']).toBe(createHash('sha512').update(bytes).digest('hex'));
      const form = new FormData();
      form.append('file', new Blob([new Uint8Array(bytes)]), 'b.bin');
      const mp = await fetch(`${ts.adminUrl}/api/v1/user_repo/targets/dir/b.bin?name=b&version=2&hardwareIds=hw1,hw2`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${ts.token}` },
        body: form,
      });
      expect(mp.status).toBe(201);
      const list = await ts.api<{ total: number; values: Array<{ filename: string; hardwareIds: string[]; releaseCounter: number | null }> }>(
        'GET',
        '/api/v1/images?nameContains=bin',
      );
      expect(list.body.values.map((v) => v.filename).sort()).toEqual(['a.bin', 'dir/b.bin']);
      expect(list.body.values.find((v) => v.filename === 'a.bin')?.releaseCounter).toBe(3);
      expect((await ts.api('GET', '/api/v1/images/b@2')).status).toBe(200);
      const range = await fetch(`${ts.adminUrl}/api/v1/user_repo/targets/a.bin`, { headers: { authorization: `Bearer ${ts.token}`, range: 'bytes=0-9' } });
      expect(range.status).toBe(206);
      expect(Buffer.from(await range.arrayBuffer()).equals(bytes.subarray(0, 10))).toBe(true);
      const before = parseTargets((await ts.api<Buffer>('GET', '/api/v1/user_repo/targets.json')).raw, 'uptane');
      expect([...before.signed.targets.keys()].sort()).toEqual(['a.bin', 'dir/b.bin']);
      expect(before.signed.targets.get('a.bin')?.hardwareIds).toEqual(['hw1']);
      expect((await ts.api('DELETE', '/api/v1/user_repo/targets/dir/b.bin')).status).toBe(204);
      const after = parseTargets((await ts.api<Buffer>('GET', '/api/v1/user_repo/targets.json')).raw, 'uptane');
      expect(after.signed.version).toBe(before.signed.version + 1);
      expect([...after.signed.targets.keys()]).toEqual(['a.bin']);
    });

    it('refuses dot segments that a raw HTTP client sends', async () => {
      const { request } = await import('node:http');
      for (const path of ['/api/v1/user_repo/targets/a/./b?hardwareIds=hw1', '/api/v1/user_repo/targets/a/../b?hardwareIds=hw1']) {
        const status = await new Promise<number>((resolve, reject) => {
          const req = request(
            ts.adminUrl + '/',
            { method: 'PUT', path, headers: { authorization: `Bearer ${ts.token}`, 'content-type': 'application/octet-stream' } },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on('error', reject);
          req.end(Buffer.from([1]));
        });
        expect(status).toBe(400);
      }
    });

    it.each([
      ['a path traversal', '/api/v1/user_repo/targets/..%2Fetc%2Fpasswd?hardwareIds=hw1', 400],
      ['a space', '/api/v1/user_repo/targets/a%20b?hardwareIds=hw1', 400],
      ['no hardware id', '/api/v1/user_repo/targets/ok.bin', 400],
      ['a bad hardware id', '/api/v1/user_repo/targets/ok.bin?hardwareIds=%00', 400],
      ['a negative release counter', '/api/v1/user_repo/targets/ok.bin?hardwareIds=hw&releaseCounter=-1', 400],
      ['non-NFC name', `/api/v1/user_repo/targets/${encodeURIComponent('e\u0301.bin')}?hardwareIds=hw`, 400],
    ])('refuses an upload with %s', async (_n, path, status) => {
      const r = await ts.api<{ code: string }>('PUT', path, new Uint8Array([1, 2, 3]));
      expect(r.status).toBe(status);
      expect(typeof r.body.code).toBe('string');
    });

    it('refuses an empty image and keeps targets unchanged', async () => {
      const before = (await ts.api<Buffer>('GET', '/api/v1/user_repo/targets.json')).raw;
      const r = await ts.api<{ code: string }>('PUT', '/api/v1/user_repo/targets/empty.bin?hardwareIds=hw', new Uint8Array());
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('empty_image');
      expect((await ts.api<Buffer>('GET', '/api/v1/user_repo/targets.json')).raw.equals(before)).toBe(true);
    });

    it('adds external targets and refuses malformed ones', async () => {
      const ok = await ts.api('POST', '/api/v1/user_repo/targets/ext.bin', {
        uri: 'https://cdn.example.com/ext.bin',
        checksum: { method: 'sha256', hash: 'a'.repeat(64) },
        length: 10,
        hardwareIds: ['hw1'],
      });
      expect(ok.status).toBe(201);
      for (const body of [
        { uri: 'x', checksum: { method: 'sha256', hash: 'zz' }, length: 1, hardwareIds: ['hw'] },
        { uri: 'https://x', length: 1, hardwareIds: [] },
        'not json',
      ]) {
        const r = await ts.api('POST', '/api/v1/user_repo/targets/ext2.bin', body);
        expect(r.status).toBe(400);
      }
    });

    it('refuses malformed JSON with duplicate keys or deep nesting', async () => {
      const dup = await fetch(`${ts.adminUrl}/api/v1/device_groups`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ts.token}`, 'content-type': 'application/json' },
        body: '{"name":"a","name":"b"}',
      });
      expect(dup.status).toBe(400);
      expect(((await dup.json()) as { code: string }).code).toBe('malformed_json');
      const deep = await fetch(`${ts.adminUrl}/api/v1/device_groups`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ts.token}`, 'content-type': 'application/json' },
        body: '['.repeat(200) + ']'.repeat(200),
      });
      expect(deep.status).toBe(400);
    });

    it('takes the targets key offline and accepts offline-signed targets with the role checksum', async () => {
      // The CLI's ceremony, done by hand: root N+1 lists a new offline targets key and is signed by the old and new root keys.
      const rootMd = parseRoot((await ts.api<Buffer>('GET', '/api/v1/user_repo/root.json')).raw, 'uptane');
      const root: Root = rootMd.signed;
      const oldRootKeyId = root.role('root').keyids[0] as string;
      const exported = await ts.api<{ private: string }>('GET', `/api/v1/user_repo/root/private_keys/${oldRootKeyId}`);
      expect(exported.status).toBe(200);
      const oldRoot = new LocalSigner(privateKeyFromPem(exported.body.private), 'uptane');
      const newRoot = new LocalSigner(generateKeyPairSync('ed25519').privateKey, 'uptane');
      const offlineTargets = new LocalSigner(generateKeyPairSync('ed25519').privateKey, 'uptane');
      const keys = new Map(root.keys);
      keys.set(newRoot.publicKey.keyId('uptane'), newRoot.publicKey);
      keys.set(offlineTargets.publicKey.keyId('uptane'), offlineTargets.publicKey);
      const roles = new Map(root.roles);
      roles.set('root', new RoleDefinition([newRoot.publicKey.keyId('uptane')], 1));
      roles.set('targets', new RoleDefinition([offlineTargets.publicKey.keyId('uptane')], 1));
      const next = root.with({ version: root.version + 1, expires: expiresIn(new Date(), 3600 * 24 * 30), keys, roles });
      // Signed only by the new keys: refused.
      const onlyNew = await Metadata.create(next, 'uptane', [newRoot]);
      const refused = await ts.api<{ code: string }>('POST', '/api/v1/user_repo/root', onlyNew.toJSON());
      expect(refused.status).toBe(400);
      expect(refused.body.code).toBe('arbitrary_software');
      const both = await Metadata.create(next, 'uptane', [oldRoot, newRoot]);
      const pushed = await ts.api<{ version: number; targetsOffline: boolean }>('POST', '/api/v1/user_repo/root', both.toJSON());
      expect(pushed.status).toBe(200);
      expect(pushed.body).toEqual({ version: root.version + 1, targetsOffline: true });
      // The same version again is a rollback.
      expect((await ts.api('POST', '/api/v1/user_repo/root', both.toJSON())).status).toBe(409);

      // Online uploads are now refused with advice.
      const up = await ts.api<{ code: string }>('PUT', '/api/v1/user_repo/targets/c.bin?hardwareIds=hw1', new Uint8Array([1]));
      expect(up.status).toBe(409);
      expect(up.body.code).toBe('targets_offline');

      // Offline flow: upload bytes, pull targets with its checksum, add, sign, push.
      const bytes = randomBytes(2000);
      expect((await ts.api('PUT', '/api/v1/user_repo/uploads/c.bin', new Uint8Array(bytes))).status).toBe(201);
      const pulled = await ts.api<Buffer>('GET', '/api/v1/user_repo/targets.json');
      const checksum = pulled.headers.get('x-ats-role-checksum') as string;
      const current = parseTargets(pulled.raw, 'uptane').signed;
      const targets = new Map(current.targets);
      targets.set(
        'c.bin',
        new TargetFile(
          'c.bin',
          bytes.length,
          { sha256: createHash('sha256').update(bytes).digest('hex') },
          { name: 'c', version: '1', hardwareIds: ['hw1'], targetFormat: 'BINARY', uri: null },
        ),
      );
      const signedTargets = await Metadata.create(
        current.with({ version: current.version + 1, expires: expiresIn(new Date(), 86400 * 30), targets }),
        'uptane',
        [offlineTargets],
      );
      expect((await ts.api('PUT', '/api/v1/user_repo/targets', signedTargets.toJSON())).status).toBe(428);
      expect((await ts.api('PUT', '/api/v1/user_repo/targets', signedTargets.toJSON(), { 'x-ats-role-checksum': 'f'.repeat(64) })).status).toBe(412);
      const wrongKey = await Metadata.create(signedTargets.signed, 'uptane', [newRoot]);
      expect((await ts.api('PUT', '/api/v1/user_repo/targets', wrongKey.toJSON(), { 'x-ats-role-checksum': checksum })).status).toBe(400);
      const ok = await ts.api('PUT', '/api/v1/user_repo/targets', signedTargets.toJSON(), { 'x-ats-role-checksum': checksum });
      expect(ok.status).toBe(204);
      const served = parseTargets((await ts.api<Buffer>('GET', '/api/v1/user_repo/targets.json')).raw, 'uptane');
      expect(served.signed.targets.has('c.bin')).toBe(true);
      // The stale checksum no longer works (someone else pushed in between).
      expect((await ts.api('PUT', '/api/v1/user_repo/targets', signedTargets.toJSON(), { 'x-ats-role-checksum': checksum })).status).toBe(412);
      // The uploaded bytes are what the image repository serves for c.bin.
      const dl = await ts.api<Buffer>('GET', '/api/v1/user_repo/targets/c.bin');
      expect(dl.raw.equals(bytes)).toBe(true);

      // Delegation: top-level targets (offline) delegates supplier/* to a supplier key; the supplier pushes its file.
      const supplier = new LocalSigner(generateKeyPairSync('ed25519').privateKey, 'uptane');
      const pulled2 = await ts.api<Buffer>('GET', '/api/v1/user_repo/targets.json');
      const cur2 = parseTargets(pulled2.raw, 'uptane').signed;
      const delegations = new Delegations(new Map([[supplier.publicKey.keyId('uptane'), supplier.publicKey]]), [
        new Delegation([{ name: 'supplier', keyids: [supplier.publicKey.keyId('uptane')], threshold: 1 }], 1, ['supplier/*'], undefined, false, ['hw1'], false),
      ]);
      const withDelegation = await Metadata.create(
        cur2.with({ version: cur2.version + 1, expires: expiresIn(new Date(), 86400 * 30), delegations }),
        'uptane',
        [offlineTargets],
      );
      expect(
        (
          await ts.api('PUT', '/api/v1/user_repo/targets', withDelegation.toJSON(), {
            'x-ats-role-checksum': pulled2.headers.get('x-ats-role-checksum') as string,
          })
        ).status,
      ).toBe(204);
      const supplierTargets = new Targets({
        version: 1,
        expires: expiresIn(new Date(), 86400 * 30),
        targets: new Map([['supplier/ecu.bin', new TargetFile('supplier/ecu.bin', 3, { sha256: 'b'.repeat(64) }, { hardwareIds: ['hw1'] })]]),
      });
      const badSig = await Metadata.create(supplierTargets, 'uptane', [offlineTargets]);
      expect((await ts.api('PUT', '/api/v1/user_repo/delegations/supplier.json', badSig.toJSON())).status).toBe(400);
      expect((await ts.api('PUT', '/api/v1/user_repo/delegations/nobody.json', badSig.toJSON())).status).toBe(404);
      const good = await Metadata.create(supplierTargets, 'uptane', [supplier]);
      expect((await ts.api('PUT', '/api/v1/user_repo/delegations/supplier.json', good.toJSON())).status).toBe(200);
      expect((await ts.api('PUT', '/api/v1/user_repo/delegations/supplier.json', good.toJSON())).status).toBe(409);
      // The Director can direct a supplier's image that only a delegated role lists.
      const mtu = await ts.api('POST', '/api/v1/multi_target_updates', {
        targets: { hw1: { to: { target: 'supplier/ecu.bin', checksum: { method: 'sha256', hash: 'b'.repeat(64) }, targetLength: 3 }, targetFormat: 'BINARY' } },
      });
      expect(mtu.status).toBe(201);
      expect((await ts.api('GET', '/api/v1/images/supplier/ecu.bin')).status).toBe(200);
      const snapshot = JSON.parse((await ts.api<Buffer>('GET', '/api/v1/user_repo/snapshot.json')).raw.toString()) as {
        signed: { meta: Record<string, unknown> };
      };
      expect(Object.keys(snapshot.signed.meta).sort()).toEqual(['supplier.json', 'targets.json']);
    });

    it('manages devices, groups, updates and refuses what makes no sense', async () => {
      expect((await ts.api('POST', '/api/v1/devices', { deviceId: 'dev-1' })).status).toBe(201);
      expect((await ts.api('POST', '/api/v1/devices', { deviceId: 'dev-1' })).status).toBe(409);
      expect((await ts.api('POST', '/api/v1/devices', { deviceId: '../x' })).status).toBe(400);
      expect((await ts.api('POST', '/api/v1/devices', { deviceId: 'x'.repeat(65) })).status).toBe(400);
      expect((await ts.api('GET', '/api/v1/devices/nope')).status).toBe(404);
      const g = await ts.api<{ id: string }>('POST', '/api/v1/device_groups', { name: 'fleet-a' });
      expect(g.status).toBe(201);
      expect((await ts.api('POST', '/api/v1/device_groups', { name: 'fleet-a' })).status).toBe(409);
      expect((await ts.api('POST', `/api/v1/device_groups/${g.body.id}/devices/dev-1`)).status).toBe(204);
      const members = await ts.api<{ values: string[] }>('GET', '/api/v1/device_groups/fleet-a/devices');
      expect(members.body.values).toEqual(['dev-1']);
      const listed = await ts.api<{ total: number; values: Array<{ deviceId: string; deviceStatus: string }> }>(
        'GET',
        `/api/v1/devices?groupId=fleet-a&limit=10`,
      );
      expect(listed.body.values.map((d) => d.deviceId)).toEqual(['dev-1']);
      expect(listed.body.values[0]?.deviceStatus).toBe('NotSeen');
      expect((await ts.api('GET', '/api/v1/devices?limit=0')).status).toBe(400);
      expect((await ts.api('GET', '/api/v1/devices?status=Bogus')).status).toBe(400);
      // An update for a device without ECUs affects nothing (it has no matching hardware).
      const up = await ts.api<{ affected: string[]; notAffected: Array<{ reason: string }> }>('POST', '/api/v1/updates', { image: 'a.bin', group: 'fleet-a' });
      expect(up.status).toBe(201);
      expect(up.body.affected).toEqual([]);
      expect(up.body.notAffected[0]?.reason).toBe('no_matching_hardware');
      // A dry run says who would be affected and stores nothing.
      const before = (await ts.api<{ total: number }>('GET', '/api/v1/updates')).body.total;
      const dry = await ts.api<{ id: string | null; notAffected: unknown[] }>('POST', '/api/v1/updates', { image: 'a.bin', devices: ['dev-1'], dryRun: true });
      expect(dry.status).toBe(200);
      expect(dry.body.id).toBeNull();
      expect(dry.body.notAffected).toHaveLength(1);
      expect((await ts.api<{ total: number }>('GET', '/api/v1/updates')).body.total).toBe(before);
      expect((await ts.api('POST', '/api/v1/updates', { image: 'nope@1', devices: ['dev-1'] })).status).toBe(404);
      expect((await ts.api('POST', '/api/v1/updates', { image: 'a.bin' })).status).toBe(400);
      // OTA CE style multi-target update with a checksum that does not match the image.
      const mtu = await ts.api('POST', '/api/v1/multi_target_updates', {
        targets: {
          hw1: {
            to: { target: 'a.bin', checksum: { method: 'sha256', hash: '0'.repeat(64) }, targetLength: 5000 },
            targetFormat: 'BINARY',
            generateDiff: false,
          },
        },
      });
      expect(mtu.status).toBe(400);
    });

    it('creates namespaces that see nothing of each other, and scoped tokens', async () => {
      const created = await ts.api<{ token: string }>('POST', '/api/v1/namespaces', { name: 'tenant-b' });
      expect(created.status).toBe(201);
      const other = created.body.token;
      const asOther = (path: string) => fetch(`${ts.adminUrl}${path}`, { headers: { authorization: `Bearer ${other}` } });
      expect(((await (await asOther('/api/v1/images')).json()) as { total: number }).total).toBe(0);
      expect((await asOther('/api/v1/devices/dev-1')).status).toBe(404);
      expect((await asOther('/api/v1/namespaces')).status).toBe(403);
      const rootA = (await ts.api<Buffer>('GET', '/api/v1/user_repo/root.json')).raw;
      const rootB = Buffer.from(await (await asOther('/api/v1/user_repo/root.json')).arrayBuffer());
      expect(rootA.equals(rootB)).toBe(false);
      const t = await ts.api<{ id: string; token: string }>('POST', '/api/v1/tokens', { name: 'ci' });
      expect(t.status).toBe(201);
      expect((await fetch(`${ts.adminUrl}/api/v1/images`, { headers: { authorization: `Bearer ${t.body.token}` } })).status).toBe(200);
      expect((await ts.api('DELETE', `/api/v1/tokens/${t.body.id}`)).status).toBe(204);
      expect((await fetch(`${ts.adminUrl}/api/v1/images`, { headers: { authorization: `Bearer ${t.body.token}` } })).status).toBe(401);
      const list = await ts.api<Array<{ name: string }>>('GET', '/api/v1/tokens');
      expect(JSON.stringify(list.body)).not.toContain(t.body.token);
    });

    it('issues credentials and a fleet credentials.zip', async () => {
      const creds = await ts.api<{ certificate: string; privateKey: string; serverCa: string; deviceCa: string; gatewayUrl: string }>(
        'POST',
        '/api/v1/devices/dev-9/credentials',
        {},
      );
      expect(creds.status).toBe(201);
      expect(creds.body.certificate).toContain('BEGIN CERTIFICATE');
      expect(creds.body.privateKey).toContain('PRIVATE KEY');
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const own = await ts.api<{ privateKey?: string }>('POST', '/api/v1/devices/dev-10/credentials', {
        publicKey: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
      });
      expect(own.status).toBe(201);
      expect(own.body.privateKey).toBeUndefined();
      expect((await ts.api('POST', '/api/v1/devices/dev-11/credentials', { publicKey: 'garbage' })).status).toBe(400);
      const zip = await ts.api<Buffer>('POST', '/api/v1/provisioning/credentials');
      expect(zip.status).toBe(200);
      expect(zip.headers.get('content-type')).toBe('application/zip');
      const files = await unzip(zip.raw);
      expect([...files.keys()]).toEqual(expect.arrayContaining(['autoprov_credentials.p12', 'autoprov.url', 'server_ca.pem', 'root.json', 'tufrepo.url']));
      expect(files.get('autoprov.url')?.toString().trim()).toBe(ts.gatewayUrl);
      // The fleet route revokes bootstrap certificates only, never a device's.
      const devCert = (await ts.api<Array<{ serial: string }>>('GET', '/api/v1/devices/dev-9/credentials')).body[0]?.serial as string;
      expect((await ts.api('DELETE', `/api/v1/provisioning/credentials/${devCert}`)).status).toBe(404);
      expect((await ts.api<Array<{ revokedAt: string | null }>>('GET', '/api/v1/devices/dev-9/credentials')).body[0]?.revokedAt).toBeNull();
      const info = await ts.api<{ imageRoot: unknown; directorRoot: unknown }>('GET', '/api/v1/provisioning/info');
      expect(info.body.imageRoot).toBeTruthy();
      expect(info.body.directorRoot).toBeTruthy();
    });
  });
}
