/**
 * The device's HTTP client, on node:http/node:https rather than fetch because
 * every transfer needs what the Uptane Standard asks of a download:
 *
 * - a byte limit (§6.6): a Content-Length above it is refused before reading,
 *   and reading stops the moment the body goes past it (EndlessDataError);
 * - a minimum average speed over a sliding window (§5.4, slow retrieval):
 *   below it the transfer is aborted (SlowRetrievalError);
 * - connect and idle timeouts, no compression (aktualizr sends no Accept-Encoding);
 * - TLS client certificates and a private CA, but only towards the configured
 *   servers: other hosts (a redirect to a CDN, an image `uri`) get the system CAs
 *   and no client certificate;
 * - images streamed to disk with sha256 and sha512 computed on the way in,
 *   resumed with `Range: bytes=n-` when a partial file exists.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, truncate } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EndlessDataError, MultiHasher, SlowRetrievalError, UptaneError } from '@uptide/core';
import { fileSize } from '../state/atomic.js';

export type HttpErrorCode = 'HTTP_STATUS' | 'NETWORK' | 'TIMEOUT' | 'INSECURE_URL' | 'TOO_MANY_REDIRECTS' | 'BAD_RESPONSE';

/** A transfer that failed for a reason other than an Uptane check (network, status, timeout). */
export class HttpError extends Error {
  constructor(
    readonly code: HttpErrorCode,
    message: string,
    readonly url: string,
    readonly status: number | undefined = undefined,
    /** The start of the response body, for error codes such as `device_already_registered`. */
    readonly body: Buffer | undefined = undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'HttpError';
  }

  /** Worth another try: network trouble or a server error. */
  get retryable(): boolean {
    return this.code === 'NETWORK' || this.code === 'TIMEOUT' || (this.code === 'HTTP_STATUS' && (this.status ?? 0) >= 500);
  }
}

export interface TlsMaterial {
  /** CA certificates (PEM) for the configured servers. */
  readonly ca?: string | Buffer | undefined;
  /** Client certificate chain (PEM). */
  readonly cert?: string | Buffer | undefined;
  /** Client private key (PEM). */
  readonly key?: string | Buffer | undefined;
}

export interface SpeedLimit {
  /** Minimum average bytes per second over the window; 0 disables the check. */
  readonly bytesPerSecond: number;
  readonly windowMs: number;
}

export interface HttpClientOptions {
  readonly allowInsecureHttp?: boolean;
  readonly tls?: TlsMaterial | undefined;
  /** Origins (`https://host:port`) that get the TLS material above. */
  readonly trustedOrigins?: readonly string[];
  readonly connectTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  readonly minSpeed?: SpeedLimit;
  /** Extra tries after a retryable failure (aktualizr: 2, 1 s apart). */
  readonly retries?: number;
  readonly retryDelayMs?: number;
  readonly userAgent?: string;
  readonly maxRedirects?: number;
}

export interface RequestOptions {
  readonly body?: Uint8Array | string | undefined;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Largest response body accepted. */
  readonly maxBytes: number;
  /** Retry retryable failures (default true for GET, false otherwise). */
  readonly retry?: boolean;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly url: string;
}

