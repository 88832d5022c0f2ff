/**
 * A Portcullis cluster for the acceptance, fault and security suites, as separate processes on a
 * real nats-server (JetStream) and redis-server: policy processes (one queue group), two approval
 * processes (each with the Slack worker and its own HTTPS listener), two edges, optionally audit
 * writers on ClickHouse, the Kubernetes API-server fixture upstream and a local fake Slack Web API.
 * Helpers drive real kubectl, raw requests, the approvers' REST API and signed Slack clicks, and
 * (re)start any process by name.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listenUrl } from '@portcullis/common';
import type { BusRole } from '@portcullis/contracts';
import { startKubeApiServer, type KubeApiServer } from '@portcullis/kube-sandbox';
import { freePort, startNats, startRedis, type TestNats, type TestRedis } from '../harness/services.js';
import { kubectl, runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from './portcullis-process.js';
import { edgeRequest } from './gateway-https.js';
import { startFakeSlack, type FakeSlack } from './fake-slack.js';

export const SIGNING_SECRET = 'test-signing-secret-0123456789';
const BOT_TOKEN = 'xoxb-test-bot-token';
/** Where every role of the cluster listens; URLs are built from it. */
const HOST = '127.0.0.1';

/** The development clients every cluster has (id → secret, subject, groups). */
const CLIENTS = [
  { id: 'ci-bot', secret: 'ci-bot-secret-123', subject: 'ci-bot', groups: ['bots'] },
  { id: 'sre-alice', secret: 'sre-alice-secret', subject: 'alice', groups: ['sre'] },
  { id: 'sre-bob', secret: 'sre-bob-secret-1', subject: 'bob', groups: ['sre'] },
  { id: 'sre-carol', secret: 'sre-carol-secret', subject: 'carol', groups: ['sre'] },
  { id: 'dev-dave', secret: 'dev-dave-secret1', subject: 'dave', groups: ['dev'] },
] as const;

/** Secret values the cluster's configuration holds: none may ever show up in a log or an event. */
export const CLUSTER_SECRETS: readonly string[] = [SIGNING_SECRET, BOT_TOKEN, ...CLIENTS.map((c) => c.secret)];

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

/** What to run besides the defaults (one policy process, two approval processes, two edges). */
export interface ClusterOptions {
  /** `approval.pendingTtl`. */
  readonly pendingTtl: string;
  /** `approval.grantTtl` (default 2m). */
  readonly grantTtl?: string;
  /** The policy YAML (default: the approval tests' policy). */
  readonly policy?: string;
  /** Policy processes in the queue group (default 1): named `policy`, `policy-2`, … */
  readonly policies?: number;
  /** Audit writers on ClickHouse, named `audit-1`, `audit-2`, …; each serves the replay API. None by default. */
  readonly audit?: { readonly clickHouseUrl: string; readonly database: string; readonly writers: number };
  /** Merged into every config's `edge` section (e.g. `headersTimeout`, `admin`). */
  readonly edge?: Record<string, unknown>;
  /** `identity.issuers` besides the development issuer. */
  readonly issuers?: readonly Record<string, unknown>[];
  /** The `masking` section. */
  readonly masking?: Record<string, unknown>;
  /** Extra development clients. */
  readonly clients?: readonly { id: string; secret: string; subject: string; groups: string[] }[];
  /** The API-server fixture reads paths as a lenient proxy in front of an API server might (its `lenientPaths`). */
  readonly lenientUpstream?: boolean;
}

