/**
 * Device identity: the server CA and gateway certificate, one device CA per
 * namespace, device certificates issued by the admin API, shared-credential
 * auto-provisioning (`POST /devices` → PKCS#12) with a fleet credentials.zip,
 * revocation, and the per-connection check the gateway relies on.
 *
 * CA private keys are sealed with the server's key and kept in the database,
 * so several instances share them; the public certificates are also written
 * to the data dir for operators.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import {
  CertificateAuthority,
  ClientCertificateVerifier,
  buildCredentialsZip,
  buildPkcs12,
  createCertificateAuthority,
  gatewayCertificateNeedsReissue,
  issueBootstrapCertificate,
  issueDeviceCertificate,
  issueServerCertificate,
  isValidDeviceId,
  parseTtlDays,
  PkiError,
  type ClientIdentity,
} from '../pki/index.js';
import type { KeyType } from '@uptide/core';
import type { Storage } from '../storage/store.js';
import type { OnlineKeys } from '../keys/online-keys.js';
import type { Registry } from '../registry/service.js';
import type { ImageRepository } from '../imagerepo/service.js';
import type { Director } from '../director/service.js';
import { ApiError, badRequest, conflict, forbidden, notFound } from '../errors.js';

interface StoredPair {
  cert: string;
  key: string;
}

export interface DeviceIdentity {
  readonly namespace: string;
  readonly deviceId: string;
  readonly kind: 'device' | 'bootstrap';
  readonly serial: string;
}

export interface IssuedCredentials {
  readonly deviceId: string;
  readonly certificate: string;
  readonly privateKey?: string;
  readonly deviceCa: string;
  readonly serverCa: string;
  readonly gatewayUrl: string;
  readonly serial: string;
  readonly notAfter: string;
}

/** Refusal of a device connection: 401 without a usable certificate, 403 for a known but refused one. */
export class DeviceAuthError extends ApiError {}

const IDENTITY_CACHE_MS = 10_000;

export class Provisioning {
  private serverCa!: CertificateAuthority;
  private gateway!: StoredPair;
  private readonly deviceCas = new Map<string, CertificateAuthority>();
  private readonly verifier = new ClientCertificateVerifier();
  private readonly identityCache = new Map<string, { identity: DeviceIdentity; at: number }>();
  private lastCaReload = 0;
  /**
   * Bumped whenever a certificate may have stopped being acceptable (revoked, its device deleted), so that
   * identities cached per connection are checked again on the next request instead of up to 10 s later.
   */
  identityGeneration = 0;
  /** Called when the set of device CAs changes (the gateway refreshes its TLS context). */
  onDeviceCasChanged: (() => void) | undefined;

  constructor(
    private readonly storage: Storage,
    private readonly keys: OnlineKeys,
    private readonly registry: Registry,
    private readonly imageRepo: ImageRepository,
    private readonly director: Director,
    private readonly clock: () => Date,
    private readonly keyType: KeyType,
    private options: { readonly dataDir: string; readonly gatewayUrl: string; readonly adminUrl: string; readonly publicHosts: readonly string[] },
  ) {}

  /** The URLs devices and tools are told, once the server knows its ports (they may have been 0: any free port). */
  setUrls(gatewayUrl: string, adminUrl: string): void {
    this.options = { ...this.options, gatewayUrl, adminUrl };
  }

  private async loadPair(setting: string, create: () => Promise<StoredPair>): Promise<StoredPair> {
    const existing = await this.storage.store.getSetting(setting);
    if (existing) return this.unsealPair(setting, existing);
    const fresh = await create();
    const sealed = JSON.stringify({ cert: fresh.cert, key: this.keys.sealSecret(fresh.key, setting) });
    // Several instances may race here on first start: the first stored pair wins for all.
    const stored = await this.storage.store.initSetting(setting, sealed);
    return this.unsealPair(setting, stored);
  }

  private unsealPair(setting: string, value: string): StoredPair {
    const v = JSON.parse(value) as StoredPair;
    return { cert: v.cert, key: this.keys.openSecret(v.key, setting) };
  }

