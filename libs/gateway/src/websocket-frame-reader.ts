/**
 * Reads WebSocket frames (RFC 6455) out of a byte stream the edge passes through unchanged, so a
 * session can be recorded without terminating the WebSocket. Masked client payloads are unmasked
 * into a copy; fragmented messages are reassembled; control frames are reported separately.
 */

/** WebSocket opcodes. */
export const WsOpcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** Why a byte stream is not valid WebSocket framing. */
export class WebSocketFrameError extends Error {
  override readonly name = 'WebSocketFrameError';
}

/** Receives each complete data message (text or binary) and each close frame. */
export interface WebSocketMessageSink {
  /** `cut`: the payload was longer than `maxMessageBytes` and is reported shortened. */
  message(opcode: number, payload: Buffer, cut: boolean): void;
  close(code: number): void;
  /** Every control frame (close, ping, pong) with its payload, for a reader that re-frames the stream. */
  control?(opcode: number, payload: Buffer): void;
}

const HEADER_MAX = 14;

/**
 * Incremental frame reader: feed it chunks in order with {@link push}. It keeps at most one
 * partial frame header and the current message's payload; `maxMessageBytes` bounds the latter
 * (a longer message is reported cut to that size).
 */
export class WebSocketFrameReader {
  private header = Buffer.alloc(HEADER_MAX);
  private headerLen = 0;
  private remaining = 0;
  private mask: Buffer | undefined;
  private maskOffset = 0;
  private opcode = 0;
  private fin = false;
  private frameParts: Buffer[] = [];
  private message: Buffer[] = [];
  private messageOpcode = 0;
  private messageBytes = 0;
  private messageCut = false;
  private inFrame = false;

  /**
   * @param maxMessageBytes - payload kept per message (the rest is skipped, framing still
   *   followed); may be lowered while reading.
   */
  constructor(
    private readonly sink: WebSocketMessageSink,
    public maxMessageBytes: number,
  ) {}

  /** Feeds the next chunk of the stream; throws {@link WebSocketFrameError} on bad framing. */
  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (!this.inFrame) {
        at = this.readHeader(chunk, at);
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - at);
      if (take > 0) this.takePayload(chunk.subarray(at, at + take));
      at += take;
      this.remaining -= take;
      if (this.remaining === 0) this.endFrame();
    }
  }

  private readHeader(chunk: Buffer, at: number): number {
    // Copy header bytes until the whole header (length and mask included) is known.
    while (at < chunk.length) {
      this.header[this.headerLen++] = chunk[at++] ?? 0;
      const needed = this.headerNeeded();
      if (needed !== undefined && this.headerLen >= needed) {
        this.startFrame();
        if (this.remaining === 0) this.endFrame();
        return at;
      }
    }
    return at;
  }

  private headerNeeded(): number | undefined {
    if (this.headerLen < 2) return undefined;
    const b1 = this.header[1] ?? 0;
    const len7 = b1 & 0x7f;
    const masked = (b1 & 0x80) !== 0;
    return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
  }

  private startFrame(): void {
    const b0 = this.header[0] ?? 0;
    const b1 = this.header[1] ?? 0;
    if ((b0 & 0x70) !== 0) throw new WebSocketFrameError('reserved bits set: a WebSocket extension is in use');
    this.fin = (b0 & 0x80) !== 0;
    this.opcode = b0 & 0x0f;
    const len7 = b1 & 0x7f;
    let offset = 2;
    if (len7 === 126) {
      this.remaining = this.header.readUInt16BE(2);
      offset = 4;
    } else if (len7 === 127) {
      const big = this.header.readBigUInt64BE(2);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new WebSocketFrameError('frame too long');
      this.remaining = Number(big);
      offset = 10;
    } else {
      this.remaining = len7;
    }
    this.mask = (b1 & 0x80) !== 0 ? Buffer.from(this.header.subarray(offset, offset + 4)) : undefined;
    this.maskOffset = 0;
    this.headerLen = 0;
    this.inFrame = true;
    this.frameParts = [];
    if (this.opcode >= 8 && (!this.fin || this.remaining > 125)) throw new WebSocketFrameError('bad control frame');
    if (this.opcode !== WsOpcode.continuation && this.opcode < 8) {
      this.message = [];
      this.messageBytes = 0;
      this.messageCut = false;
      this.messageOpcode = this.opcode;
    }
  }

  private takePayload(part: Buffer): void {
    const isControl = this.opcode >= 8;
    const room = isControl ? part.length : Math.max(0, this.maxMessageBytes - this.messageBytes);
    if (!isControl && part.length > room) this.messageCut = true;
    if (room === 0 && !isControl) {
      this.maskOffset = (this.maskOffset + part.length) & 3;
      return; // beyond the cap: skipped, framing still tracked
    }
    const kept = part.length > room ? part.subarray(0, room) : part;
    let copy: Buffer;
    if (this.mask !== undefined) {
      copy = Buffer.allocUnsafe(kept.length);
      for (let i = 0; i < kept.length; i++) copy[i] = (kept[i] ?? 0) ^ (this.mask[(this.maskOffset + i) & 3] ?? 0);
    } else {
      copy = Buffer.from(kept);
    }
    // Advance the mask by everything consumed, kept or not.
    this.maskOffset = (this.maskOffset + part.length) & 3;
    if (isControl) this.frameParts.push(copy);
    else {
      this.message.push(copy);
      this.messageBytes += copy.length;
    }
  }

  private endFrame(): void {
    this.inFrame = false;
    if (this.opcode >= 8) {
      const body = Buffer.concat(this.frameParts);
      this.sink.control?.(this.opcode, body);
      if (this.opcode === WsOpcode.close) this.sink.close(body.length >= 2 ? body.readUInt16BE(0) : 1005);
      return; // ping/pong
    }
    if (!this.fin) return;
    const payload = this.message.length === 1 ? (this.message[0] ?? Buffer.alloc(0)) : Buffer.concat(this.message);
    this.message = [];
    this.sink.message(this.messageOpcode, payload, this.messageCut);
  }
}
