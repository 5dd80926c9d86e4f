/**
 * Attacks of a man in the middle between the vehicle and the servers
 * (capability (a), uptane-standard.md §9): the real server, the real Primary,
 * the proxy of harness/mitm.ts in between. The attacker holds no repository
 * key here: it drops, delays, trickles, inflates, truncates, replays and edits
 * what the server sends. Each test is named after its catalogue entry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ServerWorld, type Vehicle } from './harness/server-world.js';
import { expectDefeated } from './harness/defeated.js';
import { editJson, flipByte, versionOf } from './harness/util.js';

let world: ServerWorld;
beforeAll(async () => {
  world = await ServerWorld.start();
});
afterAll(async () => {
  await world?.close();
});

const IMAGE = '/repo/targets/fw-2.bin';

/** A vehicle running fw-1.bin with fw-2.bin directed to it. */
const fresh = (limits?: Record<string, number>): Promise<Vehicle> => world.vehicle({ limits });

/** A rule for this vehicle only. */
function on(v: Vehicle, path: string | RegExp, rule: Omit<Parameters<Vehicle['mitm']['rule']>[0], 'path' | 'device'>) {
  return v.mitm.rule({ path, device: v.deviceId, ...rule });
}

describe('A1 eavesdrop', () => {
  it('A1 a network attacker without a certificate the device trusts sees no request (TLS) → NETWORK', async () => {
    // The device trusts only the server's CA: the attacker's certificate is refused in the handshake.
    const v = await world.vehicle({ bare: true, trustCa: world.serverCa });
    const r = await v.primary.cycle();
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('NETWORK');
    // Not one request got through the handshake: nothing to read, nothing to change.
    expect(world.mitm.exchanges.filter((e) => e.device === v.deviceId)).toEqual([]);
  });
});

describe('A2 drop-request', () => {
  it('A2.1 Director timestamp answered 404 → HTTP_STATUS (never read as "no updates")', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/director/timestamp.json', { status: 404, body: '{"code":"not_found"}' }), { code: 'HTTP_STATUS' });
  });

  it('A2.2 Image timestamp dropped (connection reset) → NETWORK', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/repo/timestamp.json', { reset: true }), { code: 'NETWORK' });
  });

  it('A2.3 Director targets 404 while the timestamp announces a new version → HTTP_STATUS', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/director/targets.json', { status: 404, body: '' }), { code: 'HTTP_STATUS' });
  });

  it('A2.4 Image snapshot answered 500 → HTTP_STATUS', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/repo/snapshot.json', { status: 500, body: 'oops' }), { code: 'HTTP_STATUS' });
  });

  it('A2.5 image answered 503 → HTTP_STATUS, the failed download reported to the Director', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, IMAGE, { status: 503, body: 'busy' }), { code: 'HTTP_STATUS', report: 'DOWNLOAD_FAILED' });
  });

  it('A2.6 image connection cut half way → NETWORK; the partial file is kept and resumed by the honest cycle', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, IMAGE, { cutAfter: 1000 }), { code: 'NETWORK', report: 'DOWNLOAD_FAILED', partialDownload: true });
    // The honest cycle asked for the rest only.
    expect(world.mitm.exchanges.some((e) => e.device === v.deviceId && e.path === IMAGE && e.status === 206)).toBe(true);
  });

  it('A2.7 the manifest dropped: the attack and installation reports are kept and sent by a later cycle', async () => {
    const v = await fresh();
    const old = v.mitm.recorded(v.deviceId, '/director/timestamp.json')[0] as Buffer;
    on(v, '/director/timestamp.json', { body: old });
    on(v, '/director/manifest', { reset: true });
    const r = await v.primary.cycle();
    expect(r.attack?.code).toBe('ROLLBACK');
    expect(v.primary.store.state.pendingAttacks.map((a) => a.code)).toEqual(['ROLLBACK']);
    await v.heal();
    expect((await v.primary.cycle()).installed).toEqual(['fw-2.bin']);
    expect((await v.serverAttacks()).map((a) => a.code)).toContain('ROLLBACK');
    expect(v.primary.store.state.pendingAttacks).toEqual([]);
  });
});

