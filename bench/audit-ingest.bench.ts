/**
 * Audit ingest: sustained events/s from JetStream into ClickHouse with two audit writer processes,
 * and the end-to-end lag from publish (acked) to queryable (p50/p99).
 * Run: `npm run bench:audit` (starts its own nats-server and clickhouse-server).
 *
 * Two message shapes, each measured on its own and labelled in the output:
 * - `single`: one event per JetStream message (what a lone request's events look like);
 * - `batched`: group-committed EventBatch messages of BENCH_GROUP events on `audit._batch.events`
 *   (what a loaded edge publishes: one message per event-loop turn, libs/gateway/src/audit-publisher.ts).
 * For each shape:
 * 1. Throughput: BACKLOG sealed events (received/decided/completed, realistic width) are appended
 *    to JetStream first; then two fresh writer processes (the real AuditWriter + ClickHouseAuditSink,
 *    batchSize BENCH_BATCH) drain them; events/s = BACKLOG / time to drain. The writers' and
 *    ClickHouse's CPU over the drain come from /proc/<pid>/stat (µs per event, cores busy).
 * 2. Lag: a steady RATE events/s for LAG_SECONDS with probe events among them; the bench polls
 *    ClickHouse every 25 ms and records when each probe became visible to a query.
 * 3. Profile: the per-row costs of decoding, mapping and encoding a row for the insert, next to
 *    what the JSONEachRow path (payload_json + JSON line) cost, measured in this process.
 * BENCH_WRITER=<path to another build's dist/bench/audit-ingest.bench.js> runs that build's writer
 * processes under this same harness (before/after comparisons in identical conditions).
 *
 * Last runs (2-core VM, other engineers' suites running; see README "Audit log" for the figures
 * and what the profile says).
 * Environment: BENCH_BACKLOG (default 150000), BENCH_RATE (10000), BENCH_LAG_SECONDS (10),
 * BENCH_BATCH (5000), BENCH_GROUP (32), BENCH_SHAPES (single,batched).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connectNats, type NatsBus } from '@portcullis/bus';
import { createLogger } from '@portcullis/common';
import {
  RequestCompletedSchema,
  RequestDecidedSchema,
  RequestReceivedSchema,
  Streams,
  Subjects,
  EventEnvelopeSchema,
  buildEvent,
  create,
  decodeEvent,
  encodeEventBatch,
  newEventId,
  toJson,
  type EventEnvelope,
} from '@portcullis/contracts';
import { AuditChain, AuditWriter, ClickHouseAuditSink, toAuditRowOfWire, withPayloadJson } from '@portcullis/audit-store';
import { encodeRowBinary } from '@portcullis/audit-store/pure';
import { startClickHouse, startNats } from '../test/harness/services.js';
import { reportFigures } from './bench-result.js';
import { cpuSeconds } from './proc-cpu.js';

const BACKLOG = Number(process.env['BENCH_BACKLOG'] ?? 150_000);
const RATE = Number(process.env['BENCH_RATE'] ?? 10_000);
const LAG_SECONDS = Number(process.env['BENCH_LAG_SECONDS'] ?? 10);
const BATCH = Number(process.env['BENCH_BATCH'] ?? 5000);
const GROUP = Number(process.env['BENCH_GROUP'] ?? 32);
const SHAPES = (process.env['BENCH_SHAPES'] ?? 'single,batched').split(',') as Shape[];
const WRITER_SCRIPT = process.env['BENCH_WRITER'];
const DATABASE = 'bench_audit';
/** Benches print results on stdout; only errors are logged (stderr). */
const logger = createLogger({ level: 'error' });
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ: 100 on Linux). */

type Shape = 'single' | 'batched';
/** One request's three events, shaped like the edge's (identity, Kubernetes attributes, decision). */
function requestEvents(n: number, correlationId: string = newEventId()): EventEnvelope[] {
  const meta = { correlationId, nodeId: 'edge-bench', connection: 'prod', sessionId: '' };
  return [
    buildEvent(
      'request.received',
      create(RequestReceivedSchema, {
        identity: {
          subject: `system:serviceaccount:ci:bot-${n % 50}`,
          groups: ['bots', 'ci'],
          clientId: 'ci-bot',
          issuer: 'https://issuer.example',
          tokenId: `jti-${n}`,
          audiences: ['portcullis'],
          tokenLifetimeSeconds: 300,
        },
        attributes: {
          connection: 'prod',
          connectionType: 'kubernetes',
          method: 'GET',
          sourceIp: '10.1.2.3',
          userAgent: 'kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef',
          kube: { isResourceRequest: true, verb: 'list', apiPrefix: 'api', apiVersion: 'v1', namespace: `team-${n % 40}`, resource: 'pods' },
        },
      }),
      { ...meta, id: correlationId },
    ),
    buildEvent(
      'request.decided',
      create(RequestDecidedSchema, { decision: { effect: 'allow', ruleId: 'team-read', policyVersion: 'v42' }, decisionLatencyUs: 180 }),
      {
        ...meta,
        causationId: correlationId,
      },
    ),
    buildEvent('request.completed', create(RequestCompletedSchema, { status: 200, bytesOut: 48_213, durationMs: 7, forwarded: true }), meta),
  ];
}

