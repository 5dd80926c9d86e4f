/**
 * The device-data reports aktualizr sends (device-api.md §1.4.3–§1.4.6):
 * hardware information, network information, installed packages, and the
 * effective configuration as TOML. Each is sent only when it differs from what
 * the server last accepted (by SHA-256 of the body).
 */
import { arch, cpus, hostname, networkInterfaces, platform, release, totalmem } from 'node:os';
import { stringify } from 'smol-toml';
import type { InstalledImage, JsonObject } from '@uptide/core';
import type { DeviceConfig } from '../config/config.js';

export const CLIENT_NAME = 'uptide-device';
export const CLIENT_VERSION = '0.1.0';

/** `PUT /system_info`: any JSON object (aktualizr sends `lshw -json`). */
export function systemInfo(): JsonObject {
  return {
    id: hostname(),
    class: 'system',
    product: `${platform()} ${arch()}`,
    description: `${CLIENT_NAME} ${CLIENT_VERSION} on Node.js ${process.version}`,
    configuration: { os: platform(), kernel: release(), cpus: String(cpus().length), memory: String(totalmem()) },
  };
}

/** `PUT /system_info/network`: OTA CE requires the three fields to be strings. */
export function networkInfo(): JsonObject {
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) {
      if (!i.internal && i.family === 'IPv4') return { local_ipv4: i.address, mac: i.mac, hostname: hostname() };
    }
  }
  return { local_ipv4: '', mac: '', hostname: hostname() };
}

/** `PUT /core/installed`: the client itself, and the Primary's installed image. */
export function installedPackages(installed: InstalledImage | undefined): JsonObject[] {
  const out: JsonObject[] = [{ name: CLIENT_NAME, version: CLIENT_VERSION }];
  if (installed) out.push({ name: installed.filename, version: installed.hashes['sha256'] ?? '' });
  return out;
}

/**
 * `POST /system_info/config`: the effective configuration as TOML, without
 * file contents or secrets. OTA CE refuses the report (400) without
 * `[pacman] type`, `[uptane] polling_sec` and `force_install_completion`.
 */
export function configReport(config: DeviceConfig, endpoints: { gateway: string; director: string; repo: string }): string {
  return stringify({
    pacman: { type: 'none' },
    uptane: {
      polling_sec: Math.max(1, Math.round(config.device.pollIntervalSeconds)),
      force_install_completion: false,
      director_server: endpoints.director,
      repo_server: endpoints.repo,
      key_type: config.primary.keyType.toUpperCase(),
    },
    tls: { server: endpoints.gateway },
    provision: { primary_ecu_hardware_id: config.primary.hardwareId, mode: config.provision ? 'SharedCred' : 'DeviceCred' },
    uptide: {
      client: `${CLIENT_NAME} ${CLIENT_VERSION}`,
      installer: config.installer.type,
      secondaries: config.secondaries.length,
      trust_on_first_use: config.trust.trustOnFirstUse,
      min_speed_bytes_per_second: config.limits.minSpeedBytesPerSecond,
    },
  });
}
