import type { EventLog, KeyValueStore, MessageBus } from './bus.port.js';

/**
 * One bus client as a process holds it: core messaging, the event log and KV buckets over one
 * connection (NATS) or one in-memory world (embedded mode).
 */
export interface BusHandle {
  /** Core request-reply and broadcast. */
  readonly bus: MessageBus;
  /** The durable event log. */
  readonly log: EventLog;
  /** Opens a KV bucket, creating it when it does not exist yet. */
  kv(bucket: string): Promise<KeyValueStore>;
  /**
   * Resolves when the server has processed everything this client sent so far, subscriptions
   * included: after `serve()` + `flush()`, other processes' requests reach the new member.
   */
  flush(): Promise<void>;
  /** Stops consumers and watchers, drains and closes the connection. */
  close(): Promise<void>;
}

/** Headers the bus implementations use on the wire (NATS reply convention). */
export const BusWireHeaders = {
  /** On a reply: the responder threw; the value is its message and the body is empty. */
  error: 'Portcullis-Error',
} as const;

/** Longest error text carried in a reply header. */
export const MAX_ERROR_HEADER_LENGTH = 1024;

/** Makes an error message safe for a header value: one line, bounded length. */
export function headerSafeMessage(message: string): string {
  const oneLine = message.replace(/[\r\n]+/g, ' ').trim();
  return oneLine.length > MAX_ERROR_HEADER_LENGTH ? `${oneLine.slice(0, MAX_ERROR_HEADER_LENGTH - 1)}…` : oneLine || 'error';
}
