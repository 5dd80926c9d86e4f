/** Test helpers for asserting typed errors (excluded from the build with the rest of testing/). */
import { UptaneError } from '../errors.js';

/** Runs fn and returns the UptaneError it throws; anything else (or nothing) fails the test. */
export function catchUptaneError(fn: () => unknown): UptaneError {
  try {
    fn();
  } catch (err) {
    if (err instanceof UptaneError) return err;
    throw new Error(`expected an UptaneError, got ${String(err)}`, { cause: err });
  }
  throw new Error('expected an UptaneError, but nothing was thrown');
}

/** Awaits p and returns the UptaneError it rejects with; anything else (or success) fails the test. */
export async function rejectsUptaneError(p: Promise<unknown>): Promise<UptaneError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof UptaneError) return err;
    throw new Error(`expected an UptaneError, got ${String(err)}`, { cause: err });
  }
  throw new Error('expected an UptaneError, but the promise resolved');
}
