/**
 * In-process policy engine throughput: decisions per second on a generated 500-rule policy,
 * median of 5 runs. Run: `npm run build && node dist/bench/policy-engine.bench.js`.
 */
import { evaluate, parsePolicy } from '@portcullis/policy-engine';
import { generatePolicy, request, RULES } from './bench-workload.js';
import { reportFigures } from './bench-result.js';

const DECISIONS_PER_RUN = 300_000;
const RUNS = 5;

const parsed = parsePolicy(generatePolicy(), { source: 'bench' });
if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors.slice(0, 5)));
const policy = parsed.policy;
const requests = Array.from({ length: 1024 }, (_, i) => request(i));
const now = new Date('2026-11-26T10:00:00Z');

const outcomes = new Map<string, number>();
for (const [id, attrs] of requests) {
  const d = evaluate(policy, id, attrs, now);
  const key = d.ruleId === 'default-deny' ? 'default-deny' : d.effect;
  outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
}

const rates: number[] = [];
for (let run = 0; run < RUNS + 1; run++) {
  const start = process.hrtime.bigint();
  let sink = 0;
  for (let i = 0; i < DECISIONS_PER_RUN; i++) {
    const [id, attrs] = requests[i & 1023]!;
    sink += evaluate(policy, id, attrs, now).ruleId.length;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (run > 0) rates.push(DECISIONS_PER_RUN / seconds); // run 0 warms the JIT
  if (sink === 0) throw new Error('unreachable');
}
rates.sort((a, b) => a - b);
const median = rates[Math.floor(rates.length / 2)] ?? 0;
process.stdout.write(
  `policy-engine: ${RULES} rules, ${requests.length} distinct requests (${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')})\n` +
    `policy-engine: ${Math.round(median).toLocaleString('en-US')} decisions/s (median of ${RUNS} runs of ${DECISIONS_PER_RUN.toLocaleString('en-US')}; ` +
    `min ${Math.round(rates[0] ?? 0).toLocaleString('en-US')}, max ${Math.round(rates[rates.length - 1] ?? 0).toLocaleString('en-US')})\n`,
);
reportFigures('policy-engine', { rules: RULES, decisionsPerSecond: Math.round(median) });
