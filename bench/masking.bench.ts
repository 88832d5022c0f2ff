/**
 * Masking figures: the streaming masker's throughput (MB/s) on a large SecretList and PodList
 * against JSON.parse + JSON.stringify of the same bytes; the latency a masked 1 MB SecretList
 * adds at the edge, side by side with the same request unmasked; and peak RSS while masking a
 * 200 MB SecretList (in a fresh child process, the list generated on the fly). Medians of 5.
 * Run: `npm run bench:masking`.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { request as httpsRequest, Agent } from 'node:https';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MaskingProfile, StreamingJsonMasker } from '@portcullis/masking';
import { createInProcessBus } from '@portcullis/bus';
import { decisionReply, decodeDecisionRequest, encodeDecisionReply, QueueGroups, Streams, Subjects } from '@portcullis/contracts';
import { evaluate, parsePolicy } from '@portcullis/policy-engine';
import { DevIssuer, TokenVerifier } from '@portcullis/identity';
import { loadOrCreateDevTls } from '@portcullis/tls';
import { listenUrl, silentLogger } from '@portcullis/common';
import { AuditPublisher, ConnectionRegistry, createUpstreamConnection, DecisionClient, EdgePipeline, EdgeServer } from '@portcullis/gateway';
import { reportFigures } from './bench-result.js';

const RUNS = 5;
const CHUNK = 64 * 1024;
const b64 = (s: string): string => Buffer.from(s).toString('base64');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]!;
}

/** One realistic Secret as a list item: labels, an annotation, three data keys. */
function secretItem(i: number): string {
  return JSON.stringify({
    metadata: {
      name: `app-${i}-credentials`,
      namespace: `team-${i % 40}`,
      uid: `0b7c${String(i).padStart(8, '0')}-1111-2222-3333-444455556666`,
      resourceVersion: String(100000 + i),
      creationTimestamp: '2026-01-01T00:00:00Z',
      labels: { app: `app-${i}`, team: `team-${i % 40}`, 'app.kubernetes.io/managed-by': 'helm' },
      annotations: { 'meta.helm.sh/release-name': `app-${i}` },
    },
    data: {
      username: b64(`user-${i}`),
      password: b64(`pw-${i}-${'x'.repeat(24)}`),
      'tls.key': b64(`-----BEGIN PRIVATE KEY-----\n${'A'.repeat(600)}\n-----END PRIVATE KEY-----\n`),
    },
    type: 'Opaque',
  });
}

function podItem(i: number): string {
  return JSON.stringify({
    metadata: {
      name: `web-${i}`,
      namespace: `team-${i % 40}`,
      labels: { app: 'web', 'pod-template-hash': '7c5ddbdf54' },
      creationTimestamp: '2026-01-01T00:00:00Z',
    },
    spec: {
      containers: [
        {
          name: 'web',
          image: 'ghcr.io/example/web:2.3.0',
          env: [
            { name: 'LOG_LEVEL', value: 'info' },
            { name: 'DB_PASSWORD', value: `pw-${i}` },
            { name: 'REGION', value: 'eu-west-1' },
          ],
          resources: { requests: { cpu: '100m', memory: '128Mi' } },
        },
      ],
      nodeName: `node-${i % 12}`,
      serviceAccountName: 'default',
    },
    status: {
      phase: 'Running',
      podIP: `10.0.${i % 255}.${i % 253}`,
      conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2026-01-01T00:00:10Z' }],
    },
  });
}

/** A `<kind>List` of about `bytes` bytes, as one buffer. */
function list(kind: string, item: (i: number) => string, bytes: number): Buffer {
  const parts: string[] = [`{"kind":"${kind}List","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[`];
  let size = parts[0]!.length;
  for (let i = 0; size < bytes; i++) {
    const s = (i === 0 ? '' : ',') + item(i);
    parts.push(s);
    size += s.length;
  }
  parts.push(']}\n');
  return Buffer.from(parts.join(''));
}

function maskAll(profile: MaskingProfile, body: Buffer, kindHint: string): number {
  const m = new StreamingJsonMasker(profile, { mode: 'kubernetes', kindHint, maxObjectBytes: 16 * 1024 * 1024 });
  let out = 0;
  for (let i = 0; i < body.length; i += CHUNK) out += m.push(body.subarray(i, i + CHUNK)).length;
  out += m.end().length;
  return out;
}

