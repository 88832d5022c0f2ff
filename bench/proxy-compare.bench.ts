/**
 * What the edge costs per request, against reference proxies, side by side in one run: the same
 * static HTTPS upstream reached (1) directly, (2) through nginx as a plain TLS reverse proxy with
 * upstream keep-alive, (3) through a bare Node.js proxy with no checks (undici), (4) through the
 * Portcullis edge in embedded mode and (5) in cluster mode (separate policy and audit processes,
 * a real nats-server -js and ClickHouse). Small GETs at 1, 16 and 64 connections and a 1 MB
 * SecretList (masked by the edges), measured by wrk in its own process; rounds interleave the
 * targets so the machine's noise falls on all of them alike, and the figures are medians. Then a
 * 200 MB list streams through the cluster-mode edge while its RSS is sampled.
 *
 * Side by side with an earlier build: BENCH_BASELINE=<dir of a built checkout> (`git worktree add
 * ../baseline <commit> && cd ../baseline && npm ci`) adds the targets `embeddedBase` and
 * `clusterBase` — the same two edges run from that build's bin/portcullis.js, in the same rounds —
 * and prints, per concurrency, the new build's CPU per request and latency against the baseline's.
 *
 * Env: BENCH_ROUNDS (3), BENCH_SECONDS (3 per run), BENCH_TARGETS (comma list), BENCH_CONCURRENCY
 * (comma list, default 1,16,64), BENCH_BARE_NODE_HTTP=1 (the bare proxy with node:https instead of undici), BENCH_PROFILE_DIR
 * (start the cluster-mode edge with --cpu-prof into that dir), BENCH_SMALL_ONLY=1 (small GETs only).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { ensureBinaries } from '../test/harness/binaries.js';
import { freePort, startClickHouse, startNats, uniqueName, type TestClickHouse, type TestNats } from '../test/harness/services.js';
import { runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from '../test/support/portcullis-process.js';
import { loadOrCreateDevTls } from '@portcullis/tls';
import { reportFigures } from './bench-result.js';
import { cpuSeconds } from './proc-cpu.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 3);
const CONCURRENCY = (process.env['BENCH_CONCURRENCY'] ?? '1,16,64').split(',').map(Number);
const LIST_CONCURRENCY = 4;
/** Only the small GETs (for profiling the per-request path): no list, no stream. */
const SMALL_ONLY = process.env['BENCH_SMALL_ONLY'] === '1';
const STREAM_BYTES = 200 * 1024 * 1024;
const SMALL_PATH = '/api/v1/namespaces/default/configmaps/app-config';
const LIST_PATH = '/api/v1/namespaces/default/secrets';

/** The targets, in the order the report lists them. */
export const Targets = {
  direct: 'direct',
  nginx: 'nginx',
  node: 'bare Node',
  embedded: 'edge (embedded)',
  cluster: 'edge (cluster)',
  embeddedBase: 'edge (embedded, baseline build)',
  clusterBase: 'edge (cluster, baseline build)',
} as const;
type Target = keyof typeof Targets;

/** A built checkout of an earlier commit to run side by side (BENCH_BASELINE), or undefined. */
const BASELINE_CLI = ((): string | undefined => {
  const dir = process.env['BENCH_BASELINE'];
  if (dir === undefined || dir === '') return undefined;
  const cli = join(dir, 'bin', 'portcullis.js');
  if (!existsSync(join(dir, 'dist', 'apps', 'cli', 'src', 'main.js'))) throw new Error(`BENCH_BASELINE=${dir}: no built checkout there (run npm ci in it)`);
  return cli;
})();

/** Which build an edge target runs: this checkout's, or the baseline's. */
interface EdgeBuild {
  /** Names the dirs, node ids and configs apart. */
  readonly key: string;
  /** The CLI entry point; undefined = this checkout's. */
  readonly cli?: string | undefined;
}
const THIS_BUILD: EdgeBuild = { key: '' };

/** One wrk run. */
export interface LoadRun {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly errors: number;
  readonly non2xx: number;
  readonly requests: number;
  readonly load1: number;
  /** CPU time per request (µs) of each process taking part, by role; `wrk` is the load generator. */
  readonly cpuUsPerRequest: Record<string, number>;
  /** Cluster-mode edge only: its own mean waits per request (ms), from its /metrics histograms. */
  readonly edgeWaitsMs?: EdgeWaits;
}

