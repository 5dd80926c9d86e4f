/**
 * The local key directory (default `./uptide-keys`): offline private keys,
 * each sealed with a passphrase (the core's encrypted key file format), a copy
 * of every root the CLI has seen or pushed, and the working files of the
 * offline targets and delegation ceremonies.
 *
 *   uptide-keys/
 *     keys/NAME.key.json             encrypted private key (mode 0600), public key in clear
 *     roots/image/N.root.json        every Image repository root, as the server served it
 *     roots/director/N.root.json     every Director root
 *     image/targets.json             the targets.json being edited (offline targets)
 *     image/targets.state.json       the role checksum and version it was pulled at
 *     delegations/NAME.json          a supplier's delegated targets being edited
 *     delegations/NAME.state.json
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  LocalSigner,
  PublicKey,
  UptaneError,
  KEY_FILE_FORMAT,
  decryptPrivateKey,
  encryptPrivateKey,
  parseJson,
  type Dialect,
  type JsonObject,
  type JsonValue,
} from '@uptide/core';
import { CliError, UsageError, type CliIo } from './io.js';

export type RepoName = 'image' | 'director';

export const KEY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface KeyInfo {
  readonly name: string;
  /** ed25519, rsa2048, … */
  readonly type: string;
  /** The public key in the uptane dialect (key id = SHA-256 of the DER SubjectPublicKeyInfo). */
  readonly publicKey: PublicKey;
}

/** Writes a file through a temporary name and a rename, so a crash never leaves half a file. */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

export function readJsonFile(path: string, what: string): JsonValue {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    throw new CliError(`cannot read ${what} ${path}`, { code: 'no_such_file' });
  }
  try {
    return parseJson(bytes);
  } catch (err) {
    throw new CliError(`${path} is not valid JSON: ${(err as Error).message}`, { code: 'malformed_json' });
  }
}

export class KeyStore {
  readonly dir: string;

  constructor(
    private readonly io: CliIo,
    dir: string | undefined,
  ) {
    this.dir = resolve(io.cwd, dir ?? io.env['UPTIDE_KEY_DIR'] ?? 'uptide-keys');
  }

  private keyPath(name: string): string {
    return join(this.dir, 'keys', `${name}.key.json`);
  }

  has(name: string): boolean {
    return KEY_NAME_RE.test(name) && existsSync(this.keyPath(name));
  }

