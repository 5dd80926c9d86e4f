/**
 * Image files: hashing on this machine (so what the server answers can be
 * compared with what was sent), uploading with a progress bar, and the rules
 * for target filenames and hardware ids (the server's, checked early so an
 * offline-signed file never lists a name the server would refuse).
 */
import { createReadStream, statSync } from 'node:fs';
import { Transform } from 'node:stream';
import { extname, basename } from 'node:path';
import { MultiHasher, isNfc, isPublishableTargetName } from '@uptide/core';
import { filenamePath, type AdminApi } from './api.js';
import { CliError, UsageError, type CliIo } from './io.js';
import { ProgressBar } from './progress.js';

export interface FileDigest {
  readonly length: number;
  readonly hashes: { readonly sha256: string; readonly sha512: string };
}

export function fileSize(path: string): number {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new UsageError(`cannot read ${path}: no such file`, 'give the path of the image file');
  }
  if (!st.isFile()) throw new UsageError(`${path} is not a file`);
  if (st.size === 0) throw new UsageError(`${path} is empty`, 'an image must not be empty (aktualizr treats length 0 as OSTree)');
  return st.size;
}

/** sha256, sha512 and length of a file, read once. */
export async function digestFile(path: string): Promise<FileDigest> {
  fileSize(path);
  const hasher = new MultiHasher(['sha256', 'sha512']);
  for await (const chunk of createReadStream(path)) hasher.update(chunk as Buffer);
  const d = hasher.digest();
  return { length: hasher.length, hashes: { sha256: d['sha256'] as string, sha512: d['sha512'] as string } };
}

/**
 * Streams a file to the server, hashing the bytes as they leave and drawing a
 * progress bar; returns the local digest and the server's JSON answer.
 */
export async function uploadFile<T>(
  api: AdminApi,
  io: CliIo,
  method: string,
  path: string,
  file: string,
  label: string,
): Promise<{ local: FileDigest; answer: T }> {
  const length = fileSize(file);
  const hasher = new MultiHasher(['sha256', 'sha512']);
  const bar = new ProgressBar(io, label, length);
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hasher.update(chunk);
      bar.advance(chunk.length);
      cb(null, chunk);
    },
  });
  const source = createReadStream(file).pipe(tap);
  let answer: T;
  try {
    const res = await api.request(method, path, { stream: { source, length } });
    answer = (res.body.length > 0 ? JSON.parse(res.body.toString('utf8')) : undefined) as T;
  } finally {
    bar.finish();
  }
  const d = hasher.digest();
  if (hasher.length !== length) throw new CliError(`${file} changed while it was uploaded (${hasher.length} bytes sent, ${length} expected)`);
  return { local: { length, hashes: { sha256: d['sha256'] as string, sha512: d['sha512'] as string } }, answer };
}

/** Compares what the server computed with what was computed here; throws on any difference. */
export function compareDigests(file: string, local: FileDigest, server: { length: number; hashes: Record<string, string> }): void {
  if (server.length !== local.length) {
    throw new CliError(`the server stored ${server.length} bytes of ${file}, but ${local.length} were sent`, { code: 'upload_mismatch' });
  }
  for (const alg of ['sha256', 'sha512'] as const) {
    const theirs = server.hashes[alg];
    if (theirs !== undefined && theirs.toLowerCase() !== local.hashes[alg]) {
      throw new CliError(`the ${alg} the server computed for ${file} differs from the one computed here`, {
        code: 'upload_mismatch',
        hint: 'the bytes were changed on the way: upload again, and check what sits between you and the server',
      });
    }
  }
}

/** The default target filename: NAME-VERSION plus the file's extension (garage-sign names targets NAME-VERSION too). */
export function defaultFilename(file: string, name: string, version: string): string {
  const ext = extname(basename(file));
  return `${name}-${version}${/^\.[A-Za-z0-9]{1,10}$/.test(ext) ? ext : ''}`;
}

/** The server's rule for target filenames (uptane-standard.md §5.2.7; attack A17). */
export function checkTargetFilename(filename: string): void {
  if (!isPublishableTargetName(filename)) {
    throw new UsageError(
      `invalid target filename ${JSON.stringify(filename.slice(0, 80))}`,
      'use 1-254 characters of A-Z a-z 0-9 . _ ~ + @ = : , - and /, with no empty, "." or ".." segment (or give --filename)',
    );
  }
}

export function checkHardwareIds(ids: readonly string[]): string[] {
  const out = [...new Set(ids.flatMap((s) => s.split(',')).map((s) => s.trim()))].filter(Boolean);
  if (out.length === 0) throw new UsageError('give at least one --hardware-id', 'images are built for hardware ids; devices only install images for theirs');
  for (const hw of out) {
    if (hw.length > 200 || !/^[A-Za-z0-9._~+@=:-]+$/.test(hw) || !isNfc(hw)) {
      throw new UsageError(`invalid hardware id ${JSON.stringify(hw.slice(0, 80))}`, 'use 1-200 characters of A-Z a-z 0-9 . _ ~ + @ = : -');
    }
  }
  return out;
}

export function uploadsPath(filename: string): string {
  return `/api/v1/user_repo/uploads/${filenamePath(filename)}`;
}
