import type { Provider } from '@nestjs/common';
import type { PortcullisConfig } from '@portcullis/config';
import { ClickHouseAuditSink, type AuditSink } from '@portcullis/audit-store';
import { CONFIG, EMBEDDED_AUDIT_STORE } from '../../runtime/src/index.js';

/** The queryable audit store (`AuditSink`): ClickHouse in cluster mode, the SQLite log's own store when embedded. */
export const AUDIT_SINK = Symbol('portcullis.audit-sink');

/** The audit sink: the embedded store as it is, or ClickHouse with its schema migrated (fails start-up when unreachable). */
export const auditProviders: Provider[] = [
  {
    provide: AUDIT_SINK,
    inject: [CONFIG, EMBEDDED_AUDIT_STORE],
    useFactory: async (config: PortcullisConfig, embedded: AuditSink | undefined): Promise<AuditSink> => {
      if (config.bus.mode === 'embedded') {
        if (embedded === undefined) throw new Error('the embedded audit store is not open');
        return embedded;
      }
      const ch = config.audit.clickhouse;
      const sink = new ClickHouseAuditSink({ url: ch.url, database: ch.database, username: ch.username, password: ch.password });
      await sink.migrate();
      return sink;
    },
  },
];
