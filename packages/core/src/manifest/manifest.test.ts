/**
 * ECU version reports and vehicle version manifests: built in aktualizr's exact
 * shape (device-api.md §3), parsed strictly, and verified the way the OTA CE
 * Director does, with the refusals it makes.
 */
import { describe, expect, it } from 'vitest';
import {
  INSTALLATION_REPORT_CONTENT_TYPE,
  UNKNOWN_INSTALLED_IMAGE,
  attackReportFrom,
  buildEcuVersionReport,
  buildVehicleManifest,
  formatAttacks,
  installationReportToJSON,
  parseEcuVersionReport,
  parseInstallationReport,
  parseVehicleManifest,
  resultCodeFromNumber,
  verifyEcuVersionReport,
  verifySignedDocument,
  verifyVehicleManifest,
  type SignedDocument,
} from './manifest.js';
import { BadEcuIdError, FormatError, ManifestError, RollbackError, type UptaneError } from '../errors.js';
import { canonicalize, type JsonObject } from '../json.js';
import { toBase64 } from '../encoding.js';
import type { PublicKey } from '../crypto/keys.js';
import type { LocalSigner } from '../crypto/signer.js';
import { edSigner, fileInfo, rsaSigner } from '../testing/builders.js';
import { catchUptaneError } from '../testing/errors.js';

const primary = edSigner('ecu-primary', 'uptane');
const secondary = rsaSigner('uptane', 'RSA_2048_B');
const T1 = new Date('2026-06-01T12:00:00.250Z');
const T0 = new Date('2026-05-31T12:00:00Z');

function expectError(err: UptaneError, cls: abstract new (...args: never[]) => UptaneError, code: string): void {
  expect(err).toBeInstanceOf(cls);
  expect(err.code).toBe(code);
}

async function report(serial: string, signer: LocalSigner, counter = 7, extra: Partial<Parameters<typeof buildEcuVersionReport>[0]> = {}) {
  return buildEcuVersionReport(
    {
      ecuSerial: serial,
      installedImage: { filename: 'fw_1.0', ...fileInfo('firmware one') },
      latestVerifiedTime: T1,
      previousVerifiedTime: T0,
      counter,
      ...extra,
    },
    signer,
  );
}

/** Re-signs a report after changing its payload (a stand-in for another client). */
async function resign(doc: SignedDocument, signer: LocalSigner, change: (s: JsonObject) => void): Promise<JsonObject> {
  const signed = JSON.parse(JSON.stringify(doc.signed)) as JsonObject;
  change(signed);
  const sig = await signer.sign(canonicalize(signed, 'uptane'));
  return { signed, signatures: [{ keyid: signer.publicKey.keyId('uptane'), method: 'ed25519', sig: toBase64(sig) }] };
}

