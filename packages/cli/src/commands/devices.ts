/** `uptide devices …`: provision (the device key never leaves this machine), list, show, delete. */
import { existsSync } from 'node:fs';
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { resolve, join } from 'node:path';
import type { Command } from 'commander';
import { parseRoot } from '@uptide/core';
import { example, integerOption, type Ctx } from '../cli.js';
import { CliError, UsageError, json, table } from '../io.js';
import { writeFileAtomic } from '../keystore.js';
import { REPOS, detectDialect } from '../repo.js';
import { FILES, deviceGateway, sotaToml, uptideToml, type DeviceFiles } from '../device-config.js';
import { checkHardwareIds } from '../files.js';
import type { ImageView, Page } from './images.js';

const generateKeyPairAsync = promisify(generateKeyPair);

export const DEVICE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const STATUSES = ['NotSeen', 'UpToDate', 'UpdatePending', 'UpdateInFlight', 'Error'];

interface DeviceView {
  deviceId: string;
  deviceName: string;
  deviceType: string;
  createdAt: string;
  activatedAt: string | null;
  lastSeen: string | null;
  deviceStatus: string;
  primaryEcuSerial: string | null;
}

interface EcuView {
  ecuSerial: string;
  hardwareId: string;
  primary: boolean;
  keyId: string;
  installedImage: { filepath: string; length: number; hashes: Record<string, string>; reportedAt: string | null } | null;
}

interface DeviceDetails extends DeviceView {
  ecus: EcuView[];
  updates: Array<{ updateId: string; correlationId: string; ecu: string; target: string; status: string; resultCode: string | null; updatedAt: string }>;
  lastInstallation: { correlationId: string; success: boolean; code: string; description: string; receivedAt: string } | null;
  attacks: Array<{ ecu: string | null; source: string; code: string; message: string; at: string }>;
  groups: Array<{ id: string; name: string }>;
}

interface IssuedCredentials {
  deviceId: string;
  certificate: string;
  deviceCa: string;
  serverCa: string;
  gatewayUrl: string;
  serial: string;
  notAfter: string;
}

function checkDeviceId(id: string): void {
  if (!DEVICE_ID_RE.test(id))
    throw new UsageError(`invalid device id ${JSON.stringify(id.slice(0, 80))}`, 'use 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit');
}

