/**
 * The IP-Secondary protocol over TCP: one DER message per request and one per
 * response, no other framing (see framing.ts).
 *
 * How aktualizr uses the connections (asn1_message.cc, ipuptanesecondary.cc,
 * secondary_tcp_server.cc, aktualizr_primary/secondary.cc):
 * - The Primary opens a new connection for almost every RPC (each 1 KiB image
 *   chunk too), sends one request, reads one response and closes. It has no
 *   timeouts of its own.
 * - aktualizr-secondary accepts one connection at a time and serves request /
 *   response pairs on it until the peer closes; a message it cannot decode or
 *   has no handler for makes it close the connection without answering (that
 *   is how a Primary recognises a v1 Secondary: versionReq gets no answer).
 *   After answering an install with needCompletion it may close and exit
 *   (`reboot_after_install`).
 * - Wait port: a Secondary configured with the Primary's address connects to
 *   the Primary's `secondaries_wait_port` at start-up, from a socket bound to
 *   its own listening port (so the Primary recognises it by the source
 *   address), before it starts listening, and then *serves* requests on that
 *   connection: the Primary sends getInfoReq, reads getInfoResp and closes.
 *   Later RPCs go to the Secondary's listening port as usual.
 *
 * Here, both sides may also keep one connection for many requests, which
 * aktualizr-secondary supports too. Every read, write, connect and request is
 * bounded in time, every message in size, and a server in connections.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import { DEFAULT_MESSAGE_LIMITS, decodeMessage, encodeMessage, expectMessage, messageLimits } from './codec.js';
import type { IpUptaneMessage, MessageLimits, MessageOf, MessageType, GetInfoResp } from './codec.js';
import { FrameReader } from './framing.js';
import { IpUptaneError, isIpUptaneError } from './errors.js';

export interface Endpoint {
  host: string;
  port: number;
}

/** Default time for a whole request (write plus complete response). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Default time a server waits for the first byte of the next request on an open connection. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** Default time from the first to the last byte of one message, and for writing one response. */
export const DEFAULT_MESSAGE_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_CONNECTIONS = 8;
/** How long a graceful close waits for the peer before destroying the socket. */
const CLOSE_GRACE_MS = 1_000;

/** IPv4 peers of a dual-stack socket appear as `::ffff:a.b.c.d`; compare them as plain IPv4. */
export function normalizeHost(host: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return m ? m[1]! : host;
}