export interface DownloadOptions {
  /** At most this many bytes in all (for an image: its length from Targets). */
  readonly maxBytes: number;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface DownloadResult {
  readonly length: number;
  /** sha256 and sha512 of the whole file, hex. */
  readonly hashes: Record<string, string>;
  /** Bytes that were already on disk from an earlier attempt and were kept. */
  readonly resumedFrom: number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Average speed over a sliding window, sampled a few times per window, so that
 * a connection that trickles (or stalls) is caught even while bytes still arrive.
 */
class SpeedMonitor {
  private total = 0;
  private readonly samples: number[] = [];
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly ticksPerWindow = 5;

  constructor(limit: SpeedLimit | undefined, onSlow: (message: string) => void) {
    if (!limit || limit.bytesPerSecond <= 0) return;
    const tick = limit.windowMs / this.ticksPerWindow;
    this.samples.push(0);
    this.timer = setInterval(() => {
      this.samples.push(this.total);
      if (this.samples.length <= this.ticksPerWindow) return;
      if (this.samples.length > this.ticksPerWindow + 1) this.samples.shift();
      const inWindow = this.total - (this.samples[0] as number);
      const needed = (limit.bytesPerSecond * limit.windowMs) / 1000;
      if (inWindow < needed) {
        onSlow(`${inWindow} bytes in the last ${limit.windowMs / 1000} s, below the minimum of ${limit.bytesPerSecond} bytes/s`);
      }
    }, tick);
    this.timer.unref();
  }

  add(n: number): void {
    this.total += n;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

interface Exchange {
  readonly res: http.IncomingMessage;
  readonly url: string;
  /** Aborts the transfer with an error (the body stream then errors). */
  readonly fail: (err: Error) => void;
  /** Stops the timers; always call it when done with the exchange. */
  readonly finish: () => void;
  /** The first reason the transfer was aborted for (a limit, a timeout), which wins over the socket error it causes. */
  readonly failure: () => Error | undefined;
  readonly monitor: SpeedMonitor;
}

export class HttpClient {
  private readonly trustedAgent: https.Agent;
  private readonly publicAgent: https.Agent;
  private readonly plainAgent: http.Agent;
  private readonly trusted: Set<string>;
  private readonly connectTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly userAgent: string;
  private readonly maxRedirects: number;

  constructor(private readonly options: HttpClientOptions = {}) {
    this.trusted = new Set((options.trustedOrigins ?? []).map((o) => new URL(o).origin));
    const tls = options.tls ?? {};
    this.trustedAgent = new https.Agent({ keepAlive: true, ca: tls.ca, cert: tls.cert, key: tls.key });
    this.publicAgent = new https.Agent({ keepAlive: true });
    this.plainAgent = new http.Agent({ keepAlive: true });
    this.connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.retries = options.retries ?? 2;
    this.retryDelayMs = options.retryDelayMs ?? 1000;
    this.userAgent = options.userAgent ?? 'uptide-device';
    this.maxRedirects = options.maxRedirects ?? 10;
  }

  /** Closes idle keep-alive connections (call before exiting). */
  close(): void {
    this.trustedAgent.destroy();
    this.publicAgent.destroy();
    this.plainAgent.destroy();
  }

  private agentFor(url: URL): http.Agent {
    if (url.protocol === 'http:') return this.plainAgent;
    return this.trusted.has(url.origin) ? this.trustedAgent : this.publicAgent;
  }

  /** Opens a request and resolves with the response head; follows redirects. */
  private async open(
    method: string,
    urlText: string,
    opts: { body?: Uint8Array | string; contentType?: string; headers?: Readonly<Record<string, string>> },
  ): Promise<Exchange> {
    let current = urlText;
    let currentMethod = method;
    let body = opts.body;
    for (let hop = 0; ; hop++) {
      const ex = await this.openOnce(currentMethod, current, body, opts.contentType, opts.headers);
      const status = ex.res.statusCode ?? 0;
      const location = ex.res.headers.location;
      if (!REDIRECTS.has(status) || location === undefined) return ex;
      ex.res.resume();
      ex.finish();
      if (hop >= this.maxRedirects) throw new HttpError('TOO_MANY_REDIRECTS', `more than ${this.maxRedirects} redirects`, urlText);
      current = new URL(location, current).toString();
      // 303 turns into a GET; aktualizr (curl) keeps the method for the others.
      if (status === 303) {
        currentMethod = 'GET';
        body = undefined;
      }
    }
  }

  private openOnce(
    method: string,
    urlText: string,
    body: Uint8Array | string | undefined,
    contentType: string | undefined,
    extraHeaders: Readonly<Record<string, string>> | undefined,
  ): Promise<Exchange> {
    let url: URL;
    try {
      url = new URL(urlText);
    } catch (err) {
      return Promise.reject(new HttpError('BAD_RESPONSE', `not a URL: ${urlText}`, urlText, undefined, undefined, { cause: err }));
    }
    if (url.protocol === 'http:' && !this.options.allowInsecureHttp) {
      return Promise.reject(new HttpError('INSECURE_URL', `refusing plain http (allow_insecure_http is off): ${urlText}`, urlText));
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return Promise.reject(new HttpError('INSECURE_URL', `unsupported URL scheme ${url.protocol}`, urlText));
    }
    const headers: Record<string, string> = { Accept: '*/*', 'User-Agent': this.userAgent, ...(extraHeaders ?? {}) };
    const payload = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    if (payload !== undefined) {
      headers['Content-Type'] = contentType ?? 'application/json';
      headers['Content-Length'] = String(payload.byteLength);
    }
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise<Exchange>((resolveOpen, rejectOpen) => {
      let settled = false;
      let failure: Error | undefined;
      let connectTimer: NodeJS.Timeout | undefined;
      const req = lib.request(url, { method, headers, agent: this.agentFor(url) });
      // Speed is measured on the body, from the response head on: a server slow to connect or
      // to answer is a timeout (not necessarily an attack); one that trickles its body is slow retrieval.
      let monitor: SpeedMonitor | undefined;
      const fail = (err: Error): void => {
        if (failure) return;
        failure = err;
        monitor?.stop();
        if (connectTimer) clearTimeout(connectTimer);
        req.destroy(err);
        if (!settled) {
          settled = true;
          rejectOpen(err);
        }
      };
      const finish = (): void => {
        monitor?.stop();
        if (connectTimer) clearTimeout(connectTimer);
      };
      req.on('socket', (socket: Socket) => {
        // A reused keep-alive socket is already connected.
        if ((socket as Socket & { connecting?: boolean }).connecting) {
          connectTimer = setTimeout(
            () => fail(new HttpError('TIMEOUT', `no connection to ${url.host} within ${this.connectTimeoutMs} ms`, urlText)),
            this.connectTimeoutMs,
          );
          socket.once('connect', () => connectTimer && clearTimeout(connectTimer));
        }
      });
      req.setTimeout(this.idleTimeoutMs, () => fail(new HttpError('TIMEOUT', `no data from ${url.host} for ${this.idleTimeoutMs} ms`, urlText)));
      req.on('error', (err) => {
        const e =
          err instanceof UptaneError || err instanceof HttpError
            ? err
            : new HttpError('NETWORK', `${method} ${urlText}: ${err.message}`, urlText, undefined, undefined, { cause: err });
        if (!failure) failure = e;
        finish();
        if (!settled) {
          settled = true;
          rejectOpen(e);
        }
      });
      req.on('response', (res) => {
        if (connectTimer) clearTimeout(connectTimer);
        settled = true;
        monitor = new SpeedMonitor(this.options.minSpeed, (m) => fail(new SlowRetrievalError(`slow retrieval of ${urlText}: ${m}`)));
        resolveOpen({ res, url: urlText, fail, finish, monitor, failure: () => failure });
      });
      req.end(payload);
    });
  }

  /**
   * Reads a whole response body into memory, up to maxBytes (checked against
   * Content-Length first, then against the bytes received).
   */
  private async readBody(ex: Exchange, maxBytes: number): Promise<Buffer> {
    const { res } = ex;
    try {
      checkContentLength(res, maxBytes, ex.url, 0);
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const chunk of res as AsyncIterable<Buffer>) {
        ex.monitor.add(chunk.length);
        n += chunk.length;
        if (n > maxBytes) {
          const err = new EndlessDataError(`${ex.url} sent more than ${maxBytes} bytes`);
          ex.fail(err);
          throw err;
        }
        chunks.push(chunk);
      }
      if (!res.complete) throw new HttpError('NETWORK', `${ex.url}: the connection closed before the end of the body`, ex.url);
      return Buffer.concat(chunks, n);
    } catch (err) {
      const reason = ex.failure() ?? normalize(err, ex.url);
      ex.fail(reason);
      throw reason;
    } finally {
      ex.finish();
    }
  }

  /** Any request; resolves with the status and body whatever the status (throws on transport errors and limits). */
  async request(method: string, url: string, opts: RequestOptions): Promise<HttpResponse> {
    const retry = opts.retry ?? method === 'GET';
    return this.withRetries(retry, async () => {
      const ex = await this.open(method, url, opts);
      const body = await this.readBody(ex, opts.maxBytes);
      const status = ex.res.statusCode ?? 0;
      if (status >= 500) throw new HttpError('HTTP_STATUS', `${method} ${url}: HTTP ${status}`, url, status, body.subarray(0, 4096));
      return { status, headers: ex.res.headers, body, url };
    }).catch((err: unknown) => {
      // A final 5xx is still a response the caller may want to look at.
      if (err instanceof HttpError && err.code === 'HTTP_STATUS' && err.status !== undefined) {
        return { status: err.status, headers: {}, body: err.body ?? Buffer.alloc(0), url };
      }
      throw err;
    });
  }

  /** GET that succeeds only with a 2xx body of at most maxBytes. */
  async get(url: string, maxBytes: number): Promise<Buffer> {
    const res = await this.request('GET', url, { maxBytes });
    if (res.status < 200 || res.status >= 300)
      throw new HttpError('HTTP_STATUS', `GET ${url}: HTTP ${res.status}`, url, res.status, res.body.subarray(0, 4096));
    return res.body;
  }

  /** GET that returns undefined on 404 (or 410): "does not exist", as for the next root version. */
  async getOptional(url: string, maxBytes: number): Promise<Buffer | undefined> {
    const res = await this.request('GET', url, { maxBytes });
    if (res.status === 404 || res.status === 410) return undefined;
    if (res.status < 200 || res.status >= 300)
      throw new HttpError('HTTP_STATUS', `GET ${url}: HTTP ${res.status}`, url, res.status, res.body.subarray(0, 4096));
    return res.body;
  }

  private async withRetries<T>(enabled: boolean, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!enabled || attempt >= this.retries || !(err instanceof HttpError) || !err.retryable) throw err;
        await sleep(this.retryDelayMs);
      }
    }
  }

