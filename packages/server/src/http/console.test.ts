/**
 * The console's static files over real HTTP: content types, the index.html
 * fallback for page loads only, caching, compression, and no way out of the folder.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import Fastify, { type FastifyInstance } from 'fastify';
import { errorHandling } from './common.js';
import { consoleRoutes, defaultConsoleDir } from './console.js';

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A raw request, so that paths reach the server exactly as written (no client-side normalisation). */
function get(base: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(base, { method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function serve(dir: string): Promise<{ app: FastifyInstance; base: string }> {
  const app = Fastify();
  errorHandling(app);
  await consoleRoutes(app, { dir });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/api/v1/whoami', async () => ({ namespace: 'default' }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  return { app, base: `http://127.0.0.1:${addr.port}` };
}

const HTML = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };

describe('console static files', () => {
  let tmp: string;
  let dist: string;
  let app: FastifyInstance;
  let base: string;
  const js = `console.log(${JSON.stringify('x'.repeat(5000))});\n`;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'uptide-console-'));
    dist = join(tmp, 'dist');
    mkdirSync(join(dist, 'assets'), { recursive: true });
    writeFileSync(join(dist, 'index.html'), '<!doctype html><title>console</title><script type="module" src="/assets/index-abc123.js"></script>');
    writeFileSync(join(dist, 'assets', 'index-abc123.js'), js);
    writeFileSync(join(dist, 'assets', 'index-abc123.css'), 'body{color:red}');
    writeFileSync(join(dist, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    writeFileSync(join(dist, '.env'), 'SECRET=1');
    writeFileSync(join(tmp, 'secret.txt'), 'outside');
    symlinkSync(join(tmp, 'secret.txt'), join(dist, 'link.txt'));
    ({ app, base } = await serve(dist));
  });
  afterAll(async () => {
    await app?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('serves index.html at / with a no-cache policy and a CSP', async () => {
    const r = await get(base, '/');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(r.headers['cache-control']).toBe('no-cache');
    expect(r.headers['content-security-policy']).toContain("default-src 'self'");
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.body.toString()).toContain('<title>console</title>');
  });

  it('serves hashed assets with their type and a year of immutable caching, gzipped when asked', async () => {
    const r = await get(base, '/assets/index-abc123.js');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(r.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(r.body.toString()).toBe(js);
    const z = await get(base, '/assets/index-abc123.js', { 'accept-encoding': 'gzip, deflate, br' });
    expect(z.headers['content-encoding']).toBe('gzip');
    expect(z.headers['vary']).toBe('accept-encoding');
    expect(z.body.length).toBeLessThan(js.length / 10);
    expect(gunzipSync(z.body).toString()).toBe(js);
    expect((await get(base, '/assets/index-abc123.css')).headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await get(base, '/favicon.svg')).headers['content-type']).toBe('image/svg+xml');
  });

  it('answers 304 to a matching If-None-Match, and HEAD without a body', async () => {
    const first = await get(base, '/assets/index-abc123.js');
    const etag = first.headers['etag'] as string;
    expect(etag).toMatch(/^W\/"/);
    const again = await get(base, '/assets/index-abc123.js', { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    const head = await get(base, '/assets/index-abc123.js', {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
  });

  it("falls back to index.html for the console's routes when a browser loads them", async () => {
    for (const path of ['/devices', '/devices/car-1.2', '/updates/0b6f/?x=1', '/groups/a%20b']) {
      const r = await get(base, path, HTML);
      expect(r.status, path).toBe(200);
      expect(r.body.toString(), path).toContain('<title>console</title>');
      expect(r.headers['cache-control']).toBe('no-cache');
    }
  });

  it('keeps JSON 404s for API clients, missing assets and the server paths', async () => {
    for (const [path, headers] of [
      ['/devices', { accept: 'application/json' }],
      ['/assets/index-old.js', HTML],
      ['/api/v1/nothing', HTML],
      ['/docs/nothing', {}],
      ['/metrics/x', HTML],
    ] as Array<[string, Record<string, string>]>) {
      const r = await get(base, path, headers);
      expect(r.status, path).toBe(404);
      expect(JSON.parse(r.body.toString()).code, path).toBe('not_found');
    }
    expect((await get(base, '/api/v1/whoami')).status).toBe(200);
    expect((await get(base, '/healthz')).status).toBe(200);
  });

  it('never serves anything outside the folder, hidden files, or through symbolic links out of it', async () => {
    for (const path of [
      '/../secret.txt',
      '/assets/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
      '/..%5csecret.txt',
      '/.env',
      '/%2eenv',
      '/link.txt',
      '/index.html%00.js',
      '/%E0%A4%A',
    ]) {
      const r = await get(base, path);
      // Fastify refuses a malformed percent-encoding itself (400).
      expect([400, 404], path).toContain(r.status);
      expect(r.body.toString(), path).not.toContain('outside');
      expect(r.body.toString(), path).not.toContain('SECRET');
    }
  });

  it('says where the API docs are when the console is not built', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'uptide-console-empty-'));
    const s = await serve(join(empty, 'missing'));
    try {
      for (const path of ['/', '/devices']) {
        const r = await get(s.base, path, HTML);
        expect(r.status).toBe(200);
        expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
        expect(r.body.toString()).toContain('href="/docs"');
        expect(r.body.toString()).toContain('npm run build');
      }
    } finally {
      await s.app.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('finds packages/web/dist by default', () => {
    expect(defaultConsoleDir().replace(/\\/g, '/')).toMatch(/\/packages\/web\/dist\/?$/);
  });
});