  /** Seals a new private key under a name; refuses to overwrite one. */
  save(name: string, key: KeyObject, passphrase: string): KeyInfo {
    if (!KEY_NAME_RE.test(name)) throw new UsageError(`invalid key name ${JSON.stringify(name)}`, 'use 1-64 characters of A-Z a-z 0-9 . _ -');
    const path = this.keyPath(name);
    if (existsSync(path)) throw new CliError(`a key named ${name} exists already in ${this.dir}`, { hint: 'pick another name', code: 'key_exists' });
    // Tests lower the scrypt cost to stay fast; anyone else doing it is told what it costs.
    const nText = this.io.env['UPTIDE_KEY_SCRYPT_N'];
    const n = nText ? Number(nText) : undefined;
    if (n !== undefined) {
      if (!Number.isInteger(n) || n < 1024 || n > 1 << 20 || (n & (n - 1)) !== 0)
        throw new UsageError('UPTIDE_KEY_SCRYPT_N must be a power of two from 1024 to 1048576');
      if (n < 1 << 15) this.io.err(`warning: UPTIDE_KEY_SCRYPT_N=${n} makes the key file of ${name} cheaper to attack (meant for tests)\n`);
    }
    const file = encryptPrivateKey(key, passphrase, n !== undefined ? { scryptN: n } : {});
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, JSON.stringify(file, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
    return this.info(name);
  }

  private file(name: string): JsonObject {
    if (!this.has(name)) {
      throw new CliError(`no key named ${name} in ${this.dir}`, {
        hint: 'list the keys with "uptide keys list" (and check --key-dir or UPTIDE_KEY_DIR)',
        code: 'key_not_found',
      });
    }
    const v = readJsonFile(this.keyPath(name), 'key file');
    if (typeof v !== 'object' || v === null || Array.isArray(v) || typeof v['public'] !== 'string' || typeof v['keytype'] !== 'string') {
      throw new CliError(`${this.keyPath(name)} is not an Uptide key file`, { code: 'bad_key' });
    }
    return v;
  }

  info(name: string): KeyInfo {
    const f = this.file(name);
    return { name, type: f['keytype'] as string, publicKey: publicKeyFromKeyFile(f, 'uptane') };
  }

  list(): KeyInfo[] {
    const dir = join(this.dir, 'keys');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((f) => f.endsWith('.key.json'))
      .map((f) => f.slice(0, -'.key.json'.length))
      .filter((n) => KEY_NAME_RE.test(n))
      .sort()
      .map((n) => this.info(n));
  }

  /** The local key whose public key has this id in a dialect. */
  nameOf(keyId: string, dialect: Dialect): string | undefined {
    for (const k of this.list()) if (toDialect(k.publicKey, dialect).keyId(dialect) === keyId) return k.name;
    return undefined;
  }

  /** Opens a key with a passphrase (asked for when needed). */
  async unlock(name: string, passphrases: Passphrases): Promise<KeyObject> {
    const f = this.file(name);
    const pass = await passphrases.get(name);
    try {
      return decryptPrivateKey(f, pass);
    } catch (err) {
      if (err instanceof UptaneError && err.code === 'BAD_PASSPHRASE') {
        throw new CliError(`wrong passphrase for key ${name}`, {
          hint: 'check UPTIDE_KEY_PASSPHRASE or --passphrase-file (or type it again)',
          code: 'bad_passphrase',
        });
      }
      throw err;
    }
  }

  async signer(name: string, dialect: Dialect, passphrases: Passphrases): Promise<LocalSigner> {
    return new LocalSigner(await this.unlock(name, passphrases), dialect);
  }

  // --- roots ---------------------------------------------------------------------------------

  rootPath(repo: RepoName, version: number): string {
    return join(this.dir, 'roots', repo, `${version}.root.json`);
  }

  /** The copy of a root version kept here, if any. */
  loadRoot(repo: RepoName, version: number): Uint8Array | undefined {
    const p = this.rootPath(repo, version);
    return existsSync(p) ? readFileSync(p) : undefined;
  }

  latestRootVersion(repo: RepoName): number | undefined {
    const dir = join(this.dir, 'roots', repo);
    if (!existsSync(dir)) return undefined;
    const versions = readdirSync(dir)
      .map((f) => /^(\d+)\.root\.json$/.exec(f)?.[1])
      .filter((v): v is string => v !== undefined)
      .map(Number);
    return versions.length === 0 ? undefined : Math.max(...versions);
  }

  /**
   * Keeps a copy of a root. A different copy of the same version is an alarm:
   * the server now serves another root than the one seen before.
   */
  keepRoot(repo: RepoName, version: number, bytes: Uint8Array): void {
    const existing = this.loadRoot(repo, version);
    if (existing) {
      if (Buffer.from(existing).equals(Buffer.from(bytes))) return;
      throw new CliError(`the server serves a ${repo} root version ${version} that differs from the copy in ${this.rootPath(repo, version)}`, {
        hint: 'a root version must never change: stop, and find out who changed the server (restore from backup, or a compromise); do not sign anything until you know',
        code: 'root_changed',
      });
    }
    writeFileAtomic(this.rootPath(repo, version), bytes);
  }

  // --- working files -------------------------------------------------------------------------

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }
}

/** The public key of a key file in a dialect. */
export function publicKeyFromKeyFile(f: JsonObject, dialect: Dialect): PublicKey {
  const type = String(f['keytype']);
  const pub = String(f['public']);
  const wire = type === 'ed25519' ? 'ED25519' : type.startsWith('rsa') ? 'RSA' : undefined;
  if (!wire) throw new CliError(`unsupported key type ${type} in a key file`, { code: 'bad_key' });
  return toDialect(PublicKey.fromJSON({ keytype: wire, keyval: { public: pub } }, 'uptane'), dialect);
}

