/** `uptide updates …`: launch an image to devices or a group, follow it per device and ECU, cancel it. */
import type { Command } from 'commander';
import { example, type Ctx } from '../cli.js';
import { CliError, UsageError, json, table } from '../io.js';
import type { Page } from './images.js';

interface LaunchResult {
  id: string;
  image: string;
  affected: string[];
  notAffected: Array<{ device: string; reason: string }>;
}

interface UpdateStatus {
  id: string;
  name: string | null;
  createdAt: string;
  targets: Record<string, { to: { target: string } }>;
  counts: Record<string, number>;
  devices: Array<{
    device: string;
    status: string;
    ecus: Array<{
      ecu: string;
      hardwareId: string;
      target: string;
      status: string;
      resultCode: string | null;
      resultDescription: string | null;
      updatedAt: string;
    }>;
  }>;
}

interface UpdateSummary {
  id: string;
  name: string | null;
  targets: Record<string, { to: { target: string } }>;
  createdAt: string;
}

const REASONS: Record<string, string> = {
  no_matching_hardware: 'no ECU with a hardware id the image is built for',
  device_not_found: 'no such device',
};

export function registerUpdates(program: Command, ctx: Ctx): void {
  const { io } = ctx;
  const updates = example(
    program.command('updates').description('updates: launch, show, list, cancel'),
    'uptide updates launch --image fw@1.0 --group fleet-a',
    'uptide updates show UPDATE_ID',
  );

  example(
    updates
      .command('launch')
      .description('send an image to devices or a group; prints the update id')
      .requiredOption('--image <image>', 'NAME@VERSION or the image filename')
      .option('--devices <ids>', 'device ids, comma-separated')
      .option('--group <group>', 'a device group (name or id)')
      .option('--name <name>', 'a name for the update')
      .option('--dry-run', 'only show which devices would be affected')
      .option('--json', 'print JSON')
      .action(async (o: { image: string; devices?: string; group?: string; name?: string; dryRun?: boolean; json?: boolean }, cmd: Command) => {
        if ((o.devices === undefined) === (o.group === undefined)) throw new UsageError('give exactly one of --devices and --group');
        const devices = o.devices
          ?.split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        if (devices !== undefined && devices.length === 0) throw new UsageError('--devices names no device');
        const res = await ctx.api(cmd).json<LaunchResult>('POST', '/api/v1/updates', {
          image: o.image,
          ...(devices ? { devices } : { group: o.group }),
          ...(o.name ? { name: o.name } : {}),
          ...(o.dryRun ? { dryRun: true } : {}),
        });
        if (o.json) io.out(json(res));
        else if (!o.dryRun) io.out(`${res.id}\n`);
        const verb = o.dryRun ? 'would update' : 'updates';
        io.err(
          `${o.dryRun ? 'Dry run: ' : `Update ${res.id}: `}${res.image} ${verb} ${res.affected.length} device(s)${res.affected.length ? `: ${res.affected.join(', ')}` : ''}\n`,
        );
        for (const n of res.notAffected) io.err(`  not ${n.device}: ${REASONS[n.reason] ?? n.reason}\n`);
        if (res.affected.length === 0) {
          throw new CliError('no device is affected by this update', {
            hint: 'a device registers its ECUs when it first runs: start it, then check its hardware ids match the image (uptide devices show DEVICE_ID, uptide images show IMAGE)',
            code: 'no_device_affected',
          });
        }
        if (!o.dryRun && !o.json) io.err(`Follow it with: uptide updates show ${res.id}\n`);
      }),
    'uptide updates launch --image fw@1.2.0 --devices dev-1,dev-2',
    'uptide updates launch --image fw@1.2.0 --group fleet-a',
  );

  example(
    updates
      .command('show')
      .description('status of an update per device and ECU')
      .argument('<update-id>')
      .option('--json', 'print JSON')
      .action(async (id: string, o: { json?: boolean }, cmd: Command) => {
        const s = await ctx.api(cmd).get<UpdateStatus>(`/api/v1/updates/${encodeURIComponent(id)}`);
        if (o.json) return io.out(json(s));
        const images = [...new Set(Object.values(s.targets).map((t) => t.to.target))];
        let out = `update   ${s.id}${s.name ? ` (${s.name})` : ''}\nimage    ${images.join(', ')}\ncreated  ${s.createdAt}\n`;
        out += `devices  ${
          Object.entries(s.counts)
            .filter(([, n]) => n > 0)
            .map(([k, n]) => `${n} ${k}`)
            .join(', ') || 'none'
        }\n\n`;
        const rows = s.devices.flatMap((d) =>
          d.ecus.map((e) => [d.device, e.ecu, e.hardwareId, e.target, e.status, [e.resultCode, e.resultDescription].filter(Boolean).join(': '), e.updatedAt]),
        );
        out +=
          rows.length === 0 ? 'No device is part of this update.\n' : table(['DEVICE', 'ECU', 'HARDWARE ID', 'TARGET', 'STATUS', 'RESULT', 'UPDATED'], rows);
        io.out(out);
      }),
    'uptide updates show 7d1c2a9e-…',
  );

  example(
    updates
      .command('list')
      .description('list updates, newest first')
      .option('--json', 'print JSON')
      .action(async (o: { json?: boolean }, cmd: Command) => {
        const page = await ctx.api(cmd).get<Page<UpdateSummary>>('/api/v1/updates?limit=1000');
        if (o.json) return io.out(json(page.values));
        if (page.values.length === 0) return io.err('No updates. Launch one with: uptide updates launch --image NAME@VERSION --devices ID\n');
        io.out(
          table(
            ['UPDATE', 'NAME', 'IMAGE', 'CREATED'],
            page.values.map((u) => [u.id, u.name ?? '', [...new Set(Object.values(u.targets).map((t) => t.to.target))].join(','), u.createdAt]),
          ),
        );
      }),
    'uptide updates list',
  );

  example(
    updates
      .command('cancel')
      .description('cancel an update on every device that has not fetched it yet')
      .argument('<update-id>')
      .option('--json', 'print JSON')
      .action(async (id: string, o: { json?: boolean }, cmd: Command) => {
        const r = await ctx.api(cmd).json<{ cancelled: string[]; inFlight: string[] }>('POST', `/api/v1/updates/${encodeURIComponent(id)}/cancel`);
        if (o.json) return io.out(json(r));
        io.err(`Cancelled on ${r.cancelled.length} device(s)${r.cancelled.length ? `: ${r.cancelled.join(', ')}` : ''}.\n`);
        if (r.inFlight.length > 0) io.err(`Already in flight (fetched by the device, cannot be cancelled): ${r.inFlight.join(', ')}\n`);
      }),
    'uptide updates cancel 7d1c2a9e-…',
  );
}
