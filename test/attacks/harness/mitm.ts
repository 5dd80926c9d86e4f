/**
 * A man in the middle between devices and the real server's gateway
 * (capability (a) of the Standard's threat model, uptane-standard.md §9).
 *
 * Devices trust the proxy's own CA (so the attacker can read and change the
 * traffic, as one who broke TLS or holds a CA could); the proxy reaches the
 * gateway over mTLS with the device's own credentials, found by the CN of the
 * client certificate the device presents to it. Every exchange is recorded
 * (request and response bytes), so earlier responses can be replayed later.
 *
 * Rules change responses: replace the body or status, replay recorded bytes,
 * truncate, delay, trickle, drop the connection, inflate without end, send
 * no Content-Length or a false one. The first matching rule applies.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { TestPki } from '../../../packages/client/src/testing/pki.js';

export interface DeviceCredentials {
  readonly cert: string;
  readonly key: string;
}

/** One exchange as the proxy saw it (the response as the server sent it, before any rule). */
export interface Exchange {
  readonly device: string | undefined;
  readonly method: string;
  /** Path and query as the device asked for it. */
  readonly path: string;
  /** The request body as the device sent it. */
  readonly requestBody: Buffer;
  readonly status: number;
  readonly body: Buffer;
  /** The rule that changed the answer, if any. */
  readonly tampered: boolean;
}

export interface Rule {
  /** Path (exact) or pattern, e.g. `/director/timestamp.json`, /^\/repo\/targets\//. */
  readonly path: string | RegExp;
  readonly method?: string;
  /** Only this device (its certificate CN). */
  readonly device?: string;
  /** Answer with this status. */
  readonly status?: number;
  /** Replace the body: bytes, text, or a function of the server's answer. */
  readonly body?: Uint8Array | string | ((upstream: Buffer) => Uint8Array | string);
  /** Wait before the response head. */
  readonly delayMs?: number;
  /** Send the body at this rate (bytes per second). */
  readonly bytesPerSecond?: number;
  /** Send no Content-Length (chunked). */
  readonly dropContentLength?: boolean;
  /** Announce this Content-Length, whatever is sent. */
  readonly contentLength?: number;
  /** Junk instead of the body: forever (until the device hangs up) or this many bytes. */
  readonly endless?: true | number;
  /** Close the connection after this many body bytes. */
  readonly cutAfter?: number;
  /** Close the connection without any answer (a reset). */
  readonly reset?: boolean;
  /** Rewrite the request body on its way to the server (the answer is then the server's, unless changed too). */
  readonly request?: (body: Buffer) => Uint8Array | string;
  /** Apply to this many requests, then stop. */
  readonly times?: number;
}

export interface RuleHandle {
  readonly hits: number;
  remove(): void;
}

