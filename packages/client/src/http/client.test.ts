import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { EndlessDataError, SlowRetrievalError } from '@uptide/core';
import { TestPki } from '../testing/pki.js';
import { HttpClient, HttpError } from './client.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => unknown;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const IMAGE = randomBytes(200_000);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let server: http.Server;
let base = '';
const routes = new Map<string, Handler>();
const seen: Array<{ path: string; range: string | undefined }> = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seen.push({ path: req.url ?? '', range: req.headers.range });
    const h = routes.get(req.url ?? '');
    if (!h) {
      res.writeHead(404).end('{"code":"not_found"}');
      return;
    }
    Promise.resolve(h(req, res)).catch(() => res.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  routes.set('/ok', (_q, s) => s.writeHead(200, { 'content-length': '5' }).end('hello'));
  routes.set('/big-declared', (_q, s) => {
    s.writeHead(200, { 'content-length': String(1024 * 1024 * 1024) });
    s.write(Buffer.alloc(1024));
    // Never finishes on its own: the client must not wait for it.
  });
  routes.set('/endless', async (_q, s) => {
    s.writeHead(200); // chunked, no Content-Length
    while (!s.destroyed) {
      s.write(Buffer.alloc(16 * 1024, 0x61));
      await sleep(1);
    }
  });
  routes.set('/trickle', async (_q, s) => {
    s.writeHead(200, { 'content-length': '100000' });
    for (let i = 0; i < 1000 && !s.destroyed; i++) {
      s.write(Buffer.alloc(10));
      await sleep(50);
    }
  });
  routes.set('/late-head', async (_q, s) => {
    await sleep(800);
    s.writeHead(200, { 'content-length': '5' }).end('late!');
  });
  routes.set('/stall', (_q, s) => {
    s.writeHead(200, { 'content-length': '100' });
    s.write('x');
  });
  let flaky = 0;
  routes.set('/flaky', (_q, s) => {
    flaky++;
    if (flaky < 3) s.writeHead(503).end('busy');
    else s.writeHead(200).end('finally');
  });
  routes.set('/redirect', (_q, s) => s.writeHead(302, { location: '/ok' }).end());
  // Serves IMAGE with Range support, cutting the connection of the first request after 50 000 bytes.
  let cuts = 0;
  routes.set('/image', (q, s) => {
    const m = /^bytes=(\d+)-$/.exec(q.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const body = IMAGE.subarray(start);
    if (m) s.writeHead(206, { 'content-length': String(body.length), 'content-range': `bytes ${start}-${IMAGE.length - 1}/${IMAGE.length}` });
    else s.writeHead(200, { 'content-length': String(body.length) });
    if (cuts === 0 && !m) {
      cuts++;
      s.write(body.subarray(0, 50_000), () => setTimeout(() => s.socket?.destroy(), 20));
      return;
    }
    s.end(body);
  });
  routes.set('/image-no-range', (_q, s) => s.writeHead(200, { 'content-length': String(IMAGE.length) }).end(IMAGE));
  routes.set('/image-longer', (_q, s) => s.writeHead(200).end(Buffer.concat([IMAGE, Buffer.from('extra')])));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

function client(extra: ConstructorParameters<typeof HttpClient>[0] = {}): HttpClient {
  return new HttpClient({ allowInsecureHttp: true, retryDelayMs: 10, minSpeed: { bytesPerSecond: 1024, windowMs: 500 }, ...extra });
}

describe('HttpClient', () => {
  it('reads a body within its limit', async () => {
    const c = client();
    expect((await c.get(`${base}/ok`, 5)).toString()).toBe('hello');
    c.close();
  });

  it('refuses plain http unless allowed', async () => {
    const c = new HttpClient({});
    await expect(c.get(`${base}/ok`, 100)).rejects.toMatchObject({ code: 'INSECURE_URL' });
    c.close();
  });

  it('refuses a Content-Length above the limit before reading the body', async () => {
    const c = client();
    const t0 = Date.now();
    await expect(c.get(`${base}/big-declared`, 64 * 1024)).rejects.toBeInstanceOf(EndlessDataError);
    expect(Date.now() - t0).toBeLessThan(2000);
    c.close();
  });

  it('stops reading a body without Content-Length the moment it passes the limit', async () => {
    const c = client();
    await expect(c.get(`${base}/endless`, 100_000)).rejects.toBeInstanceOf(EndlessDataError);
    c.close();
  });

  it('aborts a transfer slower than the minimum speed over the window (slow retrieval)', async () => {
    const c = client();
    const t0 = Date.now();
    await expect(c.get(`${base}/trickle`, 1_000_000)).rejects.toBeInstanceOf(SlowRetrievalError);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(3000);
    c.close();
  });

  it('measures speed on the body: a late response head is not slow retrieval', async () => {
    const c = client();
    expect((await c.get(`${base}/late-head`, 100)).toString()).toBe('late!');
    c.close();
  });

  it('aborts a stalled transfer as slow retrieval too', async () => {
    const c = client();
    await expect(c.get(`${base}/stall`, 1000)).rejects.toBeInstanceOf(SlowRetrievalError);
    c.close();
  });

  it('gives up on a silent server after the idle timeout when speed is not checked', async () => {
    const c = client({ minSpeed: { bytesPerSecond: 0, windowMs: 1000 }, idleTimeoutMs: 300, retries: 0 });
    await expect(c.get(`${base}/stall`, 1000)).rejects.toMatchObject({ code: 'TIMEOUT' });
    c.close();
  });

  it('retries server errors and network failures, then reports them', async () => {
    const c = client();
    expect((await c.get(`${base}/flaky`, 100)).toString()).toBe('finally');
    const none = client({ retries: 0 });
    await expect(none.get('http://127.0.0.1:1/x', 100)).rejects.toMatchObject({ code: 'NETWORK' });
    c.close();
    none.close();
  });

  it('returns undefined for a 404 where absence is an answer, and fails a 404 elsewhere', async () => {
    const c = client();
    expect(await c.getOptional(`${base}/nothing`, 100)).toBeUndefined();
    const err = await c.get(`${base}/nothing`, 100).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpError);
    expect(err).toMatchObject({ code: 'HTTP_STATUS', status: 404 });
    c.close();
  });

  it('follows redirects', async () => {
    const c = client();
    expect((await c.get(`${base}/redirect`, 100)).toString()).toBe('hello');
    c.close();
  });

  it('streams a download to disk with sha256 and sha512, and resumes it with Range after a cut', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uptide-http-'));
    const file = join(dir, 'image.part');
    const c = client({ retries: 0 });
    seen.length = 0;
    // The first attempt is cut after 50 000 bytes; the partial file stays.
    await expect(c.download(`${base}/image`, file, { maxBytes: IMAGE.length })).rejects.toMatchObject({ code: 'NETWORK' });
    const partial = statSync(file).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(IMAGE.length);
    const r = await c.download(`${base}/image`, file, { maxBytes: IMAGE.length });
    expect(seen.at(-1)?.range).toBe(`bytes=${partial}-`);
    expect(r.resumedFrom).toBe(partial);
    expect(r.length).toBe(IMAGE.length);
    expect(r.hashes['sha256']).toBe(sha256(IMAGE));
    expect(r.hashes['sha512']).toBe(createHash('sha512').update(IMAGE).digest('hex'));
    expect(readFileSync(file).equals(IMAGE)).toBe(true);
    c.close();
  });

  it('starts again from byte 0 when the server ignores Range (200)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uptide-http-'));
    const file = join(dir, 'image.part');
    writeFileSync(file, Buffer.from('garbage from an earlier attempt'));
    const c = client();
    const r = await c.download(`${base}/image-no-range`, file, { maxBytes: IMAGE.length });
    expect(r.resumedFrom).toBe(0);
    expect(r.hashes['sha256']).toBe(sha256(IMAGE));
    expect(readFileSync(file).equals(IMAGE)).toBe(true);
    c.close();
  });

  it('never writes more than the limit, and deletes the poisoned file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uptide-http-'));
    const file = join(dir, 'image.part');
    const c = client();
    await expect(c.download(`${base}/image-longer`, file, { maxBytes: IMAGE.length })).rejects.toBeInstanceOf(EndlessDataError);
    expect(existsSync(file)).toBe(false);
    await expect(c.download(`${base}/big-declared`, file, { maxBytes: 10_000 })).rejects.toBeInstanceOf(EndlessDataError);
    await expect(c.download(`${base}/endless`, file, { maxBytes: 100_000 })).rejects.toBeInstanceOf(EndlessDataError);
    expect(existsSync(file)).toBe(false);
    c.close();
  });

  it('aborts a slow image download but keeps the bytes for a resume', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uptide-http-'));
    const file = join(dir, 'image.part');
    const c = client();
    await expect(c.download(`${base}/trickle`, file, { maxBytes: 100_000 })).rejects.toBeInstanceOf(SlowRetrievalError);
    expect(statSync(file).size).toBeGreaterThan(0);
    c.close();
  });

  it('presents the client certificate and private CA only to trusted origins', async () => {
    const pki = TestPki.create();
    const sc = pki.issue('localhost', { server: true });
    const device = pki.issue('device-1');
    const tls = https.createServer({ key: sc.key, cert: sc.cert, ca: pki.caCert, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      const sock = req.socket as TLSSocket;
      res.end(sock.authorized ? `CN=${String(sock.getPeerCertificate().subject.CN)}` : 'anonymous');
    });
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`;
    try {
      const trusted = new HttpClient({ tls: { ca: pki.caCert, cert: device.cert, key: device.key }, trustedOrigins: [url] });
      expect((await trusted.get(`${url}/`, 100)).toString()).toBe('CN=device-1');
      // Another origin: system CAs only, so our private CA is not trusted.
      const other = new HttpClient({
        tls: { ca: pki.caCert, cert: device.cert, key: device.key },
        trustedOrigins: ['https://elsewhere.example.com'],
        retries: 0,
      });
      await expect(other.get(`${url}/`, 100)).rejects.toMatchObject({ code: 'NETWORK' });
      trusted.close();
      other.close();
    } finally {
      tls.closeAllConnections();
      await new Promise<void>((r) => tls.close(() => r()));
    }
  });
});
