/**
 * `uptide-tuf`: the TUF client workflow alone, with the command-line contract
 * of the public tuf-conformance suite (its CLIENT-CLI.md):
 *
 *   uptide-tuf --metadata-dir DIR init ROOT_FILE
 *   uptide-tuf --metadata-url URL --metadata-dir DIR refresh
 *   uptide-tuf --metadata-url URL --metadata-dir DIR --target-name NAME [--target-name NAME…]
 *              --target-dir DIR --target-base-url URL download
 *
 * Options go in any order, before or after the command. Exit status is 0 on
 * success and 1 on any failure (usage errors included).
 */
import { readFile, mkdir } from 'node:fs/promises';
import { TrustedRepository, UptaneError } from '@uptide/core';
import { MetadataStore } from './store.js';
import { TufUpdater } from './updater.js';

export const USAGE = `usage:
  uptide-tuf --metadata-dir DIR init ROOT_FILE
  uptide-tuf --metadata-url URL --metadata-dir DIR refresh
  uptide-tuf --metadata-url URL --metadata-dir DIR --target-name NAME [--target-name NAME ...]
             --target-dir DIR --target-base-url URL download
options:
  -v, --verbose   log each request
  -h, --help      show this help`;

export interface TufArgs {
  readonly command: 'init' | 'refresh' | 'download';
  readonly metadataDir: string;
  readonly metadataUrl?: string;
  readonly targetNames: readonly string[];
  readonly targetDir?: string;
  readonly targetBaseUrl?: string;
  readonly trustedRoot?: string;
  readonly verbose: boolean;
}

export class UsageError extends UptaneError {
  constructor(message: string) {
    super('BAD_ARGUMENT', message);
  }
}

const VALUE_OPTIONS = new Set(['--metadata-dir', '--metadata-url', '--target-name', '--target-dir', '--target-base-url']);

/** Parses the arguments; returns 'help' for -h/--help. Throws UsageError. */
export function parseArgs(argv: readonly string[]): TufArgs | 'help' {
  const values = new Map<string, string[]>();
  const positional: string[] = [];
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '-h' || arg === '--help') return 'help';
    if (arg === '-v' || arg === '--verbose') {
      verbose = true;
      continue;
    }
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq === -1 ? arg : arg.slice(0, eq);
      if (!VALUE_OPTIONS.has(name)) throw new UsageError(`unknown option ${name}`);
      let value: string;
      if (eq !== -1) value = arg.slice(eq + 1);
      else {
        const next = argv[i + 1];
        if (next === undefined) throw new UsageError(`${name} needs a value`);
        value = next;
        i++;
      }
      const list = values.get(name) ?? [];
      list.push(value);
      values.set(name, list);
      continue;
    }
    positional.push(arg);
  }
  const one = (name: string): string | undefined => {
    const list = values.get(name);
    if (list && list.length > 1) throw new UsageError(`${name} given more than once`);
    return list?.[0];
  };
  const command = positional[0];
  if (command !== 'init' && command !== 'refresh' && command !== 'download') {
    throw new UsageError(command === undefined ? 'no command given (init, refresh or download)' : `unknown command ${command}`);
  }
  const metadataDir = one('--metadata-dir');
  if (metadataDir === undefined) throw new UsageError('--metadata-dir is required');
  const args: TufArgs = {
    command,
    metadataDir,
    metadataUrl: one('--metadata-url'),
    targetNames: values.get('--target-name') ?? [],
    targetDir: one('--target-dir'),
    targetBaseUrl: one('--target-base-url'),
    trustedRoot: positional[1],
    verbose,
  };
  const expected = command === 'init' ? 2 : 1;
  if (positional.length > expected) throw new UsageError(`unexpected argument ${positional[expected] as string}`);
  if (command === 'init' && args.trustedRoot === undefined) throw new UsageError('init needs the trusted root file');
  if (command !== 'init' && args.metadataUrl === undefined) throw new UsageError(`${command} needs --metadata-url`);
  if (command === 'download') {
    if (args.targetNames.length === 0) throw new UsageError('download needs at least one --target-name');
    if (args.targetDir === undefined) throw new UsageError('download needs --target-dir');
    if (args.targetBaseUrl === undefined) throw new UsageError('download needs --target-base-url');
  }
  return args;
}

export interface CliIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

const defaultIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

function describe(err: unknown): string {
  if (err instanceof UptaneError) return `[${err.code}] ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Runs one command; resolves to the exit status (0 or 1). Never throws. */
export async function main(argv: readonly string[], io: CliIo = defaultIo): Promise<number> {
  let args: TufArgs | 'help';
  try {
    args = parseArgs(argv);
  } catch (err) {
    io.err(`uptide-tuf: ${describe(err)}`);
    io.err(USAGE);
    return 1;
  }
  if (args === 'help') {
    io.out(USAGE);
    return 0;
  }
  const log = args.verbose ? (m: string) => io.err(`uptide-tuf: ${m}`) : undefined;
  try {
    switch (args.command) {
      case 'init':
        await init(args.metadataDir, args.trustedRoot as string);
        io.out(`uptide-tuf: initialized ${args.metadataDir}`);
        return 0;
      case 'refresh': {
        const updater = new TufUpdater({ metadataDir: args.metadataDir, metadataUrl: args.metadataUrl as string, log });
        const targets = await updater.refresh();
        io.out(`uptide-tuf: refreshed ${args.metadataDir} (targets version ${targets.signed.version})`);
        return 0;
      }
      case 'download': {
        const updater = new TufUpdater({
          metadataDir: args.metadataDir,
          metadataUrl: args.metadataUrl as string,
          targetDir: args.targetDir as string,
          targetBaseUrl: args.targetBaseUrl as string,
          log,
        });
        await updater.refresh();
        // In argument order with one updater; the first failure stops the command.
        for (const name of args.targetNames) {
          const info = await updater.getTargetInfo(name);
          const cached = await updater.findCachedTarget(name, info);
          if (cached) {
            io.out(`uptide-tuf: ${name} is up to date in ${cached}`);
            continue;
          }
          const path = await updater.downloadTarget(name, info);
          io.out(`uptide-tuf: downloaded ${name} to ${path}`);
        }
        return 0;
      }
    }
  } catch (err) {
    io.err(`uptide-tuf: ${args.command} failed: ${describe(err)}`);
    return 1;
  }
}

/**
 * Stores the initial trusted root as `root.json`. It must parse and carry a
 * threshold of its own root keys; it is not checked against any clock (the
 * first refresh does that).
 */
export async function init(metadataDir: string, rootFile: string): Promise<void> {
  const bytes = await readFile(rootFile);
  // The constructor checks the format and the root's self-signatures.
  new TrustedRepository({ root: bytes }, { dialect: 'tuf', repository: 'tuf', now: new Date(0), isDirector: false });
  await mkdir(metadataDir, { recursive: true });
  await new MetadataStore(metadataDir).write('root', bytes);
}