describe('A3 slow retrieval', () => {
  const slow = { min_speed_window: 0.5 };

  it('A3.1 Director targets trickled at 1 B/s with Content-Length → SLOW_RETRIEVAL within the budget', async () => {
    const v = await fresh(slow);
    const t0 = Date.now();
    await expectDefeated(v, () => on(v, '/director/targets.json', { bytesPerSecond: 1 }), {
      code: 'SLOW_RETRIEVAL',
      check: () => expect(Date.now() - t0).toBeLessThan(5_000),
    });
  });

  it('A3.2 Image snapshot trickled at 10 B/s without Content-Length → SLOW_RETRIEVAL', async () => {
    const v = await fresh(slow);
    await expectDefeated(v, () => on(v, '/repo/snapshot.json', { bytesPerSecond: 10, dropContentLength: true }), {
      code: 'SLOW_RETRIEVAL',
      report: 'VERIFICATION_FAILED',
    });
  });

  it('A3.3 Director timestamp trickled endlessly at 10 B/s → SLOW_RETRIEVAL', async () => {
    const v = await fresh(slow);
    await expectDefeated(v, () => on(v, '/director/timestamp.json', { endless: true, bytesPerSecond: 10 }), { code: 'SLOW_RETRIEVAL' });
  });

  it('A3.4 image trickled at 10 B/s with Content-Length → SLOW_RETRIEVAL, resumed by the honest cycle', async () => {
    const v = await fresh(slow);
    await expectDefeated(v, () => on(v, IMAGE, { bytesPerSecond: 10 }), { code: 'SLOW_RETRIEVAL', report: 'DOWNLOAD_FAILED', partialDownload: true });
  });

  it('A3.5 image trickled at 300 B/s without Content-Length → SLOW_RETRIEVAL', async () => {
    const v = await fresh(slow);
    await expectDefeated(v, () => on(v, IMAGE, { bytesPerSecond: 300, dropContentLength: true }), {
      code: 'SLOW_RETRIEVAL',
      report: 'DOWNLOAD_FAILED',
      partialDownload: true,
    });
  });
});

