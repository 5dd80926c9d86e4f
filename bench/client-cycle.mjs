// bench/client helper: one Primary in its own process (so that its memory is its own), driven over
// IPC by bench/client.bench.mjs. Each `cycle` message runs one update cycle and answers its wall
// time and its peak resident memory: sampled every few milliseconds, and the kernel's own peak
// (VmHWM, reset before the cycle through /proc/self/clear_refs where the kernel allows it).
import { readFileSync, writeFileSync } from 'node:fs';
import { Primary, loadConfig } from '../packages/client/dist/index.js';

let primary;

function vmHwmMiB() {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : undefined;
}

function resetPeak() {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

async function cycle() {
  globalThis.gc?.();
  const before = process.memoryUsage.rss() / 2 ** 20;
  const reset = resetPeak();
  let sampled = before;
  const parts = { heapUsed: 0, external: 0, arrayBuffers: 0 };
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    sampled = Math.max(sampled, m.rss / 2 ** 20);
    for (const k of Object.keys(parts)) parts[k] = Math.max(parts[k], m[k] / 2 ** 20);
  }, 2);
  const t0 = process.hrtime.bigint();
  const result = await primary.cycle();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  clearInterval(timer);
  sampled = Math.max(sampled, process.memoryUsage.rss() / 2 ** 20);
  return { ms, before, sampled, parts, hwm: reset ? vmHwmMiB() : undefined, ok: result.ok, installed: result.installed, error: result.error };
}

process.on('message', async (msg) => {
  try {
    if (msg.cmd === 'open') {
      primary = await Primary.open({ config: loadConfig(msg.config) });
      process.send({ ok: true });
    } else if (msg.cmd === 'cycle') {
      process.send(await cycle());
    } else if (msg.cmd === 'close') {
      await primary?.close();
      process.send({ ok: true }, () => process.exit(0));
    }
  } catch (err) {
    process.send({ ok: false, error: { code: 'BENCH', message: err.stack ?? String(err) } });
  }
});
