/**
 * The security suite (`npm run test:security`): one table of real attacks against a cluster of
 * separate processes (two edges, policy, two approval processes, an audit writer with the replay
 * API, NATS, Redis, ClickHouse, the API-server fixture, a fake Slack and a real OIDC provider over
 * HTTPS), each with the refusal it must get. It gathers the key cases of the identity, Kubernetes,
 * masking and approval suites and adds request smuggling, oversized and slow requests, TLS
 * versions and ciphers, a real certificate, every administrative endpoint, and tampering with the
 * audit log (approval rows deleted or edited by hand, a chain's tail deleted, a checkpoint
 * altered) against `audit verify`, on copies of the ClickHouse table. At the end it
 * searches every process's output, the ClickHouse rows, the raw JetStream messages and what Slack
 * received for every secret the suite planted. Prints `case | expected | observed` and
 * `N passed, N failed`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { UnsecuredJWT, type JWTPayload } from 'jose';
import { connect as natsConnect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { auditMessageEvents, BucketKeys, Buckets, Consumers, natsInboxPrefix, Streams } from '@portcullis/contracts';
import { BodyDigest } from '@portcullis/masking';
import { createCertificateAuthority, issueServerCertificate, loadOrCreateDevTls } from '@portcullis/tls';
import { freePort, sharedClickHouseUrl, uniqueName } from '../harness/services.js';
import { CLUSTER_SECRETS, SIGNING_SECRET, approvalIdIn, startCluster, type Cluster } from '../support/cluster.js';
import { edgeRequest } from '../support/gateway-https.js';
import { eventually } from '../support/eventually.js';
import { startFakeOidcProvider, type FakeOidcProvider, type ProviderKey } from '../support/fake-oidc-provider.js';
import { leakForms, leaksIn } from '../support/leak-corpus.js';
import { runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from '../support/portcullis-process.js';
import { ResultTable } from '../support/result-table.js';
import { spawnKubectl } from '../support/kube-edge.js';
import { WebSocket } from 'ws';
import { MASK_MARKER } from '@portcullis/masking';

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: security-suite, version: "s1" }
maskingProfiles: [secrets]
rules:
  - id: discovery
    match: { verbs: [get], nonResourcePaths: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"] }
    effect: allow
  - id: no-shells
    match: { resources: [pods/exec, pods/attach], namespaces: [default] }
    effect: deny
    message: no shells through the gateway
  - id: delete-configmap-needs-sre
    match: { verbs: [delete], resources: [configmaps] }
    effect: require_approval
    approval: { approverGroups: [sre], quorum: 1, scope: once, wait: 1s, channel: "#approvals" }
  - id: secrets-masked
    match: { resources: [secrets] }
    effect: mask
    mask: secrets
  - id: agent-output-masked
    match: { resources: [pods/log, pods/exec, pods/attach, pods/portforward], namespaces: [agents] }
    effect: mask
    mask: secrets
  - id: agent-shells
    match: { resources: [pods/exec, pods/attach, pods/portforward], namespaces: [agents] }
    effect: allow
  - id: read
    match: { verbs: [get, list, watch] }
    effect: allow
  - id: write-default
    match: { verbs: [create, update, patch], namespaces: [default] }
    effect: allow
`;

/** Values planted in the upstream's Secrets and in request bodies: masked everywhere, logged nowhere. */
const PLANTED = {
  secretData: 'Pl4nted-Security-Suite-Passw0rd!',
  secretData2: 'planted-second-secret-value-7f3a9c',
  requestBody: 'planted-request-body-secret-41d2e8',
  // Tokens the value detectors know (GitHub), printed by a pod: in its log and echoed by exec.
  logToken: 'ghp_PlantedSecuritySuiteLog0123456789abcdef',
  execToken: 'ghp_PlantedSecuritySuiteExec0123456789abcde',
} as const;
const HEADERS_TIMEOUT_MS = 1000;
/** A name the edge serves as besides its URL's host (`edge.hostNames`), as a load balancer would send it. */
const LB_NAME = 'gateway.internal';
const MAX_BODY = 1024 * 1024;
const ADMIN = { id: 'platform-admin', secret: 'platform-admin-secret-9', subject: 'pat', groups: ['platform-admins'] };
const AUDITOR = { id: 'auditor', secret: 'auditor-secret-4711', subject: 'sec-team', groups: ['auditors'] };

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const nowS = (): number => Math.floor(Date.now() / 1000);

/** What a raw exchange over TLS gave: the bytes the server sent, whether it closed, and when. */
interface RawAnswer {
  readonly text: string;
  readonly closed: boolean;
  readonly ms: number;
}

/** Sends `bytes` over a fresh TLS connection and collects the answer until the server closes or `waitMs` passes. */
function rawTls(port: number, ca: string, bytes: string | Buffer, waitMs = 5000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => socket.write(bytes));
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed, ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', (err: Error) => {
      if (chunks.length > 0 || done) finish(true);
      else reject(err);
    });
  });
}

/** A chunked request body of `size` bytes (64 KiB chunks) with its final zero-length chunk. */
function chunkedBody(size: number): string {
  const chunk = 64 * 1024;
  let out = '';
  for (let left = size; left > 0; left -= chunk) {
    const n = Math.min(chunk, left);
    out += `${n.toString(16)}\r\n${'a'.repeat(n)}\r\n`;
  }
  return `${out}0\r\n\r\n`;
}

/** A TLS handshake with client options; resolves with the negotiated protocol/cipher or the error. */
function handshake(port: number, opts: ConnectionOptions): Promise<{ ok: boolean; detail: string; code: string }> {
  return new Promise((resolve) => {
    let socket: ReturnType<typeof tlsConnect>;
    try {
      socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ...opts }, onConnect);
    } catch (err) {
      resolve({ ok: false, detail: (err as Error).message, code: (err as NodeJS.ErrnoException).code ?? '' });
      return;
    }
    function onConnect(): void {
      const detail = `${socket.getProtocol() ?? '?'} ${socket.getCipher().name}`;
      socket.destroy();
      resolve({ ok: true, detail, code: '' });
    }
    socket.setTimeout(5000, () => {
      socket.destroy();
      resolve({ ok: false, detail: 'timeout', code: 'timeout' });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, detail: err.message.split('\n')[0] ?? '', code: err.code ?? '' }));
  });
}

/** The status line's code of a raw HTTP answer (0: none). */
const statusOf = (text: string): number => Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);

