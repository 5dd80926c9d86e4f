/**
 * Nothing secret in logs or error messages (issue 6). A server logs through
 * its production logger at debug level into a buffer while a full flow runs
 * (uploads, namespaces and tokens, device credentials with generated keys,
 * the fleet credentials.zip and auto-provisioning, a device cycle, key
 * export) together with refused requests that carry secrets in the wrong
 * places. Then every log line, every error answer and /metrics are searched
 * for each token, the key passphrase and every line of every private key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { startTestServer, type TestServer } from '../../packages/server/src/testing/harness.js';
import { startServer } from '../../packages/server/src/app.js';
import { parsePkcs12 } from '../../packages/server/src/pki/index.js';
import { Endpoint, setupFixtures, type Fixtures, type RawResponse } from './support.js';

/**
 * The pieces of a secret worth searching for: the whole, and 24-character windows of each base64 line of a PEM
 * or of a token (an error message may quote only the start of what it was given).
 */
function needles(secret: string): string[] {
  const lines = secret
    .split('\n')
    .map((l) => l.trim().replace(/^upt_/, ''))
    .filter((l) => l.length >= 24 && !l.startsWith('-----'));
  const windows = lines.flatMap((l) => [0, 20, 40].filter((i) => i + 24 <= l.length).map((i) => l.slice(i, i + 24)));
  return [secret, ...windows];
}

