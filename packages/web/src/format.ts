/** Labels and formats the console shows; pure, so they are unit-tested. */
import type { AssignmentStatus, DeviceStatus } from './api';

export const DEVICE_STATUS_LABEL: Record<DeviceStatus, string> = {
  NotSeen: 'Not seen',
  UpToDate: 'Up to date',
  UpdatePending: 'Update pending',
  UpdateInFlight: 'Update in flight',
  Error: 'Error',
};

export const DEVICE_STATUS_HELP: Record<DeviceStatus, string> = {
  NotSeen: 'The device has never checked in.',
  UpToDate: 'The device runs what it was last told to install, and nothing is assigned to it.',
  UpdatePending: 'An update is assigned; the device has not fetched it yet.',
  UpdateInFlight: 'The device has fetched its update and is installing it.',
  Error: 'The last installation the device reported failed.',
};

export const ASSIGNMENT_STATUS_LABEL: Record<AssignmentStatus, string> = {
  assigned: 'Assigned',
  in_flight: 'In flight',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

export const ASSIGNMENT_STATUS_HELP: Record<AssignmentStatus, string> = {
  assigned: 'Waiting for the device to fetch it; can still be cancelled.',
  in_flight: 'The device has fetched the update; it can no longer be cancelled.',
  completed: 'The device reported the image installed.',
  failed: 'The device reported that the installation failed.',
  cancelled: 'Cancelled before the device fetched it.',
};

/** Why the Director would not (or did not) assign an update to a device (`notAffected[].reason`). */
export function notAffectedReason(reason: string): string {
  switch (reason) {
    case 'unknown_device':
      return 'no such device';
    case 'update_in_progress':
      return 'another update is still assigned or in flight on it: cancel that one or wait for it to finish';
    case 'no_matching_hardware':
      return 'none of its ECUs has a hardware id the image is built for (a device that has not registered its ECUs has none)';
    case 'target_not_found':
      return 'the image is no longer in the Image repository';
    case 'from_mismatch':
      return 'its ECUs do not run the image the update starts from';
    case 'release_counter_rollback':
      return "the image's release counter is lower than that of the image the ECU runs: it would be a rollback";
    default:
      return reason.replace(/_/g, ' ');
  }
}

/** Who reported an attack: an ECU in its version report, or the Director refusing a manifest. */
export function attackSource(source: string): string {
  if (source === 'reported') return 'reported by the ECU';
  if (source === 'refused') return 'manifest refused by the Director';
  return source;
}

/** aktualizr reports an ECU that Uptane has not installed anything on yet as "unknown", 0 bytes. */
export function isUnknownImage(i: { filepath: string; length: number }): boolean {
  return i.filepath === 'unknown' && i.length === 0;
}

/** A byte count for people: 1 KiB = 1024 bytes. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '–';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[i]}`;
}

/** "3 minutes ago", "in 2 days", "just now"; `now` is passed in so this stays pure. */
export function timeAgo(iso: string | null | undefined, now: number): string {
  if (!iso) return 'never';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.round((now - t) / 1000);
  const abs = Math.abs(s);
  if (abs < 10) return 'just now';
  const steps: Array<[number, string]> = [
    [60, 'second'],
    [60, 'minute'],
    [24, 'hour'],
    [30, 'day'],
    [12, 'month'],
    [Number.POSITIVE_INFINITY, 'year'],
  ];
  let v = abs;
  for (const [size, unit] of steps) {
    if (v < size) {
      const n = Math.floor(v);
      const text = `${n} ${unit}${n === 1 ? '' : 's'}`;
      return s >= 0 ? `${text} ago` : `in ${text}`;
    }
    v /= size;
  }
  return iso;
}

/** A local date and time, for title attributes and tables. */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function shortHash(h: string | undefined, n = 12): string {
  if (!h) return '–';
  return h.length > n ? `${h.slice(0, n)}…` : h;
}

/** "1 completed, 2 in flight" from an update's per-device counts, in a fixed order. */
export function countsSummary(counts: Partial<Record<AssignmentStatus, number>>): string {
  const order: AssignmentStatus[] = ['completed', 'in_flight', 'assigned', 'failed', 'cancelled'];
  const parts = order.filter((s) => (counts[s] ?? 0) > 0).map((s) => `${counts[s]} ${ASSIGNMENT_STATUS_LABEL[s].toLowerCase()}`);
  return parts.length === 0 ? 'no devices' : parts.join(', ');
}

/** Splits "a, b,,c" into distinct, trimmed hardware ids. */
export function splitList(s: string): string[] {
  return [
    ...new Set(
      s
        .split(/[,\s]+/)
        .map((x) => x.trim())
        .filter(Boolean),
    ),
  ];
}

/** Guesses name and version from a file name: "firmware-1.2.3.bin" → firmware, 1.2.3. */
export function guessNameVersion(filename: string): { name: string; version: string } {
  const base = filename.replace(/\.(bin|img|tar|gz|tgz|zip|swu|ota|raw|hex|elf|wic|ext4|squashfs|xz|bz2|zst)$/gi, '').replace(/\.(tar)$/i, '');
  const m = /^(.*?)[-_ ]v?(\d+(?:\.\d+)*(?:[-+][0-9A-Za-z.-]+)?)$/.exec(base);
  if (m && m[1]) return { name: m[1], version: m[2] as string };
  return { name: base || filename, version: '' };
}

/** The images an update installs, from its targets per hardware id. */
export function updateImages(targets: Record<string, { to: { target: string } }>): string[] {
  return [...new Set(Object.values(targets).map((t) => t.to.target))];
}
