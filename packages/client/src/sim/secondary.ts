/**
 * A simulated Secondary: an in-process ECU driven by the Primary through the
 * `Ecu` interface (primary/ecu.ts), doing what a partial-verification
 * Secondary does (uptane-standard.md §5.4.4.1, `partialVerification` of the
 * core): Director targets checked against the Director root it holds (with
 * Director root rotation), its own entry checked for its serial, hardware id
 * and release counter, the image checked against every listed hash and the
 * exact length, then installed (a file, or nothing). It signs its own version
 * reports with its own Ed25519 key.
 *
 * State (one directory per Secondary) is written atomically, and only when it
 * changes: an install, a new Director root or targets. Report counters are
 * reserved in blocks (the ceiling is persisted before a counter of the block is
 * used), so a counter never repeats across restarts without a write per report.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import {
  buildEcuVersionReport,
  generatePrivateKey,
  LocalSigner,
  MultiHasher,
  partialVerification,
  privateKeyFromPem,
  privateKeyToPem,
  UNKNOWN_INSTALLED_IMAGE,
  verifyImage,
  type AttackReport,
  type InstalledImage,
  type PublicKey,
  type SignedDocument,
  type TargetFile,
} from '@uptide/core';
import { EcuError, type Ecu, type ImageDelivery, type MetadataBundle } from '../primary/ecu.js';
import type { Logger } from '../primary/log.js';
import { FileInstaller, installFailed, installOk, type InstallOutcome } from '../installers/index.js';
import { ensureDir, readIfExists, writeFileAtomic } from '../state/atomic.js';
import { StateError } from '../state/store.js';

const COUNTER_BLOCK = 1000;
const STATE_FORMAT = 'uptide-sim-secondary';

interface SecondaryState {
  /** Report counters up to this one may be used (persisted before use). */
  readonly counterCeiling: number;
  readonly latestVerifiedTime: number;
  readonly installed: InstalledImage | undefined;
  readonly releaseCounter: number | undefined;
}

export interface SimSecondaryOptions {
  readonly dir: string;
  readonly serial: string;
  readonly hardwareId: string;
  /** The pinned initial Director root, used until the Primary brings a newer one. */
  readonly initialDirectorRoot: Uint8Array;
  /** `file`: the image is written to `<dir>/image.bin`; `none`: verified only. */
  readonly installer: 'file' | 'none';
  /** The system clock in epoch ms. */
  readonly clock?: () => number;
}

export class SimSecondary implements Ecu {
  private counter: number;
  /** What the last putMetadata verified for this ECU, consumed by putImage and install. */
  private directed: { name: string; file: TargetFile } | undefined;
  private imageVerified: string | undefined;
  private readonly fileInstaller: FileInstaller | undefined;

  private constructor(
    private readonly options: SimSecondaryOptions,
    private readonly signer: LocalSigner,
    private state: SecondaryState,
    private directorRoot: Uint8Array,
    private directorTargets: Uint8Array | undefined,
  ) {
    this.counter = state.counterCeiling;
    this.fileInstaller = options.installer === 'file' ? new FileInstaller(join(options.dir, 'image.bin')) : undefined;
  }

  get serial(): string {
    return this.options.serial;
  }

  get hardwareId(): string {
    return this.options.hardwareId;
  }

  get publicKey(): PublicKey {
    return this.signer.publicKey;
  }

  /** Opens (creating on first use) the Secondary's directory: key, state, trusted Director metadata. */
  static async open(options: SimSecondaryOptions): Promise<SimSecondary> {
    const { dir } = options;
    await ensureDir(dir);
    let pem = (await readIfExists(join(dir, 'ecu-key.pem')))?.toString('utf8');
    if (pem === undefined) {
      pem = privateKeyToPem(await generatePrivateKey('ed25519'));
      await writeFileAtomic(join(dir, 'ecu-key.pem'), pem, 0o600);
    }
    const signer = new LocalSigner(privateKeyFromPem(pem), 'uptane');
    const raw = await readIfExists(join(dir, 'state.json'));
    let state: SecondaryState = { counterCeiling: 0, latestVerifiedTime: 0, installed: undefined, releaseCounter: undefined };
    if (raw !== undefined) {
      const o = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
      if (o['format'] !== STATE_FORMAT) {
        throw new StateError('STATE_CORRUPT', `${join(dir, 'state.json')} is not a simulated Secondary's state; delete ${dir}`, join(dir, 'state.json'));
      }
      state = {
        counterCeiling: Number(o['counterCeiling']) || 0,
        latestVerifiedTime: Number(o['latestVerifiedTime']) || 0,
        installed: (o['installed'] as InstalledImage | undefined) ?? undefined,
        releaseCounter: typeof o['releaseCounter'] === 'number' ? o['releaseCounter'] : undefined,
      };
    }
    const root = (await readIfExists(join(dir, 'director-root.json'))) ?? options.initialDirectorRoot;
    const targets = await readIfExists(join(dir, 'director-targets.json'));
    return new SimSecondary(options, signer, state, root, targets);
  }

