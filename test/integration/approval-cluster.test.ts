/**
 * Just-in-time approval in cluster mode, as separate processes on a real nats-server (JetStream)
 * and redis-server: one policy process, two approval processes (each with the Slack worker and
 * its own HTTPS listener), two edges, the Kubernetes API-server fixture upstream and a local fake
 * Slack Web API. Real kubectl through the edges; Slack callbacks genuinely signed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startKubeApiServer, type KubeApiServer } from '../fixture/kube-apiserver/index.js';
import { freePort, startNats, startRedis, type TestNats, type TestRedis } from '../harness/services.js';
import { kubectl, runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from '../support/portcullis-process.js';
import { edgeRequest, eventually } from '../support/gateway-https.js';
import { startFakeSlack, type FakeSlack } from '../support/fake-slack.js';
import { connectNats } from '../../libs/bus/src/index.js';
import { EventType, Subjects } from '../../libs/contracts/src/index.js';

const SIGNING_SECRET = 'test-signing-secret-0123456789';
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

interface Endpoints {
  edges: string[];
  approvals: string[];
}

describe('approvals in cluster mode: two edges, two approval processes, Redis, NATS, fake Slack', { timeout: 600_000 }, () => {
  let nats: TestNats;
  let redis: TestRedis;
  let fixture: KubeApiServer;
  let slack: FakeSlack;
  const dir = tempDir('approvals');
  const procs = new Map<string, PortcullisProcess>();
  const configs = new Map<string, string>();
  const ep: Endpoints = { edges: [], approvals: [] };
  let caPem = '';
  const kubeconfigs = new Map<string, string>();
  const tokens = new Map<string, string>();

  const start = async (name: string, role: string): Promise<Record<string, unknown>> => {
    const p = startPortcullis(['serve', role, '--config', configs.get(name)!]);
    procs.set(name, p);
    return JSON.parse(await p.waitFor(/"ready":true/, 60_000)) as Record<string, unknown>;
  };

  /** kubectl as `client` through edge `edge` (0 = A, 1 = B). */
  const kube = (client: string, edge: number, args: string[]) => kubectl(kubeconfigs.get(`${client}-${edge}`)!, join(dir, `cache-${client}-${edge}`), args);

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

  /** The approvers' REST API on approval process `i`. */
  const api = async (i: number, method: string, path: string, client: string | undefined, body?: unknown) => {
    const headers: Record<string, string> = client === undefined ? {} : { authorization: `Bearer ${await token(client)}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await edgeRequest(`${ep.approvals[i]}${path}`, { method, headers, ca: caPem, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    return { status: res.status, body: res.body === '' ? {} : (JSON.parse(res.body) as Record<string, unknown>) };
  };

  /** A raw request through an edge as `client`. */
  const raw = async (client: string, edge: number, method: string, path: string, headers: Record<string, string> = {}) =>
    edgeRequest(`${ep.edges[edge]}/k8s/prod${path}`, { method, ca: caPem, headers: { authorization: `Bearer ${await token(client)}`, ...headers } });

  const approvalIdIn = (text: string): string => {
    const m = /approval ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/.exec(text);
    assert.ok(m, `no approval id in: ${text}`);
    return m[1]!;
  };

  const deletes = (path: string): number => fixture.requests.filter((r) => r.method === 'DELETE' && r.path.split('?')[0] === path).length;

  const putConfigMap = (namespace: string, name: string): void => {
    fixture.store.put('configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { k: 'v' } });
  };

  const click = (i: number, approvalId: string, action: 'approve' | 'deny', userId: string, reason?: string) =>
    slack.send(`${ep.approvals[i]}/slack/interactions`, slack.interaction({ approvalId, action, userId, signingSecret: SIGNING_SECRET, ...(reason !== undefined ? { reason } : {}) }), caPem);

  before(async () => {
    [nats, redis, fixture, slack] = await Promise.all([
      startNats({ jetstream: true }),
      startRedis(),
      startKubeApiServer(),
      startFakeSlack({ botToken: BOT_TOKEN, emails: { U0CAROL: 'carol@example.com' } }),
    ]);
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
        pendingTtl: '20s',
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
    // The first start creates the development CA and issuer key in the shared state dir.
    await start('policy', 'policy');
    const [a1, a2] = await Promise.all([start('approval-1', 'approval'), start('approval-2', 'approval')]);
    ep.approvals.push(String(a1['approvalUrl']), String(a2['approvalUrl']));
    const [e1, e2] = await Promise.all([start('edge-a', 'edge'), start('edge-b', 'edge')]);
    ep.edges.push(String(e1['url']), String(e2['url']));
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
  });

  after(async () => {
    await Promise.all([...procs.values()].map((p) => p.stop()));
    await Promise.all([fixture?.close(), slack?.close(), nats?.stop(), redis?.stop()]);
  });

  test('kubectl delete namespace is held on edge A, a Slack Approve on the OTHER approval process releases it, and it is deleted once', async () => {
    const before = deletes('/api/v1/namespaces/staging');
    const postsBefore = slack.messages.length;
    const held = kube('ci-bot', 0, ['delete', 'namespace', 'staging']);
    const post = await eventually('the Slack message', async () => slack.messages.slice(postsBefore).find((m) => m.text.includes('namespaces staging')));
    const id = String(post.metadata?.event_payload?.['approval_id']);
    const call = slack.calls.find((c) => c.method === 'chat.postMessage' && (c.body['metadata'] as { event_payload?: { approval_id?: string } })?.event_payload?.approval_id === id)!;
    assert.equal(call.body['channel'], '#approvals');
    const text = JSON.stringify(call.body['blocks']);
    for (const want of ['ci-bot', 'delete namespaces staging', 'delete-namespace-needs-sre', 'portcullis_approve', 'portcullis_deny', id, 'expires']) {
      assert.ok(text.includes(want), `the Block Kit message shows ${want}`);
    }
    assert.equal(deletes('/api/v1/namespaces/staging'), before, 'nothing reached the upstream while held');

    // No reason: the rule requires one; the clicking user is told, nothing is decided.
    const noReason = await click(1, id, 'approve', 'U0ALICE');
    assert.equal(noReason.status, 200);
    await eventually('the ephemeral answer', async () => slack.responses.find((r) => String(r['text']).includes('requires a reason')));
    const ok = await click(1, id, 'approve', 'U0ALICE', 'INC-4711 cleanup');
    assert.equal(ok.status, 200);
    assert.ok(ok.ms < 3000, `answered within 3 s (${Math.round(ok.ms)} ms)`);

    const res = await held;
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /namespace "staging" deleted/);
    assert.equal(deletes('/api/v1/namespaces/staging'), before + 1, 'deleted exactly once');
    const forwarded = fixture.requests.filter((r) => r.method === 'DELETE' && r.path.startsWith('/api/v1/namespaces/staging')).at(-1)!;
    assert.equal(forwarded.headers['impersonate-user'], 'portcullis:ci-bot');

    // The Slack message is updated: approved by alice with her reason, buttons gone.
    const updated = await eventually('the chat.update', async () => {
      const m = slack.messagesFor(id)[0];
      return m !== undefined && m.updates > 0 && JSON.stringify(m.blocks).includes('Approved') ? m : undefined;
    });
    assert.ok(JSON.stringify(updated.blocks).includes('INC-4711 cleanup'));
    assert.ok(!JSON.stringify(updated.blocks).includes('portcullis_approve'));
    assert.equal(slack.messagesFor(id).length, 1);
  });

  test('timeout, then retries through edge B: forwarded after approval, refused after denial, refused after expiry', async () => {
    for (const name of ['t-approved', 't-denied', 't-expired']) putConfigMap('default', name);
    const pending = async (name: string): Promise<string> => {
      const r = await kube('ci-bot', 0, ['delete', 'configmap', name, '-n', 'default']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /approval pending/);
      assert.match(r.stderr, /X-Portcullis-Approval: /);
      assert.match(r.stderr, /approvals approve/);
      return approvalIdIn(r.stderr);
    };
    // 1. approved while nobody waits; the same command through edge B goes through.
    const a = await pending('t-approved');
    const again = await kube('ci-bot', 1, ['delete', 'configmap', 't-approved', '-n', 'default']);
    assert.notEqual(again.code, 0);
    assert.equal(approvalIdIn(again.stderr), a, 'an identical request finds the same approval through any edge');
    const cli = await runPortcullis(['approvals', 'approve', a, '--as-client', 'sre-alice', '--config', configs.get('approval-1')!]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /granted/);
    const through = await kube('ci-bot', 1, ['delete', 'configmap', 't-approved', '-n', 'default']);
    assert.equal(through.code, 0, through.stderr);
    assert.equal(deletes('/api/v1/namespaces/default/configmaps/t-approved'), 1);

    // 2. denied: the retry gets the approver's reason.
    const d = await pending('t-denied');
    const deny = await runPortcullis(['approvals', 'deny', d, '--reason', 'not during the freeze', '--as-client', 'sre-alice', '--config', configs.get('approval-1')!]);
    assert.equal(deny.code, 0, deny.stderr);
    const refused = await kube('ci-bot', 1, ['delete', 'configmap', 't-denied', '-n', 'default']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /denied by alice: not during the freeze/);
    assert.equal(deletes('/api/v1/namespaces/default/configmaps/t-denied'), 0);

    // 3. expired: nobody decides within approval.pendingTtl (20 s).
    const e = await pending('t-expired');
    const expired = await eventually(
      'the approval to expire',
      async () => {
        const r = await kube('ci-bot', 1, ['delete', 'configmap', 't-expired', '-n', 'default']);
        return /expired/.test(r.stderr) ? r : undefined;
      },
      45_000,
    );
    assert.notEqual(expired.code, 0);
    assert.equal(approvalIdIn(expired.stderr), e);
    const late = await api(0, 'POST', `/approvals/${e}/approve`, 'sre-alice', { reason: 'too late' });
    assert.equal(late.status, 409);
    assert.equal(deletes('/api/v1/namespaces/default/configmaps/t-expired'), 0);
  });

  test('X-Portcullis-Approval must match the exact request: an approval for A never admits B', async () => {
    putConfigMap('default', 'hdr-a');
    putConfigMap('default', 'hdr-b');
    const first = await raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/hdr-a');
    assert.equal(first.status, 403);
    const id = approvalIdIn(first.body);
    assert.equal((await api(0, 'POST', `/approvals/${id}/approve`, 'sre-alice', {})).status, 200);
    const cases: { name: string; client: string; method: string; path: string; header: string; code: number; message: RegExp }[] = [
      { name: 'another object', client: 'ci-bot', method: 'DELETE', path: '/api/v1/namespaces/default/configmaps/hdr-b', header: id, code: 403, message: /different request/ },
      { name: 'another identity', client: 'sre-bob', method: 'DELETE', path: '/api/v1/namespaces/default/configmaps/hdr-a', header: id, code: 403, message: /different request/ },
      { name: 'another query', client: 'ci-bot', method: 'DELETE', path: '/api/v1/namespaces/default/configmaps/hdr-a?gracePeriodSeconds=0', header: id, code: 403, message: /different request/ },
      { name: 'unknown id', client: 'ci-bot', method: 'DELETE', path: '/api/v1/namespaces/default/configmaps/hdr-a', header: '01900000-0000-7000-8000-000000000000', code: 403, message: /no approval/ },
      { name: 'not a uuid', client: 'ci-bot', method: 'DELETE', path: '/api/v1/namespaces/default/configmaps/hdr-a', header: 'portcullis.approval.gate', code: 400, message: /must be an approval id/ },
    ];
    for (const c of cases) {
      const res = await raw(c.client, 1, c.method, c.path, { 'x-portcullis-approval': c.header });
      assert.equal(res.status, c.code, `${c.name}: ${res.body}`);
      assert.match((JSON.parse(res.body) as { message: string }).message, c.message, c.name);
    }
    assert.equal(deletes('/api/v1/namespaces/default/configmaps/hdr-b'), 0);
    const ok = await raw('ci-bot', 1, 'DELETE', '/api/v1/namespaces/default/configmaps/hdr-a', { 'x-portcullis-approval': id });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(deletes('/api/v1/namespaces/default/configmaps/hdr-a'), 1);
  });

  test('a once-grant admits exactly one of 50 concurrent identical requests', async () => {
    fixture.store.put('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'race' } });
    const path = '/api/v1/namespaces/race';
    // Approve only once all 50 are decided (and so held): a request arriving after the grant was
    // used would rightly open a new approval instead.
    const watcher = await connectNats({ servers: [nats.url], name: 'race-watcher' });
    let decided = 0;
    const sub = watcher.bus.subscribe(Subjects.auditEvent('prod', EventType.RequestDecided), () => decided++);
    await watcher.flush();
    const all = Promise.all(Array.from({ length: 50 }, (_, i) => raw('ci-bot', i % 2, 'DELETE', path)));
    await eventually('50 decided requests', async () => (decided >= 50 ? true : undefined));
    await sub.unsubscribe();
    await watcher.close();
    const pendingList = await eventually('one approval for the 50 requests', async () => {
      const list = await api(0, 'GET', '/approvals', 'sre-alice');
      const mine = (list.body['approvals'] as { id: string; what: string }[]).filter((x) => x.what.includes('namespaces race'));
      return mine.length > 0 ? mine : undefined;
    });
    assert.equal(pendingList.length, 1, 'identical requests share one approval');
    const approve = await api(1, 'POST', `/approvals/${pendingList[0]!.id}/approve`, 'sre-alice', { reason: 'race test' });
    assert.equal(approve.status, 200, JSON.stringify(approve.body));
    const results = await all;
    const ok = results.filter((r) => r.status === 200);
    assert.equal(ok.length, 1, `exactly one forwarded: ${results.map((r) => r.status).join(',')}`);
    for (const r of results.filter((x) => x.status !== 200)) {
      assert.equal(r.status, 403);
      assert.match(r.body, /already used it/);
    }
    assert.equal(deletes(path), 1);
  });

  test('who may approve: never the requester, only approver groups, a quorum of two distinct approvers (Slack by email too)', async () => {
    const held = kube('sre-bob', 0, ['delete', 'secret', 'db-credentials', '-n', 'prod']);
    const id = await eventually('the approval', async () => {
      const list = await api(0, 'GET', '/approvals', 'sre-alice');
      return (list.body['approvals'] as { id: string; what: string }[]).find((x) => x.what.includes('secrets db-credentials'))?.id;
    });
    const self = await api(0, 'POST', `/approvals/${id}/approve`, 'sre-bob', { reason: 'mine' });
    assert.deepEqual([self.status, self.body['error']], [403, 'self_approval']);
    const outsider = await api(1, 'POST', `/approvals/${id}/approve`, 'dev-dave', {});
    assert.deepEqual([outsider.status, outsider.body['error']], [403, 'not_an_approver']);
    const anonymous = await api(1, 'POST', `/approvals/${id}/approve`, undefined, {});
    assert.equal(anonymous.status, 401);
    const mallory = await click(0, id, 'approve', 'U0MALLORY');
    assert.equal(mallory.status, 200);
    await eventually('mallory told no', async () => slack.responses.find((r) => String(r['text']).includes('mallory is not in an approver group')));
    const first = await api(0, 'POST', `/approvals/${id}/approve`, 'sre-alice', { reason: 'one' });
    assert.equal(first.status, 200);
    assert.equal(first.body['state'], 'pending', 'one of two approvals');
    const twice = await api(1, 'POST', `/approvals/${id}/approve`, 'sre-alice', { reason: 'one again' });
    assert.deepEqual([twice.status, twice.body['error']], [409, 'already_approved']);
    // The second approver clicks in Slack; her Slack user is mapped by email (users.info).
    assert.equal((await click(1, id, 'approve', 'U0CAROL', 'two')).status, 200);
    const res = await held;
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /secret "db-credentials" deleted/);
    assert.equal(deletes('/api/v1/namespaces/prod/secrets/db-credentials'), 1);
    const final = await api(0, 'GET', `/approvals/${id}`, 'sre-alice');
    assert.deepEqual((final.body['approvals'] as { subject: string }[]).map((a) => a.subject), ['alice', 'carol']);
  });

  test('Slack callbacks: forged, stale and replayed signatures are refused (a table)', async () => {
    putConfigMap('default', 'sig');
    const r = await raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/sig');
    const id = approvalIdIn(r.body);
    const now = Math.floor(Date.now() / 1000);
    const good = () => slack.interaction({ approvalId: id, action: 'approve', userId: 'U0ALICE', signingSecret: SIGNING_SECRET });
    const cases: { name: string; make: () => { body: string; headers: Record<string, string> }; status: number; error: string }[] = [
      { name: 'signed with another secret', make: () => slack.interaction({ approvalId: id, action: 'approve', userId: 'U0ALICE', signingSecret: 'attacker-secret' }), status: 401, error: 'signature_mismatch' },
      { name: 'body changed after signing', make: () => { const g = good(); return { ...g, body: g.body.replace('U0ALICE', 'U0ALICX') }; }, status: 401, error: 'signature_mismatch' },
      { name: 'timestamp changed after signing', make: () => { const g = good(); return { ...g, headers: { ...g.headers, 'x-slack-request-timestamp': String(now - 1) } }; }, status: 401, error: 'signature_mismatch' },
      { name: 'stale: 6 minutes old, correctly signed', make: () => slack.interaction({ approvalId: id, action: 'approve', userId: 'U0ALICE', signingSecret: SIGNING_SECRET, timestampSec: now - 360 }), status: 401, error: 'signature_stale' },
      { name: 'from the future: 6 minutes ahead', make: () => slack.interaction({ approvalId: id, action: 'approve', userId: 'U0ALICE', signingSecret: SIGNING_SECRET, timestampSec: now + 360 }), status: 401, error: 'signature_stale' },
      { name: 'no signature', make: () => { const g = good(); const { 'x-slack-signature': _s, ...h } = g.headers; return { ...g, headers: h }; }, status: 401, error: 'signature_missing' },
      { name: 'no timestamp', make: () => { const g = good(); const { 'x-slack-request-timestamp': _t, ...h } = g.headers; return { ...g, headers: h }; }, status: 401, error: 'signature_missing' },
      { name: 'v1 scheme', make: () => { const g = good(); return { ...g, headers: { ...g.headers, 'x-slack-signature': g.headers['x-slack-signature']!.replace('v0=', 'v1=') } }; }, status: 401, error: 'signature_malformed' },
      { name: 'truncated signature', make: () => { const g = good(); return { ...g, headers: { ...g.headers, 'x-slack-signature': g.headers['x-slack-signature']!.slice(0, 40) } }; }, status: 401, error: 'signature_malformed' },
      { name: 'uppercase hex (not what Slack sends)', make: () => { const g = good(); return { ...g, headers: { ...g.headers, 'x-slack-signature': g.headers['x-slack-signature']!.toUpperCase() } }; }, status: 401, error: 'signature_malformed' },
    ];
    for (const c of cases) {
      const res = await slack.send(`${ep.approvals[1]}/slack/interactions`, c.make(), caPem);
      assert.equal(res.status, c.status, `${c.name}: ${res.body}`);
      assert.equal((JSON.parse(res.body) as { error: string }).error, c.error, c.name);
    }
    const still = await api(0, 'GET', `/approvals/${id}`, 'sre-alice');
    assert.equal(still.body['state'], 'pending', 'no refused callback decided anything');
    // A genuine deny, then the very same signed request again (to either process): a replay.
    const genuine = slack.interaction({ approvalId: id, action: 'deny', userId: 'U0ALICE', reason: 'no', signingSecret: SIGNING_SECRET });
    assert.equal((await slack.send(`${ep.approvals[1]}/slack/interactions`, genuine, caPem)).status, 200);
    for (const i of [1, 0]) {
      const replay = await slack.send(`${ep.approvals[i]}/slack/interactions`, genuine, caPem);
      assert.equal(replay.status, 409, 'replay refused');
    }
    await eventually('the denial', async () => ((await api(0, 'GET', `/approvals/${id}`, 'sre-alice')).body['state'] === 'denied' ? true : undefined));
  });

  test('Slack 429: the worker honours Retry-After and posts exactly once', async () => {
    putConfigMap('default', 'ratelimited');
    slack.rateLimit('chat.postMessage', 1, 1);
    const r = await raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/ratelimited');
    const id = approvalIdIn(r.body);
    const msg = await eventually('the post after the rate limit', async () => slack.messagesFor(id)[0]);
    const posts = slack.calls.filter((c) => c.method === 'chat.postMessage' && JSON.stringify(c.body['metadata']).includes(id));
    assert.deepEqual(posts.map((c) => c.status), [429, 200]);
    assert.ok(posts[1]!.at - posts[0]!.at >= 950, `waited for Retry-After (${posts[1]!.at - posts[0]!.at} ms)`);
    assert.equal(slack.messagesFor(id).length, 1);
    assert.ok(msg.ts !== '');
  });

  test('Redis flushed mid-way: the projection is rebuilt from JetStream; nothing pending or granted is lost', async () => {
    for (const name of ['flush-pending', 'flush-granted']) putConfigMap('default', name);
    const p = await raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/flush-pending');
    const pendingId = approvalIdIn(p.body);
    const g = await raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/flush-granted');
    const grantedId = approvalIdIn(g.body);
    assert.equal((await api(0, 'POST', `/approvals/${grantedId}/approve`, 'sre-alice', { reason: 'before the flush' })).status, 200);

    const client = new Redis(redis.url);
    await client.flushall();
    assert.equal(await client.dbsize(), 0);
    await client.quit();

    const list = await api(1, 'GET', '/approvals', 'sre-alice');
    assert.ok((list.body['approvals'] as { id: string }[]).some((a) => a.id === pendingId), 'the pending approval is back');
    const viaB = await raw('ci-bot', 1, 'DELETE', '/api/v1/namespaces/default/configmaps/flush-granted');
    assert.equal(viaB.status, 200, `the grant survived the flush: ${viaB.body}`);
    assert.equal(deletes('/api/v1/namespaces/default/configmaps/flush-granted'), 1);
    const again = await raw('ci-bot', 1, 'DELETE', '/api/v1/namespaces/default/configmaps/flush-pending');
    assert.equal(approvalIdIn(again.body), pendingId, 'the retry finds the same pending approval');
    // A used once-grant stays used after another flush.
    const c2 = new Redis(redis.url);
    await c2.flushall();
    await c2.quit();
    const used = await raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/flush-granted', { 'x-portcullis-approval': grantedId });
    assert.equal(used.status, 403);
    assert.match(used.body, /already used it/);
  });

  test('Slack worker SIGKILLed mid-send: after restart exactly one message per approval', async () => {
    putConfigMap('default', 'crash');
    const hold = slack.holdNextPost();
    const r = await raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/crash');
    const id = approvalIdIn(r.body);
    await hold.received;
    // Slack has the message; the worker holding the job dies before it learns the ts.
    await Promise.all([procs.get('approval-1')!.kill(), procs.get('approval-2')!.kill()]);
    hold.release();
    assert.equal(slack.messagesFor(id).length, 1);
    const [a1, a2] = await Promise.all([start('approval-1', 'approval'), start('approval-2', 'approval')]);
    assert.equal(String(a1['approvalUrl']), ep.approvals[0]);
    assert.equal(String(a2['approvalUrl']), ep.approvals[1]);
    // The stalled job runs again, finds the message in the channel history and records its ts:
    // the decision then updates that message (no second post).
    await eventually('the history lookup', async () => slack.calls.find((c) => c.method === 'conversations.history'), 30_000);
    assert.equal((await api(0, 'POST', `/approvals/${id}/approve`, 'sre-alice', {})).status, 200);
    await eventually('the update of the one message', async () => ((slack.messagesFor(id)[0]?.updates ?? 0) > 0 ? true : undefined), 30_000);
    assert.equal(slack.messagesFor(id).length, 1);
    const ids = slack.approvalIds();
    assert.equal(new Set(ids).size, ids.length, `one message per approval: ${ids.join(', ')}`);
  });
});
