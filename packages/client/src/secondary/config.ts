/**
 * `uptide-secondary`'s configuration file, read as strictly as the Primary's
 * (config/config.ts): an unknown or missing key is an error that names it and
 * says how to fix it. Relative paths resolve against the file's directory.
 * The schema is documented in docs/secondaries.md.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { DEFAULT_LIMITS } from '@uptide/core';
import { ConfigError, ECU_KEY_TYPES, parseAddress, parseInstaller, Section, type EcuKeyType, type InstallerSection } from '../config/config.js';
import { isLogLevel, type LogLevel } from '../primary/log.js';

export type VerificationType = 'full' | 'partial';

export interface SecondaryEcuSection {
  /** Directory for all persistent state. */
  readonly storage: string;
  /** Default: the key id of the ECU key (as aktualizr-secondary does); kept once chosen. */
  readonly ecuSerial: string | undefined;
  readonly hardwareId: string;
  readonly keyType: EcuKeyType;
  /** `full`: both repositories, the Standard's full verification; `partial`: Director targets against the Director root it holds. */
  readonly verification: VerificationType;
  readonly logLevel: LogLevel | undefined;
}

export interface SecondaryNetworkSection {
  /** Listening address (default 0.0.0.0, as aktualizr-secondary). */
  readonly host: string;
  /** Listening port; 0 lets the system pick one (it is logged). */
  readonly port: number;
  /** The Primary's `secondaries_wait_port`, announced to at start-up (aktualizr-secondary's `primary_ip`/`primary_port`). */
  readonly primary: { readonly host: string; readonly port: number } | undefined;
  readonly idleTimeoutSeconds: number;
  readonly messageTimeoutSeconds: number;
  readonly maxConnections: number;
}

export interface SecondaryTrustSection {
  /** The Director's initial root, provisioned at installation (§5.4.1). */
  readonly directorRoot: string;
  /** The Image repository's initial root (full verification only). */
  readonly imageRoot: string | undefined;
}

export interface SecondaryLimitsSection {
  readonly rootBytes: number;
  readonly timestampBytes: number;
  readonly snapshotBytes: number;
  readonly directorTargetsBytes: number;
  readonly imageTargetsBytes: number;
  /** Largest image this ECU accepts, whatever the metadata says. */
  readonly maxImageBytes: number;
}

export interface SecondaryConfig {
  readonly file: string;
  readonly secondary: SecondaryEcuSection;
  readonly network: SecondaryNetworkSection;
  readonly trust: SecondaryTrustSection;
  readonly limits: SecondaryLimitsSection;
  readonly installer: InstallerSection;
}

type Table = Record<string, unknown>;

