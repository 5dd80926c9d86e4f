import { describe, expect, it } from 'vitest';
import { ConfigError } from '../config/config.js';
import { parseSecondaryConfigText } from './config.js';

const FULL = `
[secondary]
storage = "state"
hardware_id = "board-b"
verification = "full"

[network]
port = 9050

[trust]
director_root = "director-root.json"
image_root = "image-root.json"

[installer]
type = "file"
path = "/var/lib/app/image.bin"
`;

const parse = (text: string) => parseSecondaryConfigText(text, '/etc/uptide/uptide-secondary.toml');

function error(text: string): ConfigError {
  try {
    parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('uptide-secondary configuration', () => {
  it('reads a full-verification Secondary with defaults, paths relative to the file', () => {
    const c = parse(FULL);
    expect(c.secondary).toEqual({
      storage: '/etc/uptide/state',
      ecuSerial: undefined,
      hardwareId: 'board-b',
      keyType: 'ed25519',
      verification: 'full',
      logLevel: undefined,
    });
    expect(c.network).toEqual({ host: '0.0.0.0', port: 9050, primary: undefined, idleTimeoutSeconds: 60, messageTimeoutSeconds: 30, maxConnections: 8 });
    expect(c.trust).toEqual({ directorRoot: '/etc/uptide/director-root.json', imageRoot: '/etc/uptide/image-root.json' });
    expect(c.limits.maxImageBytes).toBe(16 * 1024 ** 3);
    expect(c.installer).toEqual({ type: 'file', path: '/var/lib/app/image.bin' });
  });

  it('reads the Primary to announce to, a key type and a command installer', () => {
    const c = parse(
      FULL.replace('port = 9050', 'port = 0\nhost = "192.168.0.11"\nprimary = "192.168.0.10:9040"')
        .replace('verification = "full"', 'verification = "full"\nkey_type = "rsa3072"\necu_serial = "sec-1"')
        .replace('type = "file"\npath = "/var/lib/app/image.bin"', 'type = "command"\ncommand = ["./flash.sh"]'),
    );
    expect(c.network).toMatchObject({ host: '192.168.0.11', port: 0, primary: { host: '192.168.0.10', port: 9040 } });
    expect(c.secondary).toMatchObject({ keyType: 'rsa3072', ecuSerial: 'sec-1' });
    expect(c.installer).toEqual({ type: 'command', command: ['/etc/uptide/flash.sh'], timeoutSeconds: 3600 });
  });

  it('holds the roots each kind needs: the Image root for full verification only', () => {
    expect(error(FULL.replace('image_root = "image-root.json"\n', '')).key).toBe('trust.image_root');
    const partial = FULL.replace('verification = "full"', 'verification = "partial"');
    expect(error(partial).key).toBe('trust.image_root');
    expect(parse(partial.replace('image_root = "image-root.json"\n', '')).trust).toEqual({
      directorRoot: '/etc/uptide/director-root.json',
      imageRoot: undefined,
    });
    expect(error(FULL.replace('director_root = "director-root.json"\n', '')).key).toBe('trust.director_root');
  });

  it('names what is missing, misspelt or wrong, and how to fix it', () => {
    expect(error(FULL.replace('verification = "full"\n', '')).key).toBe('secondary.verification');
    expect(error(FULL.replace('verification = "full"', 'verification = "tuf"')).message).toContain('"full"');
    expect(error(FULL.replace('port = 9050\n', '')).key).toBe('network.port');
    expect(error(FULL.replace('port = 9050', 'port = 70000')).key).toBe('network.port');
    expect(error(FULL.replace('port = 9050', 'port = 9050\nprimary = "nohost"')).key).toBe('network.primary');
    expect(error(FULL.replace('hardware_id', 'hardwareid')).message).toContain('did you mean hardware_id?');
    expect(error(FULL + '\n[uptane]\necu_serial = "x"\n').key).toBe('uptane');
    expect(error(FULL.replace('[network]', '[network]\nmax_connections = 0')).key).toBe('network.max_connections');
    expect(error('[secondary\n').message).toContain('not valid TOML');
  });
});
