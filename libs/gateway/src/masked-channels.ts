/**
 * exec/attach output under a masking decision: the upstream's WebSocket frames are read (not
 * spliced), the stdout and stderr channels go through the text masker — one per channel, with its
 * bounded look-behind across frames — and the masked messages are framed again for the client.
 * The status channel, the v5 close signal and control frames pass unchanged, after the held text of
 * the output channels, so the order the client sees is the upstream's. Output that cannot be read
 * as text (binary, not UTF-8) is withheld: the session ends with a Failure Status on the status
 * channel naming why, and nothing after it is sent.
 */
import { MaskingError, StreamingTextMasker, TextStreamDecoder, type MaskingProfile } from '@portcullis/masking';
import { WebSocketFrameReader, WsOpcode } from './websocket-frame-reader.js';

const STDOUT = 1;
const STDERR = 2;
const STATUS = 3;
/** Longest upstream message read whole (the API server writes at most 32 KiB per frame). */
const MAX_MESSAGE_BYTES = 1024 * 1024;

/** One output channel's decoder and masker. */
interface OutputChannel {
  readonly decoder: TextStreamDecoder;
  readonly masker: StreamingTextMasker;
}

/** Encodes one unmasked (server-to-client) WebSocket frame. */
export function encodeWebSocketFrame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.alloc(2) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = 0x80 | opcode;
  if (n < 126) head[1] = n;
  else if (n < 65536) {
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

/**
 * The upstream-to-client half of a masked exec/attach session. Feed it the upstream's bytes with
 * {@link push}; it calls `write` with the bytes for the client (and the recording).
 */
export class MaskedChannelRelay {
  private readonly reader: WebSocketFrameReader;
  private readonly channels = new Map<number, OutputChannel>();
  private readonly base64: boolean;
  private readonly jsonStatus: boolean;
  private failed = false;
  /** Values masked so far. */
  get maskedFields(): number {
    let n = 0;
    for (const c of this.channels.values()) n += c.masker.count;
    return n;
  }

  constructor(
    protocol: string,
    private readonly profile: MaskingProfile,
    private readonly write: (bytes: Buffer) => void,
    /** Called once when output was withheld; the caller ends the session. */
    private readonly onWithheld: (why: string) => void,
  ) {
    this.base64 = protocol.includes('base64');
    this.jsonStatus = protocol.startsWith('v4.') || protocol.startsWith('v5.');
    this.reader = new WebSocketFrameReader(
      {
        message: (opcode, payload, cut) => this.onMessage(opcode, payload, cut),
        close: () => undefined,
        control: (opcode, payload) => this.onControl(opcode, payload),
      },
      MAX_MESSAGE_BYTES,
    );
  }

  /** True while an output channel holds text back (the caller should {@link flush} it soon). */
  get holding(): boolean {
    for (const c of this.channels.values()) if (c.masker.holding) return true;
    return false;
  }

  /** Bytes from the upstream. */
  push(chunk: Buffer): void {
    if (this.failed) return;
    try {
      this.reader.push(chunk);
    } catch (err) {
      this.withhold(`the upstream's WebSocket framing could not be read (${(err as Error).message})`);
    }
  }

  /** Releases the text every output channel holds: all of it, or up to its last whitespace. */
  flush(all = true): void {
    if (this.failed) return;
    for (const [channel, c] of this.channels) {
      const text = all ? c.masker.flush() : c.masker.flushWords();
      if (text !== '') this.send(channel, Buffer.from(text, 'utf8'));
    }
  }

  private onMessage(opcode: number, payload: Buffer, cut: boolean): void {
    if (this.failed) return;
    if (cut) {
      this.withhold(`an output message exceeded ${MAX_MESSAGE_BYTES} bytes`);
      return;
    }
    const message = this.decode(opcode, payload);
    if (message === undefined) {
      this.withhold('an output message is not a channel message');
      return;
    }
    const { channel, data } = message;
    if ((channel !== STDOUT && channel !== STDERR) || data.length === 0) {
      // Status, the v5 close signal, the empty "ready" message: after everything held, unchanged.
      this.flush();
      this.write(encodeWebSocketFrame(opcode, payload));
      return;
    }
    const c = this.channel(channel);
    let text: string;
    try {
      text = c.masker.push(c.decoder.decode(data));
    } catch (err) {
      this.withhold(err instanceof MaskingError ? err.message : String(err));
      return;
    }
    if (text !== '') this.send(channel, Buffer.from(text, 'utf8'));
  }

  private onControl(opcode: number, payload: Buffer): void {
    if (this.failed) return;
    if (opcode === WsOpcode.close) this.flush();
    this.write(encodeWebSocketFrame(opcode, payload));
  }

  private channel(n: number): OutputChannel {
    let c = this.channels.get(n);
    if (c === undefined) {
      c = { decoder: new TextStreamDecoder(), masker: new StreamingTextMasker(this.profile) };
      this.channels.set(n, c);
    }
    return c;
  }

  private decode(opcode: number, payload: Buffer): { channel: number; data: Buffer } | undefined {
    if (payload.length === 0) return undefined;
    if (this.base64 && opcode === WsOpcode.text) {
      return { channel: (payload[0] ?? 0) - 48, data: Buffer.from(payload.subarray(1).toString('latin1'), 'base64') };
    }
    return { channel: payload[0] ?? 0, data: payload.subarray(1) };
  }

  private send(channel: number, data: Buffer): void {
    if (this.base64) this.write(encodeWebSocketFrame(WsOpcode.text, Buffer.from(`${String.fromCharCode(48 + channel)}${data.toString('base64')}`, 'latin1')));
    else this.write(encodeWebSocketFrame(WsOpcode.binary, Buffer.concat([Buffer.from([channel]), data])));
  }

  /** Ends the output: a Failure Status naming why, then a close frame; nothing after. */
  private withhold(why: string): void {
    if (this.failed) return;
    this.flush();
    this.failed = true;
    const message = `portcullis: ${why}; the rest of the output was withheld because it could not be masked (profile ${this.profile.name})`;
    const status = this.jsonStatus
      ? JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'InternalError', code: 502 })
      : message;
    this.send(STATUS, Buffer.from(status, 'utf8'));
    const close = Buffer.alloc(2);
    close.writeUInt16BE(1011, 0);
    this.write(encodeWebSocketFrame(WsOpcode.close, close));
    this.onWithheld(why);
  }
}
