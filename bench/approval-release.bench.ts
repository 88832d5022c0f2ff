/**
 * Approval release latency: from the approve click (the signed Slack interaction POST) to the
 * held request reaching the upstream, p50/p99 over N approvals. The cluster path with real
 * servers: nats-server (JetStream) and redis-server started by the test harness, the approval
 * HTTPS listener verifying the signature, BullMQ to the Slack worker, the decision appended to
 * JetStream and projected in Redis, the NATS broadcast releasing the edge, the edge consuming the
 * once-grant (Redis Lua + JetStream append) and forwarding. One process holds the edge, the
 * approval role (the Nest application `serve approval` runs) and its worker (they share its event
 * loop: a pessimistic setup).
 *
 * Run: `npm run bench:approval` (N=200; APPROVALS=… to change).
 */
import { createServer as createHttpsServer } from 'node:https';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { connectNats } from '@portcullis/bus';
import { decisionReply, decodeDecisionRequest, encodeDecisionReply, QueueGroups, Streams, Subjects } from '@portcullis/contracts';
import { evaluate, parsePolicy } from '@portcullis/policy-engine';
import { DevIssuer, TokenVerifier } from '@portcullis/identity';
import { loadOrCreateDevTls } from '@portcullis/tls';
import { listenUrl, silentLogger } from '@portcullis/common';
import { ApprovalGate, AuditPublisher, ConnectionRegistry, createUpstreamConnection, DecisionClient, EdgePipeline, EdgeServer } from '@portcullis/gateway';
import { startNats, startRedis } from '../test/harness/services.js';
import { startFakeSlack } from '../test/support/fake-slack.js';
import { edgeRequest } from '../test/support/gateway-https.js';
import { Role, startTestProcess, testConfig, testTls } from '../test/support/nest-process.js';
import { reportFigures } from './bench-result.js';

const N = Number(process.env['APPROVALS'] ?? 200);
const SECRET = 'bench-signing-secret';
/** Where every listener of the bench binds; URLs are built from it. */
const HOST = '127.0.0.1';
const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: bench, version: "b1" }
rules:
  - id: delete-namespace
    match: { verbs: [delete], resources: [namespaces] }
    effect: require_approval
    approval: { approverGroups: [sre], wait: 30s, channel: "#approvals" }
