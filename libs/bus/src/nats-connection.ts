import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { BusError } from './bus.port.js';
import type { EventLog, KeyValueStore, MessageBus } from './bus.port.js';
import type { BusHandle } from './bus-handle.js';
import { createLogger, type Logger } from '@portcullis/common';
import { errorMessage } from './error-message.js';
import { NatsEventLog } from './nats-event-log.js';
import type { NatsEventLogOptions } from './nats-event-log.js';
import { NatsKeyValueStore } from './nats-kv-store.js';
import { toBusError } from './nats-errors.js';
import { NatsMessageBus } from './nats-message-bus.js';
import type { NatsConnectionState } from './nats-message-bus.js';

/** How to reach NATS. */
export interface NatsBusOptions {
  /** Server URLs, e.g. `nats://127.0.0.1:4222`. */
  readonly servers: readonly string[];
  /** Connection name shown by the server (`portcullis-edge-<host>`). */
  readonly name: string;
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  /**
   * Prefix of the connection's reply inboxes (requests, JetStream acks and consumers), e.g.
   * `_INBOX_edge`: a role's NATS user may subscribe to its own prefix only. Default `_INBOX`.
   */
  readonly inboxPrefix?: string;
  /** Pause between reconnect attempts. Default 1000 ms. */
  readonly reconnectWaitMs?: number;
  /** How long the first connect may take. Default 5000 ms. */
  readonly connectTimeoutMs?: number;
  /**
   * Skip building an Error with a stack for every request (nats.js `noAsyncTraces`). Default
   * true: measured +45 % proxy throughput; only the benchmark turns it off.
   */
  readonly noAsyncTraces?: boolean;
  /**
   * The process's logger: the client's status (disconnects, reconnects, slow consumers, server
   * errors…) and consumer retries are reported through it (as `component: bus`). Default: a
   * logger of its own on stderr; pass the process's one.
   */
  readonly logger?: Logger;
  /** JetStream event log tuning. */
  readonly eventLog?: NatsEventLogOptions;
  /** How long `close()` waits for in-flight work to drain. Default 5000 ms. */
  readonly drainTimeoutMs?: number;
}

/** A process's one NATS connection with the bus, the event log and KV over it. */
export interface NatsBus extends BusHandle {
  /** The underlying connection, for health checks and diagnostics only. */
  readonly connection: NatsConnection;
}

/**
 * Connects to NATS and returns the bus, the event log and KV over one connection. The first
 * connect must succeed (a {@link BusError} `unavailable` naming the servers otherwise: the
 * supervisor restarts the role); after that it reconnects forever, and calls made while
 * disconnected fail fast with `unavailable`.
 */