describe('A6 denial of service', () => {
  it('A6 every server unreachable → NETWORK; the ECU keeps running its image and recovers next cycle', async () => {
    const v = await fresh();
    await expectDefeated(v, () => v.mitm.rule({ path: /^\/(director|repo)\//, device: v.deviceId, reset: true }), { code: 'NETWORK' });
  });
});

describe('A7 rollback (replayed genuine metadata)', () => {
  it('A7.1 Director N+1.root that is a copy of root N → ROLLBACK', async () => {
    const v = await fresh();
    const root1 = v.mitm.recorded(undefined, '/director/1.root.json')[0] ?? (await world.ts.api('GET', '/api/v1/admin/repo/1.root.json')).raw;
    await expectDefeated(v, () => on(v, '/director/2.root.json', { status: 200, body: root1 }), { code: 'ROLLBACK' });
  });

  it('A7.1 Image N+1.root that is a copy of root N → ROLLBACK', async () => {
    const v = await fresh();
    const root1 = (await world.ts.api('GET', '/api/v1/user_repo/1.root.json')).raw;
    await expectDefeated(v, () => on(v, '/repo/2.root.json', { status: 200, body: root1 }), { code: 'ROLLBACK', report: 'VERIFICATION_FAILED' });
  });

  it('A7.2 Director timestamp older than the trusted one → ROLLBACK', async () => {
    const v = await fresh();
    const old = v.mitm.recorded(v.deviceId, '/director/timestamp.json')[0] as Buffer;
    expect(versionOf(old)).toBeLessThan(versionOf(v.lastServed('/director/timestamp.json')));
    await expectDefeated(v, () => on(v, '/director/timestamp.json', { body: old }), { code: 'ROLLBACK' });
  });

  it('A7.2 Image timestamp older than the trusted one → ROLLBACK', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/repo/timestamp.json', { body: world.oldImageFiles.timestamp }), { code: 'ROLLBACK', report: 'VERIFICATION_FAILED' });
  });

  it('A7.3 old Image snapshot and targets with the old timestamp (a consistent older repository) → ROLLBACK', async () => {
    const v = await fresh();
    const old = world.oldImageFiles;
    await expectDefeated(
      v,
      () => {
        on(v, '/repo/timestamp.json', { body: old.timestamp });
        on(v, '/repo/snapshot.json', { body: old.snapshot });
        on(v, '/repo/targets.json', { body: old.targets });
      },
      { code: 'ROLLBACK', report: 'VERIFICATION_FAILED' },
    );
  });
});

describe('A8 endless data', () => {
  it('A8.1 endless Director N+1.root without Content-Length → ENDLESS_DATA', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/director/2.root.json', { status: 200, endless: true }), { code: 'ENDLESS_DATA' });
  });

  it('A8.2 Director timestamp announcing 1 GiB → ENDLESS_DATA before a byte is read', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/director/timestamp.json', { endless: true, contentLength: 1024 ** 3 }), { code: 'ENDLESS_DATA' });
  });

  it('A8.3 endless Image timestamp without Content-Length → ENDLESS_DATA', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/repo/timestamp.json', { endless: true }), { code: 'ENDLESS_DATA', report: 'VERIFICATION_FAILED' });
  });

  it('A8.4 Director snapshot longer than the timestamp says → ENDLESS_DATA', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/director/snapshot.json', { endless: 200_000, dropContentLength: true }), { code: 'ENDLESS_DATA' });
  });

  it('A8.5 endless Director targets → ENDLESS_DATA', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/director/targets.json', { endless: true }), { code: 'ENDLESS_DATA' });
  });

  it('A8.6 endless Image targets → ENDLESS_DATA', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/repo/targets.json', { endless: true, dropContentLength: true }), {
      code: 'ENDLESS_DATA',
      report: 'VERIFICATION_FAILED',
    });
  });

  it('A8.7 image one byte longer than its metadata, with Content-Length → ENDLESS_DATA', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, IMAGE, { body: (b) => Buffer.concat([b, Buffer.from([0])]) }), { code: 'ENDLESS_DATA', report: 'DOWNLOAD_FAILED' });
  });

  it('A8.8 image one byte longer, without Content-Length → ENDLESS_DATA', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, IMAGE, { body: (b) => Buffer.concat([b, Buffer.from([0])]), dropContentLength: true }), {
      code: 'ENDLESS_DATA',
      report: 'DOWNLOAD_FAILED',
    });
  });

  it('A8.9 endless image without Content-Length → ENDLESS_DATA, nothing left on disk', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, IMAGE, { endless: true }), {
      code: 'ENDLESS_DATA',
      report: 'DOWNLOAD_FAILED',
      check: () => expect(readdirSync(join(v.storage, 'downloads'))).toEqual([]),
    });
  });

  it('A8.10 image one byte shorter than its metadata → ARBITRARY_SOFTWARE (exact length)', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, IMAGE, { body: (b) => b.subarray(0, b.length - 1) }), { code: 'ARBITRARY_SOFTWARE', report: 'VERIFICATION_FAILED' });
  });
});

describe('A9 mix-and-match (replayed genuine metadata)', () => {
  it('A9.1 a Director snapshot other than the one the timestamp lists → MIX_AND_MATCH', async () => {
    const v = await fresh();
    const old = v.mitm.recorded(v.deviceId, '/director/snapshot.json')[0] as Buffer;
    await expectDefeated(v, () => on(v, '/director/snapshot.json', { body: old }), { code: 'MIX_AND_MATCH' });
  });

  it('A9.1 an Image snapshot other than the one the timestamp lists → MIX_AND_MATCH', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/repo/snapshot.json', { body: world.oldImageFiles.snapshot }), {
      code: 'MIX_AND_MATCH',
      report: 'VERIFICATION_FAILED',
    });
  });

  it('A9.2 Director targets other than those the snapshot lists → MIX_AND_MATCH', async () => {
    const v = await fresh();
    const old = v.mitm.recorded(v.deviceId, '/director/targets.json')[0] as Buffer;
    await expectDefeated(v, () => on(v, '/director/targets.json', { body: old }), { code: 'MIX_AND_MATCH' });
  });

  it('A9.2 Image targets other than those the snapshot lists → MIX_AND_MATCH', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/repo/targets.json', { body: world.oldImageFiles.targets }), { code: 'MIX_AND_MATCH', report: 'VERIFICATION_FAILED' });
  });
});

