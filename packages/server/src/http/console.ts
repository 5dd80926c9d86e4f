/**
 * Serves the web console (the built `packages/web/dist`) on the admin server
 * at `/`: files by path with their content types, `index.html` for the
 * console's own routes (/devices/car-1) when a browser loads them, long-lived caching for Vite's
 * content-hashed `/assets/`, and nothing outside the folder. The server's
 * own paths (/api, /docs, /healthz, /metrics) are never answered here.
 * Without a built console, `/` says how to build it and where the API docs are.
 */
import { promises as fsp } from 'node:fs';
import { createHash } from 'node:crypto';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

export interface ConsoleOptions {
  /** The built console; default: packages/web/dist next to this package (src/ and dist/ sit at the same depth). */
  readonly dir?: string;
}

export function defaultConsoleDir(): string {
  return fileURLToPath(new URL('../../../web/dist/', import.meta.url));
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.map', '.svg', '.txt', '.webmanifest', '.ico']);

/** The console talks only to this origin; no inline script or style is needed (React sets styles through the CSSOM). */
const HTML_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

const RESERVED = /^\/(?:api|docs|healthz|metrics)(?:\/|$)/;
const ASSETS = '/assets/';
const MAX_CACHED_BYTES = 8 * 1024 * 1024;

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Uptide</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5">
<h1>Uptide</h1>
<p>The admin API is running: see its documentation at <a href="/docs">/docs</a>.</p>
<p>The web console is not built. Run <code>npm run build</code> at the top of the repository (or <code>npm start</code>), then reload this page.</p>
</body></html>
`;

interface CachedFile {
  readonly mtimeMs: number;
  readonly size: number;
  readonly body: Buffer;
  readonly etag: string;
  gzip?: Buffer;
}

/** Registers GET (and HEAD) `/` and `/*` on `app` for the console. */
export async function consoleRoutes(app: FastifyInstance, options: ConsoleOptions = {}): Promise<void> {
  const root = resolve(options.dir ?? defaultConsoleDir());
  const cache = new Map<string, CachedFile>();

  /** The file's bytes, read once per version of the file (mtime and size). */
  const load = async (file: string): Promise<CachedFile | undefined> => {
    let st;
    try {
      st = await fsp.stat(file);
    } catch {
      return undefined;
    }
    if (!st.isFile()) return undefined;
    const hit = cache.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit;
    // A symbolic link must not lead out of the console's folder.
    let real: string;
    try {
      real = await fsp.realpath(file);
      if (!real.startsWith((await fsp.realpath(root)) + sep)) return undefined;
    } catch {
      return undefined;
    }
    const body = await fsp.readFile(real);
    const entry: CachedFile = { mtimeMs: st.mtimeMs, size: st.size, body, etag: createHash('sha256').update(body).digest('base64url').slice(0, 27) };
    if (body.length <= MAX_CACHED_BYTES) {
      if (cache.size > 1000) cache.clear();
      cache.set(file, entry);
    }
    return entry;
  };

  const send = (request: FastifyRequest, reply: FastifyReply, file: string, f: CachedFile, cacheControl: string): FastifyReply => {
    const ext = extname(file).toLowerCase();
    const type = TYPES[ext] ?? 'application/octet-stream';
    reply.header('content-type', type).header('cache-control', cacheControl).header('x-content-type-options', 'nosniff');
    if (ext === '.html') reply.headers(HTML_HEADERS);
    const compressible = COMPRESSIBLE.has(ext) && f.body.length >= 1024;
    if (compressible) reply.header('vary', 'accept-encoding');
    const gzip = compressible && /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
    // A weak validator: the gzip and identity forms share it.
    const etag = `W/"${f.etag}"`;
    reply.header('etag', etag);
    const inm = request.headers['if-none-match'];
    if (typeof inm === 'string' && inm.split(',').some((t) => t.trim() === etag || t.trim() === `"${f.etag}"`)) return reply.code(304).send();
    if (gzip) {
      f.gzip ??= gzipSync(f.body, { level: 9 });
      return reply.code(200).header('content-encoding', 'gzip').header('content-length', String(f.gzip.length)).send(f.gzip);
    }
    return reply.code(200).header('content-length', String(f.body.length)).send(f.body);
  };

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0] ?? '/';
    if (RESERVED.test(path)) return reply.callNotFound();
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      return reply.callNotFound();
    }
    const segments = decoded.split('/').filter((s) => s !== '');
    // No way up or sideways: no dot segments, no hidden files, no backslashes or NULs.
    if (segments.some((s) => s.startsWith('.') || s.includes('\\') || s.includes('\0'))) return reply.callNotFound();
    const file = join(root, ...segments);
    if (file !== root && !file.startsWith(root + sep)) return reply.callNotFound();

    if (segments.length > 0) {
      const f = await load(file);
      if (f) {
        const cacheControl = decoded.startsWith(ASSETS) ? 'public, max-age=31536000, immutable' : 'no-cache';
        return send(request, reply, file, f, cacheControl);
      }
      // A missing asset is a 404, not the page: a stale index.html must not be run as a script.
      if (decoded.startsWith(ASSETS)) return reply.callNotFound();
      // Only page loads (browsers ask for text/html) get the page; API clients keep their JSON 404.
      if (!String(request.headers.accept ?? '').includes('text/html')) return reply.callNotFound();
    }

    // The console's own routes: the page, which routes in the browser.
    const indexFile = join(root, 'index.html');
    const index = await load(indexFile);
    if (!index)
      return reply
        .code(200)
        .header('content-type', 'text/html; charset=utf-8')
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .send(NOT_BUILT);
    return send(request, reply, indexFile, index, 'no-cache');
  };

  app.get('/', { schema: { hide: true } }, handler);
  app.get('/*', { schema: { hide: true } }, handler);
}
