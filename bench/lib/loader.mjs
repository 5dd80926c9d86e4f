// Load generator, run as a child process so that it does not share the
// server's event loop. It receives a job over IPC, runs it for a fixed time
// with a number of concurrent keep-alive HTTPS connections, and answers
// { requests, errors, seconds, statuses }.
import { Agent, request } from 'node:https';

function once(agent, opts) {
  return new Promise((resolve) => {
    const req = request({ ...opts, agent }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    if (opts.body) req.end(opts.body);
    else req.end();
  });
}

async function run(job) {
  const statuses = {};
  let requests = 0;
  let errors = 0;
  const deadline = Date.now() + job.seconds * 1000;
  const started = process.hrtime.bigint();
  const workers = job.workers.map(async (w) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, cert: w.cert, key: w.key, ca: job.ca, rejectUnauthorized: true });
    let i = 0;
    while (Date.now() < deadline) {
      // Manifest workers send pre-signed bodies in order (their counters grow); when they run out they stop.
      if (w.bodies && i >= w.bodies.length) break;
      const body = w.bodies ? w.bodies[i] : undefined;
      i++;
      const status = await once(agent, {
        host: job.host,
        port: job.port,
        method: job.method,
        path: job.path,
        headers: {
          ...(job.headers ?? {}),
          ...(w.headers ?? {}),
          ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
        },
        body,
      });
      statuses[status] = (statuses[status] ?? 0) + 1;
      requests++;
      if (!job.okStatuses.includes(status)) errors++;
    }
    agent.destroy();
  });
  await Promise.all(workers);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { requests, errors, seconds, statuses };
}

process.on('message', async (job) => {
  const result = await run(job);
  process.send(result, () => process.exit(0));
});
