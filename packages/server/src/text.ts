/** Text rules shared by the HTTP layer and the services. */

/** Whether a parsed JSON value has U+0000 in a key or a string: PostgreSQL cannot store it, and no Uptane field needs it. */
export function hasNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(hasNul);
  if (value && typeof value === 'object') return Object.entries(value).some(([k, v]) => k.includes('\u0000') || hasNul(v));
  return false;
}
