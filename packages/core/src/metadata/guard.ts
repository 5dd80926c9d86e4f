/**
 * Field guards for the strict metadata parsers. Each names the JSON path of the
 * offending field in its FormatError, so that a malformed document is reported
 * as "signed.targets["a.bin"].length must be a non-negative integer", never as a
 * TypeError from deep inside the verifier.
 */
import { FormatError } from '../errors.js';
import type { JsonObject, JsonValue } from '../json.js';

export function expectObject(v: JsonValue | undefined, path: string): JsonObject {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new FormatError(`${path} must be an object`, { path });
  return v;
}

export function expectArray(v: JsonValue | undefined, path: string): JsonValue[] {
  if (!Array.isArray(v)) throw new FormatError(`${path} must be an array`, { path });
  return v;
}

export function expectString(v: JsonValue | undefined, path: string): string {
  if (typeof v !== 'string') throw new FormatError(`${path} must be a string`, { path });
  return v;
}

export function expectNonEmptyString(v: JsonValue | undefined, path: string): string {
  const s = expectString(v, path);
  if (s.length === 0) throw new FormatError(`${path} must not be empty`, { path });
  return s;
}

export function expectBoolean(v: JsonValue | undefined, path: string): boolean {
  if (typeof v !== 'boolean') throw new FormatError(`${path} must be a boolean`, { path });
  return v;
}

/** A JSON integer >= min (numbers beyond 2^53 are already refused by the JSON parser). */
export function expectInteger(v: JsonValue | undefined, path: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new FormatError(`${path} must be an integer >= ${min}`, { path });
  }
  return v;
}

export function expectStringArray(v: JsonValue | undefined, path: string): string[] {
  const arr = expectArray(v, path);
  for (let i = 0; i < arr.length; i++) if (typeof arr[i] !== 'string') expectString(arr[i], `${path}[${i}]`); // the path only for the error
  return arr as string[];
}

export function optional<T>(v: JsonValue | undefined, parse: (v: JsonValue, path: string) => T, path: string): T | undefined {
  return v === undefined ? undefined : parse(v, path);
}

/** The fields of `obj` that a model does not know, kept so that re-serialization is lossless. */
export function pickUnrecognized(obj: JsonObject, known: readonly string[]): JsonObject {
  const out: JsonObject = {};
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) {
      const value = obj[k] as JsonValue;
      if (k === '__proto__') Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
      else out[k] = value;
    }
  }
  return out;
}

/** Sets an own property, even one named `__proto__` (a plain assignment would replace the prototype and lose the entry). */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

export function hasOwn(obj: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

/** Renders a map key in a JSON path. */
export function pathKey(base: string, key: string): string {
  return `${base}[${JSON.stringify(key)}]`;
}

/** Deep copy of a JSON value (model objects never share mutable state with their input). */
export function cloneJson<T extends JsonValue>(v: T): T {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => cloneJson(x)) as T;
  const out: JsonObject = {};
  for (const k of Object.keys(v)) {
    const value = cloneJson(v[k] as JsonValue);
    if (k === '__proto__') Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
    else out[k] = value;
  }
  return out as T;
}
