/**
 * Message framing over a byte stream. The protocol has no framing of its own:
 * each message is one DER TLV, so a reader takes the identifier and the
 * (possibly long-form) length, and then exactly that many content bytes.
 *
 * The reader checks the identifier as soon as its first byte arrives (garbage
 * such as an HTTP request is refused at once) and the size as soon as the
 * length is known, before buffering the body; the buffer for a message is
 * allocated once, at its announced size, which the limit has already bounded.
 */
import { CLASS_CONTEXT, MAX_HEADER_BYTES, readHeader } from './der.js';
import { DEFAULT_MESSAGE_LIMITS, maxSizeForTag } from './codec.js';
import type { MessageLimits } from './codec.js';
import { IpUptaneError } from './errors.js';

export class FrameReader {
  /** Bytes received but not yet assigned to a message (at most one header's worth while the header is incomplete). */
  private head = new Uint8Array(0);
  /** The message being filled, once its header is known. */
  private current: { buf: Uint8Array; filled: number } | undefined;
  private readonly frames: Uint8Array[] = [];
  private failed: IpUptaneError | undefined;

  constructor(private readonly limits: MessageLimits = DEFAULT_MESSAGE_LIMITS) {}

  /** True while some bytes of a message have arrived but not all of it. */
  get hasPartial(): boolean {
    return this.current !== undefined || this.head.length > 0;
  }

  /** Bytes of the partial message received so far, and its total size when known. */
  get progress(): { received: number; total: number | undefined } {
    if (this.current) return { received: this.current.filled, total: this.current.buf.length };
    return { received: this.head.length, total: undefined };
  }

  get pendingFrames(): number {
    return this.frames.length;
  }

  /** Feeds received bytes; throws IpUptaneError (and keeps failing) when the stream is not a sequence of acceptable messages. */
  push(chunk: Uint8Array): void {
    if (this.failed) throw this.failed;
    try {
      this.consume(chunk);
    } catch (err) {
      this.failed = err instanceof IpUptaneError ? err : new IpUptaneError('BAD_MESSAGE', String(err), { cause: err });
      throw this.failed;
    }
  }

  /** The next complete message, if any. */
  shift(): Uint8Array | undefined {
    return this.frames.shift();
  }

  private consume(chunk: Uint8Array): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.current) {
        const n = Math.min(chunk.length - pos, this.current.buf.length - this.current.filled);
        this.current.buf.set(chunk.subarray(pos, pos + n), this.current.filled);
        this.current.filled += n;
        pos += n;
        if (this.current.filled === this.current.buf.length) {
          this.frames.push(this.current.buf);
          this.current = undefined;
        }
        continue;
      }
      // Collect header bytes: at most MAX_HEADER_BYTES are ever kept here.
      const take = Math.min(chunk.length - pos, MAX_HEADER_BYTES - this.head.length);
      const head = new Uint8Array(this.head.length + take);
      head.set(this.head, 0);
      head.set(chunk.subarray(pos, pos + take), this.head.length);
      const first = head[0]!;
      if (first >> 6 !== CLASS_CONTEXT || (first & 0x20) === 0) {
        throw new IpUptaneError('BAD_MESSAGE', `not an IP-Secondary message: first byte 0x${first.toString(16).padStart(2, '0')}`, { offset: 0 });
      }
      const header = readHeader(head, 0, head.length, 'AKIpUptaneMes');
      if (header === undefined) {
        // readHeader throws rather than wait once MAX_HEADER_BYTES are present, so this only buffers a short prefix.
        this.head = head;
        pos += take;
        continue;
      }
      const total = header.headerLength + header.length;
      const max = maxSizeForTag(this.limits, header.tagNumber);
      if (total > max) {
        throw new IpUptaneError('MESSAGE_TOO_LARGE', `incoming message of ${total} bytes (tag [${header.tagNumber}]) exceeds the limit of ${max}`, {
          offset: 0,
        });
      }
      const buf = new Uint8Array(total);
      buf.set(head.subarray(0, header.headerLength), 0);
      // The header bytes that came from this chunk; the rest of `head` (if any) was content, handled by the copy loop below.
      pos += header.headerLength - this.head.length;
      this.head = new Uint8Array(0);
      this.current = { buf, filled: header.headerLength };
      if (header.length === 0) {
        this.frames.push(buf);
        this.current = undefined;
      }
    }
  }
}
