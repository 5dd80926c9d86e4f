/**
 * Rotating an online key (e.g. after a suspected compromise of the server):
 * the server generates a new key, a root ceremony lists it, and the server
 * signs with it from then on; devices follow through the root chain (and drop
 * their stored timestamp, R-4).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LocalSigner,
  Metadata,
  PublicKey,
  RoleDefinition,
  TrustedRepository,
  expiresIn,
  parseRoot,
  parseTimestamp,
  privateKeyFromPem,
  type JsonObject,
} from '@uptide/core';
import { startTestServer, type TestServer } from '../testing/harness.js';

describe('online key rotation', () => {
  let ts: TestServer;
  beforeAll(async () => {
    ts = await startTestServer();
  });
  afterAll(async () => {
    await ts?.close();
  });

  for (const [repo, prefix, rootPath] of [
    ['image', '/api/v1/user_repo', '/api/v1/user_repo'],
    ['director', '/api/v1/admin/repo', '/api/v1/admin/repo'],
  ] as const) {
    it(`replaces the ${repo} timestamp key`, async () => {
      const root1 = parseRoot((await ts.api<Buffer>('GET', `${rootPath}/root.json`)).raw, 'uptane');
      const fresh = await ts.api<{ keyid: string; key: JsonObject }>('POST', `${prefix}/keys/timestamp`);
      expect(fresh.status).toBe(201);
      expect((await ts.api('POST', `${prefix}/keys/root`)).status).toBe(400);
      const newKey = PublicKey.fromJSON(fresh.body.key, 'uptane');
      const rootKeyId = root1.signed.role('root').keyids[0] as string;
      const exportPath = repo === 'image' ? `/api/v1/user_repo/root/private_keys/${rootKeyId}` : `/api/v1/admin/repo/private_keys/${rootKeyId}`;
      const rootSigner = new LocalSigner(privateKeyFromPem((await ts.api<{ private: string }>('GET', exportPath)).body.private), 'uptane');
      const keys = new Map(root1.signed.keys);
      keys.set(fresh.body.keyid, newKey);
      const roles = new Map(root1.signed.roles);
      roles.set('timestamp', new RoleDefinition([fresh.body.keyid], 1));
      const root2 = await Metadata.create(
        root1.signed.with({ version: root1.signed.version + 1, expires: expiresIn(new Date(), 86400 * 100), keys, roles }),
        'uptane',
        [rootSigner],
      );
      expect((await ts.api('POST', `${rootPath}/root`, root2.toJSON())).status).toBe(200);
      if (repo === 'image') {
        // The next timestamp is signed by the new key, and a client starting from root 1 accepts it after walking to root 2.
        expect((await ts.api('PUT', '/api/v1/user_repo/targets/after-rotation.bin?hardwareIds=hw', new Uint8Array([1, 2, 3]))).status).toBe(201);
        const tsBytes = (await ts.api<Buffer>('GET', '/api/v1/user_repo/timestamp.json')).raw;
        expect(parseTimestamp(tsBytes, 'uptane').signatures.map((s) => s.keyid)).toEqual([fresh.body.keyid]);
        const repoTrust = new TrustedRepository({ root: root1.toBytes() }, { dialect: 'uptane', repository: 'image', now: new Date() });
        repoTrust.updateRoot(root2.toBytes());
        expect(repoTrust.updateTimestamp(tsBytes)).toBe(true);
      }
    });
  }
});