/** Mean waits inside the edge per request: policy decision, audit ack, upstream response headers. */
export interface EdgeWaits {
  readonly decision: number;
  readonly auditAck: number;
  readonly upstream: number;
}

const WAIT_HISTOGRAMS = {
  decision: 'portcullis_edge_decision_duration_seconds',
  auditAck: 'portcullis_edge_audit_ack_duration_seconds',
  upstream: 'portcullis_edge_upstream_duration_seconds',
} as const;

/** Sums and counts of the edge's wait histograms (all label sets added up). */
async function scrapeWaits(metricsUrl: string): Promise<Record<keyof EdgeWaits, { sum: number; count: number }>> {
  const text = await (await fetch(metricsUrl)).text();
  const out = {} as Record<keyof EdgeWaits, { sum: number; count: number }>;
  for (const [key, name] of Object.entries(WAIT_HISTOGRAMS) as [keyof EdgeWaits, string][]) {
    let sum = 0;
    let count = 0;
    for (const m of text.matchAll(new RegExp(`^${name}_(sum|count)(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'gm'))) {
      if (m[1] === 'sum') sum += Number(m[2]);
      else count += Number(m[2]);
    }
    out[key] = { sum, count };
  }
  return out;
}

function meanWaits(before: Awaited<ReturnType<typeof scrapeWaits>>, after: Awaited<ReturnType<typeof scrapeWaits>>): EdgeWaits {
  const mean = (k: keyof EdgeWaits): number => {
    const n = after[k].count - before[k].count;
    return n > 0 ? Math.round(((after[k].sum - before[k].sum) / n) * 1e6) / 1e3 : NaN;
  };
  return { decision: mean('decision'), auditAck: mean('auditAck'), upstream: mean('upstream') };
}

/** Each cluster-mode edge's /metrics, once started. */
const clusterMetricsUrls = new Map<Target, string>();

/** Processes whose CPU counts for a target, by role (the load generator is added per run). */
const cpuRoles = new Map<Target, Record<string, number>>();

const here = fileURLToPath(new URL('.', import.meta.url));
const dir = tempDir('bench-proxies');
const children: ChildProcess[] = [];
const procs: PortcullisProcess[] = [];
const services: (TestNats | TestClickHouse)[] = [];

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: bench, version: "bench-1" }
maskingProfiles: [secrets]
rules:
  - id: bots-read
    match: { groups: [bots], verbs: [get, list] }
    effect: allow
  - id: bots-secrets-masked
    match: { groups: [bots], resources: [secrets] }
    effect: mask
    mask: secrets
`;

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const load1 = (): number => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

function startChild(script: string, args: readonly string[]): Promise<Record<string, string>> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl !== -1) resolve(JSON.parse(out.slice(0, nl)) as Record<string, string>);
    });
    child.once('exit', (code) => reject(new Error(`${script} exited (${code})`)));
  });
}

async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** nginx as a plain TLS reverse proxy: one worker (one core, like one Node event loop), keep-alive both ways. */
async function startNginx(nginx: string, upstreamUrl: string, upstreamCaFile: string): Promise<string> {
  const ndir = join(dir, 'nginx');
  mkdirSync(ndir, { recursive: true });
  const tls = await loadOrCreateDevTls(join(ndir, 'tls'), ['127.0.0.1', 'localhost']);
  writeFileSync(join(ndir, 'cert.pem'), tls.certPem);
  writeFileSync(join(ndir, 'key.pem'), tls.keyPem, { mode: 0o600 });
  const port = await freePort();
  const up = new URL(upstreamUrl);
  writeFileSync(
    join(ndir, 'nginx.conf'),
    `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
pid ${ndir}/nginx.pid;
error_log ${ndir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${ndir}/body; proxy_temp_path ${ndir}/proxy; fastcgi_temp_path ${ndir}/fastcgi; uwsgi_temp_path ${ndir}/uwsgi; scgi_temp_path ${ndir}/scgi;
  upstream fixture { server ${up.host}; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${ndir}/cert.pem;
    ssl_certificate_key ${ndir}/key.pem;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    location / {
      proxy_pass https://fixture;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_session_reuse on;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_trusted_certificate ${upstreamCaFile};
    }
  }
}
`,
  );
  const child = spawn(nginx, ['-p', ndir, '-c', join(ndir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'inherit', 'inherit'] });
  children.push(child);
  await waitForPort(port);
  return `https://127.0.0.1:${port}`;
}