describe('ECU version report', () => {
  it('has aktualizr’s exact shape, plus the counter, latest verified time and typed attacks the Standard asks for', async () => {
    const doc = await report('ecu-primary', primary, 12);
    expect(doc.signed).toEqual({
      ecu_serial: 'ecu-primary',
      installed_image: { filepath: 'fw_1.0', fileinfo: { hashes: { sha256: fileInfo('firmware one').hashes['sha256'] }, length: 12 } },
      attacks_detected: '',
      timeserver_time: '2026-06-01T12:00:00Z',
      previous_timeserver_time: '2026-05-31T12:00:00Z',
      report_counter: '12',
    });
    expect(doc.signatures).toEqual([{ keyid: primary.publicKey.keyId('uptane'), method: 'ed25519', sig: expect.any(String) }]);
    // Signed over the jsoncpp canonical form of `signed`.
    expect(primary.publicKey.verify(canonicalize(doc.signed, 'uptane'), Buffer.from(doc.signatures[0]?.sig as string, 'base64'), 'ed25519')).toBe(true);
  });

  it('writes RSA signatures with aktualizr’s method name', async () => {
    const doc = await report('ecu-secondary', secondary);
    expect(doc.signatures[0]?.method).toBe('rsassa-pss');
    expect(verifySignedDocument(doc, secondary.publicKey)).toBe(true);
  });

  it('carries detected attacks as OTA CE’s string and as a typed list, and a nonce', async () => {
    const err = new RollbackError('targets version 3 is lower than the trusted 4', { repository: 'director', role: 'targets' });
    const doc = await report('e', primary, 1, { attacks: [attackReportFrom(err)], nonce: 'n-1', custom: { note: 'x' } });
    expect(doc.signed['attacks_detected']).toBe('ROLLBACK: targets version 3 is lower than the trusted 4');
    expect(doc.signed['attacks']).toEqual([{ code: 'ROLLBACK', message: err.message, repository: 'director', role: 'targets' }]);
    const parsed = parseEcuVersionReport(doc as unknown as JsonObject);
    expect(parsed.attacks).toEqual([{ code: 'ROLLBACK', message: err.message, repository: 'director', role: 'targets' }]);
    expect(parsed.nonce).toBe('n-1');
    expect(formatAttacks([])).toBe('');
  });

  it('parses and verifies a report; a report by another key does not verify', async () => {
    const doc = await report('ecu-primary', primary, 3);
    const parsed = parseEcuVersionReport(JSON.parse(JSON.stringify(doc)) as JsonObject);
    expect(parsed.ecuSerial).toBe('ecu-primary');
    expect(parsed.counter).toBe(3);
    expect(parsed.timeserverTime).toBe('2026-06-01T12:00:00Z');
    expect(parsed.installedImage).toEqual({ filename: 'fw_1.0', ...fileInfo('firmware one') });
    expect(() => verifyEcuVersionReport(parsed, primary.publicKey)).not.toThrow();
    expectError(
      catchUptaneError(() => verifyEcuVersionReport(parsed, edSigner('someone-else', 'uptane').publicKey)),
      ManifestError,
      'BAD_MANIFEST',
    );
  });

  it('reads a stock aktualizr Secondary report: no counter, 1970 times, the unknown image', async () => {
    const doc = await resign(await report('s', primary), primary, (s) => {
      delete s['report_counter'];
      s['timeserver_time'] = '1970-01-01T00:00:00Z';
      s['previous_timeserver_time'] = '1970-01-01T00:00:00Z';
      s['installed_image'] = {
        filepath: UNKNOWN_INSTALLED_IMAGE.filename,
        fileinfo: { hashes: { ...UNKNOWN_INSTALLED_IMAGE.hashes }, length: UNKNOWN_INSTALLED_IMAGE.length },
      };
    });
    const parsed = parseEcuVersionReport(doc);
    expect(parsed.counter).toBeUndefined();
    expect(parsed.installedImage).toEqual(UNKNOWN_INSTALLED_IMAGE);
    expect(parsed.attacks).toEqual([]);
    expect(() => verifyEcuVersionReport(parsed, primary.publicKey)).not.toThrow();
  });

  it('keeps a plain attacks_detected string from another client as one untyped report', async () => {
    const doc = await resign(await report('s', primary), primary, (s) => (s['attacks_detected'] = 'something happened'));
    expect(parseEcuVersionReport(doc).attacks).toEqual([{ code: 'ARBITRARY_SOFTWARE', message: 'something happened' }]);
  });

  it.each([
    [
      'a sha256 of 63 characters',
      (s: JsonObject) => (((s['installed_image'] as JsonObject)['fileinfo'] as JsonObject)['hashes'] = { sha256: 'a'.repeat(63) }),
      'fileinfo.hashes.sha256',
    ],
    [
      'a non-hex sha256',
      (s: JsonObject) => (((s['installed_image'] as JsonObject)['fileinfo'] as JsonObject)['hashes'] = { sha256: 'g'.repeat(64) }),
      'fileinfo.hashes.sha256',
    ],
    [
      'no sha256',
      (s: JsonObject) => (((s['installed_image'] as JsonObject)['fileinfo'] as JsonObject)['hashes'] = { sha512: 'a'.repeat(128) }),
      'fileinfo.hashes.sha256',
    ],
    ['".." in the filepath', (s: JsonObject) => ((s['installed_image'] as JsonObject)['filepath'] = '../../etc/passwd'), 'installed_image.filepath'],
    ['".." inside a name', (s: JsonObject) => ((s['installed_image'] as JsonObject)['filepath'] = 'fw..bin'), 'installed_image.filepath'],
    ['an empty filepath', (s: JsonObject) => ((s['installed_image'] as JsonObject)['filepath'] = ''), 'installed_image.filepath'],
    ['a filepath of 254 characters', (s: JsonObject) => ((s['installed_image'] as JsonObject)['filepath'] = 'f'.repeat(254)), 'installed_image.filepath'],
    ['a report counter that is not a number', (s: JsonObject) => (s['report_counter'] = 'seven'), 'report_counter'],
    ['a negative report counter', (s: JsonObject) => (s['report_counter'] = '-1'), 'report_counter'],
    ['a report counter with a leading zero', (s: JsonObject) => (s['report_counter'] = '07'), 'report_counter'],
  ])('refuses %s (ManifestError naming the field)', async (_what, change, field) => {
    const doc = await resign(await report('e', primary), primary, change);
    const err = catchUptaneError(() => parseEcuVersionReport(doc));
    expectError(err, ManifestError, 'BAD_MANIFEST');
    expect(err.path).toBe(`report.signed.${field.startsWith('fileinfo') ? 'installed_image.' + field : field}`);
  });

  it('accepts a numeric report counter (lenient) and a 253-character filepath', async () => {
    const doc = await resign(await report('e', primary), primary, (s) => {
      s['report_counter'] = 9;
      (s['installed_image'] as JsonObject)['filepath'] = 'f'.repeat(253);
    });
    expect(parseEcuVersionReport(doc).counter).toBe(9);
  });

  it('refuses malformed documents with typed errors naming the field', async () => {
    const good = (await report('e', primary)) as unknown as JsonObject;
    const cases: Array<[unknown, string]> = [
      [null, 'report'],
      [{ ...good, signatures: [] }, 'report.signatures'],
      [{ ...good, signatures: [{ keyid: 'short', method: 'ed25519', sig: 'AA==' }] }, 'report.signatures[0].keyid'],
      [{ ...good, signatures: [{ keyid: 'a'.repeat(64), sig: 'AA==' }] }, 'report.signatures[0].method'],
      [{ ...good, signed: { ...(good['signed'] as JsonObject), ecu_serial: 5 } }, 'report.signed.ecu_serial'],
      [{ ...good, signed: { ...(good['signed'] as JsonObject), installed_image: 'fw' } }, 'report.signed.installed_image'],
      [{ ...good, signed: { ...(good['signed'] as JsonObject), attacks: [{ code: 'X' }] } }, 'report.signed.attacks[0].message'],
    ];
    for (const [v, path] of cases) {
      const err = catchUptaneError(() => parseEcuVersionReport(v as JsonObject));
      expect([FormatError, ManifestError].some((c) => err instanceof c)).toBe(true);
      expect(err.path).toBe(path);
    }
  });

  it('refuses a counter that is not a non-negative integer when building', async () => {
    expect((await catchAsync(report('e', primary, -1))).code).toBe('BAD_ARGUMENT');
    expect((await catchAsync(report('e', primary, 1.5))).code).toBe('BAD_ARGUMENT');
  });
});

