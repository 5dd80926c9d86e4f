/**
 * Table types for Kysely. One schema serves SQLite and PostgreSQL: booleans are
 * integers (0/1), times are epoch milliseconds (bigint), JSON is text and
 * signed metadata is stored as the exact bytes that were hashed and served.
 */
import type { Generated } from 'kysely';

export interface NamespaceTable {
  name: string;
  created_at: number;
}

/** Server-wide settings (key-encryption salt, the check value of the passphrase…). */
export interface SettingTable {
  key: string;
  value: string;
}

export interface ApiTokenTable {
  id: string;
  namespace: string;
  name: string;
  /** SHA-256 of the token: tokens are 256-bit random values, so a fast hash is enough. */
  token_hash: string;
  /** 1: may manage namespaces and tokens of every namespace. */
  system: number;
  created_at: number;
  revoked_at: number | null;
  last_used_at: number | null;
}

/** One row per repository (`image` or `director`) of a namespace. */
export interface RepositoryTable {
  namespace: string;
  repo: string;
  dialect: string;
  /** 1 when the targets key is offline: the server only accepts client-signed targets.json. */
  targets_offline: number;
  created_at: number;
}

/** Keys the repository roles use; online ones keep their private key sealed with the server's key. */
export interface KeyTable {
  namespace: string;
  repo: string;
  role: string;
  key_id: string;
  public_json: string;
  /** Sealed PKCS#8 of the private key; null once taken offline (or for a key that was only ever offline). */
  private_sealed: string | null;
  created_at: number;
}

/** Every root version of a repository (served as N.root.json). */
export interface RootTable {
  namespace: string;
  repo: string;
  version: number;
  bytes: Uint8Array;
  expires_at: number;
  created_at: number;
}

/**
 * The current signed file of a role: Image repository targets/snapshot/timestamp and
 * delegated roles (`owner` = ''), Director targets/snapshot/timestamp per device (`owner` = device id).
 */
export interface RoleMetadataTable {
  namespace: string;
  repo: string;
  owner: string;
  role: string;
  version: number;
  bytes: Uint8Array;
  /** SHA-256 of bytes (ETag, and the x-ats-role-checksum of targets). */
  checksum: string;
  expires_at: number;
  /** 1 when the content must be regenerated before it is served again. */
  outdated: number;
  updated_at: number;
}

/** Image repository targets (what targets.json lists), with where their bytes are. */
export interface TargetTable {
  namespace: string;
  filename: string;
  length: number;
  sha256: string;
  /** All hashes as JSON ({"sha256": …, "sha512": …}). */
  hashes_json: string;
  /** The target's `custom` object as JSON. */
  custom_json: string;
  name: string | null;
  version: string | null;
  /** Comma-free JSON array of hardware ids (for queries and listings). */
  hardware_ids_json: string;
  release_counter: number | null;
  blob_id: string | null;
  uri: string | null;
  created_at: number;
  updated_at: number;
}

/** Bytes uploaded for offline-signed targets, before a signed targets.json lists them. */
export interface UploadTable {
  namespace: string;
  filename: string;
  length: number;
  sha256: string;
  hashes_json: string;
  blob_id: string;
  created_at: number;
}

export interface DeviceTable {
  namespace: string;
  id: string;
  name: string;
  device_type: string;
  created_at: number;
  activated_at: number | null;
  last_seen_at: number | null;
  primary_ecu_serial: string | null;
  /** Bumped on every change that must regenerate the device's Director metadata. */
  director_generation: number;
}

export interface DeviceCredentialTable {
  namespace: string;
  serial: string;
  device_id: string;
  /** `device` or `bootstrap` (fleet shared-credential). */
  kind: string;
  fingerprint: string;
  not_after: number;
  created_at: number;
  revoked_at: number | null;
}

export interface EcuTable {
  namespace: string;
  device_id: string;
  serial: string;
  hardware_id: string;
  is_primary: number;
  public_key_json: string;
  key_id: string;
  /** Highest report_counter accepted from this ECU (replay protection). */
  report_counter: number | null;
  last_nonce: string | null;
  /** SHA-256 of the canonical payload of the last accepted report (a cached resend is recognised, not replayed). */
  last_report_sha256: string | null;
  installed_filename: string | null;
  installed_length: number | null;
  installed_hashes_json: string | null;
  installed_at: number | null;
  created_at: number;
}

export interface EcuReplacementTable {
  id: Generated<number>;
  namespace: string;
  device_id: string;
  /** JSON of the ECU set before and after. */
  before_json: string;
  after_json: string;
  created_at: number;
}

/** Multi-target updates (OTA CE's MTU): an image per hardware id. */
export interface UpdateTable {
  id: string;
  namespace: string;
  name: string | null;
  /** JSON: { "<hwid>": { "to": {target, checksum, targetLength, uri}, "from": …, "targetFormat": … } } */
  targets_json: string;
  created_at: number;
}

export interface AssignmentTable {
  id: string;
  namespace: string;
  device_id: string;
  ecu_serial: string;
  update_id: string;
  correlation_id: string;
  filename: string;
  length: number;
  hashes_json: string;
  hardware_id: string;
  uri: string | null;
  release_counter: number | null;
  /** assigned → in_flight → completed | failed; assigned → cancelled. */
  status: string;
  result_code: string | null;
  result_description: string | null;
  created_at: number;
  updated_at: number;
}

export interface GroupTable {
  id: string;
  namespace: string;
  name: string;
  created_at: number;
}

export interface GroupMemberTable {
  group_id: string;
  namespace: string;
  device_id: string;
  created_at: number;
}

export interface EventTable {
  namespace: string;
  id: string;
  device_id: string;
  event_type: string;
  event_version: number;
  device_time: string;
  received_at: number;
  ecu: string | null;
  correlation_id: string | null;
  payload_json: string;
}

export interface InstallationReportTable {
  id: Generated<number>;
  namespace: string;
  device_id: string;
  correlation_id: string;
  success: number;
  code: string;
  description: string;
  raw_report: string;
  items_json: string;
  received_at: number;
}

/** Attacks reported by ECUs (attacks_detected) and refused manifests. */
export interface SecurityEventTable {
  id: Generated<number>;
  namespace: string;
  device_id: string;
  ecu_serial: string | null;
  /** `reported` (by an ECU) or `refused` (a manifest the Director refused). */
  source: string;
  code: string;
  message: string;
  repository: string | null;
  role: string | null;
  created_at: number;
}

/** Opaque device reports: hardware, network, config, packages. */
export interface DeviceReportTable {
  namespace: string;
  device_id: string;
  kind: string;
  body: string;
  updated_at: number;
}

export interface LeaseTable {
  name: string;
  holder: string;
  expires_at: number;
}

export interface DB {
  namespaces: NamespaceTable;
  settings: SettingTable;
  api_tokens: ApiTokenTable;
  repositories: RepositoryTable;
  keys: KeyTable;
  roots: RootTable;
  role_metadata: RoleMetadataTable;
  targets: TargetTable;
  uploads: UploadTable;
  devices: DeviceTable;
  device_credentials: DeviceCredentialTable;
  ecus: EcuTable;
  ecu_replacements: EcuReplacementTable;
  updates: UpdateTable;
  assignments: AssignmentTable;
  device_groups: GroupTable;
  group_members: GroupMemberTable;
  events: EventTable;
  installation_reports: InstallationReportTable;
  security_events: SecurityEventTable;
  device_reports: DeviceReportTable;
  leases: LeaseTable;
}