describe('secrets stay out of logs and error messages', () => {
  const PASSPHRASE = `correct horse battery staple ${randomBytes(8).toString('hex')}`;
  const logs: string[] = [];
  const errors: Array<{ what: string; res: RawResponse }> = [];
  const secrets = new Map<string, string>();
  let ts: TestServer;
  let fx: Fixtures;
  let admin: Endpoint;

  const call = async (ep: Endpoint, what: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await ep.call({
      method,
      path,
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)) } : {}),
    });
    if (res.status >= 400) errors.push({ what, res });
    return res;
  };

  beforeAll(async () => {
    ts = await startTestServer({
      config: { logLevel: 'debug', keyPassphrase: PASSPHRASE },
      logDestination: new Writable({
        write(chunk, _enc, cb) {
          logs.push(String(chunk));
          cb();
        },
      }),
    });
    secrets.set('first admin token', ts.token);
    secrets.set('key passphrase', PASSPHRASE);
    fx = await setupFixtures(ts, { namespace: 'secretive', tag: 'sx' });
    secrets.set('namespace token', fx.token);
    secrets.set('device private key', fx.deviceKeyPem);
    secrets.set('bootstrap PKCS#12', fx.bootstrapP12.toString('base64'));
    secrets.set('bootstrap private key', parsePkcs12(fx.bootstrapP12).keyPem);
    admin = new Endpoint(ts.adminUrl);
  });
  afterAll(async () => {
    admin?.close();
    await ts?.close();
  });

  it('runs a full flow and refused requests, then finds no secret in the logs, in error answers or in /metrics', async () => {
    const auth = { authorization: `Bearer ${fx.token}` };
    // Tokens: a new one, then revoked, then used.
    const t = JSON.parse((await call(admin, 'token', 'POST', '/api/v1/tokens', { name: 'ci' }, auth)).body.toString()) as { id: string; token: string };
    secrets.set('created token', t.token);
    await call(admin, 'revoke', 'DELETE', `/api/v1/tokens/${t.id}`, undefined, auth);
    await call(admin, 'revoked token', 'GET', '/api/v1/devices', undefined, { authorization: `Bearer ${t.token}` });
    await call(admin, 'token in a query', 'GET', `/api/v1/devices?token=${fx.token}&access_token=${fx.token}`);
    await call(admin, 'token as basic auth', 'GET', '/api/v1/devices', undefined, {
      authorization: `Basic ${Buffer.from(`admin:${fx.token}`).toString('base64')}`,
    });
    await call(admin, 'near token', 'GET', '/api/v1/devices', undefined, { authorization: `Bearer ${fx.token}x` });
    // Online keys exported (a legitimate 200), then offered back in wrong places.
    const exported = JSON.parse(
      (await call(admin, 'export', 'GET', `/api/v1/admin/repo/private_keys/${fx.directorKeys['targets']}`, undefined, auth)).body.toString(),
    ) as { private: string };
    secrets.set('exported Director targets key', exported.private);
    await call(admin, 'key as a public key', 'POST', '/api/v1/devices/sx-keyed/credentials', { publicKey: exported.private }, auth);
    await call(admin, 'key as a root', 'POST', '/api/v1/admin/repo/root', exported.private, auth);
    await call(admin, 'key in a bad body', 'POST', '/api/v1/devices', { deviceId: exported.private }, auth);
    // Generated device keys (returned once) and auto-provisioned ones.
    const issued = JSON.parse((await call(admin, 'issue', 'POST', '/api/v1/devices/sx-new/credentials', {}, auth)).body.toString()) as { privateKey: string };
    secrets.set('generated device key', issued.privateKey);
    const boot = new Endpoint(ts.gatewayUrl, { pfx: fx.bootstrapP12, ca: fx.serverCa });
    const p12 = await call(boot, 'auto-provision', 'POST', '/devices', { deviceId: 'sx-auto', ttl: '30' });
    expect(p12.status).toBe(200);
    secrets.set('auto-provisioned key', parsePkcs12(p12.body).keyPem);
    await call(boot, 'bootstrap elsewhere', 'GET', '/director/targets.json');
    boot.close();
    // A device cycle, and devices sending garbage.
    const dev = new Endpoint(ts.gatewayUrl, { cert: fx.device.creds?.cert, key: fx.device.creds?.key, ca: fx.serverCa });
    await call(dev, 'metadata', 'GET', '/director/targets.json');
    await call(dev, 'image', 'GET', `/repo/targets/${fx.image.filename}`);
    await call(dev, 'bad manifest', 'PUT', '/director/manifest', { signed: { secret: fx.token }, signatures: [] });
    await call(dev, 'bad events', 'POST', '/events', [{ id: fx.token }]);
    await call(dev, 'key as ECU key', 'POST', '/director/ecus', {
      primary_ecu_serial: 'x',
      ecus: [{ ecu_serial: 'x', hardware_identifier: 'h', clientKey: { keytype: 'RSA', keyval: { public: exported.private } } }],
    });
    dev.close();
    const metrics = (await admin.call({ method: 'GET', path: '/metrics' })).body.toString();

    expect(errors.length).toBeGreaterThan(8);
    expect(logs.length).toBeGreaterThan(10);
    const haystacks: Array<[string, string]> = [
      ['logs', logs.join('')],
      ['/metrics', metrics],
      ...errors.map((e): [string, string] => [`error answer to ${e.what} (${e.res.status})`, e.res.body.toString('utf8') + JSON.stringify(e.res.headers)]),
    ];
    for (const [name, secret] of secrets) {
      for (const n of needles(secret)) {
        for (const [where, text] of haystacks) expect(text.includes(n), `${name} found in ${where}`).toBe(false);
      }
    }
    const marked = logs.filter((l) => l.includes('PRIVATE KEY'));
    expect(marked, 'log lines with PEM private key markers').toEqual([]);
  });

  it('keeps the first admin token in a file only its owner can read', () => {
    expect(statSync(join(ts.dataDir, 'admin-token')).mode & 0o077).toBe(0);
  });

  it('does not name the passphrase when the server is started with a wrong one', async () => {
    const wrong = `wrong ${randomBytes(8).toString('hex')}`;
    let message = '';
    try {
      const s = await startServer(
        { ...ts.config, keyPassphrase: wrong, httpPort: 0, devicePort: 0 },
        { logDestination: new Writable({ write: (_c, _e, cb) => cb() }) },
      );
      await s.close();
    } catch (err) {
      message = err instanceof Error ? `${err.message} ${err.stack ?? ''}` : String(err);
    }
    expect(message).not.toBe('');
    expect(message).not.toContain(wrong);
    expect(message).not.toContain(PASSPHRASE);
  });
});
