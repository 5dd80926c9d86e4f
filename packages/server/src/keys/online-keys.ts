/**
 * Online private keys of the repositories, sealed at rest with a key derived
 * from UPTIDE_KEY_PASSPHRASE (scrypt, salt in the database). Decrypted keys are
 * cached per process; which keys may sign a role is read from the database and
 * the current root every time, so a key taken offline by another instance is
 * never used here.
 */
import { createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import type { PublicKey } from '@uptide/core';
import {
  LocalSigner,
  UptaneError,
  deriveKey,
  generatePrivateKey,
  openBytes,
  privateKeyToPem,
  sealBytes,
  toBase64,
  fromBase64,
  type Dialect,
  type KeyType,
  type Root,
  type RoleType,
  type Signer,
} from '@uptide/core';
import type { Store } from '../storage/store.js';

const CHECK_PLAINTEXT = 'uptide-key-check-v1';

export class OnlineKeys {
  private readonly cache = new Map<string, KeyObject>();

  private constructor(private readonly sealingKey: Uint8Array) {}

  /**
   * Derives the sealing key. The first start stores a salt and a check value;
   * later starts with another passphrase fail here, before anything is signed.
   */
  static async open(store: Store, passphrase: string, scryptN?: number): Promise<OnlineKeys> {
    const salt = fromBase64(await store.initSetting('keys.salt', toBase64(randomBytes(16))));
    const key = deriveKey(passphrase, salt, scryptN);
    const check = await store.initSetting('keys.check', sealBytes(key, Buffer.from(CHECK_PLAINTEXT), 'check'));
    try {
      if (Buffer.from(openBytes(key, check, 'check')).toString() !== CHECK_PLAINTEXT) throw new Error('mismatch');
    } catch (err) {
      throw new UptaneError('BAD_PASSPHRASE', 'UPTIDE_KEY_PASSPHRASE does not match the one the online keys were sealed with', { cause: err });
    }
    return new OnlineKeys(key);
  }

  private aad(namespace: string, repo: string, keyId: string): string {
    return `${namespace}/${repo}/${keyId}`;
  }

  /** Generates, seals and stores a key for a role; returns its public key. */
  async generate(store: Store, namespace: string, repo: string, role: RoleType, type: KeyType, dialect: Dialect, now: number): Promise<PublicKey> {
    const priv = await generatePrivateKey(type);
    const signer = new LocalSigner(priv, dialect);
    const keyId = signer.publicKey.keyId(dialect);
    const der = priv.export({ format: 'der', type: 'pkcs8' });
    await store.insertKey({
      namespace,
      repo,
      role,
      key_id: keyId,
      public_json: JSON.stringify(signer.publicKey.toJSON()),
      private_sealed: sealBytes(this.sealingKey, der, this.aad(namespace, repo, keyId)),
      created_at: now,
    });
    this.cache.set(this.aad(namespace, repo, keyId), priv);
    return signer.publicKey;
  }

  private unseal(namespace: string, repo: string, keyId: string, sealed: string): KeyObject {
    const k = this.aad(namespace, repo, keyId);
    let priv = this.cache.get(k);
    if (!priv) {
      priv = createPrivateKey({ key: Buffer.from(openBytes(this.sealingKey, sealed, k)), format: 'der', type: 'pkcs8' });
      this.cache.set(k, priv);
    }
    return priv;
  }

  /**
   * Signers for a role: the online keys that the given root lists for it.
   * Throws when they cannot meet the role's threshold (the role is offline).
   */
  async signersFor(store: Store, namespace: string, repo: string, role: RoleType, root: Root, dialect: Dialect): Promise<Signer[]> {
    const def = root.role(role);
    const wanted = new Set(def.keyids);
    const rows = await store.listKeys(namespace, repo);
    const signers: Signer[] = [];
    const used = new Set<string>();
    for (const row of rows) {
      if (!row.private_sealed || !wanted.has(row.key_id) || used.has(row.key_id)) continue;
      used.add(row.key_id);
      signers.push(new LocalSigner(this.unseal(namespace, repo, row.key_id, row.private_sealed), dialect));
    }
    if (signers.length < def.threshold) {
      throw new UptaneError(
        'ARBITRARY_SOFTWARE',
        `the ${repo} repository holds ${signers.length} online key(s) for ${role}; ${def.threshold} needed (is the role offline?)`,
        { repository: repo, role },
      );
    }
    return signers;
  }

  /** Whether the server can sign a role of this root online. */
  async canSign(store: Store, namespace: string, repo: string, role: RoleType, root: Root): Promise<boolean> {
    const def = root.role(role);
    const wanted = new Set(def.keyids);
    const rows = await store.listKeys(namespace, repo);
    return new Set(rows.filter((r) => r.private_sealed && wanted.has(r.key_id)).map((r) => r.key_id)).size >= def.threshold;
  }

  /** The PKCS#8 PEM of an online key (OTA CE's private_keys export, for garage-sign users). */
  async exportPrivateKey(store: Store, namespace: string, repo: string, keyId: string): Promise<string | undefined> {
    const row = (await store.listKeys(namespace, repo)).find((r) => r.key_id === keyId && r.private_sealed);
    if (!row?.private_sealed) return undefined;
    return privateKeyToPem(this.unseal(namespace, repo, keyId, row.private_sealed));
  }

  /** Deletes the private half of a key (taking it offline). */
  async deletePrivateKey(store: Store, namespace: string, repo: string, keyId: string): Promise<boolean> {
    this.cache.delete(this.aad(namespace, repo, keyId));
    return (await store.deletePrivateKey(namespace, repo, keyId)) > 0;
  }

  /** Seals a secret (e.g. a CA private key) with the server's key; `aad` binds it to its purpose. */
  sealSecret(plaintext: string, aad: string): string {
    return sealBytes(this.sealingKey, Buffer.from(plaintext, 'utf8'), aad);
  }

  openSecret(sealed: string, aad: string): string {
    return Buffer.from(openBytes(this.sealingKey, sealed, aad)).toString('utf8');
  }

  /** Records a public key that the server does not hold (listed in a root pushed by an operator). */
  async recordOfflineKey(store: Store, namespace: string, repo: string, role: string, key: PublicKey, dialect: Dialect, now: number): Promise<void> {
    const keyId = key.keyId(dialect);
    const existing = (await store.listKeys(namespace, repo, role)).find((r) => r.key_id === keyId);
    if (existing) return;
    await store.insertKey({ namespace, repo, role, key_id: keyId, public_json: JSON.stringify(key.toJSON()), private_sealed: null, created_at: now });
  }
}
