/** Small helpers for building hostile bytes. */
import type { JsonObject } from '@uptide/core';

export interface Envelope {
  signed: JsonObject;
  signatures: JsonObject[];
}

/** Parses a metadata document, lets `change` edit it, and serializes it again (compactly, not canonically). */
export function editJson(bytes: Uint8Array, change: (doc: Envelope) => void): Buffer {
  const doc = JSON.parse(Buffer.from(bytes).toString('utf8')) as Envelope;
  change(doc);
  return Buffer.from(JSON.stringify(doc), 'utf8');
}

/** The same bytes with one bit flipped at `at`. */
export function flipByte(bytes: Uint8Array, at = 100): Buffer {
  const b = Buffer.from(bytes);
  b[at % b.length] = (b[at % b.length] as number) ^ 0x01;
  return b;
}

/** The `signed.version` of a metadata document. */
export function versionOf(bytes: Uint8Array): number {
  return (JSON.parse(Buffer.from(bytes).toString('utf8')) as Envelope).signed['version'] as number;
}
