/**
 * OpenTelemetry tracing: one trace per request across the edge, the NATS request-reply to policy,
 * the JetStream publish and the audit write, with the W3C `traceparent` carried in NATS headers.
 * Off unless `observability.otlp.endpoint` is set; then spans go to `<endpoint>/v1/traces` as
 * OTLP/HTTP JSON. While off, every helper returns after one boolean check: no SDK is loaded, no
 * context manager is installed, no header is added.
 *
 * We use the tracer provider of `@opentelemetry/sdk-trace-node` (what `NodeSDK` builds inside)
 * rather than `@opentelemetry/sdk-node`: the latter also brings gRPC, Zipkin, Prometheus and the
 * logs and metrics SDKs, none of which Portcullis uses.
 */
import {
  context,
  createContextKey,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';

export { SpanKind } from '@opentelemetry/api';
export type { Span, Context } from '@opentelemetry/api';

/** Where and how to export spans. */
export interface TracingOptions {
  /** The collector's OTLP/HTTP base URL (`http://collector:4318`). */
  readonly endpoint: string;
  /** `service.name` is `<serviceName>-<role>`. */
  readonly serviceName: string;
  readonly role: string;
  readonly nodeId: string;
  /** Share of new root traces recorded (0..1); children follow their parent's choice. */
  readonly sampleRatio: number;
}

/** A running tracer provider. */
export interface Tracing {
  /** Exports what is buffered (bounded: at most 2 s) and stops. */
  shutdown(): Promise<void>;
}

let enabled = false;
let tracerInstance: Tracer | undefined;
const AUDIT_ID = createContextKey('portcullis.audit_id');
const SHUTDOWN_BUDGET_MS = 2000;

/** Whether spans are being recorded in this process. */
export function tracingEnabled(): boolean {
  return enabled;
}

/**
 * Installs the tracer provider (AsyncLocalStorage context, W3C propagation, batched OTLP/HTTP
 * JSON export). The SDK is loaded here, only when tracing is configured.
 */
export async function startTracing(opts: TracingOptions): Promise<Tracing> {
  const [{ NodeTracerProvider }, { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler }, { OTLPTraceExporter }, { resourceFromAttributes }] =
    await Promise.all([
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/sdk-trace-base'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
    ]);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      'service.name': `${opts.serviceName}-${opts.role}`,
      'service.instance.id': opts.nodeId,
      'portcullis.role': opts.role,
    }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(opts.sampleRatio) }),
    spanProcessors: [
      new BatchSpanProcessor(new OTLPTraceExporter({ url: `${opts.endpoint.replace(/\/$/, '')}/v1/traces`, timeoutMillis: 5000 }), {
        scheduledDelayMillis: 500,
        maxQueueSize: 8192,
      }),
    ],
  });
  provider.register();
  tracerInstance = trace.getTracer('portcullis');
  enabled = true;
  return {
    async shutdown() {
      enabled = false;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        provider.shutdown().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, SHUTDOWN_BUDGET_MS);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
      trace.disable();
      context.disable();
      propagation.disable();
      tracerInstance = undefined;
    },
  };
}

/**
 * Runs `fn` inside a new span (child of `parent`, else of the active context). With tracing off
 * it just calls `fn(undefined)`.
 */
export function inSpan<T>(
  name: string,
  opts: { kind: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  if (!enabled || tracerInstance === undefined) return fn(undefined);
  const parent = opts.parent ?? context.active();
  return tracerInstance.startActiveSpan(name, { kind: opts.kind, ...(opts.attributes ? { attributes: opts.attributes } : {}) }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err instanceof Error ? err : String(err));
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Starts a span the caller ends (for callback-style code such as the upstream forward). */
export function startSpan(name: string, opts: { kind: SpanKind; attributes?: Attributes; parent?: Context }): Span | undefined {
  if (!enabled || tracerInstance === undefined) return undefined;
  return tracerInstance.startSpan(name, { kind: opts.kind, ...(opts.attributes ? { attributes: opts.attributes } : {}) }, opts.parent ?? context.active());
}

/** Ends a span started by {@link startSpan}, marking it failed when `error` is given. */
export function endSpan(span: Span | undefined, error?: string, attributes?: Attributes): void {
  if (span === undefined) return;
  if (attributes) span.setAttributes(attributes);
  if (error !== undefined && error !== '') span.setStatus({ code: SpanStatusCode.ERROR, message: error });
  span.end();
}

/** Runs `fn` with the request's audit id in the context, so every log line can name it. */
export function withAuditId<T>(auditId: string, fn: () => T): T {
  if (!enabled) return fn();
  return context.with(context.active().setValue(AUDIT_ID, auditId), fn);
}

/**
 * Headers with the active trace context added (`traceparent`, `tracestate`); the input unchanged
 * (no allocation) while tracing is off or no span is active.
 */
export function withTraceHeaders(headers: Readonly<Record<string, string>> | undefined): Readonly<Record<string, string>> | undefined {
  if (!enabled || trace.getSpan(context.active()) === undefined) return headers;
  const carrier: Record<string, string> = headers === undefined ? {} : { ...headers };
  propagation.inject(context.active(), carrier);
  return carrier;
}

/** The trace context carried in received headers (ROOT when none, or tracing is off). */
export function contextFromHeaders(headers: Readonly<Record<string, string>>): Context {
  if (!enabled || headers['traceparent'] === undefined) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, headers);
}

/** Ids for the log line being written: trace, span and audit id of the active context. */
export function logContext(): { traceId?: string; spanId?: string; auditId?: string } | undefined {
  if (!enabled) return undefined;
  const ctx = context.active();
  const auditId = ctx.getValue(AUDIT_ID) as string | undefined;
  const span = trace.getSpan(ctx);
  if (span === undefined) return auditId === undefined ? undefined : { auditId };
  const sc = span.spanContext();
  return auditId === undefined ? { traceId: sc.traceId, spanId: sc.spanId } : { traceId: sc.traceId, spanId: sc.spanId, auditId };
}

/**
 * Records one `audit write` span per stored message that carried a trace context, as a child of
 * the edge's publish span, covering the batch insert that stored it.
 */
export function recordStoredMessages(
  headers: readonly Readonly<Record<string, string>>[],
  startedAtMs: number,
  endedAtMs: number,
  attributes: Attributes,
): void {
  if (!enabled || tracerInstance === undefined) return;
  for (const h of headers) {
    if (h['traceparent'] === undefined) continue;
    const span = tracerInstance.startSpan('audit write', { kind: SpanKind.CONSUMER, startTime: startedAtMs, attributes }, propagation.extract(ROOT_CONTEXT, h));
    span.end(endedAtMs);
  }
}

/** Runs `fn` with `span` as the active span (and `auditId` in the context); plain call while off. */
export function runInSpan<T>(span: Span | undefined, auditId: string, fn: () => T): T {
  if (span === undefined) return fn();
  return context.with(trace.setSpan(context.active(), span).setValue(AUDIT_ID, auditId), fn);
}