  /**
   * Downloads to `file`, resuming a partial file left by an earlier attempt
   * (`Range: bytes=n-`; a 206 appends, a 200 starts again from byte 0). The
   * file never grows beyond maxBytes: more is EndlessDataError and the file is
   * deleted. Network failures keep the partial file for the next attempt.
   */
  async download(url: string, file: string, opts: DownloadOptions): Promise<DownloadResult> {
    return this.withRetries(true, () => this.downloadOnce(url, file, opts));
  }

  private async downloadOnce(url: string, file: string, opts: DownloadOptions): Promise<DownloadResult> {
    let offset = (await fileSize(file)) ?? 0;
    if (offset > opts.maxBytes) {
      await rm(file, { force: true });
      offset = 0;
    }
    const hasher = new MultiHasher();
    if (offset > 0) await hashFile(file, offset, hasher);
    // A complete file from an earlier attempt (e.g. interrupted after the last byte): nothing left to fetch.
    if (offset === opts.maxBytes) return { length: offset, hashes: hasher.digest(), resumedFrom: offset };

    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (offset > 0) headers['Range'] = `bytes=${offset}-`;
    const ex = await this.open('GET', url, { headers });
    const { res } = ex;
    const status = res.statusCode ?? 0;
    let start = offset;
    let sink = hasher;
    try {
      if (status === 206 && offset > 0) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
        if (!m || Number(m[1]) !== offset) {
          throw new HttpError('BAD_RESPONSE', `${url}: Content-Range ${String(res.headers['content-range'])} does not continue at byte ${offset}`, url, status);
        }
      } else if (status === 200) {
        // The server ignored the Range (or there was none): start over.
        start = 0;
        sink = new MultiHasher();
      } else if (status === 416) {
        res.resume();
        await rm(file, { force: true });
        throw new HttpError('NETWORK', `${url}: range ${offset}- not satisfiable; restarting the download`, url, status);
      } else {
        const body = await this.readBody(ex, 4096).catch(() => Buffer.alloc(0));
        throw new HttpError('HTTP_STATUS', `GET ${url}: HTTP ${status}`, url, status, body);
      }
      checkContentLength(res, opts.maxBytes - start, url, start);
      if (start === 0) await truncateOrCreate(file);
      let written = start;
      const monitor = ex.monitor;
      const limiter = new Transform({
        transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
          monitor.add(chunk.length);
          written += chunk.length;
          if (written > opts.maxBytes) {
            cb(new EndlessDataError(`${url} sent more than the ${opts.maxBytes} bytes its metadata allows`));
            return;
          }
          sink.update(chunk);
          cb(null, chunk);
        },
      });
      await pipeline(res, limiter, createWriteStream(file, { flags: 'a', mode: 0o600 }));
      if (!res.complete) throw new HttpError('NETWORK', `${url}: the connection closed after ${written} bytes`, url);
      return { length: written, hashes: sink.digest(), resumedFrom: start };
    } catch (err) {
      const reason = ex.failure() ?? normalize(err, url);
      ex.fail(reason);
      // Bytes past the limit were never written, but the file is poisoned: start from scratch next time.
      if (reason instanceof EndlessDataError) await rm(file, { force: true });
      throw reason;
    } finally {
      ex.finish();
    }
  }
}

