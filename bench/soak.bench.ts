/**
 * `npm run bench:soak`: does memory stay flat under a steady load? Soaks the gateway in both modes
 * with a kubectl-like mix of GETs and LISTs through `/k8s/sandbox/…` (wrk in its own process, in
 * segments), and between segments samples every Portcullis process's heap used after a major GC
 * (`nodejs_heap_used_after_gc_bytes` on its /metrics) and RSS (/proc/<pid>/status). Before each
 * sample a full GC is forced in every process through its inspector (`--inspect` on a loopback
 * port, `HeapProfiler.collectGarbage`), so the gauge is the live set at that moment rather than
 * whatever V8's heuristics last collected (an edge can go 100k requests without a major GC):
 *
 *   embedded  `portcullis start`: every role and the sandbox API server in one process
 *   cluster   `portcullis serve edge|policy|audit` as separate processes on nats-server -js and
 *             ClickHouse, the sandbox as its own process (apps/sandbox)
 *
 * Writes bench/results/soak-<date>.{json,md,svg} and soak-latest.{md,svg}: per process the slope
 * after warm-up (MB per 100k requests) and a verdict, flat when the trend is within noise.
 *
 * Env: BENCH_SOAK_SECONDS (load per mode, default 150), or BENCH_SOAK_REQUESTS (per mode: run
 * until that many were served instead, e.g. 540000 for the issue's soak; BENCH_SOAK_MAX_SECONDS
 * caps it, default 3600), BENCH_SOAK_MODES (embedded,cluster), BENCH_SOAK_CONNECTIONS (8),
 * BENCH_SOAK_SAMPLES (about 30 per mode), BENCH_SOAK_WARMUP (0.25: the fraction of requests left
 * out of the slope), BENCH_SOAK_FORCE_GC (1; 0 leaves GC to V8), BENCH_SOAK_NOTE (text for the
 * report), BENCH_SOAK_NAME (file name stem, default soak-<date>; soak-latest is written only
 * without it).
 *
 *   node dist/bench/soak.bench.js --render bench/results/soak-<date>.json   re-renders a run's .md and .svg
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, join } from 'node:path';
import { WebSocket } from 'ws';
import { ensureBinaries } from '../test/harness/binaries.js';
import { trackProcess, untrackProcess } from '../test/harness/process-reaper.js';
import { freePort, startClickHouse, startNats, uniqueName, type TestClickHouse, type TestNats } from '../test/harness/services.js';
import { REPO_ROOT, runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from '../test/support/portcullis-process.js';
import { reportFigures } from './bench-result.js';
import { analyse, renderSoakMarkdown, renderSoakSvg, type SoakFigures, type SoakMode, type SoakSample } from './soak-report.js';

const env = process.env;
const REQUESTS = env['BENCH_SOAK_REQUESTS'] === undefined ? undefined : Number(env['BENCH_SOAK_REQUESTS']);
const SECONDS = REQUESTS === undefined ? Number(env['BENCH_SOAK_SECONDS'] ?? 150) : Number(env['BENCH_SOAK_MAX_SECONDS'] ?? 3600);
const MODES = (env['BENCH_SOAK_MODES'] ?? 'embedded,cluster').split(',').map((m) => m.trim()) as SoakMode['mode'][];
const CONNECTIONS = Number(env['BENCH_SOAK_CONNECTIONS'] ?? 8);
const SAMPLES = Number(env['BENCH_SOAK_SAMPLES'] ?? 30);
const WARMUP = Number(env['BENCH_SOAK_WARMUP'] ?? 0.25);
const FORCE_GC = env['BENCH_SOAK_FORCE_GC'] !== '0';
for (const m of MODES) if (m !== 'embedded' && m !== 'cluster') throw new Error(`BENCH_SOAK_MODES: unknown mode ${JSON.stringify(m)} (embedded, cluster)`);

/** What kubectl sends for `get pods`, `get cm -n kube-system`, `get pod x -o json`, `get deploy`, `get ns` and discovery. */
const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json';
const MIX: readonly { path: string; accept: string }[] = [
  { path: '/api/v1/namespaces/default/pods?limit=500', accept: TABLE },
  { path: '/api/v1/namespaces/default/pods/nginx-7c5ddbdf54-x8f9k', accept: 'application/json' },
  { path: '/api/v1/namespaces/kube-system/configmaps?limit=500', accept: TABLE },
  { path: '/apis/apps/v1/namespaces/default/deployments?limit=500', accept: TABLE },
  { path: '/api/v1/namespaces/prod/pods?labelSelector=app%3Dapi', accept: 'application/json' },
  { path: '/api/v1/namespaces?limit=500', accept: TABLE },
  { path: '/api', accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json' },
];

/** A process whose memory the soak follows. */
interface Sampled {
  readonly name: string;
  readonly what: string;
  readonly pid: number;
  /** Its /metrics, for the heap after GC. */
  readonly metricsUrl: string;
  /** Its inspector's port (`--inspect`), to force a full GC before a sample. */
  readonly inspectPort: number;
}

/** An inspector session that forces full GCs (`HeapProfiler.collectGarbage`). */
class GcTrigger {
  private nextId = 1;
  private readonly pending = new Map<number, () => void>();
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const reply = JSON.parse(data.toString('utf8')) as { id?: number };
      if (reply.id !== undefined) this.pending.get(reply.id)?.();
    });
  }

  static async connect(port: number): Promise<GcTrigger> {
    const [target] = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
    if (target === undefined) throw new Error(`no inspector target on port ${port}`);
    const ws = new WebSocket(target.webSocketDebuggerUrl);
    await once(ws, 'open');
    return new GcTrigger(ws);
  }

  /** Resolves when the target has collected. */
  collect(): Promise<void> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, () => {
        this.pending.delete(id);
        resolve();
      });
      this.ws.send(JSON.stringify({ id, method: 'HeapProfiler.collectGarbage' }));
    });
  }

  close(): void {
    this.ws.close();
  }
}

