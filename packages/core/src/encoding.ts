/** Strict hex and base64 codecs: malformed input is an error, never silently truncated. */
import { FormatError } from './errors.js';

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function isHex(s: string): boolean {
  return HEX_RE.test(s);
}

export function fromHex(s: string, path = 'value'): Uint8Array {
  if (!HEX_RE.test(s)) throw new FormatError(`${path} is not hexadecimal`, { path });
  return Buffer.from(s, 'hex');
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromBase64(s: string, path = 'value'): Uint8Array {
  if (!BASE64_RE.test(s)) throw new FormatError(`${path} is not standard padded base64`, { path });
  return Buffer.from(s, 'base64');
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** Constant-time comparison of two hex digests, case-insensitive. */
export function hexEquals(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a.charCodeAt(i) | 0x20) ^ (b.charCodeAt(i) | 0x20);
  return diff === 0;
}
