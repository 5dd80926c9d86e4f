/**
 * Interoperability with the TUF reference models for JavaScript (@tufjs/models):
 * metadata they build and sign verifies in our core (tuf dialect), through
 * the same TrustedRepository a client uses, and metadata we build and sign
 * verifies with their `verifyDelegate`. Ed25519, RSA-PSS and ECDSA P-256 keys.
 */
import { describe, expect, it } from 'vitest';
import { constants, sign as cryptoSign } from 'node:crypto';
import {
  Key,
  Metadata as TufMetadata,
  MetadataKind,
  MetaFile as TufMetaFile,
  Root as TufRoot,
  Signature,
  Snapshot as TufSnapshot,
  TargetFile as TufTargetFile,
  Targets as TufTargets,
  Timestamp as TufTimestamp,
} from '@tufjs/models';
// Not re-exported by the package index.
import { DelegatedRole, Role } from '@tufjs/models/dist/role.js';
import { Delegations as TufDelegations } from '@tufjs/models/dist/delegations.js';
import { TrustedRepository } from '../verify/trusted.js';
import { refreshRepository, delegatedLoader, type RepositorySource } from '../verify/uptane.js';
import { resolveDelegations } from '../verify/delegations.js';
import { computeHashes } from '../crypto/hash.js';
import { parseTargets } from './targets.js';
import type { LocalSigner } from '../crypto/signer.js';
import { LATER, NOW, TestRepo, delegation, delegations, ecSigner, edSigner, fileInfo, fixtureKey, imageTarget, rsaSigner } from '../testing/builders.js';
import { SignatureError } from '../errors.js';

type AnyTufMetadata = TufMetadata<TufRoot | TufTimestamp | TufSnapshot | TufTargets>;

function tufKey(s: LocalSigner): Key {
  const json = s.publicKey.toJSON();
  return new Key({
    keyID: s.publicKey.keyId('tuf'),
    keyType: json['keytype'] as string,
    scheme: json['scheme'] as string,
    keyVal: { public: s.publicKey.public },
  });
}

