/**
 * One ECU as the Primary's update cycle sees it. The Primary's own ECU
 * implements it here; IP Secondaries (aktualizr's protocol, src/secondary/)
 * implement the same interface, so the cycle drives every ECU the same way:
 * collect its signed version report, hand it the metadata it needs, hand it
 * its verified image, and ask it to install.
 */
import {
  buildEcuVersionReport,
  UNKNOWN_INSTALLED_IMAGE,
  type AttackReport,
  type InstalledImage,
  type PublicKey,
  type SignedDocument,
  type Signer,
  type TargetFile,
} from '@uptide/core';
import type { Installer, InstallOutcome } from '../installers/index.js';
import type { StateStore } from '../state/store.js';
import type { Logger } from './log.js';

/** The trusted metadata of one repository, as raw bytes for an ECU to verify itself. */
export interface RepositoryMetadata {
  /** Every trusted root version, oldest first, so the ECU can walk its own chain (Procedure R). */
  readonly roots: readonly Uint8Array[];
  readonly timestamp: Uint8Array | undefined;
  readonly snapshot: Uint8Array | undefined;
  readonly targets: Uint8Array | undefined;
  readonly delegated: ReadonlyMap<string, Uint8Array>;
}

/** What the Primary makes available to an ECU before its image (§5.4.2.6). */
export interface MetadataBundle {
  readonly director: RepositoryMetadata;
  /** Absent when the Image repository was not consulted this cycle. */
  readonly image: RepositoryMetadata | undefined;
}

/**
 * An ECU declined a step (metadata, image or install), with aktualizr's result
 * code name (`VERIFICATION_FAILED`, `DOWNLOAD_FAILED`, `INSTALL_FAILED`…), which
 * goes into the installation report as is.
 */
export class EcuError extends Error {
  constructor(
    readonly resultCode: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EcuError';
  }
}

/** A verified image ready for an ECU. */
export interface ImageDelivery {
  readonly targetName: string;
  /** The verified image on the Primary's disk. */
  readonly path: string;
  /** The Director's metadata about it. */
  readonly target: TargetFile;
  /** The Image repository's metadata it was cross-checked against. */
  readonly imageTarget: TargetFile | undefined;
  readonly correlationId: string | undefined;
}

export interface Ecu {
  readonly serial: string;
  readonly hardwareId: string;
  /** The ECU key the Director verifies this ECU's version reports with. */
  readonly publicKey: PublicKey;
  /** What the ECU runs now, as last known. */
  installedImage(): InstalledImage | undefined;
  /**
   * A fresh version report signed by the ECU (§5.4.2.1.2). `attacks` are
   * failures the Primary detected while acting for this ECU.
   */
  versionReport(attacks: readonly AttackReport[]): Promise<SignedDocument>;
  /**
   * Makes the new metadata the ECU needs for `image` available to it
   * (§5.4.2.6); rejects when the ECU's own verification fails (an EcuError
   * carries the ECU's result code).
   */
  putMetadata(bundle: MetadataBundle, image: ImageDelivery): Promise<void>;
  /** Hands over the verified image (§5.4.2.7); rejects when the ECU refuses it. */
  putImage(image: ImageDelivery): Promise<void>;
  /** Installs the image handed over (§5.4.3.5) and says how it went. */
  install(image: ImageDelivery, log: Logger): Promise<InstallOutcome>;
  /**
   * Told that a manifest carrying `report` (from versionReport) was accepted
   * by the Director, so the attacks it reports have been delivered.
   */
  reportDelivered?(report: SignedDocument): Promise<void> | void;
}

/** The Primary's own ECU: its key, its state, its installer. */
export class PrimaryEcu implements Ecu {
  constructor(
    readonly serial: string,
    readonly hardwareId: string,
    private readonly signer: Signer,
    private readonly store: StateStore,
    private readonly installer: Installer,
  ) {}

  get publicKey(): PublicKey {
    return this.signer.publicKey;
  }

  installedImage(): InstalledImage | undefined {
    return this.store.state.installed[this.serial];
  }

  async versionReport(attacks: readonly AttackReport[]): Promise<SignedDocument> {
    // Persisted before it is used: a report counter is never sent twice, even across a crash.
    const counter = await this.store.nextReportCounter();
    return buildEcuVersionReport(
      {
        ecuSerial: this.serial,
        installedImage: this.installedImage() ?? UNKNOWN_INSTALLED_IMAGE,
        latestVerifiedTime: new Date(this.store.state.latestVerifiedTime),
        counter,
        attacks,
      },
      this.signer,
    );
  }

  // The Primary verified everything itself (full verification) before this is called.
  putMetadata(): Promise<void> {
    return Promise.resolve();
  }

  // The verified image is already on the Primary's own disk.
  putImage(): Promise<void> {
    return Promise.resolve();
  }

  install(image: ImageDelivery, log: Logger): Promise<InstallOutcome> {
    return this.installer.install(
      { ecuSerial: this.serial, targetName: image.targetName, imagePath: image.path, target: image.target, correlationId: image.correlationId },
      log,
    );
  }
}
