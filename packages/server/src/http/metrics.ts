/**
 * A few counters in the Prometheus text format at /metrics: requests by
 * route and status, manifests accepted and refused, metadata served and 304s.
 * (Per instance; a scraper sums instances.)
 */
export class Metrics {
  private readonly counters = new Map<string, number>();
  private readonly started = Date.now();

  inc(name: string, labels: Record<string, string> = {}, by = 1): void {
    const key = name + formatLabels(labels);
    this.counters.set(key, (this.counters.get(key) ?? 0) + by);
  }

  render(): string {
    const lines: string[] = [];
    const byName = new Map<string, string[]>();
    for (const [key, value] of this.counters) {
      const name = key.split('{')[0] as string;
      byName.set(name, [...(byName.get(name) ?? []), `${key} ${value}`]);
    }
    for (const [name, samples] of [...byName.entries()].sort()) {
      lines.push(`# TYPE ${name} counter`, ...samples.sort());
    }
    lines.push('# TYPE uptide_uptime_seconds gauge', `uptide_uptime_seconds ${Math.floor((Date.now() - this.started) / 1000)}`);
    return lines.join('\n') + '\n';
  }
}

function formatLabels(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return '{' + entries.map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`).join(',') + '}';
}