describe('A10 arbitrary software (no key)', () => {
  it('A10.1 Director timestamp with its signatures removed → ARBITRARY_SOFTWARE', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/director/timestamp.json', { body: (b) => editJson(b, (d) => void (d.signatures = [])) }), {
      code: 'ARBITRARY_SOFTWARE',
    });
  });

  it('A10.1 Image N+1.root with its signatures removed → ARBITRARY_SOFTWARE', async () => {
    const v = await fresh();
    const root1 = (await world.ts.api('GET', '/api/v1/user_repo/1.root.json')).raw;
    const forged = editJson(root1, (d) => {
      d.signed['version'] = 2;
      d.signatures = [];
    });
    await expectDefeated(v, () => on(v, '/repo/2.root.json', { status: 200, body: forged }), { code: 'ARBITRARY_SOFTWARE', report: 'VERIFICATION_FAILED' });
  });

  it('A10.4 Director timestamp changed after it was signed (version raised) → ARBITRARY_SOFTWARE', async () => {
    const v = await fresh();
    const bump = (b: Buffer) => editJson(b, (d) => void (d.signed['version'] = (d.signed['version'] as number) + 1000));
    await expectDefeated(v, () => on(v, '/director/timestamp.json', { body: bump }), { code: 'ARBITRARY_SOFTWARE' });
  });

  it('A10.4 Image timestamp changed after it was signed (expiry extended) → ARBITRARY_SOFTWARE', async () => {
    const v = await fresh();
    const extend = (b: Buffer) => editJson(b, (d) => void (d.signed['expires'] = '2099-01-01T00:00:00Z'));
    await expectDefeated(v, () => on(v, '/repo/timestamp.json', { body: extend }), { code: 'ARBITRARY_SOFTWARE', report: 'VERIFICATION_FAILED' });
  });

  it('A10.4 whitespace and key order changed by a MitM in a signed timestamp: same canonical payload, accepted', async () => {
    const v = await fresh();
    on(v, '/director/timestamp.json', {
      body: (b) => {
        const d = JSON.parse(b.toString('utf8')) as { signed: Record<string, unknown>; signatures: unknown };
        const reordered = Object.fromEntries(Object.entries(d.signed).reverse());
        return JSON.stringify({ signed: reordered, signatures: d.signatures }, null, 3);
      },
    });
    const r = await v.primary.cycle();
    expect(r).toMatchObject({ ok: true, installed: ['fw-2.bin'] });
  });

  it('A10.7 tampered image bytes (the sha256 and sha512 both listed) → ARBITRARY_SOFTWARE', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, IMAGE, { body: (b) => flipByte(b) }), { code: 'ARBITRARY_SOFTWARE', report: 'VERIFICATION_FAILED' });
  });

  it('A10.7 another image of the same length served in place of the directed one → ARBITRARY_SOFTWARE', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, IMAGE, { body: world.image('fw-0.bin').bytes }), { code: 'ARBITRARY_SOFTWARE', report: 'VERIFICATION_FAILED' });
  });
});