/** A running cluster and its helpers. */
export interface Cluster {
  readonly nats: TestNats;
  readonly redis: TestRedis;
  readonly fixture: KubeApiServer;
  readonly slack: FakeSlack;
  readonly caPem: string;
  /** The temp dir holding configs, state and kubeconfigs. */
  readonly dir: string;
  /** Edge URLs (A, B), approval listener URLs (1, 2) and replay API URLs (audit-1, …). */
  readonly edges: readonly string[];
  readonly approvals: readonly string[];
  readonly auditApis: readonly string[];
  readonly configs: ReadonlyMap<string, string>;
  /** The current process of each name. */
  readonly procs: ReadonlyMap<string, PortcullisProcess>;
  /** Every process ever started, in order (restarts included), for crash accounting. */
  readonly history: readonly { readonly name: string; readonly proc: PortcullisProcess }[];
  /** Starts (or restarts) a named process with its role; resolves with its ready line. */
  start(name: string, role: string): Promise<Record<string, unknown>>;
  /** A development token for `client` (cached). */
  token(client: string): Promise<string>;
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

/** Starts everything. */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const dir = tempDir('cluster');
  const [nats, redis, fixture, slack] = await Promise.all([
    // One NATS user per role, each with exactly its role's permissions (natsRolePermissions).
    startNats({ jetstream: true, roles: ['edge', 'policy', 'approval', 'audit', 'operator'] }),
    startRedis(),
    // The suites assert what reached the upstream: a bounded record, far above what one suite sends.
    startKubeApiServer({ requestLog: { max: 50_000 }, lenientPaths: opts.lenientUpstream === true }),
    startFakeSlack({ botToken: BOT_TOKEN, emails: { U0CAROL: 'carol@example.com' } }),
  ]);
  const procs = new Map<string, PortcullisProcess>();
  const history: { name: string; proc: PortcullisProcess }[] = [];
  const configs = new Map<string, string>();
  const kubeconfigs = new Map<string, string>();
  const tokens = new Map<string, string>();
  const edges: string[] = [];
  const approvals: string[] = [];
  const auditApis: string[] = [];
  const tokenFile = join(dir, 'upstream-token');
  const caFile = join(dir, 'upstream-ca.pem');
  writeFileSync(tokenFile, fixture.token, { mode: 0o600 });
  writeFileSync(caFile, fixture.caPem);
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, opts.policy ?? POLICY);
  const [edgeA, edgeB, apprA, apprB] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const writers = opts.audit?.writers ?? 0;
  const auditPorts: number[] = [];
  for (let i = 0; i < writers; i++) auditPorts.push(await freePort());
  const base = (role: BusRole, id: string, edgePort: number, approvalPort: number, auditPort?: number): Record<string, unknown> => ({
    node: { id, stateDir: join(dir, 'state') },
    edge: { listen: { host: HOST, port: edgePort }, decisionTimeout: '2s', auditAckTimeout: '2s', ...opts.edge },
    bus: nats.busConfig(role),
    identity: {
      ...(opts.issuers !== undefined ? { issuers: opts.issuers } : {}),
      devIssuer: {
        enabled: true,
        issuerUrl: `${listenUrl('https', HOST, edgeA)}/oidc/dev`,
        clients: [...CLIENTS, ...(opts.clients ?? [])],
      },
    },
    connections: [{ name: 'prod', type: 'kubernetes', server: fixture.url, caFile, tokenFile }],
    policy: { file: policyFile },
    ...(opts.masking !== undefined ? { masking: opts.masking } : {}),
    ...(opts.audit !== undefined
      ? {
          audit: {
            sink: 'clickhouse',
            clickhouse: { url: opts.audit.clickHouseUrl, database: opts.audit.database, batchSize: 200, flushInterval: '100ms' },
            ...(auditPort !== undefined ? { listen: { host: HOST, port: auditPort } } : {}),
            auditorGroups: ['auditors'],
            // Chain heads signed every second (default 10 s): tests need not wait for them.
            checkpoints: { interval: '1s' },
          },
        }
      : {}),
    approval: {
      listen: { host: HOST, port: approvalPort },
      pendingTtl: opts.pendingTtl,
      grantTtl: opts.grantTtl ?? '2m',
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
  configs.set('edge-a', writeConfig(dir, 'edge-a.yaml', base('edge', 'edge-a', edgeA, apprA)));
  configs.set('edge-b', writeConfig(dir, 'edge-b.yaml', base('edge', 'edge-b', edgeB, apprA)));
  const policyNames = Array.from({ length: opts.policies ?? 1 }, (_, i) => (i === 0 ? 'policy' : `policy-${i + 1}`));
  for (const [i, name] of policyNames.entries()) configs.set(name, writeConfig(dir, `${name}-role.yaml`, base('policy', `policy-${i + 1}`, edgeA, apprA)));
  configs.set('approval-1', writeConfig(dir, 'approval-1.yaml', base('approval', 'approval-1', edgeA, apprA)));
  configs.set('approval-2', writeConfig(dir, 'approval-2.yaml', base('approval', 'approval-2', edgeA, apprB)));
  const writerNames = auditPorts.map((port, i) => {
    configs.set(`audit-${i + 1}`, writeConfig(dir, `audit-${i + 1}.yaml`, base('audit', `audit-${i + 1}`, edgeA, apprA, port)));
    return `audit-${i + 1}`;
  });

  const start = async (name: string, role: string): Promise<Record<string, unknown>> => {
    const p = startPortcullis(['serve', role, '--config', configs.get(name)!]);
    procs.set(name, p);
    history.push({ name, proc: p });
    return JSON.parse(await p.waitFor(/"ready":true/, 60_000)) as Record<string, unknown>;
  };
  // A start-up that fails half way (a port taken between freePort() and the bind, a role that
  // exits) stops what it started, so the test file fails at once instead of hanging on open handles.
  let caPem: string;
  try {
    // The first start creates the development CA and issuer key in the shared state dir.
    await start(policyNames[0]!, 'policy');
    await Promise.all(policyNames.slice(1).map((n) => start(n, 'policy')));
    const [a1, a2] = await Promise.all([start('approval-1', 'approval'), start('approval-2', 'approval')]);
    approvals.push(String(a1['approvalUrl']), String(a2['approvalUrl']));
    await Promise.all(writerNames.map((n) => start(n, 'audit')));
    auditApis.push(...auditPorts.map((port) => listenUrl('https', HOST, port)));
    const [e1, e2] = await Promise.all([start('edge-a', 'edge'), start('edge-b', 'edge')]);
    edges.push(String(e1['url']), String(e2['url']));
    caPem = readFileSync(join(dir, 'state', 'tls', 'ca.pem'), 'utf8');
    for (const client of ['ci-bot', 'sre-bob']) {
      for (const [i, edge] of ['edge-a', 'edge-b'].entries()) {
        const kc = await runPortcullis(['kubeconfig', '--connection', 'prod', '--client', client, '--config', configs.get(edge)!]);
        assert.equal(kc.code, 0, kc.stderr);
        const file = join(dir, `kubeconfig-${client}-${i}`);
        writeFileSync(file, kc.stdout);
        kubeconfigs.set(`${client}-${i}`, file);
      }
    }
  } catch (err) {
    await Promise.all([...procs.values()].map((p) => p.stop()));
    await Promise.all([fixture.close(), slack.close(), nats.stop(), redis.stop()]);
    throw err;
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
    dir,
    edges,
    approvals,
    auditApis,
    configs,
    procs,
    history,
    start,
    token,
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
      slack.send(
        `${approvals[i]}/slack/interactions`,
        slack.interaction({ approvalId, action, userId, signingSecret: SIGNING_SECRET, ...(reason !== undefined ? { reason } : {}) }),
        caPem,
      ),
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
