/**
 * The edge's protocol seam: a protocol is one adapter (prefix, how a request reads, how a refusal
 * is worded, what the masker reads), plugged in without touching the pipeline or the server. A
 * toy adapter defined here serves `/toy/<connection>/…` beside the built-in protocols, against a
 * real edge (TLS server, token verifier, in-process bus with a real policy, audit log) and a real
 * HTTP upstream: its prefix routes, its reading is what the policy sees, its refusals are what
 * the client gets, and the built-in HTTP protocol on the same connection is unchanged.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInProcessBus, type BusHandle } from '@portcullis/bus';
import {
  create,
  decisionReply,
  decodeDecisionRequest,
  encodeDecisionReply,
  HttpAttributesSchema,
  KubeAttributesSchema,
  QueueGroups,
  Streams,
  Subjects,
  type RequestAttributes,
} from '@portcullis/contracts';
import { evaluate, parsePolicy } from '@portcullis/policy-engine';
import { DevIssuer, TokenVerifier } from '@portcullis/identity';
import { loadOrCreateDevTls } from '@portcullis/tls';
import { silentLogger } from '@portcullis/common';
import type { MaskTarget } from '@portcullis/masking';
import {
  AuditPublisher,
  ConnectionKind,
  ConnectionRegistry,
  createUpstreamConnection,
  DecisionClient,
  DEFAULT_PROTOCOLS,
  EdgePipeline,
  EdgeServer,
  GatewayErrorCode,
  ProtocolTable,
  routeFromPath,
  type GatewayError,
  type ProtocolAdapter,
} from '@portcullis/gateway';
import { edgeRequest } from '../support/gateway-https.js';
import { eventually } from '../support/eventually.js';
import { RecordingLog } from '../support/recording-log.js';

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: toy, version: "t1" }
rules:
  - id: no-admin-tool
    match: { http: { paths: ["/tools/admin"] } }
    effect: deny
    message: the admin tool is not for bots
  - id: mask-secret-tool
    match: { http: { paths: ["/tools/secret"] } }
    effect: mask
    mask: secrets
  - id: bots
    match: { groups: [bots] }
    effect: allow
`;

/** Calls the toy adapter's maskTarget saw (the masking seam). */
const maskTargets: RequestAttributes[] = [];

/**
 * A toy protocol for HTTP connections: `/toy/<connection>/call/<tool>` reads as the path
 * `/tools/<tool>` (so the policy sees the toy's reading, not the raw path), a request is named
 * as the tool it calls, and a refusal is one line of text.
 */
const toyProtocol: ProtocolAdapter = {
  kind: ConnectionKind.Http,
  prefix: '/toy/',
  readAttributes(attributes: RequestAttributes, path: string): string {
    const tool = /^\/call\/([a-z]+)$/.exec(path)?.[1];
    if (tool === undefined) throw Object.assign(new Error('not a toy call'), { toy: true });
    attributes.http = create(HttpAttributesSchema, { method: attributes.method, path: `/tools/${tool}`, query: '' });
    attributes.kube = create(KubeAttributesSchema, {});
    return `/call/${tool}`;
  },
  describe(attributes: RequestAttributes): string {
    return `call the ${attributes.http?.path.slice('/tools/'.length) ?? ''} tool`;
  },
  refusalContentType: 'text/plain; charset=utf-8',
  refusalBody(err: GatewayError, message: string, requestId: string): string {
    return `toy refused (${err.code}) [${requestId}]: ${message}\n`;
  },
  maskTarget(attributes: RequestAttributes): MaskTarget {
    maskTargets.push(attributes);
    return { mode: 'generic' };
  },
};