async function catchAsync(p: Promise<unknown>): Promise<UptaneError> {
  try {
    await p;
  } catch (err) {
    return err as UptaneError;
  }
  throw new Error('expected a rejection');
}

describe('vehicle version manifest', () => {
  const keys = {
    primaryEcuSerial: 'ecu-primary',
    ecuKeys: new Map<string, PublicKey>([
      ['ecu-primary', primary.publicKey],
      ['ecu-secondary', secondary.publicKey],
    ]),
  };

  async function manifest(options: { vehicleId?: string; withReport?: boolean } = {}) {
    const reports = new Map([
      ['ecu-primary', await report('ecu-primary', primary, 5)],
      ['ecu-secondary', await report('ecu-secondary', secondary, 2)],
    ]);
    return buildVehicleManifest(
      {
        primaryEcuSerial: 'ecu-primary',
        vehicleId: options.vehicleId,
        reports,
        installationReport: options.withReport
          ? {
              correlationId: 'urn:here-ota:mtu:3b1d',
              result: { success: false, code: 'hw-s:INSTALL_FAILED', description: 'one failed' },
              rawReport: 'log',
              items: [
                { ecu: 'ecu-primary', result: { success: true, code: 'OK', description: '' } },
                { ecu: 'ecu-secondary', result: { success: false, code: 'INSTALL_FAILED', description: 'flash error' } },
              ],
            }
          : undefined,
      },
      primary,
    );
  }

  it('has aktualizr’s shape: primary_ecu_serial and an ecu_version_manifests map of signed reports', async () => {
    const doc = await manifest();
    expect(Object.keys(doc.signed).sort()).toEqual(['ecu_version_manifests', 'primary_ecu_serial']);
    const evm = doc.signed['ecu_version_manifests'] as JsonObject;
    expect(Object.keys(evm)).toEqual(['ecu-primary', 'ecu-secondary']);
    expect((evm['ecu-secondary'] as JsonObject)['signatures']).toEqual([expect.objectContaining({ method: 'rsassa-pss' })]);
    const withVin = await manifest({ vehicleId: 'vin-1', withReport: true });
    expect(withVin.signed['vin']).toBe('vin-1');
    expect((withVin.signed['installation_report'] as JsonObject)['content_type']).toBe(INSTALLATION_REPORT_CONTENT_TYPE);
  });

  it('parses from bytes and verifies with the registered keys', async () => {
    const doc = await manifest({ vehicleId: 'vin-1', withReport: true });
    const parsed = parseVehicleManifest(canonicalize(doc, 'uptane'));
    expect(parsed.vehicleId).toBe('vin-1');
    expect(parsed.reports.get('ecu-secondary')?.counter).toBe(2);
    expect(parsed.installationReport?.items[1]?.result.code).toBe('INSTALL_FAILED');
    expect(() => verifyVehicleManifest(parsed, keys)).not.toThrow();
  });

  it('refuses a manifest not signed by the registered Primary key', async () => {
    const doc = await manifest();
    const parsed = parseVehicleManifest(doc as unknown as JsonObject);
    const other = { ...keys, ecuKeys: new Map([...keys.ecuKeys, ['ecu-primary', edSigner('impostor', 'uptane').publicKey]]) };
    const err = catchUptaneError(() => verifyVehicleManifest(parsed, other));
    expectError(err, ManifestError, 'BAD_MANIFEST');
    expect(err.path).toBe('manifest.signatures');
  });

  it('refuses a report signed by the wrong key, and a report of an ECU not in the vehicle', async () => {
    const parsed = parseVehicleManifest((await manifest()) as unknown as JsonObject);
    const swapped = { ...keys, ecuKeys: new Map([...keys.ecuKeys, ['ecu-secondary', edSigner('x', 'uptane').publicKey]]) };
    const err = catchUptaneError(() => verifyVehicleManifest(parsed, swapped));
    expectError(err, ManifestError, 'BAD_MANIFEST');
    expect(err.path).toBe('manifest.signed.ecu_version_manifests["ecu-secondary"].signatures');
    const fewer = { ...keys, ecuKeys: new Map([['ecu-primary', primary.publicKey]]) };
    expectError(
      catchUptaneError(() => verifyVehicleManifest(parsed, fewer)),
      BadEcuIdError,
      'BAD_ECU_ID',
    );
  });

  it('refuses a Primary serial other than the registered one', async () => {
    const reports = new Map([['ecu-secondary', await report('ecu-secondary', secondary)]]);
    const doc = await buildVehicleManifest({ primaryEcuSerial: 'ecu-secondary', reports }, primary);
    const err = catchUptaneError(() => verifyVehicleManifest(parseVehicleManifest(doc as unknown as JsonObject), keys));
    expectError(err, ManifestError, 'BAD_MANIFEST');
    expect(err.path).toBe('manifest.signed.primary_ecu_serial');
  });

  it('refuses a report filed under another ECU serial', async () => {
    const reports = new Map([['ecu-primary', await report('ecu-secondary', secondary)]]);
    const doc = await buildVehicleManifest({ primaryEcuSerial: 'ecu-primary', reports }, primary);
    const err = catchUptaneError(() => parseVehicleManifest(doc as unknown as JsonObject));
    expectError(err, ManifestError, 'BAD_MANIFEST');
    expect(err.path).toBe('manifest.signed.ecu_version_manifests["ecu-primary"]');
  });

  it('reads the old v1 array form, refusing two reports of one ECU', async () => {
    const r = await report('ecu-primary', primary);
    const signedV1 = { primary_ecu_serial: 'ecu-primary', ecu_version_manifest: [r] } as unknown as JsonObject;
    const sig = await primary.sign(canonicalize(signedV1, 'uptane'));
    const doc = { signed: signedV1, signatures: [{ keyid: primary.publicKey.keyId('uptane'), method: 'ed25519', sig: toBase64(sig) }] };
    const parsed = parseVehicleManifest(doc as unknown as JsonObject);
    expect([...parsed.reports.keys()]).toEqual(['ecu-primary']);
    expect(() => verifyVehicleManifest(parsed, keys)).not.toThrow();
    const twice = { ...doc, signed: { ...signedV1, ecu_version_manifest: [r, r] } } as unknown as JsonObject;
    expectError(
      catchUptaneError(() => parseVehicleManifest(twice)),
      ManifestError,
      'BAD_MANIFEST',
    );
  });

  it('verifies what was parsed, even if the caller changes its input afterwards', async () => {
    const doc = JSON.parse(JSON.stringify(await manifest())) as { signed: JsonObject };
    const parsed = parseVehicleManifest(doc as unknown as JsonObject);
    doc.signed['primary_ecu_serial'] = 'tampered';
    expect(() => verifyVehicleManifest(parsed, keys)).not.toThrow();
  });
});

describe('installation reports', () => {
  it('round-trips and maps result codes', () => {
    const r = {
      correlationId: 'urn:here-ota:mtu:1',
      result: { success: true, code: 'OK', description: '' },
      rawReport: '',
      items: [{ ecu: 'e', result: { success: true, code: 'OK', description: 'done' } }],
    };
    expect(parseInstallationReport(installationReportToJSON(r))).toEqual(r);
    expect(resultCodeFromNumber(3)).toBe('VERIFICATION_FAILED');
    expect(resultCodeFromNumber(-1)).toBe('UNKNOWN');
    expect(resultCodeFromNumber(99)).toBe('UNKNOWN');
    const err = catchUptaneError(() => parseInstallationReport({ report: { correlation_id: 'x', result: { success: 'yes', code: 'OK' } } }));
    expectError(err, ManifestError, 'BAD_MANIFEST');
    expect(err.path).toBe('installation_report.report.result.success');
  });
});
