/**
 * The one error type of the IP-Secondary protocol layer.
 *
 * The core's `ErrorCode` union is closed, so the protocol's own, finer reason
 * travels in `reason`; `code` carries the nearest core code so that the
 * client's single code → `attacks_detected` mapping keeps working:
 * an oversized message is the Standard's endless-data attack (`ENDLESS_DATA`),
 * a value we were asked to encode but cannot is `BAD_ARGUMENT`, and everything
 * else (malformed bytes, unknown messages, timeouts, closed connections) is
 * `MALFORMED_METADATA`, which is deliberately not an attack code: a Secondary
 * that is slow or switched off is not, by itself, evidence of an attack.
 * Callers that drive the protocol branch on `reason`.
 */
import { UptaneError } from '@uptide/core';
import type { ErrorCode } from '@uptide/core';

export type IpUptaneErrorReason =
  /** Bytes that are not a DER encoding of `AKIpUptaneMes` (bad tag, length, value, structure, trailing bytes). */
  | 'BAD_MESSAGE'
  /** A well-formed top-level TLV whose CHOICE alternative we do not know (aktualizr decodes these to "nothing"). */
  | 'UNKNOWN_MESSAGE'
  /** The input (or the connection) ended inside a message. */
  | 'TRUNCATED'
  /** A message longer than the configured limit for its type. */
  | 'MESSAGE_TOO_LARGE'
  /** The encoder was given a value that the schema cannot carry. */
  | 'BAD_ARGUMENT'
  /** A read, write, connect or whole request took longer than allowed. */
  | 'TIMEOUT'
  /** The peer closed the connection at a message boundary without answering (aktualizr-secondary does this for messages it does not handle). */
  | 'CONNECTION_CLOSED'
  /** The connection could not be opened, or failed with a socket error. */
  | 'CONNECTION_FAILED'
  /** A valid message of a type other than the one the request expects. */
  | 'UNEXPECTED_RESPONSE'
  /** A server refused a connection because it already serves its maximum. */
  | 'TOO_MANY_CONNECTIONS';

export interface IpUptaneErrorDetails {
  /** Field path inside the message, e.g. `putMetaReq2.imageRepo[1].json`. */
  readonly path?: string;
  /** Byte offset in the encoded message where decoding failed. */
  readonly offset?: number;
  readonly cause?: unknown;
}

function coreCode(reason: IpUptaneErrorReason): ErrorCode {
  if (reason === 'MESSAGE_TOO_LARGE') return 'ENDLESS_DATA';
  if (reason === 'BAD_ARGUMENT') return 'BAD_ARGUMENT';
  return 'MALFORMED_METADATA';
}

export class IpUptaneError extends UptaneError {
  readonly reason: IpUptaneErrorReason;
  readonly offset: number | undefined;

  constructor(reason: IpUptaneErrorReason, message: string, details: IpUptaneErrorDetails = {}) {
    super(coreCode(reason), message, {
      ...(details.path === undefined ? {} : { path: details.path }),
      ...(details.cause === undefined ? {} : { cause: details.cause }),
    });
    this.reason = reason;
    this.offset = details.offset;
  }

  override toJSON(): Record<string, unknown> {
    const out = super.toJSON();
    out['reason'] = this.reason;
    if (this.offset !== undefined) out['offset'] = this.offset;
    return out;
  }
}

export function isIpUptaneError(err: unknown, reason?: IpUptaneErrorReason): err is IpUptaneError {
  return err instanceof IpUptaneError && (reason === undefined || err.reason === reason);
}
