/**
 * The edge's decision round trip over NATS under load: p50/p99 latency of `DecisionClient.decide`
 * at concurrency 1, 16 and 64, with the edge's decision cache off and on, for two policy
 * responders side by side on the same nats-server, each in its own worker thread (its own event
 * loop, its own NATS connection), answering from the generated 500-rule policy:
 *
 * - `old`: `bus.serve` + `answerDecisionRequest`, the responder before the policy role moved onto
 *   @nestjs/microservices;
 * - `new`: the policy role as it runs (`portcullis serve policy`: startProcess, PolicyController
 *   on the BusTransportStrategy, its metrics included).
 *
 * Samples are interleaved: for every concurrency and cache setting, each responder in turn (the
 * order alternating from run to run) serves a short warm-up and then the sample while the other is
 * paused, so both see the same machine; a ratio is the median of the runs' pair ratios. The client cycles through 1024 distinct requests, so with the cache on the
 * steady state is hits (the first pass of each sample is misses). Medians of RUNS, with the spread
 * (min–max).
 *
 *   npm run bench:policy                              # builds, then this and the engine bench
 *   node dist/bench/policy-roundtrip.bench.js         # starts its own nats-server (JetStream)
 *   BENCH_NATS_URL=nats://127.0.0.1:4222 BENCH_RUNS=5 node dist/bench/policy-roundtrip.bench.js
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { connectNats, type BusSubscription } from '@portcullis/bus';
import { silentLogger } from '@portcullis/common';
import { QueueGroups, Subjects } from '@portcullis/contracts';
import { parseConfig } from '@portcullis/config';
import { answerDecisionRequest, parsePolicy } from '@portcullis/policy-engine';
import { DecisionCache, DecisionClient } from '@portcullis/gateway';
import { BusTransportStrategy } from '../apps/runtime/src/index.js';
import { Role } from '../apps/runtime/src/roles.js';
import { startProcess, type RunningProcess } from '../apps/runtime/src/start-process.js';
import { startNats } from '../test/harness/services.js';
import { generatePolicy, request, RULES } from './bench-workload.js';
import { reportFigures } from './bench-result.js';
import { threadCpuSeconds } from './proc-cpu.js';

const RUN_MS = Number(process.env['BENCH_RUN_MS'] ?? 2000);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const CONCURRENCY = [1, 16, 64] as const;
const RESPONDERS = ['old', 'new'] as const;
type Responder = (typeof RESPONDERS)[number];

/** What the main thread tells a responder, and what it answers. */
type Command = 'serve' | 'pause' | 'stop';
interface ResponderData {
  readonly url: string;
  readonly kind: Responder;
  readonly dir: string;
}

/** The `old` responder: a queue subscription answering with the pure responder. */
async function oldResponder(data: ResponderData): Promise<{ serve(): Promise<void>; pause(): Promise<void>; stop(): Promise<void> }> {
  const parsed = parsePolicy(generatePolicy(), { source: 'bench' });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors.slice(0, 5)));
  const policy = parsed.policy;
  const bus = await connectNats({ servers: [data.url], name: 'bench-policy-old', logger: silentLogger });
  let sub: BusSubscription | undefined;
  return {
    async serve() {
      sub = bus.bus.serve(Subjects.policyDecide(), QueueGroups.policy, (m) => answerDecisionRequest(policy, m.data, new Date()));
      await bus.flush();
    },
    async pause() {
      await sub?.unsubscribe();
    },
    stop: () => bus.close(),
  };
}

/** The `new` responder: the policy role as `serve policy` runs it; paused by closing its transport (it drains), resumed by listening again. */
async function newResponder(data: ResponderData): Promise<{ serve(): Promise<void>; pause(): Promise<void>; stop(): Promise<void> }> {
  const file = join(data.dir, 'policy.yaml');
  writeFileSync(file, generatePolicy());
  const config = parseConfig(
    {
      node: { id: 'bench-policy-new', stateDir: join(data.dir, 'state') },
      bus: { mode: 'nats', nats: { servers: [data.url] } },
      policy: { source: 'file', file },
    },
    { configDir: data.dir },
  );
  const running: RunningProcess = await startProcess({ config, roles: [Role.Policy], label: 'bench-policy', logger: silentLogger });
  const transport = running.app.get(BusTransportStrategy);
  await transport.close();
  return {
    serve: () =>
      new Promise<void>((resolve, reject) =>
        transport.listen((err) =>
          err === undefined ? resolve() : reject(err instanceof Error ? err : new Error('the bus transport did not listen', { cause: err })),
        ),
      ),
    pause: () => transport.close(),
    stop: () => running.close(),
  };
}

