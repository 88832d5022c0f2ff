/**
 * Machine identity through the EDGE: a table of attack tokens against real OIDC providers over
 * HTTPS (discovery + JWKS), each refused with a 401 (or 503 when keys cannot be had) Status,
 * a request.rejected and an identity.rejected event, and never forwarded; key rotation and the
 * JWKS endpoint going down; per-connection audiences; claims reaching policy; and the upstream
 * credential out — bearer, client certificate, in-cluster service account — as the API-server
 * fixture saw it, never leaking to the client, the logs or the audit events.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnsecuredJWT, type JWTPayload } from 'jose';
import { startKubeApiServer, type KubeApiServer } from '@portcullis/kube-sandbox';
import { createInProcessBus, type BusHandle } from '@portcullis/bus';
import {
  decisionReply,
  decodeDecisionRequest,
  encodeDecisionReply,
  EventEnvelopeSchema,
  QueueGroups,
  Streams,
  Subjects,
  toJson,
  type EventEnvelope,
} from '@portcullis/contracts';
import { evaluate, parsePolicy, withClaims } from '@portcullis/policy-engine';
import { TokenVerifier } from '@portcullis/identity';
import { createCertificateAuthority, issueClientCertificate, loadOrCreateDevTls } from '@portcullis/tls';
import type { Logger } from '@portcullis/common';
import {
  AuditPublisher,
  ConnectionRegistry,
  createUpstreamConnection,
  DecisionClient,
  EdgePipeline,
  EdgeServer,
  inClusterCredential,
} from '@portcullis/gateway';
import { edgeRequest } from '../support/gateway-https.js';
import { eventually } from '../support/eventually.js';
import { startFakeOidcProvider, type FakeOidcProvider, type ProviderKey } from '../support/fake-oidc-provider.js';
import { RecordingLog } from '../support/recording-log.js';

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: t, version: "v1" }
rules:
  - id: forbidden-env
    match: { claims: { env: forbidden } }
    effect: deny
    message: this token is bound to a forbidden environment
  - id: bots
    match: { groups: [bots] }
    effect: allow
`;

/** A logger that keeps every line (with its fields serialized), for the leak checks. */
function recordingLogger(lines: string[]): Logger {
  const write = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    lines.push(
      `${level} ${msg} ${JSON.stringify(fields ?? {}, (_k, v: unknown) => (v instanceof Error ? { message: v.message, stack: v.stack, cause: v.cause } : v))}`,
    );
  };
  const logger: Logger = { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error'), child: () => logger };
  return logger;
}

const nowS = (): number => Math.floor(Date.now() / 1000);