  /** Loads or creates the server CA, the gateway certificate and every namespace's device CA. */
  async init(): Promise<void> {
    const caPair = await this.loadPair('pki.server_ca', async () => {
      const ca = await createCertificateAuthority({ kind: 'server' });
      return { cert: ca.certPem, key: ca.keyPem };
    });
    this.serverCa = CertificateAuthority.fromPem(caPair.cert, caPair.key);
    const issueGateway = async (): Promise<StoredPair> => {
      const c = await issueServerCertificate(this.serverCa, { hosts: this.options.publicHosts });
      return { cert: c.certPem, key: c.keyPem as string };
    };
    this.gateway = await this.loadPair('pki.gateway', issueGateway);
    const why = gatewayCertificateNeedsReissue(this.gateway.cert, this.serverCa, { hosts: this.options.publicHosts });
    if (why) {
      const fresh = await issueGateway();
      await this.storage.store.putSetting('pki.gateway', JSON.stringify({ cert: fresh.cert, key: this.keys.sealSecret(fresh.key, 'pki.gateway') }));
      this.gateway = fresh;
    }
    await this.reloadDeviceCas();
    await fsp.mkdir(this.options.dataDir, { recursive: true });
    await fsp.writeFile(join(this.options.dataDir, 'server-ca.pem'), this.serverCa.certPem);
  }

  /** Creates the device CA of a namespace (idempotent). */
  async ensureDeviceCa(namespace: string): Promise<void> {
    const pair = await this.loadPair(`pki.device_ca.${namespace}`, async () => {
      const ca = await createCertificateAuthority({ kind: 'device', namespace });
      return { cert: ca.certPem, key: ca.keyPem };
    });
    if (!this.deviceCas.has(namespace)) {
      this.deviceCas.set(namespace, CertificateAuthority.fromPem(pair.cert, pair.key));
      this.verifier.addDeviceCa(namespace, pair.cert);
      this.onDeviceCasChanged?.();
    }
    if (namespace === 'default') await fsp.writeFile(join(this.options.dataDir, 'device-ca.pem'), pair.cert);
  }

  private async reloadDeviceCas(): Promise<void> {
    this.lastCaReload = Date.now();
    let changed = false;
    for (const { key, value } of await this.storage.store.listSettings('pki.device_ca.')) {
      const namespace = key.slice('pki.device_ca.'.length);
      if (this.deviceCas.has(namespace)) continue;
      const pair = this.unsealPair(key, value);
      this.deviceCas.set(namespace, CertificateAuthority.fromPem(pair.cert, pair.key));
      this.verifier.addDeviceCa(namespace, pair.cert);
      changed = true;
    }
    if (changed) this.onDeviceCasChanged?.();
  }

  get serverCaPem(): string {
    return this.serverCa.certPem;
  }

  gatewayTls(): { cert: string; key: string; ca: string[] } {
    return { cert: this.gateway.cert, key: this.gateway.key, ca: [...this.deviceCas.values()].map((c) => c.certPem) };
  }

  private deviceCa(namespace: string): CertificateAuthority {
    const ca = this.deviceCas.get(namespace);
    if (!ca) throw notFound('namespace_not_found', `namespace ${namespace} has no device CA`);
    return ca;
  }

  // --- issuing ---------------------------------------------------------------------------

