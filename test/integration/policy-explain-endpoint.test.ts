/**
 * The policy role's store following a KV bucket (in-process bus: the same port the NATS KV
 * implements), and the edge's administrative `POST /admin/policy/explain` (the edge role's Nest
 * controller on its listener) answered by it over the bus: refused to anonymous callers and to
 * callers outside the admin groups.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInProcessBus, type BusHandle, type KeyValueStore } from '@portcullis/bus';
import { BucketKeys, Buckets, QueueGroups, Streams, Subjects } from '@portcullis/contracts';
import { answerExplainRequest, PolicyStore } from '@portcullis/policy-engine';
import { DevIssuer, TokenVerifier } from '@portcullis/identity';
import { loadOrCreateDevTls } from '@portcullis/tls';
import { silentLogger, type Logger } from '@portcullis/common';
import { POLICY_EXPLAIN_PATH } from '@portcullis/gateway';
import { edgeRequest } from '../support/gateway-https.js';
import { eventually } from '../support/eventually.js';
import { RecordingLog } from '../support/recording-log.js';
import { Role, startTestProcess, testConfig, testTls, type RunningProcess } from '../support/nest-process.js';

const policy = (version: string, rules = ''): string => `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: explain-test, version: "${version}" }
rules:
  - id: discovery
    match: { verbs: [get], nonResourcePaths: ["/version"] }
    effect: allow
  - id: no-exec-in-prod
    match: { resources: [pods/exec], namespaces: [prod] }
    effect: deny
    message: no shells in prod
${rules}  - id: bots-read
    match: { groups: [bots], verbs: [get, list] }
    effect: allow
`;

/** A logger that keeps what it was told, for assertions on what the store logs. */
function recordingLogger(): Logger & { lines: { level: string; msg: string; fields: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const at =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}) =>
      void lines.push({ level, msg, fields });
  const logger = { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return logger;
}

describe('policy store following the KV bundle', () => {
  let handle: BusHandle;
  let kv: KeyValueStore;
  const dir = mkdtempSync(join(tmpdir(), 'policy-store-'));
  const file = join(dir, 'fallback.yaml');

  before(async () => {
    handle = createInProcessBus();
    kv = await handle.kv(Buckets.policy);
    writeFileSync(file, policy('file-1'));
  });
  after(() => handle.close());

  test('empty bucket → the file; a valid bundle → swapped; invalid → rejected naming its version, old kept', async () => {
    const logger = recordingLogger();
    const store = new PolicyStore(logger);
    const swaps: string[] = [];
    store.onSwap((p) => swaps.push(p.version));
    const stop = await store.watchBundle(kv, Buckets.policy, BucketKeys.policyBundle, file);
    assert.equal(store.policy?.version, 'file-1');
    assert.equal(store.policy?.source, file);

    await kv.put(BucketKeys.policyBundle, new TextEncoder().encode(policy('kv-1')));
    await eventually('kv-1 in force', () => (store.policy?.version === 'kv-1' ? true : undefined));
    assert.match(store.policy.source, /^kv portcullis_policy\/bundle revision \d+$/);

    await kv.put(BucketKeys.policyBundle, new TextEncoder().encode(policy('kv-bad').replace('effect: deny', 'effect: refuse')));
    const rejected = await eventually('the rejection logged', () => logger.lines.find((l) => l.msg.startsWith('policy rejected')));
    assert.equal(rejected.level, 'error');
    assert.equal(rejected.fields['rejectedVersion'], 'kv-bad');
    assert.equal(rejected.fields['keeping'], 'kv-1');
    assert.match(String((rejected.fields['problems'] as string[])[0]), /revision \d+:\d+:\d+: rules\[1\]\.effect/);
    assert.equal(store.policy?.version, 'kv-1');

    // Not YAML at all: still rejected, version unknown, old kept.
    await kv.put(BucketKeys.policyBundle, new TextEncoder().encode('rules: [unclosed'));
    await eventually('the second rejection', () => (logger.lines.filter((l) => l.msg.startsWith('policy rejected')).length === 2 ? true : undefined));
    assert.equal(store.policy?.version, 'kv-1');

    await kv.put(BucketKeys.policyBundle, new TextEncoder().encode(policy('kv-2')));
    await eventually('kv-2 in force', () => (store.policy?.version === 'kv-2' ? true : undefined));
    assert.deepEqual(swaps, ['file-1', 'kv-1', 'kv-2']);
    await stop();
  });

  test('a bucket holding a bundle at start-up wins over the file', async () => {
    const store = new PolicyStore(silentLogger);
    const stop = await store.watchBundle(kv, Buckets.policy, BucketKeys.policyBundle, file);
    assert.equal(store.policy?.version, 'kv-2');
    await stop();
  });

  test('an invalid bundle at start-up: no policy (this process serves nothing), never the stale file', async () => {
    const h = createInProcessBus();
    const bucket = await h.kv(Buckets.policy);
    await bucket.put(BucketKeys.policyBundle, new TextEncoder().encode('apiVersion: nope'));
    const store = new PolicyStore(silentLogger);
    const stop = await store.watchBundle(bucket, Buckets.policy, BucketKeys.policyBundle, file);
    assert.equal(store.policy, undefined);
    await stop();
    await h.close();
  });
});