const dir = tempDir('bench-soak');
const children: ChildProcess[] = [];
const procs: PortcullisProcess[] = [];
const services: (TestNats | TestClickHouse)[] = [];

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN) / 1024;
}

/** The process's own gauges: heap after the latest major GC (null before the first) and the major GC count. */
async function gcMetrics(metricsUrl: string): Promise<{ heapMb: number | null; majorGcs: number }> {
  const text = await (await fetch(metricsUrl)).text();
  const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const heap = value('nodejs_heap_used_after_gc_bytes');
  return { heapMb: Number.isFinite(heap) && heap > 0 ? heap / 1048576 : null, majorGcs: value('nodejs_major_gcs_total') };
}

async function sample(processes: readonly Sampled[], triggers: ReadonlyMap<string, GcTrigger>, requests: number, seconds: number): Promise<SoakSample> {
  const rss: Record<string, number> = {};
  const heap: Record<string, number | null> = {};
  for (const p of processes) {
    const trigger = triggers.get(p.name);
    if (trigger !== undefined) {
      const before = (await gcMetrics(p.metricsUrl)).majorGcs;
      await trigger.collect();
      // The gc entry reaches the process's observer just after the collection: poll for it.
      const deadline = Date.now() + 5_000;
      while ((await gcMetrics(p.metricsUrl)).majorGcs <= before) {
        if (Date.now() > deadline) throw new Error(`${p.name}: the forced GC did not show on nodejs_major_gcs_total within 5 s`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    heap[p.name] = (await gcMetrics(p.metricsUrl)).heapMb;
    rss[p.name] = rssMb(p.pid);
  }
  return { requests, seconds, rssMb: rss, heapAfterGcMb: heap };
}

/** Starts a node script that prints one JSON line when ready (apps/sandbox). */
function startJsonChild(script: string, args: readonly string[], nodeArgs: readonly string[]): Promise<{ child: ChildProcess; info: Record<string, string> }> {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
  trackProcess(child);
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl !== -1) resolve({ child, info: JSON.parse(out.slice(0, nl)) as Record<string, string> });
    });
    child.once('exit', (code) => {
      untrackProcess(child);
      reject(new Error(`${script} exited (${code})`));
    });
  });
}