async function responderThread(data: ResponderData): Promise<void> {
  const responder = data.kind === 'old' ? await oldResponder(data) : await newResponder(data);
  // The responder thread's own CPU while it served (serve → pause): what one decision costs it.
  let servedFrom = 0;
  parentPort?.on('message', (command: Command) => {
    if (command === 'serve') servedFrom = threadCpuSeconds();
    const done = command === 'serve' ? responder.serve() : command === 'pause' ? responder.pause() : responder.stop();
    void done.then(
      () => (command === 'stop' ? process.exit(0) : parentPort?.postMessage(command === 'pause' ? threadCpuSeconds() - servedFrom : 0)),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  });
  parentPort?.postMessage('ready');
}

interface Sample {
  p50: number;
  p99: number;
  rate: number;
  hitRate: number;
  /** Decisions asked in the sample. */
  count: number;
  /** The responder thread's CPU per decision it was asked (µs), warm-up included; set after the sample. */
  cpuUs?: number;
}

async function run(client: DecisionClient, cache: DecisionCache | undefined, concurrency: number, ms = RUN_MS): Promise<Sample> {
  const requests = Array.from({ length: 1024 }, (_, i) => request(i));
  cache?.invalidate();
  if (cache !== undefined) Object.assign(cache.stats, { hits: 0, misses: 0 });
  const latencies: number[] = [];
  let next = 0;
  const until = performance.now() + ms;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const [identity, attributes] = requests[next++ & 1023]!;
        const t = performance.now();
        await client.decide('bench', identity, attributes);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  const looked = cache === undefined ? 0 : cache.stats.hits + cache.stats.misses;
  return {
    p50: at(0.5),
    p99: at(0.99),
    rate: latencies.length / seconds,
    hitRate: looked === 0 ? 0 : (cache?.stats.hits ?? 0) / looked,
    count: latencies.length,
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const spread = (xs: number[]): string => `${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)}`;

/** Starts a responder thread and returns a way to send it commands (resolving with its answer: the CPU seconds it served, on pause). */
async function responderWorker(data: ResponderData): Promise<(command: Command) => Promise<number>> {
  const worker = new Worker(new URL(import.meta.url), { workerData: data });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  let pending: { readonly on: 'message' | 'exit'; resolve(value: number): void; reject(err: unknown): void } | undefined;
  const settle = (on: 'message' | 'exit', value: number, err?: unknown): void => {
    const p = pending;
    pending = undefined;
    if (p === undefined) return;
    if (err === undefined && p.on === on) p.resolve(value);
    else p.reject(err ?? new Error('the responder thread exited'));
  };
  worker.on('message', (value: number) => settle('message', value));
  worker.on('exit', () => settle('exit', 0));
  worker.on('error', (err) => settle('message', 0, err));
  return (command) =>
    new Promise<number>((resolve, reject) => {
      pending = { on: command === 'stop' ? 'exit' : 'message', resolve, reject };
      worker.postMessage(command);
    });
}

async function main(): Promise<void> {
  const own = process.env['BENCH_NATS_URL'] === undefined ? await startNats({ jetstream: true }) : undefined;
  const url = process.env['BENCH_NATS_URL'] ?? own?.url ?? '';
  const dir = mkdtempSync(join(tmpdir(), 'bench-policy-'));
  const responders = {
    old: await responderWorker({ url, kind: 'old', dir }),
    new: await responderWorker({ url, kind: 'new', dir }),
  } as const;
  const handle = await connectNats({ servers: [url], name: 'bench-edge', logger: silentLogger });
  const cache = new DecisionCache({ ttlMs: 5_000, maxEntries: 10_000 });
  const clients = { off: new DecisionClient(handle.bus, 5_000), on: new DecisionClient(handle.bus, 5_000, cache) } as const;

  const samples = new Map<string, Sample[]>();
  for (let r = 0; r < RUNS; r++) {
    for (const concurrency of CONCURRENCY) {
      for (const mode of ['off', 'on'] as const) {
        // Back to back, the order alternating run by run for every setting (a counter over all the
        // settings kept each one's order fixed: six settings per run): neither responder always runs second.
        for (const kind of r % 2 === 0 ? RESPONDERS : [...RESPONDERS].reverse()) {
          await responders[kind]('serve');
          const warm = await run(clients.off, undefined, 16, Math.min(RUN_MS / 4, 500)); // warm the JIT and the connections
          const key = `${kind}/${mode}/${concurrency}`;
          const list = samples.get(key) ?? [];
          samples.set(key, list);
          const sample = await run(clients[mode], mode === 'on' ? cache : undefined, concurrency);
          const cpuSeconds = await responders[kind]('pause');
          // Cache on: most decisions never reach the responder, so only the cache-off figure means anything.
          list.push({ ...sample, cpuUs: (cpuSeconds * 1e6) / (warm.count + sample.count) });
        }
      }
    }
  }
  await handle.close();
  await Promise.all(RESPONDERS.map((k) => responders[k]('stop')));
  if (own !== undefined) await own.stop();

  const of = (kind: Responder, mode: string, concurrency: number): Sample[] => samples.get(`${kind}/${mode}/${concurrency}`) ?? [];
  const header = [
    'cache',
    'conc.',
    'old p50',
    'new p50',
    'p50 new/old (pairs)',
    'old p99',
    'new p99',
    'p99 new/old (pairs)',
    'CPU µs old',
    'CPU µs new',
    'new decisions/s',
    'hit rate',
    'spread p50 old | new',
    'spread p99 old | new',
  ];
  const rows: string[][] = [];
  const comparison: Record<string, unknown>[] = [];
  for (const mode of ['off', 'on'] as const) {
    for (const concurrency of CONCURRENCY) {
      const o = of('old', mode, concurrency);
      const n = of('new', mode, concurrency);
      const p = (xs: Sample[], k: 'p50' | 'p99'): number => median(xs.map((x) => x[k]));
      // The ratio of each run's pair (sampled back to back on the same machine), then their median:
      // a noisy run moves one pair, not a whole side's median.
      const pairRatio = (k: 'p50' | 'p99'): number => median(n.map((x, i) => x[k] / (o[i]?.[k] ?? NaN)).filter(Number.isFinite));
      const ratio50 = pairRatio('p50');
      const ratio99 = pairRatio('p99');
      rows.push([
        mode,
        String(concurrency),
        p(o, 'p50').toFixed(3),
        p(n, 'p50').toFixed(3),
        ratio50.toFixed(3),
        p(o, 'p99').toFixed(3),
        p(n, 'p99').toFixed(3),
        ratio99.toFixed(3),
        mode === 'off' ? median(o.map((x) => x.cpuUs ?? NaN)).toFixed(1) : '-',
        mode === 'off' ? median(n.map((x) => x.cpuUs ?? NaN)).toFixed(1) : '-',
        Math.round(median(n.map((x) => x.rate))).toLocaleString('en-US'),
        mode === 'on' ? `${(median(n.map((x) => x.hitRate)) * 100).toFixed(1)}%` : '-',
        `${spread(o.map((x) => x.p50))} | ${spread(n.map((x) => x.p50))}`,
        `${spread(o.map((x) => x.p99))} | ${spread(n.map((x) => x.p99))}`,
      ]);
      comparison.push({
        cache: mode,
        concurrency,
        old: {
          p50Ms: p(o, 'p50'),
          p99Ms: p(o, 'p99'),
          decisionsPerSecond: median(o.map((x) => x.rate)),
          responderCpuUsPerDecision: median(o.map((x) => x.cpuUs ?? NaN)),
        },
        new: {
          p50Ms: p(n, 'p50'),
          p99Ms: p(n, 'p99'),
          decisionsPerSecond: median(n.map((x) => x.rate)),
          responderCpuUsPerDecision: median(n.map((x) => x.cpuUs ?? NaN)),
        },
        p50Ratio: ratio50,
        p99Ratio: ratio99,
      });
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ');
  console.log(
    `policy round trip over NATS (${url}): DecisionClient.decide → a policy responder in a worker, ${RULES}-rule policy, 1024 distinct requests; ` +
      `old = bus.serve + answerDecisionRequest, new = the policy role on @nestjs/microservices (BusTransportStrategy); ms, median of ${RUNS} interleaved samples of ${RUN_MS} ms; ` +
      `new/old = the median of each run's back-to-back pair's ratio; ` +
      `CPU µs = the responder thread's own CPU (/proc/thread-self) per decision it was asked`,
  );
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  const worst = Math.max(...comparison.filter((c) => c['cache'] === 'off').flatMap((c) => [c['p50Ratio'] as number, c['p99Ratio'] as number]));
  console.log(`worst new/old ratio with the cache off: ${worst.toFixed(3)} (goal ≤ 1.100)`);
  reportFigures('policy-roundtrip', {
    rows: comparison.map((c) => {
      const n = c['new'] as { p50Ms: number; p99Ms: number; decisionsPerSecond: number };
      return {
        cache: c['cache'],
        concurrency: c['concurrency'],
        p50Ms: Number(n.p50Ms.toFixed(3)),
        p99Ms: Number(n.p99Ms.toFixed(3)),
        decisionsPerSecond: Math.round(n.decisionsPerSecond),
      };
    }),
    comparison,
  });
}

if (isMainThread) await main();
else await responderThread(workerData as ResponderData);
