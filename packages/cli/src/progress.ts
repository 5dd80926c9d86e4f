/**
 * A one-line progress bar on stderr, drawn only on a terminal (scripts and
 * logs get nothing). Written here rather than taken from cli-progress: it is
 * forty lines, and one bar for one upload needs none of that package's
 * multi-bar, theming or ETA machinery.
 */
import { formatBytes, type CliIo } from './io.js';

export class ProgressBar {
  private done = 0;
  private lastDraw = 0;
  private readonly started: number;
  private readonly enabled: boolean;

  constructor(
    private readonly io: CliIo,
    private readonly label: string,
    private readonly total: number,
  ) {
    this.enabled = io.stderrIsTTY;
    this.started = Date.now();
  }

  advance(bytes: number): void {
    this.done += bytes;
    const now = Date.now();
    // At most ten redraws a second: a redraw per 64 KiB chunk would flood a slow terminal.
    if (now - this.lastDraw >= 100 || this.done >= this.total) {
      this.lastDraw = now;
      this.draw();
    }
  }

  private draw(): void {
    if (!this.enabled) return;
    const width = 30;
    const share = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const filled = Math.round(share * width);
    const seconds = Math.max(0.001, (Date.now() - this.started) / 1000);
    const rate = `${formatBytes(Math.round(this.done / seconds))}/s`;
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    this.io.err(`\r${this.label} [${bar}] ${String(Math.floor(share * 100)).padStart(3)}% ${formatBytes(this.done)}/${formatBytes(this.total)} ${rate}   `);
  }

  finish(): void {
    if (!this.enabled) return;
    this.draw();
    this.io.err('\n');
  }
}