/** The edge in embedded mode: `portcullis start` (in-process bus and policy, SQLite audit log). */
async function startEmbedded(
  upstream: { url: string; caFile: string; tokenFile: string },
  policyFile: string,
  build: EdgeBuild = THIS_BUILD,
): Promise<{ url: string; token: string; pid: number }> {
  const port = await freePort();
  const edir = join(dir, `embedded${build.key}`);
  const config = writeConfig(dir, `embedded${build.key}.yaml`, {
    node: { id: `bench-embedded${build.key}`, stateDir: join(edir, 'state') },
    edge: { listen: { host: '127.0.0.1', port } },
    // The embedded gateway also serves the approval API: a free port, not the shared default.
    approval: { listen: { host: '127.0.0.1', port: await freePort() } },
    identity: {
      devIssuer: { enabled: true, tokenLifetime: '1h', clients: [{ id: 'bench-bot', secret: 'bench-bot-secret-1', subject: 'bench-bot', groups: ['bots'] }] },
    },
    connections: [{ name: 'bench', type: 'kubernetes', server: upstream.url, caFile: upstream.caFile, tokenFile: upstream.tokenFile }],
    sandbox: { enabled: 'never' },
    policy: { file: policyFile },
  });
  const p = startPortcullis(['start', '--config', config], { env: { PORTCULLIS_LOG_LEVEL: 'warn' }, cli: build.cli });
  procs.push(p);
  await p.waitFor(/Stop with Ctrl-C/, 60_000);
  const t = await runPortcullis(['token', '--client', 'bench-bot', '--config', config], { cli: build.cli });
  if (t.code !== 0) throw new Error(`portcullis token failed: ${t.stderr}`);
  return { url: `https://127.0.0.1:${port}`, token: t.stdout.trim(), pid: p.child.pid ?? 0 };
}

/** The edge in cluster mode: policy, audit and edge as separate processes on nats-server -js and ClickHouse. */
async function startCluster(
  upstream: { url: string; caFile: string; tokenFile: string },
  policyFile: string,
  target: Target,
  build: EdgeBuild = THIS_BUILD,
): Promise<{ url: string; token: string; pid: number; roles: Record<string, number> }> {
  const [nats, clickhouse] = await Promise.all([startNats({ jetstream: true }), startClickHouse()]);
  services.push(nats, clickhouse);
  const port = await freePort();
  const cdir = join(dir, `cluster${build.key}`);
  const base = (id: string): Record<string, unknown> => ({
    node: { id, stateDir: join(cdir, 'state') },
    edge: { listen: { host: '127.0.0.1', port } },
    bus: { mode: 'nats', nats: { servers: [nats.url] } },
    identity: {
      devIssuer: {
        enabled: true,
        issuerUrl: `https://127.0.0.1:${port}/oidc/dev`,
        tokenLifetime: '1h',
        clients: [{ id: 'bench-bot', secret: 'bench-bot-secret-1', subject: 'bench-bot', groups: ['bots'] }],
      },
    },
    connections: [{ name: 'bench', type: 'kubernetes', server: upstream.url, caFile: upstream.caFile, tokenFile: upstream.tokenFile }],
    policy: { file: policyFile },
    audit: { sink: 'clickhouse', clickhouse: { url: clickhouse.httpUrl, database: uniqueName('bench'), batchSize: 5000, flushInterval: '200ms' } },
  });
  const rolePids: Record<string, number> = { nats: nats.pid ?? 0, clickhouse: clickhouse.pid ?? 0 };
  const roles = writeConfig(dir, `cluster${build.key}-roles.yaml`, base(`bench-roles${build.key}`));
  const metricsPort = await freePort();
  const edgeConfig = writeConfig(dir, `cluster${build.key}-edge.yaml`, {
    ...base(`bench-edge${build.key}`),
    observability: { listen: { host: '127.0.0.1', port: metricsPort } },
  });
  clusterMetricsUrls.set(target, `http://127.0.0.1:${metricsPort}/metrics`);
  for (const role of ['policy', 'audit']) {
    const p = startPortcullis(['serve', role, '--config', roles], { env: { PORTCULLIS_LOG_LEVEL: 'warn' }, cli: build.cli });
    procs.push(p);
    rolePids[role] = p.child.pid ?? 0;
    await p.waitFor(/"ready":true/, 60_000);
  }
  const profileDir = process.env['BENCH_PROFILE_DIR'];
  const edge = startPortcullis(['serve', 'edge', '--config', edgeConfig], {
    env: { PORTCULLIS_LOG_LEVEL: 'warn' },
    nodeArgs: profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
    cli: build.cli,
  });
  procs.push(edge);
  await edge.waitFor(/"ready":true/, 60_000);
  const t = await runPortcullis(['token', '--client', 'bench-bot', '--config', edgeConfig], { cli: build.cli });
  if (t.code !== 0) throw new Error(`portcullis token failed: ${t.stderr}`);
  return { url: `https://127.0.0.1:${port}`, token: t.stdout.trim(), pid: edge.child.pid ?? 0, roles: { edge: edge.child.pid ?? 0, ...rolePids } };
}

