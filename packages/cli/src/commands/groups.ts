/** `uptide groups …`: static device groups, to launch updates to many devices at once. */
import type { Command } from 'commander';
import { example, type Ctx } from '../cli.js';
import { json, table } from '../io.js';

interface GroupSummary {
  id: string;
  name: string;
  size: number;
  createdAt: string;
}

interface GroupDetails {
  id: string;
  name: string;
  createdAt: string;
  devices: string[];
}

const groupPath = (g: string) => `/api/v1/device_groups/${encodeURIComponent(g)}`;

export function registerGroups(program: Command, ctx: Ctx): void {
  const { io } = ctx;
  const groups = example(
    program.command('groups').description('device groups: create, list, show, add, remove, delete'),
    'uptide groups create fleet-a && uptide groups add fleet-a dev-1 dev-2',
  );

  example(
    groups
      .command('create')
      .description('create a group')
      .argument('<name>')
      .option('--json', 'print JSON')
      .action(async (name: string, o: { json?: boolean }, cmd: Command) => {
        const g = await ctx.api(cmd).json<{ id: string; name: string }>('POST', '/api/v1/device_groups', { name });
        if (o.json) return io.out(json(g));
        io.out(`${g.id}\n`);
        io.err(`Created group ${g.name}. Add devices with: uptide groups add ${g.name} DEVICE_ID…\n`);
      }),
    'uptide groups create fleet-a',
  );

  example(
    groups
      .command('list')
      .description('list groups')
      .option('--json', 'print JSON')
      .action(async (o: { json?: boolean }, cmd: Command) => {
        const res = await ctx.api(cmd).get<{ values: GroupSummary[] }>('/api/v1/device_groups');
        if (o.json) return io.out(json(res.values));
        if (res.values.length === 0) return io.err('No groups. Create one with: uptide groups create NAME\n');
        io.out(
          table(
            ['NAME', 'DEVICES', 'ID', 'CREATED'],
            res.values.map((g) => [g.name, String(g.size), g.id, g.createdAt]),
          ),
        );
      }),
    'uptide groups list',
  );

  example(
    groups
      .command('show')
      .description('a group and its devices')
      .argument('<group>', 'name or id')
      .option('--json', 'print JSON')
      .action(async (group: string, o: { json?: boolean }, cmd: Command) => {
        const g = await ctx.api(cmd).get<GroupDetails>(groupPath(group));
        if (o.json) return io.out(json(g));
        io.out(`group    ${g.name}\nid       ${g.id}\ncreated  ${g.createdAt}\ndevices  ${g.devices.length === 0 ? '-' : g.devices.join(', ')}\n`);
      }),
    'uptide groups show fleet-a',
  );

  example(
    groups
      .command('add')
      .description('add devices to a group')
      .argument('<group>', 'name or id')
      .argument('<device-ids...>')
      .action(async (group: string, ids: string[], _o: unknown, cmd: Command) => {
        const api = ctx.api(cmd);
        for (const id of ids) await api.request('POST', `${groupPath(group)}/devices/${encodeURIComponent(id)}`);
        io.err(`Added ${ids.join(', ')} to ${group}.\n`);
      }),
    'uptide groups add fleet-a dev-1 dev-2',
  );

  example(
    groups
      .command('remove')
      .description('remove devices from a group')
      .argument('<group>', 'name or id')
      .argument('<device-ids...>')
      .action(async (group: string, ids: string[], _o: unknown, cmd: Command) => {
        const api = ctx.api(cmd);
        for (const id of ids) await api.request('DELETE', `${groupPath(group)}/devices/${encodeURIComponent(id)}`);
        io.err(`Removed ${ids.join(', ')} from ${group}.\n`);
      }),
    'uptide groups remove fleet-a dev-2',
  );

  example(
    groups
      .command('delete')
      .description('delete a group (its devices stay)')
      .argument('<group>', 'name or id')
      .action(async (group: string, _o: unknown, cmd: Command) => {
        await ctx.api(cmd).request('DELETE', groupPath(group));
        io.err(`Deleted group ${group}.\n`);
      }),
    'uptide groups delete fleet-a',
  );
}