describe('A19 malformed encoding', () => {
  const cases: Array<[string, string, string, (b: Buffer) => Uint8Array | string]> = [
    ['A19.1 truncated JSON', '/director/timestamp.json', 'MALFORMED_JSON', (b) => b.subarray(0, b.length - 10)],
    [
      'A19.2 duplicate JSON keys',
      '/director/timestamp.json',
      'MALFORMED_JSON',
      (b) => b.toString('utf8').replace('{"signatures"', '{"signatures":[],"signatures"'),
    ],
    [
      'A19.3 a wrong type (version as a string)',
      '/director/timestamp.json',
      'MALFORMED_METADATA',
      (b) => editJson(b, (d) => void (d.signed['version'] = String(d.signed['version']))),
    ],
    [
      'A19.4 a huge integer',
      '/director/timestamp.json',
      'MALFORMED_JSON',
      (b) => b.toString('utf8').replace(/"version":\d+/, '"version":123456789012345678901234567890'),
    ],
    [
      'A19.5 a negative length',
      '/repo/timestamp.json',
      'MALFORMED_METADATA',
      (b) =>
        editJson(b, (d) => {
          const meta = d.signed['meta'] as Record<string, Record<string, unknown>>;
          for (const k of Object.keys(meta)) (meta[k] as Record<string, unknown>)['length'] = -1;
        }),
    ],
    ['A19.6 an unknown _type', '/director/timestamp.json', 'MALFORMED_METADATA', (b) => editJson(b, (d) => void (d.signed['_type'] = 'Timestomp'))],
    [
      'A19.7 a signed object with an extra field',
      '/director/timestamp.json',
      'ARBITRARY_SOFTWARE',
      (b) => editJson(b, (d) => void (d.signed['x_attacker'] = 'added after signing')),
    ],
    ['A19.8 deep nesting', '/director/timestamp.json', 'MALFORMED_JSON', () => '['.repeat(5000) + ']'.repeat(5000)],
    ['A19.9 a lone surrogate', '/director/timestamp.json', 'MALFORMED_JSON', (b) => b.toString('utf8').replace('"signatures":[', '"signatures":["\\ud800",')],
    ['A19.10 not JSON at all (an HTML error page)', '/director/timestamp.json', 'MALFORMED_JSON', () => '<html><body>502 Bad Gateway</body></html>'],
    ['A19.11 an empty body', '/director/timestamp.json', 'MALFORMED_JSON', () => ''],
    ['A19.12 a JSON array instead of an object', '/repo/timestamp.json', 'MALFORMED_METADATA', () => '[]'],
  ];
  for (const [name, path, code, body] of cases) {
    it(`${name} in ${path} → ${code}`, async () => {
      const v = await fresh();
      await expectDefeated(v, () => on(v, path, { body }), { code, report: path.startsWith('/repo') ? 'VERIFICATION_FAILED' : undefined });
    });
  }
});

describe('A20 role confusion', () => {
  it('A20.1 the Director snapshot served as the Director timestamp → MALFORMED_METADATA', async () => {
    const v = await fresh();
    const snapshot = v.lastServed('/director/snapshot.json');
    await expectDefeated(v, () => on(v, '/director/timestamp.json', { body: snapshot }), { code: 'MALFORMED_METADATA' });
  });

  it('A20.2 the Image timestamp served as the Director timestamp → ARBITRARY_SOFTWARE (the Director root keys decide)', async () => {
    const v = await fresh();
    const image = (await world.ts.api('GET', '/api/v1/user_repo/timestamp.json')).raw;
    await expectDefeated(v, () => on(v, '/director/timestamp.json', { body: image }), { code: 'ARBITRARY_SOFTWARE' });
  });

  it('A20.3 the Director timestamp served as the Image timestamp → ARBITRARY_SOFTWARE', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, '/repo/timestamp.json', { body: (_b) => v.lastServed('/director/timestamp.json') }), {
      code: 'ARBITRARY_SOFTWARE',
      report: 'VERIFICATION_FAILED',
    });
  });

  it('A20.4 the Image root served as the Director N+1.root → ARBITRARY_SOFTWARE', async () => {
    const v = await fresh();
    const imageRoot = editJson((await world.ts.api('GET', '/api/v1/user_repo/1.root.json')).raw, (d) => void (d.signed['version'] = 2));
    await expectDefeated(v, () => on(v, '/director/2.root.json', { status: 200, body: imageRoot }), { code: 'ARBITRARY_SOFTWARE' });
  });

  it('A20.5 the Image targets served as the Director targets → ENDLESS_DATA (the Director snapshot pins their length)', async () => {
    const v = await fresh();
    const image = (await world.ts.api('GET', '/api/v1/user_repo/targets.json')).raw;
    await expectDefeated(v, () => on(v, '/director/targets.json', { body: image }), { code: 'ENDLESS_DATA' });
  });
});

describe('A21 Image repository unavailable', () => {
  it('A21.1 every Image repository request answered 503 → HTTP_STATUS; no fallback to Director-only trust', async () => {
    const v = await fresh();
    await expectDefeated(v, () => on(v, /^\/repo\//, { status: 503, body: 'down' }), { code: 'HTTP_STATUS' });
    expect(world.mitm.exchanges.some((e) => e.device === v.deviceId && e.path === IMAGE && e.tampered)).toBe(false);
  });
});
