/**
 * Records an exec/attach session passing through the edge as WebSocket channel frames (stdin,
 * stdout, stderr, status, resize), batched into session.frames payloads, capped per session.
 * It only observes copies of the bytes: the data path never waits for it. In a masked session it
 * is fed the masked output, and masks its copy of stdin itself (whole lines, released at the end).
 */
import { create, SessionFrameSchema, type SessionFrame } from '@portcullis/contracts';
import { StreamingTextMasker, type MaskingProfile } from '@portcullis/masking';
import { WebSocketFrameReader, WsOpcode } from './websocket-frame-reader.js';

/** Limits of the recording. */
export interface SessionRecordingOptions {
  /** Recorded bytes per session; beyond it frames are cut and the session marked truncated. */
  readonly maxBytes: number;
  /** A batch is emitted at the latest this long after its first frame. */
  readonly flushIntervalMs: number;
  /** A batch is emitted as soon as it holds this many bytes. */
  readonly flushBytes: number;
}

/** The WebSocket subprotocols whose messages carry remotecommand channels. */
const CHANNEL_PROTOCOLS = new Set(['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io']);
const BASE64_CHANNEL_PROTOCOLS = new Set(['base64.channel.k8s.io', 'v4.base64.channel.k8s.io', 'v5.base64.channel.k8s.io']);
const STATUS_CHANNEL = 3;
const RECORDED_CHANNELS = new Set([0, 1, 2, 3, 4]);
// Once the cap is hit, messages are still read far enough to catch the exit status.
const AFTER_CAP_MESSAGE_BYTES = 4096;

/** True when `protocol` is a remotecommand channel protocol the recorder can read. */
export function isRecordableProtocol(protocol: string): boolean {
  return CHANNEL_PROTOCOLS.has(protocol) || BASE64_CHANNEL_PROTOCOLS.has(protocol);
}

/** How the session ended, as far as the status channel said. */
export interface SessionSummary {
  exitCode: number;
  status: string;
  message: string;
  recordedBytes: number;
  truncated: boolean;
  batches: number;
  /** Set when the framing could not be read; recording stopped there. */
  error: string;
}

/**
 * One session's recorder: feed it both directions with {@link fromClient} and {@link fromServer};
 * `emit` receives each batch (sequence from 1).
 */