  private now(): number {
    return Math.max((this.options.clock ?? Date.now)(), this.state.latestVerifiedTime);
  }

  private async saveState(change: Partial<SecondaryState>): Promise<void> {
    this.state = { ...this.state, ...change };
    const o: Record<string, unknown> = { format: STATE_FORMAT, ...this.state };
    await writeFileAtomic(join(this.options.dir, 'state.json'), JSON.stringify(o) + '\n');
  }

  installedImage(): InstalledImage | undefined {
    return this.state.installed;
  }

  async versionReport(attacks: readonly AttackReport[]): Promise<SignedDocument> {
    if (this.counter >= this.state.counterCeiling) await this.saveState({ counterCeiling: this.state.counterCeiling + COUNTER_BLOCK });
    const counter = ++this.counter;
    return buildEcuVersionReport(
      {
        ecuSerial: this.serial,
        installedImage: this.state.installed ?? UNKNOWN_INSTALLED_IMAGE,
        latestVerifiedTime: new Date(this.now()),
        counter,
        attacks,
      },
      this.signer,
    );
  }

  /** Partial verification of the Director targets the Primary brings, against the Director root this ECU holds. */
  async putMetadata(bundle: MetadataBundle): Promise<void> {
    this.directed = undefined;
    this.imageVerified = undefined;
    const targets = bundle.director.targets;
    if (targets === undefined) throw new EcuError('VERIFICATION_FAILED', 'the Primary sent no Director targets');
    const now = this.now();
    const result = partialVerification({
      dialect: 'uptane',
      now: new Date(now),
      directorRoot: this.directorRoot,
      newRoots: bundle.director.roots,
      trustedTargets: this.directorTargets,
      targets,
      ecuSerial: this.serial,
      hardwareId: this.hardwareId,
      previousReleaseCounter: this.state.releaseCounter,
    });
    // Accepted roots are persisted at once, as the Standard wants; then the targets baseline.
    if (result.acceptedRoots.length > 0) {
      await writeFileAtomic(join(this.options.dir, 'director-root.json'), result.root);
      this.directorRoot = result.root;
    }
    await writeFileAtomic(join(this.options.dir, 'director-targets.json'), targets);
    this.directorTargets = targets;
    if (now > this.state.latestVerifiedTime) await this.saveState({ latestVerifiedTime: now });
    this.directed = result.target;
  }

  /** The image must be the one the verified Director targets give this ECU, with every hash and the exact length. */
  async putImage(image: ImageDelivery): Promise<void> {
    this.imageVerified = undefined;
    const mine = this.directed;
    if (!mine || mine.name !== image.targetName)
      throw new EcuError('VERIFICATION_FAILED', `the Director targets give ${this.serial} no image ${image.targetName}`);
    const hasher = new MultiHasher();
    for await (const chunk of createReadStream(image.path) as AsyncIterable<Buffer>) {
      hasher.update(chunk);
      // Stop reading past the limit: more bytes than the metadata allows is endless data.
      if (hasher.length > mine.file.length) break;
    }
    verifyImage(mine.name, mine.file, { length: hasher.length, hashes: hasher.digest() });
    this.imageVerified = mine.name;
  }

  async install(image: ImageDelivery, log: Logger): Promise<InstallOutcome> {
    const mine = this.directed;
    if (!mine || this.imageVerified !== image.targetName) return installFailed(`${image.targetName} was not verified by ${this.serial}`, 'VERIFICATION_FAILED');
    let outcome: InstallOutcome = installOk(`${image.targetName} verified by ${this.serial}`);
    if (this.fileInstaller) {
      outcome = await this.fileInstaller.install(
        { ecuSerial: this.serial, targetName: image.targetName, imagePath: image.path, target: mine.file, correlationId: image.correlationId },
        log,
      );
    }
    if (outcome.success) {
      await this.saveState({
        installed: { filename: mine.name, length: mine.file.length, hashes: { ...mine.file.hashes } },
        releaseCounter: mine.file.releaseCounter ?? this.state.releaseCounter,
      });
    }
    this.directed = undefined;
    this.imageVerified = undefined;
    return outcome;
  }
}