const devIdentity = (issuerUrl?: string): Record<string, unknown> => ({
  devIssuer: {
    enabled: true,
    ...(issuerUrl === undefined ? {} : { issuerUrl }),
    tokenLifetime: '1h',
    clients: [{ id: 'soak-bot', secret: 'soak-bot-secret-1', subject: 'soak-bot', groups: ['bots'] }],
  },
});
const POLICY = join(REPO_ROOT, 'examples', 'policy.yaml');

async function token(config: string): Promise<string> {
  const t = await runPortcullis(['token', '--client', 'soak-bot', '--config', config]);
  if (t.code !== 0) throw new Error(`portcullis token failed: ${t.stderr}`);
  return t.stdout.trim();
}

/** `portcullis start` with the sandbox in-process. */
const inspect = (port: number): string[] => (FORCE_GC ? [`--inspect=127.0.0.1:${port}`] : []);

async function startEmbedded(): Promise<{ url: string; token: string; processes: Sampled[] }> {
  const port = await freePort();
  const metricsPort = await freePort();
  const inspectPort = await freePort();
  const config = writeConfig(dir, 'embedded.yaml', {
    node: { id: 'soak-embedded', stateDir: join(dir, 'embedded', 'state') },
    edge: { listen: { host: '127.0.0.1', port } },
    approval: { listen: { host: '127.0.0.1', port: await freePort() } },
    identity: devIdentity(),
    sandbox: { enabled: 'always' },
    policy: { file: POLICY },
    observability: { listen: { host: '127.0.0.1', port: metricsPort } },
  });
  const p = startPortcullis(['start', '--config', config], { env: { PORTCULLIS_LOG_LEVEL: 'warn' }, nodeArgs: inspect(inspectPort) });
  procs.push(p);
  await p.waitFor(/Stop with Ctrl-C/, 60_000);
  return {
    url: `https://127.0.0.1:${port}`,
    token: await token(config),
    processes: [
      { name: 'portcullis start', what: 'all roles + sandbox', pid: p.child.pid ?? 0, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, inspectPort },
    ],
  };
}

/** edge, policy and audit as processes on nats-server -js and ClickHouse; the sandbox as its own process. */
async function startCluster(): Promise<{ url: string; token: string; processes: Sampled[] }> {
  const [nats, clickhouse] = await Promise.all([startNats({ jetstream: true }), startClickHouse()]);
  services.push(nats, clickhouse);
  const sandboxDir = join(dir, 'sandbox');
  const sandboxInspect = await freePort();
  const sandbox = await startJsonChild(
    join(REPO_ROOT, 'dist', 'apps', 'sandbox', 'src', 'main.js'),
    ['--cert-dir', join(sandboxDir, 'tls'), '--token-file', join(dir, 'sandbox-token'), '--metrics-port', String(await freePort())],
    inspect(sandboxInspect),
  );
  const caFile = join(dir, 'sandbox-ca.pem');
  writeFileSync(caFile, sandbox.info['ca'] ?? '');
  const port = await freePort();
  const base = (id: string, metricsPort: number): Record<string, unknown> => ({
    node: { id, stateDir: join(dir, 'cluster', 'state') },
    edge: { listen: { host: '127.0.0.1', port } },
    bus: { mode: 'nats', nats: { servers: [nats.url] } },
    identity: devIdentity(`https://127.0.0.1:${port}/oidc/dev`),
    connections: [{ name: 'sandbox', type: 'kubernetes', server: sandbox.info['url'], caFile, tokenFile: join(dir, 'sandbox-token') }],
    policy: { file: POLICY },
    audit: { sink: 'clickhouse', clickhouse: { url: clickhouse.httpUrl, database: uniqueName('soak') } },
    observability: { listen: { host: '127.0.0.1', port: metricsPort } },
  });
  const processes: Sampled[] = [];
  let edgeConfig = '';
  for (const role of ['policy', 'audit', 'edge'] as const) {
    const metricsPort = await freePort();
    const inspectPort = await freePort();
    const config = writeConfig(dir, `cluster-${role}.yaml`, base(`soak-${role}`, metricsPort));
    if (role === 'edge') edgeConfig = config;
    const p = startPortcullis(['serve', role, '--config', config], { env: { PORTCULLIS_LOG_LEVEL: 'warn' }, nodeArgs: inspect(inspectPort) });
    procs.push(p);
    await p.waitFor(/"ready":true/, 60_000);
    processes.push({ name: role, what: `serve ${role}`, pid: p.child.pid ?? 0, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, inspectPort });
  }
  processes.push({
    name: 'sandbox',
    what: 'apps/sandbox',
    pid: sandbox.child.pid ?? 0,
    metricsUrl: sandbox.info['metrics'] ?? '',
    inspectPort: sandboxInspect,
  });
  return { url: `https://127.0.0.1:${port}`, token: await token(edgeConfig), processes };
}

