import { readFileSync } from 'node:fs';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { PortcullisConfig } from '@portcullis/config';
import type { Logger } from '@portcullis/common';
import type { BusHandle, NatsBus } from '@portcullis/bus';
import { Streams } from '@portcullis/contracts';
import {
  createPortcullisMetrics,
  ObservabilityServer,
  Readiness,
  startTracing,
  type PortcullisMetrics,
  type Tracing,
} from '@portcullis/observability';

/** One process's metrics, readiness checks, optional listener and optional tracer. */
export interface Observability {
  readonly metrics: PortcullisMetrics;
  readonly readiness: Readiness;
  /** The observability listener's port, when `observability.listen` is set. */
  readonly port: number | undefined;
  close(): Promise<void>;
}

const VERSION = ((): string => {
  try {
    return (JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
})();

/** Tracing is started before the bus connects, so the first request is traced too. */
export async function startProcessTracing(config: PortcullisConfig, role: string): Promise<Tracing | undefined> {
  const otlp = config.observability.otlp;
  if (otlp.endpoint === undefined) return undefined;
  return startTracing({ endpoint: otlp.endpoint, serviceName: otlp.serviceName, role, nodeId: config.node.id, sampleRatio: otlp.sampleRatio });
}

/**
 * Metrics and readiness for a process. In cluster mode readiness means: NATS connected and the
 * audit stream present (roles add ClickHouse, Redis, … as they start).
 */
export async function createObservability(
  config: PortcullisConfig,
  role: string,
  handle: BusHandle,
  logger: Logger,
  tracing: Tracing | undefined,
): Promise<Observability> {
  const metrics = createPortcullisMetrics({ role, version: VERSION });
  const readiness = new Readiness();
  readiness.add({ name: 'bus', check: () => handle.bus.isConnected() });
  if ('connection' in handle) {
    const nc = (handle as NatsBus).connection;
    let jsm: JetStreamManager | undefined;
    readiness.add({
      name: 'jetstream',
      check: async () => {
        jsm ??= await jetstreamManager(nc);
        await jsm.streams.info(Streams.audit.name);
        return true;
      },
    });
  }
  let server: ObservabilityServer | undefined;
  let port: number | undefined;
  const listen = config.observability.listen;
  if (listen !== undefined) {
    server = new ObservabilityServer(metrics.registry, readiness);
    port = await server.listen(listen.host, listen.port);
    logger.info('observability listening', { url: `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${port}`, paths: ['/metrics', '/healthz', '/readyz'] });
  }
  return {
    metrics,
    readiness,
    port,
    async close() {
      await server?.close();
      await tracing?.shutdown();
    },
  };
}
