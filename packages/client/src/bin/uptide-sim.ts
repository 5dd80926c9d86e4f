#!/usr/bin/env node
/**
 * `uptide-sim`: a fleet of simulated devices against an Uptide server
 * (src/sim/, docs/simulator.md). Exit status: 0 the run ended and devices
 * checked in; 1 setup failed or no device ever checked in; 2 usage.
 */
// Every check-in makes a few durable writes (fsync) on the libuv pool; 4 threads would
// queue a thousand devices' writes behind each other. Set before the pool starts.
process.env['UV_THREADPOOL_SIZE'] ??= '16';
const { main } = await import('../sim/cli.js');
process.exitCode = await main(process.argv.slice(2));
