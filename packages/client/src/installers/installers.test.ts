import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TargetFile } from '@uptide/core';
import { silentLogger } from '../primary/log.js';
import { CommandInstaller, createInstaller, FileInstaller, type InstallRequest } from './index.js';

function request(dir: string, content: string): InstallRequest {
  const imagePath = join(dir, 'verified.bin');
  writeFileSync(imagePath, content);
  return {
    ecuSerial: 'ecu-1',
    targetName: 'fw-2.bin',
    imagePath,
    target: new TargetFile('fw-2.bin', content.length, { sha256: 'aa'.repeat(32) }),
    correlationId: 'urn:here-ota:mtu:1',
  };
}

describe('file installer', () => {
  it('writes the image and keeps the one it replaces as .previous', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uptide-inst-'));
    const target = join(dir, 'out', 'image.bin');
    const inst = createInstaller({ type: 'file', path: target });
    expect(inst).toBeInstanceOf(FileInstaller);
    expect(await inst.install(request(dir, 'one'), silentLogger)).toMatchObject({ success: true, code: 'OK' });
    expect(readFileSync(target, 'utf8')).toBe('one');
    expect(existsSync(`${target}.previous`)).toBe(false);
    expect((await inst.install(request(dir, 'two'), silentLogger)).success).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('two');
    expect(readFileSync(`${target}.previous`, 'utf8')).toBe('one');
  });

  it('reports a failure it cannot write', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uptide-inst-'));
    writeFileSync(join(dir, 'afile'), 'x');
    const inst = new FileInstaller(join(dir, 'afile', 'image.bin'));
    expect(await inst.install(request(dir, 'x'), silentLogger)).toMatchObject({ success: false, code: 'INSTALL_FAILED' });
  });
});

describe('command installer', () => {
  it('passes the image path and target name; exit 0 is success', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uptide-inst-'));
    const out = join(dir, 'args.txt');
    const script = `require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify({argv: process.argv.slice(1), name: process.env.UPTIDE_TARGET_NAME, sha: process.env.UPTIDE_TARGET_SHA256, cid: process.env.UPTIDE_CORRELATION_ID}))`;
    const inst = createInstaller({ type: 'command', command: [process.execPath, '-e', script], timeoutSeconds: 10 });
    expect(inst).toBeInstanceOf(CommandInstaller);
    const req = request(dir, 'img');
    expect(await inst.install(req, silentLogger)).toMatchObject({ success: true, code: 'OK' });
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual({
      argv: [req.imagePath, 'fw-2.bin'],
      name: 'fw-2.bin',
      sha: 'aa'.repeat(32),
      cid: 'urn:here-ota:mtu:1',
    });
  });

  it('reports another exit status as INSTALL_FAILED with the end of stderr', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uptide-inst-'));
    const inst = new CommandInstaller([process.execPath, '-e', 'console.error("x".repeat(5000) + " flash write error at block 7"); process.exit(3)'], 10_000);
    const r = await inst.install(request(dir, 'img'), silentLogger);
    expect(r).toMatchObject({ success: false, code: 'INSTALL_FAILED' });
    expect(r.description).toContain('exited with status 3');
    expect(r.description).toContain('flash write error at block 7');
    expect(r.description.length).toBeLessThan(2300);
  });

  it('stops a program that overruns its timeout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uptide-inst-'));
    const inst = new CommandInstaller([process.execPath, '-e', 'setTimeout(() => {}, 60000)'], 300);
    const t0 = Date.now();
    const r = await inst.install(request(dir, 'img'), silentLogger);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r).toMatchObject({ success: false, code: 'INSTALL_FAILED' });
    expect(r.description).toContain('did not finish within 0.3 s');
  });

  it('reports a program that cannot be started', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uptide-inst-'));
    const r = await new CommandInstaller([join(dir, 'no-such-program')], 1000).install(request(dir, 'img'), silentLogger);
    expect(r).toMatchObject({ success: false, code: 'INSTALL_FAILED' });
    expect(r.description).toContain('cannot run');
  });
});
