/**
 * aktualizr-format events (device-api.md §1.4.7), queued on disk and sent as
 * one JSON array to `POST <gateway>/events`. A 2xx or a 404 ("the server does
 * not take events") removes what was sent; a 413 halves the batch (a single
 * event still refused is dropped); anything else keeps the queue for later.
 */
import { randomUUID } from 'node:crypto';
import { canonicalize, formatExpires, type JsonObject } from '@uptide/core';
import type { HttpClient } from '../http/client.js';
import type { StateStore } from '../state/store.js';
import type { Logger } from './log.js';

export type EcuEventType = 'EcuDownloadStarted' | 'EcuDownloadCompleted' | 'EcuInstallationStarted' | 'EcuInstallationApplied' | 'EcuInstallationCompleted';

export function ecuEvent(type: EcuEventType, ecu: string, correlationId: string | undefined, success: boolean | undefined, now: Date): JsonObject {
  const event: JsonObject = { ecu };
  // aktualizr leaves correlationId out when empty, and sends success only on *Completed.
  if (correlationId) event['correlationId'] = correlationId;
  if (success !== undefined) event['success'] = success;
  return { id: randomUUID(), deviceTime: formatExpires(now), eventType: { id: type, version: 0 }, event };
}

export class EventQueue {
  private events: JsonObject[] | undefined;

  constructor(
    private readonly store: StateStore,
    private readonly log: Logger,
  ) {}

  private async load(): Promise<JsonObject[]> {
    if (!this.events) this.events = await this.store.readEvents();
    return this.events;
  }

  async add(event: JsonObject): Promise<void> {
    const events = await this.load();
    events.push(event);
    await this.store.writeEvents(events);
  }

  async pending(): Promise<readonly JsonObject[]> {
    return [...(await this.load())];
  }

  /** Sends what is queued. Returns the number of events the server took (or dropped as unsupported). */
  async flush(http: HttpClient, gateway: string): Promise<number> {
    const events = await this.load();
    let batch = events.length;
    let sent = 0;
    while (events.length > 0 && batch > 0) {
      const part = events.slice(0, batch);
      let status: number;
      try {
        status = (await http.request('POST', `${gateway}/events`, { body: canonicalize(part, 'uptane'), maxBytes: 64 * 1024 })).status;
      } catch (err) {
        this.log.warn('cannot send events; keeping them for later', { error: (err as Error).message, queued: events.length });
        break;
      }
      if ((status >= 200 && status < 300) || status === 404) {
        events.splice(0, part.length);
        sent += part.length;
      } else if (status === 413) {
        if (batch === 1) {
          this.log.warn('the server refuses an event as too large; dropping it', {
            type: String((events[0]?.['eventType'] as JsonObject | undefined)?.['id']),
          });
          events.splice(0, 1);
        } else batch = Math.floor(batch / 2);
      } else {
        this.log.warn('the server did not take the events; keeping them for later', { status, queued: events.length });
        break;
      }
      await this.store.writeEvents(events);
    }
    return sent;
  }
}
