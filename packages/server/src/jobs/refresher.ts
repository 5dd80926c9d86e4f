/**
 * Background re-signing of metadata before it expires. With several
 * instances on one database, a lease row makes sure only one of them works
 * at a time (and another takes over if it dies); the work itself is also
 * safe to repeat, because every refresh locks the repository row and
 * re-checks expiry.
 */
import type { Logger } from 'pino';
import type { Services } from '../admin/context.js';

export interface Jobs {
  stop(): void;
}

const LEASE = 'metadata-refresh';

export function startJobs(services: Services, log: Logger, holder: string, intervalMs = 60_000): Jobs {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      const now = Date.now();
      if (!(await services.storage.store.acquireLease(LEASE, holder, now, intervalMs * 3))) return;
      for (const ns of await services.namespaces.list()) {
        await services.imageRepo.refresh(ns);
        await services.director.refreshRoot(ns);
      }
    } catch (err) {
      log.error({ err }, 'metadata refresh failed; will retry');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), intervalMs);
  timer.unref();
  setTimeout(() => void tick(), 1000).unref();
  return { stop: () => clearInterval(timer) };
}
