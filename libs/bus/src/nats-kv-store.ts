import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/nats-core';
import type { BusSubscription, KeyValueStore } from './bus.port.js';
import { errorMessage } from './error-message.js';
import { toBusError } from './nats-errors.js';
import type { NatsConnectionState } from './nats-message-bus.js';

type Entry = { value: Uint8Array; revision: number } | undefined;

/** {@link KeyValueStore} over a NATS KV bucket. A deleted key reads and watches as `undefined`. */
export class NatsKeyValueStore implements KeyValueStore {
  private readonly watchers = new Set<BusSubscription>();

  constructor(
    private readonly state: NatsConnectionState,
    private readonly bucket: string,
    private readonly kv: KV,
  ) {}

  async get(key: string): Promise<Entry> {
    const what = `kv get ${this.bucket}/${key}`;
    this.state.assertUsable(what);
    try {
      const e = await this.kv.get(key);
      return e === null || e.operation !== 'PUT' ? undefined : { value: e.value, revision: e.revision };
    } catch (error) {
      throw toBusError(error, what, this.state);
    }
  }

  async put(key: string, value: Uint8Array): Promise<number> {
    const what = `kv put ${this.bucket}/${key}`;
    this.state.assertUsable(what);
    try {
      return await this.kv.put(key, value);
    } catch (error) {
      throw toBusError(error, what, this.state);
    }
  }

  /**
   * Calls the handler once with the current value (`undefined` when the key has none), then with
   * every change, in revision order.
   */
  watch(key: string, handler: (entry: Entry) => void): BusSubscription {
    let stopped = false;
    let lastRevision = 0;
    let delivered = false;
    let iter: QueuedIterator<KvWatchEntry> | undefined;
    const emit = (entry: Entry, revision: number): void => {
      if (stopped || (delivered && revision <= lastRevision)) return;
      delivered = true;
      lastRevision = Math.max(lastRevision, revision);
      try {
        handler(entry);
      } catch (error) {
        this.state.logger.error('kv watch handler threw', { bucket: this.bucket, key, error: errorMessage(error) });
      }
    };
    const run = (async () => {
      iter = await this.kv.watch({ key });
      if (stopped) iter.stop();
      // The watcher sends nothing when the key has no value; say so explicitly to the handler.
      void this.kv
        .get(key)
        .then((e) => {
          if (!delivered && (e === null || e.operation !== 'PUT')) emit(undefined, e?.revision ?? 0);
        })
        .catch(() => undefined);
      for await (const e of iter) {
        emit(e.operation === 'PUT' ? { value: e.value, revision: e.revision } : undefined, e.revision);
      }
    })().catch((error: unknown) => {
      if (!stopped) this.state.logger.error('kv watch failed', { bucket: this.bucket, key, error: errorMessage(error) });
    });
    const sub: BusSubscription = {
      unsubscribe: async () => {
        stopped = true;
        iter?.stop();
        await run;
        this.watchers.delete(sub);
      },
    };
    this.watchers.add(sub);
    return sub;
  }

  /** Stops every watcher (before the connection closes). */
  async stopAll(): Promise<void> {
    await Promise.allSettled([...this.watchers].map((w) => w.unsubscribe()));
  }
}
