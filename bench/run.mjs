// Runs every bench/*.bench.mjs, one after the other, each in its own Node process (so one
// benchmark's JIT state and heap do not colour the next). Arguments after the names are passed
// to every benchmark.
//
// Usage: node bench/run.mjs [name ...] [-- args]
//   node bench/run.mjs                 every benchmark
//   node bench/run.mjs core            only bench/core.bench.mjs
//   node bench/run.mjs core -- --seconds 3
// `npm run bench` builds first; the benchmarks import the packages' dist/.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const names = dash === -1 ? argv : argv.slice(0, dash);
const passThrough = dash === -1 ? [] : argv.slice(dash + 1);

const all = readdirSync(here)
  .filter((f) => f.endsWith('.bench.mjs'))
  .sort();
const chosen = names.length === 0 ? all : all.filter((f) => names.includes(f.replace(/\.bench\.mjs$/, '')));
const unknown = names.filter((n) => !all.includes(`${n}.bench.mjs`));
if (unknown.length > 0) {
  console.error(`no such benchmark: ${unknown.join(', ')} (have: ${all.map((f) => f.replace(/\.bench\.mjs$/, '')).join(', ')})`);
  process.exit(2);
}

let failed = 0;
for (const file of chosen) {
  console.log(`\n=== ${file} (${new Date().toISOString()}) ===\n`);
  const r = spawnSync(process.execPath, [join(here, file), ...passThrough], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`\n${file} failed (${r.signal ?? `exit ${r.status}`})`);
  }
}
process.exit(failed === 0 ? 0 : 1);
