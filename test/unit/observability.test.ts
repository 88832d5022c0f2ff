/**
 * The metrics registry's exposition format, the catalogue's names, readiness, the observability
 * listener (a Nest controller on the process's Fastify adapter, with Terminus over the Readiness
 * checks), and the pino logger behind the Logger port (fields, redaction, trace and audit ids
 * while tracing).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  createPortcullisMetrics,
  MetricsRegistry,
  observeHeapAfterGc,
  Readiness,
  RequestOutcome,
  runInSpan,
  SpanKind,
  startSpan,
  startTracing,
  tracingEnabled,
  withTraceHeaders,
} from '@portcullis/observability';
import { createLogger } from '@portcullis/common';
import { eventually } from '../support/eventually.js';
import { METRICS, READINESS } from '../../apps/runtime/src/index.js';
import { createInProcessBus, startTestProcess, testConfig } from '../support/nest-process.js';
import { REPO_ROOT } from '../support/portcullis-process.js';

describe('MetricsRegistry', () => {
  test('renders counters, gauges and histograms in the Prometheus text format', async () => {
    const r = new MetricsRegistry();
    const c = r.counter('t_requests_total', 'Requests.', ['connection', 'verb']);
    c.inc(['prod', 'get']);
    c.inc(['prod', 'get'], 2);
    c.inc(['we"ird\\name\n', 'list']);
    r.gauge('t_pending', 'Pending.').set([], 7);
    const h = r.histogram('t_duration_seconds', 'Duration.', [0.1, 1]);
    h.observe([], 0.05);
    h.observe([], 0.5);
    h.observe([], 3);
    const text = await r.render();
    assert.equal(
      text,
      [
        '# HELP t_requests_total Requests.',
        '# TYPE t_requests_total counter',
        't_requests_total{connection="prod",verb="get"} 3',
        't_requests_total{connection="we\\"ird\\\\name\\n",verb="list"} 1',
        '# HELP t_pending Pending.',
        '# TYPE t_pending gauge',
        't_pending 7',
        '# HELP t_duration_seconds Duration.',
        '# TYPE t_duration_seconds histogram',
        't_duration_seconds_bucket{le="0.1"} 1',
        't_duration_seconds_bucket{le="1"} 2',
        't_duration_seconds_bucket{le="+Inf"} 3',
        't_duration_seconds_sum 3.55',
        't_duration_seconds_count 3',
        '',
      ].join('\n'),
    );
  });

  test('refuses bad names, duplicate registrations and non-increasing buckets', () => {
    const r = new MetricsRegistry();
    r.counter('ok_total', 'x');
    for (const bad of [
      () => r.counter('ok_total', 'again'),
      () => r.counter('bad-name', 'x'),
      () => r.counter('x_total', 'x', ['le']),
      () => r.counter('y_total', 'x', ['__reserved']),
      () => r.histogram('h_seconds', 'x', [1, 1]),
      () => r.histogram('h2_seconds', 'x', []),
    ]) {
      assert.throws(bad);
    }
  });

  test('a failing collector does not break the scrape', async () => {
    const r = new MetricsRegistry();
    const g = r.gauge('g', 'x');
    r.collect(() => {
      throw new Error('source down');
    });
    r.collect(() => g.set([], 2));
    assert.match(await r.render(), /^g 2$/m);
  });
});

describe('the Portcullis metric catalogue', () => {
  test('follows the Prometheus conventions and every name is in the README table', async () => {
    const m = createPortcullisMetrics({ role: 'edge', version: '0.0.0-test' });
    m.edge.requests.inc(['prod', 'get', RequestOutcome.Allow]);
    const text = await m.registry.render();
    const names = [...text.matchAll(/^# TYPE (\S+) (counter|gauge|histogram)$/gm)].map((x) => [x[1]!, x[2]!] as const);
    assert.ok(names.length >= 20);
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    for (const [name, type] of names) {
      if (type === 'counter') assert.match(name, /_total$/, `${name}: counters end in _total`);
      else assert.doesNotMatch(name, /_total$/, `${name}: only counters end in _total`);
      if (/duration|latency|delay/.test(name)) assert.match(name, /_seconds$/, `${name}: durations in seconds`);
      assert.ok(readme.includes(`\`${name}\``), `${name} is documented in README.md`);
    }
    assert.match(text, /^portcullis_edge_requests_total\{connection="prod",verb="get",decision="allow"\} 1$/m);
    // Label-less metrics exist from the start, so alerts on them work before the first event.
    assert.match(text, /^portcullis_approvals_pending 0$/m);
    assert.match(text, /^portcullis_audit_insert_failures_total 0$/m);
  });
});

describe('nodejs_heap_used_after_gc_bytes', () => {
  // A real major GC on demand: --expose-gc set at run time, gc() taken from a fresh context.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const scrape = async (m: ReturnType<typeof createPortcullisMetrics>): Promise<{ afterGc: number; used: number; majorGcs: number }> => {
    const text = await m.registry.render();
    const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { afterGc: value('nodejs_heap_used_after_gc_bytes'), used: value('nodejs_heap_used_bytes'), majorGcs: value('nodejs_major_gcs_total') };
  };
  const afterNextMajorGc = async (m: ReturnType<typeof createPortcullisMetrics>): Promise<number> => {
    const seen = observeHeapAfterGc()().majorGcs;
    gc();
    // The gc entry is delivered asynchronously, after the collection.
    await eventually('the major GC to be observed', () => observeHeapAfterGc()().majorGcs !== seen, 5_000);
    return (await scrape(m)).afterGc;
  };

  test('is the live set after a major GC: it rises by what survives and falls back when that is released, garbage not counted', async () => {
    const m = createPortcullisMetrics({ role: 'edge', version: 't' });
    await scrape(m); // the first scrape starts the observation
    const base = await afterNextMajorGc(m);
    assert.ok(base > 0, `a live heap after GC (${base})`);

    const RETAINED = 40 * 1024 * 1024;
    // 40 arrays of 128 Ki doubles (1 MiB each) on the V8 heap (Buffers would be off-heap).
    let kept: number[][] | undefined = Array.from({ length: 40 }, (_, i) => Array.from({ length: 128 * 1024 }, (_, j) => i + j + 0.5));
    const grown = await afterNextMajorGc(m);
    assert.ok(grown - base > RETAINED * 0.8, `retained ~40 MB: ${((grown - base) / 1e6).toFixed(1)} MB more after GC`);

    // Garbage allocated after the GC raises the sampled heap, not the after-GC value.
    let garbage: string[] | undefined = Array.from({ length: 20_000 }, (_, i) => `garbage-${i}`.repeat(50));
    const sampled = await scrape(m);
    assert.equal(sampled.afterGc, grown, 'no major GC, no change');
    assert.ok(sampled.majorGcs >= 2, `nodejs_major_gcs_total counts the collections (${sampled.majorGcs})`);
    assert.ok(sampled.used > grown, 'the sampled heap includes the new garbage');
    garbage = undefined;

    kept = undefined;
    const released = await afterNextMajorGc(m);
    assert.ok(grown - released > RETAINED * 0.8, `released ~40 MB: ${((grown - released) / 1e6).toFixed(1)} MB less after GC`);
    assert.equal(kept ?? garbage, undefined);
  });
});

describe('Readiness and the observability listener', () => {
  test('/healthz, /readyz naming the failed check, /metrics, 404 and 405', async () => {
    const m = createPortcullisMetrics({ role: 'policy', version: 't' });
    const readiness = new Readiness();
    let natsUp = true;
    readiness.add({ name: 'bus', check: () => natsUp });
    readiness.add({ name: 'clickhouse', check: () => Promise.reject(new Error('connection refused')) });
    // A process with no role: the observability listener only, with the test's metrics and checks.
    const bus = createInProcessBus();
    const proc = await startTestProcess({
      config: testConfig({ observability: { listen: { host: '127.0.0.1', port: 0 } } }),
      roles: [],
      bus,
      overrides: [
        { provide: METRICS, useValue: m },
        { provide: READINESS, useValue: readiness },
      ],
    });
    const base = `http://127.0.0.1:${proc.port('observability')}`;
    try {
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      const notReady = await fetch(`${base}/readyz`);
      assert.equal(notReady.status, 503);
      assert.deepEqual(await notReady.json(), { ready: false, checks: { bus: 'ok', clickhouse: 'connection refused' } });
      natsUp = false;
      assert.deepEqual(((await (await fetch(`${base}/readyz`)).json()) as { checks: unknown }).checks, { bus: 'not ready', clickhouse: 'connection refused' });
      const metrics = await fetch(`${base}/metrics`);
      assert.equal(metrics.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
      assert.match(await metrics.text(), /^portcullis_build_info\{version="t",role="policy"\} 1$/m);
      assert.equal((await fetch(`${base}/nope`)).status, 404);
      assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
      const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), '');
      assert.equal((await fetch(`${base}/healthz`)).headers.get('cache-control'), 'no-store');
    } finally {
      await proc.close();
      await bus.close();
    }
  });
});

describe('createLogger (pino)', () => {
  test('one JSON line per call with time, level, msg and the base fields; secrets redacted; errors as name and message', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', base: { role: 'edge', node: 'e1' }, write: (l) => lines.push(l) });
    log.debug('dropped');
    log.info('hello', { password: 'hunter2', nested: { token: 'abc', clientSecret: 's3' }, err: new Error('boom') });
    log.child({ auditId: 'a-1' }).warn('child line');
    assert.equal(lines.length, 2);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(first['level'], 'info');
    assert.equal(first['msg'], 'hello');
    assert.equal(first['role'], 'edge');
    assert.match(String(first['time']), /^\d{4}-\d\d-\d\dT/);
    assert.equal(first['password'], '[redacted]');
    assert.deepEqual(first['nested'], { token: '[redacted]', clientSecret: '[redacted]' });
    assert.deepEqual(first['err'], { name: 'Error', message: 'boom' });
    assert.doesNotMatch(lines.join('\n'), /hunter2|abc|s3"/);
    assert.equal((JSON.parse(lines[1]!) as Record<string, unknown>)['auditId'], 'a-1');
  });
});

describe('tracing', () => {
  test('off by default: no headers added, no spans', () => {
    assert.equal(tracingEnabled(), false);
    const h = { a: 'b' };
    assert.equal(withTraceHeaders(h), h);
    assert.equal(startSpan('x', { kind: SpanKind.INTERNAL }), undefined);
  });

  test('on: OTLP/HTTP JSON export, traceparent in headers, trace and audit id on log lines, bounded shutdown', async () => {
    const bodies: unknown[] = [];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        assert.equal(req.url, '/v1/traces');
        assert.match(String(req.headers['content-type']), /json/);
        bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    const tracing = await startTracing({ endpoint, serviceName: 'portcullis', role: 'edge', nodeId: 'e1', sampleRatio: 1 });
    try {
      const lines: string[] = [];
      const log = createLogger({ write: (l) => lines.push(l) });
      const span = startSpan('edge request', { kind: SpanKind.SERVER });
      assert.ok(span);
      const headers = runInSpan(span, 'audit-123', () => {
        log.info('inside');
        return withTraceHeaders({ other: 'x' });
      });
      span.end();
      const traceId = span.spanContext().traceId;
      assert.match(headers?.['traceparent'] ?? '', new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
      assert.equal(headers?.['other'], 'x');
      const line = JSON.parse(lines[0]!) as Record<string, unknown>;
      assert.equal(line['traceId'], traceId);
      assert.equal(line['auditId'], 'audit-123');
      const started = Date.now();
      await tracing.shutdown();
      assert.ok(Date.now() - started < 2500, 'shutdown is bounded');
      const exported = JSON.stringify(bodies);
      assert.ok(exported.includes(traceId), 'the span was exported');
      assert.ok(exported.includes('portcullis-edge'), 'service.name names the role');
      assert.equal(tracingEnabled(), false);
    } finally {
      await tracing.shutdown();
      await new Promise<void>((r) => receiver.close(() => r()));
    }
  });
});
