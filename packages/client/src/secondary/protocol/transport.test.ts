import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import type { Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { KEY_TYPE, REPO_TYPE, RESULT_CODE, UPLOAD_CHUNK_SIZE, encodeMessage, expectMessage, decodeMessage } from './codec.js';
import type { IpUptaneMessage, MessageOf, MessageType, PutMetaReq2 } from './codec.js';
import { IpUptaneError } from './errors.js';
import { SecondaryClient, SecondaryConnection, SecondaryServer, SecondaryWaitListener, waitForSecondaries } from './transport.js';
import type { Endpoint, RequestHandler, RequestOptions, ServerOptions } from './transport.js';

const HOST = '127.0.0.1';
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Everything a test opens is closed after it, even when it fails.
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startServer(handler: RequestHandler, options: ServerOptions = {}): Promise<{ server: SecondaryServer; endpoint: Endpoint; errors: Error[] }> {
  const errors: Error[] = [];
  const server = new SecondaryServer(handler, { host: HOST, onError: (e) => errors.push(e), ...options });
  const endpoint = await server.listen();
  cleanups.push(() => server.close());
  return { server, endpoint, errors };
}

/** A raw TCP server whose connections the test drives byte by byte. */
async function rawServer(onConnection: (socket: Socket) => void): Promise<Endpoint> {
  const sockets = new Set<Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    onConnection(s);
  });
  await new Promise<void>((r) => server.listen(0, HOST, () => r()));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { host: HOST, port: (server.address() as net.AddressInfo).port };
}

async function rawConnect(endpoint: Endpoint): Promise<Socket> {
  const s = net.connect(endpoint.port, endpoint.host);
  s.on('error', () => undefined);
  cleanups.push(() => void s.destroy());
  await new Promise<void>((r, j) => {
    s.once('connect', () => r());
    s.once('error', j);
  });
  return s;
}

/** Everything the peer sends until it closes, and how long that took (bounded). */
function collectUntilClose(s: Socket, limitMs = 5000): Promise<{ data: Buffer; ms: number; closed: boolean }> {
  const start = Date.now();
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ data: Buffer.concat(chunks), ms: Date.now() - start, closed: false }), limitMs);
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), ms: Date.now() - start, closed: true });
    });
  });
}

async function rejection(p: Promise<unknown>): Promise<IpUptaneError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(IpUptaneError);
    return err as IpUptaneError;
  }
  throw new Error('did not reject');
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, HOST, () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

// ---------------------------------------------------------------------------
// A toy Secondary: just enough state to check that every byte of the sequence arrives intact.

interface ToyState {
  roots: Record<number, number>;
  meta: PutMetaReq2 | undefined;
  chunks: Uint8Array[];
  installed: { filepath: string; sha256: string; length: number } | undefined;
  seen: MessageType[];
  connections: Set<number>;
}

function toySecondary(): { state: ToyState; handler: RequestHandler } {
  const state: ToyState = {
    roots: { [REPO_TYPE.director]: 1, [REPO_TYPE.image]: 1 },
    meta: undefined,
    chunks: [],
    installed: undefined,
    seen: [],
    connections: new Set(),
  };
  const ok = { result: RESULT_CODE.ok, description: '' };
  const handler: RequestHandler = (req, ctx) => {
    state.seen.push(req.type);
    state.connections.add(ctx.connectionId);
    switch (req.type) {
      case 'getInfoReq':
        return { type: 'getInfoResp', ecuSerial: 'secondary-1', hwId: 'hw-secondary', keyType: KEY_TYPE.ed25519, key: 'ab'.repeat(32) };
      case 'versionReq':
        return { type: 'versionResp', version: 2 };
      case 'rootVerReq':
        return { type: 'rootVerResp', version: state.roots[req.repotype] ?? -1 };
      case 'putRootReq': {
        const version = (JSON.parse(text(req.json)) as { signed: { version: number } }).signed.version;
        if (version !== (state.roots[req.repotype] ?? 0) + 1)
          return { type: 'putRootResp', result: RESULT_CODE.validationFailed, description: 'not the next root' };
        state.roots[req.repotype] = version;
        return { type: 'putRootResp', ...ok };
      }
      case 'putMetaReq2':
        state.meta = req;
        state.chunks = [];
        return { type: 'putMetaResp2', ...ok };
      case 'uploadDataReq':
        state.chunks.push(req.data);
        return { type: 'uploadDataResp', ...ok };
      case 'installReq': {
        const targets = state.meta?.imageRepo.find((m) => m.role === 'targets');
        const expected =
          targets &&
          (JSON.parse(text(targets.json)) as { signed: { targets: Record<string, { length: number; hashes: { sha256: string } }> } }).signed.targets[req.hash];
        const image = Buffer.concat(state.chunks);
        if (!expected || expected.length !== image.length || expected.hashes.sha256 !== sha256(image)) {
          return { type: 'installResp2', result: RESULT_CODE.validationFailed, description: 'image does not match' };
        }
        state.installed = { filepath: req.hash, sha256: sha256(image), length: image.length };
        return { type: 'installResp2', ...ok };
      }
      case 'manifestReq':
        return {
          type: 'manifestResp',
          manifest: utf8(JSON.stringify({ signed: { ecu_serial: 'secondary-1', installed_image: state.installed ?? null }, signatures: [] })),
        };
      default:
        return null;
    }
  };
  return { state, handler };
}

