/** @uptide/cli: the `uptide` admin CLI as a library (the `uptide` command runs `run`). */
export { run, buildProgram, CLI_VERSION } from './cli.js';
export { processIo, CliError, UsageError, EXIT_OK, EXIT_FAILURE, EXIT_USAGE, type CliIo } from './io.js';
