import { BusError } from './bus.port.js';
import type { BusSubscription, KeyValueStore } from './bus.port.js';
import { errorMessage } from './error-message.js';
import type { Logger } from '@portcullis/common';

type Entry = { value: Uint8Array; revision: number } | undefined;
type Watcher = (entry: Entry, revision: number) => void;

/**
 * {@link KeyValueStore} in memory: one revision counter per bucket (like a NATS KV stream
 * sequence); watchers get the current value (`undefined` when none), then every change.
 */
export class InProcessKeyValueStore implements KeyValueStore {
  private revision = 0;
  private closed = false;
  private readonly entries = new Map<string, { value: Uint8Array; revision: number }>();
  private readonly watchers = new Map<string, Set<Watcher>>();

  constructor(
    private readonly bucket: string,
    private readonly logger: Logger,
  ) {}

  get(key: string): Promise<Entry> {
    if (this.closed) return Promise.reject(this.closedError(`kv get ${key}`));
    const e = this.entries.get(key);
    return Promise.resolve(e === undefined ? undefined : { value: e.value.slice(), revision: e.revision });
  }

  put(key: string, value: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(this.closedError(`kv put ${key}`));
    const revision = ++this.revision;
    const entry = { value: value.slice(), revision };
    this.entries.set(key, entry);
    for (const w of this.watchers.get(key) ?? []) {
      queueMicrotask(() => w({ value: entry.value.slice(), revision }, revision));
    }
    return Promise.resolve(revision);
  }

  watch(key: string, handler: (entry: Entry) => void): BusSubscription {
    if (this.closed) throw this.closedError(`kv watch ${key}`);
    let active = true;
    let delivered = false;
    let lastRevision = 0;
    const watcher: Watcher = (entry, revision) => {
      if (!active || (delivered && revision <= lastRevision)) return;
      delivered = true;
      lastRevision = revision;
      try {
        handler(entry);
      } catch (error) {
        this.logger.error('kv watch handler threw', { bucket: this.bucket, key, error: errorMessage(error) });
      }
    };
    let set = this.watchers.get(key);
    if (set === undefined) this.watchers.set(key, (set = new Set()));
    set.add(watcher);
    queueMicrotask(() => {
      const current = this.entries.get(key);
      watcher(current === undefined ? undefined : { value: current.value.slice(), revision: current.revision }, current?.revision ?? 0);
    });
    return {
      unsubscribe: () => {
        active = false;
        this.watchers.get(key)?.delete(watcher);
        return Promise.resolve();
      },
    };
  }

  /** Ends every watcher; later calls fail with `closed`. */
  close(): void {
    this.closed = true;
    this.watchers.clear();
  }

  private closedError(what: string): BusError {
    return new BusError('closed', `${what} in bucket ${this.bucket} failed: the bus is closed`);
  }
}
