#!/usr/bin/env node
/** `uptide`: the admin CLI. Exit status: 0 success, 1 failure, 2 wrong usage. */
import { run } from '../cli.js';

// `uptide images list | head` closes the pipe early: that is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

process.exitCode = await run(process.argv.slice(2));