/** The same key material written in another dialect (key ids differ between dialects). */
export function toDialect(key: PublicKey, dialect: Dialect): PublicKey {
  return PublicKey.fromKeyObject(key.keyObject(), dialect);
}

/**
 * Where passphrases come from: --passphrase-file, then UPTIDE_KEY_PASSPHRASE,
 * then a prompt on the terminal (one per key). Scripts never hang on a prompt.
 */
export class Passphrases {
  private readonly cache = new Map<string, string>();

  constructor(
    private readonly io: CliIo,
    private readonly file: string | undefined,
  ) {}

  private fixed(): string | undefined {
    if (this.file !== undefined) {
      let text: string;
      try {
        text = readFileSync(resolve(this.io.cwd, this.file), 'utf8');
      } catch {
        throw new UsageError(`cannot read the passphrase file ${this.file}`);
      }
      const line = text.split(/\r?\n/)[0] ?? '';
      if (line === '') throw new UsageError(`the passphrase file ${this.file} is empty`);
      return line;
    }
    const env = this.io.env['UPTIDE_KEY_PASSPHRASE'];
    return env !== undefined && env !== '' ? env : undefined;
  }

  async get(keyName: string): Promise<string> {
    const f = this.fixed();
    if (f !== undefined) return f;
    const cached = this.cache.get(keyName);
    if (cached !== undefined) return cached;
    if (!this.io.canPrompt) throw noPassphrase();
    const p = await this.io.promptSecret(`Passphrase for key ${keyName}: `);
    this.cache.set(keyName, p);
    return p;
  }

  /** A passphrase for a new key: typed twice on a terminal. */
  async create(keyName: string): Promise<string> {
    const f = this.fixed();
    if (f !== undefined) return f;
    if (!this.io.canPrompt) throw noPassphrase();
    const a = await this.io.promptSecret(`New passphrase for key ${keyName}: `);
    if (a.length < 8) throw new UsageError('the passphrase is shorter than 8 characters', 'use a long passphrase: it is all that protects the key file');
    const b = await this.io.promptSecret('Same passphrase again: ');
    if (a !== b) throw new UsageError('the two passphrases differ');
    return a;
  }
}

function noPassphrase(): UsageError {
  return new UsageError('no passphrase for the key file', 'set UPTIDE_KEY_PASSPHRASE or give --passphrase-file FILE (there is no terminal to ask on)');
}

/**
 * A public key named on the command line: a key of the key directory, or a
 * file holding a public key (`uptide keys export-public` output, a TUF/uptane
 * key object, an Uptide key file, or a PEM "PUBLIC KEY"). Key holders only
 * hand over public keys; the private halves stay on their machines.
 */
export function resolvePublicKey(store: KeyStore, io: CliIo, spec: string, dialect: Dialect): { key: PublicKey; label: string } {
  if (store.has(spec)) return { key: toDialect(store.info(spec).publicKey, dialect), label: spec };
  const path = resolve(io.cwd, spec);
  if (!existsSync(path)) {
    throw new UsageError(
      `${spec} is neither a key in ${store.dir} nor a file`,
      'give a key name (uptide keys list) or the path of a public key file (uptide keys export-public NAME --out FILE)',
    );
  }
  const text = readFileSync(path, 'utf8');
  try {
    if (/^\s*-----BEGIN PUBLIC KEY-----/.test(text)) {
      return { key: PublicKey.fromKeyObject(createPublicKey({ key: text, format: 'pem' }), dialect), label: spec };
    }
    const v = parseJson(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    if (v['format'] === KEY_FILE_FORMAT) return { key: publicKeyFromKeyFile(v, dialect), label: spec };
    const wireDialect: Dialect = v['scheme'] !== undefined ? 'tuf' : 'uptane';
    return { key: toDialect(PublicKey.fromJSON(v, wireDialect), dialect), label: spec };
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`${spec} does not hold a public key (${(err as Error).message})`, {
      hint: 'give the output of "uptide keys export-public NAME", a key object {"keytype","keyval"} or a PEM public key',
      code: 'bad_key',
    });
  }
}
