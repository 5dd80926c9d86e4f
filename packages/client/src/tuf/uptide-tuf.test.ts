/**
 * uptide-tuf against a real TUF repository (tuf dialect, built with the core)
 * served on 127.0.0.1: the command-line contract of tuf-conformance, the
 * metadata directory, consistent snapshots, quoting, caching, and refusals.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expiresIn } from '@uptide/core';
import { main, parseArgs } from './cli.js';
import { quote } from './quote.js';
import { TestRepository, newSigner } from './testing/repository.js';

const BIN = fileURLToPath(new URL('../../dist/bin/uptide-tuf.js', import.meta.url));

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

async function run(...argv: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

let dir: string;
let metadataDir: string;
let targetDir: string;
let repo: TestRepository;

async function setUp(options: { consistentSnapshot?: boolean; metaHashes?: boolean } = {}): Promise<void> {
  repo = await TestRepository.create(options);
  await repo.start();
}

function rootFile(): string {
  const path = join(dir, 'initial_root.json');
  writeFileSync(path, repo.published.get('root')?.[0] as Uint8Array);
  return path;
}

const init = () => run('--metadata-dir', metadataDir, 'init', rootFile());
const refresh = () => run('--metadata-url', repo.metadataUrl, '--metadata-dir', metadataDir, 'refresh');
const download = (...names: string[]) =>
  run(
    '--metadata-url',
    repo.metadataUrl,
    '--metadata-dir',
    metadataDir,
    ...names.flatMap((n) => ['--target-name', n]),
    '--target-dir',
    targetDir,
    '--target-base-url',
    repo.targetsUrl,
    'download',
  );

const stored = (role: string): Buffer => readFileSync(join(metadataDir, `${quote(role)}.json`));
const version = (role: string): number => (JSON.parse(stored(role).toString('utf8')) as { signed: { version: number } }).signed.version;
const files = (d: string): string[] => readdirSync(d).sort();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'uptide-tuf-'));
  metadataDir = join(dir, 'metadata');
  targetDir = join(dir, 'targets');
});

afterEach(async () => {
  await repo?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('uptide-tuf init and refresh', () => {
  it('stores the initial root, then the top-level metadata under unversioned names with the exact bytes served', async () => {
    await setUp();
    expect((await init()).code).toBe(0);
    expect(files(metadataDir)).toEqual(['root.json']);
    const r = await refresh();
    expect(r.code, r.err).toBe(0);
    expect(repo.metadataRequests).toEqual([
      ['root', 2],
      ['timestamp', null],
      ['snapshot', 1],
      ['targets', 1],
    ]);
    // Nothing but the trusted metadata in the directory (no temporary files left behind).
    expect(files(metadataDir)).toEqual(['root.json', 'snapshot.json', 'targets.json', 'timestamp.json']);
    for (const role of ['root', 'timestamp', 'snapshot', 'targets']) expect(stored(role).equals(repo.latest(role))).toBe(true);
  });

  it('keeps a current snapshot and targets without downloading them again, and follows a root rotation', async () => {
    await setUp({ metaHashes: true });
    await init();
    expect((await refresh()).code).toBe(0);
    repo.metadataRequests.length = 0;
    expect((await refresh()).code).toBe(0);
    expect(repo.metadataRequests).toEqual([
      ['root', 2],
      ['timestamp', null],
    ]);

    await repo.publish(['root', 'root', 'targets', 'snapshot', 'timestamp']);
    repo.metadataRequests.length = 0;
    expect((await refresh()).code).toBe(0);
    expect(repo.metadataRequests).toEqual([
      ['root', 2],
      ['root', 3],
      ['root', 4],
      ['timestamp', null],
      ['snapshot', 2],
      ['targets', 2],
    ]);
    expect(version('root')).toBe(3);
    expect(stored('root').equals(repo.latest('root'))).toBe(true);
  });

  it('uses unversioned file names when the root does not ask for consistent snapshots', async () => {
    await setUp({ consistentSnapshot: false });
    repo.addTarget('targets', 'dir/file.bin', Buffer.from('plain'));
    await repo.publish(['targets', 'snapshot', 'timestamp']);
    await init();
    const r = await download('dir/file.bin');
    expect(r.code, r.err).toBe(0);
    expect(repo.metadataRequests).toEqual([
      ['root', 2],
      ['timestamp', null],
      ['snapshot', null],
      ['targets', null],
    ]);
    expect(repo.artifactRequests).toEqual([['dir/file.bin', null]]);
    expect(readFileSync(join(targetDir, quote('dir/file.bin'))).toString()).toBe('plain');
  });

  it('fails with exit status 1 when there is no trusted root, making no request', async () => {
    await setUp();
    const r = await refresh();
    expect(r.code).toBe(1);
    expect(repo.metadataRequests).toEqual([]);
  });

  it('refuses to initialize from a root that is not signed by its own keys', async () => {
    await setUp();
    const doc = JSON.parse(Buffer.from(repo.latest('root')).toString('utf8')) as { signatures: Array<{ sig: string }> };
    (doc.signatures[0] as { sig: string }).sig = '00'.repeat(64);
    const path = join(dir, 'bad_root.json');
    writeFileSync(path, JSON.stringify(doc));
    const r = await run('--metadata-dir', metadataDir, 'init', path);
    expect(r.code).toBe(1);
    expect(r.err).toContain('ARBITRARY_SOFTWARE');
    expect(existsSync(join(metadataDir, 'root.json'))).toBe(false);
  });
});

describe('uptide-tuf download', () => {
  it('downloads HASH.name under consistent snapshots, verifies it, and does not download a cached target again', async () => {
    await setUp();
    const content = Buffer.from('image bytes');
    const info = repo.addTarget('targets', 'path/to/image.bin', content);
    await repo.publish(['targets', 'snapshot', 'timestamp']);
    await init();

    const first = await download('path/to/image.bin');
    expect(first.code, first.err).toBe(0);
    expect(repo.artifactRequests).toEqual([['path/to/image.bin', info.hashes['sha256']]]);
    expect(files(targetDir)).toEqual([quote('path/to/image.bin')]);
    expect(readFileSync(join(targetDir, quote('path/to/image.bin'))).equals(content)).toBe(true);

    const second = await download('path/to/image.bin');
    expect(second.code, second.err).toBe(0);
    expect(repo.artifactRequests).toHaveLength(1);

    // A new version of the target is downloaded into the same file.
    repo.addTarget('targets', 'path/to/image.bin', Buffer.from('image bytes, v2'));
    await repo.publish(['targets', 'snapshot', 'timestamp']);
    expect((await download('path/to/image.bin')).code).toBe(0);
    expect(repo.artifactRequests).toHaveLength(2);
    expect(files(targetDir)).toEqual([quote('path/to/image.bin')]);
    expect(readFileSync(join(targetDir, quote('path/to/image.bin'))).toString()).toBe('image bytes, v2');
  });

  it('refuses a target whose bytes do not match its metadata and keeps nothing of it', async () => {
    await setUp();
    repo.addTarget('targets', 'a.bin', Buffer.from('genuine'));
    await repo.publish(['targets', 'snapshot', 'timestamp']);
    repo.artifacts.set('a.bin', Buffer.from('malware'));
    await init();
    const r = await download('a.bin');
    expect(r.code).toBe(1);
    expect(r.err).toContain('ARBITRARY_SOFTWARE');
    expect(files(targetDir)).toEqual([]);
  });

  it('stops at the first target that fails, in argument order', async () => {
    await setUp();
    repo.addTarget('targets', 'one', Buffer.from('1'));
    await repo.publish(['targets', 'snapshot', 'timestamp']);
    await init();
    const r = await download('one', 'missing', 'one');
    expect(r.code).toBe(1);
    expect(r.err).toContain('TARGET_NOT_FOUND');
    expect(files(targetDir)).toEqual(['one']);
  });

  it('finds a target through a delegated role whose name needs URL quoting, and stores the role under its quoted name', async () => {
    await setUp();
    const role = '../team a?#';
    await repo.addDelegation('targets', role, ['releases/*']);
    repo.addTarget(role, 'releases/app.tgz', Buffer.from('app'));
    await repo.publish([role, 'targets', 'snapshot', 'timestamp']);
    await init();

    const r = await download('releases/app.tgz');
    expect(r.code, r.err).toBe(0);
    expect(repo.metadataRequests.slice(4)).toEqual([[role, 1]]);
    expect(files(metadataDir)).toEqual(['..%2Fteam%20a%3F%23.json', 'root.json', 'snapshot.json', 'targets.json', 'timestamp.json'].sort());
    expect(stored(role).equals(repo.latest(role))).toBe(true);
    expect(readFileSync(join(targetDir, quote('releases/app.tgz'))).toString()).toBe('app');

    // Next time the stored delegated role is current: no new request for it.
    repo.metadataRequests.length = 0;
    expect((await download('releases/app.tgz')).code).toBe(0);
    expect(repo.metadataRequests).toEqual([
      ['root', 2],
      ['timestamp', null],
    ]);
  });
});

describe('uptide-tuf refusals', () => {
  it('refuses an expired timestamp (freeze) and keeps the trusted one', async () => {
    await setUp();
    await init();
    expect((await refresh()).code).toBe(0);
    repo.timestampExpires = expiresIn(new Date(), -60);
    await repo.publish(['timestamp']);
    const r = await refresh();
    expect(r.code).toBe(1);
    expect(r.err).toContain('FREEZE');
    expect(version('timestamp')).toBe(1);
  });

  it('refuses a timestamp rollback and a snapshot rollback, keeping what it trusts', async () => {
    await setUp();
    await init();
    await repo.publish(['targets', 'snapshot', 'timestamp']);
    expect((await refresh()).code).toBe(0);
    expect(version('timestamp')).toBe(2);

    // The repository serves timestamp version 1 again.
    repo.published.get('timestamp')?.push(repo.published.get('timestamp')?.[0] as Uint8Array);
    let r = await refresh();
    expect(r.code).toBe(1);
    expect(r.err).toContain('ROLLBACK');
    expect(version('timestamp')).toBe(2);

    // A new timestamp that points at an older snapshot.
    repo.published.get('timestamp')?.pop();
    repo.snapshotVersion = 0;
    await repo.publish(['snapshot']);
    repo.timestampVersion = 2;
    await repo.publish(['timestamp']);
    r = await refresh();
    expect(r.code).toBe(1);
    expect(r.err).toContain('ROLLBACK');
    expect(version('timestamp')).toBe(2);
    expect(version('snapshot')).toBe(2);
  });

  it('refuses metadata larger than python-tuf accepts (endless data)', async () => {
    await setUp();
    await init();
    repo.published.get('timestamp')?.push(Buffer.alloc(16_385, 0x20));
    const r = await refresh();
    expect(r.code).toBe(1);
    expect(r.err).toContain('ENDLESS_DATA');
    expect(files(metadataDir)).toEqual(['root.json']);
  });
});

// Deviations of the core that tuf-conformance found (now fixed there); kept here because the suite does not run in CI.
describe('core checks found by tuf-conformance', () => {
  it('checks a delegated role again against each delegator that reaches it (diamond delegation)', async () => {
    await setUp();
    await repo.addDelegation('targets', 'parent-a', ['team-a/*']);
    await repo.addDelegation('targets', 'parent-b', ['team-b/*']);
    await repo.addDelegation('parent-a', 'release', ['team-a/*']);
    // parent-b trusts another key for "release", one that never signed it.
    await repo.addDelegation('parent-b', 'release', ['team-b/*'], false, (await newSigner()).publicKey);
    repo.addTarget('release', 'team-a/root.json', Buffer.from('trusted A'));
    repo.addTarget('release', 'team-b/root.json', Buffer.from('malicious B'));
    await repo.publish(['release', 'parent-a', 'parent-b', 'targets', 'snapshot', 'timestamp']);
    await init();
    const r = await download('team-a/root.json', 'team-b/root.json');
    expect(r.code).toBe(1);
    expect(r.err).toContain('ARBITRARY_SOFTWARE');
    expect(files(targetDir)).toEqual([quote('team-a/root.json')]);
  });

  it('lets targets restart their versions after a snapshot key rotation (fast-forward recovery), and only then', async () => {
    await setUp();
    await init();
    for (let i = 0; i < 4; i++) await repo.publish(['targets']);
    await repo.publish(['snapshot', 'timestamp']);
    expect((await refresh()).code).toBe(0);
    expect(version('targets')).toBe(5);

    // Without a key rotation, a lower targets version is a rollback.
    repo.restart('targets', 1);
    repo.restart('snapshot', 1);
    await repo.publish(['targets', 'snapshot', 'timestamp']);
    const refused = await refresh();
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('ROLLBACK');
    expect(version('targets')).toBe(5);

    // The repository recovers: new snapshot key, targets and snapshot start again at 1.
    await repo.rotateKey('snapshot');
    repo.restart('targets', 1);
    repo.restart('snapshot', 1);
    await repo.publish(['root', 'targets', 'snapshot', 'timestamp']);
    const r = await refresh();
    expect(r.code, r.err).toBe(0);
    expect(version('targets')).toBe(1);
    expect(version('snapshot')).toBe(1);
  });

  it('refuses metadata that lists two signatures by the same key', async () => {
    await setUp();
    const list = repo.published.get('snapshot') as Uint8Array[];
    const doc = JSON.parse(Buffer.from(list[0] as Uint8Array).toString('utf8')) as { signatures: unknown[] };
    doc.signatures.push(doc.signatures[0]);
    list[0] = Buffer.from(JSON.stringify(doc));
    await init();
    const r = await refresh();
    expect(r.code).toBe(1);
    expect(r.err).toContain('two signatures');
    expect(files(metadataDir)).toEqual(['root.json', 'timestamp.json']);
  });
});

describe('uptide-tuf arguments', () => {
  it('takes options in any order, before or after the command, with = or a separate value', () => {
    const a = parseArgs([
      'download',
      '--target-name=x',
      '--metadata-dir',
      'm',
      '--target-dir',
      't',
      '--target-name',
      'y',
      '--target-base-url=u',
      '--metadata-url',
      'mu',
    ]);
    expect(a).toMatchObject({ command: 'download', metadataDir: 'm', metadataUrl: 'mu', targetNames: ['x', 'y'], targetDir: 't', targetBaseUrl: 'u' });
    expect(parseArgs(['init', 'root.json', '--metadata-dir', 'm'])).toMatchObject({ command: 'init', trustedRoot: 'root.json' });
  });

  it('exits with 1 on usage errors and 0 for --help', async () => {
    expect((await run('refresh', '--metadata-dir', 'm')).code).toBe(1);
    expect((await run('--metadata-dir', 'm', 'frobnicate')).code).toBe(1);
    expect((await run('--metadata-dir', 'm', '--bogus', 'x', 'refresh')).code).toBe(1);
    expect((await run('--metadata-dir', 'm', '--metadata-url', 'u', 'download')).code).toBe(1);
    expect((await run('--help')).code).toBe(0);
  });
});

// The real executable, as the conformance suite runs it (built by `npm test` before the tests).
describe.skipIf(!existsSync(BIN))('the uptide-tuf executable', () => {
  const exec = (...argv: string[]): Promise<number> =>
    new Promise((resolve) => {
      execFile(process.execPath, [BIN, ...argv], { timeout: 20_000 }, (err) => {
        resolve(err ? (typeof err.code === 'number' ? err.code : -1) : 0);
      });
    });

  it('exits 0 on success and exactly 1 on failure', async () => {
    await setUp();
    repo.addTarget('targets', 'f', Buffer.from('file'));
    await repo.publish(['targets', 'snapshot', 'timestamp']);
    expect(await exec('--metadata-dir', metadataDir, 'init', rootFile())).toBe(0);
    expect(await exec('--metadata-url', repo.metadataUrl, '--metadata-dir', metadataDir, 'refresh')).toBe(0);
    const dl = (name: string) =>
      exec(
        '--metadata-url',
        repo.metadataUrl,
        '--metadata-dir',
        metadataDir,
        '--target-name',
        name,
        '--target-dir',
        targetDir,
        '--target-base-url',
        repo.targetsUrl,
        'download',
      );
    expect(await dl('f')).toBe(0);
    expect(await dl('nonexistent')).toBe(1);
    expect(await exec('nonsense')).toBe(1);
  });
});
