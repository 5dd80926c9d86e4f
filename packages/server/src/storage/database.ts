/**
 * Opens the database named by `UPTIDE_DATABASE_URL` and runs migrations:
 * `sqlite:<path>` (the embedded default, better-sqlite3) or `postgres://…`
 * (scale-out: several server instances on one database).
 *
 * One Kysely query layer serves both: the differences (row locks, bytes and
 * integer types) are handled where they occur, so the same storage code and
 * the same tests run on both engines.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from 'kysely';
import type { DB } from './schema.js';
import { StaticMigrationProvider } from './migrations.js';

export type SqlDialect = 'sqlite' | 'postgres';

export interface Database {
  readonly db: Kysely<DB>;
  readonly dialect: SqlDialect;
  /** A safe description of where the data lives (no password). */
  readonly description: string;
  close(): Promise<void>;
  /**
   * PostgreSQL only: LISTEN on a channel with a dedicated connection, calling
   * `onLost` whenever the connection drops (notifications may have been
   * missed) and reconnecting. Returns a function that stops listening.
   */
  listen?(channel: string, onMessage: (payload: string) => void, onLost: () => void): Promise<() => Promise<void>>;
  /**
   * PostgreSQL only: one statement, committed on its own, as a named prepared statement (parsed and planned
   * once per connection instead of every time; Kysely has no way to name a statement). For hot paths only.
   */
  preparedQuery?<R>(name: string, text: string, values: readonly unknown[]): Promise<R[]>;
}

export interface OpenOptions {
  /** PostgreSQL only: use (and create) this schema, for isolated tests. */
  readonly schema?: string;
  /** PostgreSQL pool size (default 10). */
  readonly poolSize?: number;
}

export async function openDatabase(url: string, options: OpenOptions = {}): Promise<Database> {
  if (url.startsWith('sqlite:')) return openSqlite(url.slice('sqlite:'.length));
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return openPostgres(url, options);
  throw new Error(`unsupported database URL ${redact(url)}: use sqlite:<path> or postgres://…`);
}

async function openSqlite(path: string): Promise<Database> {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const raw = new BetterSqlite3(path);
  raw.pragma('journal_mode = WAL');
  // NORMAL in WAL mode never loses a committed transaction when the process dies; only an OS crash can lose the last ones.
  raw.pragma('synchronous = NORMAL');
  raw.pragma('foreign_keys = ON');
  raw.pragma('busy_timeout = 5000');
  const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: withStatementCache(raw) }) });
  await migrate(db, 'sqlite');
  return { db, dialect: 'sqlite', description: `sqlite:${path}`, close: () => db.destroy() };
}

/**
 * Kysely's SQLite driver prepares every query anew; compiling the statement cost as much as running it on
 * the manifest path. Statements are kept by SQL text (parameters are bound per run), a bounded number.
 * Safe because we never stream results (a statement being iterated cannot be run again meanwhile).
 */
function withStatementCache(raw: BetterSqlite3.Database, max = 512): { prepare(sql: string): BetterSqlite3.Statement; close(): void } {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    prepare(sql: string): BetterSqlite3.Statement {
      let stmt = cache.get(sql);
      if (stmt === undefined) {
        stmt = raw.prepare(sql);
        if (cache.size >= max) cache.delete(cache.keys().next().value as string);
        cache.set(sql, stmt);
      }
      return stmt;
    },
    close: () => raw.close(),
  };
}

async function openPostgres(url: string, options: OpenOptions): Promise<Database> {
  const schema = options.schema;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error('invalid schema name');
  if (schema) {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query(`create schema if not exists ${schema}`);
    } finally {
      await admin.end();
    }
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
    // int8 (bigint) as a JS number: our values (epoch ms, lengths, counters) stay below 2^53.
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  await migrate(db, 'postgres', schema);
  return {
    db,
    dialect: 'postgres',
    description: redact(url) + (schema ? ` (schema ${schema})` : ''),
    close: () => db.destroy(),
    listen: (channel, onMessage, onLost) => listenPostgres(url, channel, onMessage, onLost),
    preparedQuery: async <R>(name: string, text: string, values: readonly unknown[]) =>
      (await pool.query<R & pg.QueryResultRow>({ name, text, values: [...values] })).rows as R[],
  };
}

async function listenPostgres(url: string, channel: string, onMessage: (payload: string) => void, onLost: () => void): Promise<() => Promise<void>> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) throw new Error('invalid channel name');
  let stopped = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: url });
    c.on('notification', (n) => {
      if (n.channel === channel) onMessage(n.payload ?? '');
    });
    const lost = () => {
      if (client !== c) return;
      client = undefined;
      onLost();
      if (!stopped) retry = setTimeout(() => void connect().catch(() => undefined), 1000);
    };
    c.on('error', lost);
    c.on('end', lost);
    client = c;
    try {
      await c.connect();
      await c.query(`listen ${channel}`);
    } catch (err) {
      lost();
      throw err;
    }
  };
  await connect();
  return async () => {
    stopped = true;
    if (retry) clearTimeout(retry);
    const c = client;
    client = undefined;
    await c?.end().catch(() => undefined);
  };
}

async function migrate(db: Kysely<DB>, dialect: SqlDialect, schema?: string): Promise<void> {
  const migrator = new Migrator({ db, provider: new StaticMigrationProvider(dialect), ...(schema ? { migrationTableSchema: schema } : {}) });
  // Several instances may start together on one PostgreSQL: Kysely's migrator takes an advisory lock.
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** Drops a PostgreSQL test schema. */
export async function dropPostgresSchema(url: string, schema: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error('invalid schema name');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`drop schema if exists ${schema} cascade`);
  } finally {
    await c.end();
  }
}

export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

export { sql };
