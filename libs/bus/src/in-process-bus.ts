import { BusError } from './bus.port.js';
import type { KeyValueStore } from './bus.port.js';
import type { BusHandle } from './bus-handle.js';
import { createLogger, type Logger } from '@portcullis/common';
import { InProcessEventLog } from './in-process-event-log.js';
import type { InProcessEventLogOptions } from './in-process-event-log.js';
import { InProcessKeyValueStore } from './in-process-kv-store.js';
import { InProcessMessageBus } from './in-process-message-bus.js';

/** Options of the in-process bus. */
export interface InProcessBusOptions {
  /**
   * The process's logger: handler failures are reported through it (as `component: bus`).
   * Default: a logger of its own on stderr; pass the process's one.
   */
  readonly logger?: Logger;
  /** Event log tuning. */
  readonly eventLog?: InProcessEventLogOptions;
}

/**
 * The bus, the event log and KV inside this process, for the embedded mode and unit tests: the
 * same ports and semantics as {@link connectNats}, nothing durable. It keeps no timer alive
 * after `close()`.
 */
export function createInProcessBus(opts: InProcessBusOptions = {}): BusHandle {
  const logger = (opts.logger ?? createLogger()).child({ component: 'bus' });
  const bus = new InProcessMessageBus(logger);
  const log = new InProcessEventLog(logger, opts.eventLog);
  const buckets = new Map<string, InProcessKeyValueStore>();
  let closed = false;
  return {
    bus,
    log,
    kv(bucket: string): Promise<KeyValueStore> {
      if (closed) return Promise.reject(new BusError('closed', `open kv bucket ${bucket} failed: the bus is closed`));
      let store = buckets.get(bucket);
      if (store === undefined) buckets.set(bucket, (store = new InProcessKeyValueStore(bucket, logger)));
      return Promise.resolve(store);
    },
    flush(): Promise<void> {
      return Promise.resolve();
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await log.close();
      for (const store of buckets.values()) store.close();
      await bus.close();
    },
  };
}