/** Appends sealed events: one message each (`single`), or EventBatch messages of GROUP events (`batched`). */
async function publish(bus: NatsBus, chain: AuditChain, events: EventEnvelope[], shape: Shape): Promise<void> {
  if (shape === 'single') {
    await Promise.all(events.map((e) => bus.log.append(Subjects.auditEvent(e.connection, e.type), chain.seal(e), e.id, { timeoutMs: 30_000 })));
    return;
  }
  const appends: Promise<unknown>[] = [];
  for (let i = 0; i < events.length; i += GROUP) {
    const wire = events.slice(i, i + GROUP).map((e) => chain.seal(e));
    appends.push(bus.log.append(Subjects.auditBatch(), encodeEventBatch(wire), newEventId(), { timeoutMs: 30_000 }));
  }
  await Promise.all(appends);
}

/** Per-row CPU of the writer's own work, now and as it was (median of 5 × 20,000 rows). */
function profileRowCosts(): Record<string, number> {
  const chain = new AuditChain('edge-profile');
  const wire: Uint8Array[] = [];
  for (let i = 0; i < 20_000 / 3; i++) for (const e of requestEvents(i)) wire.push(chain.seal(e));
  const median = (f: () => void): number => {
    const runs: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t = performance.now();
      f();
      runs.push(((performance.now() - t) * 1000) / wire.length);
    }
    return runs.sort((a, b) => a - b)[2]!;
  };
  let events: EventEnvelope[] = [];
  const decode = median(() => {
    events = wire.map((w) => decodeEvent(w));
  });
  let rows: ReturnType<typeof toAuditRowOfWire>[] = [];
  const map = median(() => {
    rows = events.map((e, i) => toAuditRowOfWire(e, wire[i]!));
  });
  const rowBinary = median(() => {
    encodeRowBinary(rows);
  });
  const payloadJson = median(() => {
    for (const e of events) JSON.stringify(toJson(EventEnvelopeSchema, e));
  });
  const legacyRows = rows.map((r) => {
    const { payload_pb: _bytes, ...rest } = withPayloadJson({ ...r });
    return rest;
  });
  const jsonLine = median(() => {
    for (const r of legacyRows) JSON.stringify(r);
  });
  const figures = { decodeUs: decode, mapUs: map, rowBinaryUs: rowBinary, legacyPayloadJsonUs: payloadJson, legacyJsonLineUs: jsonLine };
  console.log(
    `per row (this process): decode ${decode.toFixed(1)} µs, map ${map.toFixed(1)} µs, RowBinary ${rowBinary.toFixed(1)} µs` +
      ` = ${(decode + map + rowBinary).toFixed(1)} µs; the JSONEachRow path added payload_json ${payloadJson.toFixed(1)} µs and a JSON line ${jsonLine.toFixed(1)} µs` +
      ` (${(legacyRows.reduce((n, r) => n + r.payload_json.length, 0) / legacyRows.length) | 0} B of payload_json per row vs ${(wire.reduce((n, w) => n + w.length, 0) / wire.length) | 0} B of payload_pb)`,
  );
  return Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** The writer process: the real AuditWriter draining the stream into ClickHouse. */
async function writerMain(natsUrl: string, chUrl: string): Promise<void> {
  const bus = await connectNats({ servers: [natsUrl], name: `bench-writer-${process.pid}`, logger });
  const sink = new ClickHouseAuditSink({ url: chUrl, database: DATABASE });
  await sink.migrate();
  const writer = new AuditWriter({ log: bus.log, sink, batchSize: BATCH, maxWaitMs: 200, logger });
  writer.start();
  process.stdout.write('ready\n');
  process.once('SIGTERM', () => {
    void writer.stop().then(async () => {
      await sink.close();
      await bus.close();
      const cpu = process.cpuUsage();
      process.stdout.write(`${JSON.stringify({ written: writer.stats.written, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`);
      process.exit(0);
    });
  });
}

