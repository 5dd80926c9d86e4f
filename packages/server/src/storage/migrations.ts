/**
 * Schema migrations, written with Kysely's schema builder so one list serves
 * SQLite and PostgreSQL. Append new migrations; never edit a released one.
 */
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import type { SqlDialect } from './database.js';

function bytesType(dialect: SqlDialect): 'blob' | 'bytea' {
  return dialect === 'postgres' ? 'bytea' : 'blob';
}

function migrations(dialect: SqlDialect): Record<string, Migration> {
  const bytes = bytesType(dialect);
  return {
    '0001_initial': {
      async up(db: Kysely<unknown>): Promise<void> {
        await db.schema
          .createTable('namespaces')
          .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('settings')
          .addColumn('key', 'varchar(128)', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('api_tokens')
          .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('name', 'varchar(200)', (c) => c.notNull())
          .addColumn('token_hash', 'varchar(64)', (c) => c.notNull().unique())
          .addColumn('system', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('revoked_at', 'bigint')
          .addColumn('last_used_at', 'bigint')
          .execute();
        await db.schema
          .createTable('repositories')
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('repo', 'varchar(16)', (c) => c.notNull())
          .addColumn('dialect', 'varchar(16)', (c) => c.notNull())
          .addColumn('targets_offline', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('repositories_pk', ['namespace', 'repo'])
          .execute();
        await db.schema
          .createTable('keys')
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('repo', 'varchar(16)', (c) => c.notNull())
          .addColumn('role', 'varchar(16)', (c) => c.notNull())
          .addColumn('key_id', 'varchar(64)', (c) => c.notNull())
          .addColumn('public_json', 'text', (c) => c.notNull())
          .addColumn('private_sealed', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('keys_pk', ['namespace', 'repo', 'role', 'key_id'])
          .execute();
        await db.schema
          .createTable('roots')
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('repo', 'varchar(16)', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('bytes', bytes, (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('roots_pk', ['namespace', 'repo', 'version'])
          .execute();
        await db.schema
          .createTable('role_metadata')
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('repo', 'varchar(16)', (c) => c.notNull())
          .addColumn('owner', 'varchar(128)', (c) => c.notNull())
          .addColumn('role', 'varchar(255)', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('bytes', bytes, (c) => c.notNull())
          .addColumn('checksum', 'varchar(64)', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('outdated', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('role_metadata_pk', ['namespace', 'repo', 'owner', 'role'])
          .execute();
        await db.schema.createIndex('role_metadata_expiry').on('role_metadata').columns(['expires_at']).execute();
        await db.schema
          .createTable('targets')
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('filename', 'varchar(512)', (c) => c.notNull())
          .addColumn('length', 'bigint', (c) => c.notNull())
          .addColumn('sha256', 'varchar(64)', (c) => c.notNull())
          .addColumn('hashes_json', 'text', (c) => c.notNull())
          .addColumn('custom_json', 'text', (c) => c.notNull())
          .addColumn('name', 'varchar(255)')
          .addColumn('version', 'varchar(255)')
          .addColumn('hardware_ids_json', 'text', (c) => c.notNull())
          .addColumn('release_counter', 'bigint')
          .addColumn('blob_id', 'varchar(128)')
          .addColumn('uri', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('targets_pk', ['namespace', 'filename'])
          .execute();
        await db.schema.createIndex('targets_name_version').on('targets').columns(['namespace', 'name', 'version']).execute();
        await db.schema
          .createTable('uploads')
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('filename', 'varchar(512)', (c) => c.notNull())
          .addColumn('length', 'bigint', (c) => c.notNull())
          .addColumn('sha256', 'varchar(64)', (c) => c.notNull())
          .addColumn('hashes_json', 'text', (c) => c.notNull())
          .addColumn('blob_id', 'varchar(128)', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('uploads_pk', ['namespace', 'filename'])
          .execute();
        await db.schema
          .createTable('devices')
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('id', 'varchar(128)', (c) => c.notNull())
          .addColumn('name', 'varchar(255)', (c) => c.notNull())
          .addColumn('device_type', 'varchar(64)', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('activated_at', 'bigint')
          .addColumn('last_seen_at', 'bigint')
          .addColumn('primary_ecu_serial', 'varchar(64)')
          .addColumn('director_generation', 'integer', (c) => c.notNull().defaultTo(0))
          .addPrimaryKeyConstraint('devices_pk', ['namespace', 'id'])
          .execute();
        await db.schema
          .createTable('device_credentials')
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('serial', 'varchar(64)', (c) => c.notNull())
          .addColumn('device_id', 'varchar(128)', (c) => c.notNull())
          .addColumn('kind', 'varchar(16)', (c) => c.notNull())
          .addColumn('fingerprint', 'varchar(128)', (c) => c.notNull())
          .addColumn('not_after', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('revoked_at', 'bigint')
          .addPrimaryKeyConstraint('device_credentials_pk', ['namespace', 'serial'])
          .execute();
        await db.schema.createIndex('device_credentials_device').on('device_credentials').columns(['namespace', 'device_id']).execute();
        await db.schema
          .createTable('ecus')
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('device_id', 'varchar(128)', (c) => c.notNull())
          .addColumn('serial', 'varchar(64)', (c) => c.notNull())
          .addColumn('hardware_id', 'varchar(200)', (c) => c.notNull())
          .addColumn('is_primary', 'integer', (c) => c.notNull())
          .addColumn('public_key_json', 'text', (c) => c.notNull())
          .addColumn('key_id', 'varchar(64)', (c) => c.notNull())
          .addColumn('report_counter', 'bigint')
          .addColumn('last_nonce', 'varchar(255)')
          .addColumn('last_report_sha256', 'varchar(64)')
          .addColumn('installed_filename', 'varchar(512)')
          .addColumn('installed_length', 'bigint')
          .addColumn('installed_hashes_json', 'text')
          .addColumn('installed_at', 'bigint')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('ecus_pk', ['namespace', 'device_id', 'serial'])
          .execute();
        await db.schema.createIndex('ecus_hardware').on('ecus').columns(['namespace', 'hardware_id']).execute();
        await db.schema
          .createTable('ecu_replacements')
          .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('device_id', 'varchar(128)', (c) => c.notNull())
          .addColumn('before_json', 'text', (c) => c.notNull())
          .addColumn('after_json', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('updates')
          .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('name', 'varchar(255)')
          .addColumn('targets_json', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('assignments')
          .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('device_id', 'varchar(128)', (c) => c.notNull())
          .addColumn('ecu_serial', 'varchar(64)', (c) => c.notNull())
          .addColumn('update_id', 'varchar(64)', (c) => c.notNull())
          .addColumn('correlation_id', 'varchar(255)', (c) => c.notNull())
          .addColumn('filename', 'varchar(512)', (c) => c.notNull())
          .addColumn('length', 'bigint', (c) => c.notNull())
          .addColumn('hashes_json', 'text', (c) => c.notNull())
          .addColumn('hardware_id', 'varchar(200)', (c) => c.notNull())
          .addColumn('uri', 'text')
          .addColumn('release_counter', 'bigint')
          .addColumn('status', 'varchar(16)', (c) => c.notNull())
          .addColumn('result_code', 'varchar(64)')
          .addColumn('result_description', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('assignments_device').on('assignments').columns(['namespace', 'device_id', 'status']).execute();
        await db.schema.createIndex('assignments_update').on('assignments').columns(['update_id']).execute();
        // At most one active assignment per ECU (a new update is never assigned over one in flight).
        await db.schema
          .createIndex('assignments_one_active')
          .on('assignments')
          .columns(['namespace', 'device_id', 'ecu_serial'])
          .unique()
          .where(sql.ref('status'), 'in', ['assigned', 'in_flight'])
          .execute();
        await db.schema
          .createTable('device_groups')
          .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('name', 'varchar(200)', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addUniqueConstraint('device_groups_name', ['namespace', 'name'])
          .execute();
        await db.schema
          .createTable('group_members')
          .addColumn('group_id', 'varchar(64)', (c) => c.notNull())
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('device_id', 'varchar(128)', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('group_members_pk', ['group_id', 'device_id'])
          .execute();
        await db.schema
          .createTable('events')
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('id', 'varchar(128)', (c) => c.notNull())
          .addColumn('device_id', 'varchar(128)', (c) => c.notNull())
          .addColumn('event_type', 'varchar(128)', (c) => c.notNull())
          .addColumn('event_version', 'integer', (c) => c.notNull())
          .addColumn('device_time', 'varchar(64)', (c) => c.notNull())
          .addColumn('received_at', 'bigint', (c) => c.notNull())
          .addColumn('ecu', 'varchar(64)')
          .addColumn('correlation_id', 'varchar(255)')
          .addColumn('payload_json', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('events_pk', ['namespace', 'device_id', 'id'])
          .execute();
        await db.schema.createIndex('events_device_time').on('events').columns(['namespace', 'device_id', 'received_at']).execute();
        await db.schema
          .createTable('installation_reports')
          .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('device_id', 'varchar(128)', (c) => c.notNull())
          .addColumn('correlation_id', 'varchar(255)', (c) => c.notNull())
          .addColumn('success', 'integer', (c) => c.notNull())
          .addColumn('code', 'varchar(255)', (c) => c.notNull())
          .addColumn('description', 'text', (c) => c.notNull())
          .addColumn('raw_report', 'text', (c) => c.notNull())
          .addColumn('items_json', 'text', (c) => c.notNull())
          .addColumn('received_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('installation_reports_device').on('installation_reports').columns(['namespace', 'device_id']).execute();
        await db.schema
          .createTable('security_events')
          .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('device_id', 'varchar(128)', (c) => c.notNull())
          .addColumn('ecu_serial', 'varchar(64)')
          .addColumn('source', 'varchar(16)', (c) => c.notNull())
          .addColumn('code', 'varchar(64)', (c) => c.notNull())
          .addColumn('message', 'text', (c) => c.notNull())
          .addColumn('repository', 'varchar(32)')
          .addColumn('role', 'varchar(255)')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('security_events_device').on('security_events').columns(['namespace', 'device_id']).execute();
        await db.schema
          .createTable('device_reports')
          .addColumn('namespace', 'varchar(64)', (c) => c.notNull())
          .addColumn('device_id', 'varchar(128)', (c) => c.notNull())
          .addColumn('kind', 'varchar(32)', (c) => c.notNull())
          .addColumn('body', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('device_reports_pk', ['namespace', 'device_id', 'kind'])
          .execute();
        await db.schema
          .createTable('leases')
          .addColumn('name', 'varchar(128)', (c) => c.primaryKey())
          .addColumn('holder', 'varchar(128)', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
  };
}

export class StaticMigrationProvider implements MigrationProvider {
  constructor(private readonly dialect: SqlDialect) {}
  getMigrations(): Promise<Record<string, Migration>> {
    return Promise.resolve(migrations(this.dialect));
  }
}
