/**
 * JetStream publishes without nats.js's request machinery. `js.publish` is a core request: each
 * one allocates a request object, a timer and — in nats-core 3.4, even with `noAsyncTraces` — a
 * `RequestError` with a captured stack when the request completes successfully (it showed in the
 * edge's profile at every acked audit append). Here every publish carries a reply subject under
 * one wildcard inbox subscription; the ack is matched by token, and one sweeper enforces the
 * timeouts. Same wire protocol as `js.publish`: `Nats-Msg-Id` for de-duplication, the PubAck
 * JSON (or an API error) in the reply, a 503 status when no stream listens.
 */
import { createInbox, headers as natsHeaders, type Msg, type NatsConnection } from '@nats-io/nats-core';
import { BusError, type AppendAck, type BusHeaders } from './bus.port.js';

interface Pending {
  readonly resolve: (ack: AppendAck) => void;
  readonly reject: (error: BusError) => void;
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly what: string;
}

/** What the publisher needs to know about the connection when a publish fails. */
export interface AckConnectionFacts {
  isConnected(): boolean;
}

interface PubAckJson {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code?: number; err_code?: number; description?: string };
}

/** Publishes to JetStream and resolves with the stream's acknowledgement. */
export class JetStreamAckInbox {
  private readonly prefix: string;
  private readonly pending = new Map<string, Pending>();
  private next = 0;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly decoder = new TextDecoder();

  constructor(
    private readonly nc: NatsConnection,
    private readonly facts: AckConnectionFacts,
    /** The connection's inbox prefix (its NATS user may subscribe there only); default `_INBOX`. */
    inboxPrefix?: string,
  ) {
    this.prefix = createInbox(inboxPrefix);
    // Lives as long as the connection (nats.js re-subscribes after a reconnect); pending acks time out.
    nc.subscribe(`${this.prefix}.*`, { callback: (err, msg) => (err === null ? this.onReply(msg) : this.failAll(err)) });
  }

  /** Publishes `data` on `subject` with `Nats-Msg-Id: msgId`; resolves with the ack, rejects with a {@link BusError}. */
  publish(subject: string, data: Uint8Array, msgId: string, timeoutMs: number, extra: BusHeaders | undefined, what: string): Promise<AppendAck> {
    const token = (this.next++).toString(36);
    const h = natsHeaders();
    h.set('Nats-Msg-Id', msgId);
    if (extra !== undefined) for (const [k, v] of Object.entries(extra)) h.set(k, v);
    return new Promise<AppendAck>((resolve, reject) => {
      this.pending.set(token, { resolve, reject, deadline: Date.now() + timeoutMs, timeoutMs, what });
      this.startSweeper();
      try {
        this.nc.publish(subject, data, { reply: `${this.prefix}.${token}`, headers: h });
      } catch (error) {
        this.pending.delete(token);
        reject(new BusError('unavailable', `${what} failed: ${(error as Error).message}`, { cause: error }));
      }
    });
  }

  private onReply(msg: Msg): void {
    const token = msg.subject.slice(this.prefix.length + 1);
    const p = this.pending.get(token);
    if (p === undefined) return; // timed out already
    this.pending.delete(token);
    if (msg.headers?.hasError === true) {
      // 503 "no responders": no stream captures the subject, or JetStream is off.
      p.reject(
        msg.headers.code === 503
          ? new BusError('unavailable', `${p.what} failed: no JetStream stream answers (JetStream disabled or no stream for the subject)`)
          : new BusError('unavailable', `${p.what} failed: ${msg.headers.code} ${msg.headers.description}`),
      );
      return;
    }
    let ack: PubAckJson;
    try {
      ack = JSON.parse(this.decoder.decode(msg.data)) as PubAckJson;
    } catch (cause) {
      p.reject(new BusError('unavailable', `${p.what} failed: the acknowledgement is not JSON`, { cause }));
      return;
    }
    if (ack.error !== undefined) {
      p.reject(
        new BusError('unavailable', `${p.what} failed: JetStream error ${ack.error.err_code ?? ack.error.code ?? '?'}: ${ack.error.description ?? 'unknown'}`),
      );
      return;
    }
    if (typeof ack.stream !== 'string' || typeof ack.seq !== 'number') {
      p.reject(new BusError('unavailable', `${p.what} failed: the reply is not a JetStream acknowledgement`));
      return;
    }
    p.resolve({ stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate === true });
  }

  private failAll(error: unknown): void {
    for (const [token, p] of this.pending) {
      this.pending.delete(token);
      p.reject(new BusError('unavailable', `${p.what} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
    }
  }

  /** One timer for every pending publish (a timer per publish showed in profiles too). */
  private startSweeper(): void {
    if (this.sweeper !== undefined) return;
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const [token, p] of this.pending) {
        if (p.deadline > now) continue;
        this.pending.delete(token);
        // A missing ack while disconnected is an outage, not a slow stream.
        p.reject(
          this.facts.isConnected()
            ? new BusError('timeout', `${p.what} timed out after ${p.timeoutMs} ms`)
            : new BusError('unavailable', `${p.what} failed: NATS is disconnected`),
        );
      }
      if (this.pending.size === 0 && this.sweeper !== undefined) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
      }
    }, 50);
    this.sweeper.unref();
  }
}
