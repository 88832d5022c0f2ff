/**
 * The Kubernetes data path's cost: added latency (p50, p99) and throughput of the edge against
 * direct access to the API-server fixture on small GETs, side by side in one run (median of
 * RUNS alternating rounds), and the edge's peak RSS growth while a 200 MB list streams through.
 * The fixture, the edge and the load generator are separate processes.
 *
 *   npm run bench:kube            (builds first)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listenUrl } from '@portcullis/common';
import { loadOrCreateDevTls } from '@portcullis/tls';
import { streamConfigMapList } from './configmap-stream.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const REQUESTS = Number(process.env['BENCH_REQUESTS'] ?? 4000);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 8);
const BIG_LIST_BYTES = 200 * 1024 * 1024;
const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'bench-kube-'));
const children: ChildProcess[] = [];

function startChild(script: string, args: readonly string[]): Promise<{ child: ChildProcess; info: Record<string, string> }> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line !== undefined) resolve({ child, info: JSON.parse(line) as Record<string, string> });
    });
    child.once('exit', (code) => reject(new Error(`${script} exited (${code})`)));
  });
}

async function load(url: string, caFile: string, token: string): Promise<{ p50Ms: number; p99Ms: number; rps: number; errors: number }> {
  const child = spawn(process.execPath, [join(here, 'http-load.js'), url, caFile, token, String(CONCURRENCY), String(REQUESTS)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await once(child, 'exit');
  return JSON.parse(out) as { p50Ms: number; p99Ms: number; rps: number; errors: number };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

/** An upstream serving one ConfigMapList of about `bytes`, generated chunk by chunk with back-pressure. */
async function bigListUpstream(bytes: number): Promise<{ url: string; caPem: string; token: string; close: () => void }> {
  const tls = await loadOrCreateDevTls(join(dir, 'big-tls'), ['127.0.0.1']);
  const server = createServer({ cert: tls.certPem, key: tls.keyPem }, (_req, res) => streamConfigMapList(res, bytes));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const bound = server.address() as AddressInfo;
  return { url: listenUrl('https', bound.address, bound.port), caPem: tls.caPem, token: 'bench', close: () => server.close() };
}

async function streamThrough(
  url: string,
  ca: string,
  token: string,
  edgePid: number,
): Promise<{ bytes: number; seconds: number; peakGrowthMb: number; baselineMb: number }> {
  const baseline = rssKb(edgePid);
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, rssKb(edgePid))), 20);
  const start = performance.now();
  const bytes = await new Promise<number>((resolve, reject) => {
    request(url, { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => resolve(n));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
  clearInterval(sampler);
  peak = Math.max(peak, rssKb(edgePid));
  return { bytes, seconds: (performance.now() - start) / 1000, peakGrowthMb: (peak - baseline) / 1024, baselineMb: baseline / 1024 };
}

try {
  const fixture = await startChild(join(here, '../apps/sandbox/src/main.js'), ['--port', '0', '--cert-dir', join(dir, 'fixture-tls')]);
  const big = await bigListUpstream(BIG_LIST_BYTES);
  const fx = { url: fixture.info['url'] ?? '', caPem: fixture.info['ca'] ?? '', token: fixture.info['token'] ?? '' };
  const edge = await startChild(join(here, 'kube-edge-process.js'), [JSON.stringify({ k: fx, big: { url: big.url, caPem: big.caPem, token: big.token } })]);
  const fixtureCa = join(dir, 'fixture-ca.pem');
  const edgeCa = join(dir, 'edge-ca.pem');
  writeFileSync(fixtureCa, fx.caPem);
  writeFileSync(edgeCa, edge.info['ca'] ?? '');
  const path = '/api/v1/namespaces/default/configmaps/app-config';
  const direct: { p50Ms: number; p99Ms: number; rps: number }[] = [];
  const viaEdge: { p50Ms: number; p99Ms: number; rps: number }[] = [];
  for (let run = 0; run < RUNS; run++) {
    direct.push(await load(`${fx.url}${path}`, fixtureCa, fx.token));
    viaEdge.push(await load(`${edge.info['url'] ?? ''}/k8s/k${path}`, edgeCa, edge.info['token'] ?? ''));
  }
  const row = (name: string, xs: { p50Ms: number; p99Ms: number; rps: number }[]): string =>
    `| ${name} | ${median(xs.map((x) => x.p50Ms)).toFixed(2)} | ${median(xs.map((x) => x.p99Ms)).toFixed(2)} | ${Math.round(median(xs.map((x) => x.rps)))} |`;
  console.log(`\nSmall GET (${path}), ${REQUESTS} requests × ${RUNS} runs, concurrency ${CONCURRENCY}, keep-alive; medians:\n`);
  console.log('| target | p50 ms | p99 ms | requests/s |');
  console.log('| --- | ---: | ---: | ---: |');
  console.log(row('fixture direct', direct));
  console.log(row('through the edge', viaEdge));
  console.log(
    `\nadded latency: p50 +${(median(viaEdge.map((x) => x.p50Ms)) - median(direct.map((x) => x.p50Ms))).toFixed(2)} ms, p99 +${(median(viaEdge.map((x) => x.p99Ms)) - median(direct.map((x) => x.p99Ms))).toFixed(2)} ms; throughput ${((median(viaEdge.map((x) => x.rps)) / median(direct.map((x) => x.rps))) * 100).toFixed(0)}% of direct`,
  );
  const edgePid = edge.child.pid ?? 0;
  const streamed = await streamThrough(`${edge.info['url'] ?? ''}/k8s/big/api/v1/configmaps`, edge.info['ca'] ?? '', edge.info['token'] ?? '', edgePid);
  console.log(
    `\n200 MB list through the edge: ${(streamed.bytes / 1024 / 1024).toFixed(0)} MB in ${streamed.seconds.toFixed(1)} s (${(streamed.bytes / 1024 / 1024 / streamed.seconds).toFixed(0)} MB/s); edge RSS ${streamed.baselineMb.toFixed(0)} MB before, peak growth ${streamed.peakGrowthMb.toFixed(1)} MB (target < 64 MB)`,
  );
  big.close();
} finally {
  for (const c of children) c.kill('SIGTERM');
}