function throughput(): void {
  const profile = new MaskingProfile('secrets', {});
  console.log('\n## Masker throughput (64 KiB chunks, median of 5)\n');
  console.log('| body | size | streaming masker | JSON.parse + JSON.stringify (reference) |');
  console.log('| --- | --- | --- | --- |');
  for (const [kind, item] of [
    ['Secret', secretItem],
    ['Pod', podItem],
  ] as const) {
    const body = list(kind, item, 50 * 1024 * 1024);
    maskAll(profile, list(kind, item, 1024 * 1024), kind); // warm up the JIT
    const masked: number[] = [];
    const plain: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      let t = performance.now();
      maskAll(profile, body, kind);
      masked.push(performance.now() - t);
      t = performance.now();
      JSON.stringify(JSON.parse(body.toString('utf8')));
      plain.push(performance.now() - t);
    }
    const mb = body.length / 1e6;
    reportFigures(`masker-${kind.toLowerCase()}`, { mb, maskerMBps: mb / (median(masked) / 1000), referenceMBps: mb / (median(plain) / 1000) });
    console.log(`| ${kind}List | ${mb.toFixed(0)} MB | ${(mb / (median(masked) / 1000)).toFixed(0)} MB/s | ${(mb / (median(plain) / 1000)).toFixed(0)} MB/s |`);
  }
}

async function edgeLatency(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-masking-'));
  const body = list('Secret', secretItem, 1024 * 1024);
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const bound = upstream.address() as { address: string; port: number };
  const handle = createInProcessBus();
  await handle.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 0, duplicateWindowMs: 60_000, replicas: 1 });
  const parsed = parsePolicy(`apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: b, version: "1" }
maskingProfiles: [secrets]
rules:
  - { id: masked, match: { connections: [masked] }, effect: allow, mask: secrets }
  - { id: plain, match: { connections: [plain] }, effect: allow }
`);
  if (!parsed.ok) throw new Error('bench policy');
  const policy = parsed.policy;
  handle.bus.serve(Subjects.policyDecide(), QueueGroups.policy, (msg) => {
    const req = decodeDecisionRequest(msg.data);
    return encodeDecisionReply(decisionReply({ decision: evaluate(policy, req.identity!, req.attributes!, new Date()) }));
  });
  const tls = await loadOrCreateDevTls(join(dir, 'tls'), ['127.0.0.1']);
  const issuer = await DevIssuer.open({
    issuer: 'https://bench/oidc',
    audience: 'p',
    tokenLifetimeMs: 600_000,
    maxTokenLifetimeMs: 3_600_000,
    clients: [{ id: 'b', secret: 'bench-secret', groups: [], scopes: [] }],
    stateDir: dir,
  });
  const token = (await issuer.issue({ clientId: 'b', clientSecret: 'bench-secret' })).accessToken;
  const server = new EdgeServer({
    host: '127.0.0.1',
    port: 0,
    tls,
    logger: silentLogger,
    pipeline: new EdgePipeline({
      nodeId: 'bench',
      connections: new ConnectionRegistry(
        ['masked', 'plain'].map((name) =>
          createUpstreamConnection({ name, type: 'kubernetes', server: listenUrl('http', bound.address, bound.port), impersonate: false }),
        ),
      ),
      verifier: new TokenVerifier({
        issuers: [{ issuer: issuer.issuer, audiences: ['p'], algorithms: ['ES256'], keys: { jwks: issuer.jwks() } }],
        maxTokenLifetimeMs: 3_600_000,
        clockSkewMs: 5_000,
      }),
      decisions: new DecisionClient(handle.bus, 2_000),
      audit: new AuditPublisher(handle.log, 2_000, silentLogger),
      logger: silentLogger,
      upstreamTimeoutMs: 10_000,
    }),
  });
  const edgePort = (await server.listen()).port;
  const agent = new Agent({ keepAlive: true, ca: tls.caPem });
  const one = (connection: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const t = performance.now();
      httpsRequest(
        { hostname: '127.0.0.1', port: edgePort, path: `/k8s/${connection}/api/v1/secrets`, agent, headers: { authorization: `Bearer ${token}` } },
        (res) => {
          res.on('data', () => undefined);
          res.on('end', () => resolve(performance.now() - t));
          res.on('error', reject);
        },
      )
        .on('error', reject)
        .end();
    });
  const N = 100;
  for (let i = 0; i < 20; i++) {
    await one('plain');
    await one('masked');
  }
  const runs: { plain: number[]; masked: number[] }[] = [];
  for (let r = 0; r < RUNS; r++) {
    const plain: number[] = [];
    const masked: number[] = [];
    // Interleaved, so both see the same machine load.
    for (let i = 0; i < N; i++) {
      plain.push(await one('plain'));
      masked.push(await one('masked'));
    }
    runs.push({ plain, masked });
  }
  const med = (k: 'plain' | 'masked') => median(runs.map((r) => median(r[k])));
  const p95 = (k: 'plain' | 'masked') => median(runs.map((r) => percentile(r[k], 0.95)));
  console.log(`\n## Edge latency, ${(body.length / 1e6).toFixed(2)} MB SecretList (${N} requests × ${RUNS} runs, interleaved; median of run medians)\n`);
  console.log('| request | median | p95 |');
  console.log('| --- | --- | --- |');
  console.log(`| unmasked (fast path) | ${med('plain').toFixed(2)} ms | ${p95('plain').toFixed(2)} ms |`);
  console.log(`| masked (profile secrets) | ${med('masked').toFixed(2)} ms | ${p95('masked').toFixed(2)} ms |`);
  reportFigures('masking-edge', {
    bodyMB: body.length / 1e6,
    plainMedianMs: med('plain'),
    maskedMedianMs: med('masked'),
    addedMs: med('masked') - med('plain'),
  });
  console.log(`| added by masking | ${(med('masked') - med('plain')).toFixed(2)} ms (×${(med('masked') / med('plain')).toFixed(2)}) | |`);
  agent.destroy();
  server.closeAll();
  await server.close();
  upstream.close();
  await handle.close();
}