export function registerDevices(program: Command, ctx: Ctx): void {
  const { io } = ctx;
  const devices = example(
    program.command('devices').description('devices: provision, list, show, delete'),
    'uptide devices provision dev-1 --out ./dev-1 --hardware-id board-a',
    'uptide devices show dev-1',
  );

  example(
    devices
      .command('provision')
      .description(
        'create a device and its credentials: the TLS key is generated here and never leaves this machine; writes the certificate, the key, the server CA, the pinned roots and a ready client configuration',
      )
      .argument('<device-id>', 'the device id (the certificate CN): 1-64 characters of A-Z a-z 0-9 . _ -')
      .requiredOption('--out <dir>', 'directory to write into (created)')
      .option('--client <client>', 'aktualizr (sota.toml) or uptide (uptide-device.toml)', 'uptide')
      .option('--hardware-id <hw>', "the Primary ECU's hardware id (default: the only hardware id the images name)")
      .option('--ecu-serial <serial>', "the Primary ECU's serial (default: chosen by the client)")
      .option('--gateway <url>', 'the device gateway URL to configure (default: what the server says)')
      .option('--ttl-days <days>', 'certificate lifetime in days', integerOption('--ttl-days', 1))
      .option('--force', 'write into a directory that already holds a device key')
      .option('--json', 'print what was written as JSON')
      .action(
        async (
          deviceId: string,
          o: { out: string; client: string; hardwareId?: string; ecuSerial?: string; gateway?: string; ttlDays?: number; force?: boolean; json?: boolean },
          cmd: Command,
        ) => {
          checkDeviceId(deviceId);
          if (o.client !== 'aktualizr' && o.client !== 'uptide') throw new UsageError(`--client must be aktualizr or uptide, not ${JSON.stringify(o.client)}`);
          if (o.ecuSerial !== undefined && (o.ecuSerial.length === 0 || o.ecuSerial.length > 64)) throw new UsageError('--ecu-serial must be 1-64 characters');
          const dir = resolve(io.cwd, o.out);
          if (existsSync(join(dir, FILES.key)) && !o.force) {
            throw new CliError(`${join(dir, FILES.key)} exists already`, {
              hint: 'give another --out directory, or --force to replace that device key',
              code: 'exists',
            });
          }
          const api = ctx.api(cmd);
          const hardwareId = o.hardwareId !== undefined ? (checkHardwareIds([o.hardwareId])[0] as string) : await inferHardwareId(ctx, cmd);

          // The private key is made here; only its public half goes to the server.
          const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
          const issued = await api.json<IssuedCredentials>('POST', `/api/v1/devices/${encodeURIComponent(deviceId)}/credentials`, {
            publicKey: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
            ...(o.ttlDays !== undefined ? { ttlDays: o.ttlDays } : {}),
          });
          // The initial roots the device pins, exactly as the server serves them (self-signed by a threshold, checked here).
          const roots: Record<'director' | 'image', Uint8Array> = { director: new Uint8Array(), image: new Uint8Array() };
          for (const repo of ['director', 'image'] as const) {
            const bytes = new Uint8Array((await api.request('GET', REPOS[repo].rootFile())).body);
            const md = parseRoot(bytes, detectDialect(bytes));
            md.verify(md.signed.keys, md.signed.role('root'), { repository: repo, role: 'root' });
            roots[repo] = bytes;
          }
          const gatewayUrl = (o.gateway ?? issued.gatewayUrl).replace(/\/+$/, '');
          const files: DeviceFiles = { dir, deviceId, gatewayUrl, hardwareId, ecuSerial: o.ecuSerial };
          writeFileAtomic(join(dir, FILES.key), privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), 0o600);
          writeFileAtomic(join(dir, FILES.cert), issued.certificate);
          writeFileAtomic(join(dir, FILES.ca), issued.serverCa);
          writeFileAtomic(join(dir, FILES.directorRoot), roots.director);
          writeFileAtomic(join(dir, FILES.imageRoot), roots.image);
          const configFile = join(dir, o.client === 'aktualizr' ? FILES.sota : FILES.uptide);
          writeFileAtomic(configFile, o.client === 'aktualizr' ? sotaToml(files) : uptideToml(files));
          const runCommand = o.client === 'aktualizr' ? `aktualizr -c ${configFile} --run-mode once` : `npx uptide-device --config ${configFile}`;
          if (o.json) {
            io.out(
              json({
                deviceId,
                dir,
                config: configFile,
                gatewayUrl: deviceGateway(gatewayUrl, deviceId),
                certificateSerial: issued.serial,
                notAfter: issued.notAfter,
                run: runCommand,
              }),
            );
            return;
          }
          io.out(
            `Provisioned device ${deviceId} in ${dir}\n` +
              `  ${FILES.cert}  device certificate (CN ${deviceId}, serial ${issued.serial}, valid until ${issued.notAfter})\n` +
              `  ${FILES.key}  its private key (mode 0600; generated here, never sent)\n` +
              `  ${FILES.ca}  the CA of the gateway's certificate\n` +
              `  ${FILES.directorRoot}, ${FILES.imageRoot}  the pinned initial roots\n` +
              `  ${configFile.slice(dir.length + 1)}  ${o.client === 'aktualizr' ? 'aktualizr' : 'uptide-device'} configuration (gateway ${deviceGateway(gatewayUrl, deviceId)}, hardware id ${hardwareId})\n` +
              `Start the device with:\n  ${runCommand}\n`,
          );
        },
      ),
    'uptide devices provision dev-1 --out ./dev-1 --hardware-id board-a',
    'uptide devices provision dev-2 --out ./dev-2 --client aktualizr --hardware-id board-a --ecu-serial dev-2-primary',
  );

  example(
    devices
      .command('list')
      .description('list devices, with filters')
      .option('--status <status>', `only devices in this state: ${STATUSES.join(', ')}`)
      .option('--group <group>', 'only members of this group (name or id)')
      .option('--name-contains <text>', 'only devices whose id or name contains this')
      .option('--hardware-id <hw>', 'only devices with an ECU of this hardware id')
      .option('--json', 'print JSON')
      .action(async (o: { status?: string; group?: string; nameContains?: string; hardwareId?: string; json?: boolean }, cmd: Command) => {
        if (o.status !== undefined && !STATUSES.includes(o.status)) throw new UsageError(`--status must be one of ${STATUSES.join(', ')}`);
        const api = ctx.api(cmd);
        const all: DeviceView[] = [];
        for (let offset = 0; ;) {
          const q = new URLSearchParams({ offset: String(offset), limit: '1000' });
          if (o.status) q.set('status', o.status);
          if (o.group) q.set('groupId', o.group);
          if (o.nameContains) q.set('nameContains', o.nameContains);
          if (o.hardwareId) q.set('hardwareId', o.hardwareId);
          const page = await api.get<Page<DeviceView>>(`/api/v1/devices?${q.toString()}`);
          all.push(...page.values);
          offset += page.values.length;
          if (page.values.length === 0 || offset >= page.total) break;
        }
        if (o.json) return io.out(json(all));
        if (all.length === 0) return io.err('No devices match. Provision one with: uptide devices provision DEVICE_ID --out DIR\n');
        io.out(
          table(
            ['DEVICE', 'STATUS', 'LAST SEEN', 'PRIMARY ECU', 'CREATED'],
            all.map((d) => [d.deviceId, d.deviceStatus, d.lastSeen ?? 'never', d.primaryEcuSerial ?? '-', d.createdAt]),
          ),
        );
      }),
    'uptide devices list --status Error',
    'uptide devices list --group fleet-a --json',
  );

  example(
    devices
      .command('show')
      .description('one device: ECUs and hardware ids, installed images, last seen, update status, attacks reported')
      .argument('<device-id>')
      .option('--json', 'print JSON')
      .action(async (id: string, o: { json?: boolean }, cmd: Command) => {
        const d = await ctx.api(cmd).get<DeviceDetails>(`/api/v1/devices/${encodeURIComponent(id)}`);
        if (o.json) return io.out(json(d));
        let s = `device      ${d.deviceId}${d.deviceName !== d.deviceId ? ` (${d.deviceName})` : ''}\n`;
        s += `status      ${d.deviceStatus}\n`;
        s += `last seen   ${d.lastSeen ?? 'never'}\n`;
        s += `created     ${d.createdAt}\n`;
        s += `groups      ${d.groups.map((g) => g.name).join(', ') || '-'}\n`;
        s += '\nECUs\n';
        s +=
          d.ecus.length === 0
            ? '  none registered yet (the device registers them on its first run)\n'
            : indent(
                table(
                  ['SERIAL', 'HARDWARE ID', 'PRIMARY', 'INSTALLED IMAGE', 'SHA256', 'REPORTED'],
                  d.ecus.map((e) => [
                    e.ecuSerial,
                    e.hardwareId,
                    e.primary ? 'yes' : '',
                    e.installedImage?.filepath ?? '-',
                    (e.installedImage?.hashes['sha256'] ?? '').slice(0, 12),
                    e.installedImage?.reportedAt ?? '',
                  ]),
                ),
              );
        if (d.updates.length > 0) {
          s += '\nUpdates\n';
          s += indent(
            table(
              ['UPDATE', 'ECU', 'TARGET', 'STATUS', 'RESULT', 'UPDATED'],
              d.updates.map((u) => [u.updateId, u.ecu, u.target, u.status, u.resultCode ?? '', u.updatedAt]),
            ),
          );
        }
        if (d.lastInstallation) {
          const l = d.lastInstallation;
          s += `\nLast installation: ${l.success ? 'succeeded' : 'FAILED'} (${l.code}${l.description ? `: ${l.description}` : ''}) at ${l.receivedAt}\n`;
        }
        s += '\nAttacks reported\n';
        s +=
          d.attacks.length === 0
            ? '  none\n'
            : indent(
                table(
                  ['AT', 'ECU', 'SOURCE', 'CODE', 'MESSAGE'],
                  d.attacks.map((a) => [a.at, a.ecu ?? '-', a.source, a.code, a.message]),
                ),
              );
        io.out(s);
      }),
    'uptide devices show dev-1',
  );

  example(
    devices
      .command('delete')
      .description('delete a device and revoke its certificates')
      .argument('<device-id>')
      .action(async (id: string, _o: unknown, cmd: Command) => {
        await ctx.api(cmd).request('DELETE', `/api/v1/devices/${encodeURIComponent(id)}`);
        io.err(`Deleted device ${id}; its certificates no longer work.\n`);
      }),
    'uptide devices delete dev-1',
  );
}

function indent(s: string): string {
  return s
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n');
}

/** Without --hardware-id: the one hardware id the uploaded images name, if there is exactly one. */
async function inferHardwareId(ctx: Ctx, cmd: Command): Promise<string> {
  const page = await ctx.api(cmd).get<Page<ImageView>>('/api/v1/images?limit=1000');
  const ids = [...new Set(page.values.flatMap((i) => i.hardwareIds))].sort();
  if (ids.length === 1) {
    ctx.io.err(`Using hardware id ${ids[0]} (the only one the images name); give --hardware-id to choose another.\n`);
    return ids[0] as string;
  }
  throw new UsageError(
    'give --hardware-id: the hardware id of the Primary ECU',
    ids.length === 0 ? 'no image names one yet; use the hardware id you will upload images for' : `the images are built for: ${ids.join(', ')}`,
  );
}
