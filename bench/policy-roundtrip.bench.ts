/**
 * The edge's decision round trip over NATS under load: p50/p99 latency of `DecisionClient.decide`
 * at concurrency 1, 16 and 64, with the edge's decision cache off and on. The policy role runs in
 * a worker thread (its own event loop, its own NATS connection) answering from the generated
 * 500-rule policy; the client cycles through 1024 distinct requests, so with the cache on the
 * steady state is hits (the first pass of each run is misses). Runs alternate, median of RUNS.
 *
 *   npm run bench:policy                              # builds, then this and the engine bench
 *   node dist/bench/policy-roundtrip.bench.js         # starts its own nats-server
 *   BENCH_NATS_URL=nats://127.0.0.1:4222 node dist/bench/policy-roundtrip.bench.js
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { connectNats } from '@portcullis/bus';
import { silentLogger } from '@portcullis/common';
import { QueueGroups, Subjects } from '@portcullis/contracts';
import { answerDecisionRequest, parsePolicy } from '@portcullis/policy-engine';
import { DecisionCache, DecisionClient } from '@portcullis/gateway';
import { startNats } from '../test/harness/services.js';
import { generatePolicy, request, RULES } from './bench-workload.js';
import { reportFigures } from './bench-result.js';

const RUN_MS = Number(process.env['BENCH_RUN_MS'] ?? 2000);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const CONCURRENCY = [1, 16, 64] as const;
const quiet = silentLogger;

function compiledPolicy() {
  const parsed = parsePolicy(generatePolicy(), { source: 'bench' });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors.slice(0, 5)));
  return parsed.policy;
}

/** The policy role: answers decisions in the queue group until told to stop. */
async function responder(url: string): Promise<void> {
  const policy = compiledPolicy();
  const bus = await connectNats({ servers: [url], name: 'bench-policy', logger: quiet });
  bus.bus.serve(Subjects.policyDecide(), QueueGroups.policy, (m) => answerDecisionRequest(policy, m.data, new Date()));
  await bus.flush();
  parentPort?.postMessage('ready');
  parentPort?.once('message', () => {
    void bus.close().then(() => process.exit(0));
  });
}

interface Sample {
  p50: number;
  p99: number;
  rate: number;
  hitRate: number;
}

async function run(client: DecisionClient, cache: DecisionCache | undefined, concurrency: number): Promise<Sample> {
  const requests = Array.from({ length: 1024 }, (_, i) => request(i));
  cache?.invalidate();
  if (cache !== undefined) Object.assign(cache.stats, { hits: 0, misses: 0 });
  const latencies: number[] = [];
  let next = 0;
  const until = performance.now() + RUN_MS;
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
  return { p50: at(0.5), p99: at(0.99), rate: latencies.length / seconds, hitRate: looked === 0 ? 0 : (cache?.stats.hits ?? 0) / looked };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

async function main(): Promise<void> {
  const own = process.env['BENCH_NATS_URL'] === undefined ? await startNats({ jetstream: false }) : undefined;
  const url = process.env['BENCH_NATS_URL'] ?? own?.url ?? '';
  const worker = new Worker(new URL(import.meta.url), { workerData: { url } });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  const handle = await connectNats({ servers: [url], name: 'bench-edge', logger: quiet });
  const cache = new DecisionCache({ ttlMs: 5_000, maxEntries: 10_000 });
  const clients = { off: new DecisionClient(handle.bus, 5_000), on: new DecisionClient(handle.bus, 5_000, cache) } as const;

  await run(clients.off, undefined, 16); // warm the JIT and the connections
  const samples = new Map<string, Sample[]>();
  for (let r = 0; r < RUNS; r++) {
    for (const concurrency of CONCURRENCY) {
      for (const mode of ['off', 'on'] as const) {
        const key = `${mode}/${concurrency}`;
        const list = samples.get(key) ?? [];
        samples.set(key, list);
        list.push(await run(clients[mode], mode === 'on' ? cache : undefined, concurrency));
      }
    }
  }
  await handle.close();
  worker.postMessage('stop');
  await new Promise((resolve) => worker.once('exit', resolve));
  if (own !== undefined) await own.stop();

  const header = ['cache', 'concurrency', 'p50 ms', 'p99 ms', 'decisions/s', 'hit rate'];
  const rows: string[][] = [];
  for (const mode of ['off', 'on'] as const) {
    for (const concurrency of CONCURRENCY) {
      const s = samples.get(`${mode}/${concurrency}`) ?? [];
      rows.push([
        mode,
        String(concurrency),
        median(s.map((x) => x.p50)).toFixed(3),
        median(s.map((x) => x.p99)).toFixed(3),
        Math.round(median(s.map((x) => x.rate))).toLocaleString('en-US'),
        mode === 'on' ? `${(median(s.map((x) => x.hitRate)) * 100).toFixed(1)}%` : '-',
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ');
  console.log(`policy round trip over NATS (${url}): DecisionClient.decide → policy role in a worker, ${RULES}-rule policy, 1024 distinct requests; median of ${RUNS} × ${RUN_MS} ms`);
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  reportFigures('policy-roundtrip', {
    rows: rows.map(([cache, concurrency, p50Ms, p99Ms, rate, hitRate]) => ({ cache, concurrency: Number(concurrency), p50Ms: Number(p50Ms), p99Ms: Number(p99Ms), decisionsPerSecond: Number((rate ?? '').replaceAll(',', '')), hitRate })),
  });
}

if (isMainThread) await main();
else await responder((workerData as { url: string }).url);
