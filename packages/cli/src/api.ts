/**
 * The admin API client. Everything the CLI asks of the server goes through
 * here over HTTP, and every failure becomes a CliError that says what to do
 * next: server down, wrong token, unknown device or image, stale checksum.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { CliError, type CliIo } from './io.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:8080';

export interface ApiResponse {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

export interface RequestOptions {
  /** JSON value, bytes, or a stream (with its length, for uploads). */
  readonly body?: unknown;
  readonly stream?: { readonly source: Readable; readonly length: number };
  readonly headers?: Record<string, string>;
  /** Status codes the caller handles itself (no error is thrown for them). */
  readonly accept?: readonly number[];
  /** Milliseconds without any byte moving before the request is abandoned. */
  readonly idleTimeoutMs?: number;
}

/** Hints per error code of the server, for the errors an operator meets most. */
const HINTS: Record<string, string> = {
  device_not_found: 'list the devices with: uptide devices list',
  image_not_found: 'list the images with: uptide images list',
  target_not_found: 'list the images with: uptide images list',
  group_not_found: 'list the groups with: uptide groups list',
  update_not_found: 'list the updates with: uptide updates list',
  not_a_member: 'see the members with: uptide groups show GROUP',
  targets_offline:
    'the targets key is offline: add images with "uptide keys targets add FILE --name N --version V --hardware-id HW", then "uptide keys targets sign --key NAME" and "uptide keys targets push"',
  role_checksum_mismatch: 'someone changed targets.json since you pulled it: run "uptide keys targets pull", re-apply your changes, sign and push again',
  role_checksum_required: 'pull targets.json first: uptide keys targets pull',
  ambiguous_image: 'give the image filename instead of NAME@VERSION (see: uptide images list)',
  device_exists: 'the device exists already: see it with "uptide devices show DEVICE_ID"',
  group_exists: 'the group exists already: see it with "uptide groups list"',
  in_flight: 'the device has already fetched the update; it can no longer be cancelled',
  key_must_stay_online: 'snapshot and timestamp (and the Director targets) are signed online by the server; rotate them with a new root instead',
  delegation_not_found: 'add the delegation to the top-level targets first: uptide keys delegate NAME --paths … --key SUPPLIER.pub, then sign and push',
  no_devices: 'give devices with --devices ID[,ID…] or a group that has members (uptide groups add GROUP DEVICE)',
  arbitrary_software: 'not enough valid signatures from the keys the root names: see "uptide keys verify-root" for which keys count',
  rollback: 'the server already has this version or a newer one: pull the current metadata and start again',
};

/** The URL path of a target filename (each segment encoded, slashes kept). */
export function filenamePath(filename: string): string {
  return filename.split('/').map(encodeURIComponent).join('/');
}

export class AdminApi {
  readonly server: string;
  private readonly explicitToken: string | undefined;

  constructor(
    private readonly io: CliIo,
    options: { server?: string | undefined; token?: string | undefined } = {},
  ) {
    const server = options.server ?? io.env['UPTIDE_SERVER'] ?? DEFAULT_SERVER;
    let url: URL;
    try {
      url = new URL(server);
    } catch {
      throw new CliError(`the server URL ${JSON.stringify(server)} is not a URL`, {
        hint: 'give the admin API URL, e.g. --server http://127.0.0.1:8080',
        code: 'usage',
        exitCode: 2,
      });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new CliError(`the server URL must be http:// or https://, not ${url.protocol}`, { code: 'usage', exitCode: 2 });
    }
    this.server = server.replace(/\/+$/, '');
    this.explicitToken = options.token ?? io.env['UPTIDE_TOKEN'];
  }

  /** The API token: --token, UPTIDE_TOKEN, or ./data/admin-token (what `npm start` writes). */
  token(): string {
    if (this.explicitToken !== undefined && this.explicitToken !== '') return this.explicitToken.trim();
    const file = resolve(this.io.cwd, 'data', 'admin-token');
    try {
      const t = readFileSync(file, 'utf8').trim();
      if (t) return t;
    } catch {
      // Reported below with what to do.
    }
    throw new CliError('no API token', {
      hint: `set UPTIDE_TOKEN or --token; the server writes its first token to <data dir>/admin-token (looked for ${file})`,
      code: 'no_token',
    });
  }

