import { describe, it, expect } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateError, StateStore } from './store.js';
import { removeStaleTempFiles, writeFileAtomic } from './atomic.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'uptide-state-'));

describe('atomic files', () => {
  it('writes through a temporary file and leaves only the target, private', async () => {
    const dir = tmp();
    await writeFileAtomic(join(dir, 'a.json'), 'one');
    await writeFileAtomic(join(dir, 'a.json'), 'two');
    expect(readFileSync(join(dir, 'a.json'), 'utf8')).toBe('two');
    expect(readdirSync(dir)).toEqual(['a.json']);
    expect(statSync(join(dir, 'a.json')).mode & 0o777).toBe(0o600);
  });

  it('removes temporary files a crash left behind', async () => {
    const dir = tmp();
    writeFileSync(join(dir, '.state.json.tmp-123-abcd'), 'half');
    writeFileSync(join(dir, 'state.json'), 'kept');
    expect(await removeStaleTempFiles(dir)).toBe(1);
    expect(readdirSync(dir)).toEqual(['state.json']);
  });
});

describe('StateStore', () => {
  it('persists the report counter before returning it, strictly increasing across reopen', async () => {
    const dir = tmp();
    let s = await StateStore.open(dir);
    expect(await s.nextReportCounter()).toBe(1);
    expect(await s.nextReportCounter()).toBe(2);
    // No close: as after a power cut (the lock's owner is this process, so it is taken over).
    s = await StateStore.open(dir);
    expect(await s.nextReportCounter()).toBe(3);
    await s.close();
  });

  it('never lets the clock go below the latest verified time', async () => {
    const s = await StateStore.open(tmp());
    await s.recordVerifiedTime(new Date(2_000_000_000_000));
    expect(s.now(1_000_000_000_000).getTime()).toBe(2_000_000_000_000);
    expect(s.now(3_000_000_000_000).getTime()).toBe(3_000_000_000_000);
    await s.recordVerifiedTime(new Date(1_500_000_000_000));
    expect(s.state.latestVerifiedTime).toBe(2_000_000_000_000);
    await s.close();
  });

  it('keeps metadata bytes exactly, and removes files no longer trusted', async () => {
    const dir = tmp();
    const s = await StateStore.open(dir);
    await s.writeRoot('image', Buffer.from('root-1'), 1);
    await s.writeRoot('image', Buffer.from('root-2'), 2);
    await s.writeMetadata('image', {
      root: Buffer.from('root-2'),
      timestamp: Buffer.from('ts'),
      snapshot: Buffer.from('sn'),
      targets: Buffer.from('tg'),
      delegated: new Map([['team/a b', Buffer.from('del')]]),
    });
    const m = await s.readMetadata('image');
    expect(Buffer.from(m?.root ?? []).toString()).toBe('root-2');
    expect(Buffer.from(m?.targets ?? []).toString()).toBe('tg');
    expect([...(m?.delegated ?? new Map()).keys()]).toEqual(['team/a b']);
    expect((await s.readRootChain('image')).map((r) => r.version)).toEqual([1, 2]);
    await s.writeMetadata('image', { root: Buffer.from('root-2'), targets: Buffer.from('tg2') });
    const m2 = await s.readMetadata('image');
    expect(m2?.timestamp).toBeUndefined();
    expect(m2?.snapshot).toBeUndefined();
    expect(m2?.delegated?.size).toBe(0);
    expect(await s.readMetadata('director')).toBeUndefined();
    await s.close();
  });

  it('keeps attack reports and the pending installation report until a manifest carried them', async () => {
    const s = await StateStore.open(tmp());
    await s.addAttack({ code: 'ROLLBACK', message: 'a', repository: 'image', role: 'timestamp' });
    const sent = [...s.state.pendingAttacks];
    await s.addAttack({ code: 'FREEZE', message: 'b' });
    await s.clearAttacks(sent);
    expect(s.state.pendingAttacks.map((a) => a.code)).toEqual(['FREEZE']);
    await s.close();
  });

  it('round-trips the pending-install marker', async () => {
    const dir = tmp();
    const s = await StateStore.open(dir);
    await s.writePendingInstall({ ecuSerial: 'e1', targetName: 'fw.bin', length: 3, hashes: { sha256: 'ab' }, correlationId: 'urn:x', startedAt: 'now' });
    const again = await StateStore.open(dir);
    expect(await again.readPendingInstall()).toEqual({
      ecuSerial: 'e1',
      targetName: 'fw.bin',
      length: 3,
      hashes: { sha256: 'ab' },
      correlationId: 'urn:x',
      startedAt: 'now',
    });
    await again.clearPendingInstall();
    expect(await again.readPendingInstall()).toBeUndefined();
    await again.close();
  });

  it('refuses a corrupt state file rather than starting afresh', async () => {
    const dir = tmp();
    const s = await StateStore.open(dir);
    await s.nextReportCounter();
    await s.close();
    writeFileSync(join(dir, 'state.json.bak'), readFileSync(join(dir, 'state.json')));
    writeFileSync(join(dir, 'state.json'), '{"format":"uptide-device-state","version":1,"reportCounter":"x"');
    await expect(StateStore.open(dir)).rejects.toMatchObject({ code: 'STATE_CORRUPT' });
    const good = JSON.parse(readFileSync(join(dir, 'state.json.bak'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ ...good, reportCounter: -1 }));
    await expect(StateStore.open(dir)).rejects.toThrow(/reportCounter must be a non-negative integer/);
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ format: 'something-else' }));
    await expect(StateStore.open(dir)).rejects.toBeInstanceOf(StateError);
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ format: 'uptide-device-state', version: 99 }));
    await expect(StateStore.open(dir)).rejects.toMatchObject({ code: 'STATE_UNSUPPORTED' });
  });

  it('refuses a directory whose state.json is gone but whose key remains', async () => {
    const dir = tmp();
    const s = await StateStore.open(dir);
    await s.writeEcuKey('-----BEGIN PRIVATE KEY-----\n');
    await s.close();
    rmSync(join(dir, 'state.json'));
    await expect(StateStore.open(dir)).rejects.toThrow(/state.json is missing but ecu-key.pem exists/);
  });

  it('is used by one process at a time', async () => {
    const dir = tmp();
    // A live process other than us holds the lock (our parent).
    writeFileSync(join(dir, 'lock'), `${process.ppid}\n`);
    await expect(StateStore.open(dir)).rejects.toMatchObject({ code: 'STATE_LOCKED' });
    // A dead one's lock is taken over.
    writeFileSync(join(dir, 'lock'), '999999999\n');
    const s = await StateStore.open(dir);
    expect(readFileSync(join(dir, 'lock'), 'utf8').trim()).toBe(String(process.pid));
    await s.close();
  });
});
