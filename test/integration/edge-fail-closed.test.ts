/**
 * The edge pipeline's fail-closed rules, with the in-process bus, a real policy engine answering
 * over it and the API-server fixture as the upstream: no decision, no acked audit record, or a
 * deny → nothing reaches the upstream, and the client gets a Kubernetes Status saying why.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKubeApiServer, type KubeApiServer } from '@portcullis/kube-sandbox';
import { createInProcessBus, type BusHandle } from '@portcullis/bus';
import { decisionReply, decodeDecisionRequest, encodeDecisionReply, QueueGroups, Streams, Subjects } from '@portcullis/contracts';
import { evaluate, parsePolicy, type CompiledPolicy } from '@portcullis/policy-engine';
import { DevIssuer, TokenVerifier } from '@portcullis/identity';
import { loadOrCreateDevTls } from '@portcullis/tls';
import { silentLogger } from '@portcullis/common';
import { AuditPublisher, ConnectionRegistry, createUpstreamConnection, DecisionClient, EdgePipeline, EdgeServer } from '@portcullis/gateway';
import { edgeRequest } from '../support/gateway-https.js';
import { eventually } from '../support/eventually.js';
import { RecordingLog } from '../support/recording-log.js';

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: t, version: "v7" }
rules:
  - id: no-delete
    match: { verbs: [delete] }
    effect: deny
    message: nothing is deleted here
  - id: approve-create
    match: { verbs: [create] }
    effect: require_approval
    approval: { approverGroups: [sre] }
  - id: bots
    match: { groups: [bots] }
    effect: allow
`;

describe('edge pipeline fails closed', { timeout: 60_000 }, () => {
  let fixture: KubeApiServer;
  let handle: BusHandle;
  let log: RecordingLog;
  let server: EdgeServer;
  let url: string;
  let ca: string;
  let token: string;
  let policyServing = true;
  const dir = mkdtempSync(join(tmpdir(), 'edge-fail-closed-'));

  before(async () => {
    fixture = await startKubeApiServer({ requestLog: { max: 10_000 } });
    handle = createInProcessBus();
    await handle.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 0, duplicateWindowMs: 60_000, replicas: 1 });
    log = new RecordingLog(handle.log);
    const parsed = parsePolicy(POLICY);
    assert.ok(parsed.ok);
    const policy: CompiledPolicy = parsed.policy;
    handle.bus.serve(Subjects.policyDecide(), QueueGroups.policy, (msg) => {
      if (!policyServing) return new Promise<Uint8Array>(() => undefined); // a policy role that hangs
      const req = decodeDecisionRequest(msg.data);
      return encodeDecisionReply(decisionReply({ decision: evaluate(policy, req.identity!, req.attributes!, new Date()) }));
    });
    const tls = await loadOrCreateDevTls(join(dir, 'tls'), ['127.0.0.1', 'localhost']);
    ca = tls.caPem;
    const issuer = await DevIssuer.open({
      issuer: 'https://issuer.test/oidc/dev',
      audience: 'portcullis',
      tokenLifetimeMs: 300_000,
      maxTokenLifetimeMs: 3_600_000,
      clients: [{ id: 'bot', secret: 'bot-secret-123', groups: ['bots'], scopes: [] }],
      stateDir: dir,
    });
    token = (await issuer.issue({ clientId: 'bot', clientSecret: 'bot-secret-123' })).accessToken;
    const registry = new ConnectionRegistry([
      createUpstreamConnection({ name: 'k', type: 'kubernetes', server: fixture.url, caPem: fixture.caPem, token: fixture.token }),
      createUpstreamConnection({ name: 'dead', type: 'kubernetes', server: 'https://127.0.0.1:1', token: 'x' }),
    ]);
    const pipeline = new EdgePipeline({
      nodeId: 'edge-test',
      connections: registry,
      verifier: new TokenVerifier({
        issuers: [{ issuer: issuer.issuer, audiences: ['portcullis'], algorithms: ['ES256'], keys: { jwks: issuer.jwks() } }],
        maxTokenLifetimeMs: 3_600_000,
        clockSkewMs: 5_000,
      }),
      decisions: new DecisionClient(handle.bus, 300),
      audit: new AuditPublisher(log, 300, silentLogger),
      logger: silentLogger,
      upstreamTimeoutMs: 5_000,
    });
    server = new EdgeServer({ host: '127.0.0.1', port: 0, tls, pipeline, logger: silentLogger });
    const bound = await server.listen();
    url = `https://127.0.0.1:${bound.port}`;
  });

  after(async () => {
    server.closeAll();
    await server.close();
    await fixture.close();
    await handle.close();
  });

  beforeEach(() => {
    log.failing = false;
    policyServing = true;
    fixture.clearRequests();
  });

  const get = (path: string, method = 'GET', extra: Record<string, string | string[]> = {}) =>
    edgeRequest(`${url}${path}`, { ca, method, headers: { authorization: `Bearer ${token}`, ...extra } });
  const status = (body: string) => JSON.parse(body) as { kind: string; code: number; reason: string; message: string };

  test('allowed: forwarded with the gateway credential and impersonation; the client cannot choose its identity', async () => {
    const res = await get('/k8s/k/api/v1/namespaces/default/pods', 'GET', {
      'impersonate-user': 'admin',
      'Impersonate-Group': ['system:masters'],
      'x-remote-user': 'root',
    });
    assert.equal(res.status, 200, res.body);
    const auditId = String(res.headers['audit-id']);
    const forwarded = fixture.requests.filter((r) => r.path.startsWith('/api/v1/namespaces/default/pods'));
    assert.equal(forwarded.length, 1);
    const h = forwarded[0]!.headers;
    assert.equal(h['impersonate-user'], 'portcullis:bot');
    assert.deepEqual([h['impersonate-group']].flat(), ['portcullis:bots']);
    assert.equal(h['x-remote-user'], undefined);
    assert.equal(forwarded[0]!.user?.startsWith('token:'), true);
    assert.ok(!JSON.stringify(h).includes(token), 'the client token never reaches the upstream');
    // Audit: received (id = Audit-Id) and decided before forwarding; completed after, with bytes.
    const events = await eventually('the completion event', () => {
      // The token's first use also appends identity.authenticated under this request's id.
      const e = log.appended.filter((x) => x.correlationId === auditId && x.type.startsWith('request.'));
      return e.length === 3 ? e : undefined;
    });
    assert.deepEqual(
      events.map((e) => e.type),
      ['request.received', 'request.decided', 'request.completed'],
    );
    assert.equal(events[0]!.id, auditId);
    const completed = events[2]!.payload;
    assert.equal(completed.case, 'requestCompleted');
    assert.equal(completed.case === 'requestCompleted' && completed.value.status, 200);
    assert.ok(completed.case === 'requestCompleted' && completed.value.bytesOut === Buffer.byteLength(res.body));
  });

  test('policy silent: 503 "decision service unavailable", nothing forwarded', async () => {
    policyServing = false;
    const res = await get('/k8s/k/api/v1/pods');
    assert.equal(res.status, 503);
    const s = status(res.body);
    assert.equal(s.kind, 'Status');
    assert.match(s.message, /decision service unavailable/);
    assert.equal(fixture.requests.length, 0);
  });

  test('audit append not acknowledged: 503, nothing forwarded', async () => {
    log.failing = true;
    const res = await get('/k8s/k/api/v1/pods');
    assert.equal(res.status, 503);
    assert.match(status(res.body).message, /audit log unavailable/);
    assert.equal(fixture.requests.length, 0);
  });

  test('denied: 403 Status naming the rule and policy version, recorded, nothing forwarded', async () => {
    const res = await get('/k8s/k/api/v1/namespaces/default/pods/x', 'DELETE');
    assert.equal(res.status, 403);
    const s = status(res.body);
    assert.equal(s.reason, 'Forbidden');
    assert.match(s.message, /rule no-delete/);
    assert.match(s.message, /policy v7/);
    assert.match(s.message, /nothing is deleted here/);
    assert.equal(fixture.requests.length, 0);
    const auditId = String(res.headers['audit-id']);
    assert.ok(log.appended.some((e) => e.correlationId === auditId && e.type === 'request.decided'));
  });

  test('require_approval without an approval service: 403, nothing forwarded', async () => {
    const res = await get('/k8s/k/api/v1/namespaces/default/configmaps', 'POST', { 'content-type': 'application/json' });
    assert.equal(res.status, 403);
    assert.match(status(res.body).message, /requires approval by rule approve-create/);
    assert.equal(fixture.requests.length, 0);
  });

  test('upstream unreachable: 502 Status', async () => {
    const res = await get('/k8s/dead/api/v1/pods');
    assert.equal(res.status, 502);
    assert.equal(status(res.body).kind, 'Status');
    assert.match(status(res.body).message, /upstream dead unreachable/);
  });

  test('refusals before a decision, each a Status with an Audit-Id, none forwarded', async () => {
    const cases: { name: string; path: string; auth?: string; code: number }[] = [
      { name: 'no token', path: '/k8s/k/api/v1/pods', auth: '', code: 401 },
      { name: 'basic auth', path: '/k8s/k/api/v1/pods', auth: 'Basic YTpi', code: 401 },
      { name: 'garbage token', path: '/k8s/k/api/v1/pods', auth: 'Bearer abc.def.ghi', code: 401 },
      { name: 'dot-dot segment', path: '/k8s/k/api/v1/namespaces/../secrets', code: 400 },
      { name: 'encoded slash', path: '/k8s/k/api/v1/namespaces/default%2fsecrets', code: 400 },
      { name: 'double slash', path: '/k8s/k/api//v1/pods', code: 400 },
      { name: 'unknown connection', path: '/k8s/nope/api/v1/pods', code: 404 },
      { name: 'http route to a k8s connection', path: '/http/k/anything', code: 404 },
    ];
    for (const c of cases) {
      const headers: Record<string, string> = c.auth === undefined ? { authorization: `Bearer ${token}` } : c.auth ? { authorization: c.auth } : {};
      const res = await edgeRequest(`${url}${c.path}`, { ca, headers });
      assert.equal(res.status, c.code, `${c.name}: ${res.body}`);
      assert.match(String(res.headers['audit-id']), /^[0-9a-f-]{36}$/, c.name);
      if (c.path.startsWith('/k8s/')) assert.equal(status(res.body).kind, 'Status', c.name);
    }
    assert.equal(fixture.requests.length, 0);
  });
});