const WRK_SCRIPT = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\n{"requests":%d,"durationUs":%d,"errors":%d,"non2xx":%d,"p50Us":%d,"p99Us":%d,"p999Us":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
`;

async function wrk(binary: string, url: string, token: string, connections: number, seconds: number, roles: Record<string, number> = {}): Promise<LoadRun> {
  const script = join(dir, 'report.lua');
  writeFileSync(script, WRK_SCRIPT);
  const threads = Math.min(2, connections);
  const l = load1();
  const child = spawn(
    binary,
    [
      '-t',
      String(threads),
      '-c',
      String(connections),
      '-d',
      `${seconds}s`,
      '--timeout',
      '10s',
      '-s',
      script,
      '-H',
      `Authorization: Bearer ${token}`,
      '-H',
      'Accept: application/json',
      url,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const before = Object.fromEntries(Object.entries(roles).map(([role, pid]) => [role, cpuSeconds(pid, true)]));
  let wrkSeconds = 0;
  // wrk's own CPU is read just before it exits (a reaped process has no /proc entry).
  const wrkSampler = setInterval(() => (wrkSeconds = Math.max(wrkSeconds, cpuSeconds(child.pid ?? 0, true))), 100);
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    wrkSeconds = Math.max(wrkSeconds, cpuSeconds(child.pid ?? 0, true));
    out += d.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  clearInterval(wrkSampler);
  const used = Object.fromEntries(Object.entries(roles).map(([role, pid]) => [role, cpuSeconds(pid, true) - (before[role] ?? 0)]));
  const line = out.trim().split('\n').at(-1) ?? '';
  if (code !== 0 || !line.startsWith('{')) throw new Error(`wrk failed (${code}): ${out.slice(-500)}`);
  const r = JSON.parse(line) as { requests: number; durationUs: number; errors: number; non2xx: number; p50Us: number; p99Us: number; p999Us: number };
  return {
    rps: r.requests / (r.durationUs / 1e6),
    p50Ms: r.p50Us / 1000,
    p99Ms: r.p99Us / 1000,
    p999Ms: r.p999Us / 1000,
    errors: r.errors,
    non2xx: r.non2xx,
    requests: r.requests,
    load1: l,
    cpuUsPerRequest: Object.fromEntries(
      Object.entries({ ...used, wrk: wrkSeconds }).map(([role, t]) => [role, r.requests > 0 ? Math.round((t * 1e6) / r.requests) : NaN]),
    ),
  };
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

async function streamThrough(
  url: string,
  ca: string,
  token: string,
  pid: number,
): Promise<{ mb: number; seconds: number; baselineMb: number; peakGrowthMb: number }> {
  const baseline = rssKb(pid);
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, rssKb(pid))), 20);
  const start = performance.now();
  const bytes = await new Promise<number>((resolve, reject) => {
    request(url, { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => (res.statusCode === 200 ? resolve(n) : reject(new Error(`stream answered ${res.statusCode}`))));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
  clearInterval(sampler);
  peak = Math.max(peak, rssKb(pid));
  return { mb: bytes / 1048576, seconds: (performance.now() - start) / 1000, baselineMb: baseline / 1024, peakGrowthMb: (peak - baseline) / 1024 };
}

/** One summary cell, as main() builds it. */
interface SummaryCell {
  readonly scenario: 'small' | 'list';
  readonly concurrency: number;
  readonly target: Target;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly cpuUsPerRequest: Record<string, number>;
  readonly runs: readonly LoadRun[];
}

/**
 * This build against the baseline, same run: the edge process's CPU per request (medians of the
 * rounds, and the median of the per-round ratios with each round's), that CPU as a multiple of the bare Node proxy's,
 * and p50/p99 latency. Ratios measured side by side hold on a shared machine; absolutes do not.
 */
export function baselineComparison(cells: readonly SummaryCell[]): string {
  const lines = ['', 'This build vs the baseline build (same rounds, interleaved):'];
  const find = (scenario: string, conc: number, t: Target): SummaryCell | undefined =>
    cells.find((c) => c.scenario === scenario && c.concurrency === conc && c.target === t);
  const edgeCpu = (c: SummaryCell | undefined, run?: LoadRun): number => (run ?? c)?.cpuUsPerRequest['edge'] ?? NaN;
  const proxyCpu = (c: SummaryCell | undefined): number => c?.cpuUsPerRequest['proxy'] ?? NaN;
  for (const scenario of ['small', 'list'] as const) {
    for (const conc of [...new Set(cells.filter((c) => c.scenario === scenario).map((c) => c.concurrency))].sort((a, b) => a - b)) {
      const node = find(scenario, conc, 'node');
      for (const [now, then] of [
        ['embedded', 'embeddedBase'],
        ['cluster', 'clusterBase'],
      ] as const) {
        const a = find(scenario, conc, now);
        const b = find(scenario, conc, then);
        if (a === undefined || b === undefined) continue;
        // Per-round ratio of edge CPU: rounds ran back to back, so each pair saw the same machine.
        const ratios = a.runs
          .map((r, i) => edgeCpu(undefined, r) / edgeCpu(undefined, b.runs[i]))
          .filter(Number.isFinite)
          .sort((x, y) => x - y);
        // The headline is the median of the per-round ratios: one noisy round moves it least.
        const spread = ratios.length > 0 ? `×${median(ratios).toFixed(2)} (median of the rounds' ratios: ${ratios.map((x) => x.toFixed(2)).join(', ')})` : '';
        lines.push(
          `  ${scenario} c=${conc} ${now}: edge CPU ${edgeCpu(a).toFixed(0)} vs ${edgeCpu(b).toFixed(0)} µs/req ${spread}; ` +
            `×bare Node ${(edgeCpu(a) / proxyCpu(node)).toFixed(2)} vs ${(edgeCpu(b) / proxyCpu(node)).toFixed(2)}; ` +
            `p50 ${a.p50Ms.toFixed(2)} vs ${b.p50Ms.toFixed(2)} ms, p99 ${a.p99Ms.toFixed(2)} vs ${b.p99Ms.toFixed(2)} ms, ${Math.round(a.rps)} vs ${Math.round(b.rps)} req/s`,
        );
      }
    }
  }
  return `${lines.join('\n')}\n`;
}

