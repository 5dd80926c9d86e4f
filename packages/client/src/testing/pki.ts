/**
 * A throw-away PKI for tests: a CA, a server certificate for 127.0.0.1, device
 * certificates with the device id as CN, PKCS#12 bundles as a provisioning
 * server returns them, and credentials.zip files as OTA CE ships them.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import forge from 'node-forge';

export interface IssuedCert {
  /** PEM certificate. */
  readonly cert: string;
  /** PEM private key (PKCS#1 RSA). */
  readonly key: string;
}

export interface IssueOptions {
  /** A TLS server certificate (127.0.0.1 and localhost as subject alternative names). */
  readonly server?: boolean;
  readonly days?: number;
}

function rsaKeys(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey } {
  // Node generates the key (fast); forge only signs certificates with it.
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { format: 'pem', type: 'pkcs1' },
    publicKeyEncoding: { format: 'pem', type: 'spki' },
  });
  const priv = forge.pki.privateKeyFromPem(privateKey);
  return { privateKey: priv, publicKey: forge.pki.setRsaPublicKey(priv.n, priv.e) };
}

function serial(): string {
  // Positive: the first bit clear.
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f;
  return b.toString('hex');
}

export class TestPki {
  private constructor(
    private readonly caKey: forge.pki.rsa.PrivateKey,
    private readonly caCertificate: forge.pki.Certificate,
  ) {}

  static create(name = 'Uptide Test CA'): TestPki {
    const keys = rsaKeys();
    const cert = forge.pki.createCertificate();
    cert.publicKey = keys.publicKey;
    cert.serialNumber = serial();
    cert.validity.notBefore = new Date(Date.now() - 3600_000);
    cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 86400_000);
    const attrs = [{ name: 'commonName', value: name }];
    cert.setSubject(attrs);
    cert.setIssuer(attrs);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    cert.sign(keys.privateKey, forge.md.sha256.create());
    return new TestPki(keys.privateKey, cert);
  }

  /** The CA certificate (PEM). */
  get caCert(): string {
    return forge.pki.certificateToPem(this.caCertificate);
  }

  private issueForge(cn: string, options: IssueOptions = {}): { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey } {
    const keys = rsaKeys();
    const cert = forge.pki.createCertificate();
    cert.publicKey = keys.publicKey;
    cert.serialNumber = serial();
    cert.validity.notBefore = new Date(Date.now() - 3600_000);
    cert.validity.notAfter = new Date(Date.now() + (options.days ?? 365) * 86400_000);
    cert.setSubject([{ name: 'commonName', value: cn }]);
    cert.setIssuer(this.caCertificate.subject.attributes);
    const ext: unknown[] = [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: !!options.server, clientAuth: !options.server },
    ];
    if (options.server) {
      ext.push({
        name: 'subjectAltName',
        altNames: [
          { type: 7, ip: '127.0.0.1' },
          { type: 2, value: 'localhost' },
        ],
      });
    }
    cert.setExtensions(ext as never[]);
    cert.sign(this.caKey, forge.md.sha256.create());
    return { cert, key: keys.privateKey };
  }

  /** A certificate and key signed by this CA. */
  issue(cn: string, options: IssueOptions = {}): IssuedCert {
    const { cert, key } = this.issueForge(cn, options);
    return { cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(key) };
  }

  /** A DER PKCS#12 with a new key, its certificate (CN) and this CA, as `POST /devices` returns it. */
  pkcs12(cn: string, password = '', options: { includeCa?: boolean } = {}): Buffer {
    const { cert, key } = this.issueForge(cn);
    const chain = options.includeCa === false ? [cert] : [cert, this.caCertificate];
    const asn = forge.pkcs12.toPkcs12Asn1(key, chain, password, { algorithm: '3des' });
    return Buffer.from(forge.asn1.toDer(asn).getBytes(), 'binary');
  }
}

/** A zip archive of stored (uncompressed) files, enough for credentials.zip. */
export function makeZip(files: Readonly<Record<string, Uint8Array | string>>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, content] of Object.entries(files)) {
    const data = typeof content === 'string' ? Buffer.from(content, 'utf8') : Buffer.from(content);
    const nameBuf = Buffer.from(name, 'utf8');
    const crc = crc32(data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0, 6);
    local.writeUInt16LE(0, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0, 8);
    central.writeUInt16LE(0, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBuf.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBuf, data);
    centrals.push(central, nameBuf);
    offset += local.length + nameBuf.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(files).length, 8);
  end.writeUInt16LE(Object.keys(files).length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}
