/**
 * `npm run cluster` as a user runs it: three edges behind nginx, two of each other role, NATS,
 * Redis, ClickHouse, the API-server fixture, an OTLP receiver. Real kubectl through the load
 * balancer reaches all three edges (audit rows' node_id); one request's trace has spans from the
 * edge, policy and audit roles; every role serves /metrics and /readyz; Ctrl-C stops everything.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { trackProcess, untrackProcess } from '../harness/process-reaper.js';
import { kubectl, REPO_ROOT, runPortcullis, tempDir } from '../support/portcullis-process.js';
import { edgeRequest } from '../support/gateway-https.js';
import { eventually } from '../support/eventually.js';

interface ClusterInfo {
  url: string;
  connection: string;
  clientConfig: string;
  operatorConfig: string;
  caFile: string;
  clickHouseUrl: string;
  clickHouseDatabase: string;
  tracesFile: string;
  processes: { role: string; nodeId: string; config: string; observabilityUrl: string; pid: number }[];
}

interface OtlpSpan {
  service: string;
  name: string;
  traceId: string;
  attributes: Record<string, string>;
}

/** Every span the receiver wrote, with its process's service.name. */
function readSpans(file: string): OtlpSpan[] {
  type Attr = { key: string; value: { stringValue?: string; intValue?: number | string } };
  type Export = { resourceSpans: { resource: { attributes: Attr[] }; scopeSpans: { spans: { name: string; traceId: string; attributes?: Attr[] }[] }[] }[] };
  const attrs = (list: Attr[] | undefined): Record<string, string> =>
    Object.fromEntries((list ?? []).map((a) => [a.key, String(a.value.stringValue ?? a.value.intValue ?? '')]));
  const out: OtlpSpan[] = [];
  for (const line of readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')) {
    for (const rs of (JSON.parse(line) as Export).resourceSpans) {
      const service = attrs(rs.resource.attributes)['service.name'] ?? '';
      for (const ss of rs.scopeSpans) for (const s of ss.spans) out.push({ service, name: s.name, traceId: s.traceId, attributes: attrs(s.attributes) });
    }
  }
  return out;
}

