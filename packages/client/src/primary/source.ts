/**
 * Repository metadata and images over HTTP, at the URLs aktualizr uses
 * (device-api.md §1.4.8, §1.4.9): `N.root.json`, `timestamp.json`,
 * `snapshot.json`, `targets.json` under each repository's base URL,
 * delegated roles under `delegations/<role>.json` (OTA CE) or `<role>.json`,
 * and images at `<repo>/targets/<percent-encoded name>` unless the metadata
 * gives a `uri`.
 */
import type { RepositorySource, TargetFile } from '@uptide/core';
import type { HttpClient } from '../http/client.js';

export class HttpRepositorySource implements RepositorySource {
  constructor(
    private readonly http: HttpClient,
    readonly baseUrl: string,
    /** Prefix of delegated role files: `delegations/` (OTA CE) or `` (plain layout). */
    private readonly delegationsPath = 'delegations/',
  ) {}

  /** A missing `N.root.json` (404) ends the rotation walk; any other failure aborts the cycle. */
  root(version: number, maxBytes: number): Promise<Uint8Array | undefined> {
    return this.http.getOptional(`${this.baseUrl}/${version}.root.json`, maxBytes);
  }

  timestamp(maxBytes: number): Promise<Uint8Array> {
    return this.http.get(`${this.baseUrl}/timestamp.json`, maxBytes);
  }

  // The uptane dialect never uses consistent snapshots: names carry no version.
  snapshot(_version: number, maxBytes: number): Promise<Uint8Array> {
    return this.http.get(`${this.baseUrl}/snapshot.json`, maxBytes);
  }

  targets(role: string, _version: number, maxBytes: number): Promise<Uint8Array> {
    if (role === 'targets') return this.http.get(`${this.baseUrl}/targets.json`, maxBytes);
    return this.http.get(`${this.baseUrl}/${this.delegationsPath}${percentEncode(role, false)}.json`, maxBytes);
  }
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * Percent-encodes UTF-8 bytes except `A–Z a–z 0–9 - . _ ~` (and `/` when
 * keepSlash), with upper-case hex, as curl_easy_escape does for aktualizr.
 */
export function percentEncode(s: string, keepSlash: boolean): string {
  let out = '';
  for (const ch of s) {
    if (UNRESERVED.test(ch) || (keepSlash && ch === '/')) {
      out += ch;
      continue;
    }
    for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** aktualizr ignores this placeholder `uri` for historical reasons. */
const PLACEHOLDER_URI = 'https://example.com/';

/** Where to download an image: the Director's `uri`, else the Image repository's, else the repository's targets path. */
export function imageUrl(repoUrl: string, name: string, director: TargetFile, image: TargetFile | undefined): string {
  for (const uri of [director.uri, image?.uri]) if (uri !== undefined && uri !== PLACEHOLDER_URI) return uri;
  return `${repoUrl}/targets/${percentEncode(name, true)}`;
}