type Rpc = (msg: IpUptaneMessage, options: RequestOptions) => Promise<IpUptaneMessage>;

const role = (name: string, version: number, extra: object = {}): Uint8Array =>
  utf8(JSON.stringify({ signed: { _type: name, version, ...extra }, signatures: [] }));

/** The Primary's side of one update, in aktualizr's order. */
async function runUpdate(rpc: Rpc, image: Uint8Array, filepath: string): Promise<{ chunks: number }> {
  const call = async <T extends MessageType>(msg: IpUptaneMessage, options: { expect: T }): Promise<MessageOf<T>> =>
    expectMessage(await rpc(msg, options), options.expect);
  const info = await call({ type: 'getInfoReq' }, { expect: 'getInfoResp' });
  expect(info).toMatchObject({ ecuSerial: 'secondary-1', hwId: 'hw-secondary', keyType: KEY_TYPE.ed25519 });
  expect((await call({ type: 'versionReq', version: 2 }, { expect: 'versionResp' })).version).toBe(2);
  for (const repotype of [REPO_TYPE.director, REPO_TYPE.image]) {
    expect((await call({ type: 'rootVerReq', repotype }, { expect: 'rootVerResp' })).version).toBe(1);
    const put = await call({ type: 'putRootReq', repotype, json: role('Root', 2) }, { expect: 'putRootResp' });
    expect(put.result).toBe(RESULT_CODE.ok);
    expect((await call({ type: 'rootVerReq', repotype }, { expect: 'rootVerResp' })).version).toBe(2);
  }
  const targets = { targets: { [filepath]: { length: image.length, hashes: { sha256: sha256(image) } } } };
  const meta = await call(
    {
      type: 'putMetaReq2',
      directorRepo: [
        { role: 'root', json: role('Root', 2) },
        { role: 'targets', json: role('Targets', 7, targets) },
      ],
      imageRepo: [
        { role: 'root', json: role('Root', 2) },
        { role: 'timestamp', json: role('Timestamp', 3) },
        { role: 'snapshot', json: role('Snapshot', 3) },
        { role: 'targets', json: role('Targets', 3, targets) },
      ],
    },
    { expect: 'putMetaResp2' },
  );
  expect(meta.result).toBe(RESULT_CODE.ok);
  let chunks = 0;
  for (let pos = 0; pos < image.length; pos += UPLOAD_CHUNK_SIZE) {
    const r = await call({ type: 'uploadDataReq', data: image.subarray(pos, pos + UPLOAD_CHUNK_SIZE) }, { expect: 'uploadDataResp' });
    expect(r.result).toBe(RESULT_CODE.ok);
    chunks++;
  }
  const install = await call({ type: 'installReq', hash: filepath }, { expect: 'installResp2' });
  expect(install).toEqual({ type: 'installResp2', result: RESULT_CODE.ok, description: '' });
  const manifest = await call({ type: 'manifestReq' }, { expect: 'manifestResp' });
  const report = JSON.parse(text(manifest.manifest)) as { signed: { installed_image: { sha256: string; length: number; filepath: string } } };
  expect(report.signed.installed_image).toEqual({ filepath, sha256: sha256(image), length: image.length });
  return { chunks };
}

const RPC_COUNT_BEFORE_UPLOAD = 1 + 1 + 2 * 3 + 1;