  async request(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse> {
    const url = new URL(this.server + path);
    const headers: Record<string, string> = { accept: 'application/json', authorization: `Bearer ${this.token()}`, ...(options.headers ?? {}) };
    let payload: Buffer | undefined;
    if (options.stream) {
      headers['content-type'] ??= 'application/octet-stream';
      headers['content-length'] = String(options.stream.length);
    } else if (options.body !== undefined) {
      if (options.body instanceof Uint8Array) {
        payload = Buffer.from(options.body);
        headers['content-type'] ??= 'application/json';
      } else {
        payload = Buffer.from(JSON.stringify(options.body), 'utf8');
        headers['content-type'] = 'application/json';
      }
      headers['content-length'] = String(payload.length);
    }
    const res = await new Promise<ApiResponse>((resolvePromise, reject) => {
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method, headers });
      req.setTimeout(options.idleTimeoutMs ?? 60_000, () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.on('response', (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('error', reject);
        r.on('end', () => resolvePromise({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(chunks) }));
      });
      if (options.stream) {
        options.stream.source.on('error', (err) => req.destroy(err));
        options.stream.source.pipe(req);
      } else {
        req.end(payload);
      }
    }).catch((err: unknown) => {
      throw this.networkError(err);
    });
    if ((res.status >= 200 && res.status < 300) || options.accept?.includes(res.status)) return res;
    throw this.apiError(method, path, res);
  }

  async json<T>(method: string, path: string, body?: unknown, options: Omit<RequestOptions, 'body'> = {}): Promise<T> {
    const res = await this.request(method, path, { ...options, body });
    return parseBody<T>(res, this.server);
  }

  get<T>(path: string): Promise<T> {
    return this.json<T>('GET', path);
  }

  private networkError(err: unknown): CliError {
    if (err instanceof CliError) return err;
    const code = (err as { code?: string }).code ?? '';
    const why = err instanceof Error ? err.message : String(err);
    if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE'].includes(code)) {
      return new CliError(`cannot reach the Uptide server at ${this.server} (${code || why})`, {
        hint: 'is it running? Start it with "npm start", or point UPTIDE_SERVER or --server at its admin API (default http://127.0.0.1:8080)',
        code: 'server_unreachable',
        cause: err,
      });
    }
    return new CliError(`request to ${this.server} failed: ${why}`, { code: 'network_error', cause: err });
  }

  private apiError(method: string, path: string, res: ApiResponse): CliError {
    let code = `http_${res.status}`;
    let message = res.body.toString('utf8').slice(0, 500);
    try {
      const b = JSON.parse(res.body.toString('utf8')) as { code?: unknown; message?: unknown };
      if (typeof b.code === 'string') code = b.code;
      if (typeof b.message === 'string') message = b.message;
    } catch {
      // Not JSON: keep the text.
    }
    if (res.status === 401) {
      return new CliError(`the server at ${this.server} refused the API token (${message})`, {
        hint: 'set UPTIDE_TOKEN or --token to a valid token; the first one is in <data dir>/admin-token where the server runs',
        code: 'unauthorized',
      });
    }
    if (res.status >= 500) {
      return new CliError(`the server failed on ${method} ${path} (${res.status} ${code}: ${message})`, { hint: 'see the server log', code });
    }
    if (res.status === 404 && (code === 'http_404' || /^(Route .* not found|no route )/.test(message))) {
      return new CliError(`the server at ${this.server} has no ${method} ${path}`, {
        hint: 'is UPTIDE_SERVER the admin API (port 8080 by default), not the device gateway?',
        code: 'no_such_route',
      });
    }
    return new CliError(message || `${method} ${path}: HTTP ${res.status}`, { hint: HINTS[code], code });
  }
}

export function parseBody<T>(res: ApiResponse, server: string): T {
  if (res.body.length === 0) return undefined as T;
  try {
    return JSON.parse(res.body.toString('utf8')) as T;
  } catch {
    throw new CliError(`the server at ${server} answered something that is not JSON`, {
      hint: 'is UPTIDE_SERVER the Uptide admin API?',
      code: 'bad_response',
    });
  }
}
