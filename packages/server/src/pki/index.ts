/**
 * The server's PKI: CAs, the gateway certificate, device and bootstrap
 * certificates, PKCS#12, credentials.zip, and client-certificate identity.
 * Pure functions and small classes over PEM strings and Buffers: no storage,
 * no HTTP. See README.md.
 */
export * from './errors.js';
export * from './keys.js';
export { derToPem, pemCertificates, fingerprint256, readCertificateFields, type IssuedCertificate, type CertificateFields } from './x509.js';
export * from './ca.js';
export * from './server-cert.js';
export * from './device-cert.js';
export * from './pkcs12.js';
export * from './credentials-zip.js';
export * from './verify-client-cert.js';