describe('a full update sequence over TCP', () => {
  it('with a new connection for every RPC, as aktualizr does (10 KiB image in 10 chunks)', async () => {
    const toy = toySecondary();
    const { endpoint, errors } = await startServer(toy.handler);
    const client = new SecondaryClient(endpoint, { timeoutMs: 5000 });
    const image = new Uint8Array(randomBytes(10 * 1024));
    const { chunks } = await runUpdate((m, o) => client.request(m, o), image, 'firmware-1.0.bin');
    expect(chunks).toBe(10);
    expect(toy.state.chunks.map((c) => c.length)).toEqual(Array(10).fill(1024));
    expect(Buffer.concat(toy.state.chunks).equals(image)).toBe(true);
    expect(toy.state.connections.size).toBe(RPC_COUNT_BEFORE_UPLOAD + 10 + 2);
    expect(toy.state.meta?.directorRepo.map((m) => m.role)).toEqual(['root', 'targets']);
    expect(toy.state.meta?.imageRepo.map((m) => m.role)).toEqual(['root', 'timestamp', 'snapshot', 'targets']);
    expect(errors).toEqual([]);
  });

  it('on one reused connection, with a last chunk shorter than 1024 bytes', async () => {
    const toy = toySecondary();
    const { endpoint, errors } = await startServer(toy.handler);
    const conn = await SecondaryConnection.connect(endpoint, { timeoutMs: 5000 });
    cleanups.push(() => conn.destroy());
    const image = new Uint8Array(randomBytes(10 * 1024 + 300));
    const { chunks } = await runUpdate((m, o) => conn.request(m, o), image, 'fw.bin');
    expect(chunks).toBe(11);
    expect(toy.state.chunks.at(-1)?.length).toBe(300);
    expect(toy.state.connections.size).toBe(1);
    await conn.close();
    expect(conn.closed).toBe(true);
    expect(errors).toEqual([]);
  });

  it('queues concurrent requests on one connection and answers each in order', async () => {
    const { endpoint } = await startServer(async (req) => {
      if (req.type !== 'versionReq') return null;
      await sleep(5 * (10 - req.version));
      return { type: 'versionResp', version: req.version * 10 };
    });
    const conn = await SecondaryConnection.connect(endpoint);
    cleanups.push(() => conn.destroy());
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => conn.request({ type: 'versionReq', version: i }, { expect: 'versionResp' })));
    expect(answers.map((a) => a.version)).toEqual(Array.from({ length: 10 }, (_, i) => i * 10));
  });
});

