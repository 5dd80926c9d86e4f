/**
 * Test support (not built): writes an `uptide-secondary` configuration with
 * pinned roots into a temp directory, starts Secondaries in-process, and
 * writes the `[[secondaries]]` part of a Primary's configuration.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../../primary/log.js';
import { loadSecondaryConfig, type SecondaryConfig, type VerificationType } from '../config.js';
import { Secondary } from '../secondary.js';
import type { Endpoint } from '../protocol/index.js';

export interface SecondarySetupOptions {
  readonly verification: VerificationType;
  readonly hardwareId?: string;
  readonly ecuSerial?: string;
  /** Listening port (default 0: any). */
  readonly port?: number;
  /** `host:port` of the Primary's wait port to announce to. */
  readonly primary?: string;
  /** `file` (default) or a command installer. */
  readonly installer?: 'file' | { readonly command: readonly string[]; readonly timeoutSeconds?: number };
  readonly keyType?: string;
  /** Extra `[limits]` settings (snake_case keys). */
  readonly limits?: Readonly<Record<string, number>>;
  readonly logLevel?: string;
}

export interface SecondarySetup {
  readonly dir: string;
  readonly configPath: string;
  readonly config: SecondaryConfig;
  readonly storage: string;
  /** Where the file installer writes the image. */
  readonly installedPath: string;
  readonly hardwareId: string;
}

const q = (s: string): string => JSON.stringify(s);

/** Writes a Secondary's directory: `director-root.json` (and `image-root.json` for full verification) and `uptide-secondary.toml`. */
export function writeSecondarySetup(roots: { readonly director: Uint8Array; readonly image: Uint8Array }, options: SecondarySetupOptions): SecondarySetup {
  const dir = mkdtempSync(join(tmpdir(), `uptide-secondary-${options.verification}-`));
  const hardwareId = options.hardwareId ?? `${options.verification}-board`;
  writeFileSync(join(dir, 'director-root.json'), roots.director);
  const lines: string[] = ['[secondary]', 'storage = "state"', `hardware_id = ${q(hardwareId)}`, `verification = ${q(options.verification)}`];
  if (options.ecuSerial) lines.push(`ecu_serial = ${q(options.ecuSerial)}`);
  if (options.keyType) lines.push(`key_type = ${q(options.keyType)}`);
  if (options.logLevel) lines.push(`log_level = ${q(options.logLevel)}`);
  lines.push('', '[network]', 'host = "127.0.0.1"', `port = ${options.port ?? 0}`, 'idle_timeout = 10', 'message_timeout = 10');
  if (options.primary) lines.push(`primary = ${q(options.primary)}`);
  lines.push('', '[trust]', 'director_root = "director-root.json"');
  if (options.verification === 'full') {
    writeFileSync(join(dir, 'image-root.json'), roots.image);
    lines.push('image_root = "image-root.json"');
  }
  lines.push('', '[limits]');
  for (const [k, v] of Object.entries(options.limits ?? {})) lines.push(`${k} = ${v}`);
  lines.push('');
  const inst = options.installer ?? 'file';
  if (inst === 'file') lines.push('[installer]', 'type = "file"', 'path = "installed/image.bin"', '');
  else lines.push('[installer]', 'type = "command"', `command = [${inst.command.map(q).join(', ')}]`, `timeout = ${inst.timeoutSeconds ?? 30}`, '');
  const configPath = join(dir, 'uptide-secondary.toml');
  writeFileSync(configPath, lines.join('\n'));
  return {
    dir,
    configPath,
    config: loadSecondaryConfig(configPath),
    storage: join(dir, 'state'),
    installedPath: join(dir, 'installed', 'image.bin'),
    hardwareId,
  };
}

/** Opens a Secondary from a setup and listens on 127.0.0.1. */
export async function startSecondary(setup: SecondarySetup, log: Logger = silentLogger): Promise<{ secondary: Secondary; endpoint: Endpoint }> {
  const secondary = await Secondary.open({ config: loadSecondaryConfig(setup.configPath), log });
  const endpoint = await secondary.listen();
  return { secondary, endpoint };
}

/** The `[[secondaries]]` and `[ip_secondaries]` TOML of a Primary for these Secondaries. */
export function primarySecondariesToml(
  secondaries: ReadonlyArray<{ readonly port: number; readonly verification: VerificationType }>,
  ip: Readonly<Record<string, number | string>> = {},
): string {
  const lines: string[] = [];
  for (const s of secondaries) lines.push('[[secondaries]]', `address = "127.0.0.1:${s.port}"`, `verification = ${q(s.verification)}`, '');
  const settings = { request_timeout: 5, preinstall_wait: 0, install_timeout: 60, ...ip };
  lines.push('[ip_secondaries]');
  for (const [k, v] of Object.entries(settings)) lines.push(`${k} = ${typeof v === 'string' ? q(v) : v}`);
  lines.push('');
  return lines.join('\n');
}