export async function connectNats(opts: NatsBusOptions): Promise<NatsBus> {
  const logger = (opts.logger ?? createLogger()).child({ component: 'bus' });
  // Errors and logs name the servers, never credentials a URL may carry (nats://user:pass@host).
  const shown = opts.servers.map(withoutCredentials).join(', ');
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: [...opts.servers],
      name: opts.name,
      ...(opts.user === undefined ? {} : { user: opts.user }),
      ...(opts.pass === undefined ? {} : { pass: opts.pass }),
      ...(opts.token === undefined ? {} : { token: opts.token }),
      ...(opts.inboxPrefix === undefined ? {} : { inboxPrefix: opts.inboxPrefix }),
      noAsyncTraces: opts.noAsyncTraces ?? true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: opts.reconnectWaitMs ?? 1000,
      reconnectJitter: 100,
      timeout: opts.connectTimeoutMs ?? 5000,
      waitOnFirstConnect: false,
    });
  } catch (error) {
    throw new BusError('unavailable', `cannot connect to NATS at ${shown}: ${errorMessage(error)}`, { cause: error });
  }

  let connected = true;
  let closing: Promise<void> | undefined;
  const drainTimeoutMs = opts.drainTimeoutMs ?? 5000;
  const kvStores = new Map<string, Promise<NatsKeyValueStore>>();

  const state: NatsConnectionState = {
    nc,
    logger,
    inboxPrefix: opts.inboxPrefix,
    isConnected: () => connected && !nc.isClosed(),
    closedByUs: () => closing !== undefined,
    assertUsable(what) {
      if (closing !== undefined) throw new BusError('closed', `${what} failed: the bus connection is closed`);
      if (nc.isClosed()) throw new BusError('unavailable', `${what} failed: the NATS connection is closed`);
      if (!connected) throw new BusError('unavailable', `${what} failed: NATS is disconnected (${shown})`);
    },
    close: () => close(),
  };

  void (async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          connected = false;
          logger.warn('NATS disconnected', { server: s.server, name: opts.name });
          break;
        case 'reconnect':
          connected = true;
          logger.info('NATS reconnected', { server: s.server, name: opts.name });
          break;
        case 'reconnecting':
          logger.debug('NATS reconnecting', { name: opts.name });
          break;
        case 'forceReconnect':
          logger.info('NATS reconnect forced', { name: opts.name });
          break;
        case 'staleConnection':
          logger.warn('NATS connection stale (pings unanswered); reconnecting', { name: opts.name });
          break;
        case 'ldm':
          logger.warn('NATS server entering lame duck mode; clients will move', { server: s.server, name: opts.name });
          break;
        case 'update':
          logger.info('NATS cluster servers changed', { added: s.added ?? [], deleted: s.deleted ?? [], name: opts.name });
          break;
        case 'slowConsumer':
          logger.warn('NATS slow consumer: messages pending in the client', { subject: s.sub.getSubject(), pending: s.pending, name: opts.name });
          break;
        case 'error':
          logger.error('NATS error', { error: errorMessage(s.error), name: opts.name });
          break;
        case 'ping':
          logger.debug('NATS ping outstanding', { pendingPings: s.pendingPings, name: opts.name });
          break;
        case 'close':
          connected = false;
          if (closing === undefined) logger.warn('NATS connection closed', { name: opts.name });
          break;
      }
    }
  })().catch(() => undefined);

  const js = jetstream(nc);
  // checkAPI off: no round trip now; JetStream problems surface on the calls that need it.
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const log = new NatsEventLog(state, js, jsm, opts.eventLog);
  const bus = new NatsMessageBus(state);
  const kvm = new Kvm(js);

  async function openKv(bucket: string): Promise<NatsKeyValueStore> {
    const what = `open kv bucket ${bucket}`;
    state.assertUsable(what);
    try {
      return new NatsKeyValueStore(state, bucket, await kvm.create(bucket));
    } catch (error) {
      throw toBusError(error, what, state);
    }
  }

  function close(): Promise<void> {
    closing ??= (async () => {
      await log.stopAll();
      await Promise.allSettled([...kvStores.values()].map(async (s) => (await s).stopAll()));
      if (nc.isClosed()) return;
      if (connected) {
        const drained = nc.drain().catch(() => undefined);
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, drainTimeoutMs);
          timer.unref();
        });
        await Promise.race([drained, timedOut]);
        clearTimeout(timer);
      }
      if (!nc.isClosed()) await nc.close();
    })();
    return closing;
  }

  return {
    connection: nc,
    bus: bus satisfies MessageBus,
    log: log satisfies EventLog,
    kv(bucket: string): Promise<KeyValueStore> {
      let store = kvStores.get(bucket);
      if (store === undefined) {
        store = openKv(bucket);
        kvStores.set(bucket, store);
        // A failed open is not cached: the next call tries again.
        store.catch(() => kvStores.delete(bucket));
      }
      return store;
    },
    async flush(): Promise<void> {
      state.assertUsable('flush');
      try {
        await nc.flush();
      } catch (error) {
        throw toBusError(error, 'flush', state);
      }
    },
    close,
  };
}

/** A NATS server URL without the user and password it may carry, for errors and logs. */
export function withoutCredentials(server: string): string {
  return server.replace(/^([a-z]+:\/\/)[^@/]*@/i, '$1');
}
