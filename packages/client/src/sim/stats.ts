/**
 * What the simulator counts, and the two ways it says it: a live line on
 * stderr every few seconds and a final summary (text or JSON).
 *
 * A check-in is one completed update cycle of one device, whatever its
 * outcome. A device is online when its latest cycle succeeded.
 */
import type { CycleResult } from '../primary/primary.js';

export interface SimSummary {
  readonly devices: number;
  readonly secondariesPerDevice: number;
  readonly intervalSeconds: number;
  /** Seconds from the first check-in scheduled to the end of the run. */
  readonly elapsedSeconds: number;
  /** Seconds spent provisioning and opening devices before the first check-in. */
  readonly setupSeconds: number;
  /** Devices provisioned and opened. */
  readonly ready: number;
  /** Devices whose latest cycle succeeded. */
  readonly online: number;
  /** Devices that checked in successfully at least once. */
  readonly seen: number;
  readonly checkIns: number;
  readonly failedCheckIns: number;
  /** Completed check-ins per second over the whole run. */
  readonly checkInsPerSecond: number;
  /**
   * Completed check-ins per second in the steady state: from the moment every
   * device had checked in successfully once (first check-ins register ECUs and
   * open TLS connections; they cost more) to the end; from the end of setup
   * when that moment never came.
   */
  readonly steadyCheckInsPerSecond: number;
  /** Seconds of that steady state. */
  readonly steadySeconds: number;
  /** The best rate over one second. */
  readonly peakCheckInsPerSecond: number;
  /** What the fleet asks for: devices / interval. */
  readonly offeredCheckInsPerSecond: number;
  /** Update-cycle wall time (ms). */
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly p99: number; readonly max: number };
  /** How late check-ins started on average (s): above a small fraction of the interval, the simulator or the server cannot keep up. */
  readonly meanLagSeconds: number;
  /** New targets the Director listed, per ECU. */
  readonly updatesFound: number;
  /** ECU installations that succeeded. */
  readonly installed: number;
  /** ECU updates found that were not installed (verification, download or installation failed). */
  readonly updateFailures: number;
  /** Failed cycles by error code (NETWORK, HTTP_STATUS, ROLLBACK, …). */
  readonly errors: Readonly<Record<string, number>>;
  /** Devices that could not be provisioned or opened, by code. */
  readonly setupErrors: Readonly<Record<string, number>>;
  /** Why the run ended: `duration`, `signal` or `error`. */
  readonly stoppedBy: string;
}

/** Latencies of the current window are kept whole (bounded by the window's check-ins); the run keeps a capped reservoir. */
const RESERVOIR = 20_000;

export class SimStats {
  ready = 0;
  checkIns = 0;
  failedCheckIns = 0;
  updatesFound = 0;
  installed = 0;
  updateFailures = 0;
  peakRate = 0;
  private lagSum = 0;
  /** Check-ins completed, and the time, when every device was ready; then when every device had checked in once. */
  checkInsAtReady = 0;
  warm: { at: number; checkIns: number } | undefined;
  readonly errors = new Map<string, number>();
  readonly setupErrors = new Map<string, number>();
  private readonly latencies: number[] = [];
  private seenLatencies = 0;
  private readonly lastOk = new Map<string, boolean>();
  private readonly everOk = new Set<string>();
  private windowStart: number;
  private windowCheckIns = 0;
  private readonly windowLatencies: number[] = [];
  private tickStart: number;
  private tickCheckIns = 0;

  constructor(private readonly clock: () => number = () => performance.now()) {
    this.windowStart = clock();
    this.tickStart = this.windowStart;
  }

  /** Called about once a second: the best one-second rate is the peak. */
  tick(): void {
    const now = this.clock();
    const secs = (now - this.tickStart) / 1000;
    if (secs >= 0.5) this.peakRate = Math.max(this.peakRate, this.tickCheckIns / secs);
    this.tickStart = now;
    this.tickCheckIns = 0;
  }

  setupError(code: string): void {
    this.setupErrors.set(code, (this.setupErrors.get(code) ?? 0) + 1);
  }

  /** Records one finished cycle: its result, its wall time and how late it started. */
  record(deviceId: string, result: CycleResult, ms: number, lagMs: number): void {
    this.checkIns++;
    this.windowCheckIns++;
    this.tickCheckIns++;
    this.lagSum += lagMs;
    this.updatesFound += result.updates;
    this.installed += result.installed.length;
    if (!result.ok) {
      this.failedCheckIns++;
      this.updateFailures += Math.max(0, result.updates - result.installed.length);
      const code = result.error?.code ?? 'UNKNOWN';
      this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
    } else {
      this.everOk.add(deviceId);
      if (this.warm === undefined && this.ready > 0 && this.everOk.size >= this.ready) this.warm = { at: this.clock(), checkIns: this.checkIns };
    }
    this.lastOk.set(deviceId, result.ok);
    this.windowLatencies.push(ms);
    // Reservoir sampling keeps the run's percentiles without keeping every sample.
    this.seenLatencies++;
    if (this.latencies.length < RESERVOIR) this.latencies.push(ms);
    else {
      const j = Math.floor(Math.random() * this.seenLatencies);
      if (j < RESERVOIR) this.latencies[j] = ms;
    }
  }

  get online(): number {
    let n = 0;
    for (const ok of this.lastOk.values()) if (ok) n++;
    return n;
  }

  get seen(): number {
    return this.everOk.size;
  }