  async issueDeviceCredentials(
    namespace: string,
    deviceId: string,
    input: { publicKey?: string; ttlDays?: number; deviceName?: string },
  ): Promise<IssuedCredentials> {
    if (!isValidDeviceId(deviceId))
      throw badRequest(
        'invalid_device_id',
        `invalid device id ${JSON.stringify(String(deviceId).slice(0, 80))}: 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit`,
      );
    // The certificate first (pure): a key it cannot use must not leave a device behind.
    let cert;
    try {
      cert = await issueDeviceCertificate(this.deviceCa(namespace), {
        deviceId,
        ...(input.publicKey !== undefined ? { publicKey: input.publicKey } : {}),
        ...(input.ttlDays !== undefined ? { ttlDays: input.ttlDays } : {}),
      });
    } catch (err) {
      if (err instanceof PkiError)
        throw badRequest(err.code === 'BAD_KEY' || err.code === 'UNSUPPORTED_ALGORITHM' ? 'invalid_public_key' : 'invalid_request', err.message);
      throw err;
    }
    await this.registry.createDevice(namespace, { deviceId, ...(input.deviceName ? { deviceName: input.deviceName } : {}) });
    await this.storage.store.insertCredential({
      namespace,
      serial: cert.serial,
      device_id: deviceId,
      kind: 'device',
      fingerprint: cert.fingerprint256,
      not_after: cert.notAfter.getTime(),
      created_at: this.clock().getTime(),
      revoked_at: null,
    });
    return {
      deviceId,
      certificate: cert.certPem,
      ...(cert.keyPem !== undefined ? { privateKey: cert.keyPem } : {}),
      deviceCa: this.deviceCa(namespace).certPem,
      serverCa: this.serverCa.certPem,
      gatewayUrl: this.options.gatewayUrl,
      serial: cert.serial,
      notAfter: cert.notAfter.toISOString(),
    };
  }

  /**
   * aktualizr's shared-credential provisioning: a bootstrap certificate asks
   * for a device; the answer is a PKCS#12 (empty password) with a new key, its
   * certificate and the CA certificates. A device id already taken is
   * `device_already_registered` (aktualizr then picks another id).
   */
  async autoProvision(identity: DeviceIdentity, body: unknown): Promise<Buffer> {
    if (identity.kind !== 'bootstrap') throw forbidden('not_a_bootstrap_certificate', 'POST /devices needs the fleet bootstrap certificate of credentials.zip');
    const o = body as Record<string, unknown> | null;
    const deviceId = o && typeof o === 'object' ? o['deviceId'] : undefined;
    if (!isValidDeviceId(deviceId)) throw badRequest('invalid_device_id', 'deviceId must be 1-64 characters of A-Z a-z 0-9 . _ -');
    let ttlDays: number;
    try {
      ttlDays = parseTtlDays(o?.['ttl'] ?? undefined);
    } catch (err) {
      throw badRequest('invalid_ttl', err instanceof Error ? err.message : 'invalid ttl');
    }
    const { namespace } = identity;
    const { created } = await this.registry.createDevice(namespace, { deviceId });
    if (!created && (await this.storage.store.listCredentials(namespace, deviceId)).some((c) => c.revoked_at === null)) {
      throw conflict('device_already_registered', `device ${deviceId} is already registered`);
    }
    const cert = await issueDeviceCertificate(this.deviceCa(namespace), { deviceId, ttlDays });
    await this.storage.store.insertCredential({
      namespace,
      serial: cert.serial,
      device_id: deviceId,
      kind: 'device',
      fingerprint: cert.fingerprint256,
      not_after: cert.notAfter.getTime(),
      created_at: this.clock().getTime(),
      revoked_at: null,
    });
    const p12 = buildPkcs12({
      key: cert.keyPem as string,
      certPem: cert.certPem,
      caPems: [this.deviceCa(namespace).certPem, this.serverCa.certPem],
      friendlyName: deviceId,
    });
    return p12;
  }

