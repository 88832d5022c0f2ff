/**
 * The walking skeleton in cluster mode: two edges, one policy and one audit writer as separate
 * processes on a real nats-server (JetStream) and ClickHouse, real kubectl through both edges,
 * the Kubernetes API-server fixture as the upstream. Then NATS stops while kubectl runs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startKubeApiServer, type KubeApiServer } from '@portcullis/kube-sandbox';
import { freePort, sharedClickHouseUrl, startNats, uniqueName, type TestNats } from '../harness/services.js';
import { kubectl, REPO_ROOT, runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from '../support/portcullis-process.js';
import { edgeRequest } from '../support/gateway-https.js';
import { eventually } from '../support/eventually.js';

interface Row {
  event_id: string;
  type: string;
  correlation_id: string;
  causation_id: string;
  node_id: string;
  connection: string;
  subject: string;
  groups: string[];
  client_id: string;
  verb: string;
  resource: string;
  namespace: string;
  name: string;
  effect: string;
  rule_id: string;
  status: number;
  duration_ms: number;
  bytes_out: string | number;
}

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: cluster-test, version: "t1" }
rules:
  - id: discovery
    match: { verbs: [get], nonResourcePaths: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"] }
    effect: allow
  - id: no-secrets
    match: { resources: [secrets], verbs: [get, list, watch] }
    effect: deny
    message: secrets are off limits in this test
  - id: bots-read
    match: { groups: [bots], verbs: [get, list, watch] }
    effect: allow
`;

describe('cluster mode: two edges, policy and audit as processes on NATS and ClickHouse', { timeout: 300_000 }, () => {
  let nats: TestNats;
  let fixture: KubeApiServer;
  let chUrl: string;
  const database = uniqueName('cluster');
  const dir = tempDir('cluster');
  const procs: PortcullisProcess[] = [];
  const kubeconfigs: string[] = [];
  const edgeUrls: string[] = [];
  let caPem = '';

  const chQuery = async (sql: string): Promise<Row[]> => {
    const res = await fetch(`${chUrl}/?database=${database}`, { method: 'POST', body: `${sql} FORMAT JSON` });
    const text = await res.text();
    if (!res.ok) throw new Error(`ClickHouse ${res.status}: ${text.slice(0, 300)}`);
    return (JSON.parse(text) as { data: Row[] }).data;
  };

  before(async () => {
    nats = await startNats({ jetstream: true, roles: ['edge', 'policy', 'audit'] });
    chUrl = await sharedClickHouseUrl();
    fixture = await startKubeApiServer({ requestLog: { max: 10_000 } });
    const tokenFile = join(dir, 'upstream-token');
    const caFile = join(dir, 'upstream-ca.pem');
    writeFileSync(tokenFile, fixture.token, { mode: 0o600 });
    writeFileSync(caFile, fixture.caPem);
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(policyFile, POLICY);
    const ports = [await freePort(), await freePort()];
    const issuerUrl = `https://127.0.0.1:${ports[0]}/oidc/dev`;
    const base = (i: number, role: 'edge' | 'policy' | 'audit' = 'edge'): Record<string, unknown> => ({
      node: { id: `edge-${i}`, stateDir: join(dir, 'state') },
      edge: { listen: { host: '127.0.0.1', port: ports[i] }, decisionTimeout: '1s', auditAckTimeout: '1s' },
      // Each role logs in as its own NATS user, with that role's permissions only.
      bus: nats.busConfig(role),
      identity: {
        devIssuer: {
          enabled: true,
          issuerUrl,
          clients: [{ id: 'ci-bot', secret: 'ci-bot-secret-123', subject: 'ci-bot', groups: ['bots'] }],
        },
      },
      connections: [{ name: 'prod', type: 'kubernetes', server: fixture.url, caFile, tokenFile }],
      policy: { file: policyFile },
      audit: { sink: 'clickhouse', clickhouse: { url: chUrl, database, batchSize: 500, flushInterval: '100ms' } },
    });
    const configs = [writeConfig(dir, 'edge-0.yaml', base(0)), writeConfig(dir, 'edge-1.yaml', base(1))];
    for (const role of ['policy', 'audit'] as const) {
      const roleConfig = writeConfig(dir, `${role}-role.yaml`, { ...base(0, role), node: { id: 'roles', stateDir: join(dir, 'state') } });
      const p = startPortcullis(['serve', role, '--config', roleConfig]);
      procs.push(p);
      await p.waitFor(/"ready":true/);
    }
    for (const cfg of configs) {
      const p = startPortcullis(['serve', 'edge', '--config', cfg]);
      procs.push(p);
      const line = await p.waitFor(/"ready":true/);
      edgeUrls.push((JSON.parse(line) as { url: string }).url);
    }
    for (const [i, cfg] of configs.entries()) {
      const kc = await runPortcullis(['kubeconfig', '--connection', 'prod', '--client', 'ci-bot', '--config', cfg]);
      assert.equal(kc.code, 0, kc.stderr);
      const file = join(dir, `kubeconfig-${i}`);
      writeFileSync(file, kc.stdout);
      kubeconfigs.push(file);
    }
    caPem = (await import('node:fs')).readFileSync(join(dir, 'state', 'tls', 'ca.pem'), 'utf8');
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await fixture?.close();
    await nats?.stop();
  });

  test('kubectl works through both edges and every event lands in ClickHouse once, with the right fields', async () => {
    const cache = join(dir, 'kube-cache');
    const before = fixture.requests.length;
    const pods = await kubectl(kubeconfigs[0]!, cache, ['get', 'pods', '-n', 'default', '-o', 'name']);
    assert.equal(pods.code, 0, pods.stderr);
    assert.match(pods.stdout, /^pod\//m);
    const pod = pods.stdout.trim().split('\n')[0]!.replace('pod/', '');
    const one = await kubectl(kubeconfigs[1]!, join(dir, 'kube-cache-1'), ['get', 'pod', pod, '-n', 'default', '-o', 'json']);
    assert.equal(one.code, 0, one.stderr);
    assert.equal((JSON.parse(one.stdout) as { metadata: { name: string } }).metadata.name, pod);

    const denied = await kubectl(kubeconfigs[1]!, join(dir, 'kube-cache-1'), ['get', 'secrets', '-n', 'default']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /Forbidden|forbidden/);
    assert.match(denied.stderr, /rule no-secrets/);
    assert.match(denied.stderr, /secrets are off limits/);

    // The upstream saw the gateway's credential and the machine identity, never the client's token.
    const forwarded = fixture.requests.slice(before).filter((r) => r.path.includes('/pods'));
    assert.ok(forwarded.length >= 2);
    for (const r of forwarded) {
      assert.equal(r.user?.startsWith('token:'), true, 'the fixture authenticated the gateway credential');
      assert.equal(r.headers['impersonate-user'], 'portcullis:ci-bot');
      assert.deepEqual([r.headers['impersonate-group']].flat(), ['portcullis:bots']);
      assert.ok(!fixture.requests.slice(before).some((x) => x.path.includes('/secrets')), 'a denied request never reaches the upstream');
    }

    // Every request through either edge: received + decided + completed rows, each exactly once.
    const rows = await eventually('audit rows for the pod get', async () => {
      const r = await chQuery(`SELECT * FROM audit_events FINAL WHERE resource = 'pods' AND name = '${pod}' AND type = 'request.received'`);
      return r.length > 0 ? r : undefined;
    });
    const received = rows[0]!;
    assert.equal(received.subject, 'ci-bot');
    assert.deepEqual(received.groups, ['bots']);
    assert.equal(received.client_id, 'ci-bot');
    assert.equal(received.verb, 'get');
    assert.equal(received.namespace, 'default');
    assert.equal(received.connection, 'prod');
    assert.equal(received.node_id, 'edge-1');
    const requestId = received.correlation_id;
    const all = await eventually('decided and completed rows', async () => {
      const r = await chQuery(`SELECT * FROM audit_events FINAL WHERE correlation_id = '${requestId}' ORDER BY ts_ms`);
      return r.length >= 3 ? r : undefined;
    });
    assert.deepEqual(all.map((r) => r.type).sort(), ['request.completed', 'request.decided', 'request.received']);
    const decided = all.find((r) => r.type === 'request.decided')!;
    assert.equal(decided.effect, 'allow');
    assert.equal(decided.rule_id, 'bots-read');
    const completed = all.find((r) => r.type === 'request.completed')!;
    assert.equal(completed.status, 200);
    assert.ok(Number(completed.bytes_out) > 0);
    assert.ok(completed.duration_ms >= 0 && completed.duration_ms < 30_000);

    const list = await chQuery(`SELECT * FROM audit_events FINAL WHERE resource = 'pods' AND verb = 'list' AND type = 'request.received'`);
    assert.ok(
      list.some((r) => r.node_id === 'edge-0'),
      'the list went through edge 0',
    );
    const deniedRows = await eventually('the denied decision', async () => {
      const r = await chQuery(`SELECT * FROM audit_events FINAL WHERE type = 'request.decided' AND rule_id = 'no-secrets'`);
      return r.length > 0 ? r : undefined;
    });
    assert.equal(deniedRows[0]!.effect, 'deny');

    // One row per event: no duplicates visible.
    const dup = await chQuery(`SELECT event_id, count() AS n FROM audit_events FINAL GROUP BY event_id HAVING n > 1`);
    assert.deepEqual(dup, []);
  });

  test('every response carries Audit-Id, and refusals are Kubernetes Status objects', async () => {
    const noToken = await edgeRequest(`${edgeUrls[0]}/k8s/prod/api/v1/namespaces/default/pods`, { ca: caPem });
    assert.equal(noToken.status, 401);
    assert.match(String(noToken.headers['audit-id']), /^[0-9a-f-]{36}$/);
    const status = JSON.parse(noToken.body) as { kind: string; code: number; reason: string };
    assert.deepEqual([status.kind, status.code, status.reason], ['Status', 401, 'Unauthorized']);

    const forged = await edgeRequest(`${edgeUrls[1]}/k8s/prod/api/v1/pods`, {
      ca: caPem,
      headers: { authorization: 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' },
    });
    assert.equal(forged.status, 401);

    const unknown = await edgeRequest(`${edgeUrls[1]}/k8s/nope/api/v1/pods`, { ca: caPem });
    assert.equal(unknown.status, 404);
    assert.equal((JSON.parse(unknown.body) as { kind: string }).kind, 'Status');
  });

  test('NATS stopped: kubectl gets 503 Status and nothing reaches the upstream without a decision and an acked event', async () => {
    const cache = join(dir, 'kube-cache-nats');
    const warm = await kubectl(kubeconfigs[0]!, cache, ['get', 'pods', '-n', 'default']);
    assert.equal(warm.code, 0, warm.stderr);
    await nats.stop();
    const forwardedBefore = fixture.requests.length;
    for (const i of [0, 1]) {
      const r = await kubectl(kubeconfigs[i]!, cache, ['get', 'pods', '-n', 'kube-system']);
      assert.notEqual(r.code, 0, 'no access without a decision');
      assert.match(r.stderr, /decision service unavailable|ServiceUnavailable|service unavailable/i);
    }
    assert.equal(fixture.requests.length, forwardedBefore, 'nothing was forwarded while NATS was down');
    await nats.restart();
    // After NATS returns, the edges recover on their own.
    await eventually(
      'kubectl to succeed again after NATS returns',
      async () => {
        const r = await kubectl(kubeconfigs[0]!, cache, ['get', 'pods', '-n', 'kube-system']);
        return r.code === 0 ? r : undefined;
      },
      30_000,
    );
  });

  void REPO_ROOT;
});
