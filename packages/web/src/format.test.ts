import { describe, expect, it } from 'vitest';
import { countsSummary, formatBytes, guessNameVersion, notAffectedReason, splitList, timeAgo, updateImages } from './format';
import { matchRoute } from './match';

describe('format', () => {
  it('formats bytes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(100_000)).toBe('97.7 KiB');
    expect(formatBytes(5 * 1024 * 1024 * 1024)).toBe('5.00 GiB');
    expect(formatBytes(-1)).toBe('–');
  });

  it('says how long ago', () => {
    const now = Date.parse('2026-01-10T12:00:00Z');
    expect(timeAgo(null, now)).toBe('never');
    expect(timeAgo('2026-01-10T11:59:55Z', now)).toBe('just now');
    expect(timeAgo('2026-01-10T11:59:00Z', now)).toBe('1 minute ago');
    expect(timeAgo('2026-01-10T09:00:00Z', now)).toBe('3 hours ago');
    expect(timeAgo('2026-01-08T12:00:00Z', now)).toBe('2 days ago');
    expect(timeAgo('2026-01-12T12:00:00Z', now)).toBe('in 2 days');
    expect(timeAgo('not a date', now)).toBe('not a date');
  });

  it('summarises update counts in a fixed order', () => {
    expect(countsSummary({})).toBe('no devices');
    expect(countsSummary({ assigned: 2, completed: 1, failed: 0 })).toBe('1 completed, 2 assigned');
  });

  it('explains why a device is not affected', () => {
    expect(notAffectedReason('release_counter_rollback')).toMatch(/rollback/);
    expect(notAffectedReason('something_new')).toBe('something new');
  });

  it('splits lists and guesses names', () => {
    expect(splitList(' a, b,,a c ')).toEqual(['a', 'b', 'c']);
    expect(guessNameVersion('firmware-1.2.3.bin')).toEqual({ name: 'firmware', version: '1.2.3' });
    expect(guessNameVersion('rootfs_v2.0-rc1.img')).toEqual({ name: 'rootfs', version: '2.0-rc1' });
    expect(guessNameVersion('blob')).toEqual({ name: 'blob', version: '' });
    expect(updateImages({ a: { to: { target: 'x' } }, b: { to: { target: 'x' } } })).toEqual(['x']);
  });
});

describe('matchRoute', () => {
  it('matches patterns and decodes parameters', () => {
    expect(matchRoute('/devices/:id', '/devices/car%201')).toEqual({ id: 'car 1' });
    expect(matchRoute('/devices/:id', '/devices/car-1.2')).toEqual({ id: 'car-1.2' });
    expect(matchRoute('/devices/:id', '/devices')).toBeNull();
    expect(matchRoute('/updates/new', '/updates/new/')).toEqual({});
    expect(matchRoute('/devices/:id', '/devices/%E0%A4%A')).toBeNull();
  });
});