describe('client failures', () => {
  it('an unhandled request gets no answer and a closed connection, which is how a v1 Secondary shows', async () => {
    const { endpoint, errors } = await startServer((req) =>
      req.type === 'getInfoReq' ? { type: 'getInfoResp', ecuSerial: 's', hwId: 'h', keyType: 0, key: '' } : null,
    );
    const client = new SecondaryClient(endpoint);
    expect((await rejection(client.request({ type: 'versionReq', version: 2 }))).reason).toBe('CONNECTION_CLOSED');
    // The server goes on serving.
    expect((await client.request({ type: 'getInfoReq' }, { expect: 'getInfoResp' })).ecuSerial).toBe('s');
    expect(errors).toEqual([]);
  });

  it('a response of the wrong type is UNEXPECTED_RESPONSE and costs the connection', async () => {
    const { endpoint } = await startServer(() => ({ type: 'versionResp', version: 2 }));
    const conn = await SecondaryConnection.connect(endpoint);
    cleanups.push(() => conn.destroy());
    expect((await rejection(conn.request({ type: 'getInfoReq' }, { expect: 'getInfoResp' }))).reason).toBe('UNEXPECTED_RESPONSE');
    expect(conn.closed).toBe(true);
    expect((await rejection(conn.request({ type: 'getInfoReq' }))).reason).toBe('CONNECTION_CLOSED');
  });

  it('a value the schema cannot carry fails before anything is sent, and the connection survives', async () => {
    const { endpoint } = await startServer(() => ({ type: 'versionResp', version: 2 }));
    const conn = await SecondaryConnection.connect(endpoint);
    cleanups.push(() => conn.destroy());
    expect((await rejection(conn.request({ type: 'versionReq', version: 0.5 }))).reason).toBe('BAD_ARGUMENT');
    expect((await conn.request({ type: 'versionReq', version: 2 }, { expect: 'versionResp' })).version).toBe(2);
  });

  it('times out on a slow handler, and the server survives', async () => {
    const { endpoint } = await startServer(async (req) => {
      if (req.type === 'installReq') await sleep(1500);
      return { type: 'installResp2', result: 0, description: '' };
    });
    const client = new SecondaryClient(endpoint);
    const start = Date.now();
    const err = await rejection(client.request({ type: 'installReq', hash: 'x' }, { timeoutMs: 200 }));
    expect(err.reason).toBe('TIMEOUT');
    expect(err.code).toBe('MALFORMED_METADATA');
    expect(Date.now() - start).toBeLessThan(1200);
    expect((await client.request({ type: 'manifestReq' }, { timeoutMs: 5000 })).type).toBe('installResp2');
  });

  it('times out on a peer that never answers', async () => {
    const endpoint = await rawServer(() => undefined);
    const err = await rejection(new SecondaryClient(endpoint).request({ type: 'getInfoReq' }, { timeoutMs: 150 }));
    expect(err.reason).toBe('TIMEOUT');
  });

  it('reports a response cut off by the peer closing as TRUNCATED', async () => {
    const full = encodeMessage({ type: 'getInfoResp', ecuSerial: 'serial', hwId: 'hw', keyType: 0, key: 'k' });
    const endpoint = await rawServer((s) => s.once('data', () => s.end(full.subarray(0, full.length - 3))));
    const err = await rejection(new SecondaryClient(endpoint).request({ type: 'getInfoReq' }, { timeoutMs: 2000 }));
    expect(err.reason).toBe('TRUNCATED');
  });

  it('refuses a response that announces more than the limit, without reading it', async () => {
    // getInfoResp [1] announcing 64 MiB, then nothing.
    const endpoint = await rawServer((s) => s.once('data', () => s.write(Uint8Array.from([0xa1, 0x84, 0x04, 0x00, 0x00, 0x00]))));
    const start = Date.now();
    const err = await rejection(new SecondaryClient(endpoint).request({ type: 'getInfoReq' }, { timeoutMs: 3000 }));
    expect(err.reason).toBe('MESSAGE_TOO_LARGE');
    expect(err.code).toBe('ENDLESS_DATA');
    expect(Date.now() - start).toBeLessThan(2000);
  });

  it('refuses a garbage response', async () => {
    const endpoint = await rawServer((s) => s.once('data', () => s.write('HTTP/1.1 400 Bad Request\r\n\r\n')));
    expect((await rejection(new SecondaryClient(endpoint).request({ type: 'getInfoReq' }, { timeoutMs: 2000 }))).reason).toBe('BAD_MESSAGE');
  });

  it('refuses a response nobody asked for', async () => {
    const endpoint = await rawServer((s) => s.write(encodeMessage({ type: 'versionResp', version: 2 })));
    const conn = await SecondaryConnection.connect(endpoint);
    cleanups.push(() => conn.destroy());
    await sleep(100);
    expect((await rejection(conn.request({ type: 'getInfoReq' }))).reason).toBe('BAD_MESSAGE');
  });

  it('reports a refused connection as CONNECTION_FAILED', async () => {
    const port = await freePort();
    expect((await rejection(new SecondaryClient({ host: HOST, port }).request({ type: 'getInfoReq' }))).reason).toBe('CONNECTION_FAILED');
  });
});

