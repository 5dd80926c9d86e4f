/**
 * aktualizr's IP-Secondary protocol (DER-encoded ASN.1 over TCP): the message
 * codec, the framing, and the Primary's and the Secondary's ends of the
 * connection. See README.md in this folder.
 */
export * from './errors.js';
export * from './codec.js';
export { FrameReader } from './framing.js';
export * from './transport.js';
