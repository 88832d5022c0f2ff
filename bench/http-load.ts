/**
 * A keep-alive HTTPS load generator, run as its own process so it does not share an event loop
 * with what it measures. Args: URL CA_FILE TOKEN CONCURRENCY REQUESTS. Prints one JSON line:
 * {"p50Ms","p99Ms","rps","errors"} after a warm-up of CONCURRENCY×20 requests.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';

const [url = '', caFile = '', token = '', concurrencyText = '8', requestsText = '4000'] = process.argv.slice(2);
const concurrency = Number(concurrencyText);
const total = Number(requestsText);
const agent = new Agent({ keepAlive: true, maxSockets: concurrency, ca: readFileSync(caFile, 'utf8') });

function once(): Promise<number> {
  return new Promise((resolve) => {
    const start = performance.now();
    const req = request(url, { agent, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => resolve(res.statusCode === 200 ? performance.now() - start : -1));
    });
    req.on('error', () => resolve(-1));
    req.end();
  });
}

async function run(n: number): Promise<{ latencies: number[]; errors: number; seconds: number }> {
  const latencies: number[] = [];
  let errors = 0;
  let issued = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < n) {
        issued++;
        const ms = await once();
        if (ms < 0) errors++;
        else latencies.push(ms);
      }
    }),
  );
  return { latencies, errors, seconds: (performance.now() - start) / 1000 };
}

await run(concurrency * 20);
const { latencies, errors, seconds } = await run(total);
latencies.sort((a, b) => a - b);
const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))] ?? 0;
process.stdout.write(`${JSON.stringify({ p50Ms: pct(50), p99Ms: pct(99), rps: latencies.length / seconds, errors })}\n`);
agent.destroy();
