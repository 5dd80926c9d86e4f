/**
 * Metadata expiry times. Both wire dialects use exactly `YYYY-MM-DDTHH:MM:SSZ`
 * (aktualizr rejects anything of another length, device-api.md §2.3). The core
 * never reads the clock: callers pass the (securely loaded) current time.
 */
import { FormatError } from './errors.js';

const EXPIRES_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

/** Parses an expiry string to epoch milliseconds; refuses other formats and impossible dates. */
export function parseExpires(s: string, path = 'expires'): number {
  const m = EXPIRES_RE.exec(s);
  if (!m) throw new FormatError(`${path} must be YYYY-MM-DDTHH:MM:SSZ, got ${JSON.stringify(s)}`, { path });
  const [, y, mo, d, h, mi, se] = m.map(Number) as [number, number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, se);
  // Date.UTC rolls 2026-02-30 over into March; a round trip catches impossible dates.
  if (formatExpires(ms) !== s) throw new FormatError(`${path} is not a valid date: ${s}`, { path });
  return ms;
}

/** Formats epoch milliseconds (or a Date) as `YYYY-MM-DDTHH:MM:SSZ`, dropping milliseconds. */
export function formatExpires(t: number | Date): string {
  const ms = typeof t === 'number' ? t : t.getTime();
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** Adds seconds to a time and formats it as an expiry. */
export function expiresIn(now: Date, seconds: number): string {
  return formatExpires(now.getTime() + seconds * 1000);
}
