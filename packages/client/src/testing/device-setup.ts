/**
 * Writes a device's configuration for a RepoMock into a temp directory:
 * pinned roots, `uptide-device.toml`, and (over TLS) device credentials or a
 * credentials.zip for shared-credential provisioning.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type DeviceConfig } from '../config/config.js';
import { makeZip } from './pki.js';
import type { RepoMock } from './repo-mock.js';

export interface DeviceSetupOptions {
  readonly deviceId?: string;
  readonly hardwareId?: string;
  readonly ecuSerial?: string;
  /** `file` (default) or a command installer. */
  readonly installer?: 'file' | { readonly command: readonly string[]; readonly timeoutSeconds?: number };
  /** Extra `[limits]` settings (snake_case keys). */
  readonly limits?: Readonly<Record<string, number>>;
  /** Over TLS: provision with a credentials.zip instead of a device certificate. */
  readonly sharedCredentials?: boolean;
  /** Leave the roots unpinned and trust on first use. */
  readonly trustOnFirstUse?: boolean;
  /** Extra TOML appended as is. */
  readonly extraToml?: string;
  /** `[trust] require_vehicle_id` (default true). */
  readonly requireVehicleId?: boolean;
  readonly keyType?: string;
  /** Leave [device] id out (over TLS the device id is then the certificate's CN). */
  readonly omitDeviceId?: boolean;
}

export interface DeviceSetup {
  readonly dir: string;
  readonly configPath: string;
  readonly config: DeviceConfig;
  readonly storage: string;
  /** Where the file installer writes the image. */
  readonly installedPath: string;
  readonly deviceId: string;
  readonly hardwareId: string;
}

const q = (s: string): string => JSON.stringify(s);

export function writeDeviceSetup(mock: RepoMock, options: DeviceSetupOptions = {}): DeviceSetup {
  const dir = mkdtempSync(join(tmpdir(), 'uptide-device-'));
  const deviceId = options.deviceId ?? `dev-${Math.random().toString(36).slice(2, 10)}`;
  const hardwareId = options.hardwareId ?? 'test-board';
  const tls = mock.options.tls === true;
  writeFileSync(join(dir, 'director-root.json'), mock.directorRoot.bytes(1) as Uint8Array);
  writeFileSync(join(dir, 'image-root.json'), mock.image.root.bytes(1) as Uint8Array);
  const lines: string[] = [];
  lines.push('[device]');
  if (!(tls && (options.sharedCredentials || options.omitDeviceId))) lines.push(`id = ${q(deviceId)}`);
  lines.push('storage = "state"', 'poll_interval = 1', '');
  lines.push('[server]');
  if (tls && options.sharedCredentials) {
    // The gateway comes from autoprov.url in credentials.zip.
  } else lines.push(`gateway = ${q(mock.gatewayFor(deviceId))}`);
  if (!tls) lines.push('allow_insecure_http = true');
  lines.push('');
  if (tls && mock.pki) {
    writeFileSync(join(dir, 'ca.pem'), mock.pki.caCert);
    if (options.sharedCredentials) {
      writeFileSync(join(dir, 'credentials.zip'), makeZip({ 'autoprov_credentials.p12': mock.pki.pkcs12('bootstrap'), 'autoprov.url': `${mock.url}\n` }));
      lines.push('[provision]', 'credentials = "credentials.zip"', '');
      lines.push('[tls]', 'ca = "ca.pem"', '');
    } else {
      const c = mock.pki.issue(deviceId);
      writeFileSync(join(dir, 'client.pem'), c.cert);
      writeFileSync(join(dir, 'pkey.pem'), c.key);
      lines.push('[tls]', 'ca = "ca.pem"', 'cert = "client.pem"', 'key = "pkey.pem"', '');
    }
  }
  lines.push('[trust]');
  if (options.trustOnFirstUse) lines.push('trust_on_first_use = true');
  else lines.push('director_root = "director-root.json"', 'image_root = "image-root.json"');
  if (options.requireVehicleId === false) lines.push('require_vehicle_id = false');
  lines.push('');
  lines.push('[primary]', `hardware_id = ${q(hardwareId)}`);
  if (options.ecuSerial) lines.push(`ecu_serial = ${q(options.ecuSerial)}`);
  if (options.keyType) lines.push(`key_type = ${q(options.keyType)}`);
  lines.push('');
  lines.push('[limits]');
  const limits = { connect_timeout: 5, idle_timeout: 10, min_speed_bytes_per_second: 1024, min_speed_window: 2, ...(options.limits ?? {}) };
  for (const [k, v] of Object.entries(limits)) lines.push(`${k} = ${v}`);
  lines.push('');
  const installedPath = join(dir, 'installed', 'image.bin');
  const inst = options.installer ?? 'file';
  if (inst === 'file') lines.push('[installer]', 'type = "file"', 'path = "installed/image.bin"', '');
  else lines.push('[installer]', 'type = "command"', `command = [${inst.command.map(q).join(', ')}]`, `timeout = ${inst.timeoutSeconds ?? 30}`, '');
  if (options.extraToml) lines.push(options.extraToml);
  const configPath = join(dir, 'uptide-device.toml');
  writeFileSync(configPath, lines.join('\n'));
  return { dir, configPath, config: loadConfig(configPath), storage: join(dir, 'state'), installedPath, deviceId, hardwareId };
}
