/**
 * Bus round trips over a local nats-server: request-reply round trips/s and JetStream acked
 * appends/s, with nats.js `noAsyncTraces` on vs off, at concurrency 1 and 64; the median of 5
 * runs of RUN_MS each.
 *
 *   node dist/bench/bus-roundtrip.js                 # starts its own nats-server -js
 *   BENCH_NATS_URL=nats://127.0.0.1:4222 node dist/bench/bus-roundtrip.js
 */
import { connectNats } from '@portcullis/bus';
import type { NatsBus } from '@portcullis/bus';
import { silentLogger } from '@portcullis/common';
import { startNats, uniqueName } from '../test/harness/services.js';

const RUN_MS = Number(process.env['BENCH_RUN_MS'] ?? 1000);
const RUNS = 5;
const CONCURRENCY = [1, 64] as const;

/** Runs `op` from `concurrency` loops for RUN_MS; returns completed ops per second. */
async function opsPerSecond(concurrency: number, op: () => Promise<unknown>): Promise<number> {
  let done = 0;
  const until = Date.now() + RUN_MS;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        await op();
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function main(): Promise<void> {
  const own = process.env['BENCH_NATS_URL'] === undefined ? await startNats({ jetstream: true }) : undefined;
  const url = process.env['BENCH_NATS_URL'] ?? own?.url ?? '';
  const responder = await connectNats({ servers: [url], name: 'bench-responder', logger: silentLogger });
  const subject = `${uniqueName('bench')}.echo`;
  responder.bus.serve(subject, 'bench', (m) => m.data);
  await responder.flush();
  const stream = uniqueName('BENCH').toUpperCase();
  await responder.log.ensureStream({ name: stream, subjects: [`${stream}.>`], maxAgeMs: 600_000, duplicateWindowMs: 60_000, replicas: 1 });

  const payload = new Uint8Array(256).fill(7);
  // Both clients live side by side and the runs alternate, so stream growth and machine noise hit both alike.
  const clients = new Map<boolean, NatsBus>();
  for (const noAsyncTraces of [true, false]) {
    clients.set(noAsyncTraces, await connectNats({ servers: [url], name: `bench-client-${noAsyncTraces}`, logger: silentLogger, noAsyncTraces }));
  }
  const samples = new Map<string, { req: number[]; app: number[] }>();
  let seq = 0;
  for (let run = 0; run < RUNS; run++) {
    for (const concurrency of CONCURRENCY) {
      for (const [noAsyncTraces, client] of clients) {
        const key = `${noAsyncTraces}/${concurrency}`;
        const s = samples.get(key) ?? { req: [], app: [] };
        samples.set(key, s);
        s.req.push(await opsPerSecond(concurrency, () => client.bus.request(subject, payload, { timeoutMs: 5000 })));
        s.app.push(await opsPerSecond(concurrency, () => client.log.append(`${stream}.e`, payload, `m${++seq}`, { timeoutMs: 5000 })));
      }
    }
  }
  const rows: string[][] = [];
  for (const noAsyncTraces of [true, false]) {
    for (const concurrency of CONCURRENCY) {
      const s = samples.get(`${noAsyncTraces}/${concurrency}`);
      if (s !== undefined) rows.push([String(noAsyncTraces), String(concurrency), median(s.req).toFixed(0), median(s.app).toFixed(0)]);
    }
  }
  await Promise.all([...clients.values()].map((c) => c.close()));
  await responder.close();
  if (own !== undefined) await own.stop();

  const header = ['noAsyncTraces', 'concurrency', 'request-reply/s', 'acked appends/s'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ');
  console.log(`bus round trips, 256-byte payloads, median of ${RUNS} × ${RUN_MS} ms, ${url}`);
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  if (process.env['BENCH_NATS_URL'] !== undefined) {
    console.log(`(stream ${stream} was left on the server; it expires after 10 minutes of age per message)`);
  }
}

await main();
