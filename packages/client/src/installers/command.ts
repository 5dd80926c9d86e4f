/**
 * `type = "command"`: runs a program with the image path and the target name
 * appended to its arguments (and in the environment). Exit status 0 means
 * installed; anything else, a signal or the timeout is INSTALL_FAILED with the
 * end of the program's stderr in the report.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '../primary/log.js';
import { installFailed, installOk, type InstallOutcome, type InstallRequest, type Installer } from './installer.js';

const STDERR_TAIL = 2048;
/** After the timeout, SIGTERM; this long later, SIGKILL. */
const KILL_GRACE_MS = 5000;

export class CommandInstaller implements Installer {
  readonly type = 'command';

  constructor(
    readonly command: readonly string[],
    readonly timeoutMs: number,
  ) {
    if (command.length === 0) throw new Error('the command installer needs a program');
  }

  install(request: InstallRequest, log: Logger): Promise<InstallOutcome> {
    const [program, ...args] = this.command as [string, ...string[]];
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      UPTIDE_IMAGE_PATH: request.imagePath,
      UPTIDE_TARGET_NAME: request.targetName,
      UPTIDE_TARGET_LENGTH: String(request.target.length),
      UPTIDE_ECU_SERIAL: request.ecuSerial,
    };
    for (const [alg, h] of Object.entries(request.target.hashes)) env[`UPTIDE_TARGET_${alg.toUpperCase()}`] = h;
    if (request.correlationId !== undefined) env['UPTIDE_CORRELATION_ID'] = request.correlationId;

    return new Promise<InstallOutcome>((resolveOutcome) => {
      let stderr = '';
      let timedOut = false;
      let killTimer: NodeJS.Timeout | undefined;
      const child = spawn(program, [...args, request.imagePath, request.targetName], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      log.info('running installer', { program, target: request.targetName, pid: child.pid });
      child.stdout.on('data', (d: Buffer) => log.debug('installer stdout', { line: d.toString('utf8').trimEnd() }));
      child.stderr.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString('utf8')).slice(-STDERR_TAIL);
      });
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGTERM');
        killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      }, this.timeoutMs);
      const tail = (): string => (stderr.trim() ? `; stderr: ${stderr.trim()}` : '');
      child.on('error', (err) => {
        clearTimeout(timer);
        resolveOutcome(installFailed(`cannot run ${program}: ${err.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (killTimer) clearTimeout(killTimer);
        if (timedOut) resolveOutcome(installFailed(`${program} did not finish within ${this.timeoutMs / 1000} s and was stopped${tail()}`));
        else if (code === 0) resolveOutcome(installOk(`${program} installed ${request.targetName}`));
        else if (signal) resolveOutcome(installFailed(`${program} was killed by ${signal}${tail()}`));
        else resolveOutcome(installFailed(`${program} exited with status ${String(code)}${tail()}`));
      });
    });
  }
}
