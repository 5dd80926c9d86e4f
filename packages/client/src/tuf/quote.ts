/**
 * Role names and target paths become URL path segments and file names. TUF
 * clients quote them the way python-tuf does (`urllib.parse.quote(name, safe='')`),
 * so that a role called `../x` or `?` can neither escape the metadata directory
 * nor change the meaning of a URL, and so that every client stores them under
 * the same file names.
 */

/** Percent-encodes everything except ASCII letters, digits and `_.-~` (UTF-8, uppercase hex). */
export function quote(s: string): string {
  // encodeURIComponent leaves !'()* alone; Python's quote does not.
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The inverse of quote, or undefined for a string that is not validly percent-encoded. */
export function unquote(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** Quotes each `/`-separated segment of a target path, for use in a URL path. */
export function quotePath(path: string): string {
  return path.split('/').map(quote).join('/');
}