interface ActiveRule {
  readonly rule: Rule;
  hits: number;
  removed: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Mitm {
  readonly exchanges: Exchange[] = [];
  private readonly rules: ActiveRule[] = [];
  private readonly credentials = new Map<string, DeviceCredentials>();
  private readonly agents = new Map<string, https.Agent>();
  private readonly sockets = new Set<Socket>();
  /** TLS handshakes that failed (a device that does not trust the proxy). */
  tlsFailures = 0;
  url = '';

  private constructor(
    private readonly server: https.Server,
    readonly pki: TestPki,
    private readonly upstream: string,
    private readonly upstreamCa: string,
  ) {}

  /** Starts the proxy on 127.0.0.1 in front of `upstream` (the gateway URL), whose TLS certificates `upstreamCa` signs. */
  static async start(upstream: string, upstreamCa: string, pki: TestPki = TestPki.create('Attacker CA')): Promise<Mitm> {
    const cert = pki.issue('127.0.0.1', { server: true });
    const server = https.createServer({ key: cert.key, cert: cert.cert, requestCert: true, rejectUnauthorized: false });
    const mitm = new Mitm(server, pki, upstream.replace(/\/$/, ''), upstreamCa);
    server.on('request', (req, res) => {
      mitm.handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
    });
    server.on('secureConnection', (s: TLSSocket) => {
      mitm.sockets.add(s);
      s.on('close', () => mitm.sockets.delete(s));
    });
    server.on('tlsClientError', () => mitm.tlsFailures++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    mitm.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return mitm;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    for (const a of this.agents.values()) a.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** The CA devices must trust to talk through the proxy. */
  get caCert(): string {
    return this.pki.caCert;
  }

  /** The credentials the proxy uses towards the gateway for a device (by CN). */
  register(device: string, creds: DeviceCredentials): void {
    this.credentials.set(device, creds);
  }

  rule(rule: Rule): RuleHandle {
    const active: ActiveRule = { rule, hits: 0, removed: false };
    this.rules.push(active);
    return {
      get hits() {
        return active.hits;
      },
      remove: () => {
        active.removed = true;
      },
    };
  }

  clearRules(device?: string): void {
    for (const r of this.rules) if (device === undefined || r.rule.device === undefined || r.rule.device === device) r.removed = true;
  }

  /** Bodies of the successful answers the server gave a device for a path, oldest first (for replays). */
  recorded(device: string | undefined, path: string): Buffer[] {
    return this.exchanges.filter((e) => (device === undefined || e.device === device) && e.path === path && e.status === 200).map((e) => e.body);
  }

  /** The request bodies a device sent to a path (e.g. its manifests), oldest first. */
  sent(device: string, method: string, path: string): Buffer[] {
    return this.exchanges.filter((e) => e.device === device && e.method === method && e.path === path).map((e) => e.requestBody);
  }

  /** A request to the gateway as a device, bypassing the rules (what the attacker can fetch itself). */
  async fetchUpstream(device: string, path: string): Promise<{ status: number; body: Buffer }> {
    const r = await this.forward(device, 'GET', path, {}, Buffer.alloc(0));
    return { status: r.status, body: r.body };
  }

  private agentFor(device: string | undefined): https.Agent {
    const key = device ?? '';
    let a = this.agents.get(key);
    if (!a) {
      const c = device === undefined ? undefined : this.credentials.get(device);
      a = new https.Agent({ keepAlive: true, ca: this.upstreamCa, cert: c?.cert, key: c?.key });
      this.agents.set(key, a);
    }
    return a;
  }

  private forward(
    device: string | undefined,
    method: string,
    path: string,
    headers: Record<string, string>,
    body: Buffer,
  ): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = https.request(`${this.upstream}${path}`, {
        method,
        agent: this.agentFor(device),
        headers: { ...headers, ...(body.length > 0 ? { 'content-length': String(body.length) } : {}) },
      });
      req.setTimeout(15_000, () => req.destroy(new Error('upstream timed out')));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const h: Record<string, string> = {};
          for (const k of ['content-type', 'etag', 'content-range', 'accept-ranges']) {
            const v = res.headers[k];
            if (typeof v === 'string') h[k] = v;
          }
          resolve({ status: res.statusCode ?? 0, headers: h, body: Buffer.concat(chunks) });
        });
      });
      req.end(body);
    });
  }

  private match(method: string, path: string, device: string | undefined): Rule | undefined {
    for (const r of this.rules) {
      if (r.removed) continue;
      const rule = r.rule;
      if (rule.method !== undefined && rule.method !== method) continue;
      if (rule.device !== undefined && rule.device !== device) continue;
      const bare = path.split('?')[0] as string;
      if (typeof rule.path === 'string' ? rule.path !== bare : !rule.path.test(bare)) continue;
      r.hits++;
      if (rule.times !== undefined && r.hits >= rule.times) r.removed = true;
      return rule;
    }
    return undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const sock = req.socket as TLSSocket;
    const peer = sock.getPeerCertificate?.();
    const device = peer && peer.subject ? (peer.subject.CN as string | undefined) : undefined;
    const chunks: Buffer[] = [];
    for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
    const requestBody = Buffer.concat(chunks);
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const headers: Record<string, string> = {};
    for (const k of ['content-type', 'range', 'if-none-match', 'accept', 'user-agent']) {
      const v = req.headers[k];
      if (typeof v === 'string') headers[k] = v;
    }
    const rule = this.match(method, path, device);
    if (rule?.reset) {
      // Dropped on the way: the server never sees it.
      this.exchanges.push({ device, method, path, requestBody, status: 0, body: Buffer.alloc(0), tampered: true });
      sock.destroy();
      return;
    }
    const forwarded = rule?.request ? Buffer.from(rule.request(requestBody)) : requestBody;
    const up = await this.forward(device, method, path, headers, forwarded);
    this.exchanges.push({ device, method, path, requestBody, status: up.status, body: up.body, tampered: rule !== undefined });
    let status = rule?.status ?? up.status;
    let body = up.body;
    if (rule?.body !== undefined) {
      const b = typeof rule.body === 'function' ? rule.body(up.body) : rule.body;
      body = typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b);
      // A replaced body is a whole answer, not the rest of a range.
      if (status === 206) status = 200;
    }
    const out: Record<string, string> = { ...up.headers };
    if (rule?.body !== undefined) {
      delete out['content-range'];
      delete out['etag'];
    }
    if (rule?.delayMs) await sleep(rule.delayMs);
    if (rule?.endless !== undefined) {
      if (rule.contentLength !== undefined) out['content-length'] = String(rule.contentLength);
      res.writeHead(status, out);
      const chunk = Buffer.alloc(16 * 1024, 0x41);
      let left = rule.endless === true ? Infinity : rule.endless;
      while (left > 0 && !res.destroyed) {
        const part = left === Infinity ? chunk : chunk.subarray(0, Math.min(chunk.length, left));
        left -= part.length;
        if (!res.write(part)) await new Promise((r) => res.once('drain', r).once('close', r));
        if (rule.bytesPerSecond) await sleep((part.length / rule.bytesPerSecond) * 1000);
      }
      res.end();
      return;
    }
    if (!rule?.dropContentLength) out['content-length'] = String(rule?.contentLength ?? body.length);
    res.writeHead(status, out);
    const limit = rule?.cutAfter ?? Infinity;
    if (rule?.bytesPerSecond) {
      const step = Math.max(1, Math.floor(rule.bytesPerSecond / 10));
      for (let i = 0; i < body.length && i < limit && !res.destroyed; i += step) {
        res.write(body.subarray(i, Math.min(i + step, body.length, limit)));
        await sleep(100);
      }
    } else res.write(body.subarray(0, Math.min(body.length, limit)));
    if (limit < body.length) {
      await sleep(20);
      sock.destroy();
      return;
    }
    res.end();
  }
}