  /** Closes the current status window; returns its rate and latency percentiles. */
  window(): { rate: number; p50: number; p95: number } {
    const now = this.clock();
    const secs = Math.max(1e-3, (now - this.windowStart) / 1000);
    const rate = this.windowCheckIns / secs;
    const sorted = this.windowLatencies.sort((a, b) => a - b);
    const out = { rate, p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95) };
    this.windowStart = now;
    this.windowCheckIns = 0;
    this.windowLatencies.length = 0;
    return out;
  }

  summary(base: {
    devices: number;
    secondariesPerDevice: number;
    intervalSeconds: number;
    elapsedSeconds: number;
    setupSeconds: number;
    stoppedBy: string;
  }): SimSummary {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
    const end = this.clock();
    const steadySeconds = this.warm ? (end - this.warm.at) / 1000 : Math.max(0, base.elapsedSeconds - base.setupSeconds);
    const steadyCheckIns = this.checkIns - (this.warm ? this.warm.checkIns : this.checkInsAtReady);
    return {
      ...base,
      elapsedSeconds: round(base.elapsedSeconds, 2),
      setupSeconds: round(base.setupSeconds, 2),
      steadySeconds: round(steadySeconds, 2),
      steadyCheckInsPerSecond: round(steadySeconds >= 1 ? steadyCheckIns / steadySeconds : 0, 2),
      ready: this.ready,
      online: this.online,
      seen: this.seen,
      checkIns: this.checkIns,
      failedCheckIns: this.failedCheckIns,
      checkInsPerSecond: round(base.elapsedSeconds > 0 ? this.checkIns / base.elapsedSeconds : 0, 2),
      peakCheckInsPerSecond: round(this.peakRate, 2),
      offeredCheckInsPerSecond: round(this.ready / base.intervalSeconds, 2),
      latencyMs: {
        p50: round(percentile(sorted, 0.5)),
        p95: round(percentile(sorted, 0.95)),
        p99: round(percentile(sorted, 0.99)),
        max: round(sorted.at(-1) ?? 0),
      },
      meanLagSeconds: round(this.checkIns > 0 ? this.lagSum / this.checkIns / 1000 : 0, 3),
      updatesFound: this.updatesFound,
      installed: this.installed,
      updateFailures: this.updateFailures,
      errors: Object.fromEntries([...this.errors].sort((a, b) => b[1] - a[1])),
      setupErrors: Object.fromEntries([...this.setupErrors].sort((a, b) => b[1] - a[1])),
    };
  }
}

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function codes(m: ReadonlyMap<string, number> | Readonly<Record<string, number>>, max = 3): string {
  const entries = (m instanceof Map ? [...m] : Object.entries(m)).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return '';
  const shown = entries.slice(0, max).map(([c, n]) => `${c}×${n}`);
  if (entries.length > max) shown.push('…');
  return ` (${shown.join(' ')})`;
}

function clock(seconds: number): string {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

/** The live line: devices, online, check-ins per second, latency, installs, failures, errors. */
export function statusLine(stats: SimStats, w: { rate: number; p95: number }, total: number, elapsedSeconds: number, lagSeconds: number): string {
  const errors = stats.failedCheckIns;
  return (
    `[${clock(elapsedSeconds)}] devices ${stats.ready}/${total} online ${stats.online}` +
    ` | check-ins ${w.rate.toFixed(1)}/s (${stats.checkIns}) p95 ${Math.round(w.p95)} ms` +
    ` | installed ${stats.installed} failures ${stats.updateFailures}` +
    ` | errors ${errors}${codes(stats.errors)}` +
    (stats.setupErrors.size > 0 ? ` | setup errors ${[...stats.setupErrors.values()].reduce((a, b) => a + b, 0)}${codes(stats.setupErrors)}` : '') +
    (lagSeconds >= 0.5 ? ` | behind ${lagSeconds.toFixed(1)} s` : '')
  );
}

/** The final summary in words. */
export function summaryText(s: SimSummary): string {
  const lines = [
    `uptide-sim: ${s.devices} devices × (1 Primary + ${s.secondariesPerDevice} Secondaries), interval ${s.intervalSeconds} s, ran ${s.elapsedSeconds} s (stopped by ${s.stoppedBy})`,
    `  devices      ${s.ready} ready (setup ${s.setupSeconds} s), ${s.seen} checked in, ${s.online} online at the end`,
    `  check-ins    ${s.checkIns} (${s.failedCheckIns} failed); ${s.steadyCheckInsPerSecond}/s steady (${s.steadySeconds} s after every device's first), ${s.checkInsPerSecond}/s overall, ${s.peakCheckInsPerSecond}/s peak; ${s.offeredCheckInsPerSecond}/s offered`,
    `  latency      p50 ${s.latencyMs.p50} ms, p95 ${s.latencyMs.p95} ms, p99 ${s.latencyMs.p99} ms, max ${s.latencyMs.max} ms; mean start lag ${s.meanLagSeconds} s`,
    `  updates      ${s.updatesFound} found, ${s.installed} installed, ${s.updateFailures} failed`,
    `  errors       ${s.failedCheckIns}${codes(s.errors, 10)}`,
  ];
  const setup = Object.values(s.setupErrors).reduce((a, b) => a + b, 0);
  if (setup > 0) lines.push(`  setup errors ${setup}${codes(s.setupErrors, 10)}`);
  return lines.join('\n') + '\n';
}