export class SessionRecorder {
  private readonly client: WebSocketFrameReader;
  private readonly server: WebSocketFrameReader;
  private readonly base64: boolean;
  private pending: SessionFrame[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private sequence = 0;
  private broken = false;
  private finished = false;
  private readonly stdin: { decoder: InstanceType<typeof TextDecoder>; masker: StreamingTextMasker } | undefined;
  readonly summary: SessionSummary = { exitCode: -1, status: '', message: '', recordedBytes: 0, truncated: false, batches: 0, error: '' };

  constructor(
    protocol: string,
    private readonly started: number,
    private readonly options: SessionRecordingOptions,
    private readonly emit: (sequence: number, frames: SessionFrame[]) => void,
    /** Masks the recorded stdin (a masked session's output is masked before it is fed here). */
    mask?: MaskingProfile,
  ) {
    this.base64 = BASE64_CHANNEL_PROTOCOLS.has(protocol);
    if (mask !== undefined) this.stdin = { decoder: new TextDecoder('utf-8', { ignoreBOM: true }), masker: new StreamingTextMasker(mask) };
    // Room for the channel byte, and always enough for a status message however small the cap.
    const cap = Math.max(options.maxBytes + 1, AFTER_CAP_MESSAGE_BYTES);
    this.client = new WebSocketFrameReader({ message: (op, p, cut) => this.onMessage(op, p, cut), close: () => undefined }, cap);
    this.server = new WebSocketFrameReader({ message: (op, p, cut) => this.onMessage(op, p, cut), close: () => undefined }, cap);
  }

  /** Bytes the client sent (masked frames). */
  fromClient(chunk: Buffer): void {
    this.feed(this.client, chunk);
  }

  /** Bytes the upstream sent. */
  fromServer(chunk: Buffer): void {
    this.feed(this.server, chunk);
  }

  /** Emits what is pending and returns the summary; later input is ignored. */
  finish(): SessionSummary {
    if (!this.finished) {
      const rest = this.stdin === undefined ? '' : this.stdin.masker.push(this.stdin.decoder.decode()) + this.stdin.masker.flush();
      if (rest !== '') this.record(0, Buffer.from(rest, 'utf8'), false);
      this.finished = true;
      this.flush();
    }
    return this.summary;
  }

  private feed(reader: WebSocketFrameReader, chunk: Buffer): void {
    if (this.broken || this.finished) return;
    try {
      reader.push(chunk);
    } catch (err) {
      this.broken = true;
      this.summary.error = `recording stopped: ${(err as Error).message}`;
      this.flush();
    }
  }

  private onMessage(opcode: number, payload: Buffer, cut: boolean): void {
    let channel: number;
    let data: Buffer;
    if (this.base64 && opcode === WsOpcode.text) {
      channel = payload[0] === undefined ? -1 : payload[0] - 48;
      data = Buffer.from(payload.subarray(1).toString('latin1'), 'base64');
    } else {
      channel = payload[0] ?? -1;
      data = payload.subarray(1);
    }
    if (!RECORDED_CHANNELS.has(channel) || data.length === 0) return; // v5 close signals, the ready message
    if (channel === STATUS_CHANNEL) this.readStatus(data);
    if (channel === 0 && this.stdin !== undefined) {
      // Binary stdin is recorded as text with replacement characters: the recording is for reading.
      data = Buffer.from(this.stdin.masker.push(this.stdin.decoder.decode(data, { stream: true })), 'utf8');
      if (data.length === 0) return;
    }
    this.record(channel, data, cut);
  }

  private record(channel: number, data: Buffer, cut: boolean): void {
    const room = this.options.maxBytes - this.summary.recordedBytes;
    if (room <= 0) {
      this.summary.truncated = true; // a frame went unrecorded
      return;
    }
    // A message the reader shortened (base64 decoding may lose its last partial quantum) is cut too.
    let truncated = cut;
    if (data.length > room) {
      data = data.subarray(0, room);
      truncated = true;
    }
    this.summary.recordedBytes += data.length;
    if (truncated || this.summary.recordedBytes >= this.options.maxBytes) {
      this.summary.truncated = truncated || this.summary.truncated;
      this.client.maxMessageBytes = AFTER_CAP_MESSAGE_BYTES;
      this.server.maxMessageBytes = AFTER_CAP_MESSAGE_BYTES;
    }
    const offsetMs = Math.max(0, Math.round(performance.now() - this.started));
    this.pending.push(create(SessionFrameSchema, { channel, offsetMs, data, truncated }));
    this.pendingBytes += data.length;
    if (this.pendingBytes >= this.options.flushBytes) this.flush();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.options.flushIntervalMs);
      this.timer.unref();
    }
  }

  // v4+ carries a metav1.Status; older protocols a plain error text (no text means success).
  private readStatus(data: Buffer): void {
    const text = data.toString('utf8');
    try {
      const status = JSON.parse(text) as { status?: string; message?: string; details?: { causes?: { reason?: string; message?: string }[] } };
      this.summary.status = status.status ?? '';
      this.summary.message = (status.message ?? '').slice(0, 1024);
      const exit = status.details?.causes?.find((c) => c.reason === 'ExitCode');
      this.summary.exitCode = status.status === 'Success' ? 0 : exit?.message !== undefined && /^\d+$/.test(exit.message) ? Number(exit.message) : -1;
    } catch {
      this.summary.status = 'Failure';
      this.summary.message = text.slice(0, 1024);
    }
  }

  private flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.length === 0) return;
    const frames = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.summary.batches++;
    this.emit(++this.sequence, frames);
  }
}
