/**
 * A deliberately small HTTP GET for the TUF client: every download has a byte
 * limit (endless-data attack), an idle timeout and an overall deadline
 * (slow-retrieval attack), follows a few redirects, and hands the body to a
 * sink chunk by chunk so that large targets never sit in memory.
 */
import http from 'node:http';
import https from 'node:https';
import { EndlessDataError, SlowRetrievalError } from '@uptide/core';

/** A download that did not produce a 200 response, or failed on the network. */
export class DownloadError extends Error {
  /** `HTTP_STATUS` (see `status`), `NETWORK`, or `BAD_URL`. */
  readonly code: 'HTTP_STATUS' | 'NETWORK' | 'BAD_URL';
  readonly status: number | undefined;
  readonly url: string;

  constructor(code: DownloadError['code'], message: string, url: string, status?: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'DownloadError';
    this.code = code;
    this.url = url;
    this.status = status;
  }
}

export interface DownloadOptions {
  /** More bytes than this is an endless-data attack. */
  readonly maxBytes: number;
  /** No byte for this long is a slow-retrieval attack (default 30 s). */
  readonly idleTimeoutMs?: number;
  /** The whole download must end within this (default 5 min). */
  readonly totalTimeoutMs?: number;
  /** Redirects followed (default 5). */
  readonly maxRedirects?: number;
}

const DEFAULT_IDLE_MS = 30_000;
const DEFAULT_TOTAL_MS = 300_000;

/**
 * GETs `url` and passes each chunk of the body to `sink` (awaited, so a slow
 * disk applies back-pressure). Rejects on any status but 200.
 */
export async function download(url: string, options: DownloadOptions, sink: (chunk: Buffer) => void | Promise<void>): Promise<number> {
  const deadline = Date.now() + (options.totalTimeoutMs ?? DEFAULT_TOTAL_MS);
  let current = url;
  for (let redirects = 0; ; redirects++) {
    const res = await open(current, options, deadline);
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if ([301, 302, 303, 307, 308].includes(status) && location !== undefined) {
      res.destroy();
      if (redirects >= (options.maxRedirects ?? 5)) throw new DownloadError('NETWORK', `too many redirects from ${url}`, url);
      current = new URL(location, current).toString();
      continue;
    }
    if (status !== 200) {
      res.destroy();
      throw new DownloadError('HTTP_STATUS', `GET ${current}: HTTP ${status}`, current, status);
    }
    return readBody(res, current, options, deadline, sink);
  }
}

/** GETs `url` into memory (metadata). */
export async function downloadBytes(url: string, options: DownloadOptions): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  await download(url, options, (c) => {
    chunks.push(c);
  });
  return Buffer.concat(chunks);
}

function open(url: string, options: DownloadOptions, deadline: number): Promise<http.IncomingMessage> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    return Promise.reject(new DownloadError('BAD_URL', `not a URL: ${url}`, url, undefined, err));
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return Promise.reject(new DownloadError('BAD_URL', `unsupported URL scheme ${parsed.protocol} in ${url}`, url));
  }
  const get = parsed.protocol === 'https:' ? https.get : http.get;
  return new Promise((resolve, reject) => {
    const remaining = deadline - Date.now();
    const req = get(parsed, { agent: false, headers: { accept: '*/*', 'user-agent': 'uptide-tuf' } }, (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    const timer = setTimeout(
      () => req.destroy(new SlowRetrievalError(`GET ${url}: no response within ${options.totalTimeoutMs ?? DEFAULT_TOTAL_MS} ms`)),
      Math.max(0, remaining),
    );
    req.setTimeout(options.idleTimeoutMs ?? DEFAULT_IDLE_MS, () => {
      req.destroy(new SlowRetrievalError(`GET ${url}: no data for ${options.idleTimeoutMs ?? DEFAULT_IDLE_MS} ms`));
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof SlowRetrievalError ? err : new DownloadError('NETWORK', `GET ${url}: ${err.message}`, url, undefined, err));
    });
  });
}

async function readBody(
  res: http.IncomingMessage,
  url: string,
  options: DownloadOptions,
  deadline: number,
  sink: (chunk: Buffer) => void | Promise<void>,
): Promise<number> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > options.maxBytes) {
    res.destroy();
    throw new EndlessDataError(`GET ${url}: ${declared} bytes announced, more than the limit of ${options.maxBytes}`);
  }
  const idleMs = options.idleTimeoutMs ?? DEFAULT_IDLE_MS;
  res.setTimeout(idleMs, () => res.destroy(new SlowRetrievalError(`GET ${url}: no data for ${idleMs} ms`)));
  const timer = setTimeout(
    () => res.destroy(new SlowRetrievalError(`GET ${url}: not finished within ${options.totalTimeoutMs ?? DEFAULT_TOTAL_MS} ms`)),
    Math.max(0, deadline - Date.now()),
  );
  let total = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      total += chunk.byteLength;
      if (total > options.maxBytes) throw new EndlessDataError(`GET ${url}: more than the limit of ${options.maxBytes} bytes`);
      await sink(chunk);
    }
  } catch (err) {
    if (err instanceof EndlessDataError || err instanceof SlowRetrievalError) throw err;
    throw new DownloadError('NETWORK', `GET ${url}: ${err instanceof Error ? err.message : String(err)}`, url, undefined, err);
  } finally {
    clearTimeout(timer);
    res.destroy();
  }
  // A body cut short of its announced length is a failed download, not a short file.
  if (Number.isFinite(declared) && total !== declared) throw new DownloadError('NETWORK', `GET ${url}: got ${total} of ${declared} bytes`, url);
  return total;
}