/** Two writer processes (this build's, or BENCH_WRITER's), started and ready. */
async function startWriters(natsUrl: string, chUrl: string): Promise<{ pids: number[]; stop: () => Promise<void> }> {
  const script = WRITER_SCRIPT ?? fileURLToPath(import.meta.url);
  const children: ChildProcess[] = [];
  const ready: Promise<void>[] = [];
  for (let w = 0; w < 2; w++) {
    const child = spawn(process.execPath, [script, '--writer', natsUrl, chUrl], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    ready.push(
      new Promise((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`writer exited with ${code} before it was ready`)));
      }),
    );
  }
  await Promise.all(ready);
  return {
    pids: children.map((c) => c.pid!),
    stop: async () => {
      for (const c of children) c.kill('SIGTERM');
      await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    },
  };
}

interface ShapeFigures {
  storedPerSecond: number;
  appendedPerSecond: number;
  writerCpuUsPerEvent: number;
  clickhouseCpuUsPerEvent: number;
  clickhouseCores: number;
  natsCpuUsPerEvent: number;
  writerCores: number;
  lagOfferedPerSecond: number;
  lagP50Ms: number;
  lagP99Ms: number;
}

async function measureShape(
  shape: Shape,
  bus: NatsBus,
  nats: { url: string; pid: number | undefined },
  clickhouse: Awaited<ReturnType<typeof startClickHouse>>,
): Promise<ShapeFigures> {
  const chain = new AuditChain(`edge-bench-${shape}`);
  const count = async (): Promise<number> => Number((await clickhouse.query(`SELECT count() FROM ${DATABASE}.audit_events`)).trim());
  const label = shape === 'single' ? 'single-event messages' : `EventBatch messages of ${GROUP} events`;

  // 1. Backlog, then two writers drain it.
  const before = await count();
  const pubStart = performance.now();
  for (let n = 0; n < BACKLOG / 3; n += 1000) {
    const events: EventEnvelope[] = [];
    for (let i = n; i < Math.min(n + 1000, BACKLOG / 3); i++) events.push(...requestEvents(i));
    await publish(bus, chain, events, shape);
  }
  const pubSeconds = (performance.now() - pubStart) / 1000;
  console.log(`[${shape}] appended ${BACKLOG} events as ${label} in ${pubSeconds.toFixed(1)} s (${Math.round(BACKLOG / pubSeconds)} events/s, acked)`);
  const drainers = await startWriters(nats.url, clickhouse.httpUrl);
  const cpu0 = drainers.pids.map((pid) => cpuSeconds(pid));
  const ch0 = cpuSeconds(clickhouse.pid);
  const nats0 = cpuSeconds(nats.pid);
  const drainStart = performance.now();
  let stored = before;
  while (stored < before + BACKLOG) {
    await new Promise((r) => setTimeout(r, 50));
    stored = await count();
  }
  const drainSeconds = (performance.now() - drainStart) / 1000;
  const writerCpu = drainers.pids.map((pid) => cpuSeconds(pid)).reduce((n, c, i) => n + c - cpu0[i]!, 0);
  const chCpu = cpuSeconds(clickhouse.pid) - ch0;
  const natsCpu = cpuSeconds(nats.pid) - nats0;
  await drainers.stop();
  const rate = Math.round(BACKLOG / drainSeconds);
  console.log(
    `[${shape}] two writers stored ${BACKLOG} events in ${drainSeconds.toFixed(2)} s: ${rate} events/s (target >= 50000); ` +
      `CPU over the drain: writers ${((writerCpu * 1e6) / BACKLOG).toFixed(1)} µs/event (${(writerCpu / drainSeconds).toFixed(2)} cores), ` +
      `ClickHouse ${((chCpu * 1e6) / BACKLOG).toFixed(1)} µs/event (${(chCpu / drainSeconds).toFixed(2)} cores), ` +
      `nats-server ${((natsCpu * 1e6) / BACKLOG).toFixed(1)} µs/event (${(natsCpu / drainSeconds).toFixed(2)} cores)`,
  );

  // 2. Lag at a steady rate, probes among the load.
  const laggers = await startWriters(nats.url, clickhouse.httpUrl);
  const lags: number[] = [];
  const probes = new Map<string, number>();
  let stop = false;
  const poller = (async () => {
    const deadline = () => stop && performance.now() > lagEnd + 30_000;
    while ((!stop || probes.size > 0) && !deadline()) {
      const text = await clickhouse.query(`SELECT correlation_id FROM ${DATABASE}.audit_events WHERE session_id = 'probe-${shape}' FORMAT TSV`);
      const seen = performance.now();
      for (const id of text.split('\n')) {
        const sentAt = probes.get(id);
        if (sentAt !== undefined) {
          lags.push(seen - sentAt);
          probes.delete(id);
        }
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  const tickMs = 50;
  const perTick = Math.max(3, Math.round((RATE * tickMs) / 1000 / 3));
  const lagStart = performance.now();
  let lagEnd = Infinity;
  let tick = 0;
  let published = 0;
  while (performance.now() - lagStart < LAG_SECONDS * 1000) {
    const events: EventEnvelope[] = [];
    for (let i = 0; i < perTick; i++) events.push(...requestEvents(i));
    const probeId = `probe-${shape}-${tick}`;
    const probe = requestEvents(tick, probeId)[0]!;
    probe.sessionId = `probe-${shape}`;
    events.push(probe);
    await publish(bus, chain, events, shape);
    probes.set(probeId, performance.now()); // acked: from here the writer's lag counts
    published += events.length;
    tick++;
    const wait = lagStart + tick * tickMs - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  lagEnd = performance.now();
  const lagSeconds = (lagEnd - lagStart) / 1000;
  stop = true;
  await poller;
  await laggers.stop();
  lags.sort((a, b) => a - b);
  const offered = Math.round(published / lagSeconds);
  console.log(
    `[${shape}] lag publish→queryable at ${offered} events/s offered (${lags.length} probes${probes.size > 0 ? `, ${probes.size} never seen` : ''}): p50 ${Math.round(percentile(lags, 50))} ms, p99 ${Math.round(percentile(lags, 99))} ms, max ${Math.round(lags.at(-1) ?? NaN)} ms (target p99 < 2000 ms)`,
  );
  return {
    storedPerSecond: rate,
    appendedPerSecond: Math.round(BACKLOG / pubSeconds),
    writerCpuUsPerEvent: Math.round((writerCpu * 1e7) / BACKLOG) / 10,
    clickhouseCpuUsPerEvent: Math.round((chCpu * 1e7) / BACKLOG) / 10,
    writerCores: Math.round((writerCpu / drainSeconds) * 100) / 100,
    clickhouseCores: Math.round((chCpu / drainSeconds) * 100) / 100,
    natsCpuUsPerEvent: Math.round((natsCpu * 1e7) / BACKLOG) / 10,
    lagOfferedPerSecond: offered,
    lagP50Ms: Math.round(percentile(lags, 50)),
    lagP99Ms: Math.round(percentile(lags, 99)),
  };
}

async function main(): Promise<void> {
  const [nats, clickhouse] = await Promise.all([startNats({ jetstream: true }), startClickHouse()]);
  const bus = await connectNats({ servers: [nats.url], name: 'bench-publisher', logger });
  try {
    await bus.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 0, duplicateWindowMs: 120_000, replicas: 1 });
    await bus.log.ensureStream({ name: Streams.deadLetter.name, subjects: Streams.deadLetter.subjects, maxAgeMs: 0, duplicateWindowMs: 120_000, replicas: 1 });
    const sink = new ClickHouseAuditSink({ url: clickhouse.httpUrl, database: DATABASE });
    await sink.migrate();
    await sink.close();
    console.log(
      `writers: ${WRITER_SCRIPT ?? 'this build'}; batch size ${BATCH}; load average ${(await import('node:os'))
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    const results: Partial<Record<Shape, ShapeFigures>> = {};
    for (const shape of SHAPES) results[shape] = await measureShape(shape, bus, nats, clickhouse);
    const profile = profileRowCosts();
    const single = results.single;
    const batched = results.batched;
    reportFigures('audit-ingest', {
      // The single-event figures keep their names (earlier results compare with them).
      ...(single ?? {}),
      target: 50_000,
      ...(batched === undefined ? {} : Object.fromEntries(Object.entries(batched).map(([k, v]) => [`batched_${k}`, v]))),
      group: GROUP,
      profile,
    });
  } finally {
    await bus.close();
    await Promise.all([nats.stop(), clickhouse.stop()]);
  }
}

if (process.argv[2] === '--writer') {
  await writerMain(process.argv[3]!, process.argv[4]!);
} else {
  await main();
  process.exit(0);
}