describe('POST /admin/policy/explain', { timeout: 60_000 }, () => {
  let handle: BusHandle;
  let edge: RunningProcess;
  let url: string;
  let ca: string;
  const tokens: Record<string, string> = {};
  let serving = true;
  const store = new PolicyStore(silentLogger);
  const dir = mkdtempSync(join(tmpdir(), 'policy-explain-'));

  let log: RecordingLog;

  before(async () => {
    handle = createInProcessBus();
    await handle.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 0, duplicateWindowMs: 60_000, replicas: 1 });
    log = new RecordingLog(handle.log);
    assert.deepEqual(store.load(policy('e1'), 'explain.yaml'), []);
    handle.bus.serve(Subjects.policyExplain(), QueueGroups.policy, (msg) =>
      serving ? answerExplainRequest(store.policy, msg.data, new Date()) : new Promise<Uint8Array>(() => undefined),
    );
    const tls = await loadOrCreateDevTls(join(dir, 'tls'), ['127.0.0.1']);
    ca = tls.caPem;
    const issuer = await DevIssuer.open({
      issuer: 'https://issuer.test/oidc/dev',
      audience: 'portcullis',
      tokenLifetimeMs: 300_000,
      maxTokenLifetimeMs: 3_600_000,
      clients: [
        { id: 'alice', secret: 'alice-secret-123', subject: 'alice', groups: ['sre', 'policy-admins'], scopes: [] },
        { id: 'bot', secret: 'bot-secret-123', groups: ['bots'], scopes: [] },
      ],
      stateDir: dir,
    });
    for (const [id, secret] of [
      ['alice', 'alice-secret-123'],
      ['bot', 'bot-secret-123'],
    ] as const) {
      tokens[id] = (await issuer.issue({ clientId: id, clientSecret: secret })).accessToken;
    }
    const verifier = new TokenVerifier({
      issuers: [{ issuer: issuer.issuer, audiences: ['portcullis'], algorithms: ['ES256'], keys: { jwks: issuer.jwks() } }],
      maxTokenLifetimeMs: 3_600_000,
      clockSkewMs: 5_000,
    });
    // The edge role as it runs (its Nest controller on the edge listener), with the test's bus, verifier and certificate.
    edge = await startTestProcess({
      config: testConfig(
        { edge: { listen: { host: '127.0.0.1', port: 0 }, decisionTimeout: '300ms', admin: { groups: ['policy-admins'] } }, sandbox: { enabled: 'never' } },
        dir,
      ),
      roles: [Role.Edge],
      bus: { ...handle, log },
      verifier,
      tls: testTls(tls),
    });
    url = `${edge.edgeUrl}${POLICY_EXPLAIN_PATH}`;
  });

  after(async () => {
    await edge.close();
    await handle.close();
  });

  const post = (body: unknown, auth?: string, method = 'POST') =>
    edgeRequest(url, {
      ca,
      method,
      headers: { 'content-type': 'application/json', ...(auth !== undefined ? { authorization: auth } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const exec = { subject: 'ci-bot', groups: ['bots'], connection: 'prod', verb: 'create', resource: 'pods/exec', name: 'web-1', namespace: 'prod' };

  test('refusals: anonymous and bad tokens 401, non-admins 403, before the body is looked at', async () => {
    const cases: { name: string; auth: string | undefined; status: number; says: RegExp }[] = [
      { name: 'no Authorization header', auth: undefined, status: 401, says: /no bearer token/ },
      { name: 'empty bearer', auth: 'Bearer ', status: 401, says: /not a bearer token/ },
      { name: 'basic credentials', auth: 'Basic YWxpY2U6eA==', status: 401, says: /not a bearer token/ },
      { name: 'garbage token', auth: 'Bearer abc.def.ghi', status: 401, says: /unauthorized/ },
      {
        name: 'alg none token claiming the admin group',
        auth: `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"alice","groups":["policy-admins"]}').toString('base64url')}.`,
        status: 401,
        says: /unauthorized/,
      },
      { name: 'admin token with its signature altered', auth: `Bearer ${tokens['alice']!.slice(0, -4)}AAAA`, status: 401, says: /unauthorized/ },
      { name: 'a valid token outside the admin groups', auth: `Bearer ${tokens['bot']}`, status: 403, says: /not in an admin group/ },
    ];
    for (const c of cases) {
      const res = await post(exec, c.auth);
      assert.equal(res.status, c.status, `${c.name}: ${res.body}`);
      assert.match((JSON.parse(res.body) as { message: string }).message, c.says, c.name);
      if (c.status === 401) assert.equal(res.headers['www-authenticate'], 'Bearer realm="portcullis"', c.name);
      assert.ok(!res.body.includes('no-exec-in-prod'), `${c.name}: nothing about the policy leaks`);
    }
  });

  test('an admin gets the deciding rule, why, and what every earlier rule failed on', async () => {
    const res = await post(exec, `Bearer ${tokens['alice']}`);
    assert.equal(res.status, 200, res.body);
    const body = JSON.parse(res.body) as {
      request: string;
      policy: { name: string; version: string; source: string };
      decision: { effect: string; ruleId: string; policyVersion: string; message: string };
      trace: { ruleId: string; effect: string; matched: boolean; failedOn?: string }[];
      text: string;
    };
    assert.deepEqual(body.policy, { name: 'explain-test', version: 'e1', source: 'explain.yaml' });
    assert.deepEqual([body.decision.effect, body.decision.ruleId, body.decision.message], ['deny', 'no-exec-in-prod', 'no shells in prod']);
    assert.equal(body.request, '"ci-bot" to create pods/exec "web-1" in namespace "prod" on connection "prod"');
    assert.deepEqual(body.trace, [
      { ruleId: 'discovery', effect: 'allow', matched: false, failedOn: 'verbs: "create" does not match ["get"]' },
      { ruleId: 'no-exec-in-prod', effect: 'deny', matched: true },
      { ruleId: 'bots-read', effect: 'allow', matched: false, failedOn: 'verbs: "create" does not match ["get", "list"]' },
    ]);
    assert.match(body.text, /decision: DENY by rule no-exec-in-prod/);
    assert.match(body.text, /matched\s+no-exec-in-prod \(deny\)\s+<- decides/);

    const defaultDeny = await post({ ...exec, groups: [], verb: 'delete', resource: 'namespaces', namespace: '', name: 'prod' }, `Bearer ${tokens['alice']}`);
    const d = JSON.parse(defaultDeny.body) as { decision: { ruleId: string }; text: string };
    assert.equal(d.decision.ruleId, 'default-deny');
    assert.match(d.text, /default deny/);
  });

  test('bad bodies: 400 naming what is wrong; GET: 405; policy role silent: 503', async () => {
    const admin = `Bearer ${tokens['alice']}`;
    const bad: { name: string; body: unknown; says: RegExp }[] = [
      { name: 'not JSON', body: '{"subject":', says: /not JSON/ },
      { name: 'missing subject', body: { ...exec, subject: undefined }, says: /subject/ },
      { name: 'unknown key', body: { ...exec, sudo: true }, says: /unknown key "sudo"/ },
      { name: 'groups as a string', body: { ...exec, groups: 'bots' }, says: /groups/ },
      { name: 'bad time', body: { ...exec, at: 'tomorrow' }, says: /at/ },
    ];
    for (const c of bad) {
      const res = await post(c.body, admin);
      assert.equal(res.status, 400, `${c.name}: ${res.body}`);
      assert.match((JSON.parse(res.body) as { message: string }).message, c.says, c.name);
    }
    const get = await post(exec, admin, 'GET');
    assert.equal(get.status, 405, get.body);
    const again = await post(exec, admin);
    assert.equal(again.status, 200, `after GET: ${again.status} ${JSON.stringify(again.headers)}`);
    serving = false;
    try {
      const res = await post(exec, admin);
      assert.equal(res.status, 503, res.body);
      assert.match(res.body, /policy service unavailable \(timeout\)/);
    } finally {
      serving = true;
    }
  });

  test('each explanation is an evidence.read event naming who asked what; without a durable record, 503 and no explanation', async () => {
    const before = log.appended.length;
    const ok = await post(exec, `Bearer ${tokens['alice']}`);
    assert.equal(ok.status, 200, ok.body);
    const read = log.appended.slice(before).find((e) => e.type === 'evidence.read');
    assert.ok(read !== undefined && read.payload.case === 'evidenceRead', 'an evidence.read event');
    const v = read.payload.value;
    assert.deepEqual([v.reader?.subject, v.action, v.via], ['alice', 'policy.explain', 'api']);
    assert.deepEqual({ ...(JSON.parse(v.query) as Record<string, unknown>), ...exec }, JSON.parse(v.query), 'the query holds the explain request');
    assert.ok(v.results > 0 && v.source !== '');

    log.failing = true;
    try {
      const refused = await post(exec, `Bearer ${tokens['alice']}`);
      assert.equal(refused.status, 503, refused.body);
      assert.match(refused.body, /"error":"audit_unavailable"/);
      assert.doesNotMatch(refused.body, /ruleId|trace/, 'nothing of the explanation');
    } finally {
      log.failing = false;
    }
  });
});
