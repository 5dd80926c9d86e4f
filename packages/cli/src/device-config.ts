/**
 * Ready device configurations written by `uptide devices provision`:
 *
 * - `sota.toml` for aktualizr, device-credential provisioning (device-api.md
 *   §4.2 and §4.5): credentials and the pinned initial roots are imported
 *   from `[import] base_path` (aktualizr reads `repo/root.json` and
 *   `director/root.json` there when its storage has no root yet).
 * - `uptide-device.toml` for our client (packages/client/src/config/config.ts,
 *   docs/device-client.md), pointing at the same files.
 *
 * Both use the same directory layout, so one provisioned directory serves either client.
 */

export interface DeviceFiles {
  /** Absolute directory holding everything. */
  readonly dir: string;
  readonly deviceId: string;
  readonly gatewayUrl: string;
  readonly hardwareId: string;
  readonly ecuSerial: string | undefined;
}

export const FILES = {
  cert: 'client.pem',
  key: 'pkey.pem',
  ca: 'ca.pem',
  directorRoot: 'director/root.json',
  imageRoot: 'repo/root.json',
  sota: 'sota.toml',
  uptide: 'uptide-device.toml',
} as const;

/** A TOML basic string (JSON's escapes are TOML's). */
function str(s: string): string {
  return JSON.stringify(s);
}

/** The gateway URL a device uses: in the server's plain-HTTP development mode the device id is in the path. */
export function deviceGateway(gatewayUrl: string, deviceId: string): string {
  const base = gatewayUrl.replace(/\/+$/, '');
  return base.startsWith('http:') ? `${base}/d/${encodeURIComponent(deviceId)}` : base;
}

export function sotaToml(f: DeviceFiles): string {
  const storage = `${f.dir}/storage`;
  return `# aktualizr configuration for device ${f.deviceId}, written by "uptide devices provision".
# Run it with: aktualizr -c ${f.dir}/${FILES.sota} --run-mode once   (or full, to keep polling)

[tls]
server = ${str(deviceGateway(f.gatewayUrl, f.deviceId))}

[provision]
mode = "DeviceCred"
primary_ecu_hardware_id = ${str(f.hardwareId)}
${f.ecuSerial !== undefined ? `primary_ecu_serial = ${str(f.ecuSerial)}\n` : ''}
[import]
# The device certificate, its key and the server CA, and the pinned initial roots
# (${FILES.imageRoot} and ${FILES.directorRoot} under base_path) are imported on the first start.
base_path = ${str(f.dir)}
tls_cacert_path = ${str(FILES.ca)}
tls_clientcert_path = ${str(FILES.cert)}
tls_pkey_path = ${str(FILES.key)}

[uptane]
polling_sec = 10
key_type = "ED25519"

[pacman]
type = "none"
images_path = ${str(`${storage}/images`)}

[storage]
path = ${str(storage)}
sqldb_path = "sql.db"

[bootloader]
reboot_sentinel_dir = ${str(storage)}
reboot_sentinel_name = "need_reboot"
reboot_command = ""

[logger]
loglevel = 2
`;
}

export function uptideToml(f: DeviceFiles): string {
  const gateway = deviceGateway(f.gatewayUrl, f.deviceId);
  return `# uptide-device configuration for device ${f.deviceId}, written by "uptide devices provision".
# Run it with: npx uptide-device --config ${f.dir}/${FILES.uptide}   (add --once for a single cycle)
# Relative paths are relative to this file. Keys: docs/device-client.md.

[device]
id = ${str(f.deviceId)}
storage = "storage"
poll_interval = 10

[server]
gateway = ${str(gateway)}
${gateway.startsWith('http:') ? 'allow_insecure_http = true   # the server runs its plain-HTTP development gateway\n' : ''}
[tls]
ca = ${str(FILES.ca)}
cert = ${str(FILES.cert)}
key = ${str(FILES.key)}

[trust]
director_root = ${str(FILES.directorRoot)}
image_root = ${str(FILES.imageRoot)}

[primary]
hardware_id = ${str(f.hardwareId)}
${f.ecuSerial !== undefined ? `ecu_serial = ${str(f.ecuSerial)}\n` : ''}key_type = "ed25519"

[installer]
# Writes each new image to this file; use type = "command" to run your own installer.
type = "file"
path = "installed/image.bin"
`;
}
