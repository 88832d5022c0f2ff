/**
 * Every metric Portcullis exports, by role. Names follow the Prometheus conventions (`_total`
 * counters, base units in `_seconds` and `_bytes`); the README's "Metrics" table lists them.
 * Each process registers the whole catalogue, so a dashboard finds the same names everywhere;
 * a role updates only its own.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { observeHeapAfterGc, type HeapAfterGc } from './heap-after-gc.js';
import { MetricsRegistry, type Counter, type Gauge, type Histogram } from './metrics-registry.js';

/** Latency buckets (seconds) for sub-millisecond to multi-second hops. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;
/** Approval waits: seconds to an hour. */
export const APPROVAL_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600] as const;
/** Rows per ClickHouse insert. */
export const BATCH_BUCKETS = [1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000] as const;

/** What `decision` says on `portcullis_edge_requests_total`. */
export const RequestOutcome = {
  Allow: 'allow',
  Deny: 'deny',
  RequireApproval: 'require_approval',
  Mask: 'mask',
  /** Refused before any decision: bad path, bad token, unknown connection, no decision. */
  Rejected: 'rejected',
  /** Decided, but the audit events were not acknowledged: not forwarded. */
  AuditUnavailable: 'audit_unavailable',
} as const;
export type RequestOutcome = (typeof RequestOutcome)[keyof typeof RequestOutcome];

/** The metric handles, grouped by the role that updates them. */
export interface PortcullisMetrics {
  readonly registry: MetricsRegistry;
  readonly edge: {
    /** labels: connection, verb, decision ({@link RequestOutcome}) */
    readonly requests: Counter;
    /** labels: none. Edge-side decision round trip (NATS request-reply to policy). */
    readonly decisionDuration: Histogram;
    /** labels: stage (`request`: before forwarding, fails closed; `completion`: after retries, lost) */
    /** labels: none. Wait for the log's ack of a request's admission events (the fail-closed gate). */
    readonly auditAckDuration: Histogram;
    readonly auditPublishFailures: Counter;
    /** labels: connection, reason (`unreachable`, `timeout`, `aborted`, `body_too_large`: the edge aborted a streamed body over the cap) */
    readonly upstreamErrors: Counter;
    /** labels: connection. Time to the upstream's response headers. */
    readonly upstreamDuration: Histogram;
  };
  readonly policy: {
    /** labels: decision (effect or `error`) */
    readonly decisions: Counter;
    /** labels: none */
    readonly evaluationDuration: Histogram;
  };
  readonly approval: {
    /** labels: none. Set by the approval role from its pending projection. */
    readonly pending: Gauge;
    /** labels: outcome (`approved`, `denied`, `expired`) */
    readonly waitDuration: Histogram;
  };
  readonly audit: {
    /** labels: stream, consumer */
    readonly consumerLag: Gauge;
    /** labels: stream, consumer. Delivered, not yet acknowledged. */
    readonly consumerAckPending: Gauge;
    /** labels: none */
    readonly insertBatchSize: Histogram;
    /** labels: none */
    readonly insertDuration: Histogram;
    /** labels: none */
    readonly insertFailures: Counter;
    /** labels: none */
    readonly deadLettered: Counter;
  };
}