/** The wrk script: cycles through the mix with kubectl's headers. */
function wrkScript(bearer: string): string {
  const entries = MIX.map((m) => `  { path = ${JSON.stringify(`/k8s/sandbox${m.path}`)}, accept = ${JSON.stringify(m.accept)} }`).join(',\n');
  return `local mix = {
${entries}
}
local i = 0
request = function()
  i = i + 1
  local m = mix[(i % #mix) + 1]
  return wrk.format("GET", m.path, { ["Host"] = wrk.host .. ":" .. wrk.port, ["Authorization"] = ${JSON.stringify(`Bearer ${bearer}`)}, ["Accept"] = m.accept, ["User-Agent"] = "kubectl/v1.32.4 (linux/amd64) kubernetes/soak" })
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\n{"requests":%d,"errors":%d,"non2xx":%d}\\n', summary.requests, e.connect + e.read + e.write + e.timeout, e.status))
end
`;
}

async function wrk(binary: string, url: string, script: string, seconds: number): Promise<{ requests: number; errors: number }> {
  const child = spawn(binary, ['-t', String(Math.min(2, CONNECTIONS)), '-c', String(CONNECTIONS), '-d', `${seconds}s`, '--timeout', '10s', '-s', script, url], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  const line = out.trim().split('\n').at(-1) ?? '';
  if (code !== 0 || !line.startsWith('{')) throw new Error(`wrk failed (${code}): ${out.slice(-500)}`);
  const r = JSON.parse(line) as { requests: number; errors: number; non2xx: number };
  return { requests: r.requests, errors: r.errors + r.non2xx };
}

async function soak(mode: SoakMode['mode'], wrkBin: string): Promise<SoakMode> {
  process.stderr.write(`\n[soak] ${mode}: starting\n`);
  const target = mode === 'embedded' ? await startEmbedded() : await startCluster();
  const script = join(dir, `${mode}.lua`);
  writeFileSync(script, wrkScript(target.token));
  const triggers = new Map<string, GcTrigger>();
  if (FORCE_GC) for (const p of target.processes) triggers.set(p.name, await GcTrigger.connect(p.inspectPort));
  // The first scrape also starts each process's heap-after-GC observation.
  const samples: SoakSample[] = [await sample(target.processes, triggers, 0, 0)];
  let requests = 0;
  let errors = 0;
  let loadSeconds = 0;
  // Segment length: about SAMPLES samples over the run (by time, or by the request target once the rate is known).
  let segment = Math.min(15, Math.max(3, Math.round(SECONDS / SAMPLES)));
  const started = performance.now();
  while (REQUESTS === undefined ? loadSeconds < SECONDS : requests < REQUESTS && (performance.now() - started) / 1000 < SECONDS) {
    const r = await wrk(wrkBin, target.url, script, segment);
    requests += r.requests;
    errors += r.errors;
    loadSeconds += segment;
    const s = await sample(target.processes, triggers, requests, (performance.now() - started) / 1000);
    samples.push(s);
    process.stderr.write(
      `[soak] ${mode} ${requests} requests, ${Math.round(r.requests / segment)} req/s${r.errors > 0 ? `, ${r.errors} errors` : ''}: ${target.processes
        .map((p) => `${p.name} RSS ${s.rssMb[p.name]?.toFixed(0)} MB heap-after-GC ${s.heapAfterGcMb[p.name]?.toFixed(1) ?? 'n/a'} MB`)
        .join('; ')}\n`,
    );
    if (REQUESTS !== undefined) segment = Math.min(60, Math.max(3, Math.round(REQUESTS / (requests / loadSeconds) / SAMPLES)));
  }
  for (const t of triggers.values()) t.close();
  await Promise.all(procs.splice(0).map((p) => p.stop()));
  for (const c of children.splice(0)) c.kill('SIGTERM');
  await Promise.all(services.splice(0).map((s) => s.stop()));
  return {
    mode,
    label:
      mode === 'embedded'
        ? 'Embedded: `portcullis start` (every role and the sandbox in one process)'
        : 'Cluster: `serve edge`, `serve policy`, `serve audit` on nats-server -js and ClickHouse; the sandbox as its own process',
    processes: Object.fromEntries(target.processes.map((p) => [p.name, p.what])),
    samples,
    warmupRequests: Math.round(requests * WARMUP),
    requestsPerSecond: requests / loadSeconds,
    errors,
    forcedGc: FORCE_GC,
  };
}

/** Writes `<name>.md` and `<name>.svg` beside the results (and soak-latest.* when asked). */
function writeReports(outDir: string, name: string, figures: SoakFigures, latest: boolean): void {
  writeFileSync(join(outDir, `${name}.svg`), renderSoakSvg(figures));
  writeFileSync(join(outDir, `${name}.md`), renderSoakMarkdown(figures, `${name}.svg`));
  if (latest) {
    writeFileSync(join(outDir, 'soak-latest.svg'), renderSoakSvg(figures));
    writeFileSync(join(outDir, 'soak-latest.md'), renderSoakMarkdown(figures, 'soak-latest.svg'));
  }
}

async function main(): Promise<void> {
  const renderIndex = process.argv.indexOf('--render');
  if (renderIndex !== -1) {
    const file = process.argv[renderIndex + 1];
    if (file === undefined) throw new Error('--render needs the JSON file of a run');
    writeReports(join(file, '..'), basename(file, '.json'), JSON.parse(readFileSync(file, 'utf8')) as SoakFigures, false);
    process.stdout.write(`re-rendered ${file.replace(/\.json$/, '')}.{md,svg}\n`);
    return;
  }
  const { wrk: wrkBin } = await ensureBinaries(['wrk']);
  const startLoad = loadavg().map((x) => Math.round(x * 100) / 100);
  const modes: SoakMode[] = [];
  for (const mode of MODES) modes.push(await soak(mode, wrkBin));
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  } catch {
    // Not a git checkout: the report says "unknown".
  }
  const date = new Date().toISOString().slice(0, 10);
  const figures: SoakFigures = {
    date,
    commit,
    node: process.version,
    cpus: cpus().length,
    loadAverage: { start: startLoad, end: loadavg().map((x) => Math.round(x * 100) / 100) },
    connections: CONNECTIONS,
    requestMix: MIX.map((m) => m.path),
    modes,
    ...(env['BENCH_SOAK_NOTE'] === undefined ? {} : { note: env['BENCH_SOAK_NOTE'] }),
  };
  const outDir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const name = env['BENCH_SOAK_NAME'] ?? `soak-${date}`;
  writeFileSync(join(outDir, `${name}.json`), `${JSON.stringify(figures, null, 2)}\n`);
  writeReports(outDir, name, figures, env['BENCH_SOAK_NAME'] === undefined);
  const trends = analyse(figures);
  reportFigures('soak', {
    trends: trends.map((t) => ({
      mode: t.mode,
      process: t.process,
      verdict: t.verdict,
      rssSlopePer100k: t.rss?.slopePer100k,
      heapSlopePer100k: t.heapAfterGc?.slopePer100k,
    })),
  });
  process.stdout.write(`wrote bench/results/${name}.{json,md,svg}\n`);
  for (const t of trends) {
    process.stdout.write(
      `${t.mode}/${t.process}: RSS ${t.rss?.slopePer100k.toFixed(1) ?? 'n/a'} MB/100k, heap after GC ${t.heapAfterGc?.slopePer100k.toFixed(1) ?? 'n/a'} MB/100k → ${t.verdict ?? 'n/a'}\n`,
    );
  }
}

try {
  await main();
} finally {
  await Promise.all(procs.map((p) => p.stop()));
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(services.map((s) => s.stop()));
}
process.exit(0);