function asIpError(err: unknown, fallback: string): IpUptaneError {
  if (err instanceof IpUptaneError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new IpUptaneError('CONNECTION_FAILED', `${fallback}: ${message}`, { cause: err });
}

// ---------------------------------------------------------------------------
// A socket as a stream of framed messages

export interface ReadTimeouts {
  /** Time to wait for the first byte of the next message. */
  readonly idleTimeoutMs?: number;
  /** Time from a message's first byte to its last. */
  readonly messageTimeoutMs?: number;
}

/**
 * Reads whole messages from a socket and writes encoded ones. Applies back
 * pressure: the socket is paused while a complete message waits to be taken,
 * so a peer that pipelines requests cannot make us buffer more than one.
 */
export class MessageStream {
  private readonly reader: FrameReader;
  private ended = false;
  private error: IpUptaneError | undefined;
  private waiter: (() => void) | undefined;
  private readonly closed: Promise<void>;

  constructor(
    readonly socket: Socket,
    limits: MessageLimits = DEFAULT_MESSAGE_LIMITS,
  ) {
    this.reader = new FrameReader(limits);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      try {
        this.reader.push(chunk);
      } catch (err) {
        this.fail(asIpError(err, 'bad input'));
        return;
      }
      if (this.reader.pendingFrames > 0) socket.pause();
      this.waiter?.();
    });
    socket.on('end', () => {
      this.ended = true;
      this.waiter?.();
    });
    socket.on('error', (err) => {
      if (!this.error) this.error = new IpUptaneError('CONNECTION_FAILED', `connection error: ${err.message}`, { cause: err });
      this.waiter?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.waiter?.();
    });
  }

  get pendingFrames(): number {
    return this.reader.pendingFrames;
  }

  get isClosed(): boolean {
    return this.socket.destroyed || this.ended || this.error !== undefined;
  }

  /** Records the first failure, destroys the socket and wakes a pending read. */
  fail(err: IpUptaneError): void {
    if (!this.error) this.error = err;
    this.socket.destroy();
    this.waiter?.();
  }

  /** The next whole message, or null when the peer closed the connection between messages. */
  next(timeouts: ReadTimeouts = {}): Promise<Uint8Array | null> {
    return new Promise((resolve, reject) => {
      let idleTimer: NodeJS.Timeout | undefined;
      let messageTimer: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(idleTimer);
        clearTimeout(messageTimer);
        this.waiter = undefined;
      };
      const check = (): boolean => {
        const frame = this.reader.shift();
        if (frame) {
          done();
          if (this.reader.pendingFrames === 0 && !this.socket.destroyed) this.socket.resume();
          resolve(frame);
          return true;
        }
        if (this.error) {
          done();
          reject(this.error);
          return true;
        }
        if (this.ended) {
          done();
          if (this.reader.hasPartial) {
            const { received, total } = this.reader.progress;
            reject(new IpUptaneError('TRUNCATED', `connection closed inside a message (${received} of ${total ?? 'an unknown number of'} bytes)`));
          } else {
            resolve(null);
          }
          return true;
        }
        if (this.reader.hasPartial && messageTimer === undefined && timeouts.messageTimeoutMs !== undefined) {
          clearTimeout(idleTimer);
          idleTimer = undefined;
          const ms = timeouts.messageTimeoutMs;
          messageTimer = setTimeout(() => {
            const { received, total } = this.reader.progress;
            this.fail(new IpUptaneError('TIMEOUT', `message not complete after ${ms} ms (${received} of ${total ?? '?'} bytes)`));
          }, ms);
        }
        return false;
      };
      if (this.waiter) {
        reject(new IpUptaneError('BAD_ARGUMENT', 'concurrent reads on one connection'));
        return;
      }
      if (check()) return;
      if (!this.reader.hasPartial && timeouts.idleTimeoutMs !== undefined) {
        const ms = timeouts.idleTimeoutMs;
        idleTimer = setTimeout(() => this.fail(new IpUptaneError('TIMEOUT', `no message within ${ms} ms`)), ms);
      }
      this.waiter = () => void check();
      this.socket.resume();
    });
  }

  /** Writes one encoded message; resolves once the bytes are handed to the kernel. */
  write(bytes: Uint8Array, timeoutMs?: number): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    if (this.socket.destroyed || !this.socket.writable) return Promise.reject(new IpUptaneError('CONNECTION_CLOSED', 'connection is closed'));
    return new Promise((resolve, reject) => {
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => this.fail(new IpUptaneError('TIMEOUT', `write of ${bytes.length} bytes not done after ${timeoutMs} ms`)), timeoutMs);
      this.socket.write(bytes, (err) => {
        clearTimeout(timer);
        if (err) reject(this.error ?? asIpError(err, 'write failed'));
        else resolve();
      });
    });
  }

  /** Half-closes, waits (briefly) for the peer to close too, then destroys. */
  async close(): Promise<void> {
    if (!this.socket.destroyed) {
      this.socket.end();
      // Keep reading so that the peer's FIN (and anything unsolicited) is consumed.
      this.socket.resume();
      const grace = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
      await this.closed;
      clearTimeout(grace);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function connectSocket(
  endpoint: Endpoint,
  options: { timeoutMs: number; localAddress?: string; localPort?: number; allowHalfOpen?: boolean },
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host: endpoint.host,
      port: endpoint.port,
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      ...(options.localPort === undefined ? {} : { localPort: options.localPort }),
      allowHalfOpen: options.allowHalfOpen ?? false,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new IpUptaneError('TIMEOUT', `connect to ${endpoint.host}:${endpoint.port} not done after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(new IpUptaneError('CONNECTION_FAILED', `cannot connect to ${endpoint.host}:${endpoint.port}: ${err.message}`, { cause: err }));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

// ---------------------------------------------------------------------------
// Primary side: requests to a Secondary

export interface CodecOptions {
  /** Size limits for incoming (and, for requests, outgoing) messages. */
  readonly limits?: number | Partial<MessageLimits>;
  /** Skip unknown extension elements in messages (default true, as asn1c does). */
  readonly allowExtensions?: boolean;
}

export interface ConnectionOptions extends CodecOptions {
  /** Default for RequestOptions.timeoutMs. */
  readonly timeoutMs?: number;
}

export interface ConnectOptions extends ConnectionOptions {
  readonly connectTimeoutMs?: number;
  readonly localAddress?: string;
  readonly localPort?: number;
}

export interface RequestOptions<T extends MessageType = MessageType> {
  /** Time for the whole request: writing it and reading the complete response. */
  readonly timeoutMs?: number;
  /** The response types accepted; anything else is IpUptaneError('UNEXPECTED_RESPONSE'). */
  readonly expect?: T | readonly T[];
}

/**
 * One connection from a Primary to a Secondary. Requests are sent one at a
 * time (concurrent calls queue); any failure during a request destroys the
 * connection, since the state of a request/response stream is unknowable after
 * a timeout or a bad response.
 */
export class SecondaryConnection {
  private readonly stream: MessageStream;
  private readonly limits: MessageLimits;
  private readonly allowExtensions: boolean;
  private readonly timeoutMs: number;
  private queue: Promise<unknown> = Promise.resolve();
  readonly remote: Endpoint;

  private constructor(socket: Socket, options: ConnectionOptions) {
    this.limits = messageLimits(options.limits);
    this.allowExtensions = options.allowExtensions ?? true;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.remote = { host: normalizeHost(socket.remoteAddress ?? ''), port: socket.remotePort ?? 0 };
    this.stream = new MessageStream(socket, this.limits);
  }

  static async connect(endpoint: Endpoint, options: ConnectOptions = {}): Promise<SecondaryConnection> {
    const socket = await connectSocket(endpoint, {
      timeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      ...(options.localPort === undefined ? {} : { localPort: options.localPort }),
    });
    return new SecondaryConnection(socket, options);
  }

  /** Wraps an already connected socket, such as one a Secondary opened to the wait port. */
  static fromSocket(socket: Socket, options: ConnectionOptions = {}): SecondaryConnection {
    socket.setNoDelay(true);
    return new SecondaryConnection(socket, options);
  }

  get closed(): boolean {
    return this.stream.isClosed;
  }

  request<T extends MessageType = MessageType>(msg: IpUptaneMessage, options: RequestOptions<T> = {}): Promise<MessageOf<T>> {
    const run = (): Promise<MessageOf<T>> => this.send(msg, options);
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private async send<T extends MessageType>(msg: IpUptaneMessage, options: RequestOptions<T>): Promise<MessageOf<T>> {
    // Encode first: a value the schema cannot carry must not cost the connection.
    const bytes = encodeMessage(msg, { limits: this.limits });
    if (this.stream.isClosed) throw new IpUptaneError('CONNECTION_CLOSED', `connection to ${this.remote.host}:${this.remote.port} is closed`);
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    try {
      if (this.stream.pendingFrames > 0) throw new IpUptaneError('BAD_MESSAGE', 'the peer sent a message nobody asked for');
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const err = new IpUptaneError('TIMEOUT', `no complete response to ${msg.type} within ${timeoutMs} ms`);
          this.stream.fail(err);
          reject(err);
        }, timeoutMs);
      });
      const exchange = (async (): Promise<Uint8Array | null> => {
        await this.stream.write(bytes);
        return this.stream.next();
      })();
      const frame = await Promise.race([exchange, timeout]);
      if (frame === null)
        throw new IpUptaneError('CONNECTION_CLOSED', `${this.remote.host}:${this.remote.port} closed the connection without answering ${msg.type}`);
      const response = decodeMessage(frame, { limits: this.limits, allowExtensions: this.allowExtensions });
      return options.expect === undefined ? (response as MessageOf<T>) : expectMessage(response, options.expect);
    } catch (err) {
      this.stream.destroy();
      throw isIpUptaneError(err) ? err : asIpError(err, `${msg.type} failed`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes gracefully (after any queued requests). */
  async close(): Promise<void> {
    await this.queue;
    await this.stream.close();
  }

  /** Destroys the connection at once; a request in progress fails with `reason` (default CONNECTION_CLOSED). */
  destroy(reason?: IpUptaneError): void {
    if (reason) this.stream.fail(reason);
    else this.stream.destroy();
  }
}

export type ClientOptions = ConnectOptions;

/**
 * A Secondary's address, used the way aktualizr's Primary does: `request`
 * opens a connection for one RPC and closes it; `connect` gives a connection
 * to reuse for many.
 */
export class SecondaryClient {
  constructor(
    readonly endpoint: Endpoint,
    private readonly options: ClientOptions = {},
  ) {}

  connect(): Promise<SecondaryConnection> {
    return SecondaryConnection.connect(this.endpoint, this.options);
  }

  async request<T extends MessageType = MessageType>(msg: IpUptaneMessage, options: RequestOptions<T> = {}): Promise<MessageOf<T>> {
    const conn = await this.connect();
    try {
      return await conn.request(msg, options);
    } finally {
      await conn.close();
    }
  }
}

// ---------------------------------------------------------------------------
// Secondary side: serving requests

export interface RequestContext {
  readonly remote: Endpoint;
  /** Increases with each connection the server serves. */
  readonly connectionId: number;
}

/**
 * What a handler returns: the response; or the response and a request to close
 * the connection after sending it (aktualizr's `reboot_after_install`); or
 * null for a request it does not handle, which closes the connection without
 * an answer, as aktualizr-secondary does.
 */
export type HandlerReply = IpUptaneMessage | { response: IpUptaneMessage; closeConnection?: boolean } | null | undefined;

export type RequestHandler = (request: IpUptaneMessage, context: RequestContext) => HandlerReply | Promise<HandlerReply>;

export interface ServerOptions extends CodecOptions {
  /** Listening address (default 0.0.0.0, like aktualizr-secondary's INADDR_ANY). */
  readonly host?: string;
  /** Listening port (default 0: the OS picks). */
  readonly port?: number;
  /** Connections served at once; more are closed at once (default 8). */
  readonly maxConnections?: number;
  readonly idleTimeoutMs?: number;
  readonly messageTimeoutMs?: number;
  /**
   * Run one handler at a time across all connections (default true), as
   * aktualizr-secondary's single-threaded loop does, so that the Secondary's
   * logic never sees two requests at once.
   */
  readonly serializeHandlers?: boolean;
  /** Told about every connection that ends in an error; never about clean closes. */
  readonly onError?: (error: Error, context: { remote: Endpoint | undefined }) => void;
}

interface ServedConnection {
  readonly stream: MessageStream;
  busy: boolean;
}

export class SecondaryServer {
  private server: net.Server | undefined;
  private readonly connections = new Set<ServedConnection>();
  private readonly limits: MessageLimits;
  private readonly allowExtensions: boolean;
  private readonly host: string;
  private listenPort: number;
  private readonly maxConnections: number;
  private readonly idleTimeoutMs: number;
  private readonly messageTimeoutMs: number;
  private readonly serializeHandlers: boolean;
  private lock: Promise<unknown> = Promise.resolve();
  private closing = false;
  private nextConnectionId = 1;

  constructor(
    private readonly handler: RequestHandler,
    private readonly options: ServerOptions = {},
  ) {
    this.limits = messageLimits(options.limits);
    this.allowExtensions = options.allowExtensions ?? true;
    this.host = options.host ?? '0.0.0.0';
    this.listenPort = options.port ?? 0;
    this.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.messageTimeoutMs = options.messageTimeoutMs ?? DEFAULT_MESSAGE_TIMEOUT_MS;
    this.serializeHandlers = options.serializeHandlers ?? true;
  }

  /** The listening address, once listening. */
  get address(): Endpoint | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { host: normalizeHost(a.address), port: a.port } : undefined;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** The port it listens on, or will listen on (0 until one is picked). */
  get port(): number {
    return this.listenPort;
  }

  async listen(): Promise<Endpoint> {
    if (this.server) throw new IpUptaneError('BAD_ARGUMENT', 'server is already listening');
    if (this.closing) throw new IpUptaneError('BAD_ARGUMENT', 'server is closed');
    // allowHalfOpen: a peer that sends a request and then FIN still gets its answer (aktualizr-secondary answers before it sees the FIN too).
    const server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    server.on('error', (err) => this.report(err, undefined));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.listenPort = this.address!.port;
    return this.address!;
  }

  /**
   * aktualizr-secondary's start-up with `[network] primary_ip`/`primary_port`:
   * connect to the Primary's wait port from a socket bound to our listening
   * port, serve requests on it until the Primary closes, and return. Must be
   * called before listen(), because a listening socket would hold the port
   * (this is also aktualizr's order). With port 0, a free port is picked here
   * and listen() uses it. Resolves false when the Primary cannot be reached.
   */
  async announceToPrimary(primary: Endpoint, options: { connectTimeoutMs?: number } = {}): Promise<boolean> {
    if (this.server) throw new IpUptaneError('BAD_ARGUMENT', 'announceToPrimary must be called before listen()');
    if (this.listenPort === 0) this.listenPort = await reservePort(this.host);
    let socket: Socket;
    try {
      socket = await connectSocket(primary, {
        timeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        localPort: this.listenPort,
        ...(isWildcard(this.host) ? {} : { localAddress: this.host }),
        allowHalfOpen: true,
      });
    } catch (err) {
      this.report(err, primary);
      return false;
    }
    await this.serveSocket(socket);
    return true;
  }

  /** Serves request/response pairs on a connected socket until the peer closes it (or it fails); never rejects. */
  async serveSocket(socket: Socket): Promise<void> {
    socket.setNoDelay(true);
    const remote = { host: normalizeHost(socket.remoteAddress ?? ''), port: socket.remotePort ?? 0 };
    const conn: ServedConnection = { stream: new MessageStream(socket, this.limits), busy: false };
    const context: RequestContext = { remote, connectionId: this.nextConnectionId++ };
    this.connections.add(conn);
    try {
      while (!this.closing) {
        const frame = await conn.stream.next({ idleTimeoutMs: this.idleTimeoutMs, messageTimeoutMs: this.messageTimeoutMs });
        if (frame === null) break;
        // Undecodable or unknown: close without answering, as aktualizr-secondary does.
        const request = decodeMessage(frame, { limits: this.limits, allowExtensions: this.allowExtensions });
        conn.busy = true;
        const reply = await this.runHandler(request, context);
        if (reply === null || reply === undefined) break;
        const { response, closeConnection } = 'response' in reply ? reply : { response: reply, closeConnection: false };
        await conn.stream.write(encodeMessage(response), this.messageTimeoutMs);
        conn.busy = false;
        if (closeConnection === true) break;
      }
    } catch (err) {
      this.report(err, remote);
    } finally {
      conn.busy = false;
      this.connections.delete(conn);
      await conn.stream.close();
    }
  }

  /** Stops listening and closes every connection; a handler that is running may finish and answer first (bounded by messageTimeoutMs). */
  async close(): Promise<void> {
    this.closing = true;
    const server = this.server;
    const stopped = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const c of this.connections) if (!c.busy) c.stream.destroy();
    const deadline = Date.now() + this.messageTimeoutMs;
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const c of this.connections) c.stream.destroy();
    await stopped;
  }

  private accept(socket: Socket): void {
    if (this.closing || this.connections.size >= this.maxConnections) {
      const remote = { host: normalizeHost(socket.remoteAddress ?? ''), port: socket.remotePort ?? 0 };
      socket.on('error', () => undefined);
      socket.destroy();
      this.report(
        new IpUptaneError(
          'TOO_MANY_CONNECTIONS',
          `refused a connection from ${remote.host}:${remote.port}: ${this.connections.size} of ${this.maxConnections} in use`,
        ),
        remote,
      );
      return;
    }
    void this.serveSocket(socket);
  }

  private runHandler(request: IpUptaneMessage, context: RequestContext): Promise<HandlerReply> {
    const run = (): Promise<HandlerReply> => Promise.resolve().then(() => this.handler(request, context));
    if (!this.serializeHandlers) return run();
    const p = this.lock.then(run, run);
    this.lock = p.catch(() => undefined);
    return p;
  }

  private report(err: unknown, remote: Endpoint | undefined): void {
    const onError = this.options.onError;
    if (!onError) return;
    try {
      onError(err instanceof Error ? err : new Error(String(err)), { remote });
    } catch {
      // A failing error callback must not take the server down.
    }
  }
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/** A free port on `host`, found by listening on port 0 and closing again. */
async function reservePort(host: string): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, host, () => resolve());
  });
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  if (!address || typeof address !== 'object') throw new IpUptaneError('CONNECTION_FAILED', 'could not reserve a port');
  return address.port;
}

// ---------------------------------------------------------------------------
// Primary side: the wait port

export interface WaitListenerOptions extends CodecOptions {
  /** Listening address (default 0.0.0.0, as aktualizr's waiter binds any IPv4 address). */
  readonly host?: string;
  /** `secondaries_wait_port` (default 0: the OS picks). */
  readonly port?: number;
  /** Time for the getInfo exchange on each incoming connection (default DEFAULT_REQUEST_TIMEOUT_MS). */
  readonly requestTimeoutMs?: number;
  /** Connections accepted before waitFor() runs are held, up to this many (default 16); more are closed. */
  readonly maxPending?: number;
  /** Told about connections from unexpected addresses and about refused ones. */
  readonly onError?: (error: Error, context: { remote: Endpoint | undefined }) => void;
}

export interface ArrivedSecondary {
  /** The address the Secondary connected from: its listening address. */
  readonly endpoint: Endpoint;
  readonly info: GetInfoResp;
}

export interface WaitResult {
  readonly arrived: ArrivedSecondary[];
  /** Connected, but the getInfo exchange failed (aktualizr stops waiting for these too). */
  readonly failed: { endpoint: Endpoint; error: IpUptaneError }[];
  /** Never connected within the time. */
  readonly missing: Endpoint[];
}

function endpointKey(e: Endpoint): string {
  return `${normalizeHost(e.host)}:${e.port}`;
}

/**
 * The Primary's `secondaries_wait_port`: accepts connections from Secondaries
 * that were not reachable at start-up, recognises each by its source address
 * (which aktualizr-secondary binds to its listening port), asks it getInfoReq
 * on that same connection and closes it, as aktualizr's `SecondaryWaiter`
 * does. Unlike aktualizr, a connection from an unexpected address is closed
 * and waiting goes on (aktualizr stops accepting).
 */
export class SecondaryWaitListener {
  private server: net.Server | undefined;
  private readonly pending: Socket[] = [];
  private onSocket: ((socket: Socket) => void) | undefined;
  private readonly limits: MessageLimits;

  constructor(private readonly options: WaitListenerOptions = {}) {
    this.limits = messageLimits(options.limits);
  }

  get address(): Endpoint | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { host: normalizeHost(a.address), port: a.port } : undefined;
  }

  async listen(): Promise<Endpoint> {
    if (this.server) throw new IpUptaneError('BAD_ARGUMENT', 'already listening');
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      if (this.onSocket) {
        this.onSocket(socket);
      } else if (this.pending.length < (this.options.maxPending ?? 16)) {
        this.pending.push(socket);
      } else {
        socket.destroy();
        this.report(new IpUptaneError('TOO_MANY_CONNECTIONS', 'too many connections waiting'), {
          host: normalizeHost(socket.remoteAddress ?? ''),
          port: socket.remotePort ?? 0,
        });
      }
    });
    server.on('error', (err) => this.report(err, undefined));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, this.options.host ?? '0.0.0.0', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    return this.address!;
  }

  /** Waits until every expected Secondary has connected and answered getInfo, or until `timeoutMs`. */
  async waitFor(expected: readonly Endpoint[], options: { timeoutMs: number }): Promise<WaitResult> {
    if (!this.server) throw new IpUptaneError('BAD_ARGUMENT', 'listen() first');
    if (this.onSocket) throw new IpUptaneError('BAD_ARGUMENT', 'already waiting');
    const remaining = new Map(expected.map((e) => [endpointKey(e), e]));
    const result: WaitResult = { arrived: [], failed: [], missing: [] };
    const inFlight = new Set<SecondaryConnection>();
    const exchanges: Promise<void>[] = [];
    let finish: () => void = () => undefined;
    const allDone = new Promise<void>((resolve) => (finish = resolve));
    const settleIfDone = (): void => {
      if (remaining.size === 0 && inFlight.size === 0) finish();
    };

    const handle = (socket: Socket): void => {
      const endpoint = { host: normalizeHost(socket.remoteAddress ?? ''), port: socket.remotePort ?? 0 };
      const key = endpointKey(endpoint);
      if (!remaining.has(key)) {
        socket.destroy();
        this.report(new IpUptaneError('UNEXPECTED_RESPONSE', `unexpected connection from ${key}`), endpoint);
        return;
      }
      remaining.delete(key);
      const conn = SecondaryConnection.fromSocket(socket, {
        limits: this.limits,
        ...(this.options.allowExtensions === undefined ? {} : { allowExtensions: this.options.allowExtensions }),
      });
      inFlight.add(conn);
      const exchange = conn
        .request({ type: 'getInfoReq' }, { expect: 'getInfoResp', timeoutMs: this.options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS })
        .then(
          (info) => {
            result.arrived.push({ endpoint, info });
          },
          (err: unknown) => {
            result.failed.push({ endpoint, error: isIpUptaneError(err) ? err : asIpError(err, 'getInfo failed') });
          },
        )
        .then(() => conn.close())
        .finally(() => {
          inFlight.delete(conn);
          settleIfDone();
        });
      exchanges.push(exchange);
    };

    this.onSocket = handle;
    for (const s of this.pending.splice(0)) handle(s);
    settleIfDone();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, options.timeoutMs)));
    try {
      await Promise.race([allDone, timedOut]);
    } finally {
      clearTimeout(timer);
      this.onSocket = undefined;
    }
    // Time is up: exchanges still running are cut short and count as failed.
    for (const c of inFlight) c.destroy(new IpUptaneError('TIMEOUT', `no getInfo answer before the wait for Secondaries ended (${options.timeoutMs} ms)`));
    await Promise.all(exchanges);
    result.missing.push(...remaining.values());
    return result;
  }

  async close(): Promise<void> {
    for (const s of this.pending.splice(0)) s.destroy();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private report(err: Error, remote: Endpoint | undefined): void {
    try {
      this.options.onError?.(err, { remote });
    } catch {
      // ignore: reporting must not break waiting
    }
  }
}

/** Listens on the wait port, waits for the expected Secondaries, and closes the port. */
export async function waitForSecondaries(options: WaitListenerOptions & { expected: readonly Endpoint[]; timeoutMs: number }): Promise<WaitResult> {
  const listener = new SecondaryWaitListener(options);
  await listener.listen();
  try {
    return await listener.waitFor(options.expected, { timeoutMs: options.timeoutMs });
  } finally {
    await listener.close();
  }
}
