/**
 * Masking at the edge, end to end: real kubectl through the edge against the API-server fixture
 * (get -o json / -o yaml / jsonpath, describe, the default Table, get -w, create secret with a
 * protobuf body), and a scripted upstream for what the fixture does not do (gzip/deflate/br
 * bodies, protobuf and unknown content types, watch events split across chunks, truncation).
 * Planted values must never reach the client, the event log, or the SQLite and ClickHouse
 * audit stores.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { startKubeApiServer, type KubeApiServer } from '@portcullis/kube-sandbox';
import { createInProcessBus, type BusHandle } from '@portcullis/bus';
import { decisionReply, decodeDecisionRequest, encodeDecisionReply, QueueGroups, Streams, Subjects } from '@portcullis/contracts';
import { evaluate, parsePolicy } from '@portcullis/policy-engine';
import { DevIssuer, TokenVerifier } from '@portcullis/identity';
import { loadOrCreateDevTls } from '@portcullis/tls';
import { silentLogger } from '@portcullis/common';
import { AuditPublisher, ConnectionRegistry, createEdgeMasking, createUpstreamConnection, DecisionClient, EdgePipeline, EdgeServer } from '@portcullis/gateway';
import { ClickHouseAuditSink, SqliteAuditSink, toAuditRow, AUDIT_COLUMNS } from '@portcullis/audit-store';
import { edgeRequest } from '../support/gateway-https.js';
import { eventually } from '../support/eventually.js';
import { kubectl, tempDir } from '../support/portcullis-process.js';
import { spawnKubectl } from '../support/kube-edge.js';
import { WebSocket } from 'ws';
import { MASK_MARKER } from '@portcullis/masking';
import { sharedClickHouseUrl, uniqueName } from '../harness/services.js';
import { leakForms, leaksIn } from '../support/leak-corpus.js';
import { RecordingLog } from '../support/recording-log.js';
import { BodyDigest } from '@portcullis/masking';

const bodyDigest = new BodyDigest('edge-masking-test-body-key-0123456789');

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: t, version: "m1" }
maskingProfiles: [secrets]
rules:
  - id: discovery
    match: { verbs: [get], nonResourcePaths: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"] }
    effect: allow
  - id: masked
    match: { groups: [bots], connections: [k, h] }
    effect: allow
    mask: secrets
  - id: plain
    match: { groups: [bots], connections: [plain] }
    effect: allow
`;

// Planted values seeded into the fixture or sent by clients; none may come out anywhere.
const PLANTED = {
  seedPw: 'S3cr3t-default!',
  prodPw: 'pr0d-Passw0rd',
  applied: 'Planted-LastApplied-Papa-31',
  envPw: 'Planted-Env-Quebec-42',
  cmPw: 'Planted-ConfigMap-Romeo-53',
  created: 'Planted-Created-Sierra-64',
  createdToken: 'Planted-Created-Tango-75',
  scripted: 'Planted-Scripted-Uniform-86',
  watched: 'Planted-Watched-Victor-97',
  // Found by the value detectors (a GitHub token), wherever it is printed.
  logged: 'ghp_PlantedLoggedWhiskey0123456789abcdefAB',
  echoed: 'ghp_PlantedEchoedXray0123456789abcdefABCDE',
} as const;
const ALL_PLANTED = Object.values(PLANTED);
const b64 = (s: string): string => Buffer.from(s).toString('base64');

type Script = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

describe('masking at the edge', { timeout: 180_000 }, () => {
  const dir = tempDir('edge-masking');
  const cache = join(dir, 'kube-cache');
  let fixture: KubeApiServer;
  let handle: BusHandle;
  let log: RecordingLog;
  let server: EdgeServer;
  let scripted: Server;
  let url: string;
  let ca: string;
  let token: string;
  let kubeconfig: string;
  let plainKubeconfig: string;
  const scripts = new Map<string, Script>();
  const received: { path: string; headers: IncomingMessage['headers'] }[] = [];

  before(async () => {
    fixture = await startKubeApiServer({ requestLog: { max: 10_000 } });
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    fixture.store.put('secrets', {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'applied',
        namespace: 'default',
        creationTimestamp: now,
        annotations: {
          'kubectl.kubernetes.io/last-applied-configuration': `${JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'applied', namespace: 'default' }, stringData: { password: PLANTED.applied } })}\n`,
        },
      },
      type: 'Opaque',
      data: { password: b64(PLANTED.applied) },
    });
    fixture.store.put('pods', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'envpod', namespace: 'default', creationTimestamp: now },
      spec: {
        containers: [
          {
            name: 'c',
            image: 'nginx',
            env: [
              { name: 'DB_PASSWORD', value: PLANTED.envPw },
              { name: 'LOG_LEVEL', value: 'info' },
            ],
          },
        ],
      },
      status: { phase: 'Running' },
    });
    fixture.store.put('configmaps', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cm-secret', namespace: 'default', creationTimestamp: now },
      data: { 'db-password': PLANTED.cmPw, mode: 'fast' },
    });

    scripted = createServer((req, res) => {
      received.push({ path: req.url ?? '', headers: req.headers });
      const path = (req.url ?? '').split('?')[0]!;
      const script = scripts.get(path) ?? (req.url?.includes('watch=') ? scripts.get(`${path}?watch`) : undefined);
      if (script !== undefined) {
        void script(req, res);
        return;
      }
      // Everything else goes to the fixture (discovery, lists), as a transparent proxy.
      const headers = { ...req.headers, authorization: `Bearer ${fixture.token}` };
      delete headers.host;
      const up = httpsRequest(`${fixture.url}${req.url ?? '/'}`, { method: req.method, headers, ca: fixture.caPem }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    });
    scripted.listen(0, '127.0.0.1');
    await once(scripted, 'listening');
    const scriptedPort = (scripted.address() as { port: number }).port;

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
    const registry = new ConnectionRegistry([
      createUpstreamConnection({ name: 'k', type: 'kubernetes', server: fixture.url, caPem: fixture.caPem, token: fixture.token }),
      createUpstreamConnection({ name: 'plain', type: 'kubernetes', server: fixture.url, caPem: fixture.caPem, token: fixture.token }),
      createUpstreamConnection({ name: 'h', type: 'kubernetes', server: `http://127.0.0.1:${scriptedPort}`, impersonate: false }),
    ]);
    const pipeline = new EdgePipeline({
      nodeId: 'edge-mask',
      connections: registry,
      verifier: new TokenVerifier({
        issuers: [{ issuer: issuer.issuer, audiences: ['portcullis'], algorithms: ['ES256'], keys: { jwks: issuer.jwks() } }],
        maxTokenLifetimeMs: 3_600_000,
        clockSkewMs: 5_000,
      }),
      decisions: new DecisionClient(handle.bus, 2_000),
      audit: new AuditPublisher(log, 2_000, silentLogger),
      logger: silentLogger,
      upstreamTimeoutMs: 10_000,
      masking: createEdgeMasking({
        profiles: { secrets: {} },
        auditProfile: 'secrets',
        maxObjectBytes: 8 * 1024 * 1024,
        requestCaptureBytes: 1024 * 1024,
        excerptBytes: 4096,
        bodyDigest,
      }),
    });
    server = new EdgeServer({ host: '127.0.0.1', port: 0, tls, pipeline, logger: silentLogger });
    const bound = await server.listen();
    url = `https://127.0.0.1:${bound.port}`;
    const kc = (connection: string) => `apiVersion: v1
kind: Config
clusters:
- name: edge
  cluster:
    server: ${url}/k8s/${connection}
    certificate-authority-data: ${b64(ca)}
users:
- name: bot
  user:
    token: ${token}
contexts:
- name: edge
  context: { cluster: edge, user: bot, namespace: default }
current-context: edge
`;
    kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, kc('k'));
    plainKubeconfig = join(dir, 'kubeconfig-plain');
    writeFileSync(plainKubeconfig, kc('plain'));
  });

  after(async () => {
    server.closeAll();
    await server.close();
    scripted.closeAllConnections();
    scripted.close();
    await fixture.close();
    await handle.close();
  });

  beforeEach(() => {
    scripts.clear();
    received.length = 0;
  });

  const get = (path: string, headers: Record<string, string> = {}) =>
    edgeRequest(`${url}${path}`, { ca, headers: { authorization: `Bearer ${token}`, ...headers } });
  const noLeak = (text: string, what: string) => assert.deepEqual(leaksIn(text, ALL_PLANTED), [], `${what} leaked a planted value`);

  describe('real kubectl through the edge', () => {
    test('baseline: without a mask the planted values are there (the test can see a leak)', async () => {
      const r = await kubectl(plainKubeconfig, cache, ['get', 'secrets', '-o', 'json']);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.includes(b64(PLANTED.seedPw)));
    });

    const cases: { args: string[]; expect: RegExp }[] = [
      { args: ['get', 'secrets', '-o', 'json'], expect: /"name": "db-credentials"/ },
      { args: ['get', 'secrets', '-A', '-o', 'yaml'], expect: /name: db-credentials/ },
      { args: ['get', 'secret', 'db-credentials', '-o', 'jsonpath={.data.password}'], expect: new RegExp(b64('***masked***').replace(/[+/=]/g, '\\$&')) },
      { args: ['get', 'secret', 'applied', '-o', 'jsonpath={.metadata.annotations}'], expect: /last-applied-configuration/ },
      { args: ['describe', 'secret', 'db-credentials'], expect: /password:\s+12 bytes/ },
      { args: ['get', 'secrets'], expect: /db-credentials\s+Opaque/ },
      { args: ['get', 'pod', 'envpod', '-o', 'json'], expect: /"name": "DB_PASSWORD"/ },
      { args: ['get', 'configmap', 'cm-secret', '-o', 'yaml'], expect: /mode: fast/ },
      { args: ['get', 'secrets,configmaps,pods', '-o', 'json'], expect: /"kind": "List"/ },
    ];
    for (const c of cases) {
      test(`kubectl ${c.args.join(' ')}: planted values never in stdout`, async () => {
        const r = await kubectl(kubeconfig, cache, c.args);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, c.expect);
        noLeak(r.stdout + r.stderr, `kubectl ${c.args.join(' ')}`);
      });
    }

    test('kubectl create secret generic --from-literal (protobuf request body): response masked, audit copy decoded and masked', async () => {
      const r = await kubectl(kubeconfig, cache, [
        'create',
        'secret',
        'generic',
        'created',
        `--from-literal=password=${PLANTED.created}`,
        `--from-literal=token=${PLANTED.createdToken}`,
        '-o',
        'json',
      ]);
      assert.equal(r.code, 0, r.stderr);
      noLeak(r.stdout, 'create secret output');
      assert.equal(fixture.store.get('secrets', 'default', 'created')?.['data'] !== undefined, true, 'the secret was really created');
      const completed = await eventually('the create completion', () =>
        log.appended.find((e) => e.payload.case === 'requestCompleted' && e.payload.value.requestBody?.contentType.includes('protobuf') === true),
      );
      assert.equal(completed.payload.case, 'requestCompleted');
      const body = completed.payload.case === 'requestCompleted' ? completed.payload.value.requestBody : undefined;
      assert.equal(body?.decoding, 'protobuf', body?.note);
      assert.match(body?.excerpt ?? '', /"name":"created"/);
      assert.match(body?.sha256 ?? '', new RegExp(`^hmac-sha256:${bodyDigest.keyId}:[0-9a-f]{64}$`));
      assert.ok((body?.maskedFields ?? 0) >= 2);
    });

    test('kubectl get secrets -w: the watched event is masked', async () => {
      scripts.set('/api/v1/namespaces/default/secrets?watch', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        const event = JSON.stringify({
          type: 'ADDED',
          object: {
            kind: 'Secret',
            apiVersion: 'v1',
            metadata: { name: 'watched', namespace: 'default', resourceVersion: '999', creationTimestamp: '2026-01-01T00:00:00Z' },
            type: 'Opaque',
            data: { password: b64(PLANTED.watched) },
          },
        });
        res.end(`${event}\n`);
      });
      const r = await kubectl(kubeconfig, cache, ['--server', `${url}/k8s/h`, 'get', 'secrets', '-w', '-o', 'json', '--output-watch-events'], 30_000);
      assert.match(r.stdout, /"watched"/, r.stderr);
      noLeak(r.stdout + r.stderr, 'kubectl get -w');
      const watch = received.find((x) => x.path.includes('watch='));
      assert.equal(watch?.headers['accept-encoding'], 'identity');
      assert.doesNotMatch(String(watch?.headers['accept']), /protobuf/);
    });
  });

  describe('upstream representations and Accept games', () => {
    const secretJson = JSON.stringify({ kind: 'Secret', apiVersion: 'v1', metadata: { name: 'x' }, data: { password: b64(PLANTED.scripted) } });
    const path = '/api/v1/namespaces/default/secrets/x';
    const respond =
      (headers: Record<string, string>, body: Buffer | string): Script =>
      (_req, res) => {
        res.writeHead(200, headers);
        res.end(body);
      };

    const masked: { name: string; script: Script; headers?: Record<string, string> }[] = [
      {
        name: 'gzip body although identity was asked for',
        script: respond({ 'content-type': 'application/json', 'content-encoding': 'gzip' }, gzipSync(secretJson)),
        headers: { 'accept-encoding': 'gzip' },
      },
      { name: 'deflate body', script: respond({ 'content-type': 'application/json', 'content-encoding': 'deflate' }, deflateSync(secretJson)) },
      { name: 'brotli body', script: respond({ 'content-type': 'application/json', 'content-encoding': 'br' }, brotliCompressSync(secretJson)) },
      {
        name: 'client asks for protobuf only',
        script: respond({ 'content-type': 'application/json' }, secretJson),
        headers: { accept: 'application/vnd.kubernetes.protobuf' },
      },
      { name: 'client asks */*', script: respond({ 'content-type': 'application/json' }, secretJson), headers: { accept: '*/*' } },
      {
        name: 'client asks gzip only',
        script: respond({ 'content-type': 'application/json; charset=utf-8' }, secretJson),
        headers: { 'accept-encoding': 'gzip;q=1, identity;q=0' },
      },
      {
        name: 'Table with includeObject=Object',
        script: respond(
          { 'content-type': 'application/json;as=Table;v=v1;g=meta.k8s.io' },
          JSON.stringify({
            kind: 'Table',
            apiVersion: 'meta.k8s.io/v1',
            metadata: {},
            columnDefinitions: [],
            rows: [{ cells: ['x'], object: JSON.parse(secretJson) as unknown }],
          }),
        ),
        headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' },
      },
      {
        name: 'secret split across many tiny network chunks',
        script: async (_req, res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          for (let i = 0; i < secretJson.length; i += 3) {
            res.write(secretJson.slice(i, i + 3));
            await new Promise((r) => setImmediate(r));
          }
          res.end();
        },
      },
      {
        name: 'a 3 MiB single-line Secret',
        script: respond(
          { 'content-type': 'application/json' },
          JSON.stringify({ kind: 'Secret', apiVersion: 'v1', data: { big: b64('z'.repeat(3 * 1024 * 1024)), password: b64(PLANTED.scripted) } }),
        ),
      },
    ];
    for (const c of masked) {
      test(`${c.name}: masked, decoded, sent as identity JSON`, async () => {
        scripts.set(path, c.script);
        const res = await get(`/k8s/h${path}`, c.headers);
        assert.equal(res.status, 200, res.body.slice(0, 300));
        noLeak(res.body, c.name);
        assert.equal(res.headers['content-encoding'], undefined);
        assert.equal(res.headers['x-portcullis-masked'], 'secrets');
        assert.ok(res.body.includes(b64('***masked***')));
        const up = received.find((r) => r.path.startsWith(path));
        assert.equal(up?.headers['accept-encoding'], 'identity');
        assert.doesNotMatch(String(up?.headers['accept']), /protobuf|\*\/\*/);
      });
    }

    const withheld: { name: string; script: Script; why: RegExp }[] = [
      {
        name: 'protobuf response',
        script: respond({ 'content-type': 'application/vnd.kubernetes.protobuf' }, Buffer.concat([Buffer.from('k8s\0'), Buffer.from(PLANTED.scripted)])),
        why: /application\/vnd.kubernetes.protobuf/,
      },
      {
        name: 'YAML response',
        script: respond({ 'content-type': 'application/yaml' }, `data:\n  password: ${b64(PLANTED.scripted)}\n`),
        why: /application\/yaml/,
      },
      {
        name: 'text/plain that is not UTF-8 (binary)',
        script: respond({ 'content-type': 'text/plain' }, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(PLANTED.scripted, 'utf16le')])),
        why: /not valid UTF-8/,
      },
      {
        name: 'text/plain with NUL bytes (UTF-16 text the detectors would not see)',
        script: respond({ 'content-type': 'text/plain' }, Buffer.from(`${PLANTED.logged}\n`, 'utf16le')),
        why: /NUL bytes/,
      },
      {
        name: 'text in another charset',
        script: respond({ 'content-type': 'text/plain; charset=iso-8859-1' }, PLANTED.scripted),
        why: /charset=iso-8859-1/,
      },
      { name: 'text/html response', script: respond({ 'content-type': 'text/html' }, PLANTED.scripted), why: /text\/html/ },
      {
        name: 'no content type',
        script: (_q, res) => {
          res.removeHeader('content-type');
          res.writeHead(200);
          res.end(secretJson);
        },
        why: /no content type/,
      },
      {
        name: 'unknown content encoding',
        script: respond({ 'content-type': 'application/json', 'content-encoding': 'compress' }, secretJson),
        why: /content encoding "compress"/,
      },
      {
        name: 'gzip that is not gzip',
        script: respond({ 'content-type': 'application/json', 'content-encoding': 'gzip' }, secretJson),
        why: /could not be decoded/,
      },
      { name: 'JSON that is not JSON', script: respond({ 'content-type': 'application/json' }, `password=${PLANTED.scripted}`), why: /not valid JSON/ },
      {
        name: 'an object over masking.maxObjectBytes',
        script: respond({ 'content-type': 'application/json' }, JSON.stringify({ data: { a: 'q'.repeat(9 * 1024 * 1024), b: b64(PLANTED.scripted) } })),
        why: /maxObjectBytes/,
      },
    ];
    for (const c of withheld) {
      test(`${c.name}: withheld with a 502 Status, never leaked`, async () => {
        scripts.set(path, c.script);
        const res = await get(`/k8s/h${path}`);
        assert.equal(res.status, 502, res.body.slice(0, 300));
        const status = JSON.parse(res.body) as { kind: string; message: string };
        assert.equal(status.kind, 'Status');
        assert.match(status.message, c.why);
        assert.match(status.message, /withheld/);
        noLeak(res.body, c.name);
      });
    }

    test('a list item over masking.maxObjectBytes after the list began: the connection is cut, nothing unmasked follows', async () => {
      scripts.set(
        path,
        respond(
          { 'content-type': 'application/json' },
          JSON.stringify({
            kind: 'SecretList',
            items: [JSON.parse(secretJson) as unknown, { data: { a: 'q'.repeat(9 * 1024 * 1024), b: b64(PLANTED.scripted) } }],
          }),
        ),
      );
      const res = await get(`/k8s/h${path}`).then(
        () => assert.fail('the response must not complete'),
        (err: Error) => err,
      );
      assert.match(res.message, /aborted|socket hang up|ECONNRESET/);
      const completed = await eventually('the failed completion', () =>
        log.appended.find((e) => e.payload.case === 'requestCompleted' && e.payload.value.error.includes('object_too_large')),
      );
      assert.ok(completed);
    });

    test('a body cut off after masking began: the connection is cut, nothing unmasked follows', async () => {
      scripts.set(path, (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`{"kind":"SecretList","apiVersion":"v1","items":[${secretJson},{"data":{"password":"${b64(PLANTED.scripted)}`);
        setTimeout(() => res.socket?.destroy(), 50);
      });
      const res = await get(`/k8s/h${path}`).catch((err: Error) => ({ status: 0, body: err.message, headers: {} }));
      noLeak(res.body, 'truncated body');
    });

    test('watch: each event is masked and sent before the next one exists; chunk-split events too', async () => {
      let sendSecond: (() => void) | undefined;
      scripts.set('/api/v1/namespaces/default/secrets?watch', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json;stream=watch' });
        const e1 = `${JSON.stringify({ type: 'ADDED', object: JSON.parse(secretJson) as unknown })}\n`;
        // The first event arrives split into 5-byte chunks.
        void (async () => {
          for (let i = 0; i < e1.length; i += 5) {
            res.write(e1.slice(i, i + 5));
            await new Promise((r) => setImmediate(r));
          }
        })();
        sendSecond = () =>
          res.end(
            `${JSON.stringify({ type: 'MODIFIED', object: { kind: 'Secret', apiVersion: 'v1', metadata: { name: 'x' }, stringData: { k: PLANTED.watched } } })}\n`,
          );
      });
      const lines: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const req = httpsRequest(`${url}/k8s/h/api/v1/namespaces/default/secrets?watch=true`, { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            buf += d;
            let nl = buf.indexOf('\n');
            while (nl !== -1) {
              lines.push(buf.slice(0, nl));
              buf = buf.slice(nl + 1);
              nl = buf.indexOf('\n');
              // The second event is only produced once the client holds the first.
              if (lines.length === 1) sendSecond?.();
            }
          });
          res.on('end', () => resolve());
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(lines.length, 2);
      assert.equal((JSON.parse(lines[0]!) as { type: string }).type, 'ADDED');
      assert.equal((JSON.parse(lines[1]!) as { type: string }).type, 'MODIFIED');
      noLeak(lines.join('\n'), 'watch stream');
    });

    test('the unmasked fast path is untouched: compressed bodies pass through as sent', async () => {
      const res = await edgeRequest(`${url}/k8s/plain/api/v1/namespaces/default/secrets/db-credentials`, {
        ca,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-portcullis-masked'], undefined);
      assert.ok(res.body.includes(b64(PLANTED.seedPw)));
    });
  });

  describe('logs and exec output: text masked line by line by the value detectors', () => {
    const logPath = '/api/v1/namespaces/default/pods/logpod/log';

    test('kubectl logs: a token printed in the log arrives masked, every other byte as written', async () => {
      fixture.logs.append('default', 'envpod', 'c', `connecting with ${PLANTED.logged} to the API`);
      fixture.logs.append('default', 'envpod', 'c', 'connected, nothing secret here');
      const r = await kubectl(kubeconfig, cache, ['logs', 'envpod']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`connecting with ${MASK_MARKER.replace(/\*/g, '\\*')} to the API\nconnected, nothing secret here\n$`));
      noLeak(r.stdout + r.stderr, 'kubectl logs');
    });

    test('kubectl logs -f: lines arrive masked while the stream is open', async () => {
      const follow = spawnKubectl(kubeconfig, cache, ['logs', '-f', 'envpod']);
      try {
        await follow.waitFor(/nothing secret here/);
        fixture.logs.append('default', 'envpod', 'c', `live: Authorization: Bearer ${PLANTED.logged}`);
        await follow.waitFor(/live: Authorization: Bearer \*\*\*masked\*\*\*\n/);
        fixture.logs.append('default', 'envpod', 'c', 'live: second line');
        await follow.waitFor(/live: second line\n/);
        assert.equal(follow.child.exitCode, null, 'the stream is still open');
        noLeak(follow.output(), 'kubectl logs -f');
      } finally {
        await follow.stop();
      }
    });

    test('a log whose token is split across chunks, a line without its newline, and the audit excerpt', async () => {
      const text = `one\ntoken=${PLANTED.logged} two\nlast line without newline ${PLANTED.logged}`;
      scripts.set(logPath, async (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        for (let i = 0; i < text.length; i += 3) {
          res.write(text.slice(i, i + 3));
          await new Promise((r) => setImmediate(r));
        }
        res.end();
      });
      const res = await get(`/k8s/h${logPath}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-portcullis-masked'], 'secrets');
      assert.equal(res.body, text.replaceAll(PLANTED.logged, MASK_MARKER));
    });

    test('a followed log streams: each line is sent before the upstream writes the next', async () => {
      let next: (() => void) | undefined;
      scripts.set(logPath, (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write(`first ${PLANTED.logged}\n`);
        next = () => res.end('second\n');
      });
      const lines: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const req = httpsRequest(`${url}/k8s/h${logPath}?follow=true`, { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            lines.push(d);
            if (lines.length === 1) next?.();
          });
          res.on('end', () => resolve());
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      assert.deepEqual(lines, [`first ${MASK_MARKER}\n`, 'second\n']);
    });

    test('binary after text: the text is sent masked, then the connection is cut; nothing unreadable follows', async () => {
      scripts.set(logPath, (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('readable line\n');
        setTimeout(() => res.end(Buffer.concat([Buffer.from([0xc3, 0x28]), Buffer.from(PLANTED.scripted)])), 50);
      });
      const res = await get(`/k8s/h${logPath}`).catch((err: Error) => ({ status: 0, body: err.message, headers: {} }));
      noLeak(res.body, 'binary log');
    });

    test('a masked number the masker does not mask stays exactly as the upstream wrote it', async () => {
      const body = `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x","generation":12345678901234567890},"data":{"password":"${b64(PLANTED.scripted)}"},"ratio":1.0}`;
      scripts.set('/api/v1/namespaces/default/secrets/x', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      });
      const res = await get('/k8s/h/api/v1/namespaces/default/secrets/x');
      assert.equal(res.status, 200);
      assert.equal(res.body.trim(), body.replace(b64(PLANTED.scripted), b64(MASK_MARKER)));
    });

    test('kubectl exec -i -- cat: a token echoed back arrives masked, and the recording holds no token', async () => {
      const cat = spawnKubectl(kubeconfig, cache, ['exec', '-i', 'envpod', '--', 'cat']);
      cat.child.stdin?.end(`echo me: ${PLANTED.echoed}\n`);
      await new Promise<void>((r) => cat.child.once('exit', () => r()));
      assert.equal(cat.child.exitCode, 0, cat.output());
      assert.equal(cat.output(), `echo me: ${MASK_MARKER}\n`);
      const frames = await eventually('the cat session recorded', () => {
        const ended = log.appended.find(
          (e) =>
            e.type === 'session.ended' &&
            log.appended.some(
              (x) => x.correlationId === e.correlationId && x.type === 'session.started' && (x.payload.value as { command: string[] }).command[0] === 'cat',
            ),
        );
        if (ended === undefined) return undefined;
        return log.appended
          .filter((e) => e.correlationId === ended.correlationId && e.payload.case === 'sessionFrames')
          .flatMap((e) => (e.payload.case === 'sessionFrames' ? e.payload.value.frames : []));
      });
      const recorded = (ch: number): string =>
        frames
          .filter((f) => f.channel === ch)
          .map((f) => Buffer.from(f.data).toString())
          .join('');
      assert.equal(recorded(1), `echo me: ${MASK_MARKER}\n`);
      assert.equal(recorded(0), `echo me: ${MASK_MARKER}\n`);
    });

    test('a raw WebSocket exec: a token split across two stdin (so two stdout) frames arrives masked', async () => {
      const got: Buffer[] = [];
      const ws = new WebSocket(
        `${url.replace('https', 'wss')}/k8s/k/api/v1/namespaces/default/pods/envpod/exec?command=cat&stdin=true&stdout=true`,
        ['v5.channel.k8s.io'],
        {
          ca,
          headers: { authorization: `Bearer ${token}` },
        },
      );
      const closed = new Promise<void>((r) => ws.once('close', () => r()));
      await once(ws, 'open');
      ws.on('message', (m: Buffer) => got.push(m));
      const half = 20;
      ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(`split ${PLANTED.echoed.slice(0, half)}`)]));
      ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(`${PLANTED.echoed.slice(half)} done\n`)]));
      ws.send(Buffer.from([255, 0]));
      await closed;
      const stdout = got
        .filter((m) => m[0] === 1)
        .map((m) => m.subarray(1).toString())
        .join('');
      assert.equal(stdout, `split ${MASK_MARKER} done\n`);
      assert.ok(got.some((m) => m[0] === 3 && m.subarray(1).toString().includes('Success')));
    });

    test('what cannot be masked is refused before it is forwarded: exec over SPDY, port-forward', async () => {
      const before = fixture.requests.length;
      for (const [path, upgrade] of [
        ['/api/v1/namespaces/default/pods/envpod/exec?command=cat&stdin=true&stdout=true', 'SPDY/3.1'],
        ['/api/v1/namespaces/default/pods/envpod/portforward?ports=8080', 'websocket'],
      ] as const) {
        const res = await edgeRequest(`${url}/k8s/k${path}`, {
          ca,
          headers: {
            authorization: `Bearer ${token}`,
            connection: 'Upgrade',
            upgrade,
            'sec-websocket-version': '13',
            'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
            'sec-websocket-protocol': upgrade === 'websocket' ? 'v4.channel.k8s.io' : '',
            'x-stream-protocol-version': 'v4.channel.k8s.io',
          },
        });
        assert.equal(res.status, 502, res.body);
        assert.match(res.body, /cannot be masked/);
      }
      assert.equal(fixture.requests.slice(before).filter((r) => /exec|portforward/.test(r.path)).length, 0);
    });
  });

  describe('the audit trail', () => {
    test('completion events carry masked excerpts, hashes and counts', async () => {
      const res = await get('/k8s/k/api/v1/namespaces/default/secrets');
      assert.equal(res.status, 200);
      const id = String(res.headers['audit-id']);
      const completed = await eventually('completion', () => log.appended.find((e) => e.correlationId === id && e.payload.case === 'requestCompleted'));
      assert.equal(completed.payload.case, 'requestCompleted');
      if (completed.payload.case !== 'requestCompleted') return;
      const v = completed.payload.value;
      assert.equal(v.maskProfile, 'secrets');
      assert.ok(v.maskedFields >= 5, `masked ${v.maskedFields}`);
      assert.equal(v.responseBody?.sha256, bodyDigest.of(res.body), 'the keyed digest of the masked text the client received');
      assert.ok((v.responseBody?.excerpt.length ?? 0) > 0 && (v.responseBody?.excerpt.length ?? 0) <= 4096);
      assert.equal(v.responseBody?.bytes, Buffer.byteLength(res.body));
    });

    test('no planted value anywhere in the event log, the SQLite store or ClickHouse', async () => {
      // Everything above ran through the edge; let the last completions land.
      await eventually('completions of every request', () => {
        const received = log.appended.filter((e) => e.type === 'request.received').length;
        const done = log.appended.filter((e) => e.type === 'request.completed').length;
        return done >= received ? true : undefined;
      });
      assert.ok(log.appended.length > 50);
      const forms = ALL_PLANTED.flatMap(leakForms);
      for (const bytes of log.bytes) for (const f of forms) assert.equal(bytes.includes(Buffer.from(f)), false, `an event holds ${f}`);

      const rows = log.appended.map(toAuditRow);
      const sqlite = new SqliteAuditSink({ path: join(dir, 'audit.db') });
      await sqlite.migrate();
      await sqlite.insert(rows);
      const stored = sqlite.database.prepare('SELECT * FROM audit_events').all() as Record<string, unknown>[];
      assert.equal(stored.length, rows.length);
      // data and payload_pb are the event bytes, searched above; the rest as text.
      noLeak(stored.map((r) => JSON.stringify({ ...r, data: null, payload_pb: null })).join('\n'), 'SQLite audit rows');
      assert.ok(
        stored.some((r) => String(r['request_body_excerpt']).includes('"created"')),
        'the create body excerpt is stored',
      );
      await sqlite.close();

      const database = uniqueName('mask_audit');
      const ch = new ClickHouseAuditSink({ url: await sharedClickHouseUrl(), database });
      await ch.migrate();
      await ch.insert(rows);
      const back = await ch.query({ limit: 10_000 });
      assert.equal(back.length, rows.length);
      const text = back.map((r) => AUDIT_COLUMNS.map((c) => String(r[c.name])).join('\t')).join('\n');
      noLeak(text, 'ClickHouse audit rows');
      assert.ok(back.some((r) => r.masked_fields > 0 && r.response_body_sha256.startsWith(`hmac-sha256:${bodyDigest.keyId}:`)));
      await ch.close();
    });
  });
});