describe('npm run cluster: three edges behind nginx, two of each role', { timeout: 300_000 }, () => {
  const dir = tempDir('local-cluster');
  let child: ChildProcess;
  let info: ClusterInfo;
  let stderr = '';
  let kubeconfig = '';

  const chQuery = async <T>(sql: string): Promise<T[]> => {
    const res = await fetch(`${info.clickHouseUrl}/?database=${info.clickHouseDatabase}`, { method: 'POST', body: `${sql} FORMAT JSON` });
    const text = await res.text();
    if (!res.ok) throw new Error(`ClickHouse ${res.status}: ${text.slice(0, 300)}`);
    return (JSON.parse(text) as { data: T[] }).data;
  };

  before(async () => {
    child = spawn(
      process.execPath,
      [join(REPO_ROOT, 'dist/deploy/local-cluster/local-cluster-main.js'), '--state-dir', join(dir, 'cluster'), '--port', '0', '--json'],
      {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    trackProcess(child);
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString('utf8');
        const l = out.split('\n').find((x) => x.startsWith('{"ready":true'));
        if (l !== undefined) resolve(l);
      });
      child.once('exit', (code) => reject(new Error(`npm run cluster exited (${code}) before it was ready:\n${stderr.slice(-4000)}`)));
    });
    info = JSON.parse(line) as ClusterInfo;
    const kc = await runPortcullis(['kubeconfig', '--connection', info.connection, '--client', 'ci-bot', '--config', info.clientConfig]);
    assert.equal(kc.code, 0, kc.stderr);
    assert.match(kc.stdout, new RegExp(`server: ${info.url.replace(/\./g, '\\.')}/k8s/${info.connection}`), 'the kubeconfig points at the load balancer');
    kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, kc.stdout);
  });

  after(async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    untrackProcess(child);
  });

  test('the cluster has 3 edges and 2 policy, approval and audit processes, each ready with /metrics', async () => {
    const count = (role: string): number => info.processes.filter((p) => p.role === role).length;
    assert.deepEqual([count('edge'), count('policy'), count('approval'), count('audit')], [3, 2, 2, 2]);
    for (const p of info.processes) {
      const ready = await fetch(`${p.observabilityUrl}/readyz`);
      const body = (await ready.json()) as { ready: boolean; checks: Record<string, string> };
      assert.equal(ready.status, 200, `${p.nodeId} /readyz: ${JSON.stringify(body)}`);
      assert.equal(body.checks['bus'], 'ok');
      assert.equal(body.checks['jetstream'], 'ok');
      if (p.role === 'audit') assert.equal(body.checks['clickhouse'], 'ok');
      const metrics = await (await fetch(`${p.observabilityUrl}/metrics`)).text();
      assert.match(metrics, new RegExp(`^portcullis_build_info\\{version="[^"]+",role="${p.role}"\\} 1$`, 'm'));
      // The approval role reads its pending projection at scrape time (nothing is pending yet).
      if (p.role === 'approval') assert.match(metrics, /^portcullis_approvals_pending 0$/m);
    }
  });

  test('kubectl through the load balancer: requests spread over all three edges, each recorded in ClickHouse', async () => {
    const cache = join(dir, 'kube-cache');
    for (let i = 0; i < 4; i++) {
      const r = await kubectl(kubeconfig, cache, ['get', 'pods', '-A', '-o', 'name']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^pod\//m);
    }
    // The example policy allows ConfigMap writes only in staging: a denial names the rule.
    const denied = await kubectl(kubeconfig, cache, ['create', 'configmap', 'x', '-n', 'default', '--from-literal=a=b']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /default-deny/);

    const nodes = await eventually(
      'request.received rows from all three edges',
      async () => {
        const rows = await chQuery<{ node_id: string }>(`SELECT DISTINCT node_id FROM audit_events FINAL WHERE type = 'request.received'`);
        const ids = rows.map((r) => r.node_id).sort();
        return ids.length === 3 ? ids : undefined;
      },
      30_000,
    );
    assert.deepEqual(nodes, ['edge-1', 'edge-2', 'edge-3']);

    // The edges' own counters add up to what kubectl did.
    let allowed = 0;
    let acked = 0;
    for (const p of info.processes.filter((x) => x.role === 'edge')) {
      const text = await (await fetch(`${p.observabilityUrl}/metrics`)).text();
      for (const m of text.matchAll(/^portcullis_edge_requests_total\{connection="sandbox",verb="list",decision="allow"\} (\d+)$/gm)) allowed += Number(m[1]);
      for (const m of text.matchAll(/^portcullis_edge_audit_ack_duration_seconds_count (\d+)$/gm)) acked += Number(m[1]);
    }
    assert.ok(allowed >= 4, `4 pod lists counted as allowed over the edges (counted ${allowed})`);
    // Every admitted request waited for the log's ack of its admission events, and the wait was measured.
    assert.ok(acked >= allowed, `audit ack waits observed for every admitted request (${acked} of ${allowed})`);
  });

  test('one request, one trace: spans from the edge, the policy role and the audit role', async () => {
    const tok = await runPortcullis(['token', '--client', 'ci-bot', '--config', info.clientConfig]);
    assert.equal(tok.code, 0, tok.stderr);
    const res = await edgeRequest(`${info.url}/k8s/${info.connection}/api/v1/namespaces/default/pods`, {
      ca: readFileSync(info.caFile, 'utf8'),
      headers: { authorization: `Bearer ${tok.stdout.trim()}` },
    });
    assert.equal(res.status, 200, res.body);
    const auditId = String(res.headers['audit-id']);
    const trace = await eventually(
      `the trace of request ${auditId} with spans from edge, policy and audit`,
      () => {
        const spans = readSpans(info.tracesFile);
        const root = spans.find((s) => s.name === 'edge request' && s.attributes['portcullis.audit_id'] === auditId);
        if (root === undefined) return undefined;
        const inTrace = spans.filter((s) => s.traceId === root.traceId);
        const services = new Set(inTrace.map((s) => s.service));
        // Complete once every event the edge published has its audit write (writers batch, so they land over time).
        const writes = inTrace.filter((s) => s.name === 'audit write').length;
        const published = inTrace.filter((s) => s.name.startsWith('jetstream publish')).length;
        return ['portcullis-edge', 'portcullis-policy', 'portcullis-audit'].every((x) => services.has(x)) && writes >= published ? inTrace : undefined;
      },
      30_000,
    );
    // A token's first request also publishes identity.authenticated; the request's own spans are the rest.
    const names = (service: string): string[] =>
      [...new Set(trace.filter((s) => s.service === service).map((s) => s.name))].filter((n) => !n.includes('.identity.')).sort();
    // The admitting events go out group-committed (audit._batch.events) or one by one, depending on
    // what else the edge handled in the same turn; the completion follows the response.
    const edge = names('portcullis-edge');
    for (const n of ['edge request', 'nats request portcullis.policy.decide', 'upstream sandbox'])
      assert.ok(edge.includes(n), `edge span ${n} in ${edge.join(', ')}`);
    assert.ok(
      edge.every((n) => !n.startsWith('jetstream publish') || /^jetstream publish audit\.(_batch\.events|sandbox\.request\.\w+)$/.test(n)),
      edge.join(', '),
    );
    assert.ok(
      edge.some((n) => n === 'jetstream publish audit._batch.events' || n === 'jetstream publish audit.sandbox.request.received'),
      'the admitting events were published',
    );
    assert.ok(edge.includes('jetstream publish audit.sandbox.request.completed'), 'the completion was published');
    assert.deepEqual(names('portcullis-policy'), ['nats serve portcullis.policy.decide']);
    assert.deepEqual(names('portcullis-audit'), ['audit write']);
    assert.equal(
      trace.filter((s) => s.name === 'audit write').length,
      trace.filter((s) => s.name.startsWith('jetstream publish')).length,
      'every message the edge published (a batch or single events) was written',
    );
  });

  test("NATS: each role logs in as its own user and stayed within its permissions; only the operator's user pushes policy", async () => {
    for (const p of info.processes) {
      const bus = (parse(readFileSync(p.config, 'utf8')) as { bus: { nats: { user?: string } } }).bus.nats;
      assert.equal(bus.user, `portcullis-${p.role}`, p.nodeId);
    }
    // Everything the tests above made the cluster do, it did without one refused publish or subscription.
    const natsLog = join(dir, 'cluster', 'nats', 'nats-server.log');
    assert.doesNotMatch(readFileSync(natsLog, 'utf8'), /Violation/);
    const policy = join(REPO_ROOT, 'examples', 'policy.yaml');
    const asEdge = await runPortcullis(['policy', 'push', policy, '--config', info.clientConfig]);
    assert.notEqual(asEdge.code, 0, asEdge.stdout);
    assert.match(asEdge.stderr, /Permissions Violation/);
    // The CLI connects as the operator: the edge's user may not even open the operator's inbox.
    assert.match(readFileSync(natsLog, 'utf8'), /Violation - User "portcullis-edge"/);
    const asOperator = await runPortcullis(['policy', 'push', policy, '--config', info.operatorConfig]);
    assert.equal(asOperator.code, 0, asOperator.stderr);
  });

  test('Ctrl-C stops every process of the cluster', async () => {
    const pids = info.processes.map((p) => p.pid);
    child.kill('SIGINT');
    await new Promise((r) => child.once('exit', r));
    await eventually('every cluster process to be gone', () => Promise.resolve(pids.every((pid) => !alive(pid)) ? true : undefined), 15_000);
    const lb = await fetch(`${info.processes[0]!.observabilityUrl}/healthz`).then(
      () => 'answered',
      () => 'refused',
    );
    assert.equal(lb, 'refused');
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