`;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-approval-'));
  const [nats, redis] = await Promise.all([startNats({ jetstream: true }), startRedis()]);
  const slack = await startFakeSlack({ botToken: 'xoxb-bench' });
  const handle = await connectNats({ servers: [nats.url], name: 'bench' });
  await handle.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 3_600_000, duplicateWindowMs: 120_000, replicas: 1 });
  const parsed = parsePolicy(POLICY);
  if (!parsed.ok) throw new Error('bad bench policy');
  const policy = parsed.policy;
  handle.bus.serve(Subjects.policyDecide(), QueueGroups.policy, (msg) => {
    const req = decodeDecisionRequest(msg.data);
    return encodeDecisionReply(decisionReply({ decision: evaluate(policy, req.identity!, req.attributes!, new Date()) }));
  });

  // The upstream: notes when each held request arrives.
  const tls = await loadOrCreateDevTls(join(dir, 'tls'), ['127.0.0.1', 'localhost']);
  const arrivals = new Map<string, (t: number) => void>();
  const upstream = createHttpsServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    const t = performance.now();
    const name = (req.url ?? '').split('/').pop() ?? '';
    arrivals.get(name)?.(t);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"kind":"Status","status":"Success"}');
  });
  await new Promise<void>((r) => upstream.listen(0, HOST, r));

  // The approval role: the Nest application `portcullis serve approval` runs (its own NATS connection).
  const approval = await startTestProcess({
    config: testConfig(
      {
        bus: { mode: 'nats', nats: { servers: [nats.url] } },
        approval: {
          listen: { host: '127.0.0.1', port: 0 },
          store: 'redis',
          redis: { url: redis.url, keyPrefix: 'bench:' },
          pendingTtl: '10m',
          grantTtl: '10m',
          retention: '10m',
          rebuildLookback: '1h',
          slack: {
            enabled: true,
            apiUrl: slack.apiUrl,
            botToken: 'xoxb-bench',
            signingSecret: SECRET,
            queue: 'bench-slack',
            users: [{ slackUserId: 'U0ALICE', subject: 'alice', groups: ['sre'] }],
          },
        },
      },
      dir,
    ),
    roles: [Role.Approval],
    tls: testTls(tls),
  });
  const approvalPort = approval.port('approval');
  if (approvalPort === undefined) throw new Error('the approval role has no listener');

  // The edge.
  const issuer = await DevIssuer.open({
    issuer: 'https://bench/oidc/dev',
    audience: 'portcullis',
    tokenLifetimeMs: 3_600_000,
    maxTokenLifetimeMs: 3_600_000,
    clients: [{ id: 'bot', secret: 'bot-secret-123', groups: ['bots'], scopes: [] }],
    stateDir: dir,
  });
  const token = (await issuer.issue({ clientId: 'bot', clientSecret: 'bot-secret-123' })).accessToken;
  const edge = new EdgeServer({
    host: HOST,
    port: 0,
    tls,
    logger: silentLogger,
    pipeline: new EdgePipeline({
      nodeId: 'bench-edge',
      connections: new ConnectionRegistry([
        createUpstreamConnection({
          name: 'k',
          type: 'kubernetes',
          server: listenUrl('https', HOST, (upstream.address() as AddressInfo).port),
          caPem: tls.caPem,
          token: 'upstream',
        }),
      ]),
      verifier: new TokenVerifier({
        issuers: [{ issuer: issuer.issuer, audiences: ['portcullis'], algorithms: ['ES256'], keys: { jwks: issuer.jwks() } }],
        maxTokenLifetimeMs: 3_600_000,
        clockSkewMs: 5000,
      }),
      decisions: new DecisionClient(handle.bus, 2000),
      audit: new AuditPublisher(handle.log, 2000, silentLogger),
      logger: silentLogger,
      upstreamTimeoutMs: 10_000,
      approvals: new ApprovalGate({ bus: handle.bus, timeoutMs: 2000 }),
    }),
  });
  const edgePort = (await edge.listen()).port;

  const run = async (i: number, tag: string): Promise<{ releaseMs: number; answerMs: number }> => {
    const name = `${tag}-${i}`;
    const arrived = new Promise<number>((r) => arrivals.set(name, r));
    const held = edgeRequest(`${listenUrl('https', HOST, edgePort)}/k8s/k/api/v1/namespaces/${name}`, {
      method: 'DELETE',
      ca: tls.caPem,
      headers: { authorization: `Bearer ${token}` },
    });
    let id: string | undefined;
    while (id === undefined) {
      id = slack.messages.find((m) => m.text.includes(`namespaces ${name}`))?.metadata?.event_payload?.['approval_id'] as string | undefined;
      if (id === undefined) await new Promise((r) => setTimeout(r, 2));
    }
    const click = slack.interaction({ approvalId: id, action: 'approve', userId: 'U0ALICE', signingSecret: SECRET });
    const t0 = performance.now();
    const answer = await slack.send(`${listenUrl('https', HOST, approvalPort)}/slack/interactions`, click, tls.caPem);
    if (answer.status !== 200) throw new Error(`interaction refused: ${answer.status} ${answer.body}`);
    const t1 = await arrived;
    const res = await held;
    if (res.status !== 200) throw new Error(`held request ended ${res.status}: ${res.body}`);
    arrivals.delete(name);
    return { releaseMs: t1 - t0, answerMs: answer.ms };
  };

  for (let i = 0; i < 20; i++) await run(i, 'warmup');
  const release: number[] = [];
  const answer: number[] = [];
  for (let i = 0; i < N; i++) {
    const r = await run(i, 'ns');
    release.push(r.releaseMs);
    answer.push(r.answerMs);
  }
  release.sort((a, b) => a - b);
  answer.sort((a, b) => a - b);
  const f = (x: number): string => `${x.toFixed(1)} ms`;
  console.log(`approval release latency over ${N} approvals (approve click → held request at the upstream)`);
  console.log(
    `  p50 ${f(pct(release, 50))}  p90 ${f(pct(release, 90))}  p99 ${f(pct(release, 99))}  max ${f(release.at(-1)!)}  (target p99 < 100 ms: ${pct(release, 99) < 100 ? 'met' : 'MISSED'})`,
  );
  reportFigures('approval-release', {
    approvals: N,
    p50Ms: pct(release, 50),
    p90Ms: pct(release, 90),
    p99Ms: pct(release, 99),
    answerP50Ms: pct(answer, 50),
    answerP99Ms: pct(answer, 99),
  });
  console.log(`  interaction answered (signature verified, job queued): p50 ${f(pct(answer, 50))}  p99 ${f(pct(answer, 99))}`);

  edge.closeAll();
  await edge.close();
  await approval.close();
  await handle.close();
  upstream.closeAllConnections();
  upstream.close();
  await slack.close();
  await Promise.all([nats.stop(), redis.stop()]);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
