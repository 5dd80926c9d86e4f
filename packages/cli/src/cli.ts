/**
 * `uptide`, the admin CLI: the program (commander), its global options and
 * how errors become messages and exit codes (0 ok, 1 failure, 2 usage).
 * `run` takes its arguments and its IO as parameters so tests run it
 * in-process against a real server.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { AdminApi } from './api.js';
import { asCliError, EXIT_OK, EXIT_USAGE, processIo, type CliIo } from './io.js';
import { KeyStore, Passphrases } from './keystore.js';
import { registerImages } from './commands/images.js';
import { registerDevices } from './commands/devices.js';
import { registerGroups } from './commands/groups.js';
import { registerUpdates } from './commands/updates.js';
import { registerProvisioning } from './commands/provisioning.js';
import { registerKeys } from './commands/keys.js';

export const CLI_VERSION = '0.1.0';

/** What every command's action gets. */
export interface Ctx {
  readonly io: CliIo;
  /** The admin API client for this invocation (--server, --token, UPTIDE_SERVER, UPTIDE_TOKEN). */
  api(cmd: Command): AdminApi;
  /** The key directory (--key-dir, UPTIDE_KEY_DIR, ./uptide-keys). */
  keys(cmd: Command): KeyStore;
  passphrases(cmd: Command): Passphrases;
}

interface GlobalOptions {
  server?: string;
  token?: string;
  keyDir?: string;
  passphraseFile?: string;
}

/** Collects a repeatable option (`--hardware-id a --hardware-id b`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Parses a whole number option, as a usage error when it is not one. */
export function integerOption(name: string, min = 0): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < min) {
      throw new InvalidArgumentError(`${name} must be a whole number of at least ${min}.`);
    }
    return Number(value);
  };
}

/** Adds an example section to a command's --help. */
export function example(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText('after', `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`);
}

export function buildProgram(io: CliIo): Command {
  const program = new Command('uptide');
  program
    .description('Uptide admin CLI: images, devices, groups, updates, fleet provisioning, and the offline key ceremonies')
    .version(CLI_VERSION, '-V', 'print the CLI version')
    .option('--server <url>', 'admin API URL (default: UPTIDE_SERVER or http://127.0.0.1:8080)')
    .option('--token <token>', 'admin API token (default: UPTIDE_TOKEN, or ./data/admin-token)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: (s, write) => write(`uptide: ${s}`),
    })
    .addHelpText(
      'after',
      `
Exit status: 0 success, 1 failure, 2 wrong usage.

The first ten minutes:
  $ npm start                                             # the server, on embedded defaults
  $ uptide images upload fw.bin --name fw --version 1.0 --hardware-id my-board
  $ uptide devices provision dev-1 --out ./dev-1 --hardware-id my-board
  $ npx uptide-device --config ./dev-1/uptide-device.toml # the device (or aktualizr -c ./dev-1/sota.toml)
  $ uptide updates launch --image fw@1.0 --devices dev-1
  $ uptide updates show UPDATE_ID

More: docs/cli.md, and docs/keys.md for taking keys offline.
`,
    );

  const ctx: Ctx = {
    io,
    api: (cmd) => {
      const o = cmd.optsWithGlobals<GlobalOptions>();
      return new AdminApi(io, { server: o.server, token: o.token });
    },
    keys: (cmd) => new KeyStore(io, cmd.optsWithGlobals<GlobalOptions>().keyDir),
    passphrases: (cmd) => new Passphrases(io, cmd.optsWithGlobals<GlobalOptions>().passphraseFile),
  };

  registerImages(program, ctx);
  registerDevices(program, ctx);
  registerGroups(program, ctx);
  registerUpdates(program, ctx);
  registerProvisioning(program, ctx);
  registerKeys(program, ctx);
  return program;
}

/** Runs the CLI with arguments (without `node uptide`) and returns the exit code. */
export async function run(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const program = buildProgram(io);
  // Only -V is the program's version flag: `images upload --version 1.0` must reach the subcommand.
  if (argv.length === 1 && argv[0] === '--version') {
    io.out(`${CLI_VERSION}\n`);
    return EXIT_OK;
  }
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT_OK;
      // Commander has printed the message (unknown option, missing argument…).
      return EXIT_USAGE;
    }
    const e = asCliError(err);
    io.err(`uptide: error: ${e.message}\n`);
    if (e.hint) io.err(`  ${e.hint}\n`);
    if (e.code === 'internal' && err instanceof Error && err.stack && io.env['UPTIDE_DEBUG']) io.err(`${err.stack}\n`);
    return e.exitCode;
  }
}
