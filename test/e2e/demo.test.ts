/**
 * `npm run demo` (scripts/demo.mjs) is the README's walk, scripted: it must run
 * to the end — a server, a device with a Secondary, a simulated fleet, one
 * update launched to the group and completed on every ECU.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const built = ['server/dist/bin/uptide-server.js', 'cli/dist/bin/uptide.js', 'client/dist/bin/uptide-sim.js'].every((f) =>
  existsSync(join(root, 'packages', f)),
);

describe('npm run demo', () => {
  it.skipIf(!built)(
    'updates a device, its Secondary and a simulated fleet end to end',
    async () => {
      const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [join(root, 'scripts/demo.mjs'), '--devices', '2', '--timeout', '90'], { timeout: 150_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
      expect(stderr).not.toContain('demo failed');
      expect(code).toBe(0);
      expect(stdout).toContain('Done: 3 devices, 6 ECUs updated and verified end to end.');
    },
    180_000,
  );
});
