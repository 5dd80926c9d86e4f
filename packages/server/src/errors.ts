/**
 * HTTP errors. Every error a client can cause answers `{"code","message"}`
 * with a 4xx; 5xx is for our own faults only. Codes of the core's typed errors
 * are mapped to statuses here, in one place.
 */
import { UptaneError } from '@uptide/core';

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const badRequest = (code: string, message: string): ApiError => new ApiError(400, code, message);
export const notFound = (code: string, message: string): ApiError => new ApiError(404, code, message);
export const conflict = (code: string, message: string): ApiError => new ApiError(409, code, message);
export const forbidden = (code: string, message: string): ApiError => new ApiError(403, code, message);
export const unauthorized = (message: string): ApiError => new ApiError(401, 'unauthorized', message, { 'www-authenticate': 'Bearer' });

const UPTANE_STATUS: Record<string, number> = {
  MALFORMED_JSON: 400,
  MALFORMED_METADATA: 400,
  UNSUPPORTED_ALGORITHM: 400,
  BAD_KEY: 400,
  BAD_MANIFEST: 400,
  BAD_ARGUMENT: 400,
  ARBITRARY_SOFTWARE: 400,
  ROLLBACK: 409,
  MIX_AND_MATCH: 400,
  FREEZE: 400,
  ENDLESS_DATA: 413,
  TARGET_NOT_FOUND: 404,
  BAD_HARDWARE_ID: 400,
  BAD_ECU_ID: 400,
  TARGET_MISMATCH: 400,
  DIRECTOR_REPLAY: 400,
  DELEGATION_LIMIT: 400,
  BAD_ORDER: 409,
  BAD_PASSPHRASE: 500,
  SLOW_RETRIEVAL: 408,
};

/**
 * Error messages quote what the caller sent (an invalid device id, a filename) and are logged. A private key
 * or an API token pasted into the wrong field must not end up in either: such text is replaced.
 */
export function scrubSecrets(message: string): string {
  return message
    .replace(/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g, '[private key removed]')
    .replace(/upt_[A-Za-z0-9_-]{8,}/g, 'upt_[token removed]');
}

/** Turns anything thrown into a status and a body (its message scrubbed of secrets); unknown errors become an opaque 500. */
export function toHttpError(err: unknown): { status: number; body: { code: string; message: string }; headers: Record<string, string>; internal: boolean } {
  const r = toHttpErrorRaw(err);
  return { ...r, body: { code: r.body.code, message: scrubSecrets(r.body.message) } };
}

function toHttpErrorRaw(err: unknown): { status: number; body: { code: string; message: string }; headers: Record<string, string>; internal: boolean } {
  if (err instanceof ApiError) return { status: err.statusCode, body: { code: err.code, message: err.message }, headers: err.headers, internal: false };
  if (err instanceof UptaneError) {
    const status = UPTANE_STATUS[err.code] ?? 400;
    return { status, body: { code: err.code.toLowerCase(), message: err.message }, headers: {}, internal: status >= 500 };
  }
  const e = err as { statusCode?: unknown; code?: unknown; message?: unknown; validation?: unknown };
  // Fastify's own errors (validation, body too large, bad content type) carry a 4xx statusCode.
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const code =
      e.validation !== undefined
        ? 'invalid_request'
        : e.statusCode === 413
          ? 'body_too_large'
          : e.statusCode === 415
            ? 'unsupported_media_type'
            : typeof e.code === 'string'
              ? e.code.replace(/^FST_ERR_/, '').toLowerCase()
              : 'bad_request';
    return { status: e.statusCode, body: { code, message: String(e.message ?? 'bad request') }, headers: {}, internal: false };
  }
  return { status: 500, body: { code: 'internal_error', message: 'internal server error' }, headers: {}, internal: true };
}
