/** Offline key files: generate, list, export-public; passphrases from a file or the environment, never a hanging prompt. */
import { describe, expect, it } from 'vitest';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PublicKey, decryptPrivateKey, parseJson } from '@uptide/core';
import { cliFor, ok, tempDir } from './testing/harness.js';

describe('uptide keys generate, list, export-public', () => {
  const dir = tempDir('uptide-keys-');
  const cli = cliFor(undefined, dir);
  let aliceId = '';

  it('generates encrypted key files that the core opens with the passphrase', async () => {
    const r = await ok(cli, ['keys', 'generate', 'alice']);
    aliceId = r.out.trim();
    expect(aliceId).toMatch(/^[0-9a-f]{64}$/);
    expect(r.err).toContain('Back the key directory up');
    const file = join(dir, 'uptide-keys', 'keys', 'alice.key.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const doc = parseJson(readFileSync(file));
    expect(() => decryptPrivateKey(doc, 'wrong')).toThrow(/passphrase/);
    expect(decryptPrivateKey(doc, 'correct horse battery staple').asymmetricKeyType).toBe('ed25519');
    const rsa = await ok(cli, ['keys', 'generate', 'bob', '--type', 'rsa2048', '--json']);
    expect(JSON.parse(rsa.out)).toMatchObject({ name: 'bob', type: 'rsa2048' });
  });

  it('refuses a taken name, a bad name, an unknown type, and a missing passphrase without a terminal', async () => {
    const taken = await cli(['keys', 'generate', 'alice']);
    expect(taken.code).toBe(1);
    expect(taken.err).toContain('exists already');
    expect((await cli(['keys', 'generate', '../evil'])).code).toBe(2);
    expect((await cli(['keys', 'generate', 'carol', '--type', 'dsa'])).code).toBe(2);
    const nopass = await cli(['keys', 'generate', 'carol'], { UPTIDE_KEY_PASSPHRASE: undefined });
    expect(nopass.code).toBe(2);
    expect(nopass.err).toContain('UPTIDE_KEY_PASSPHRASE');
    expect(nopass.err).toContain('--passphrase-file');
  });

  it('reads the passphrase from --passphrase-file', async () => {
    writeFileSync(join(dir, 'pass.txt'), 'from a file, first line only\nignored\n');
    await ok(cli, ['keys', 'generate', 'carol', '--passphrase-file', 'pass.txt'], { UPTIDE_KEY_PASSPHRASE: undefined });
    const doc = parseJson(readFileSync(join(dir, 'uptide-keys', 'keys', 'carol.key.json')));
    expect(decryptPrivateKey(doc, 'from a file, first line only').type).toBe('private');
    expect((await cli(['keys', 'generate', 'dave', '--passphrase-file', 'missing.txt'])).code).toBe(2);
  });

  it('lists keys without a passphrase, and exports public keys for others', async () => {
    const list = JSON.parse((await ok(cli, ['keys', 'list', '--json'], { UPTIDE_KEY_PASSPHRASE: undefined })).out) as Array<{ name: string; type: string }>;
    expect(list.map((k) => `${k.name}:${k.type}`)).toEqual(['alice:ed25519', 'bob:rsa2048', 'carol:ed25519']);
    expect((await ok(cli, ['keys', 'list'])).out).toMatch(/^NAME\s+TYPE\s+KEY ID\s+ROLES/);
    const pub = await ok(cli, ['keys', 'export-public', 'bob']);
    const key = PublicKey.fromJSON(parseJson(pub.out), 'uptane');
    expect(key.algorithm).toBe('rsa');
    await ok(cli, ['keys', 'export-public', 'alice', '--out', 'alice.pub.json']);
    expect(PublicKey.fromJSON(parseJson(readFileSync(join(dir, 'alice.pub.json'))), 'uptane').keyId('uptane')).toBe(aliceId);
    const unknown = await cli(['keys', 'export-public', 'nobody']);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('uptide keys list');
    // Another key directory through --key-dir or UPTIDE_KEY_DIR.
    expect(JSON.parse((await ok(cli, ['keys', 'list', '--json', '--key-dir', 'elsewhere'])).out)).toEqual([]);
    expect(JSON.parse((await ok(cli, ['keys', 'list', '--json'], { UPTIDE_KEY_DIR: join(dir, 'uptide-keys') })).out)).toHaveLength(3);
  });
});