/** A tuf-js signer callback producing hex signatures with our private keys (RSA with tuf-js-style maximum salt). */
function tufSigner(s: LocalSigner): (data: Buffer) => Signature {
  return (data) => {
    const key = s.privateKey;
    const sig =
      key.asymmetricKeyType === 'rsa'
        ? cryptoSign('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN })
        : key.asymmetricKeyType === 'ec'
          ? cryptoSign('sha256', data, { key, dsaEncoding: 'der' })
          : cryptoSign(null, data, key);
    return new Signature({ keyID: s.publicKey.keyId('tuf'), sig: sig.toString('hex') });
  };
}

function bytesOf(md: AnyTufMetadata): Uint8Array {
  return Buffer.from(JSON.stringify(md.toJSON()), 'utf8');
}

describe('metadata signed by @tufjs/models verifies in our core', () => {
  it('root, timestamp, snapshot, targets and a delegated role, with Ed25519, RSA-PSS and ECDSA keys', async () => {
    const rootKey = edSigner('tufjs-root', 'tuf');
    const tsKey = ecSigner();
    const snKey = rsaSigner('tuf', 'RSA_2048_C');
    const tgKey = edSigner('tufjs-targets', 'tuf');
    const supplierKey = rsaSigner('tuf', 'RSA_3072');
    const spec = '1.0.31';

    const root = new TufMetadata(
      new TufRoot({
        version: 1,
        specVersion: spec,
        expires: LATER,
        consistentSnapshot: false,
        keys: Object.fromEntries([rootKey, tsKey, snKey, tgKey].map((k) => [k.publicKey.keyId('tuf'), tufKey(k)])),
        roles: {
          root: new Role({ keyIDs: [rootKey.publicKey.keyId('tuf')], threshold: 1 }),
          timestamp: new Role({ keyIDs: [tsKey.publicKey.keyId('tuf')], threshold: 1 }),
          snapshot: new Role({ keyIDs: [snKey.publicKey.keyId('tuf')], threshold: 1 }),
          targets: new Role({ keyIDs: [tgKey.publicKey.keyId('tuf')], threshold: 1 }),
        },
      }),
    );
    root.sign(tufSigner(rootKey));

    const fw = fileInfo('firmware');
    const supplierFw = fileInfo('supplier firmware');
    const targets = new TufMetadata(
      new TufTargets({
        version: 1,
        specVersion: spec,
        expires: LATER,
        targets: {
          'fw.bin': new TufTargetFile({ path: 'fw.bin', length: fw.length, hashes: fw.hashes, unrecognizedFields: { custom: { hardwareIds: ['hw-a'] } } }),
        },
        delegations: new TufDelegations({
          keys: { [supplierKey.publicKey.keyId('tuf')]: tufKey(supplierKey) },
          roles: {
            supplier: new DelegatedRole({
              name: 'supplier',
              keyIDs: [supplierKey.publicKey.keyId('tuf')],
              threshold: 1,
              terminating: false,
              paths: ['supplier/*'],
            }),
          },
        }),
      }),
    );
    targets.sign(tufSigner(tgKey));
    const supplier = new TufMetadata(
      new TufTargets({
        version: 1,
        specVersion: spec,
        expires: LATER,
        targets: { 'supplier/fw.bin': new TufTargetFile({ path: 'supplier/fw.bin', length: supplierFw.length, hashes: supplierFw.hashes }) },
      }),
    );
    supplier.sign(tufSigner(supplierKey));

    const targetsBytes = bytesOf(targets);
    const supplierBytes = bytesOf(supplier);
    const snapshot = new TufMetadata(
      new TufSnapshot({
        version: 1,
        specVersion: spec,
        expires: LATER,
        meta: {
          'targets.json': new TufMetaFile({ version: 1, length: targetsBytes.byteLength, hashes: computeHashes(targetsBytes, ['sha256']) }),
          'supplier.json': new TufMetaFile({ version: 1 }),
        },
      }),
    );
    snapshot.sign(tufSigner(snKey));
    const snapshotBytes = bytesOf(snapshot);
    const timestamp = new TufMetadata(
      new TufTimestamp({
        version: 1,
        specVersion: spec,
        expires: LATER,
        snapshotMeta: new TufMetaFile({ version: 1, length: snapshotBytes.byteLength, hashes: computeHashes(snapshotBytes, ['sha256']) }),
      }),
    );
    timestamp.sign(tufSigner(tsKey));

    const source: RepositorySource = {
      root: (v) => Promise.resolve(v === 1 ? bytesOf(root) : undefined),
      timestamp: () => Promise.resolve(bytesOf(timestamp)),
      snapshot: () => Promise.resolve(snapshotBytes),
      targets: (role) => Promise.resolve(role === 'targets' ? targetsBytes : supplierBytes),
    };
    const repo = new TrustedRepository({ root: bytesOf(root) }, { dialect: 'tuf', repository: 'image', now: NOW });
    const top = await refreshRepository(repo, source);
    expect(top.signed.find('fw.bin')?.hardwareIds).toEqual(['hw-a']);
    const found = await resolveDelegations(top, 'supplier/fw.bin', { dialect: 'tuf', load: delegatedLoader(repo, source), limits: repo.limits });
    expect(found.role).toBe('supplier');
    expect(found.target.length).toBe(supplierFw.length);
    // Their serialization parses and re-serializes to the same JSON in ours (canonical key order).
    expect(JSON.parse(Buffer.from(parseTargets(targetsBytes, 'tuf').toBytes()).toString())).toEqual(JSON.parse(Buffer.from(targetsBytes).toString()));

    // A signature by another key (their model, our check) is refused.
    const forged = new TufMetadata(timestamp.signed);
    forged.sign(tufSigner(edSigner('intruder', 'tuf')));
    const again = new TrustedRepository({ root: bytesOf(root) }, { dialect: 'tuf', repository: 'image', now: NOW });
    expect(() => again.updateTimestamp(bytesOf(forged))).toThrow(SignatureError);
  });
});

describe('metadata signed by our core verifies in @tufjs/models', () => {
  it('every top-level role, a root rotation and a delegated role, with Ed25519, RSA-PSS (salt 32) and ECDSA keys', async () => {
    const repo = await TestRepo.create({
      dialect: 'tuf',
      keys: { timestamp: [ecSigner()], snapshot: [rsaSigner('tuf', 'RSA_2048_B')], targets: [edSigner('ours-targets', 'tuf'), rsaSigner('tuf', 'RSA_4096')] },
      thresholds: { targets: 2 },
    });
    const supplier = rsaSigner('tuf', 'RSA_2048_C');
    repo.addTarget(imageTarget('fw.bin', 'firmware', ['hw-a']));
    repo.delegations = delegations([delegation('supplier', [supplier], 'tuf', { paths: ['supplier/*'] })], [supplier], 'tuf');
    repo.setDelegated('supplier', { targets: [imageTarget('supplier/fw.bin', 'supplier firmware', ['hw-b'])], signers: [supplier] });
    await repo.publish();
    await repo.rotateRoot({ keys: { root: [edSigner('ours-root-2', 'tuf')] } });

    const parse = (kind: MetadataKind, bytes: Uint8Array) => TufMetadata.fromJSON(kind as MetadataKind.Root, JSON.parse(Buffer.from(bytes).toString('utf8')));
    const root1 = parse(MetadataKind.Root, repo.roots[0] as Uint8Array);
    const root2 = parse(MetadataKind.Root, repo.roots[1] as Uint8Array);
    root1.verifyDelegate('root', root1);
    root1.verifyDelegate('root', root2);
    root2.verifyDelegate('root', root2);
    const ts = TufMetadata.fromJSON(MetadataKind.Timestamp, JSON.parse(Buffer.from(repo.files.timestamp as Uint8Array).toString()));
    const sn = TufMetadata.fromJSON(MetadataKind.Snapshot, JSON.parse(Buffer.from(repo.files.snapshot as Uint8Array).toString()));
    const tg = TufMetadata.fromJSON(MetadataKind.Targets, JSON.parse(Buffer.from(repo.files.targets as Uint8Array).toString()));
    const dl = TufMetadata.fromJSON(MetadataKind.Targets, JSON.parse(Buffer.from(repo.files.delegated.get('supplier') as Uint8Array).toString()));
    root2.verifyDelegate('timestamp', ts);
    root2.verifyDelegate('snapshot', sn);
    root2.verifyDelegate('targets', tg);
    tg.verifyDelegate('supplier', dl);
    expect(ts.signed.snapshotMeta.version).toBe(1);
    expect(sn.signed.meta['supplier.json']?.version).toBe(1);
    expect(tg.signed.targets['fw.bin']?.custom['hardwareIds']).toEqual(['hw-a']);
    expect([...(tg.signed.delegations?.rolesForTarget('supplier/fw.bin') ?? [])].map((r) => r.role)).toEqual(['supplier']);
    // Their checks fail where ours do: the timestamp is not signed by a snapshot key, a tampered target.
    expect(() => root2.verifyDelegate('snapshot', ts)).toThrow();
    const tampered = JSON.parse(Buffer.from(repo.files.targets as Uint8Array).toString()) as { signed: { version: number } };
    tampered.signed.version = 9;
    expect(() => root2.verifyDelegate('targets', TufMetadata.fromJSON(MetadataKind.Targets, tampered as never))).toThrow();
    // Our RSA signatures use salt 32, which tuf-js verifies with its automatic salt detection.
    expect(fixtureKey('RSA_4096').asymmetricKeyDetails?.modulusLength).toBe(4096);
  });
});