describe('a protocol adapter plugs into the edge', { timeout: 60_000 }, () => {
  let upstream: Server;
  const seen: { method: string; url: string }[] = [];
  let handle: BusHandle;
  let log: RecordingLog;
  let server: EdgeServer;
  let url: string;
  let ca: string;
  let token: string;
  const dir = mkdtempSync(join(tmpdir(), 'edge-protocol-adapter-'));

  before(async () => {
    upstream = createServer((req, res) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '' });
      const body = JSON.stringify({ path: req.url, password: 'hunter2-hunter2' });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    handle = createInProcessBus();
    await handle.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 0, duplicateWindowMs: 60_000, replicas: 1 });
    log = new RecordingLog(handle.log);
    const parsed = parsePolicy(POLICY);
    assert.ok(parsed.ok);
    const policy = parsed.policy;
    handle.bus.serve(Subjects.policyDecide(), QueueGroups.policy, (msg) => {
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
    const port = (upstream.address() as AddressInfo).port;
    const registry = new ConnectionRegistry([createUpstreamConnection({ name: 'api', type: ConnectionKind.Http, server: `http://127.0.0.1:${port}` })]);
    const pipeline = new EdgePipeline({
      nodeId: 'edge-toy',
      connections: registry,
      verifier: new TokenVerifier({
        issuers: [{ issuer: issuer.issuer, audiences: ['portcullis'], algorithms: ['ES256'], keys: { jwks: issuer.jwks() } }],
        maxTokenLifetimeMs: 3_600_000,
        clockSkewMs: 5_000,
      }),
      decisions: new DecisionClient(handle.bus, 2_000),
      audit: new AuditPublisher(log, 2_000, silentLogger),
      logger: silentLogger,
      upstreamTimeoutMs: 5_000,
      protocols: [...DEFAULT_PROTOCOLS, toyProtocol],
    });
    server = new EdgeServer({ host: '127.0.0.1', port: 0, tls, pipeline, logger: silentLogger });
    url = `https://127.0.0.1:${(await server.listen()).port}`;
  });

  after(async () => {
    server.closeAll();
    await server.close();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
    await handle.close();
  });

  beforeEach(() => {
    seen.length = 0;
    maskTargets.length = 0;
  });

  const call = (path: string, headers: Record<string, string> = { authorization: `Bearer ${token}` }) => edgeRequest(`${url}${path}`, { ca, headers });

  test('its prefix routes: the request goes to the connection, the rest of the path upstream, every step recorded', async () => {
    const res = await call('/toy/api/call/weather?city=oslo');
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(seen, [{ method: 'GET', url: '/call/weather?city=oslo' }]);
    const auditId = String(res.headers['audit-id']);
    const events = await eventually('request.completed', () => {
      const e = log.appended.filter((x) => x.correlationId === auditId && x.type.startsWith('request.'));
      return e.length === 3 ? e : undefined;
    });
    assert.deepEqual(
      events.map((e) => e.type),
      ['request.received', 'request.decided', 'request.completed'],
    );
    const received = events[0]!.payload;
    assert.equal(received.case, 'requestReceived');
    // The policy saw the toy's reading of the request, not the raw path.
    assert.equal(received.case === 'requestReceived' && received.value.attributes?.http?.path, '/tools/weather');
    assert.equal(received.case === 'requestReceived' && received.value.attributes?.connectionType, ConnectionKind.Http);
  });

  test('its reading decides: the policy denies /tools/admin, named and answered in the toy format, nothing forwarded', async () => {
    const res = await call('/toy/api/call/admin');
    assert.equal(res.status, 403);
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(
      res.body,
      `toy refused (${GatewayErrorCode.Denied}) [${String(res.headers['audit-id'])}]: portcullis: bot may not call the admin tool (rule no-admin-tool, policy t1): the admin tool is not for bots\n`,
    );
    assert.deepEqual(seen, []);
  });

  test('its refusals before a decision use its format too: unknown connection, no token, a path it cannot read', async () => {
    const unknown = await call('/toy/nope/call/weather');
    assert.equal(unknown.status, 404);
    assert.match(unknown.body, /^toy refused \(unknown_connection\) .*no http connection named "nope"/);
    const anonymous = await call('/toy/api/call/weather', {});
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers['www-authenticate'], 'Bearer realm="portcullis"');
    assert.match(anonymous.body, /^toy refused \(unauthenticated\) /);
    // An error the adapter throws that is not a GatewayError is an internal error, still in its format.
    const unreadable = await call('/toy/api/not-a-call');
    assert.equal(unreadable.status, 503);
    assert.match(unreadable.body, /^toy refused \(decision_unavailable\) .*internal error/);
    assert.deepEqual(seen, []);
  });

  test('its mask target is what the masker reads', async () => {
    const res = await call('/toy/api/call/secret');
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['x-portcullis-masked'], 'secrets');
    assert.ok(!res.body.includes('hunter2-hunter2'), res.body);
    assert.equal(maskTargets.length, 1);
    assert.equal(maskTargets[0]!.http?.path, '/tools/secret');
  });

  test('/http/: the path the policy matches is the path sent — one canonical encoding, or a 400', async () => {
    // %61 is "a": the upstream would serve /tools/admin, so the policy must see /tools/admin.
    const encoded = await call('/http/api/tools/%61dmin');
    assert.equal(encoded.status, 403, encoded.body);
    assert.match(encoded.body, /rule no-admin-tool/);
    for (const path of [
      '/http/api/tools/admin;x=1',
      '/http/api/tools/x/..;/admin',
      '/http/api/tools/%EF%BC%8E%EF%BC%8E/admin',
      '/http/api/tools/x%252F..%252Fadmin',
    ]) {
      const res = await call(path);
      assert.equal(res.status, 400, `${path}: ${res.body}`);
      assert.equal((JSON.parse(res.body) as { error: string }).error, 'bad_path', path);
    }
    assert.deepEqual(seen, []);
    const ok = await call('/http/api/call/%77eather%20now?q=a%2Fb&x=%7e');
    assert.equal(ok.status, 200, ok.body);
    assert.deepEqual(seen, [{ method: 'GET', url: '/call/weather%20now?q=a%2Fb&x=%7e' }]);
    const received = log.appended.find((e) => e.correlationId === String(ok.headers['audit-id']) && e.payload.case === 'requestReceived')?.payload;
    assert.equal(received?.case === 'requestReceived' && received.value.attributes?.http?.path, '/call/weather%20now');
  });

  test('the built-in protocols are unchanged beside it: /http/ reads the path and answers JSON', async () => {
    const ok = await call('/http/api/call/admin');
    assert.equal(ok.status, 200, ok.body);
    assert.deepEqual(seen, [{ method: 'GET', url: '/call/admin' }]);
    const unknown = await call('/http/nope/x');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers['content-type'], 'application/json');
    assert.equal((JSON.parse(unknown.body) as { error: string }).error, 'unknown_connection');
  });
});