describe('security suite: attacks refused, secrets never leaked', { timeout: 600_000 }, () => {
  const table = new ResultTable();
  const database = uniqueName('security');
  const usedTokens: string[] = [];
  let c: Cluster;
  let idp: FakeOidcProvider;
  let stranger: FakeOidcProvider;
  let key: ProviderKey;
  let strangerKey: ProviderKey;
  let chUrl = '';
  let idpCaFile = '';
  let edgePort = 0;
  let realCertEdge: PortcullisProcess | undefined;
  let jti = 0;

  const token = async (client: string): Promise<string> => {
    const t = await c.token(client);
    if (!usedTokens.includes(t)) usedTokens.push(t);
    return t;
  };
  const claims = (over: Record<string, unknown> = {}, iss = idp.issuer): JWTPayload => {
    const t = nowS();
    const base: Record<string, unknown> = {
      iss,
      sub: 'deploy-bot',
      aud: 'portcullis',
      iat: t,
      nbf: t,
      exp: t + 300,
      jti: `sec-${++jti}`,
      client_id: 'deployer',
      groups: ['bots'],
    };
    for (const [k, v] of Object.entries(over)) {
      if (v === undefined) delete base[k];
      else base[k] = v;
    }
    return base;
  };
  const hs256 = (payload: JWTPayload, secret: string): string => {
    const head = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: key.kid })).toString('base64url');
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
    return `${head}.${body}.${createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`;
  };
  const edge = (path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
    edgeRequest(`${c.edges[0]}${path}`, { ca: c.caPem, ...opts });
  const bearer = async (client: string): Promise<Record<string, string>> => ({ authorization: `Bearer ${await token(client)}` });
  const forwardedSince = (n: number): number => c.fixture.requests.length - n;

  before(async () => {
    chUrl = await sharedClickHouseUrl();
    const idpDir = tempDir('security-idp');
    const idpTls = await loadOrCreateDevTls(join(idpDir, 'tls'), ['127.0.0.1', 'localhost']);
    idp = await startFakeOidcProvider(idpTls);
    key = await idp.newKey('sec-k1');
    idp.published = [key];
    stranger = await startFakeOidcProvider(idpTls);
    strangerKey = await stranger.newKey('sec-k1');
    stranger.published = [strangerKey];
    idpCaFile = join(idpDir, 'idp-ca.pem');
    writeFileSync(idpCaFile, idpTls.caPem);
    c = await startCluster({
      pendingTtl: '5m',
      policy: POLICY,
      audit: { clickHouseUrl: chUrl, database, writers: 1 },
      edge: { headersTimeout: `${HEADERS_TIMEOUT_MS}ms`, maxRequestBodyBytes: MAX_BODY, admin: { groups: ['platform-admins'] }, hostNames: [LB_NAME] },
      issuers: [{ issuer: idp.issuer, audiences: ['portcullis'], algorithms: ['ES256'], caFile: idpCaFile }],
      clients: [ADMIN, AUDITOR],
      // Behind a proxy that normalises paths more leniently than the edge parses them: the edge must forward only what it decided on.
      lenientUpstream: true,
    });
    edgePort = Number(new URL(c.edges[0]!).port);
    c.fixture.store.put('secrets', {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'planted', namespace: 'default' },
      type: 'Opaque',
      data: { password: b64(PLANTED.secretData), other: b64(PLANTED.secretData2) },
    });
  });

  after(async () => {
    await realCertEdge?.stop();
    await c?.stop();
    await idp?.close();
    await stranger?.close();
  });

  test('identity: attack tokens are refused with 401 and never forwarded', async () => {
    // Warm the provider's keys, so "unknown kid" runs against a populated cache.
    const warm = await edge('/k8s/prod/api/v1/namespaces/default/pods', { headers: { authorization: `Bearer ${await idp.sign(key, claims())}` } });
    table.add('identity: a good token from the configured issuer (control)', '200', String(warm.status), warm.status === 200);
    const t = nowS();
    const attacks: { name: string; token: () => string | Promise<string>; code?: number }[] = [
      { name: 'no token at all', token: () => '' },
      { name: 'garbage bearer', token: () => 'not-a-jwt' },
      { name: 'alg: none', token: () => new UnsecuredJWT(claims()).encode() },
      { name: 'HS256 signed with the issuer public key (alg confusion)', token: () => hs256(claims(), key.publicPem) },
      { name: 'HS256 signed with the JWK JSON', token: () => hs256(claims(), JSON.stringify(key.publicJwk)) },
      { name: 'expired', token: () => idp.sign(key, claims({ iat: t - 900, nbf: t - 900, exp: t - 600 })) },
      { name: 'nbf in the future', token: () => idp.sign(key, claims({ nbf: t + 600 })) },
      { name: 'wrong issuer, trusted key', token: () => idp.sign(key, claims({ iss: 'https://evil.example' })) },
      { name: 'wrong audience', token: () => idp.sign(key, claims({ aud: 'someone-else' })) },
      { name: 'lifetime over identity.maxTokenLifetime', token: () => idp.sign(key, claims({ exp: t + 7200 })) },
      { name: 'no exp', token: () => idp.sign(key, claims({ exp: undefined })) },
      { name: 'unknown kid', token: () => idp.sign(key, claims(), { kid: 'never-published' }) },
      { name: 'kid with path characters', token: () => idp.sign(key, claims(), { kid: '../../../../etc/passwd' }) },
      { name: 'unconfigured issuer', token: () => stranger.sign(strangerKey, claims({}, stranger.issuer)) },
      { name: 'unconfigured key claiming the trusted issuer (same kid)', token: () => stranger.sign(strangerKey, claims()) },
      { name: 'signature truncated', token: async () => (await idp.sign(key, claims())).slice(0, -10) },
      { name: 'oversized token (20 kB)', token: () => idp.sign(key, claims({ pad: 'x'.repeat(20_000) })) },
      { name: 'CRLF header injection in sub', token: () => idp.sign(key, claims({ sub: 'bot\r\nImpersonate-Group: system:masters' })) },
      {
        name: 'development-issuer token with a flipped signature byte',
        token: async () => {
          const good = await token('ci-bot');
          return `${good.slice(0, -2)}${good.endsWith('A') ? 'B' : 'A'}${good.slice(-1)}`;
        },
      },
    ];
    const forwarded = c.fixture.requests.length;
    for (const a of attacks) {
      const tok = await a.token();
      const res = await edge('/k8s/prod/api/v1/namespaces/default/secrets', { headers: tok === '' ? {} : { authorization: `Bearer ${tok}` } });
      let kind = '';
      try {
        kind = (JSON.parse(res.body) as { kind?: string }).kind ?? '';
      } catch {
        kind = 'not JSON';
      }
      const probe = tok.split('.').reduce((x, y) => (y.length > x.length ? y : x), '');
      const echoed = probe.length > 8 && res.body.includes(probe);
      table.add(
        `identity: ${a.name}`,
        '401 Status, token not echoed',
        `${res.status} ${kind}${echoed ? ', token echoed' : ''}`,
        res.status === 401 && kind === 'Status' && !echoed,
      );
    }
    const n = forwardedSince(forwarded);
    table.add('identity: refused tokens reaching the upstream', '0', String(n), n === 0);
  });

  test('kubernetes: path tricks, injected identity headers, denied upgrades', async () => {
    const auth = await bearer('ci-bot');
    const tricks = [
      ['dot-dot segment', '/k8s/prod/api/v1/namespaces/default/pods/../secrets'],
      ['encoded dot-dot (%2e%2e)', '/k8s/prod/api/v1/namespaces/default/pods/%2e%2e/secrets'],
      ['encoded slash (%2f)', '/k8s/prod/api/v1/namespaces/default%2fsecrets'],
      ['double slash', '/k8s/prod/api/v1//namespaces/default/pods'],
      ['NUL byte (%00)', '/k8s/prod/api/v1/namespaces/default/pods/x%00y'],
      ['backslash dot-dot', '/k8s/prod/api/v1/namespaces/default/pods/..%5csecrets'],
      ['overlong path (9000 bytes)', `/k8s/prod/api/v1/namespaces/default/pods/${'a'.repeat(9000)}`],
      ['dot segment (/./)', '/k8s/prod/api/v1/./namespaces/default/secrets'],
      ['double-encoded slashes and dots (%252F..)', '/k8s/prod/api/v1/namespaces/default/configmaps/x%252F..%252F..%252Fsecrets'],
      ['double-encoded dot-dot (%252e%252e)', '/k8s/prod/api/v1/namespaces/default/configmaps/%252e%252e/secrets'],
      ['fullwidth dot-dot (%EF%BC%8E%EF%BC%8E)', '/k8s/prod/api/v1/namespaces/default/configmaps/%EF%BC%8E%EF%BC%8E/secrets'],
      ['fullwidth slash (%EF%BC%8F)', '/k8s/prod/api/v1/namespaces/default/configmaps/x%EF%BC%8F..%EF%BC%8F..%EF%BC%8Fsecrets'],
      ['overlong UTF-8 dot-dot (%C0%AE%C0%AE)', '/k8s/prod/api/v1/namespaces/default/configmaps/%C0%AE%C0%AE/secrets'],
      ['overlong UTF-8 slash (%C0%AF)', '/k8s/prod/api/v1/namespaces/default/configmaps/x%C0%AF..%C0%AF..%C0%AFsecrets'],
      [';params on the resource (secrets;x=1)', '/k8s/prod/api/v1/namespaces/default/secrets;x=1'],
      ['";" hiding a dot-dot (..;)', '/k8s/prod/api/v1/namespaces/default/configmaps/..;/secrets'],
      ['upper-case resource (SECRETS)', '/k8s/prod/api/v1/namespaces/default/SECRETS'],
    ] as const;
    // The fixture is lenient: straight to it (the gateway's credential, no edge), a double-encoded path is the Secrets list.
    const lenient = await edgeRequest(`${c.fixture.url}/api/v1/namespaces/default/configmaps/x%252F..%252F..%252Fsecrets`, {
      ca: c.fixture.caPem,
      headers: { authorization: `Bearer ${c.fixture.token}` },
    });
    const kindServed = /"kind":"(\w+)"/.exec(lenient.body)?.[1] ?? '';
    table.add(
      'kubernetes: the lenient upstream, asked directly for configmaps/x%252F..%252F..%252Fsecrets (control)',
      '200 SecretList',
      `${lenient.status} ${kindServed}`,
      lenient.status === 200 && kindServed === 'SecretList',
    );
    const forwarded = c.fixture.requests.length;
    for (const [name, path] of tricks) {
      const res = await edge(path, { headers: auth });
      table.add(
        `kubernetes: path trick, ${name}`,
        '400 BadRequest Status',
        `${res.status} ${/"reason":"(\w+)"/.exec(res.body)?.[1] ?? ''}`,
        res.status === 400,
      );
    }
    table.add('kubernetes: path tricks reaching the upstream', '0', String(forwardedSince(forwarded)), forwardedSince(forwarded) === 0);
    const unknown = await edge('/k8s/nope/api/v1/pods', { headers: auth });
    table.add('kubernetes: unknown connection', '404 Status', String(unknown.status), unknown.status === 404);

    const before = c.fixture.requests.length;
    const injected = await edge('/k8s/prod/api/v1/namespaces/default/pods', {
      headers: {
        ...auth,
        'Impersonate-User': 'admin',
        'impersonate-group': 'system:masters',
        'IMPERSONATE-EXTRA-scopes': 'all',
        'X-Remote-User': 'root',
        'x-remote-group': 'system:masters',
      },
    });
    const seen = c.fixture.requests.slice(before).at(-1);
    const raw = JSON.stringify(seen?.headers ?? {});
    // The sandbox records the Authorization credential as a fingerprint: the gateway's token, not the client's.
    const gatewayCredential =
      seen?.authorization?.sandboxToken === true && seen.authorization.fingerprint !== c.fixture.fingerprint(auth['authorization']!.slice(7));
    const clean =
      injected.status === 200 &&
      seen?.impersonation?.user === 'portcullis:ci-bot' &&
      gatewayCredential &&
      !/system:masters|"admin"|"root"|scopes/.test(raw) &&
      !raw.includes(auth['authorization']!.slice(7));
    table.add(
      'kubernetes: client Impersonate-*/X-Remote-* headers',
      'dropped; upstream sees portcullis:ci-bot and the gateway credential',
      `${injected.status}, impersonated ${seen?.impersonation?.user ?? '-'}${clean ? '' : ', injected header or client token forwarded'}`,
      clean,
    );

    const exec = await rawTls(
      edgePort,
      c.caPem,
      `GET /k8s/prod/api/v1/namespaces/default/pods/web-0/exec?command=sh&stdin=true&stdout=true HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth['authorization']}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n`,
    );
    table.add(
      'kubernetes: exec under a deny rule (WebSocket upgrade)',
      '403 before any upgrade, naming the rule',
      `${statusOf(exec.text)}${exec.text.includes('no-shells') ? ' rule named' : ''}`,
      statusOf(exec.text) === 403 && exec.text.includes('no-shells'),
    );
    const h2c = await rawTls(
      edgePort,
      c.caPem,
      `GET /k8s/prod/api/v1/namespaces/default/pods HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth['authorization']}\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n`,
    );
    table.add('kubernetes: upgrade to an unknown protocol (h2c)', '400', String(statusOf(h2c.text)), statusOf(h2c.text) === 400);
    // exec;x reads as subresource "exec;x" (a get, allowed), and as exec to an upstream that drops ;params.
    const beforeExec = c.fixture.requests.length;
    const paramExec = await rawTls(
      edgePort,
      c.caPem,
      `GET /k8s/prod/api/v1/namespaces/default/pods/web-0/exec;x?command=sh&stdin=true&stdout=true HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth['authorization']}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n`,
    );
    table.add(
      'kubernetes: exec hidden behind ;params (exec;x, WebSocket upgrade)',
      '400 before any upgrade, not forwarded',
      `${statusOf(paramExec.text)}, ${forwardedSince(beforeExec)} forwarded`,
      statusOf(paramExec.text) === 400 && forwardedSince(beforeExec) === 0,
    );
  });

  test('masking: planted Secret values never reach the client in any representation', async () => {
    const auth = await bearer('ci-bot');
    const planted = [PLANTED.secretData, PLANTED.secretData2];
    const reads: [string, string, Record<string, string>][] = [
      ['get secret (JSON)', '/api/v1/namespaces/default/secrets/planted', {}],
      ['list secrets', '/api/v1/namespaces/default/secrets', {}],
      ['list secrets as Table', '/api/v1/namespaces/default/secrets', { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' }],
      ['get secret asking for protobuf', '/api/v1/namespaces/default/secrets/planted', { accept: 'application/vnd.kubernetes.protobuf' }],
      ['get secret asking for gzip', '/api/v1/namespaces/default/secrets/planted', { 'accept-encoding': 'gzip' }],
      ['watch secrets (1 s)', '/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=1', {}],
    ];
    for (const [name, path, headers] of reads) {
      const res = await edge(`/k8s/prod${path}`, { headers: { ...auth, ...headers } });
      const leaks = leaksIn(res.body, planted);
      const masked = res.headers['x-portcullis-masked'] === 'secrets';
      table.add(
        `masking: ${name}`,
        '200, masked, no planted value in any encoding',
        `${res.status}${masked ? ' masked' : ' NOT marked masked'}, ${leaks.length} planted values`,
        res.status === 200 && masked && leaks.length === 0,
      );
    }
    const yaml = await c.kube('ci-bot', 0, ['get', 'secret', 'planted', '-n', 'default', '-o', 'yaml']);
    const yamlLeaks = leaksIn(yaml.stdout + yaml.stderr, planted);
    table.add(
      'masking: kubectl get secret -o yaml',
      'exit 0, no planted value',
      `exit ${yaml.code}, ${yamlLeaks.length} planted values`,
      yaml.code === 0 && yamlLeaks.length === 0,
    );
    const create = await edge('/k8s/prod/api/v1/namespaces/default/secrets', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'created-by-suite' }, stringData: { token: PLANTED.requestBody } }),
    });
    const createLeaks = leaksIn(create.body, [PLANTED.requestBody]);
    table.add(
      'masking: create secret (stringData in the request)',
      '201, response masked',
      `${create.status}, ${createLeaks.length} planted values`,
      create.status === 201 && createLeaks.length === 0,
    );

    // A one-word Secret value: every other byte of the body is known to a reader of the log (the masked excerpt).
    const oneWordBody = (word: string): string =>
      JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'one-word' }, stringData: { password: word } });
    const oneWord = await edge('/k8s/prod/api/v1/namespaces/default/secrets', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: oneWordBody('hunter2'),
    });
    const auditId = String(oneWord.headers['audit-id']);
    const stored = await eventually(
      'the one-word create in ClickHouse',
      async () => {
        const sql = `SELECT request_body_sha256 FROM audit_events WHERE correlation_id = '${auditId}' AND type = 'request.completed' FORMAT TSV`;
        const text = (await (await fetch(`${chUrl}/?database=${database}`, { method: 'POST', body: sql })).text()).trim();
        return text === '' ? undefined : text;
      },
      30_000,
    ).catch(() => '');
    const dictionary = ['password', '123456', 'letmein', 'qwerty', 'hunter2', 'admin', 'secret', 'dragon', 'monkey', 'changeme'];
    const plainHits = dictionary.filter((w) => stored.includes(createHash('sha256').update(oneWordBody(w)).digest('hex')));
    // Control: the key holder (the auditors) finds the word, so the body template is right.
    const key = new BodyDigest(readFileSync(join(c.dir, 'state', 'audit-body-key'), 'utf8').trim());
    const keyHits = dictionary.filter((w) => key.matches(oneWordBody(w), stored));
    table.add(
      'audit: brute-forcing a one-word Secret body against its stored digest',
      'no candidate matches without the key (the key holder finds it)',
      `${oneWord.status}, ${plainHits.length} plain SHA-256 hits, key holder found ${JSON.stringify(keyHits)}`,
      oneWord.status === 201 && stored.startsWith('hmac-sha256:') && plainHits.length === 0 && keyHits.join() === 'hunter2',
    );
  });

  test('masking: pod logs and exec output under a mask rule arrive masked, streams still flow', async () => {
    const marker = MASK_MARKER.replace(/\*/g, '\\*');
    c.fixture.store.put('pods', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'agent-0', namespace: 'agents' },
      spec: { containers: [{ name: 'app', image: 'registry.example/agent:1' }] },
      status: { phase: 'Running' },
    });
    c.fixture.logs.append('agents', 'agent-0', 'app', `calling the API with token ${PLANTED.logToken}`);
    const logs = await c.kube('ci-bot', 0, ['logs', '-n', 'agents', 'agent-0']);
    const logsMasked = new RegExp(`calling the API with token ${marker}\n$`).test(logs.stdout);
    table.add(
      'masking: kubectl logs, a token printed by the pod',
      'exit 0, the line arrives with the token masked',
      `exit ${logs.code}, ${logsMasked ? 'masked' : 'NOT masked'}, ${leaksIn(logs.stdout + logs.stderr, [PLANTED.logToken]).length} planted values`,
      logs.code === 0 && logsMasked && leaksIn(logs.stdout + logs.stderr, [PLANTED.logToken]).length === 0,
    );

    const follow = spawnKubectl(join(c.dir, 'kubeconfig-ci-bot-0'), join(c.dir, 'cache-ci-bot-0'), ['logs', '-f', '-n', 'agents', 'agent-0']);
    let streamed = false;
    try {
      await follow.waitFor(/calling the API with token/);
      c.fixture.logs.append('agents', 'agent-0', 'app', `live: Authorization: Bearer ${PLANTED.logToken}`);
      await follow.waitFor(new RegExp(`live: Authorization: Bearer ${marker}\n`));
      streamed = follow.child.exitCode === null;
    } catch {
      streamed = false;
    } finally {
      await follow.stop();
    }
    const followLeaks = leaksIn(follow.output(), [PLANTED.logToken]).length;
    table.add(
      'masking: kubectl logs -f, a token in a line written while following',
      'the line arrives masked before the stream ends',
      `${streamed ? 'arrived while open' : 'did not arrive while open'}, ${followLeaks} planted values`,
      streamed && followLeaks === 0,
    );

    const cat = spawnKubectl(join(c.dir, 'kubeconfig-ci-bot-0'), join(c.dir, 'cache-ci-bot-0'), ['exec', '-i', '-n', 'agents', 'agent-0', '--', 'cat']);
    cat.child.stdin?.end(`export TOKEN=${PLANTED.execToken}\n`);
    await new Promise<void>((r) => (cat.child.exitCode !== null ? r() : cat.child.once('exit', () => r())));
    table.add(
      'masking: kubectl exec -i -- cat echoing a token',
      'exit 0, stdout has the token masked',
      `exit ${cat.child.exitCode ?? '-'}, ${JSON.stringify(cat.output().slice(0, 60))}`,
      cat.child.exitCode === 0 && cat.output() === `export TOKEN=${MASK_MARKER}\n`,
    );

    // Two stdin frames in one write: the pod echoes them as two stdout frames, the token split between them.
    const auth = await bearer('ci-bot');
    const got: Buffer[] = [];
    const ws = new WebSocket(
      `${c.edges[0]!.replace('https', 'wss')}/k8s/prod/api/v1/namespaces/agents/pods/agent-0/exec?command=cat&stdin=true&stdout=true`,
      ['v5.channel.k8s.io'],
      { ca: c.caPem, headers: auth },
    );
    const closed = new Promise<void>((r) => ws.once('close', () => r()));
    ws.on('error', () => undefined);
    ws.on('message', (m: Buffer) => got.push(m));
    await new Promise<void>((r) => (ws.readyState === ws.OPEN ? r() : ws.once('open', () => r())));
    ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(`split ${PLANTED.execToken.slice(0, 18)}`)]));
    ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(`${PLANTED.execToken.slice(18)} end\n`)]));
    ws.send(Buffer.from([255, 0]));
    await closed;
    const stdout = got
      .filter((m) => m[0] === 1)
      .map((m) => m.subarray(1).toString())
      .join('');
    table.add(
      'masking: exec output with a token split across two WebSocket frames',
      'arrives masked',
      JSON.stringify(stdout.slice(0, 60)),
      stdout === `split ${MASK_MARKER} end\n`,
    );

    const before = c.fixture.requests.filter((r) => r.path.includes('/exec')).length;
    const spdy = await rawTls(
      edgePort,
      c.caPem,
      `GET /k8s/prod/api/v1/namespaces/agents/pods/agent-0/exec?command=cat&stdin=true&stdout=true HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth['authorization']}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n`,
    );
    const spdyForwarded = c.fixture.requests.filter((r) => r.path.includes('/exec')).length - before;
    table.add(
      'masking: exec over SPDY under a mask rule (its frames cannot be masked)',
      '502 before any upgrade, naming why; not forwarded',
      `${statusOf(spdy.text)}${spdy.text.includes('cannot be masked') ? ' named' : ''}, ${spdyForwarded} forwarded`,
      statusOf(spdy.text) === 502 && spdy.text.includes('cannot be masked') && spdyForwarded === 0,
    );

    const big = '12345678901234567890';
    const bigBody = `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"big-number","generation":${big}},"stringData":{"token":"${PLANTED.requestBody}"}}`;
    const created = await edge('/k8s/prod/api/v1/namespaces/default/secrets', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: bigBody,
    });
    const excerpt = await eventually(
      'the audit row of the big-number create',
      async () => {
        const q = `SELECT request_body_excerpt FROM audit_events WHERE request_body_excerpt LIKE '%big-number%' LIMIT 1 FORMAT TabSeparatedRaw`;
        const text = (await (await fetch(`${chUrl}/?database=${database}`, { method: 'POST', body: q })).text()).trim();
        return text === '' ? undefined : text;
      },
      30_000,
    ).catch(() => '');
    table.add(
      'masking: a big integer (2^64-ish) in a masked body',
      'kept exactly (not 12345678901234567000); the secret beside it masked',
      `${created.status}, ${excerpt.includes(`"generation":${big}`) ? 'exact' : 'NOT exact'}, ${leaksIn(excerpt, [PLANTED.requestBody]).length} planted values`,
      created.status === 201 && excerpt.includes(`"generation":${big}`) && leaksIn(excerpt, [PLANTED.requestBody]).length === 0,
    );
  });

  test('approvals: bound to the exact request, only approvers decide, Slack callbacks verified', async () => {
    for (const n of ['sec-a', 'sec-b', 'sec-own', 'sec-slack']) c.putConfigMap('default', n);
    const held = await c.raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/sec-a');
    const id = approvalIdIn(held.body);
    table.add(
      'approvals: a held delete nobody decided',
      '403 approval pending, not forwarded',
      `${held.status}, ${c.deletes('/api/v1/namespaces/default/configmaps/sec-a')} forwarded`,
      held.status === 403 && c.deletes('/api/v1/namespaces/default/configmaps/sec-a') === 0,
    );
    const anon = await c.api(0, 'POST', `/approvals/${id}/approve`, undefined, { reason: 'x' });
    table.add('approvals API: approve without a token', '401', String(anon.status), anon.status === 401);
    const dave = await c.api(0, 'POST', `/approvals/${id}/approve`, 'dev-dave', { reason: 'x' });
    table.add(
      'approvals API: approve by a non-approver (group dev)',
      '403 not_an_approver',
      `${dave.status} ${String(dave.body['error'])}`,
      dave.status === 403,
    );
    const bot = await c.api(1, 'POST', `/approvals/${id}/approve`, 'ci-bot', { reason: 'x' });
    table.add('approvals API: the requester (not an approver) approves', '403', `${bot.status} ${String(bot.body['error'])}`, bot.status === 403);
    const daveGet = await c.api(0, 'GET', `/approvals/${id}`, 'dev-dave');
    table.add('approvals API: a stranger reads an approval', '404 (not visible)', String(daveGet.status), daveGet.status === 404);
    const list = await c.api(0, 'GET', '/approvals', undefined);
    table.add('approvals API: list without a token', '401', String(list.status), list.status === 401);
    const garbage = await edgeRequest(`${c.approvals[0]}/approvals`, { ca: c.caPem, headers: { authorization: 'Bearer garbage.token.here' } });
    table.add('approvals API: list with a forged token', '401', String(garbage.status), garbage.status === 401);
    const bigBody = await edgeRequest(`${c.approvals[0]}/approvals/${id}/approve`, {
      method: 'POST',
      ca: c.caPem,
      headers: { ...(await bearer('sre-alice')), 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'x'.repeat(70_000) }),
    });
    table.add('approvals API: 70 kB body', '413', String(bigBody.status), bigBody.status === 413);

    const own = await c.raw('sre-bob', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/sec-own');
    const ownId = approvalIdIn(own.body);
    const self = await c.api(0, 'POST', `/approvals/${ownId}/approve`, 'sre-bob', { reason: 'mine' });
    table.add(
      'approvals API: an approver approves their own request',
      '403 self_approval',
      `${self.status} ${String(self.body['error'])}`,
      self.status === 403,
    );

    const ok = await c.api(0, 'POST', `/approvals/${id}/approve`, 'sre-alice', { reason: 'suite' });
    table.add('approvals API: an sre approver approves (control)', '200 granted', `${ok.status} ${String(ok.body['state'])}`, ok.status === 200);
    const other = await c.raw('ci-bot', 1, 'DELETE', '/api/v1/namespaces/default/configmaps/sec-b', { 'x-portcullis-approval': id });
    table.add(
      'approvals: X-Portcullis-Approval of another request',
      '403, not forwarded',
      `${other.status}, ${c.deletes('/api/v1/namespaces/default/configmaps/sec-b')} forwarded`,
      other.status === 403 && c.deletes('/api/v1/namespaces/default/configmaps/sec-b') === 0,
    );

    const slackHeld = await c.raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/sec-slack');
    const sid = approvalIdIn(slackHeld.body);
    const now = nowS();
    const slackCases: [string, () => { body: string; headers: Record<string, string> }, number][] = [
      [
        'signed with another secret',
        () => c.slack.interaction({ approvalId: sid, action: 'approve', userId: 'U0ALICE', signingSecret: 'attacker-secret' }),
        401,
      ],
      [
        'stale (6 minutes old)',
        () => c.slack.interaction({ approvalId: sid, action: 'approve', userId: 'U0ALICE', signingSecret: SIGNING_SECRET, timestampSec: now - 360 }),
        401,
      ],
      [
        'body changed after signing',
        () => {
          const g = c.slack.interaction({ approvalId: sid, action: 'approve', userId: 'U0MALLORY', signingSecret: SIGNING_SECRET });
          return { ...g, body: g.body.replace('U0MALLORY', 'U0ALICE') };
        },
        401,
      ],
      [
        'unsigned',
        () => {
          const g = c.slack.interaction({ approvalId: sid, action: 'approve', userId: 'U0ALICE', signingSecret: SIGNING_SECRET });
          return { ...g, headers: { 'content-type': 'application/x-www-form-urlencoded' } };
        },
        401,
      ],
    ];
    for (const [name, make, want] of slackCases) {
      const r = await c.slack.send(`${c.approvals[1]}/slack/interactions`, make(), c.caPem);
      table.add(`slack: interaction ${name}`, String(want), String(r.status), r.status === want);
    }
    const answered = c.slack.responses.length;
    const mallory = c.slack.interaction({ approvalId: sid, action: 'approve', userId: 'U0MALLORY', signingSecret: SIGNING_SECRET });
    const mr = await c.slack.send(`${c.approvals[0]}/slack/interactions`, mallory, c.caPem);
    const replay = await c.slack.send(`${c.approvals[1]}/slack/interactions`, mallory, c.caPem);
    table.add('slack: a genuine interaction replayed', '409', String(replay.status), replay.status === 409);
    // The worker answers the clicking user (response_url) once it has refused the decision.
    const told = await eventually('the Slack worker to answer mallory', () => c.slack.responses.slice(answered)[0], 20_000);
    const state = (await c.api(0, 'GET', `/approvals/${sid}`, 'sre-alice')).body['state'];
    table.add(
      'slack: Approve clicked by a Slack user outside the approver groups',
      'accepted (200), refused by the worker: still pending',
      `${mr.status}, ${String(state)}, told "${JSON.stringify(told).slice(0, 80)}"`,
      mr.status === 200 && state === 'pending',
    );
  });

  test('audit log: approval rows deleted or edited by hand, a chain tail deleted, a checkpoint altered — audit verify names each', async () => {
    const ch = async (query: string, db = database): Promise<string> => {
      const res = await fetch(`${chUrl}/?database=${db}`, { method: 'POST', body: query });
      const text = await res.text();
      if (!res.ok) throw new Error(`ClickHouse: ${text}`);
      return text;
    };
    const edgeConfig = c.configs.get('edge-a')!;
    const copyConfig = (db: string): string => {
      const file = join(c.dir, `verify-${db}.yaml`);
      writeFileSync(file, readFileSync(edgeConfig, 'utf8').replaceAll(database, db));
      return file;
    };
    type Report = {
      findings: { kind: string; chainId: string; seq: number; message: string }[];
      chains: { chainId: string; toSeq: number }[];
      checkpointedChains: number;
    };
    const verify = async (config: string, ...extra: string[]): Promise<{ code: number; report: Report; stderr: string }> => {
      const r = await runPortcullis(['audit', 'verify', '-o', 'json', ...extra, '--config', config]);
      return { code: r.code, report: JSON.parse(r.stdout || '{"findings":[],"chains":[],"checkpointedChains":0}') as Report, stderr: r.stderr };
    };
    const exported = async (): Promise<string[]> =>
      (await runPortcullis(['audit', 'checkpoints', '--config', edgeConfig])).stdout
        .trim()
        .split('\n')
        .filter((l) => l !== '');
    const newestSeq = (lines: string[]): Map<string, number> => {
      const m = new Map<string, number>();
      for (const l of lines) {
        const k = JSON.parse(l) as { chainId: string; seq: number };
        m.set(k.chainId, Math.max(m.get(k.chainId) ?? 0, k.seq));
      }
      return m;
    };
    // Quiet log: every chain stored, verified, and its end covered by a checkpoint.
    const intact = await eventually(
      'every chain stored and checkpointed to its end',
      async () => {
        const v = await verify(edgeConfig);
        const heads = newestSeq(await exported());
        return v.code === 0 && v.report.chains.length > 0 && v.report.chains.every((k) => heads.get(k.chainId) === k.toSeq) ? v : undefined;
      },
      30_000,
    );
    table.add(
      'audit verify: the suite’s log as stored, every chain checkpointed',
      'OK, every chain end checked',
      `exit ${intact.code}, ${intact.report.findings.length} findings, ${intact.report.checkpointedChains}/${intact.report.chains.length} ends checked`,
      intact.code === 0 && intact.report.checkpointedChains === intact.report.chains.length,
    );
    /**
     * A copy of the audit table without the rows `where` selects (never the suite's own table), and
     * the checkpoints it is checked against: taken once ClickHouse holds every checkpointed event (a
     * read's checkpoint is signed at its JetStream ack, its row lands with the writer's next batch),
     * so the copy misses only what `where` removed. Later reads' checkpoints are not in the file.
     */
    const copyWithout = async (name: string, where: string): Promise<{ db: string; config: string; checkpoints: string }> => {
      const lines = await eventually('ClickHouse holds every checkpointed event', async () => {
        const now = await exported();
        const stored = new Map(
          (await ch(`SELECT chain_id, max(chain_seq) FROM ${database}.audit_events FINAL GROUP BY chain_id FORMAT TSV`))
            .trim()
            .split('\n')
            .map((l) => l.split('\t'))
            .map(([chain, seq]) => [chain!, Number(seq)] as const),
        );
        return [...newestSeq(now)].every(([chain, seq]) => (stored.get(chain) ?? 0) >= seq) ? now : undefined;
      });
      const checkpoints = join(c.dir, `checkpoints-${name}.jsonl`);
      writeFileSync(checkpoints, `${lines.join('\n')}\n`);
      const db = await copyDb(name, where);
      return { db, config: copyConfig(db), checkpoints };
    };
    const copyDb = async (name: string, where: string): Promise<string> => {
      const db = uniqueName(name);
      await ch(`CREATE DATABASE ${db}`, 'default');
      await ch(`CREATE TABLE ${db}.audit_events AS ${database}.audit_events`);
      await ch(`INSERT INTO ${db}.audit_events SELECT * FROM ${database}.audit_events FINAL WHERE NOT (${where})`);
      return db;
    };

    const approved = (await ch(`SELECT chain_id, chain_seq FROM audit_events FINAL WHERE type = 'approval.approved' ORDER BY chain_id, chain_seq FORMAT TSV`))
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    const deletedCopy = await copyWithout('sec_appr_del', `type IN ('approval.approved', 'approval.consumed')`);
    const deleted = await verify(deletedCopy.config, '--checkpoints', deletedCopy.checkpoints);
    const named = approved.every(([chain, seq]) =>
      deleted.report.findings.some((f) => f.kind === 'gap' && f.chainId === chain && f.message.includes(`${seq}`)),
    );
    table.add(
      `audit: the ${approved.length} approval.approved rows (who approved, why) and approval.consumed deleted from ClickHouse by hand`,
      'verify fails naming each missing seq',
      `exit ${deleted.code}: ${deleted.report.findings.map((f) => f.message.slice(0, 70)).join(' | ')}`,
      deleted.code === 1 && approved.length > 0 && named,
    );

    const editedCopy = await copyWithout('sec_appr_edit', '0');
    const editedDb = editedCopy.db;
    await ch(`ALTER TABLE ${editedDb}.audit_events UPDATE subject = 'sre-mallory' WHERE type = 'approval.approved'`);
    await eventually(
      'the mutation applied',
      async () => (await ch(`SELECT count() FROM system.mutations WHERE database = '${editedDb}' AND is_done = 0`)).trim() === '0',
    );
    const edited = await verify(editedCopy.config, '--checkpoints', editedCopy.checkpoints);
    table.add(
      'audit: the approver of an approval.approved row edited in ClickHouse',
      'verify fails: edited, column subject',
      `exit ${edited.code}: ${edited.report.findings[0]?.message.slice(0, 90) ?? 'no finding'}`,
      edited.code === 1 &&
        edited.report.findings.length >= 1 &&
        edited.report.findings.every((f) => f.kind === 'edited' && /column subject is "sre-mallory"/.test(f.message)),
    );

    const longest = [...intact.report.chains].sort((a, b) => b.toSeq - a.toSeq)[0]!;
    const cut = longest.toSeq - 2;
    const tailCopy = await copyWithout('sec_tail', `chain_id = '${longest.chainId}' AND chain_seq >= ${cut}`);
    const tail = await verify(tailCopy.config, '--checkpoints', tailCopy.checkpoints);
    table.add(
      `audit: the last 3 events of the longest chain (seq ${cut}..${longest.toSeq}) deleted`,
      `gap at seq ${cut}..${longest.toSeq} from the checkpoint`,
      `exit ${tail.code}: ${tail.report.findings[0]?.message.slice(0, 90) ?? 'no finding'}`,
      tail.code === 1 &&
        tail.report.findings.length === 1 &&
        tail.report.findings[0]!.message.includes(`missing at seq ${cut}..${longest.toSeq} of chain ${longest.chainId} (its tail)`),
    );

    const lines = await exported();
    const forgedFile = join(c.dir, 'checkpoints-forged.jsonl');
    // The newest checkpoint of that chain moved back to hide the deleted tail: seq and hash changed, signature kept.
    const at = lines.findIndex(
      (l) => (JSON.parse(l) as { chainId: string; seq: number }).chainId === longest.chainId && (JSON.parse(l) as { seq: number }).seq === longest.toSeq,
    );
    const forged = JSON.parse(lines[at]!) as Record<string, unknown>;
    writeFileSync(forgedFile, [...lines.filter((l) => !l.includes(longest.chainId)), JSON.stringify({ ...forged, seq: cut - 1 })].join('\n') + '\n');
    const refused = await verify(
      (await copyWithout('sec_tail2', `chain_id = '${longest.chainId}' AND chain_seq >= ${cut}`)).config,
      '--checkpoints',
      forgedFile,
    );
    table.add(
      'checkpoints: a checkpoint moved back (seq altered, signature kept) to hide a deleted tail',
      'refused: signature does not verify',
      `exit ${refused.code}: ${refused.report.findings.map((f) => f.kind).join(', ')}`,
      refused.code === 1 && refused.report.findings.some((f) => f.kind === 'checkpoint' && /signature does not verify/.test(f.message)),
    );

    const natsConn = await natsConnect({ servers: c.nats.url, ...c.nats.admin });
    try {
      const jsm = await jetstreamManager(natsConn);
      const purge = await jsm.streams.purge('PORTCULLIS_CHECKPOINTS').then(
        () => 'purged',
        (err: Error) => err.message,
      );
      const del = await jsm.streams.deleteMessage('PORTCULLIS_CHECKPOINTS', 1).then(
        () => 'deleted',
        (err: Error) => err.message,
      );
      table.add(
        'checkpoints: purge PORTCULLIS_CHECKPOINTS / delete a checkpoint',
        'refused by nats-server',
        `${purge} / ${del}`,
        purge !== 'purged' && del !== 'deleted',
      );
    } finally {
      await natsConn.close();
    }
  });

  test('HTTP parsing: smuggling, oversized and slow requests, HTTP/1.0 without Host', async () => {
    const auth = `Authorization: Bearer ${await token('ci-bot')}\r\n`;
    const smuggled = 'GET /k8s/prod/api/v1/namespaces/kube-system/secrets HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
    const post = (headers: string, body: string): string =>
      `POST /k8s/prod/api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Content-Type: application/json\r\n${headers}\r\n${body}`;
    const cases: [string, string, number[]][] = [
      ['Content-Length with Transfer-Encoding (CL.TE)', post('Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', `0\r\n\r\n${smuggled}`), [400]],
      ['Transfer-Encoding with Content-Length (TE.CL)', post('Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', `5c\r\n${smuggled}\r\n0\r\n\r\n`), [400]],
      ['duplicate Content-Length', post('Content-Length: 2\r\nContent-Length: 40\r\n', `{}${smuggled}`), [400]],
      ['obsolete line folding', post('Content-Length: 2\r\nX-Folded: a\r\n b\r\n', '{}'), [400]],
      ['Transfer-Encoding: chunked, identity', post('Transfer-Encoding: chunked, identity\r\n', `0\r\n\r\n${smuggled}`), [400, 501]],
      ['Transfer-Encoding: xchunked', post('Transfer-Encoding: xchunked\r\n', `0\r\n\r\n${smuggled}`), [400, 501]],
      ['space before the header colon', post('Content-Length : 2\r\n', `{}${smuggled}`), [400]],
      ['bare LF line endings', post('Content-Length: 2\n', '{}').replace(/\r\n/g, '\n'), [400]],
      [
        'oversized headers (40 kB)',
        `GET /k8s/prod/api/v1/namespaces/default/pods HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}X-Pad: ${'a'.repeat(40_000)}\r\n\r\n`,
        [431],
      ],
      ['HTTP/1.0 without Host', `GET /k8s/prod/api/v1/namespaces/default/pods HTTP/1.0\r\n${auth}\r\n`, [400]],
      ['HTTP/1.1 without Host', `GET /k8s/prod/api/v1/namespaces/default/pods HTTP/1.1\r\n${auth}\r\n`, [400]],
      ['two Host headers', `GET /k8s/prod/api/v1/namespaces/default/pods HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n${auth}\r\n`, [400]],
      [`body over edge.maxRequestBodyBytes (declared ${MAX_BODY * 2} bytes)`, post(`Content-Length: ${MAX_BODY * 2}\r\n`, '{"apiVersion":"v1"'), [413]],
      // No Content-Length to refuse up front: the edge counts the bytes and aborts the upstream request at the cap.
      [
        `body over edge.maxRequestBodyBytes (chunked, ${MAX_BODY * 2} bytes, no length declared)`,
        post('Transfer-Encoding: chunked\r\n', chunkedBody(MAX_BODY * 2)),
        [413],
      ],
    ];
    const forwarded = c.fixture.requests.length;
    for (const [name, bytes, want] of cases) {
      const r = await rawTls(edgePort, c.caPem, bytes);
      const status = statusOf(r.text);
      const responses = (r.text.match(/HTTP\/1\.[01] \d{3}/g) ?? []).length;
      table.add(
        `http: ${name}`,
        `${want.join(' or ')}, one response, connection closed`,
        `${status}, ${responses} response(s)${r.closed ? ', closed' : ', left open'}`,
        want.includes(status) && responses === 1 && r.closed,
      );
    }
    table.add('http: malformed requests reaching the upstream', '0', String(forwardedSince(forwarded)), forwardedSince(forwarded) === 0);
    // The chunked over-cap body was streaming upstream when the cap was reached: the upstream must see it cut off, never whole.
    const cut = await eventually(
      'the upstream to see the chunked over-cap body cut off',
      () => c.fixture.incompleteRequests.find((r) => r.method === 'POST'),
      10_000,
    ).catch(() => undefined);
    table.add(
      'http: chunked over-cap body as the upstream saw it',
      `aborted with at most ${MAX_BODY} bytes, never complete`,
      cut === undefined ? 'no aborted request seen' : `aborted after ${cut.bodyBytes} bytes`,
      cut !== undefined && cut.bodyBytes <= MAX_BODY,
    );
    const slow = await rawTls(
      edgePort,
      c.caPem,
      `GET /k8s/prod/api/v1/namespaces/default/pods HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}`,
      HEADERS_TIMEOUT_MS + 10_000,
    );
    const limit = HEADERS_TIMEOUT_MS + 2500;
    table.add(
      `http: slow headers (edge.headersTimeout ${HEADERS_TIMEOUT_MS} ms)`,
      `connection cut within ${limit} ms (408)`,
      `${slow.closed ? `cut after ${slow.ms} ms` : 'still open'} ${statusOf(slow.text) || 'no answer'}`,
      slow.closed && slow.ms <= limit,
    );
    const control = await rawTls(
      edgePort,
      c.caPem,
      `GET /k8s/prod/api/v1/namespaces/default/pods HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Connection: close\r\n\r\n`,
    );
    table.add('http: a well-formed request on the same socket API (control)', '200', String(statusOf(control.text)), statusOf(control.text) === 200);
    // The host a path-prefix request names: the edge's own names only (421 Misdirected Request otherwise).
    const hosts: [string, string, number][] = [
      ['a foreign Host', 'GET /k8s/prod/api/v1/namespaces/default/pods HTTP/1.1\r\nHost: evil.example\r\n', 421],
      ["a foreign Host with the edge's port", `GET /k8s/prod/api/v1/namespaces/default/pods HTTP/1.1\r\nHost: evil.example:${edgePort}\r\n`, 421],
      [
        'an absolute-form target naming a foreign host',
        'GET https://evil.example/k8s/prod/api/v1/namespaces/default/pods HTTP/1.1\r\nHost: 127.0.0.1\r\n',
        421,
      ],
      [
        'an absolute-form target naming the edge (control; its authority replaces a foreign Host)',
        `GET https://127.0.0.1:${edgePort}/k8s/prod/api/v1/namespaces/default/pods HTTP/1.1\r\nHost: evil.example\r\n`,
        200,
      ],
      [`a Host from edge.hostNames (${LB_NAME}, control)`, `GET /k8s/prod/api/v1/namespaces/default/pods HTTP/1.1\r\nHost: ${LB_NAME}\r\n`, 200],
    ];
    for (const [name, head, want] of hosts) {
      const before = c.fixture.requests.length;
      const r = await rawTls(edgePort, c.caPem, `${head}${auth}Connection: close\r\n\r\n`);
      const sent = forwardedSince(before);
      table.add(
        `http: ${name}`,
        want === 200 ? '200, forwarded' : `${want}, not forwarded`,
        `${statusOf(r.text)}, ${sent} forwarded`,
        statusOf(r.text) === want && sent === (want === 200 ? 1 : 0),
      );
    }
  });

  test('TLS: 1.2 minimum and AEAD suites only on every listener; a configured certificate replaces the dev CA', async () => {
    const listeners: [string, number][] = [
      ['edge', edgePort],
      ['approval listener', Number(new URL(c.approvals[0]!).port)],
      ['audit API', Number(new URL(c.auditApis[0]!).port)],
    ];
    const low = 'DEFAULT:@SECLEVEL=0';
    for (const [where, port] of listeners) {
      for (const version of ['TLSv1', 'TLSv1.1'] as const) {
        const r = await handshake(port, { minVersion: version, maxVersion: version, ciphers: low });
        const client = /NO_PROTOCOLS_AVAILABLE|no protocols available/i.test(r.code + r.detail);
        table.add(
          `tls: ${where}, a ${version} client`,
          'handshake refused by the server',
          client ? `client could not offer ${version}: ${r.detail}` : r.ok ? `accepted: ${r.detail}` : `refused: ${r.code}`,
          client ? undefined : !r.ok,
        );
      }
      const suites = [
        'ECDHE-ECDSA-AES128-SHA',
        'ECDHE-ECDSA-AES256-SHA384',
        'ECDHE-ECDSA-AES128-SHA256',
        'DES-CBC3-SHA',
        'RC4-SHA',
        'NULL-SHA256',
        'ECDHE-ECDSA-NULL-SHA',
        'EXP-RC4-MD5',
        'ADH-AES128-SHA',
        'AECDH-AES128-SHA',
      ];
      for (const suite of suites) {
        const r = await handshake(port, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: `${suite}:@SECLEVEL=0` });
        // A client that cannot even offer the suite (compiled out of this OpenSSL) proves nothing about the server.
        const unofferable = !r.ok && !/ALERT/i.test(r.code) && /no cipher|NO_CIPHERS|cipher match/i.test(`${r.code} ${r.detail}`);
        if (unofferable) {
          table.add(`tls: ${where}, cipher ${suite}`, 'refused', `this OpenSSL cannot offer it (${r.code || r.detail})`, undefined);
          continue;
        }
        table.add(`tls: ${where}, cipher ${suite} (TLS 1.2)`, 'handshake refused', r.ok ? `accepted: ${r.detail}` : `refused: ${r.code || r.detail}`, !r.ok);
      }
      const good = await handshake(port, {
        minVersion: 'TLSv1.2',
        maxVersion: 'TLSv1.2',
        ca: c.caPem,
        rejectUnauthorized: true,
        ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256',
      });
      table.add(`tls: ${where}, ECDHE-ECDSA-AES128-GCM-SHA256 on TLS 1.2 (control)`, 'accepted', good.ok ? good.detail : `refused: ${good.detail}`, good.ok);
      const t13 = await handshake(port, { minVersion: 'TLSv1.3', ca: c.caPem, rejectUnauthorized: true });
      table.add(`tls: ${where}, TLS 1.3 (control)`, 'accepted', t13.ok ? t13.detail : `refused: ${t13.detail}`, t13.ok);
    }

    // An edge with a certificate from another CA: it serves exactly that chain and never creates the dev CA.
    const dir = tempDir('security-realcert');
    const corpCa = await createCertificateAuthority('Example Corp Issuing CA');
    const leaf = await issueServerCertificate(corpCa, { hosts: ['localhost', '127.0.0.1'] });
    writeFileSync(join(dir, 'tls.crt'), leaf.certPem);
    writeFileSync(join(dir, 'tls.key'), leaf.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'upstream-token'), c.fixture.token, { mode: 0o600 });
    writeFileSync(join(dir, 'upstream-ca.pem'), c.fixture.caPem);
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    const port = await freePort();
    const stateDir = join(dir, 'state');
    const cfg = writeConfig(dir, 'edge.yaml', {
      node: { id: 'edge-realcert', stateDir },
      edge: { listen: { host: '127.0.0.1', port }, tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') } },
      bus: c.nats.busConfig('edge'),
      identity: { issuers: [{ issuer: idp.issuer, audiences: ['portcullis'], algorithms: ['ES256'], caFile: idpCaFile }] },
      connections: [{ name: 'prod', type: 'kubernetes', server: c.fixture.url, caFile: join(dir, 'upstream-ca.pem'), tokenFile: join(dir, 'upstream-token') }],
      policy: { file: join(dir, 'policy.yaml') },
    });
    realCertEdge = startPortcullis(['serve', 'edge', '--config', cfg]);
    await realCertEdge.waitFor(/"ready":true/, 60_000);
    const served = await new Promise<{ authorized: boolean; raw: Buffer; issuer: string; error: string }>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: corpCa.certPem }, () => {
        const peer = s.getPeerCertificate(true);
        resolve({ authorized: s.authorized, raw: peer.raw, issuer: String(peer.issuer.CN ?? ''), error: '' });
        s.destroy();
      });
      s.on('error', (err: Error) => resolve({ authorized: false, raw: Buffer.alloc(0), issuer: '', error: err.message }));
    });
    const configured = new X509Certificate(leaf.certPem).raw;
    table.add(
      'tls: edge with edge.tls.certFile from another CA',
      'serves that certificate, chain verifies against that CA',
      served.error !== ''
        ? served.error
        : `${served.authorized ? 'verified' : 'NOT verified'}, issuer "${served.issuer}", ${served.raw.equals(configured) ? 'the configured certificate' : 'ANOTHER certificate'}`,
      served.authorized && served.raw.equals(configured),
    );
    const devCa = await handshake(port, { ca: c.caPem, rejectUnauthorized: true });
    table.add(
      'tls: the same edge checked against the development CA',
      'not trusted (the dev CA signed nothing)',
      devCa.ok ? 'trusted' : `untrusted: ${devCa.code}`,
      !devCa.ok,
    );
    const created = existsSync(join(stateDir, 'tls'));
    table.add(
      'tls: development CA files in the state dir of an edge with a real certificate',
      'none created',
      created ? 'stateDir/tls exists' : 'none',
      !created,
    );
  });

  test('administrative endpoints refuse anonymous and unprivileged callers', async () => {
    const explain = (headers: Record<string, string>) =>
      edge('/admin/policy/explain', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ subject: 'ci-bot', groups: ['bots'], connection: 'prod', verb: 'get', resource: 'secrets', namespace: 'default' }),
      });
    const explainCases: [string, Record<string, string>, number][] = [
      ['anonymous', {}, 401],
      ['a forged token', { authorization: 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' }, 401],
      ['a bot (group bots)', await bearer('ci-bot'), 403],
      ['an approver (group sre, not admin)', await bearer('sre-alice'), 403],
      ['an admin (control)', await bearer(ADMIN.id), 200],
    ];
    for (const [who, headers, want] of explainCases) {
      const r = await explain(headers);
      table.add(`admin: POST /admin/policy/explain as ${who}`, String(want), String(r.status), r.status === want);
    }
    const big = await edge('/admin/policy/explain', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await bearer(ADMIN.id)) },
      body: JSON.stringify({ subject: 'x'.repeat(200_000) }),
    });
    table.add('admin: policy explain with a 200 kB body', '413', String(big.status), big.status === 413);

    const replay = (headers: Record<string, string>) =>
      edgeRequest(`${c.auditApis[0]}/v1/audit/replay/${'0'.repeat(8)}-0000-7000-8000-${'0'.repeat(12)}`, { ca: c.caPem, headers });
    const replayCases: [string, Record<string, string>, number[]][] = [
      ['anonymous', {}, [401]],
      ['a forged token', { authorization: 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' }, [401]],
      ['a bot', await bearer('ci-bot'), [403]],
      ['an approver (not an auditor)', await bearer('sre-alice'), [403]],
      ['an admin (not an auditor)', await bearer(ADMIN.id), [403]],
      ['an auditor (control: 404 for an unknown id)', await bearer(AUDITOR.id), [404, 200]],
    ];
    for (const [who, headers, want] of replayCases) {
      const r = await replay(headers);
      table.add(`admin: audit replay API as ${who}`, want.join(' or '), String(r.status), want.includes(r.status));
    }
    for (const [where, base] of [
      ['edge', c.edges[0]!],
      ['approval listener', c.approvals[0]!],
      ['audit API', c.auditApis[0]!],
    ] as const) {
      const m = await edgeRequest(`${base}/metrics`, { ca: c.caPem });
      table.add(`admin: GET /metrics on the ${where} (anonymous)`, '404 (no metrics endpoint yet)', String(m.status), m.status === 404);
    }
    const slack = await edgeRequest(`${c.approvals[0]}/slack/interactions`, {
      method: 'POST',
      ca: c.caPem,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'payload=%7B%7D',
    });
    table.add('admin: POST /slack/interactions unsigned', '401', String(slack.status), slack.status === 401);
    const tokenEndpoint = await edge('/oidc/dev/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&client_id=sre-alice&client_secret=guessed-secret',
    });
    table.add('admin: development token endpoint with a wrong client secret', '401 invalid_client', String(tokenEndpoint.status), tokenEndpoint.status === 401);

    // Who reads the evidence is evidence: the auditor's replay, the admin's explain and an export through the CLI are events.
    const startedAt = Date.now() - 1000;
    const exported = await runPortcullis(['audit', 'export', '--since', '1h', '--config', c.configs.get('audit-1')!]);
    const reads = await eventually(
      'the evidence.read events in ClickHouse',
      async () => {
        const sql = `SELECT subject, groups, reason, decision_message, ts_ms FROM audit_events WHERE type = 'evidence.read' FORMAT JSONEachRow`;
        const text = await (await fetch(`${chUrl}/?database=${database}`, { method: 'POST', body: sql })).text();
        const rows = text
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => JSON.parse(l) as { subject: string; groups: string[]; reason: string; decision_message: string; ts_ms: number });
        const want = ['audit.replay', 'policy.explain', 'audit.export'];
        return want.every((a) => rows.some((r) => r.reason === a)) ? rows : undefined;
      },
      30_000,
    ).catch(() => []);
    const read = (action: string, subject: RegExp) => reads.find((r) => r.reason === action && subject.test(r.subject));
    const cases: [string, string, RegExp][] = [
      ['an auditor replays a request (replay API)', 'audit.replay', /^sec-team$/],
      ['an admin asks policy explain', 'policy.explain', /^pat$/],
      ['an operator exports the log (CLI)', 'audit.export', /^os:.+@/],
    ];
    for (const [who, action, subject] of cases) {
      const r = read(action, subject);
      table.add(
        `audit: ${who} is itself an event`,
        `evidence.read naming who, what and when`,
        r === undefined ? `none (export exit ${exported.code})` : `${r.subject} ${r.reason}: ${r.decision_message.slice(0, 60)}`,
        r !== undefined && r.ts_ms >= startedAt - 600_000 && r.decision_message.startsWith(`${action} via `),
      );
    }
  });

  test("bus: the edge's own NATS credentials cannot touch the policy, approvals, the streams or other roles' inboxes", async () => {
    // What an attacker holding an edge pod's NATS password can do: log in as the edge's user
    // (with the edge's inbox prefix) and try. nats-server refuses each with a permission violation.
    const login = c.nats.users.get('edge')!;
    const admin = await natsConnect({ servers: c.nats.url, ...c.nats.admin });
    const nc = await natsConnect({ servers: c.nats.url, ...login, inboxPrefix: natsInboxPrefix('edge') });
    const refusals: string[] = [];
    void (async () => {
      for await (const s of nc.status()) if (s.type === 'error') refusals.push(s.error.message);
    })();
    const enc = new TextEncoder();
    try {
      const jsm = await jetstreamManager(admin);
      const auditBefore = (await jsm.streams.info(Streams.audit.name)).state;
      const decided: string[] = [];
      const watch = admin.subscribe('portcullis.approval.decided.>', { callback: (_e, m) => void decided.push(m.subject) });
      await admin.flush();
      /** A request (JetStream API, JetStream publish): the server's refusal, or what answered. */
      const request = async (subject: string, body: unknown): Promise<string> => {
        try {
          const m = await nc.request(subject, typeof body === 'string' ? enc.encode(body) : enc.encode(JSON.stringify(body)), { timeout: 3000 });
          return `answered: ${new TextDecoder().decode(m.data).slice(0, 120)}`;
        } catch (err) {
          return (err as Error).message;
        }
      };
      /** A plain publish: the refusal the server sent back for this subject, or "accepted". */
      const publish = async (subject: string): Promise<string> => {
        nc.publish(subject, enc.encode('{}'));
        await nc.flush();
        return eventually(`a refusal of ${subject}`, () => refusals.find((r) => r.includes(`"${subject}"`)), 2000).catch(() => 'accepted');
      };
      /** A subscription: the server's refusal (it closes the subscription), or "subscribed". */
      const subscribe = async (subject: string): Promise<string> => {
        const sub = nc.subscribe(subject);
        await nc.flush();
        const closed = await Promise.race([sub.closed, new Promise<'open'>((r) => setTimeout(() => r('open'), 2000).unref())]);
        if (closed === 'open') sub.unsubscribe();
        return closed instanceof Error ? closed.message : 'subscribed';
      };
      const refused = (observed: string): boolean => observed.startsWith('Permissions Violation for ');
      const kv = `KV_${Buckets.policy}`;
      const cases: [string, () => Promise<string>][] = [
        [
          `put the policy bundle ($KV.${Buckets.policy}.${BucketKeys.policyBundle})`,
          () => request(`$KV.${Buckets.policy}.${BucketKeys.policyBundle}`, 'rules: []'),
        ],
        [`update the policy bucket's stream (STREAM.UPDATE.${kv})`, () => request(`$JS.API.STREAM.UPDATE.${kv}`, { name: kv, subjects: ['evil.>'] })],
        [`delete the policy bucket (STREAM.DELETE.${kv})`, () => request(`$JS.API.STREAM.DELETE.${kv}`, '')],
        [`purge the policy bucket (STREAM.PURGE.${kv})`, () => request(`$JS.API.STREAM.PURGE.${kv}`, {})],
        ['publish an approval decision (portcullis.approval.decided.<id>)', () => publish('portcullis.approval.decided.00000000-0000-4000-8000-000000000000')],
        ['append an approval event to the audit stream (audit.prod.approval.granted)', () => request('audit.prod.approval.granted', 'forged')],
        [`delete the audit stream (STREAM.DELETE.${Streams.audit.name})`, () => request(`$JS.API.STREAM.DELETE.${Streams.audit.name}`, '')],
        [`purge the audit stream (STREAM.PURGE.${Streams.audit.name})`, () => request(`$JS.API.STREAM.PURGE.${Streams.audit.name}`, {})],
        ['delete an audit message (STREAM.MSG.DELETE)', () => request(`$JS.API.STREAM.MSG.DELETE.${Streams.audit.name}`, { seq: 1 })],
        [
          "shorten the audit stream's retention (STREAM.UPDATE)",
          () => request(`$JS.API.STREAM.UPDATE.${Streams.audit.name}`, { name: Streams.audit.name, subjects: ['audit.>'], max_msgs: 1 }),
        ],
        [`delete the audit writer's consumer (CONSUMER.DELETE)`, () => request(`$JS.API.CONSUMER.DELETE.${Streams.audit.name}.${Consumers.auditWriter}`, '')],
        [
          `pull the audit writer's messages (CONSUMER.MSG.NEXT)`,
          () => request(`$JS.API.CONSUMER.MSG.NEXT.${Streams.audit.name}.${Consumers.auditWriter}`, { batch: 1 }),
        ],
        ["read the policy role's inbox (_INBOX_policy.>)", () => subscribe(`${natsInboxPrefix('policy')}.>`)],
        ["read the approval role's inbox (_INBOX_approval.>)", () => subscribe(`${natsInboxPrefix('approval')}.>`)],
        ["read the audit role's inbox (_INBOX_audit.>)", () => subscribe(`${natsInboxPrefix('audit')}.>`)],
        ['read every default inbox (_INBOX.>)', () => subscribe('_INBOX.>')],
        ['serve decisions in place of policy (portcullis.policy.decide)', () => subscribe('portcullis.policy.decide')],
        ['serve the approval gate (portcullis.approval.gate)', () => subscribe('portcullis.approval.gate')],
      ];
      for (const [name, attempt] of cases) {
        const observed = await attempt();
        table.add(`bus: edge credentials: ${name}`, 'Permissions Violation', observed, refused(observed));
      }
      const info = await request(`$JS.API.STREAM.INFO.${Streams.audit.name}`, '');
      table.add(
        'bus: edge credentials: audit stream info (control)',
        'answered',
        info.slice(0, 60),
        info.startsWith('answered: {"type":"io.nats.jetstream.api.v1.stream_info_response"'),
      );
      const own = await subscribe(`${natsInboxPrefix('edge')}.>`);
      table.add('bus: edge credentials: its own inbox (control)', 'subscribed', own, own === 'subscribed');
      await admin.flush();
      const auditAfter = (await jsm.streams.info(Streams.audit.name)).state;
      const bundle = await (
        await jetstreamManager(admin)
      ).streams
        .getMessage(kv, { last_by_subj: `$KV.${Buckets.policy}.${BucketKeys.policyBundle}` })
        .catch(() => null);
      const intact =
        auditAfter.first_seq === auditBefore.first_seq &&
        auditAfter.messages >= auditBefore.messages &&
        decided.length === 0 &&
        (bundle === null || new TextDecoder().decode(bundle.data) !== 'rules: []');
      table.add(
        'bus: after the edge-credential attempts',
        'audit stream, policy bucket unchanged; no decision broadcast',
        `first_seq ${auditBefore.first_seq}→${auditAfter.first_seq}, messages ${auditBefore.messages}→${auditAfter.messages}, decisions seen ${decided.length}`,
        intact,
      );
      watch.unsubscribe();
    } finally {
      await nc.close();
      await admin.close();
    }
  });

  test('no planted secret in any log, audit row, JetStream message or Slack message; prints the table', async () => {
    // Let the writer store what the suite produced before reading the store.
    const natsConn = await natsConnect({ servers: c.nats.url, ...c.nats.admin });
    let raw = '';
    try {
      const jsm = await jetstreamManager(natsConn);
      const info = await jsm.streams.info(Streams.audit.name);
      const last = info.state.last_seq;
      // Events, not messages: group commit puts the events of many requests in one message.
      const parts: string[] = [];
      let events = 0;
      for (let seq = info.state.first_seq; seq <= last; seq++) {
        const m = await jsm.streams.getMessage(Streams.audit.name, { seq }).catch(() => undefined);
        if (m === undefined || m === null) continue;
        parts.push(Buffer.from(m.data).toString('latin1'));
        events += auditMessageEvents(m.subject, m.data).length;
      }
      const stored = await eventually(
        'ClickHouse to hold every event in the stream',
        async () => {
          const res = await fetch(`${chUrl}/?database=${database}`, { method: 'POST', body: 'SELECT count() FROM audit_events FINAL' });
          const n = Number((await res.text()).trim());
          return n >= events ? n : undefined;
        },
        60_000,
      ).catch(() => -1);
      table.add('audit: events stored in ClickHouse vs in the stream', String(events), String(stored), stored === events);
      raw = parts.join('\n');
    } finally {
      await natsConn.close();
    }
    const rows = await (await fetch(`${chUrl}/?database=${database}`, { method: 'POST', body: 'SELECT * FROM audit_events FORMAT JSONEachRow' })).text();
    const logs = [...c.history.map((h) => h.proc.output()), realCertEdge?.output() ?? ''].join('\n');
    const slack = JSON.stringify(c.slack.calls.map((x) => x.body));
    const places: [string, string][] = [
      ['process logs', logs],
      ['ClickHouse rows', rows],
      ['raw JetStream messages', raw],
      ['Slack messages', slack],
    ];
    const state = join(c.dir, 'state');
    const devKey = JSON.parse(readFileSync(join(state, 'dev-issuer-key.json'), 'utf8')) as { privateJwk?: { d?: string } };
    const serverKey = readFileSync(join(state, 'tls', 'server-key.pem'), 'utf8')
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('-----'))
      .join('');
    const secrets: [string, string][] = [
      ['the upstream credential (bearer token file)', c.fixture.token],
      ...CLUSTER_SECRETS.map((s, i): [string, string] => [
        i === 0 ? 'the Slack signing secret' : i === 1 ? 'the Slack bot token' : `development client secret #${i - 1}`,
        s,
      ]),
      [`${ADMIN.id} client secret`, ADMIN.secret],
      [`${AUDITOR.id} client secret`, AUDITOR.secret],
      ['planted Secret data value #1', PLANTED.secretData],
      ['planted Secret data value #2', PLANTED.secretData2],
      ['planted request-body secret (create secret stringData)', PLANTED.requestBody],
      ['planted token printed in a pod log (kubectl logs, logs -f)', PLANTED.logToken],
      ['planted token echoed by exec (client output and session recording)', PLANTED.execToken],
      ['the development issuer private key (d)', devKey.privateJwk?.d ?? 'missing-dev-key'],
      ['the TLS server private key', serverKey],
      ['the audit body hash key', readFileSync(join(state, 'audit-body-key'), 'utf8').trim()],
      ...usedTokens.map((t, i): [string, string] => [`bearer token #${i + 1} (its signature)`, t.split('.')[2] ?? t]),
    ];
    assert.ok(rows.length > 1000 && raw.length > 1000 && logs.length > 1000, 'the places searched are not empty');
    for (const [label, secret] of secrets) {
      const hits = places.filter(([, text]) => leakForms(secret).some((form) => text.includes(form))).map(([where]) => where);
      table.add(
        `leak: ${label}`,
        '0 hits in logs, ClickHouse, JetStream, Slack',
        hits.length === 0 ? '0 hits' : `found in ${hits.join(', ')}`,
        hits.length === 0,
      );
    }

    console.log(table.render('security suite'));
    assert.deepEqual(
      table.failed.map((r) => `${r.name}: expected ${r.expected}, observed ${r.observed}`),
      [],
      'every attack is refused and nothing leaks',
    );
  });
});