/** Child mode: masks a 200 MB SecretList generated on the fly; prints peak RSS as JSON. */
function rssChild(): void {
  const profile = new MaskingProfile('secrets', {});
  const m = new StreamingJsonMasker(profile, { mode: 'kubernetes', kindHint: 'Secret', maxObjectBytes: 16 * 1024 * 1024 });
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  let fed = 0;
  let out = 0;
  let pending = '{"kind":"SecretList","apiVersion":"v1","metadata":{},"items":[';
  const t = performance.now();
  for (let i = 0; fed < 200 * 1024 * 1024; i++) {
    pending += (i === 0 ? '' : ',') + secretItem(i);
    if (pending.length >= CHUNK) {
      const chunk = Buffer.from(pending);
      fed += chunk.length;
      out += m.push(chunk).length;
      pending = '';
      if (i % 64 === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
  }
  out += m.push(Buffer.from(`${pending}]}`)).length + m.end().length;
  peak = Math.max(peak, process.memoryUsage().rss);
  console.log(JSON.stringify({ fedBytes: fed, outChars: out, baselineRss: baseline, peakRss: peak, ms: performance.now() - t, masked: m.maskedFields }));
}

function peakRss(): void {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [self, '--rss-child'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`rss child failed: ${r.stderr}`);
  const x = JSON.parse(r.stdout.trim()) as { fedBytes: number; baselineRss: number; peakRss: number; ms: number; masked: number };
  console.log('\n## Peak RSS masking a 200 MB SecretList (fresh process, list generated on the fly)\n');
  console.log('| input | masked values | time | RSS before | peak RSS | growth |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MiB`;
  reportFigures('masker-rss', { inputMiB: x.fedBytes / 1048576, growthMiB: (x.peakRss - x.baselineRss) / 1048576, seconds: x.ms / 1000 });
  console.log(
    `| ${mb(x.fedBytes)} | ${x.masked} | ${(x.ms / 1000).toFixed(1)} s | ${mb(x.baselineRss)} | ${mb(x.peakRss)} | ${mb(x.peakRss - x.baselineRss)} |`,
  );
}

if (process.argv.includes('--rss-child')) rssChild();
else {
  console.log(`# Masking bench (node ${process.version})`);
  throughput();
  await edgeLatency();
  peakRss();
}
