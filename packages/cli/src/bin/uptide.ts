#!/usr/bin/env node
/** `uptide`: the admin CLI. Exit status: 0 success, 1 failure, 2 wrong usage. */
import { run } from '../cli.js';

process.exitCode = await run(process.argv.slice(2));