describe('server robustness', () => {
  const info: IpUptaneMessage = { type: 'getInfoResp', ecuSerial: 'ok', hwId: 'hw', keyType: 0, key: '' };
  const answersInfo: RequestHandler = (req) => (req.type === 'getInfoReq' ? info : null);

  async function stillServes(endpoint: Endpoint): Promise<void> {
    expect((await new SecondaryClient(endpoint).request({ type: 'getInfoReq' }, { expect: 'getInfoResp', timeoutMs: 3000 })).ecuSerial).toBe('ok');
  }

  it('closes a connection that sends garbage, and goes on serving', async () => {
    const { endpoint, errors } = await startServer(answersInfo);
    const s = await rawConnect(endpoint);
    s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const { data, closed } = await collectUntilClose(s);
    expect(closed).toBe(true);
    expect(data.length).toBe(0);
    expect(errors.map((e) => (e as IpUptaneError).reason)).toEqual(['BAD_MESSAGE']);
    await stillServes(endpoint);
  });

  it('survives a barrage of random bytes', async () => {
    const { endpoint, errors } = await startServer(answersInfo, { maxConnections: 64 });
    const samples = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 300 }), 60);
    await Promise.all(
      samples.map(async (bytes) => {
        const s = await rawConnect(endpoint);
        const done = collectUntilClose(s, 3000);
        s.end(bytes);
        await done;
      }),
    );
    expect(errors.every((e) => e instanceof IpUptaneError)).toBe(true);
    await stillServes(endpoint);
  });

  it('closes at once on a header that announces too much, before any body is sent', async () => {
    const { endpoint, errors } = await startServer(answersInfo, { idleTimeoutMs: 10_000, messageTimeoutMs: 10_000 });
    const s = await rawConnect(endpoint);
    s.write(Uint8Array.from([0xaa, 0x83, 0x10, 0x00, 0x00])); // uploadDataReq of 1 MiB content: over its 1 MiB total
    const { closed, ms } = await collectUntilClose(s);
    expect(closed).toBe(true);
    expect(ms).toBeLessThan(2000);
    expect((errors[0] as IpUptaneError).reason).toBe('MESSAGE_TOO_LARGE');
    await stillServes(endpoint);
  });

  it('reports a peer that closes in the middle of a message', async () => {
    const { endpoint, errors } = await startServer(answersInfo);
    const s = await rawConnect(endpoint);
    const bytes = encodeMessage({ type: 'uploadDataReq', data: new Uint8Array(1024) });
    const done = collectUntilClose(s);
    s.end(bytes.subarray(0, 500));
    expect((await done).closed).toBe(true);
    await sleep(50);
    expect((errors[0] as IpUptaneError).reason).toBe('TRUNCATED');
  });

  it('times out a message that stalls half way, and an idle connection', async () => {
    const { endpoint, errors } = await startServer(answersInfo, { idleTimeoutMs: 300, messageTimeoutMs: 200 });
    const stalled = await rawConnect(endpoint);
    const stalledDone = collectUntilClose(stalled);
    stalled.write(encodeMessage({ type: 'uploadDataReq', data: new Uint8Array(1024) }).subarray(0, 100));
    const idle = await rawConnect(endpoint);
    const idleDone = collectUntilClose(idle);
    const [a, b] = await Promise.all([stalledDone, idleDone]);
    expect(a.closed && b.closed).toBe(true);
    expect(a.ms).toBeLessThan(1500);
    expect(b.ms).toBeGreaterThanOrEqual(250);
    expect(b.ms).toBeLessThan(2000);
    expect(errors.map((e) => (e as IpUptaneError).reason)).toEqual(['TIMEOUT', 'TIMEOUT']);
  });

  it('closes without answering an unknown message type', async () => {
    const { endpoint, errors } = await startServer(answersInfo);
    const s = await rawConnect(endpoint);
    const done = collectUntilClose(s);
    s.write(Uint8Array.from([0xb7, 0x02, 0x30, 0x00])); // [23]
    const { data, closed } = await done;
    expect(closed).toBe(true);
    expect(data.length).toBe(0);
    expect((errors[0] as IpUptaneError).reason).toBe('UNKNOWN_MESSAGE');
  });

  it('answers pipelined requests in order, and a request followed by a half-close', async () => {
    const { endpoint } = await startServer((req) => (req.type === 'versionReq' ? { type: 'versionResp', version: req.version + 100 } : null));
    const s = await rawConnect(endpoint);
    const done = collectUntilClose(s);
    s.end(Buffer.concat([encodeMessage({ type: 'versionReq', version: 1 }), encodeMessage({ type: 'versionReq', version: 2 })]));
    const { data, closed } = await done;
    expect(closed).toBe(true);
    const first = encodeMessage({ type: 'versionResp', version: 101 });
    expect(decodeMessage(data.subarray(0, first.length))).toEqual({ type: 'versionResp', version: 101 });
    expect(decodeMessage(data.subarray(first.length))).toEqual({ type: 'versionResp', version: 102 });
  });

  it('bounds concurrent connections', async () => {
    const { endpoint, errors } = await startServer(answersInfo, { maxConnections: 2 });
    const a = await rawConnect(endpoint);
    const b = await rawConnect(endpoint);
    await sleep(50);
    const c = await rawConnect(endpoint);
    const { closed } = await collectUntilClose(c, 2000);
    expect(closed).toBe(true);
    expect((errors[0] as IpUptaneError).reason).toBe('TOO_MANY_CONNECTIONS');
    a.destroy();
    b.destroy();
    await sleep(100);
    await stillServes(endpoint);
  });

  it('runs one handler at a time by default, across connections', async () => {
    for (const serialize of [true, false]) {
      let running = 0;
      let most = 0;
      const { endpoint } = await startServer(
        async () => {
          most = Math.max(most, ++running);
          await sleep(30);
          running--;
          return info;
        },
        { serializeHandlers: serialize },
      );
      const client = new SecondaryClient(endpoint);
      await Promise.all(Array.from({ length: 5 }, () => client.request({ type: 'getInfoReq' })));
      if (serialize) expect(most).toBe(1);
      else expect(most).toBeGreaterThan(1);
    }
  });

  it('closes the connection after a reply that asks for it (reboot after install)', async () => {
    const { endpoint } = await startServer(() => ({
      response: { type: 'installResp2', result: RESULT_CODE.needCompletion, description: 'reboot' },
      closeConnection: true,
    }));
    const conn = await SecondaryConnection.connect(endpoint);
    cleanups.push(() => conn.destroy());
    expect((await conn.request({ type: 'installReq', hash: 'fw' }, { expect: 'installResp2' })).result).toBe(RESULT_CODE.needCompletion);
    expect((await rejection(conn.request({ type: 'manifestReq' }))).reason).toMatch(/CONNECTION_CLOSED|CONNECTION_FAILED/);
  });

  it('closes without answering when a handler throws, and reports the error', async () => {
    const { endpoint, errors } = await startServer(() => {
      throw new Error('handler bug');
    });
    expect((await rejection(new SecondaryClient(endpoint).request({ type: 'getInfoReq' }))).reason).toBe('CONNECTION_CLOSED');
    await sleep(20);
    expect(errors.map((e) => e.message)).toEqual(['handler bug']);
  });

  it('lets a running handler answer when the server closes', async () => {
    const { server, endpoint } = await startServer(async () => {
      await sleep(200);
      return info;
    });
    const idle = await rawConnect(endpoint);
    const idleDone = collectUntilClose(idle);
    const pending = new SecondaryClient(endpoint).request({ type: 'getInfoReq' }, { expect: 'getInfoResp' });
    await sleep(50);
    await server.close();
    expect((await pending).ecuSerial).toBe('ok');
    expect((await idleDone).closed).toBe(true);
    expect(server.connectionCount).toBe(0);
  });
});