  /** A fresh fleet credentials.zip (with a new bootstrap certificate, revocable on its own). */
  async credentialsZip(namespace: string): Promise<Buffer> {
    const ca = this.deviceCa(namespace);
    const boot = await issueBootstrapCertificate(ca, { label: namespace.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 40) || 'default' });
    await this.storage.store.insertCredential({
      namespace,
      serial: boot.serial,
      device_id: '',
      kind: 'bootstrap',
      fingerprint: boot.fingerprint256,
      not_after: boot.notAfter.getTime(),
      created_at: this.clock().getTime(),
      revoked_at: null,
    });
    const p12 = buildPkcs12({ key: boot.keyPem, certPem: boot.certPem, caPems: [ca.certPem, this.serverCa.certPem], friendlyName: 'autoprov' });
    const root = await this.imageRepo.root(namespace);
    return buildCredentialsZip({
      autoprovP12: p12,
      gatewayUrl: this.options.gatewayUrl,
      serverCaPem: this.serverCa.certPem,
      imageRootJson: root ?? '',
      tufRepoUrl: `${this.options.adminUrl}/api/v1/user_repo`,
    });
  }

  async listCredentials(namespace: string, deviceId: string) {
    await this.registry.requireDevice(namespace, deviceId);
    return (await this.storage.store.listCredentials(namespace, deviceId)).map((c) => this.credentialView(c));
  }

  async listBootstrap(namespace: string) {
    return (await this.storage.store.listCredentialsByKind(namespace, 'bootstrap')).map((c) => this.credentialView(c));
  }

  private credentialView(c: { serial: string; kind: string; fingerprint: string; not_after: number; created_at: number; revoked_at: number | null }) {
    return {
      serial: c.serial,
      kind: c.kind,
      fingerprint: c.fingerprint,
      notAfter: new Date(c.not_after).toISOString(),
      createdAt: new Date(c.created_at).toISOString(),
      revokedAt: c.revoked_at === null ? null : new Date(c.revoked_at).toISOString(),
    };
  }

  /** Revokes a certificate: a device's (give its id) or a fleet bootstrap certificate (give no device). */
  async revoke(namespace: string, serial: string, deviceId?: string): Promise<void> {
    const c = await this.storage.store.getCredential(namespace, serial.toLowerCase());
    const matches = c !== undefined && (deviceId === undefined ? c.kind === 'bootstrap' : c.kind === 'device' && c.device_id === deviceId);
    if (!c || !matches) throw notFound('credential_not_found', `no ${deviceId === undefined ? 'bootstrap' : 'device'} certificate with serial ${serial}`);
    await this.storage.store.revokeCredential(namespace, c.serial, this.clock().getTime());
    this.forgetIdentities();
  }

  /** Drops every cached identity (after a revocation or a device deletion). */
  forgetIdentities(): void {
    this.identityCache.clear();
    this.identityGeneration++;
  }

  /** What a device configuration needs (for `uptide devices provision`). */
  async info(namespace: string) {
    const directorRoot = await this.director.root(namespace);
    const imageRoot = await this.imageRepo.root(namespace);
    return {
      namespace,
      gatewayUrl: this.options.gatewayUrl,
      serverCa: this.serverCa.certPem,
      deviceCa: this.deviceCa(namespace).certPem,
      directorRoot: directorRoot ? (JSON.parse(Buffer.from(directorRoot).toString('utf8')) as unknown) : null,
      imageRoot: imageRoot ? (JSON.parse(Buffer.from(imageRoot).toString('utf8')) as unknown) : null,
    };
  }

  // --- online repository keys (export / take offline) -------------------------------------

  async exportPrivateKey(namespace: string, repo: 'image' | 'director', keyId: string): Promise<string> {
    const pem = await this.keys.exportPrivateKey(this.storage.store, namespace, repo, keyId);
    if (!pem) throw notFound('key_not_found', `no online ${repo} key ${keyId}`);
    return pem;
  }

  /**
   * Deletes an online private key. Keys of roles the server must sign online
   * (Image snapshot/timestamp; every Director role but root) are refused:
   * deleting them would stop updates. Deleting the Image targets key switches
   * the repository to offline-signed targets.
   */
  async deletePrivateKey(namespace: string, repo: 'image' | 'director', keyId: string): Promise<void> {
    await this.storage.transaction(async (store) => {
      const rows = (await store.listKeys(namespace, repo)).filter((r) => r.key_id === keyId && r.private_sealed !== null);
      if (rows.length === 0) throw notFound('key_not_found', `no online ${repo} key ${keyId}`);
      const mustStayOnline = repo === 'director' ? ['targets', 'snapshot', 'timestamp'] : ['snapshot', 'timestamp'];
      const role = rows.find((r) => mustStayOnline.includes(r.role))?.role;
      if (role) throw conflict('key_must_stay_online', `the ${repo} ${role} key is signed with online; rotate it with a new root instead of deleting it`);
      await this.keys.deletePrivateKey(store, namespace, repo, keyId);
      if (repo === 'image' && rows.some((r) => r.role === 'targets')) await store.setTargetsOffline(namespace, 'image', true);
    });
  }

  /**
   * Generates a new online key for a role that the server signs with (Image
   * snapshot/timestamp, Director targets/snapshot/timestamp) and answers its
   * public key. It signs nothing until a new root lists it: this is the first
   * step of rotating an online key (after a compromise, or routinely).
   */
  async generateOnlineKey(namespace: string, repo: 'image' | 'director', role: 'targets' | 'snapshot' | 'timestamp'): Promise<{ keyid: string; key: unknown }> {
    const online = repo === 'director' ? ['targets', 'snapshot', 'timestamp'] : ['snapshot', 'timestamp'];
    if (!online.includes(role))
      throw badRequest('not_an_online_role', `the server does not sign ${repo} ${role} online: generate that key offline (uptide keys generate)`);
    return this.storage.transaction(async (store) => {
      const row = await store.getRepository(namespace, repo, true);
      if (!row) throw notFound('repository_not_found', `namespace ${namespace} has no ${repo} repository`);
      const key = await this.keys.generate(store, namespace, repo, role, this.keyType, row.dialect as 'uptane' | 'tuf', this.clock().getTime());
      return { keyid: key.keyId(row.dialect as 'uptane' | 'tuf'), key: key.toJSON() };
    });
  }

  // --- the gateway's check -------------------------------------------------------------------

  /**
   * Who is on the other end of a device connection: the certificate must chain
   * to a namespace's device CA, be valid now, be known to us and not revoked,
   * and (for devices) belong to an existing device. Never from a header.
   */
  async identify(socket: TLSSocket): Promise<DeviceIdentity> {
    const peer = socket.getPeerCertificate(true) as unknown as { raw?: Uint8Array };
    const now = this.clock();
    let res = this.verifier.identify(peer, now);
    if (!res.ok && res.code === 'UNKNOWN_ISSUER' && Date.now() - this.lastCaReload > 5_000) {
      // A namespace created by another instance: reload its CA once.
      await this.reloadDeviceCas();
      res = this.verifier.identify(peer, now);
    }
    if (!res.ok) throw new DeviceAuthError(res.code === 'NO_CERTIFICATE' ? 401 : 403, 'device_certificate_refused', `${res.message}`);
    return this.identityOf(res.identity, now.getTime());
  }

  private async identityOf(id: ClientIdentity, now: number): Promise<DeviceIdentity> {
    const cached = this.identityCache.get(id.fingerprint256);
    if (cached && now - cached.at < IDENTITY_CACHE_MS) return cached.identity;
    const cred = await this.storage.store.getCredential(id.namespace, id.serial);
    if (!cred || cred.fingerprint !== id.fingerprint256)
      throw new DeviceAuthError(403, 'unknown_certificate', 'this certificate was not issued by this server');
    if (cred.revoked_at !== null) throw new DeviceAuthError(403, 'certificate_revoked', 'this certificate has been revoked');
    if (cred.kind !== id.kind) throw new DeviceAuthError(403, 'unknown_certificate', 'certificate kind mismatch');
    const identity: DeviceIdentity = { namespace: id.namespace, deviceId: id.kind === 'device' ? id.cn : '', kind: id.kind, serial: id.serial };
    if (id.kind === 'device' && !(await this.storage.store.getDevice(id.namespace, id.cn))) {
      throw new DeviceAuthError(403, 'unknown_device', `device ${id.cn} is not registered`);
    }
    if (this.identityCache.size > 50_000) this.identityCache.clear();
    this.identityCache.set(id.fingerprint256, { identity, at: now });
    return identity;
  }
}
