/**
 * Audit ingest: sustained events/s from JetStream into ClickHouse with two audit writer processes,
 * and the end-to-end lag from publish (acked) to queryable (p50/p99).
 * Run: `npm run bench:audit` (starts its own nats-server and clickhouse-server).
 *
 * 1. Throughput: BACKLOG sealed events (received/decided/completed, realistic width) are appended
 *    to JetStream first; then two writer processes (the real AuditWriter + ClickHouseAuditSink,
 *    batchSize 5000 as configured by default) drain them; events/s = BACKLOG / time to drain.
 * 2. Lag: a steady RATE events/s for LAG_SECONDS with probe events among them; the bench polls
 *    ClickHouse every 25 ms and records when each probe became visible to a query.
 * 3. Profile: CPU per event in the writers (process.cpuUsage) and the per-row costs of decoding,
 *    mapping and JSON-encoding a row, so figures from a busy machine can be read against capacity.
 * Environment: BENCH_BACKLOG (default 150000), BENCH_RATE (20000), BENCH_LAG_SECONDS (10), BENCH_BATCH (5000).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connectNats, type NatsBus } from '../libs/bus/src/index.js';
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
  newEventId,
  toJson,
  type EventEnvelope,
} from '../libs/contracts/src/index.js';
import { AuditChain, AuditWriter, ClickHouseAuditSink, toAuditRow } from '../libs/audit-store/src/index.js';
import { startClickHouse, startNats } from '../test/harness/services.js';
import { reportFigures } from './bench-result.js';

const BACKLOG = Number(process.env['BENCH_BACKLOG'] ?? 150_000);
const RATE = Number(process.env['BENCH_RATE'] ?? 20_000);
const LAG_SECONDS = Number(process.env['BENCH_LAG_SECONDS'] ?? 10);
const BATCH = Number(process.env['BENCH_BATCH'] ?? 5000);
const DATABASE = 'bench_audit';
const silent = { info: () => {}, warn: () => {}, error: (m: string, f?: Record<string, unknown>) => console.error(m, f) };

/** One request's three events, shaped like the edge's (identity, Kubernetes attributes, decision). */
function requestEvents(n: number, correlationId: string = newEventId()): EventEnvelope[] {
  const meta = { correlationId, nodeId: 'edge-bench', connection: 'prod', sessionId: '' };
  return [
    buildEvent(
      'request.received',
      create(RequestReceivedSchema, {
        identity: { subject: `system:serviceaccount:ci:bot-${n % 50}`, groups: ['bots', 'ci'], clientId: 'ci-bot', issuer: 'https://issuer.example', tokenId: `jti-${n}`, audiences: ['portcullis'], tokenLifetimeSeconds: 300 },
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
    buildEvent('request.decided', create(RequestDecidedSchema, { decision: { effect: 'allow', ruleId: 'team-read', policyVersion: 'v42' }, decisionLatencyUs: 180 }), {
      ...meta,
      causationId: correlationId,
    }),
    buildEvent('request.completed', create(RequestCompletedSchema, { status: 200, bytesOut: 48_213, durationMs: 7, forwarded: true }), meta),
  ];
}

async function publish(bus: NatsBus, chain: AuditChain, events: EventEnvelope[]): Promise<void> {
  await Promise.all(events.map((e) => bus.log.append(Subjects.auditEvent(e.connection, e.type), chain.seal(e), e.id, { timeoutMs: 30_000 })));
}

/** Per-row CPU of the writer's own work: decode, map to a row, JSON-encode it (median of 5 × 20,000). */
function profileRowCosts(): void {
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
  let rows: ReturnType<typeof toAuditRow>[] = [];
  const decodeMap = median(() => {
    rows = wire.map((w) => toAuditRow(decodeEvent(w)));
  });
  const json = median(() => {
    for (const r of rows) JSON.stringify(r);
  });
  const payload = median(() => {
    for (const w of wire) JSON.stringify(toJson(EventEnvelopeSchema, decodeEvent(w)));
  });
  console.log(`per row: decode + map ${decodeMap.toFixed(1)} µs (of which payload_json ${payload.toFixed(1)} µs incl. its decode), JSONEachRow line ${json.toFixed(1)} µs`);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** The writer process: the real AuditWriter draining the stream into ClickHouse. */
async function writerMain(natsUrl: string, chUrl: string): Promise<void> {
  const bus = await connectNats({ servers: [natsUrl], name: `bench-writer-${process.pid}`, logger: () => {} });
  const sink = new ClickHouseAuditSink({ url: chUrl, database: DATABASE });
  await sink.migrate();
  const writer = new AuditWriter({ log: bus.log, sink, batchSize: BATCH, maxWaitMs: 200, logger: silent });
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

async function main(): Promise<void> {
  const [nats, clickhouse] = await Promise.all([startNats({ jetstream: true }), startClickHouse()]);
  const bus = await connectNats({ servers: [nats.url], name: 'bench-publisher', logger: () => {} });
  const writers: ChildProcess[] = [];
  const writerStats: { written: number; cpuMs: number }[] = [];
  try {
    await bus.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 0, duplicateWindowMs: 120_000, replicas: 1 });
    await bus.log.ensureStream({ name: Streams.deadLetter.name, subjects: Streams.deadLetter.subjects, maxAgeMs: 0, duplicateWindowMs: 120_000, replicas: 1 });
    const sink = new ClickHouseAuditSink({ url: clickhouse.httpUrl, database: DATABASE });
    await sink.migrate();
    const chain = new AuditChain('edge-bench');
    const count = async (): Promise<number> => Number((await clickhouse.query(`SELECT count() FROM ${DATABASE}.audit_events`)).trim());

    // 1. Backlog, then two writers drain it.
    const pubStart = performance.now();
    for (let n = 0; n < BACKLOG / 3; n += 1000) {
      const events: EventEnvelope[] = [];
      for (let i = n; i < Math.min(n + 1000, BACKLOG / 3); i++) events.push(...requestEvents(i));
      await publish(bus, chain, events);
    }
    const pubSeconds = (performance.now() - pubStart) / 1000;
    console.log(`appended ${BACKLOG} events to JetStream in ${pubSeconds.toFixed(1)} s (${Math.round(BACKLOG / pubSeconds)} events/s, acked)`);
    const self = fileURLToPath(import.meta.url);
    const ready: Promise<void>[] = [];
    for (let w = 0; w < 2; w++) {
      const child = spawn(process.execPath, [self, '--writer', nats.url, clickhouse.httpUrl], { stdio: ['ignore', 'pipe', 'inherit'] });
      writers.push(child);
      ready.push(new Promise((resolve) => child.stdout.once('data', () => resolve())));
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.once('exit', () => {
        const last = out.trim().split('\n').at(-1) ?? '';
        if (last.startsWith('{')) writerStats.push(JSON.parse(last) as { written: number; cpuMs: number });
      });
    }
    await Promise.all(ready);
    const drainStart = performance.now();
    let stored = 0;
    while (stored < BACKLOG) {
      await new Promise((r) => setTimeout(r, 100));
      stored = await count();
    }
    const drainSeconds = (performance.now() - drainStart) / 1000;
    const rate = Math.round(BACKLOG / drainSeconds);
    console.log(`two writers stored ${BACKLOG} events in ${drainSeconds.toFixed(2)} s: ${rate} events/s (target >= 50000)`);

    // 2. Lag at a steady rate, probes among the load.
    const lags: number[] = [];
    const probes = new Map<string, number>();
    let stop = false;
    const poller = (async () => {
      while (!stop || probes.size > 0) {
        const text = await clickhouse.query(`SELECT correlation_id FROM ${DATABASE}.audit_events WHERE session_id = 'probe' FORMAT TSV`);
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
    let tick = 0;
    let published = 0;
    while (performance.now() - lagStart < LAG_SECONDS * 1000) {
      const events: EventEnvelope[] = [];
      for (let i = 0; i < perTick; i++) events.push(...requestEvents(i));
      const probeId = `probe-${tick}`;
      const probe = requestEvents(tick, probeId)[0]!;
      probe.sessionId = 'probe';
      const sentAt = performance.now();
      await publish(bus, chain, [...events, probe]);
      probes.set(probeId, performance.now()); // acked: from here the writer's lag counts
      void sentAt;
      published += events.length + 1;
      tick++;
      const next = lagStart + tick * tickMs;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const lagSeconds = (performance.now() - lagStart) / 1000;
    stop = true;
    await poller;
    lags.sort((a, b) => a - b);
    console.log(
      `lag publish→queryable at ${Math.round(published / lagSeconds)} events/s offered (${lags.length} probes): p50 ${Math.round(percentile(lags, 50))} ms, p99 ${Math.round(percentile(lags, 99))} ms, max ${Math.round(lags.at(-1) ?? NaN)} ms (target p99 < 2000 ms)`,
    );
    const [width] = (await clickhouse.query(`SELECT avg(length(payload_json)) FROM ${DATABASE}.audit_events`)).trim().split('\n');
    reportFigures('audit-ingest', { appendedPerSecond: Math.round(BACKLOG / pubSeconds), storedPerSecond: rate, target: 50_000, lagOfferedPerSecond: Math.round(published / lagSeconds), lagP50Ms: Math.round(percentile(lags, 50)), lagP99Ms: Math.round(percentile(lags, 99)) });
    console.log(`payload_json: ${Math.round(Number(width))} bytes per row on average; batch size ${BATCH}`);
    await sink.close();
  } finally {
    for (const w of writers) w.kill('SIGTERM');
    await Promise.all(writers.map((w) => new Promise((r) => (w.exitCode !== null ? r(null) : w.once('exit', r)))));
    const written = writerStats.reduce((n, s) => n + s.written, 0);
    const cpuMs = writerStats.reduce((n, s) => n + s.cpuMs, 0);
    if (written > 0) {
      console.log(`writer CPU: ${((cpuMs * 1000) / written).toFixed(1)} µs per event (both processes, start-up included) → one core sustains ~${Math.round(written / (cpuMs / 1000))} events/s of writer work`);
    }
    profileRowCosts();
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
