/**
 * A cluster for the approval acceptance tests, as separate processes on a real nats-server
 * (JetStream) and redis-server: one policy process, two approval processes (each with the Slack
 * worker and its own HTTPS listener), two edges, the Kubernetes API-server fixture upstream and a
 * local fake Slack Web API. Helpers drive real kubectl, the REST API and signed Slack clicks.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startKubeApiServer, type KubeApiServer } from '../fixture/kube-apiserver/index.js';
import { freePort, startNats, startRedis, type TestNats, type TestRedis } from '../harness/services.js';
import { kubectl, runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from './portcullis-process.js';
import { edgeRequest } from './gateway-https.js';
import { startFakeSlack, type FakeSlack } from './fake-slack.js';

export const SIGNING_SECRET = 'test-signing-secret-0123456789';
const BOT_TOKEN = 'xoxb-test-bot-token';

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: approvals-test, version: "a1" }
rules:
  - id: discovery
    match: { verbs: [get], nonResourcePaths: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"] }
    effect: allow
  - id: delete-namespace-needs-sre
    match: { verbs: [delete], resources: [namespaces] }
    effect: require_approval
    message: deleting a namespace needs an approval from sre
    approval: { approverGroups: [sre], quorum: 1, scope: once, wait: 30s, reasonRequired: true, channel: "#approvals" }
  - id: delete-configmap-quick
    match: { verbs: [delete], resources: [configmaps] }
    effect: require_approval
    approval: { approverGroups: [sre], wait: 1s, channel: "#approvals" }
  - id: delete-secret-two-sre
    match: { verbs: [delete], resources: [secrets] }
    effect: require_approval
    approval: { approverGroups: [sre], quorum: 2, wait: 30s, channel: "#approvals" }
  - id: read
    match: { verbs: [get, list, watch] }
    effect: allow
`;

/** A running approval cluster and its helpers. */
export interface ApprovalCluster {
  readonly nats: TestNats;
  readonly redis: TestRedis;
  readonly fixture: KubeApiServer;
  readonly slack: FakeSlack;
  readonly caPem: string;
  /** Edge URLs (A, B) and approval listener URLs (1, 2). */
  readonly edges: readonly string[];
  readonly approvals: readonly string[];
  readonly configs: ReadonlyMap<string, string>;
  readonly procs: ReadonlyMap<string, PortcullisProcess>;
  /** Starts (or restarts) a named process with its role; resolves with its ready line. */
  start(name: string, role: string): Promise<Record<string, unknown>>;
  /** kubectl as `client` through edge `edge` (0 = A, 1 = B). */
  kube(client: 'ci-bot' | 'sre-bob', edge: number, args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** The approvers' REST API on approval process `i`, as `client` (undefined: no token). */
  api(i: number, method: string, path: string, client: string | undefined, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  /** A raw request through edge `edge` to `/k8s/prod<path>` as `client`. */
  raw(client: string, edge: number, method: string, path: string, headers?: Record<string, string>): Promise<{ status: number; body: string }>;
  /** A signed Slack click on approval process `i`. */
  click(i: number, approvalId: string, action: 'approve' | 'deny', userId: string, reason?: string): Promise<{ status: number; body: string; ms: number }>;
  /** How many DELETEs of exactly this path reached the upstream. */
  deletes(path: string): number;
  putConfigMap(namespace: string, name: string): void;
  stop(): Promise<void>;
}

/** The approval id named in a refusal. */
export function approvalIdIn(text: string): string {
  const m = /approval ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/.exec(text);
  assert.ok(m, `no approval id in: ${text}`);
  return m[1]!;
}

/** Starts everything; `pendingTtl` is approval.pendingTtl. */
export async function startApprovalCluster(opts: { pendingTtl: string }): Promise<ApprovalCluster> {
  const dir = tempDir('approvals');
  const [nats, redis, fixture, slack] = await Promise.all([
    startNats({ jetstream: true }),
    startRedis(),
    startKubeApiServer(),
    startFakeSlack({ botToken: BOT_TOKEN, emails: { U0CAROL: 'carol@example.com' } }),
  ]);
  const procs = new Map<string, PortcullisProcess>();
  const configs = new Map<string, string>();
  const kubeconfigs = new Map<string, string>();
  const tokens = new Map<string, string>();
  const edges: string[] = [];
  const approvals: string[] = [];
  const tokenFile = join(dir, 'upstream-token');
  const caFile = join(dir, 'upstream-ca.pem');
  writeFileSync(tokenFile, fixture.token, { mode: 0o600 });
  writeFileSync(caFile, fixture.caPem);
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, POLICY);
  const [edgeA, edgeB, apprA, apprB] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const base = (id: string, edgePort: number, approvalPort: number): Record<string, unknown> => ({
    node: { id, stateDir: join(dir, 'state') },
    edge: { listen: { host: '127.0.0.1', port: edgePort }, decisionTimeout: '2s', auditAckTimeout: '2s' },
    bus: { mode: 'nats', nats: { servers: [nats.url] } },
    identity: {
      devIssuer: {
        enabled: true,
        issuerUrl: `https://127.0.0.1:${edgeA}/oidc/dev`,
        clients: [
          { id: 'ci-bot', secret: 'ci-bot-secret-123', subject: 'ci-bot', groups: ['bots'] },
          { id: 'sre-alice', secret: 'sre-alice-secret', subject: 'alice', groups: ['sre'] },
          { id: 'sre-bob', secret: 'sre-bob-secret-1', subject: 'bob', groups: ['sre'] },
          { id: 'sre-carol', secret: 'sre-carol-secret', subject: 'carol', groups: ['sre'] },
          { id: 'dev-dave', secret: 'dev-dave-secret1', subject: 'dave', groups: ['dev'] },
        ],
      },
    },
    connections: [{ name: 'prod', type: 'kubernetes', server: fixture.url, caFile, tokenFile }],
    policy: { file: policyFile },
    approval: {
      listen: { host: '127.0.0.1', port: approvalPort },
      pendingTtl: opts.pendingTtl,
      grantTtl: '2m',
      retention: '2m',
      sweepInterval: '500ms',
      redis: { url: redis.url },
      slack: {
        enabled: true,
        apiUrl: slack.apiUrl,
        botToken: BOT_TOKEN,
        signingSecret: SIGNING_SECRET,
        jobLockTimeout: '2s',
        users: [
          { slackUserId: 'U0ALICE', subject: 'alice', groups: ['sre'] },
          { email: 'carol@example.com', subject: 'carol', groups: ['sre'] },
          { slackUserId: 'U0MALLORY', subject: 'mallory', groups: ['dev'] },
        ],
      },
    },
  });
  configs.set('edge-a', writeConfig(dir, 'edge-a.yaml', base('edge-a', edgeA, apprA)));
  configs.set('edge-b', writeConfig(dir, 'edge-b.yaml', base('edge-b', edgeB, apprA)));
  configs.set('policy', writeConfig(dir, 'policy-role.yaml', base('policy-1', edgeA, apprA)));
  configs.set('approval-1', writeConfig(dir, 'approval-1.yaml', base('approval-1', edgeA, apprA)));
  configs.set('approval-2', writeConfig(dir, 'approval-2.yaml', base('approval-2', edgeA, apprB)));

  const start = async (name: string, role: string): Promise<Record<string, unknown>> => {
    const p = startPortcullis(['serve', role, '--config', configs.get(name)!]);
    procs.set(name, p);
    return JSON.parse(await p.waitFor(/"ready":true/, 60_000)) as Record<string, unknown>;
  };
  // The first start creates the development CA and issuer key in the shared state dir.
  await start('policy', 'policy');
  const [a1, a2] = await Promise.all([start('approval-1', 'approval'), start('approval-2', 'approval')]);
  approvals.push(String(a1['approvalUrl']), String(a2['approvalUrl']));
  const [e1, e2] = await Promise.all([start('edge-a', 'edge'), start('edge-b', 'edge')]);
  edges.push(String(e1['url']), String(e2['url']));
  const caPem = readFileSync(join(dir, 'state', 'tls', 'ca.pem'), 'utf8');
  for (const client of ['ci-bot', 'sre-bob']) {
    for (const [i, edge] of ['edge-a', 'edge-b'].entries()) {
      const kc = await runPortcullis(['kubeconfig', '--connection', 'prod', '--client', client, '--config', configs.get(edge)!]);
      assert.equal(kc.code, 0, kc.stderr);
      const file = join(dir, `kubeconfig-${client}-${i}`);
      writeFileSync(file, kc.stdout);
      kubeconfigs.set(`${client}-${i}`, file);
    }
  }

  const token = async (client: string): Promise<string> => {
    let t = tokens.get(client);
    if (t === undefined) {
      const r = await runPortcullis(['token', '--client', client, '--config', configs.get('approval-1')!]);
      assert.equal(r.code, 0, r.stderr);
      t = r.stdout.trim();
      tokens.set(client, t);
    }
    return t;
  };

  return {
    nats,
    redis,
    fixture,
    slack,
    caPem,
    edges,
    approvals,
    configs,
    procs,
    start,
    kube: (client, edge, args) => kubectl(kubeconfigs.get(`${client}-${edge}`)!, join(dir, `cache-${client}-${edge}`), args),
    async api(i, method, path, client, body) {
      const headers: Record<string, string> = client === undefined ? {} : { authorization: `Bearer ${await token(client)}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await edgeRequest(`${approvals[i]}${path}`, { method, headers, ca: caPem, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      return { status: res.status, body: res.body === '' ? {} : (JSON.parse(res.body) as Record<string, unknown>) };
    },
    async raw(client, edge, method, path, headers = {}) {
      return edgeRequest(`${edges[edge]}/k8s/prod${path}`, { method, ca: caPem, headers: { authorization: `Bearer ${await token(client)}`, ...headers } });
    },
    click: (i, approvalId, action, userId, reason) =>
      slack.send(`${approvals[i]}/slack/interactions`, slack.interaction({ approvalId, action, userId, signingSecret: SIGNING_SECRET, ...(reason !== undefined ? { reason } : {}) }), caPem),
    deletes: (path) => fixture.requests.filter((r) => r.method === 'DELETE' && r.path.split('?')[0] === path).length,
    putConfigMap(namespace, name) {
      fixture.store.put('configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { k: 'v' } });
    },
    async stop() {
      await Promise.all([...procs.values()].map((p) => p.stop()));
      await Promise.all([fixture.close(), slack.close(), nats.stop(), redis.stop()]);
    },
  };
}