describe('the wait port (a Secondary connects in to the Primary)', () => {
  it('the Primary asks getInfo on the incoming connection; the Secondary then listens on the same port', async () => {
    const listener = new SecondaryWaitListener({ host: HOST, requestTimeoutMs: 3000 });
    const waitPort = await listener.listen();
    cleanups.push(() => listener.close());
    const port = await freePort();
    const toy = toySecondary();
    const secondary = new SecondaryServer(toy.handler, { host: HOST, port });
    cleanups.push(() => secondary.close());

    const announced = secondary.announceToPrimary(waitPort);
    const result = await listener.waitFor([{ host: HOST, port }], { timeoutMs: 5000 });
    expect(await announced).toBe(true);
    expect(result.missing).toEqual([]);
    expect(result.failed).toEqual([]);
    expect(result.arrived).toHaveLength(1);
    expect(result.arrived[0]!.endpoint).toEqual({ host: HOST, port });
    expect(result.arrived[0]!.info.ecuSerial).toBe('secondary-1');

    // Later RPCs go to the Secondary's listening port, which is the one it connected from.
    expect((await secondary.listen()).port).toBe(port);
    expect((await new SecondaryClient({ host: HOST, port }).request({ type: 'versionReq', version: 2 }, { expect: 'versionResp' })).version).toBe(2);
    expect(toy.state.seen).toEqual(['getInfoReq', 'versionReq']);
  });

  it('picks a port itself when the Secondary has port 0, and listens on it afterwards', async () => {
    const listener = new SecondaryWaitListener({ host: HOST });
    const waitPort = await listener.listen();
    cleanups.push(() => listener.close());
    const secondary = new SecondaryServer(toySecondary().handler, { host: HOST });
    cleanups.push(() => secondary.close());
    const announced = secondary.announceToPrimary(waitPort);
    // The connection arrives before waitFor runs: the listener holds it until then.
    for (let i = 0; i < 100 && secondary.port === 0; i++) await sleep(10);
    await sleep(50);
    const result = await listener.waitFor([{ host: HOST, port: secondary.port }], { timeoutMs: 5000 });
    expect(result.arrived).toHaveLength(1);
    expect(await announced).toBe(true);
    expect((await secondary.listen()).port).toBe(result.arrived[0]!.endpoint.port);
  });

  it('closes connections from unexpected addresses, reports Secondaries that never come, and times out on one that does not answer', async () => {
    const errors: Error[] = [];
    const listener = new SecondaryWaitListener({ host: HOST, requestTimeoutMs: 200, onError: (e) => errors.push(e) });
    const waitPort = await listener.listen();
    cleanups.push(() => listener.close());
    const silentPort = await freePort();
    const neverPort = await freePort();

    // An unexpected connection (ephemeral source port) and a silent "Secondary" bound to silentPort.
    const stranger = await rawConnect(waitPort);
    const strangerDone = collectUntilClose(stranger);
    const silent = net.connect({ host: HOST, port: waitPort.port, localAddress: HOST, localPort: silentPort });
    silent.on('error', () => undefined);
    cleanups.push(() => void silent.destroy());
    const start = Date.now();
    const result = await listener.waitFor(
      [
        { host: HOST, port: silentPort },
        { host: HOST, port: neverPort },
      ],
      { timeoutMs: 800 },
    );
    expect(Date.now() - start).toBeGreaterThanOrEqual(700);
    expect(result.arrived).toEqual([]);
    expect(result.failed.map((f) => [f.endpoint.port, f.error.reason])).toEqual([[silentPort, 'TIMEOUT']]);
    expect(result.missing).toEqual([{ host: HOST, port: neverPort }]);
    expect((await strangerDone).closed).toBe(true);
    expect(errors.some((e) => /unexpected connection/.test(e.message))).toBe(true);
  });

  it('cuts short a getInfo exchange still running when the wait ends', async () => {
    const listener = new SecondaryWaitListener({ host: HOST, requestTimeoutMs: 10_000 });
    const waitPort = await listener.listen();
    cleanups.push(() => listener.close());
    const silentPort = await freePort();
    const silent = net.connect({ host: HOST, port: waitPort.port, localAddress: HOST, localPort: silentPort });
    silent.on('error', () => undefined);
    cleanups.push(() => void silent.destroy());
    const start = Date.now();
    const result = await listener.waitFor([{ host: HOST, port: silentPort }], { timeoutMs: 300 });
    expect(Date.now() - start).toBeLessThan(2000);
    expect(result.failed.map((f) => f.error.reason)).toEqual(['TIMEOUT']);
  });

  it('waitForSecondaries opens and closes the port around one wait', async () => {
    const port = await freePort();
    const waitPortNumber = await freePort();
    const secondary = new SecondaryServer(toySecondary().handler, { host: HOST, port });
    cleanups.push(() => secondary.close());
    const waiting = waitForSecondaries({ host: HOST, port: waitPortNumber, expected: [{ host: HOST, port }], timeoutMs: 5000 });
    await sleep(50);
    expect(await secondary.announceToPrimary({ host: HOST, port: waitPortNumber })).toBe(true);
    const result = await waiting;
    expect(result.arrived.map((a) => a.info.hwId)).toEqual(['hw-secondary']);
    const probe = net.connect(waitPortNumber, HOST);
    const refused = await new Promise<boolean>((r) => {
      probe.once('error', () => r(true));
      probe.once('connect', () => r(false));
    });
    probe.destroy();
    expect(refused).toBe(true);
  });

  it('announceToPrimary gives up on an unreachable Primary, and must come before listen()', async () => {
    const errors: Error[] = [];
    const secondary = new SecondaryServer(toySecondary().handler, { host: HOST, onError: (e) => errors.push(e) });
    cleanups.push(() => secondary.close());
    expect(await secondary.announceToPrimary({ host: HOST, port: await freePort() }, { connectTimeoutMs: 1000 })).toBe(false);
    expect((errors[0] as IpUptaneError).reason).toBe('CONNECTION_FAILED');
    await secondary.listen();
    expect((await rejection(secondary.announceToPrimary({ host: HOST, port: 1 }))).reason).toBe('BAD_ARGUMENT');
  });
});

it('expectMessage narrows a response from the wire', async () => {
  const { endpoint } = await startServer(() => ({ type: 'rootVerResp', version: 4 }));
  const resp = await new SecondaryClient(endpoint).request({ type: 'rootVerReq', repotype: REPO_TYPE.image });
  expect(expectMessage(resp, 'rootVerResp').version).toBe(4);
});
