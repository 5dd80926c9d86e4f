import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, endpoints, loadConfig, parseConfigText } from './config.js';

const MINIMAL = `
[device]
storage = "state"

[server]
gateway = "https://gw.example.com:8443/"

[tls]
ca = "ca.pem"
cert = "client.pem"
key = "pkey.pem"

[trust]
director_root = "roots/director.json"
image_root = "roots/image.json"

[primary]
hardware_id = "board-a"

[installer]
type = "file"
path = "/var/lib/app/image.bin"
`;

function parse(text: string): ReturnType<typeof parseConfigText> {
  return parseConfigText(text, '/etc/uptide/uptide-device.toml');
}

function error(text: string): ConfigError {
  try {
    parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('reads a minimal file with defaults, resolving relative paths against its directory', () => {
    const c = parse(MINIMAL);
    expect(c.device.storage).toBe('/etc/uptide/state');
    expect(c.device.pollIntervalSeconds).toBe(10);
    expect(c.server.gateway).toBe('https://gw.example.com:8443');
    expect(c.tls).toEqual({ ca: '/etc/uptide/ca.pem', cert: '/etc/uptide/client.pem', key: '/etc/uptide/pkey.pem' });
    expect(c.trust).toEqual({
      directorRoot: '/etc/uptide/roots/director.json',
      imageRoot: '/etc/uptide/roots/image.json',
      trustOnFirstUse: false,
      requireVehicleId: true,
    });
    expect(c.primary).toEqual({ ecuSerial: undefined, hardwareId: 'board-a', keyType: 'ed25519' });
    expect(c.limits.timestampBytes).toBe(64 * 1024);
    expect(c.limits.imageTargetsBytes).toBe(8 * 1024 * 1024);
    expect(c.limits.minSpeedBytesPerSecond).toBe(1024);
    expect(c.limits.minSpeedWindowSeconds).toBe(10);
    expect(c.installer).toEqual({ type: 'file', path: '/var/lib/app/image.bin' });
    expect(c.secondaries).toEqual([]);
    expect(c.server.delegationsPath).toBe('delegations/');
    expect(endpoints(c)).toEqual({
      gateway: 'https://gw.example.com:8443',
      director: 'https://gw.example.com:8443/director',
      repo: 'https://gw.example.com:8443/repo',
      provisioning: 'https://gw.example.com:8443',
    });
  });

  it('takes separate Director and Image repository URLs, as aktualizr does', () => {
    const c = parse(MINIMAL.replace('[server]', '[server]\ndirector = "https://d.example.com/api/director"\nrepo = "https://r.example.com/repo/"'));
    expect(endpoints(c).director).toBe('https://d.example.com/api/director');
    expect(endpoints(c).repo).toBe('https://r.example.com/repo');
  });

  it('names an unknown key and suggests the one probably meant', () => {
    const e = error(MINIMAL.replace('[server]', '[server]\nalow_insecure_http = true'));
    expect(e.key).toBe('server.alow_insecure_http');
    expect(e.message).toContain('unknown key [server] alow_insecure_http');
    expect(e.message).toContain('did you mean allow_insecure_http?');
  });

  it('names an unknown table', () => {
    const e = error(MINIMAL + '\n[uptane]\npolling_sec = 3\n');
    expect(e.key).toBe('uptane');
    expect(e.message).toContain('unknown table [uptane]');
  });

  it('names a missing key and says how to fix it', () => {
    const e = error(MINIMAL.replace('hardware_id = "board-a"', ''));
    expect(e.key).toBe('primary.hardware_id');
    expect(e.message).toMatch(/\[primary\] hardware_id is missing\. Fix: set hardware_id = /);
  });

  it('names a missing table', () => {
    const e = error(MINIMAL.replace('[installer]\ntype = "file"\npath = "/var/lib/app/image.bin"', ''));
    expect(e.key).toBe('installer');
    expect(e.message).toContain('the [installer] table is missing');
  });

  it('refuses values of the wrong type, naming them', () => {
    expect(error(MINIMAL.replace('[device]', '[device]\npoll_interval = "10"')).key).toBe('device.poll_interval');
    expect(error(MINIMAL.replace('[primary]', '[primary]\nkey_type = "rsa1024"')).message).toContain('use one of "ed25519", "rsa2048", "rsa3072", "rsa4096"');
    expect(error(MINIMAL.replace('[trust]', '[trust]\ntrust_on_first_use = "yes"')).key).toBe('trust.trust_on_first_use');
  });

  it('allows http:// only with allow_insecure_http = true', () => {
    const http = MINIMAL.replace('https://gw.example.com:8443/', 'http://127.0.0.1:8080').replace(/\[tls\][^[]*/, '');
    const e = error(http);
    expect(e.key).toBe('server.gateway');
    expect(e.message).toContain('allow_insecure_http = true');
    const c = parse(http.replace('[server]', '[server]\nallow_insecure_http = true'));
    expect(c.server.allowInsecureHttp).toBe(true);
    expect(c.tls).toBeUndefined();
  });

  it('needs client credentials for https', () => {
    const e = error(MINIMAL.replace(/\[tls\][^[]*/, ''));
    expect(e.key).toBe('tls.cert');
  });

  it('needs cert and key together', () => {
    expect(error(MINIMAL.replace('key = "pkey.pem"', '')).key).toBe('tls.key');
  });

  it('refuses a missing pinned root unless trust on first use is explicit', () => {
    const noRoots = MINIMAL.replace('director_root = "roots/director.json"', '');
    const e = error(noRoots);
    expect(e.key).toBe('trust.director_root');
    expect(e.message).toContain('trust_on_first_use = true');
    expect(parse(noRoots.replace('[trust]', '[trust]\ntrust_on_first_use = true')).trust.trustOnFirstUse).toBe(true);
  });

  it('reads shared-credential provisioning, with the gateway from credentials.zip', () => {
    const text = MINIMAL.replace(/\[tls\][^[]*/, '')
      .replace('gateway = "https://gw.example.com:8443/"', '')
      .concat('\n[provision]\ncredentials = "credentials.zip"\nexpiry_days = 30\n');
    const c = parse(text);
    expect(c.provision).toEqual({ credentials: '/etc/uptide/credentials.zip', p12Password: '', expiryDays: 30, server: undefined });
    expect(c.server.gateway).toBeUndefined();
    expect(endpoints(c, 'https://from-zip.example.com').repo).toBe('https://from-zip.example.com/repo');
    expect(() => endpoints(c)).toThrow(ConfigError);
  });

  it('refuses device credentials and shared credentials together', () => {
    expect(error(MINIMAL + '\n[provision]\ncredentials = "c.zip"\n').key).toBe('provision.credentials');
  });

  it('reads a command installer; a program with a slash is relative to the config file', () => {
    const c = parse(MINIMAL.replace('type = "file"\npath = "/var/lib/app/image.bin"', 'type = "command"\ncommand = ["./install.sh", "--flash"]\ntimeout = 90'));
    expect(c.installer).toEqual({ type: 'command', command: ['/etc/uptide/install.sh', '--flash'], timeoutSeconds: 90 });
    const bare = parse(MINIMAL.replace('type = "file"\npath = "/var/lib/app/image.bin"', 'type = "command"\ncommand = ["flash-tool"]'));
    expect(bare.installer).toEqual({ type: 'command', command: ['flash-tool'], timeoutSeconds: 3600 });
    expect(error(MINIMAL.replace('type = "file"\npath = "/var/lib/app/image.bin"', 'type = "command"\ncommand = []')).key).toBe('installer.command');
  });

  it('keeps [[secondaries]] in the schema', () => {
    const c = parse(MINIMAL + '\n[[secondaries]]\naddress = "192.168.0.11:9050"\n\n[[secondaries]]\naddress = "[fe80::1]:9051"\nverification = "partial"\n');
    expect(c.secondaries).toEqual([
      { address: '192.168.0.11:9050', host: '192.168.0.11', port: 9050, verification: 'full' },
      { address: '[fe80::1]:9051', host: 'fe80::1', port: 9051, verification: 'partial' },
    ]);
    expect(error(MINIMAL + '\n[[secondaries]]\naddress = "nohost"\n').key).toBe('secondaries[0].address');
    expect(error(MINIMAL + '\n[[secondaries]]\naddress = "a:1"\nverify = "full"\n').key).toBe('secondaries[0].verify');
  });

  it('reads [ip_secondaries] (wait port and timeouts) with defaults, and refuses a Secondary listed twice', () => {
    expect(parse(MINIMAL).ipSecondaries).toEqual({
      waitPort: undefined,
      waitHost: '0.0.0.0',
      waitTimeoutSeconds: 60,
      requestTimeoutSeconds: 30,
      installTimeoutSeconds: 3600,
      preinstallWaitSeconds: 30,
    });
    const c = parse(
      MINIMAL +
        '\n[[secondaries]]\naddress = "10.0.0.2:9050"\n\n[ip_secondaries]\nwait_port = 9040\nwait_timeout = 5\npreinstall_wait = 0\ninstall_timeout = 600\n',
    );
    expect(c.ipSecondaries).toMatchObject({ waitPort: 9040, waitTimeoutSeconds: 5, preinstallWaitSeconds: 0, installTimeoutSeconds: 600 });
    expect(error(MINIMAL + '\n[ip_secondaries]\nwait_port = 70000\n').key).toBe('ip_secondaries.wait_port');
    expect(error(MINIMAL + '\n[ip_secondaries]\nwaitport = 9040\n').message).toContain('did you mean wait_port?');
    expect(error(MINIMAL + '\n[[secondaries]]\naddress = "10.0.0.2:9050"\n\n[[secondaries]]\naddress = "10.0.0.2:9050"\n').key).toBe('secondaries[1].address');
  });

  it('reports TOML syntax errors with the line', () => {
    const e = error('[device\nstorage = 1');
    expect(e.message).toContain('not valid TOML');
    expect(e.message).toContain('line 1');
  });

  it('reads limits', () => {
    const c = parse(MINIMAL + '\n[limits]\nmin_speed_bytes_per_second = 0\nmin_speed_window = 0.5\nmax_image_bytes = 1000\nretries = 0\n');
    expect(c.limits.minSpeedBytesPerSecond).toBe(0);
    expect(c.limits.minSpeedWindowSeconds).toBe(0.5);
    expect(c.limits.maxImageBytes).toBe(1000);
    expect(c.limits.retries).toBe(0);
    expect(error(MINIMAL + '\n[limits]\nroot_bytes = 1.5\n').key).toBe('limits.root_bytes');
  });

  it('loads from a file and names an unreadable one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'uptide-config-'));
    writeFileSync(join(dir, 'c.toml'), MINIMAL);
    expect(loadConfig(join(dir, 'c.toml')).device.storage).toBe(join(dir, 'state'));
    expect(() => loadConfig(join(dir, 'missing.toml'))).toThrow(/cannot read the configuration file/);
  });
});