describe('machine identity through the edge', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-identity-'));
  let fixture: KubeApiServer;
  let mtlsFixture: KubeApiServer;
  let handle: BusHandle;
  let log: RecordingLog;
  let server: EdgeServer;
  let url: string;
  let ca: string;
  let idp: FakeOidcProvider;
  let flaky: FakeOidcProvider;
  let stranger: FakeOidcProvider;
  let k1: ProviderKey;
  let flakyKey: ProviderKey;
  let strangerKey: ProviderKey;
  const DEAD_ISSUER = 'https://127.0.0.1:1';
  const logLines: string[] = [];
  let upstreamSecrets: string[] = [];
  let jti = 0;

  before(async () => {
    const tls = await loadOrCreateDevTls(join(dir, 'tls'), ['127.0.0.1', 'localhost']);
    ca = tls.caPem;
    idp = await startFakeOidcProvider(tls);
    k1 = await idp.newKey('k1');
    idp.published = [k1];
    flaky = await startFakeOidcProvider(tls);
    flakyKey = await flaky.newKey('f1');
    flaky.published = [flakyKey];
    stranger = await startFakeOidcProvider(tls);
    strangerKey = await stranger.newKey('k1'); // same kid as the trusted key: only the issuer tells them apart
    stranger.published = [strangerKey];

    const clientCa = await createCertificateAuthority('upstream client CA');
    const clientCert = await issueClientCertificate(clientCa, { commonName: 'portcullis-edge' });
    fixture = await startKubeApiServer({ requestLog: { max: 10_000 } });
    mtlsFixture = await startKubeApiServer({ clientCaPem: clientCa.certPem, requestLog: { max: 10_000 } });
    // A pod's service-account mount, in a temp dir.
    const saDir = join(dir, 'serviceaccount');
    mkdirSync(saDir);
    writeFileSync(join(saDir, 'token'), fixture.token);
    writeFileSync(join(saDir, 'ca.crt'), fixture.caPem);
    const inCluster = inClusterCredential(saDir, { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: new URL(fixture.url).port });
    upstreamSecrets = [fixture.token, clientCert.keyPem.split('\n').slice(1, -2).join('')];

    handle = createInProcessBus();
    await handle.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 0, duplicateWindowMs: 60_000, replicas: 1 });
    log = new RecordingLog(handle.log);
    const parsed = parsePolicy(POLICY);
    assert.ok(parsed.ok);
    const policy = parsed.policy;
    handle.bus.serve(Subjects.policyDecide(), QueueGroups.policy, (msg) => {
      const req = decodeDecisionRequest(msg.data);
      return encodeDecisionReply(decisionReply({ decision: evaluate(policy, withClaims(req.identity!, req.claimsJson), req.attributes!, new Date()) }));
    });
    const logger = recordingLogger(logLines);
    const registry = new ConnectionRegistry([
      createUpstreamConnection({ name: 'k', type: 'kubernetes', server: fixture.url, caPem: fixture.caPem, token: fixture.token }),
      createUpstreamConnection({ name: 'a', type: 'kubernetes', server: fixture.url, caPem: fixture.caPem, token: fixture.token }),
      createUpstreamConnection({ name: 'b', type: 'kubernetes', server: fixture.url, caPem: fixture.caPem, token: fixture.token }),
      createUpstreamConnection({
        name: 'mtls',
        type: 'kubernetes',
        server: mtlsFixture.url,
        caPem: mtlsFixture.caPem,
        clientCertPem: clientCert.certPem,
        clientKeyPem: clientCert.keyPem,
      }),
      createUpstreamConnection({ name: 'pod', type: 'kubernetes', server: inCluster.server, caFile: inCluster.caFile, tokenFile: inCluster.tokenFile }),
    ]);
    const pipeline = new EdgePipeline({
      nodeId: 'edge-identity',
      connections: registry,
      verifier: new TokenVerifier({
        issuers: [
          { issuer: idp.issuer, audiences: ['portcullis'], algorithms: ['ES256', 'RS256'], keys: { discovery: true }, caPem: ca, jwksRefetchCooldownMs: 1000 },
          {
            issuer: flaky.issuer,
            audiences: ['portcullis'],
            algorithms: ['ES256'],
            keys: { jwksUri: `${flaky.issuer}/keys` },
            caPem: ca,
            jwksCacheLifetimeMs: 3000,
          },
          { issuer: DEAD_ISSUER, audiences: ['portcullis'], algorithms: ['ES256'], keys: { discovery: true }, caPem: ca },
        ],
        maxTokenLifetimeMs: 3_600_000,
        clockSkewMs: 5_000,
        connectionAudiences: { a: ['aud-a'], b: ['aud-b'] },
      }),
      decisions: new DecisionClient(handle.bus, 2000),
      audit: new AuditPublisher(log, 2000, logger),
      logger,
      upstreamTimeoutMs: 5_000,
    });
    server = new EdgeServer({ host: '127.0.0.1', port: 0, tls, pipeline, logger });
    url = `https://127.0.0.1:${(await server.listen()).port}`;
  });

  after(async () => {
    server.closeAll();
    await server.close();
    await fixture.close();
    await mtlsFixture.close();
    await idp.close();
    await flaky.close();
    await stranger.close();
    await handle.close();
  });

  beforeEach(() => {
    fixture.clearRequests();
    mtlsFixture.clearRequests();
  });

  /** Claims of a good token from the trusted provider, with overrides (`undefined` removes one). */
  function claims(over: Record<string, unknown> = {}, iss = idp.issuer): JWTPayload {
    const t = nowS();
    const base: Record<string, unknown> = {
      iss,
      sub: 'deploy-bot',
      aud: 'portcullis',
      iat: t,
      nbf: t,
      exp: t + 300,
      jti: `jti-${++jti}`,
      client_id: 'deployer',
      groups: ['bots'],
    };
    for (const [k, v] of Object.entries(over)) {
      if (v === undefined) delete base[k];
      else base[k] = v;
    }
    return base;
  }

  const clientSaw: string[] = [];
  const call = async (token: string, path = '/k8s/k/api/v1/namespaces/default/pods', extra: Record<string, string | string[]> = {}) => {
    const res = await edgeRequest(`${url}${path}`, { ca, headers: { authorization: `Bearer ${token}`, ...extra } });
    clientSaw.push(JSON.stringify(res.headers), res.body);
    return res;
  };

  function eventsOf(auditId: string): EventEnvelope[] {
    return log.appended.filter((e) => e.correlationId === auditId);
  }

  const hs256 = (payload: JWTPayload, secret: string, kid = 'k1'): string => {
    const head = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid })).toString('base64url');
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
    return `${head}.${body}.${createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`;
  };

  test('attack tokens: each refused with a Status, recorded as request.rejected + identity.rejected, never forwarded, never echoed', async () => {
    // Warm the trusted provider's keys so "unknown kid" is tested against a populated cache.
    assert.equal((await call(await idp.sign(k1, claims()))).status, 200);
    const t = nowS();
    const attacks: { name: string; token: () => string | Promise<string>; code: 401 | 503; reason: string; path?: string }[] = [
      { name: 'alg: none', token: () => new UnsecuredJWT(claims()).encode(), code: 401, reason: 'malformed' },
      { name: 'alg: none with a made-up signature', token: () => `${new UnsecuredJWT(claims()).encode()}c2lnbmF0dXJl`, code: 401, reason: 'bad_signature' },
      { name: 'HS256 signed with the issuer public key', token: () => hs256(claims(), k1.publicPem), code: 401, reason: 'bad_signature' },
      { name: 'HS256 signed with the JWK JSON', token: () => hs256(claims(), JSON.stringify(k1.publicJwk)), code: 401, reason: 'bad_signature' },
      { name: 'expired', token: () => idp.sign(k1, claims({ iat: t - 900, nbf: t - 900, exp: t - 600 })), code: 401, reason: 'expired' },
      { name: 'nbf in the future', token: () => idp.sign(k1, claims({ nbf: t + 600 })), code: 401, reason: 'not_yet_valid' },
      { name: 'iat in the future', token: () => idp.sign(k1, claims({ iat: t + 600, nbf: t, exp: t + 900 })), code: 401, reason: 'not_yet_valid' },
      { name: 'wrong iss (trusted key)', token: () => idp.sign(k1, claims({ iss: 'https://evil.example' })), code: 401, reason: 'unknown_issuer' },
      { name: 'wrong aud', token: () => idp.sign(k1, claims({ aud: 'someone-else' })), code: 401, reason: 'bad_audience' },
      { name: 'no aud', token: () => idp.sign(k1, claims({ aud: undefined })), code: 401, reason: 'bad_audience' },
      { name: 'lifetime over the cap', token: () => idp.sign(k1, claims({ exp: t + 7200 })), code: 401, reason: 'lifetime_too_long' },
      { name: 'no exp', token: () => idp.sign(k1, claims({ exp: undefined })), code: 401, reason: 'bad_claims' },
      { name: 'unknown kid', token: () => idp.sign(k1, claims(), { kid: 'never-published' }), code: 401, reason: 'unknown_key' },
      { name: 'kid with path characters', token: () => idp.sign(k1, claims(), { kid: '../../../../etc/passwd' }), code: 401, reason: 'unknown_key' },
      { name: 'kid with a URL', token: () => idp.sign(k1, claims(), { kid: 'https://evil.example/keys' }), code: 401, reason: 'unknown_key' },
      { name: 'a second, unconfigured issuer', token: () => stranger.sign(strangerKey, claims({}, stranger.issuer)), code: 401, reason: 'unknown_issuer' },
      { name: 'unconfigured key claiming the trusted issuer', token: () => stranger.sign(strangerKey, claims()), code: 401, reason: 'bad_signature' },
      { name: 'truncated', token: async () => (await idp.sign(k1, claims())).slice(0, -10), code: 401, reason: 'bad_signature' },
      { name: 'truncated to two parts', token: async () => (await idp.sign(k1, claims())).split('.').slice(0, 2).join('.'), code: 401, reason: 'malformed' },
      { name: 'oversized (20 kB)', token: () => idp.sign(k1, claims({ pad: 'x'.repeat(20_000) })), code: 401, reason: 'malformed' },
      {
        name: 'valid token for connection a, used on b',
        token: () => idp.sign(k1, claims({ aud: 'aud-a' })),
        code: 401,
        reason: 'bad_audience',
        path: '/k8s/b/api/v1/namespaces/default/pods',
      },
      {
        name: 'general token on a connection with its own audience',
        token: () => idp.sign(k1, claims()),
        code: 401,
        reason: 'bad_audience',
        path: '/k8s/a/api/v1/namespaces/default/pods',
      },
      {
        name: 'control characters in sub',
        token: () => idp.sign(k1, claims({ sub: 'bot\r\nImpersonate-Group: system:masters' })),
        code: 401,
        reason: 'bad_claims',
      },
      { name: 'configured issuer whose keys cannot be fetched', token: () => idp.sign(k1, claims({}, DEAD_ISSUER)), code: 503, reason: 'unavailable' },
    ];
    const fetchesBefore = idp.jwksFetches();
    for (const a of attacks) {
      const token = await a.token();
      const res = await call(token, a.path);
      assert.equal(res.status, a.code, `${a.name}: ${res.body}`);
      const status = JSON.parse(res.body) as { kind: string; code: number; reason: string; message: string };
      assert.equal(status.kind, 'Status', a.name);
      assert.equal(status.code, a.code, a.name);
      assert.equal(status.reason, a.code === 401 ? 'Unauthorized' : 'ServiceUnavailable', a.name);
      if (a.code === 401) assert.equal(res.headers['www-authenticate'], 'Bearer realm="portcullis"', a.name);
      // The longest part (payload or signature) stands for the token in the leak checks.
      const probe = token.split('.').reduce((x, y) => (y.length > x.length ? y : x), '');
      assert.ok(!res.body.includes(probe), `${a.name}: the token is not echoed`);
      const auditId = String(res.headers['audit-id']);
      const events = await eventually(`${a.name}: events`, () => {
        const e = eventsOf(auditId);
        return e.length >= 2 ? e : undefined;
      });
      const types = events.map((e) => e.type).sort();
      assert.deepEqual(types, ['identity.rejected', 'request.rejected'], a.name);
      const ir = events.find((e) => e.type === 'identity.rejected')!.payload;
      assert.ok(ir.case === 'identityRejected');
      assert.equal(ir.value.reason, a.reason, `${a.name}: ${ir.value.message}`);
      assert.equal(ir.value.status, a.code, a.name);
      assert.match(ir.value.tokenHash, /^[0-9a-f]{32}$/);
      const rr = events.find((e) => e.type === 'request.rejected')!.payload;
      assert.ok(rr.case === 'requestRejected');
      assert.equal(rr.value.status, a.code, a.name);
      for (const e of events) {
        const json = JSON.stringify(toJson(EventEnvelopeSchema, e));
        assert.ok(!json.includes(probe), `${a.name}: the token is not in the ${e.type} event`);
      }
    }
    assert.equal(fixture.requests.length, 1, 'only the warm-up request reached the upstream');
    // Unknown kids inside the refetch cooldown: at most one refetch, however many arrived.
    assert.ok(idp.jwksFetches() - fetchesBefore <= 2, `JWKS fetches during the attacks: ${idp.jwksFetches() - fetchesBefore}`);
    assert.equal(stranger.jwksFetches(), 0, 'an unconfigured issuer is never contacted');
  });

  test('a good token: forwarded with the gateway credential and impersonation, announced once, injected identity headers dropped', async () => {
    const token = await idp.sign(k1, claims({ sub: 'deploy-bot', groups: ['bots', 'deployers'], jti: 'session-jti-1' }));
    const injected = {
      'Impersonate-Group': 'system:masters',
      'impersonate-user': 'admin',
      'IMPERSONATE-EXTRA-scopes': 'all',
      'X-Remote-User': 'root',
      'x-remote-group': 'system:masters',
    };
    const r1 = await call(token, '/k8s/k/api/v1/namespaces/default/pods', injected);
    const r2 = await call(token, '/k8s/k/api/v1/namespaces/default/pods', injected);
    assert.equal(r1.status, 200, r1.body);
    assert.equal(r2.status, 200, r2.body);
    assert.equal(fixture.requests.length, 2);
    for (const [i, req] of fixture.requests.entries()) {
      const auditId = String((i === 0 ? r1 : r2).headers['audit-id']);
      assert.equal(req.user, 'token:#1', 'the gateway credential authenticated the call');
      // The sandbox records a fingerprint of the Authorization credential, never the credential.
      assert.equal(req.authorization?.fingerprint, fixture.fingerprint(fixture.token), 'the gateway credential reached the upstream');
      assert.notEqual(req.authorization?.fingerprint, fixture.fingerprint(token), 'the client token did not');
      assert.deepEqual(req.impersonation, {
        user: 'portcullis:deploy-bot',
        groups: ['portcullis:bots', 'portcullis:deployers'],
        extra: { 'portcullis.dev/audit-id': [auditId], 'portcullis.dev/session-id': ['session-jti-1'], 'portcullis.dev/client-id': ['deployer'] },
      });
      const raw = JSON.stringify(req.headers);
      assert.ok(!raw.includes(token), 'the client token never reaches the upstream');
      assert.doesNotMatch(raw, /system:masters|"admin"|root|scopes/);
      assert.equal(req.headers['x-remote-user'], undefined);
    }
    const announced = await eventually('identity.authenticated', () => {
      const e = log.appended.filter(
        (x) => x.type === 'identity.authenticated' && x.payload.case === 'identityAuthenticated' && x.payload.value.identity?.tokenId === 'session-jti-1',
      );
      return e.length > 0 ? e : undefined;
    });
    assert.equal(announced.length, 1, 'announced once per token, not per request');
    const p = announced[0]!.payload;
    assert.ok(p.case === 'identityAuthenticated');
    assert.equal(p.value.identity?.subject, 'deploy-bot');
    assert.equal(p.value.identity?.issuer, idp.issuer);
    assert.equal(p.value.identity?.clientId, 'deployer');
    assert.equal(p.value.identity?.tokenLifetimeSeconds, 300);
    assert.equal(announced[0]!.correlationId, String(r1.headers['audit-id']));
  });

  test('per-connection audiences: a token for a is accepted on a only', async () => {
    const forA = await idp.sign(k1, claims({ aud: 'aud-a' }));
    assert.equal((await call(forA, '/k8s/a/api/v1/namespaces/default/pods')).status, 200);
    assert.equal((await call(forA, '/k8s/b/api/v1/namespaces/default/pods')).status, 401);
    assert.equal((await call(forA, '/k8s/k/api/v1/namespaces/default/pods')).status, 401);
  });

  test('purpose-bound: the token claims reach policy (match.claims), and stay out of the events', async () => {
    const res = await call(await idp.sign(k1, claims({ env: 'forbidden', jti: 'claims-1' })));
    assert.equal(res.status, 403, res.body);
    assert.match(res.body, /rule forbidden-env/);
    const auditId = String(res.headers['audit-id']);
    const events = await eventually('decided', () => {
      const e = eventsOf(auditId);
      return e.some((x) => x.type === 'request.decided') ? e : undefined;
    });
    for (const e of events) assert.doesNotMatch(JSON.stringify(toJson(EventEnvelopeSchema, e)), /forbidden"?,?$|"env"/);
  });

  test('key rotation: a token signed with a newly published key is accepted after one refetch', async () => {
    const k2 = await idp.newKey('k2');
    const token = await idp.sign(k2, claims());
    idp.published = [k1, k2];
    // The refetch cooldown (1 s here) may still run from the last fetch: poll until it passes.
    const before = idp.jwksFetches();
    await eventually('the rotated key is accepted', async () => ((await call(token)).status === 200 ? true : undefined), 10_000);
    assert.ok(idp.jwksFetches() - before <= 3, `refetches: ${idp.jwksFetches() - before}`);
    idp.published = [k2]; // k1 retired: cached tokens stay valid until exp; a new k1 token is refused after the next refetch
  });

  test('JWKS endpoint down: cached keys keep working until their lifetime, then 503 Status (never 401); recovers', async () => {
    const first = await call(await flaky.sign(flakyKey, claims({}, flaky.issuer)));
    assert.equal(first.status, 200, first.body);
    flaky.up = false;
    const cached = await call(await flaky.sign(flakyKey, claims({}, flaky.issuer)));
    assert.equal(cached.status, 200, 'a new token verifies against the cached keys');
    const down = await eventually(
      'the cached keys expire (3 s lifetime)',
      async () => {
        const r = await call(await flaky.sign(flakyKey, claims({}, flaky.issuer)));
        assert.notEqual(r.status, 401, r.body);
        return r.status === 503 ? r : undefined;
      },
      15_000,
    );
    const s = JSON.parse(down.body) as { kind: string; reason: string; message: string };
    assert.equal(s.kind, 'Status');
    assert.equal(s.reason, 'ServiceUnavailable');
    assert.match(s.message, /cannot verify tokens right now/);
    flaky.up = true;
    await eventually('recovery', async () => ((await call(await flaky.sign(flakyKey, claims({}, flaky.issuer)))).status === 200 ? true : undefined), 10_000);
  });

  test('credential out: a client certificate (mTLS) and the in-cluster service account reach the upstream as the gateway', async () => {
    const token = await idp.sign(k1, claims());
    const m = await call(token, '/k8s/mtls/api/v1/namespaces/default/pods');
    assert.equal(m.status, 200, m.body);
    assert.equal(mtlsFixture.requests[0]?.user, 'portcullis-edge', 'authenticated by the client certificate');
    assert.equal(mtlsFixture.requests[0]?.authorization, undefined, 'no Authorization header at all on the mTLS connection');
    assert.equal(mtlsFixture.requests[0]?.impersonation?.user, 'portcullis:deploy-bot');
    const p = await call(token, '/k8s/pod/api/v1/namespaces/default/pods');
    assert.equal(p.status, 200, p.body);
    assert.equal(fixture.requests[0]?.user?.startsWith('token:'), true, 'authenticated by the mounted service-account token');
  });

  test('the upstream credentials never reach a client, a log line or an event', () => {
    const events = log.appended.map((e) => JSON.stringify(toJson(EventEnvelopeSchema, e))).join('\n');
    const logs = logLines.join('\n');
    const responses = clientSaw.join('\n');
    assert.ok(log.appended.length > 40);
    for (const secret of upstreamSecrets) {
      assert.ok(secret.length > 16);
      assert.ok(!events.includes(secret), 'not in any event');
      assert.ok(!logs.includes(secret), 'not in any log line');
      assert.ok(!responses.includes(secret), 'not in any response to a client');
    }
  });
});
