/**
 * Observability: the Prometheus metrics registry and the catalogue of Portcullis metrics, the
 * readiness checks (served on `/readyz` by the roles' Nest listeners), and OpenTelemetry tracing
 * with trace context carried in bus message headers.
 */
export { Counter, Gauge, Histogram, MetricsRegistry, PROMETHEUS_CONTENT_TYPE } from './metrics-registry.js';
export type { Collector } from './metrics-registry.js';
export { APPROVAL_BUCKETS, BATCH_BUCKETS, LATENCY_BUCKETS, RequestOutcome, createPortcullisMetrics } from './portcullis-metrics.js';
export type { PortcullisMetrics } from './portcullis-metrics.js';
export { observeHeapAfterGc } from './heap-after-gc.js';
export type { HeapAfterGc } from './heap-after-gc.js';
export { Readiness } from './health.js';
export type { ReadinessCheck, ReadinessReport } from './health.js';
export {
  SpanKind,
  contextFromHeaders,
  endSpan,
  inSpan,
  logContext,
  recordStoredMessages,
  runInSpan,
  startSpan,
  startTracing,
  tracingEnabled,
  withAuditId,
  withTraceHeaders,
} from './tracing.js';
export type { Context, Span, Tracing, TracingOptions } from './tracing.js';