/** Registers the catalogue and the process metrics on a new registry. */
export function createPortcullisMetrics(opts: { role: string; version: string }): PortcullisMetrics {
  const r = new MetricsRegistry();
  r.gauge('portcullis_build_info', 'Always 1; labels name the version and the roles this process runs.', ['version', 'role']).set([opts.version, opts.role], 1);
  registerProcessMetrics(r);
  return {
    registry: r,
    edge: {
      requests: r.counter('portcullis_edge_requests_total', 'Requests answered by the edge, by connection, verb and decision.', [
        'connection',
        'verb',
        'decision',
      ]),
      decisionDuration: r.histogram('portcullis_edge_decision_duration_seconds', 'Time the edge waited for a policy decision.', LATENCY_BUCKETS),
      auditAckDuration: r.histogram(
        'portcullis_edge_audit_ack_duration_seconds',
        'Time a request waited for the durable log to acknowledge its admission events (request.received, request.decided) before it was forwarded.',
        LATENCY_BUCKETS,
      ),
      auditPublishFailures: r.counter('portcullis_edge_audit_publish_failures_total', 'Audit events the durable log did not acknowledge.', ['stage']),
      upstreamErrors: r.counter('portcullis_edge_upstream_errors_total', 'Forwarded requests that failed at the upstream.', ['connection', 'reason']),
      upstreamDuration: r.histogram('portcullis_edge_upstream_duration_seconds', 'Time to the upstream response headers.', LATENCY_BUCKETS, ['connection']),
    },
    policy: {
      decisions: r.counter('portcullis_policy_decisions_total', 'Decisions answered by the policy role.', ['decision']),
      evaluationDuration: r.histogram('portcullis_policy_evaluation_duration_seconds', 'Time to evaluate one decision request.', LATENCY_BUCKETS),
    },
    approval: {
      pending: r.gauge('portcullis_approvals_pending', 'Requests waiting for a human approval.'),
      waitDuration: r.histogram('portcullis_approval_wait_duration_seconds', 'Time from approval request to decision.', APPROVAL_BUCKETS, ['outcome']),
    },
    audit: {
      consumerLag: r.gauge('portcullis_audit_consumer_lag_messages', 'Messages in the stream not yet delivered to the durable consumer.', [
        'stream',
        'consumer',
      ]),
      consumerAckPending: r.gauge('portcullis_audit_consumer_ack_pending_messages', 'Messages delivered to the consumer and not yet acknowledged.', [
        'stream',
        'consumer',
      ]),
      insertBatchSize: r.histogram('portcullis_audit_insert_batch_rows', 'Rows per audit-store insert.', BATCH_BUCKETS),
      insertDuration: r.histogram('portcullis_audit_insert_duration_seconds', 'Time of one audit-store batch insert.', LATENCY_BUCKETS),
      insertFailures: r.counter('portcullis_audit_insert_failures_total', 'Audit-store batch inserts that failed (the batch is redelivered).'),
      deadLettered: r.counter('portcullis_audit_dead_lettered_total', 'Undecodable audit messages moved to the dead-letter stream.'),
    },
  };
}

function registerProcessMetrics(r: MetricsRegistry): void {
  const start = r.gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch, in seconds.');
  start.set([], Math.round((Date.now() - performance.now()) / 1000));
  const cpu = r.counter('process_cpu_seconds_total', 'User and system CPU time spent, in seconds.');
  let cpuSeen = 0;
  const rss = r.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.');
  const heap = r.gauge('nodejs_heap_used_bytes', 'V8 heap in use, in bytes.');
  const heapAfterGc = r.gauge(
    'nodejs_heap_used_after_gc_bytes',
    'V8 heap in use right after the latest major GC (the live set), in bytes; 0 until the first major GC since the first scrape.',
  );
  const majorGcs = r.counter(
    'nodejs_major_gcs_total',
    'Major (mark-compact) GCs since the first scrape: says whether nodejs_heap_used_after_gc_bytes is fresh.',
  );
  let majorGcsSeen = 0;
  const lag = r.gauge('nodejs_eventloop_delay_p99_seconds', 'The 99th percentile of event-loop delay since the last scrape, in seconds.');
  let delay: ReturnType<typeof monitorEventLoopDelay> | undefined;
  let afterGc: (() => HeapAfterGc) | undefined;
  r.collect(() => {
    // Sampling starts with the first scrape: a process nobody scrapes pays nothing.
    if (delay === undefined) {
      delay = monitorEventLoopDelay({ resolution: 20 });
      delay.enable();
    }
    if (afterGc === undefined) {
      afterGc = observeHeapAfterGc();
      majorGcsSeen = afterGc().majorGcs;
    }
    const u = process.cpuUsage();
    const total = (u.user + u.system) / 1e6;
    cpu.inc([], total - cpuSeen);
    cpuSeen = total;
    const m = process.memoryUsage();
    rss.set([], m.rss);
    heap.set([], m.heapUsed);
    const gcs = afterGc();
    if (gcs.bytes !== undefined) heapAfterGc.set([], gcs.bytes);
    majorGcs.inc([], gcs.majorGcs - majorGcsSeen);
    majorGcsSeen = gcs.majorGcs;
    lag.set([], delay.percentile(99) / 1e9);
    delay.reset();
  });
}