/** Refuses a declared body larger than allowed before a byte is read. */
function checkContentLength(res: http.IncomingMessage, maxBytes: number, url: string, offset: number): void {
  const cl = res.headers['content-length'];
  if (cl === undefined) return;
  const n = Number(cl);
  if (Number.isSafeInteger(n) && n > maxBytes) {
    throw new EndlessDataError(`${url} announces ${offset + n} bytes, more than the ${offset + maxBytes} allowed`);
  }
}

function normalize(err: unknown, url: string): Error {
  if (err instanceof UptaneError || err instanceof HttpError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ERR_STREAM_PREMATURE_CLOSE' || e?.code === 'ECONNRESET' || e?.code === 'EPIPE') {
    return new HttpError('NETWORK', `${url}: the connection closed early`, url, undefined, undefined, { cause: err });
  }
  if (e?.code === 'ENOSPC' || e?.code === 'EACCES' || e?.code === 'EROFS') return e;
  return new HttpError('NETWORK', `${url}: ${e?.message ?? String(err)}`, url, undefined, undefined, { cause: err });
}

async function hashFile(file: string, length: number, hasher: MultiHasher): Promise<void> {
  for await (const chunk of createReadStream(file, { start: 0, end: length - 1 }) as AsyncIterable<Buffer>) hasher.update(chunk);
}

async function truncateOrCreate(file: string): Promise<void> {
  try {
    await truncate(file, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