interface Cell {
  readonly scenario: 'small' | 'list';
  readonly concurrency: number;
  readonly target: Target;
  readonly runs: LoadRun[];
}

async function main(): Promise<void> {
  const { nginx, wrk: wrkBin } = await ensureBinaries(['nginx', 'wrk']);
  const up = await startChild(join(here, 'static-upstream.js'), [dir]);
  const upstreamPid = children.at(-1)?.pid ?? 0;
  const upstreamCaFile = join(dir, 'upstream-ca.pem');
  const upstreamTokenFile = join(dir, 'upstream-token');
  writeFileSync(upstreamCaFile, up['ca'] ?? '');
  writeFileSync(upstreamTokenFile, 'bench-upstream-token', { mode: 0o600 });
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, POLICY);
  const upstream = { url: up['url'] ?? '', caFile: upstreamCaFile, tokenFile: upstreamTokenFile };

  const defaultTargets = (Object.keys(Targets) as Target[]).filter((t) => BASELINE_CLI !== undefined || (t !== 'embeddedBase' && t !== 'clusterBase'));
  const wanted = new Set((process.env['BENCH_TARGETS'] ?? defaultTargets.join(',')).split(',') as Target[]);
  if ((wanted.has('embeddedBase') || wanted.has('clusterBase')) && BASELINE_CLI === undefined)
    throw new Error('the baseline targets need BENCH_BASELINE=<dir of a built checkout>');
  const baseline: EdgeBuild = { key: '-baseline', cli: BASELINE_CLI };
  const base = new Map<Target, { url: string; token: string }>();
  let edgeToken = '';
  let clusterPid = 0;
  let clusterUrl = '';
  let edgeCa = '';
  if (wanted.has('cluster')) {
    const c = await startCluster(upstream, policyFile, 'cluster');
    base.set('cluster', { url: `${c.url}/k8s/bench`, token: c.token });
    edgeToken = c.token;
    clusterPid = c.pid;
    cpuRoles.set('cluster', { ...c.roles, upstream: upstreamPid });
    clusterUrl = c.url;
    edgeCa = readFileSync(join(dir, 'cluster', 'state', 'tls', 'ca.pem'), 'utf8');
  }
  if (wanted.has('embedded')) {
    const e = await startEmbedded(upstream, policyFile);
    base.set('embedded', { url: `${e.url}/k8s/bench`, token: e.token });
    cpuRoles.set('embedded', { edge: e.pid, upstream: upstreamPid });
    edgeToken ||= e.token;
  }
  if (wanted.has('clusterBase')) {
    const c = await startCluster(upstream, policyFile, 'clusterBase', baseline);
    base.set('clusterBase', { url: `${c.url}/k8s/bench`, token: c.token });
    cpuRoles.set('clusterBase', { ...c.roles, upstream: upstreamPid });
    edgeToken ||= c.token;
  }
  if (wanted.has('embeddedBase')) {
    const e = await startEmbedded(upstream, policyFile, baseline);
    base.set('embeddedBase', { url: `${e.url}/k8s/bench`, token: e.token });
    cpuRoles.set('embeddedBase', { edge: e.pid, upstream: upstreamPid });
    edgeToken ||= e.token;
  }
  // The reference targets get a bearer header of the same size, so every request carries the same bytes.
  if (wanted.has('direct')) {
    base.set('direct', { url: upstream.url, token: edgeToken });
    cpuRoles.set('direct', { upstream: upstreamPid });
  }
  if (wanted.has('nginx')) {
    base.set('nginx', { url: await startNginx(nginx, upstream.url, upstreamCaFile), token: edgeToken });
    cpuRoles.set('nginx', { proxy: children.at(-1)?.pid ?? 0, upstream: upstreamPid });
  }
  if (wanted.has('node')) {
    const n = await startChild(join(here, process.env['BENCH_BARE_NODE_HTTP'] === '1' ? 'bare-proxy-node-http.js' : 'bare-proxy.js'), [
      upstream.url,
      upstreamCaFile,
      dir,
    ]);
    base.set('node', { url: n['url'] ?? '', token: edgeToken });
    cpuRoles.set('node', { proxy: children.at(-1)?.pid ?? 0, upstream: upstreamPid });
  }
  const order = (Object.keys(Targets) as Target[]).filter((t) => base.has(t));

  // Warm up every target (JIT, TLS sessions, upstream pools, the decision cache) before measuring.
  for (const t of order) {
    const b = base.get(t)!;
    await wrk(wrkBin, `${b.url}${SMALL_PATH}`, b.token, 16, 2);
    if (!SMALL_ONLY) await wrk(wrkBin, `${b.url}${LIST_PATH}`, b.token, LIST_CONCURRENCY, 1);
  }

  const cells = new Map<string, Cell>();
  const cell = (scenario: Cell['scenario'], concurrency: number, target: Target): Cell => {
    const key = `${scenario}/${concurrency}/${target}`;
    let c = cells.get(key);
    if (c === undefined) cells.set(key, (c = { scenario, concurrency, target, runs: [] }));
    return c;
  };
  const loads: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    loads.push(load1());
    // Rotate the start so no target always runs first (right after another one's load).
    const rotated = order.map((_, i) => order[(i + round) % order.length]!);
    for (const concurrency of CONCURRENCY) {
      for (const t of rotated) {
        const b = base.get(t)!;
        const metricsUrl = clusterMetricsUrls.get(t);
        const waitsBefore = metricsUrl !== undefined ? await scrapeWaits(metricsUrl) : undefined;
        let r = await wrk(wrkBin, `${b.url}${SMALL_PATH}`, b.token, concurrency, SECONDS, cpuRoles.get(t));
        if (waitsBefore !== undefined && metricsUrl !== undefined) r = { ...r, edgeWaitsMs: meanWaits(waitsBefore, await scrapeWaits(metricsUrl)) };
        cell('small', concurrency, t).runs.push(r);
        process.stderr.write(
          `round ${round + 1}/${ROUNDS} small c=${concurrency} ${Targets[t]}: ${Math.round(r.rps)} req/s p50 ${r.p50Ms.toFixed(2)} ms p99 ${r.p99Ms.toFixed(2)} ms${r.errors + r.non2xx > 0 ? ` ERRORS ${r.errors}+${r.non2xx}` : ''} (load ${r.load1}) CPU µs/req ${JSON.stringify(r.cpuUsPerRequest)}${r.edgeWaitsMs ? ` edge waits ms ${JSON.stringify(r.edgeWaitsMs)}` : ''}\n`,
        );
      }
    }
    for (const t of SMALL_ONLY ? [] : rotated) {
      const b = base.get(t)!;
      const r = await wrk(wrkBin, `${b.url}${LIST_PATH}`, b.token, LIST_CONCURRENCY, SECONDS, cpuRoles.get(t));
      cell('list', LIST_CONCURRENCY, t).runs.push(r);
      process.stderr.write(
        `round ${round + 1}/${ROUNDS} 1 MB list c=${LIST_CONCURRENCY} ${Targets[t]}: ${Math.round(r.rps)} req/s p50 ${r.p50Ms.toFixed(2)} ms p99 ${r.p99Ms.toFixed(2)} ms${r.errors + r.non2xx > 0 ? ` ERRORS ${r.errors}+${r.non2xx}` : ''}\n`,
      );
    }
  }
  loads.push(load1());

  let stream: Awaited<ReturnType<typeof streamThrough>> | undefined;
  if (clusterPid !== 0 && !SMALL_ONLY) {
    stream = await streamThrough(`${clusterUrl}/k8s/bench/api/v1/stream`, edgeCa, edgeToken, clusterPid);
    process.stderr.write(
      `200 MB stream through the cluster-mode edge: ${stream.mb.toFixed(0)} MB in ${stream.seconds.toFixed(1)} s, RSS growth ${stream.peakGrowthMb.toFixed(1)} MB\n`,
    );
  }

  const summary = [...cells.values()].map((c) => ({
    scenario: c.scenario,
    concurrency: c.concurrency,
    target: c.target,
    label: Targets[c.target],
    rps: median(c.runs.map((r) => r.rps)),
    p50Ms: median(c.runs.map((r) => r.p50Ms)),
    p99Ms: median(c.runs.map((r) => r.p99Ms)),
    p999Ms: median(c.runs.map((r) => r.p999Ms)),
    errors: c.runs.reduce((n, r) => n + r.errors + r.non2xx, 0),
    cpuUsPerRequest: Object.fromEntries(
      [...new Set(c.runs.flatMap((r) => Object.keys(r.cpuUsPerRequest)))].map((role) => [role, median(c.runs.map((r) => r.cpuUsPerRequest[role] ?? NaN))]),
    ),
    ...(c.runs.some((r) => r.edgeWaitsMs !== undefined)
      ? {
          edgeWaitsMs: {
            decision: median(c.runs.map((r) => r.edgeWaitsMs?.decision ?? NaN)),
            auditAck: median(c.runs.map((r) => r.edgeWaitsMs?.auditAck ?? NaN)),
            upstream: median(c.runs.map((r) => r.edgeWaitsMs?.upstream ?? NaN)),
          },
        }
      : {}),
    runs: c.runs,
  }));
  if (BASELINE_CLI !== undefined) process.stderr.write(baselineComparison(summary));
  reportFigures('proxy-compare', {
    rounds: ROUNDS,
    secondsPerRun: SECONDS,
    listConcurrency: LIST_CONCURRENCY,
    loadAverage: { min: Math.min(...loads), median: median(loads), max: Math.max(...loads) },
    cells: summary,
    ...(stream === undefined ? {} : { stream: { ...stream, targetMb: 64, requestedMb: STREAM_BYTES / 1048576 } }),
  });
}

try {
  await main();
} finally {
  await Promise.all(procs.map((p) => p.stop()));
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(services.map((s) => s.stop()));
}
process.exit(0);
