/**
 * Test support: a device that runs from the directory `uptide devices
 * provision` wrote (its certificate, key, CA and pinned roots), speaks
 * aktualizr's wire format to the gateway over mTLS, and verifies everything
 * with the core's full verification. It keeps its trusted metadata between
 * cycles, so it must follow every root rotation through the chain.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { generateKeyPairSync } from 'node:crypto';
import {
  LocalSigner,
  MultiHasher,
  TrustedRepository,
  UNKNOWN_INSTALLED_IMAGE,
  buildEcuVersionReport,
  buildVehicleManifest,
  canonicalize,
  delegatedLoader,
  fullVerification,
  refreshRepository,
  resolveDelegations,
  verifyImage,
  DEFAULT_LIMITS,
  type InstalledImage,
  type InstallationReport,
  type JsonObject,
  type RepositorySource,
  type ResolvedTarget,
  type SignedDocument,
  type TrustedFiles,
} from '@uptide/core';

interface Reply {
  readonly status: number;
  readonly body: Buffer;
}

export interface CycleResult {
  /** Images installed in this cycle. */
  readonly installed: readonly string[];
  readonly correlationId: string | undefined;
}

export class TestDevice {
  private readonly cert: string;
  private readonly key: string;
  private readonly ca: string;
  private readonly signer = new LocalSigner(generateKeyPairSync('ed25519').privateKey, 'uptane');
  private counter = 0;
  installed: InstalledImage = UNKNOWN_INSTALLED_IMAGE;
  director: TrustedFiles;
  image: TrustedFiles;

  constructor(
    readonly dir: string,
    readonly gatewayUrl: string,
    readonly serial: string,
    readonly hardwareId: string,
    readonly deviceId: string,
  ) {
    this.cert = readFileSync(join(dir, 'client.pem'), 'utf8');
    this.key = readFileSync(join(dir, 'pkey.pem'), 'utf8');
    this.ca = readFileSync(join(dir, 'ca.pem'), 'utf8');
    this.director = { root: new Uint8Array(readFileSync(join(dir, 'director/root.json'))) };
    this.image = { root: new Uint8Array(readFileSync(join(dir, 'repo/root.json'))) };
  }

  request(method: string, path: string, body?: Uint8Array): Promise<Reply> {
    const url = new URL(this.gatewayUrl + path);
    return new Promise((resolve, reject) => {
      const req = httpsRequest(url, {
        method,
        cert: this.cert,
        key: this.key,
        ca: this.ca,
        agent: false,
        headers: { accept: '*/*', ...(body ? { 'content-type': 'application/json', 'content-length': String(body.length) } : {}) },
      });
      req.setTimeout(15_000, () => req.destroy(new Error('device request timed out')));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      });
      req.end(body);
    });
  }

  private async ok(method: string, path: string, body?: Uint8Array): Promise<Buffer> {
    const r = await this.request(method, path, body);
    if (r.status < 200 || r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
    return r.body;
  }

  async registerEcus(): Promise<void> {
    const pub = this.signer.publicKey;
    await this.ok(
      'POST',
      '/director/ecus',
      canonicalize(
        {
          primary_ecu_serial: this.serial,
          ecus: [{ ecu_serial: this.serial, hardware_identifier: this.hardwareId, clientKey: { keytype: pub.keytype, keyval: { public: pub.public } } }],
        },
        'uptane',
      ),
    );
  }

  async sendManifest(installationReport?: InstallationReport): Promise<void> {
    this.counter++;
    const report = await buildEcuVersionReport(
      { ecuSerial: this.serial, installedImage: this.installed, latestVerifiedTime: new Date(), counter: this.counter, attacks: [] },
      this.signer,
    );
    const doc: SignedDocument = await buildVehicleManifest(
      { primaryEcuSerial: this.serial, reports: new Map([[this.serial, report]]), ...(installationReport ? { installationReport } : {}) },
      this.signer,
    );
    await this.ok('PUT', '/director/manifest', canonicalize(doc as unknown as JsonObject, 'uptane'));
  }

  source(base: '/director' | '/repo'): RepositorySource {
    const get = async (file: string, maxBytes: number) => {
      const b = await this.ok('GET', `${base}/${file}`);
      if (b.length > maxBytes) throw new Error(`${base}/${file} is larger than ${maxBytes} bytes`);
      return new Uint8Array(b);
    };
    return {
      root: async (version, maxBytes) => {
        const r = await this.request('GET', `${base}/${version}.root.json`);
        if (r.status === 404) return undefined;
        if (r.status !== 200) throw new Error(`${base}/${version}.root.json: ${r.status}`);
        if (r.body.length > maxBytes) throw new Error('root too large');
        return new Uint8Array(r.body);
      },
      timestamp: (max) => get('timestamp.json', max),
      snapshot: (_v, max) => get('snapshot.json', max),
      targets: (role, _v, max) => get(role === 'targets' ? 'targets.json' : `delegations/${role}.json`, max),
    };
  }

  private repos(now: Date): { director: TrustedRepository; image: TrustedRepository } {
    return {
      director: new TrustedRepository(this.director, { dialect: 'uptane', repository: 'director', now }),
      image: new TrustedRepository(this.image, { dialect: 'uptane', repository: 'image', now }),
    };
  }

  /** One update cycle: manifest, full verification, download, install, report. */
  async cycle(): Promise<CycleResult> {
    await this.sendManifest();
    const now = new Date();
    const { director, image } = this.repos(now);
    const result = await fullVerification({
      director,
      directorSource: this.source('/director'),
      image,
      imageSource: this.source('/repo'),
      vehicle: { vehicleId: this.deviceId, ecus: new Map([[this.serial, this.hardwareId]]) },
      installed: new Map([[this.serial, this.installed]]),
    });
    // Persist what was verified (roots first, as procedure R asks; here all at once at the end of a good cycle).
    this.director = director.state();
    this.image = image.state();
    const installed: string[] = [];
    for (const u of result.updates) {
      const bytes = await this.ok('GET', `/repo/targets/${u.name.split('/').map(encodeURIComponent).join('/')}`);
      const h = new MultiHasher();
      h.update(bytes);
      verifyImage(u.name, u.target, { length: h.length, hashes: h.digest() });
      this.installed = { filename: u.name, length: u.target.length, hashes: { sha256: u.target.hashes['sha256'] as string } };
      installed.push(u.name);
    }
    if (installed.length > 0 && result.correlationId) {
      await this.sendManifest({
        correlationId: result.correlationId,
        result: { success: true, code: 'OK', description: 'installed' },
        rawReport: 'installed',
        items: [{ ecu: this.serial, result: { success: true, code: 'OK', description: '' } }],
      });
    }
    return { installed, correlationId: result.correlationId };
  }

  /** Looks a target up through the Image repository's delegations, as a device does (procedure D). */
  async resolveImageTarget(name: string): Promise<ResolvedTarget> {
    const now = new Date();
    const { image } = this.repos(now);
    const source = this.source('/repo');
    const top = await refreshRepository(image, source);
    const found = await resolveDelegations(top, name, {
      dialect: 'uptane',
      hardwareId: this.hardwareId,
      load: delegatedLoader(image, source),
      limits: DEFAULT_LIMITS,
    });
    this.image = image.state();
    return found;
  }
}
