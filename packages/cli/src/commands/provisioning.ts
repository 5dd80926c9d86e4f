/** `uptide provisioning credentials`: the fleet credentials.zip for aktualizr's shared-credential provisioning. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { example, type Ctx } from '../cli.js';
import { CliError } from '../io.js';
import { writeFileAtomic } from '../keystore.js';

export function registerProvisioning(program: Command, ctx: Ctx): void {
  const { io } = ctx;
  const provisioning = example(program.command('provisioning').description('fleet provisioning'), 'uptide provisioning credentials --out credentials.zip');
  example(
    provisioning
      .command('credentials')
      .description(
        'write a new credentials.zip (a fleet bootstrap certificate, the gateway URL, the server CA, the Image root) for aktualizr [provision] provision_path; each call issues a new, separately revocable bootstrap certificate',
      )
      .requiredOption('--out <file>', 'where to write the zip (mode 0600: it lets devices join the fleet)')
      .option('--force', 'replace an existing file')
      .action(async (o: { out: string; force?: boolean }, cmd: Command) => {
        const file = resolve(io.cwd, o.out);
        if (existsSync(file) && !o.force)
          throw new CliError(`${file} exists already`, { hint: 'give another --out, or --force to replace it', code: 'exists' });
        const res = await ctx.api(cmd).request('POST', '/api/v1/provisioning/credentials');
        writeFileAtomic(file, res.body, 0o600);
        io.err(
          `Wrote ${file} (${res.body.length} bytes). Keep it like a password: anyone holding it can register devices.\n` +
            'On a device, aktualizr uses it with [provision] provision_path = "credentials.zip" and mode = "SharedCred".\n',
        );
      }),
    'uptide provisioning credentials --out credentials.zip',
  );
}
