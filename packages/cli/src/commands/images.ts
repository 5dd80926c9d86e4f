/** `uptide images …`: upload (with local hashes compared to the server's), list, show, delete. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { filenamePath } from '../api.js';
import { collect, example, integerOption, type Ctx } from '../cli.js';
import { checkHardwareIds, checkTargetFilename, compareDigests, defaultFilename, uploadFile } from '../files.js';
import { formatBytes, json, table } from '../io.js';

export interface ImageView {
  filename: string;
  name: string | null;
  version: string | null;
  hardwareIds: string[];
  length: number;
  hashes: Record<string, string>;
  releaseCounter: number | null;
  targetFormat: string;
  uri: string | null;
  stored: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface Page<T> {
  total: number;
  offset: number;
  limit: number;
  values: T[];
}

/** The path of an image by filename or NAME@VERSION under /api/v1/images. */
export function imagePath(key: string): string {
  return `/api/v1/images/${filenamePath(key)}`;
}

export function registerImages(program: Command, ctx: Ctx): void {
  const { io } = ctx;
  const images = example(
    program.command('images').description('images of the Image repository: upload, list, show, delete'),
    'uptide images upload fw.bin --name fw --version 1.0 --hardware-id board-a',
    'uptide images list --json',
  );

  example(
    images
      .command('upload')
      .description('upload an image; shows the sha256, sha512 and length computed here and checks the server computed the same')
      .argument('<file>', 'the image file')
      .requiredOption('--name <name>', 'image name (what updates refer to as NAME@VERSION)')
      .requiredOption('--version <version>', 'image version')
      .requiredOption('--hardware-id <hw>', 'hardware id the image is built for (repeat for several)', collect)
      .option(
        '--release-counter <n>',
        'release counter: devices refuse an image with a lower one than they had (rollback protection)',
        integerOption('--release-counter'),
      )
      .option('--filename <filename>', 'target filename on the server (default NAME-VERSION plus the file extension)')
      .option('--json', 'print the server’s answer and the local digest as JSON')
      .action(
        async (
          file: string,
          o: { name: string; version: string; hardwareId: string[]; releaseCounter?: number; filename?: string; json?: boolean },
          cmd: Command,
        ) => {
          const hw = checkHardwareIds(o.hardwareId);
          const filename = o.filename ?? defaultFilename(file, o.name, o.version);
          checkTargetFilename(filename);
          const api = ctx.api(cmd);
          const q = new URLSearchParams({ name: o.name, version: o.version, hardwareIds: hw.join(',') });
          if (o.releaseCounter !== undefined) q.set('releaseCounter', String(o.releaseCounter));
          const { local, answer } = await uploadFile<ImageView>(
            api,
            io,
            'PUT',
            `/api/v1/user_repo/targets/${filenamePath(filename)}?${q.toString()}`,
            resolve(io.cwd, file),
            `Uploading ${filename}`,
          );
          compareDigests(file, local, answer);
          if (o.json) {
            io.out(json({ image: answer, local }));
            return;
          }
          io.out(
            `Uploaded ${answer.filename} (${o.name} ${o.version}, ${formatBytes(local.length)}) for ${hw.join(', ')}\n` +
              `  length  ${local.length}  (server: ${answer.length})\n` +
              `  sha256  ${local.hashes.sha256}  (server: same)\n` +
              `  sha512  ${local.hashes.sha512}  (server: ${answer.hashes['sha512'] ? 'same' : 'not computed'})\n`,
          );
          io.err(`Next: uptide updates launch --image ${o.name}@${o.version} --devices DEVICE_ID\n`);
        },
      ),
    'uptide images upload build/fw.bin --name fw --version 1.2.0 --hardware-id board-a --hardware-id board-b',
  );

  example(
    images
      .command('list')
      .description('list images')
      .option('--name-contains <text>', 'only images whose filename or name contains this')
      .option('--json', 'print JSON')
      .action(async (o: { nameContains?: string; json?: boolean }, cmd: Command) => {
        const api = ctx.api(cmd);
        const all: ImageView[] = [];
        for (let offset = 0; ;) {
          const q = new URLSearchParams({ offset: String(offset), limit: '1000' });
          if (o.nameContains) q.set('nameContains', o.nameContains);
          const page = await api.get<Page<ImageView>>(`/api/v1/images?${q.toString()}`);
          all.push(...page.values);
          offset += page.values.length;
          if (page.values.length === 0 || offset >= page.total) break;
        }
        if (o.json) return io.out(json(all));
        if (all.length === 0) return io.err('No images. Upload one with: uptide images upload FILE --name N --version V --hardware-id HW\n');
        io.out(
          table(
            ['FILENAME', 'NAME', 'VERSION', 'HARDWARE IDS', 'SIZE', 'SHA256', 'RELEASE'],
            all.map((i) => [
              i.filename,
              i.name ?? '',
              i.version ?? '',
              i.hardwareIds.join(','),
              formatBytes(i.length),
              (i.hashes['sha256'] ?? '').slice(0, 12),
              i.releaseCounter === null ? '' : String(i.releaseCounter),
            ]),
          ),
        );
      }),
    'uptide images list --name-contains fw',
  );

  example(
    images
      .command('show')
      .description('show one image')
      .argument('<image>', 'NAME@VERSION or the filename')
      .option('--json', 'print JSON')
      .action(async (key: string, o: { json?: boolean }, cmd: Command) => {
        const i = await ctx.api(cmd).get<ImageView>(imagePath(key));
        if (o.json) return io.out(json(i));
        const rows: [string, string][] = [
          ['filename', i.filename],
          ['name', i.name ?? ''],
          ['version', i.version ?? ''],
          ['hardware ids', i.hardwareIds.join(', ')],
          ['length', `${i.length} (${formatBytes(i.length)})`],
          ...Object.entries(i.hashes).map(([k, v]): [string, string] => [k, v]),
          ['release counter', i.releaseCounter === null ? '-' : String(i.releaseCounter)],
          ['format', i.targetFormat],
          ['stored', i.stored ? 'yes' : i.uri ? `no, at ${i.uri}` : 'no'],
          ['created', i.createdAt],
          ['updated', i.updatedAt],
        ];
        io.out(rows.map(([k, v]) => `${k.padEnd(16)} ${v}`).join('\n') + '\n');
      }),
    'uptide images show fw@1.2.0',
  );

  example(
    images
      .command('delete')
      .description('remove an image from targets (online targets key only; see "uptide keys targets remove" once it is offline)')
      .argument('<image>', 'NAME@VERSION or the filename')
      .action(async (key: string, _o: unknown, cmd: Command) => {
        const api = ctx.api(cmd);
        const i = await api.get<ImageView>(imagePath(key));
        await api.request('DELETE', `/api/v1/user_repo/targets/${filenamePath(i.filename)}`);
        io.err(`Deleted ${i.filename} from the Image repository's targets.\n`);
      }),
    'uptide images delete fw@1.2.0',
  );
}
