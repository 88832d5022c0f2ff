import { readFileSync } from 'node:fs';
import type { PortcullisConfig } from '@portcullis/config';
import { startTracing, type Tracing } from '@portcullis/observability';

/** The package version, for `portcullis_build_info`. */
export const PORTCULLIS_VERSION = ((): string => {
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
