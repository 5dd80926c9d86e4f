/**
 * Errors of the PKI module. They are `UptaneError`s so the server maps them to
 * HTTP statuses in the same one place as every other error: a bad device id or
 * ttl from a request is `BAD_ARGUMENT` (400), an unusable key is `BAD_KEY`, a
 * PKCS#12 whose MAC does not verify is `BAD_PASSPHRASE`.
 */
import { UptaneError, type ErrorCode, type UptaneErrorDetails } from '@uptide/core';

export type PkiErrorCode = Extract<ErrorCode, 'BAD_ARGUMENT' | 'BAD_KEY' | 'BAD_PASSPHRASE' | 'UNSUPPORTED_ALGORITHM'>;

export class PkiError extends UptaneError {
  constructor(code: PkiErrorCode, message: string, details: UptaneErrorDetails = {}) {
    super(code, message, details);
  }
}