describe('protocol table and routes', () => {
  const table = new ProtocolTable([...DEFAULT_PROTOCOLS, toyProtocol]);

  test('a URL finds the protocol of its prefix; a kind finds its first protocol, an unknown kind the first one', () => {
    assert.equal(table.byPath('/toy/api/x'), toyProtocol);
    assert.equal(table.byPath('/k8s/c/api'), DEFAULT_PROTOCOLS[0]);
    assert.equal(table.byPath('/toys/api'), undefined);
    assert.equal(table.byPath('/toy'), undefined);
    assert.equal(table.forKind(ConnectionKind.Http), DEFAULT_PROTOCOLS[1]);
    assert.equal(table.forKind(undefined), DEFAULT_PROTOCOLS[0]);
  });

  test('prefixes are /<name>/ and unique', () => {
    assert.throws(() => new ProtocolTable([toyProtocol, { ...toyProtocol }]), /share the prefix \/toy\//);
    assert.throws(() => new ProtocolTable([{ ...toyProtocol, prefix: '/toy' }]), /not of the form/);
    assert.throws(() => new ProtocolTable([]), /at least one protocol/);
  });

  test('a route splits the connection from the upstream path and query', () => {
    assert.deepEqual(routeFromPath(toyProtocol, '/toy/api/call/x?a=1'), { protocol: toyProtocol, connectionName: 'api', upstreamPath: '/call/x?a=1' });
    assert.deepEqual(routeFromPath(toyProtocol, '/toy/api?a=1'), { protocol: toyProtocol, connectionName: 'api', upstreamPath: '/?a=1' });
    assert.deepEqual(routeFromPath(toyProtocol, '/toy/api'), { protocol: toyProtocol, connectionName: 'api', upstreamPath: '/' });
  });
});
