/**
 * What the admin API and the device gateway share: strict JSON bodies, the
 * `{code, message}` error shape, byte-exact metadata replies with ETags, and
 * Range requests for image downloads.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { JsonError } from '@uptide/core';
import { parseJson } from '@uptide/core';
import { toHttpError } from '../errors.js';
import { hasNul } from '../text.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The exact bytes of a JSON body (metadata and manifests are checked over what was sent). */
    rawBody?: Buffer;
  }
}

/**
 * Registers a JSON parser that refuses duplicate keys, lone surrogates, deep
 * nesting and unsafe integers (A19) and keeps the raw bytes.
 */
export function strictJsonBodies(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(/^application\/(?:[\w.+-]+\+)?json$/, { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    request.rawBody = body;
    if (body.length === 0) {
      done(null, undefined);
      return;
    }
    let value;
    try {
      value = parseJson(body, { integersOnly: false, maxDepth: 64 });
    } catch (err) {
      const e = err as JsonError;
      done(Object.assign(new Error(`malformed JSON body: ${e.message}`), { statusCode: 400, code: 'malformed_json' }), undefined);
      return;
    }
    if (hasNul(value)) {
      done(Object.assign(new Error('malformed JSON body: a string holds a NUL character (\\u0000)'), { statusCode: 400, code: 'malformed_json' }), undefined);
      return;
    }
    done(null, value);
  });
}

export { hasNul };

/**
 * Refuses a URL whose path or query decodes to a NUL character (`%00`):
 * PostgreSQL refuses NUL in text, so it would fail as a server error.
 */
export function noNulInUrls(app: FastifyInstance): void {
  app.addHook('onRequest', async (request) => {
    if (request.url.includes('%00')) {
      throw Object.assign(new Error('the URL holds a NUL character (%00)'), { statusCode: 400, code: 'invalid_request' });
    }
  });
}

/**
 * Refuses query-string numbers that are not finite. The schema validator
 * coerces `?limit=1e400` or `?limit=Infinity` to Infinity and lets it through
 * `maximum`, and the database then fails on it.
 */
export function finiteQueryNumbers(app: FastifyInstance): void {
  app.addHook('preHandler', async (request) => {
    const q = request.query as Record<string, unknown> | undefined;
    if (!q || typeof q !== 'object') return;
    for (const [k, v] of Object.entries(q)) {
      for (const x of Array.isArray(v) ? v : [v]) {
        if (typeof x === 'number' && !Number.isFinite(x)) {
          throw Object.assign(new Error(`querystring/${k} must be a finite number`), { statusCode: 400, code: 'invalid_request' });
        }
      }
    }
  });
}

/** The one error handler: 4xx for the caller's mistakes with a code, opaque 500 for ours (logged). */
export function errorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => {
    const { status, body, headers, internal } = toHttpError(err);
    if (internal) request.log.error({ err }, 'request failed');
    else request.log.info({ code: body.code, status }, body.message);
    // Refused before the whole body arrived (an upload over the limit): the rest of it is still on the wire and
    // the stream was torn down, so the connection cannot carry another request. Close it, or the client's next
    // request on it would hang.
    if (!request.raw.complete) void reply.header('connection', 'close');
    void reply.code(status).headers(headers).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` });
  });
  // Node answers an Expect header other than 100-continue with a bare 417 before any route runs.
  app.server.on('checkExpectation', (_req, res) => {
    res.writeHead(417, { 'content-type': 'application/json', connection: 'close' });
    res.end(JSON.stringify({ code: 'expectation_failed', message: 'only "Expect: 100-continue" is supported' }));
  });
}

/**
 * Answers requests Node's HTTP parser refuses before any route sees them
 * (oversized headers, a malformed request line, an unknown method, a request
 * timeout) with the same `{code, message}` shape as every other error;
 * Fastify's default writes `{error, message, statusCode}`.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'headers_too_large', 'the request line and headers are too large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request_timeout', 'the request took too long to arrive']
        : [400, 'malformed_request', 'the request is not valid HTTP/1.1'];
  const body = JSON.stringify({ code, message });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/** Sends exact bytes with an ETag; answers 304 when the client already has them. */
export function sendBytes(request: FastifyRequest, reply: FastifyReply, bytes: Uint8Array, checksum: string, contentType = 'application/json'): FastifyReply {
  const etag = `"${checksum}"`;
  const inm = request.headers['if-none-match'];
  if (typeof inm === 'string' && inm.split(',').some((t) => t.trim() === etag || t.trim() === `W/${etag}`)) {
    return reply.code(304).header('etag', etag).send();
  }
  return reply
    .code(200)
    .header('content-type', contentType)
    .header('etag', etag)
    .header('cache-control', 'no-cache')
    .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

export interface RangeResult {
  readonly status: 200 | 206 | 416;
  readonly start: number;
  readonly end: number;
}

/** Parses a single `Range: bytes=a-b` (also `a-` and `-n`); anything else is served whole. */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (!header) return { status: 200, start: 0, end: size - 1 };
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return { status: 200, start: 0, end: size - 1 };
  let start: number;
  let end: number;
  if (m[1] === '') {
    const n = Number(m[2]);
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (!Number.isSafeInteger(start) || start >= size || end < start) return { status: 416, start: 0, end: size - 1 };
  return { status: 206, start, end };
}

/** Streams a blob honouring Range (206, 416) and HEAD. */
export function sendRanged(
  request: FastifyRequest,
  reply: FastifyReply,
  size: number,
  open: (range?: { start: number; end: number }) => Readable,
  etag?: string,
): FastifyReply {
  reply.header('accept-ranges', 'bytes');
  if (etag) reply.header('etag', `"${etag}"`);
  reply.header('content-type', 'application/octet-stream');
  const rangeHeader = typeof request.headers.range === 'string' ? request.headers.range : undefined;
  // A conditional range for another version of the file is served whole.
  const ifRange = request.headers['if-range'];
  const r =
    size === 0
      ? ({ status: 200, start: 0, end: -1 } as RangeResult)
      : parseRange(typeof ifRange === 'string' && etag && ifRange !== `"${etag}"` ? undefined : rangeHeader, size);
  if (r.status === 416)
    return (
      reply
        .code(416)
        .header('content-range', `bytes */${size}`)
        // JSON, not the image's octet-stream type set above (Fastify refuses to send an object as octet-stream: a 500).
        .header('content-type', 'application/json')
        .send({ code: 'range_not_satisfiable', message: `the file has ${size} bytes` })
    );
  const length = r.end - r.start + 1;
  reply.header('content-length', String(Math.max(0, length)));
  if (r.status === 206) reply.code(206).header('content-range', `bytes ${r.start}-${r.end}/${size}`);
  else reply.code(200);
  if (request.method === 'HEAD' || length <= 0) return reply.send();
  return reply.send(open(r.status === 206 ? { start: r.start, end: r.end } : undefined));
}

/** Async iterable over a request body stream, for streaming uploads. */
export function bodyStream(request: FastifyRequest): AsyncIterable<Uint8Array> {
  return request.raw as unknown as AsyncIterable<Uint8Array>;
}