/** Validates a parsed TOML document; `file` is the configuration file's path. */
export function parseSecondaryConfig(doc: Table, file: string): SecondaryConfig {
  const path = resolve(file);
  const baseDir = dirname(path);
  const root = new Section('', doc, baseDir);

  const sec = root.table('secondary', true, 'add a [secondary] table with storage, hardware_id and verification');
  const secondary: SecondaryEcuSection = {
    storage: sec.path('storage', 'set storage = "<directory for state>" under [secondary], e.g. "/var/lib/uptide-secondary"'),
    ecuSerial: sec.string('ecu_serial', 'give the ECU serial as a string', true),
    hardwareId: sec.string('hardware_id', 'set hardware_id = "<hardware id>" under [secondary]; images are built for a hardware id'),
    keyType: sec.oneOf('key_type', ECU_KEY_TYPES, 'ed25519'),
    verification: sec.oneOf(
      'verification',
      ['full', 'partial'] as const,
      undefined,
      'set verification = "full" (both repositories) or "partial" (Director only)',
    ),
    logLevel: (() => {
      const l = sec.string('log_level', 'use "error", "warn", "info" or "debug"', true);
      if (l !== undefined && !isLogLevel(l)) throw sec.invalid('log_level', `is ${JSON.stringify(l)}`, 'use "error", "warn", "info" or "debug"');
      return l as LogLevel | undefined;
    })(),
  };
  if (secondary.ecuSerial !== undefined && secondary.ecuSerial.length > 64) {
    throw sec.invalid('ecu_serial', 'is longer than 64 characters', 'use a serial of 1 to 64 characters (OTA CE refuses longer ones)');
  }
  if (secondary.hardwareId.length > 200) throw sec.invalid('hardware_id', 'is longer than 200 characters', 'use at most 200 characters');
  sec.finish();

  const net = root.table('network', true, 'add a [network] table with port = <listening port>');
  if (!net.has('port')) throw net.missing('port', 'set port = <TCP port> under [network], the address the Primary lists in its [[secondaries]]');
  const port = net.number('port', 0, { integer: true, unit: 'a TCP port; 0: any free port' });
  if (port > 65535) throw net.invalid('port', 'is not a TCP port', 'use a port from 0 to 65535');
  const primaryAddress = net.string('primary', 'give the Primary\'s wait port as "host:port"', true);
  const network: SecondaryNetworkSection = {
    host: net.string('host', 'give the listening address, e.g. "0.0.0.0"', true) ?? '0.0.0.0',
    port,
    primary: primaryAddress === undefined ? undefined : parseAddress(net, primaryAddress, 'primary'),
    idleTimeoutSeconds: net.number('idle_timeout', 60, { min: 0.01, unit: 'seconds' }),
    messageTimeoutSeconds: net.number('message_timeout', 30, { min: 0.01, unit: 'seconds' }),
    maxConnections: net.number('max_connections', 8, { min: 1, integer: true, unit: 'connections' }),
  };
  net.finish();

  const tr = root.table('trust', true, 'add a [trust] table with director_root = "<file>" (and image_root for full verification)');
  const trust: SecondaryTrustSection = {
    directorRoot: tr.path('director_root', 'set director_root = "<file>" under [trust] to the Director\'s 1.root.json (provisioned at installation)'),
    imageRoot: tr.path('image_root', "give the path of the Image repository's root metadata", true),
  };
  if (secondary.verification === 'full' && trust.imageRoot === undefined) {
    throw tr.missing('image_root', 'full verification checks the Image repository too: set image_root = "<file>" under [trust] to its 1.root.json');
  }
  if (secondary.verification === 'partial' && trust.imageRoot !== undefined) {
    throw tr.invalid('image_root', 'is set, but partial verification does not use the Image repository', 'remove image_root, or set verification = "full"');
  }
  tr.finish();

  const lim = root.table('limits', false) ?? new Section('limits', {}, baseDir);
  const bytes = (key: string, dflt: number): number => lim.number(key, dflt, { min: 1, integer: true, unit: 'bytes' });
  const limits: SecondaryLimitsSection = {
    rootBytes: bytes('root_bytes', DEFAULT_LIMITS.rootBytes),
    timestampBytes: bytes('timestamp_bytes', DEFAULT_LIMITS.timestampBytes),
    snapshotBytes: bytes('snapshot_bytes', DEFAULT_LIMITS.snapshotBytes),
    directorTargetsBytes: bytes('director_targets_bytes', DEFAULT_LIMITS.directorTargetsBytes),
    imageTargetsBytes: bytes('image_targets_bytes', DEFAULT_LIMITS.imageTargetsBytes),
    maxImageBytes: bytes('max_image_bytes', 16 * 1024 ** 3),
  };
  lim.finish();

  const installer = parseInstaller(root, baseDir);
  root.finish();
  return { file: path, secondary, network, trust, limits, installer };
}

/** Parses TOML text; syntax errors name the line. */
export function parseSecondaryConfigText(text: string, file: string): SecondaryConfig {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (err) {
    if (err instanceof TomlError)
      throw new ConfigError(`${file}: not valid TOML: ${err.message.split('\n')[0]}`, undefined, `fix the syntax at line ${err.line}`);
    throw err;
  }
  try {
    return parseSecondaryConfig(doc, file);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${file}: ${err.message}`, err.key);
    throw err;
  }
}

/** Reads and validates a configuration file. */
export function loadSecondaryConfig(file: string): SecondaryConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the configuration file ${file}: ${(err as Error).message}`, undefined, 'check the --config path');
  }
  return parseSecondaryConfigText(text, file);
}
