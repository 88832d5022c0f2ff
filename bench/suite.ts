/**
 * `npm run bench`: runs every benchmark as its own process, one after the other (they would
 * disturb each other's figures side by side on two cores), collects their `BENCH_RESULT` lines
 * and writes bench/results/<date>.json, <date>.md and <date>.svg (and latest.md / latest.svg,
 * which the README links).
 *
 *   npm run bench                               all parts
 *   npm run bench -- --only proxy-compare,audit-ingest
 *   npm run bench -- --quick                    one round of short runs (a smoke test of the suite)
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_RESULT_PREFIX } from './bench-result.js';
import { renderMarkdown, renderSvg, type BenchResults } from './bench-report.js';

/** The suite's parts: each is a compiled bench script; most report several figures. */
const PARTS = {
  'proxy-compare': 'proxy-compare.bench.js',
  'policy-engine': 'policy-engine.bench.js',
  'policy-roundtrip': 'policy-roundtrip.bench.js',
  'audit-ingest': 'audit-ingest.bench.js',
  masking: 'masking.bench.js',
  'approval-release': 'approval-release.bench.js',
} as const;
type Part = keyof typeof PARTS;

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const args = process.argv.slice(2);
const onlyArg = args.find((a) => a.startsWith('--only'));
const only = onlyArg === undefined ? undefined : (onlyArg.includes('=') ? onlyArg.split('=')[1] : args[args.indexOf(onlyArg) + 1])?.split(',');
const quick = args.includes('--quick');
for (const name of only ?? []) {
  if (!(name in PARTS)) throw new Error(`unknown bench part ${JSON.stringify(name)}; expected one of ${Object.keys(PARTS).join(', ')}`);
}
const parts = (Object.keys(PARTS) as Part[]).filter((p) => only === undefined || only.includes(p));
const quickEnv: NodeJS.ProcessEnv = quick
  ? { BENCH_ROUNDS: '1', BENCH_SECONDS: '1', BENCH_RUNS: '1', BENCH_RUN_MS: '500', BENCH_BACKLOG: '30000', BENCH_LAG_SECONDS: '3', APPROVALS: '20' }
  : {};

function runPart(part: Part): Promise<{ figures: Record<string, Record<string, unknown>>; log: string; ok: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(here, PARTS[part])], { cwd: repo, env: { ...process.env, ...quickEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    const figures: Record<string, Record<string, unknown>> = {};
    let log = '';
    let pending = '';
    const onOut = (chunk: Buffer): void => {
      pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.startsWith(BENCH_RESULT_PREFIX)) {
          const r = JSON.parse(line.slice(BENCH_RESULT_PREFIX.length)) as { part: string; figures: Record<string, unknown> };
          figures[r.part] = r.figures;
        } else {
          log += `${line}\n`;
          process.stdout.write(`[${part}] ${line}\n`);
        }
      }
    };
    child.stdout.on('data', onOut);
    child.stderr.on('data', (c: Buffer) => {
      log += c.toString('utf8');
      process.stderr.write(c);
    });
    child.once('exit', (code) => resolve({ figures, log, ok: code === 0 }));
  });
}

const date = new Date().toISOString().slice(0, 10);
const startLoad = loadavg().map((x) => Math.round(x * 100) / 100);
const collected: Record<string, Record<string, unknown>> = {};
const logs: Record<string, string> = {};
const failed: string[] = [];
for (const part of parts) {
  process.stdout.write(`\n=== ${part} ===\n`);
  const r = await runPart(part);
  Object.assign(collected, r.figures);
  logs[part] = r.log;
  if (!r.ok) failed.push(part);
}
let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo, encoding: 'utf8' }).trim();
} catch {
  // Not a git checkout: the report says "unknown".
}
const results: BenchResults = {
  date,
  commit,
  node: process.version,
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? 'unknown',
  loadAverage: { start: startLoad, end: loadavg().map((x) => Math.round(x * 100) / 100) },
  parts: collected,
  failed,
};
const outDir = join(repo, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
const svg = renderSvg(results);
writeFileSync(join(outDir, `${date}.json`), `${JSON.stringify({ ...results, logs }, null, 2)}\n`);
writeFileSync(join(outDir, `${date}.svg`), svg);
writeFileSync(join(outDir, `${date}.md`), renderMarkdown(results, `${date}.svg`));
writeFileSync(join(outDir, 'latest.svg'), svg);
writeFileSync(join(outDir, 'latest.md'), renderMarkdown(results, 'latest.svg'));
process.stdout.write(`\nwrote bench/results/${date}.{json,md,svg} and latest.{md,svg}${failed.length > 0 ? `; FAILED: ${failed.join(', ')}` : ''}\n`);
process.exit(failed.length > 0 ? 1 : 0);
