import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { createCertificateAuthority, issueClientCertificate } from '@portcullis/tls';
import { kubeconfigFor, startKubeApiServer, type KubeApiServer, type KubeObject, type KubeStatus, type RecordedRequest } from '@portcullis/kube-sandbox';

const KUBECTL = process.env['KUBECTL'] ?? '/usr/bin/kubectl';

interface KubectlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** The Status a response carries. */
const statusOf = (res: RawResponse): KubeStatus => JSON.parse(res.body) as KubeStatus;

let api: KubeApiServer;
let workDir: string;
let kubeconfigPath: string;
let cacheCounter = 0;

async function kubectl(args: readonly string[], config = kubeconfigPath): Promise<KubectlResult> {
  // A fresh cache dir per call keeps discovery requests visible in every test's request log.
  const cacheDir = join(workDir, `cache-${++cacheCounter}`);
  const child = spawn(KUBECTL, ['--kubeconfig', config, '--cache-dir', cacheDir, ...args], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: workDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c ?? -1));
  });
  return { code, stdout, stderr };
}

async function kubectlOk(args: readonly string[]): Promise<string> {
  const result = await kubectl(args);
  assert.equal(result.code, 0, `kubectl ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

interface RawOptions {
  body?: string;
  headers?: Record<string, string>;
  /** null sends no Authorization header; undefined sends the fixture's token. */
  token?: string | null;
  /** Defaults to the current fixture. */
  server?: { url: string; caPem: string; token: string };
  clientCert?: { certPem: string; keyPem: string };
}

function raw(method: string, path: string, options: RawOptions = {}): Promise<RawResponse> {
  const server = options.server ?? api;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? server.token : options.token;
    if (token !== null) headers['Authorization'] = `Bearer ${token}`;
    if (options.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(options.body));
    const tlsOptions = options.clientCert === undefined ? {} : { cert: options.clientCert.certPem, key: options.clientCert.keyPem };
    const req = request(`${server.url}${path}`, { method, ca: server.caPem, headers, ...tlsOptions }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.once('error', reject);
    req.end(options.body);
  });
}

function requestsSince(start: number): RecordedRequest[] {
  return api.requests.slice(start);
}

function methodsAndPaths(requests: readonly RecordedRequest[]): string[] {
  return requests.map((r) => `${r.method} ${r.path.split('?')[0] ?? ''}`);
}

function findRequest(requests: readonly RecordedRequest[], method: string, pathPrefix: string): RecordedRequest {
  const found = requests.find((r) => r.method === method && r.path.startsWith(pathPrefix));
  assert.ok(found, `expected ${method} ${pathPrefix} in ${JSON.stringify(methodsAndPaths(requests))}`);
  return found;
}

describe('the sandbox API server with real kubectl', () => {
  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'kube-fixture-test-'));
    api = await startKubeApiServer({ requestLog: { max: 10_000 } });
    kubeconfigPath = join(workDir, 'kubeconfig');
    await writeFile(kubeconfigPath, kubeconfigFor({ url: api.url, caPem: api.caPem, token: api.token }), { mode: 0o600 });
  });

  after(async () => {
    await api.close();
    await rm(workDir, { recursive: true, force: true });
  });

  it('get pods -A prints the server-side table and discovers through aggregated discovery', async () => {
    const start = api.requests.length;
    const out = await kubectlOk(['get', 'pods', '-A']);
    const lines = out.trim().split('\n');
    assert.match(lines[0] ?? '', /^NAMESPACE\s+NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/);
    assert.equal(lines.length, 7);
    assert.match(out, /prod\s+worker-0\s+0\/1\s+CrashLoopBackOff\s+7 \(\d+m ago\)\s+30h/);
    assert.match(out, /default\s+nginx-7c5ddbdf54-x8f9k\s+1\/1\s+Running\s+0\s+2d2h/);
    const seen = requestsSince(start);
    assert.deepEqual(
      methodsAndPaths(seen).filter((p) => p !== 'GET /version'),
      ['GET /api', 'GET /apis', 'GET /api/v1/pods'],
    );
    assert.match(String(findRequest(seen, 'GET', '/api?').headers['accept']), /g=apidiscovery\.k8s\.io;v=v2;as=APIGroupDiscoveryList/);
    const list = findRequest(seen, 'GET', '/api/v1/pods');
    assert.match(String(list.headers['accept']), /as=Table;v=v1;g=meta\.k8s\.io/);
    assert.equal(list.path, '/api/v1/pods?limit=500');
    assert.ok(seen.every((r) => r.user === 'token:#1' && r.authorization?.sandboxToken === true && r.authorization.fingerprint === api.fingerprint(api.token)));
  });

  it('get ns lists the seeded namespaces as Active', async () => {
    const out = await kubectlOk(['get', 'ns', '--no-headers']);
    const rows = out
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/).slice(0, 2).join(' '));
    assert.deepEqual(rows, ['default Active', 'kube-system Active', 'prod Active', 'staging Active']);
  });

  it('get secrets -o json returns the full secrets with base64 data', async () => {
    const start = api.requests.length;
    const out = JSON.parse(await kubectlOk(['get', 'secrets', '-n', 'default', '-o', 'json'])) as {
      items: { kind: string; metadata: { name: string }; data: Record<string, string>; type: string }[];
    };
    assert.deepEqual(
      out.items.map((i) => i.metadata.name),
      ['db-credentials', 'registry-pull'],
    );
    const db = out.items[0];
    assert.equal(db?.kind, 'Secret');
    assert.equal(Buffer.from(db?.data['password'] ?? '', 'base64').toString(), 'S3cr3t-default!');
    const list = findRequest(requestsSince(start), 'GET', '/api/v1/namespaces/default/secrets');
    assert.doesNotMatch(String(list.headers['accept']), /as=Table/);
  });

  it('get pod -o yaml and describe pod show the stored pod', async () => {
    const pod = parseYaml(await kubectlOk(['get', 'pod', 'nginx-7c5ddbdf54-x8f9k', '-o', 'yaml'])) as {
      kind: string;
      metadata: { name: string; uid: string; resourceVersion: string };
      spec: { containers: { image: string }[]; nodeName: string };
    };
    assert.equal(pod.kind, 'Pod');
    assert.equal(pod.metadata.name, 'nginx-7c5ddbdf54-x8f9k');
    assert.equal(pod.spec.containers[0]?.image, 'nginx:1.27.3');
    assert.equal(pod.metadata.uid, api.store.get('pods', 'default', 'nginx-7c5ddbdf54-x8f9k')?.metadata.uid);

    const start = api.requests.length;
    const described = await kubectlOk(['describe', 'pod', 'nginx-7c5ddbdf54-x8f9k']);
    assert.match(described, /^Name:\s+nginx-7c5ddbdf54-x8f9k$/m);
    assert.match(described, /^Node:\s+node-a\/172\.18\.0\.2$/m);
    assert.match(described, /^Status:\s+Running$/m);
    assert.match(described, /^\s+Image:\s+nginx:1\.27\.3$/m);
    const events = findRequest(requestsSince(start), 'GET', '/api/v1/namespaces/default/events');
    // kubectl builds the selector from a Go map, so the requirement order varies between runs.
    const selector = new URL(events.path, api.url).searchParams.get('fieldSelector') ?? '';
    assert.deepEqual(selector.split(',').sort(), [
      'involvedObject.name=nginx-7c5ddbdf54-x8f9k',
      'involvedObject.namespace=default',
      `involvedObject.uid=${pod.metadata.uid}`,
    ]);
  });

  it('create ns, secret and configmap; secret and configmap bodies arrive as protobuf', async () => {
    const start = api.requests.length;
    assert.equal((await kubectlOk(['create', 'ns', 'team-create'])).trim(), 'namespace/team-create created');
    assert.equal(
      (await kubectlOk(['create', 'secret', 'generic', 'creds', '-n', 'team-create', '--from-literal=user=bot', '--from-literal=pass=p@ss w0rd'])).trim(),
      'secret/creds created',
    );
    assert.equal((await kubectlOk(['create', 'configmap', 'settings', '-n', 'team-create', '--from-literal=mode=fast'])).trim(), 'configmap/settings created');

    const ns = api.store.get('namespaces', undefined, 'team-create');
    assert.equal(ns?.metadata.labels?.['kubernetes.io/metadata.name'], 'team-create');
    const secret = api.store.get('secrets', 'team-create', 'creds');
    assert.equal(secret?.['type'], 'Opaque');
    const data = secret?.['data'] as Record<string, string>;
    assert.equal(Buffer.from(data['pass'] ?? '', 'base64').toString(), 'p@ss w0rd');
    assert.equal(Buffer.from(data['user'] ?? '', 'base64').toString(), 'bot');
    assert.deepEqual(api.store.get('configmaps', 'team-create', 'settings')?.['data'], { mode: 'fast' });

    const seen = requestsSince(start);
    const secretPost = findRequest(seen, 'POST', '/api/v1/namespaces/team-create/secrets');
    assert.equal(secretPost.contentType, 'application/vnd.kubernetes.protobuf');
    assert.match(secretPost.path, /fieldManager=kubectl-create/);
    assert.equal(findRequest(seen, 'POST', '/api/v1/namespaces/team-create/configmaps').contentType, 'application/vnd.kubernetes.protobuf');
    assert.ok(findRequest(seen, 'POST', '/api/v1/namespaces?').bodyBytes > 0);

    const again = await kubectl(['create', 'ns', 'team-create']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /Error from server \(AlreadyExists\): namespaces "team-create" already exists/);
  });

  it('apply -f creates with last-applied, re-apply sends a strategic merge patch', async () => {
    await kubectlOk(['create', 'ns', 'team-apply']);
    const manifest = (data: string): string =>
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n  namespace: team-apply\n  labels:\n    tier: web\ndata:\n${data}`;
    const file = join(workDir, 'apply.yaml');
    await writeFile(file, manifest('  one: "1"\n'));
    const start = api.requests.length;
    assert.equal((await kubectlOk(['apply', '-f', file])).trim(), 'configmap/web created');
    const created = api.store.get('configmaps', 'team-apply', 'web');
    const lastApplied = JSON.parse(created?.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration'] ?? '{}') as { data: unknown };
    assert.deepEqual(lastApplied.data, { one: '1' });

    await writeFile(file, manifest('  two: "2"\n'));
    assert.equal((await kubectlOk(['apply', '-f', file])).trim(), 'configmap/web configured');
    const updated = api.store.get('configmaps', 'team-apply', 'web');
    assert.deepEqual(updated?.['data'], { two: '2' });
    assert.ok(Number(updated?.metadata.resourceVersion) > Number(created?.metadata.resourceVersion));

    const seen = requestsSince(start);
    assert.ok(methodsAndPaths(seen).includes('GET /openapi/v3'));
    assert.equal(findRequest(seen, 'POST', '/api/v1/namespaces/team-apply/configmaps').path.includes('fieldManager=kubectl-client-side-apply'), true);
    assert.equal(findRequest(seen, 'PATCH', '/api/v1/namespaces/team-apply/configmaps/web').contentType, 'application/strategic-merge-patch+json');
  });

  it('label, patch --type merge and delete modify and remove the object', async () => {
    await kubectlOk(['create', 'ns', 'team-edit']);
    await kubectlOk(['create', 'configmap', 'cfg', '-n', 'team-edit', '--from-literal=a=1']);
    const start = api.requests.length;
    assert.equal((await kubectlOk(['label', 'configmap', 'cfg', '-n', 'team-edit', 'env=dev'])).trim(), 'configmap/cfg labeled');
    assert.equal(
      (await kubectlOk(['patch', 'configmap', 'cfg', '-n', 'team-edit', '--type', 'merge', '-p', '{"data":{"b":"2"}}'])).trim(),
      'configmap/cfg patched',
    );
    const cfg = api.store.get('configmaps', 'team-edit', 'cfg');
    assert.deepEqual(cfg?.metadata.labels, { env: 'dev' });
    assert.deepEqual(cfg?.['data'], { a: '1', b: '2' });
    const listed = await kubectlOk(['get', 'cm', '-n', 'team-edit', '-l', 'env=dev', '--no-headers']);
    assert.match(listed, /^cfg\s+2\s+\d+s$/m);

    assert.equal((await kubectlOk(['delete', 'configmap', 'cfg', '-n', 'team-edit'])).trim(), 'configmap "cfg" deleted');
    assert.equal(api.store.get('configmaps', 'team-edit', 'cfg'), undefined);
    assert.equal((await kubectlOk(['delete', 'ns', 'team-edit'])).trim(), 'namespace "team-edit" deleted');
    assert.equal(api.store.get('namespaces', undefined, 'team-edit'), undefined);

    const seen = requestsSince(start);
    const patches = seen.filter((r) => r.method === 'PATCH');
    // kubectl label computes a JSON merge patch, not a strategic one.
    assert.deepEqual(
      patches.map((p) => p.contentType),
      ['application/merge-patch+json', 'application/merge-patch+json'],
    );
    findRequest(seen, 'DELETE', '/api/v1/namespaces/team-edit/configmaps/cfg');
    findRequest(seen, 'DELETE', '/api/v1/namespaces/team-edit');
  });

  it('reports NotFound and Unauthorized the way kubectl expects', async () => {
    const missing = await kubectl(['get', 'pod', 'nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Error from server \(NotFound\): pods "nope" not found/);

    const badConfig = join(workDir, 'bad-kubeconfig');
    await writeFile(badConfig, kubeconfigFor({ url: api.url, caPem: api.caPem, token: 'wrong-token' }));
    const denied = await kubectl(['get', 'pods'], badConfig);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /error: You must be logged in to the server \(the server has asked for the client to provide credentials\)/);
  });

  it('@kubernetes/client-node lists pods and namespaces', async () => {
    const kc = new KubeConfig();
    kc.loadFromString(kubeconfigFor({ url: api.url, caPem: api.caPem, token: api.token }));
    const core = kc.makeApiClient(CoreV1Api);
    const pods = await core.listNamespacedPod({ namespace: 'prod', labelSelector: 'app=api' });
    assert.deepEqual(
      pods.items.map((p) => p.metadata?.name),
      ['api-6d8f5b7c9-zr4nt'],
    );
    assert.equal(pods.items[0]?.status?.phase, 'Running');
    const namespaces = await core.listNamespace({ fieldSelector: 'metadata.name=staging' });
    assert.deepEqual(
      namespaces.items.map((n) => n.metadata?.name),
      ['staging'],
    );
    await assert.rejects(core.readNamespacedSecret({ namespace: 'prod', name: 'absent' }), (err: unknown) => {
      assert.equal((err as { code?: number }).code, 404);
      return true;
    });
  });
});

describe('the sandbox API server: protocol details', () => {
  before(async () => {
    api = await startKubeApiServer({ tokens: ['protocol-token', 'second-token'], requestLog: { max: 10_000 } });
  });
  after(async () => {
    await api.close();
  });

  it('answers 401 with an Unauthorized Status and still records the request', async () => {
    const res = await raw('GET', '/api/v1/pods', { token: null, headers: { 'Impersonate-User': 'bot@example.com' } });
    assert.equal(res.status, 401);
    assert.deepEqual(JSON.parse(res.body), {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Unauthorized',
      reason: 'Unauthorized',
      code: 401,
    });
    const recorded = api.requests.at(-1);
    assert.equal(recorded?.user, undefined);
    assert.equal(recorded?.headers['impersonate-user'], 'bot@example.com');
    assert.equal((await raw('GET', '/version', { token: null })).status, 200);
    const second = await raw('GET', '/api/v1/namespaces', { token: 'second-token' });
    assert.equal(second.status, 200);
    assert.equal(api.requests.at(-1)?.user, 'token:#2');
  });

  it('serves Table with full objects on includeObject=Object and legacy discovery for plain JSON', async () => {
    const table = JSON.parse(
      (await raw('GET', '/api/v1/namespaces/default/secrets?includeObject=Object', { headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } }))
        .body,
    ) as {
      kind: string;
      columnDefinitions: { name: string }[];
      rows: { cells: unknown[]; object: { kind: string; data?: unknown } }[];
    };
    assert.equal(table.kind, 'Table');
    assert.deepEqual(
      table.columnDefinitions.map((c) => c.name),
      ['Name', 'Type', 'Data', 'Age'],
    );
    assert.deepEqual(table.rows[0]?.cells.slice(0, 3), ['db-credentials', 'Opaque', 2]);
    assert.equal(table.rows[0]?.object.kind, 'Secret');
    assert.ok(table.rows[0]?.object.data);
    const resources = JSON.parse((await raw('GET', '/api/v1')).body) as {
      kind: string;
      resources: { name: string; shortNames?: string[]; namespaced: boolean }[];
    };
    assert.equal(resources.kind, 'APIResourceList');
    assert.deepEqual(resources.resources.find((r) => r.name === 'pods')?.shortNames, ['po']);
    assert.equal(resources.resources.find((r) => r.name === 'namespaces')?.namespaced, false);
    assert.ok(resources.resources.some((r) => r.name === 'pods/log'));
    const legacy = await raw('GET', '/api', { headers: { Accept: 'application/json' } });
    assert.equal((JSON.parse(legacy.body) as { kind: string }).kind, 'APIVersions');
  });

  it('returns proper Status objects for bad input', async () => {
    const cm = (name: string, rv?: string): string =>
      JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ...(rv === undefined ? {} : { resourceVersion: rv }) }, data: { a: '1' } });
    const json = { 'Content-Type': 'application/json' };
    const malformed = await raw('POST', '/api/v1/namespaces/default/configmaps', { body: '{"metadata":', headers: json });
    assert.equal(malformed.status, 400);
    assert.equal(statusOf(malformed).reason, 'BadRequest');

    const invalidName = JSON.parse((await raw('POST', '/api/v1/namespaces/default/configmaps', { body: cm('Bad_Name'), headers: json })).body) as {
      code: number;
      reason: string;
      details: { kind: string; causes: { field: string }[] };
    };
    assert.equal(invalidName.code, 422);
    assert.equal(invalidName.reason, 'Invalid');
    assert.equal(invalidName.details.kind, 'ConfigMap');
    assert.equal(invalidName.details.causes[0]?.field, 'metadata.name');

    const created = await raw('POST', '/api/v1/namespaces/default/configmaps', { body: cm('proto'), headers: json });
    assert.equal(created.status, 201);
    const rv = (JSON.parse(created.body) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    const dup = statusOf(await raw('POST', '/api/v1/namespaces/default/configmaps', { body: cm('proto'), headers: json }));
    assert.deepEqual([dup.code, dup.reason, dup.details], [409, 'AlreadyExists', { name: 'proto', kind: 'configmaps' }]);

    assert.equal((await raw('PUT', '/api/v1/namespaces/default/configmaps/proto', { body: cm('proto', rv), headers: json })).status, 200);
    const stale = statusOf(await raw('PUT', '/api/v1/namespaces/default/configmaps/proto', { body: cm('proto', '1'), headers: json }));
    assert.deepEqual([stale.code, stale.reason], [409, 'Conflict']);

    const jsonPatch = await raw('PATCH', '/api/v1/namespaces/default/configmaps/proto', {
      body: JSON.stringify([
        { op: 'add', path: '/data/b', value: '2' },
        { op: 'remove', path: '/data/a' },
      ]),
      headers: { 'Content-Type': 'application/json-patch+json' },
    });
    assert.deepEqual((JSON.parse(jsonPatch.body) as KubeObject)['data'], { b: '2' });
    const unsupported = await raw('PATCH', '/api/v1/namespaces/default/configmaps/proto', { body: '{}', headers: { 'Content-Type': 'text/plain' } });
    assert.equal(unsupported.status, 415);
    assert.equal(statusOf(unsupported).reason, 'UnsupportedMediaType');
    assert.equal((await raw('POST', '/api/v1/namespaces/default/configmaps/proto', { body: '{}', headers: json })).status, 405);

    const deleted = statusOf(await raw('DELETE', '/api/v1/namespaces/default/configmaps/proto'));
    assert.equal(deleted.status, 'Success');
    assert.deepEqual({ name: deleted.details?.name, kind: deleted.details?.kind }, { name: 'proto', kind: 'configmaps' });
    const gone = statusOf(await raw('GET', '/api/v1/namespaces/default/configmaps/proto'));
    assert.deepEqual([gone.code, gone.reason, gone.message], [404, 'NotFound', 'configmaps "proto" not found']);
    const unknown = await raw('GET', '/api/v1/widgets');
    assert.equal(unknown.status, 404);
    assert.equal(statusOf(unknown).kind, 'Status');
  });
});

describe('the sandbox request log: none by default, bounded when asked for, never a credential', () => {
  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'sandbox-request-log-'));
  });
  after(async () => {
    await rm(workDir, { recursive: true, force: true });
  });
  // A real full GC on demand, to read the live heap: --expose-gc set at run time.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const liveHeap = (): number => {
    gc();
    gc();
    return getHeapStatistics().used_heap_size;
  };
  /** `n` GETs over a few keep-alive connections, each with a 8 KiB header (what a request record would hold). */
  const load = async (server: KubeApiServer, n: number): Promise<void> => {
    const agent = new Agent({ keepAlive: true, maxSockets: 4, ca: server.caPem });
    const padding = 'p'.repeat(8 * 1024);
    let next = 0;
    try {
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (next < n) {
            next++;
            await new Promise<void>((resolve, reject) => {
              request(
                `${server.url}/api/v1/namespaces/default/configmaps`,
                { agent, headers: { authorization: `Bearer ${server.token}`, 'x-padding': padding } },
                (res) => {
                  res.resume();
                  res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
                },
              )
                .once('error', reject)
                .end();
            });
          }
        }),
      );
    } finally {
      agent.destroy();
    }
  };

  it('keeps nothing per request by default: 2000 requests with 8 KiB headers leave the live heap where it was, and the record cannot be read', async () => {
    const server = await startKubeApiServer({ seed: true });
    try {
      await load(server, 300); // warm-up: JIT, TLS, pools
      const before = liveHeap();
      await load(server, 2000);
      const grown = liveHeap() - before;
      // Keeping each request's headers would hold ≥ 16 MB here.
      assert.ok(grown < 4 * 1024 * 1024, `the live heap grew ${(grown / 1048576).toFixed(1)} MB over 2000 requests`);
      for (const read of [
        () => server.requests,
        () => server.incompleteRequests,
        () => server.execSessions,
        () => server.portForwards,
        () => server.clearRequests(),
      ]) {
        assert.throws(read, /keeps no request log: start it with requestLog/);
      }
    } finally {
      await server.close();
    }
  });

  it('requestLog: { max } keeps the newest max requests, oldest first, in bounded memory', async () => {
    const server = await startKubeApiServer({ requestLog: { max: 3 } });
    try {
      for (const ns of ['default', 'kube-system', 'staging', 'prod', 'default'])
        assert.equal((await raw('GET', `/api/v1/namespaces/${ns}/pods`, { server })).status, 200);
      assert.deepEqual(
        server.requests.map((r) => r.path),
        ['/api/v1/namespaces/staging/pods', '/api/v1/namespaces/prod/pods', '/api/v1/namespaces/default/pods'],
      );
      const before = liveHeap();
      await load(server, 1000);
      assert.ok(liveHeap() - before < 4 * 1024 * 1024, 'a full ring holds at most max records');
      assert.equal(server.requests.length, 3);
      server.clearRequests();
      assert.deepEqual(server.requests, []);
    } finally {
      await server.close();
    }
  });

  it('records what the credential was — which sandbox token, or a fingerprint of a foreign one — never the credential', async () => {
    const tokens = ['first-sandbox-token-0123456789', 'second-sandbox-token-0123456789'];
    const foreign = 'a-client-token-that-must-not-be-kept';
    const server = await startKubeApiServer({ tokens, requestLog: { max: 10 } });
    try {
      assert.equal(
        (
          await raw('GET', '/api/v1/namespaces', {
            server,
            token: tokens[1]!,
            headers: { 'Proxy-Authorization': `Basic ${Buffer.from('u:proxy-secret').toString('base64')}` },
          })
        ).status,
        200,
      );
      assert.equal((await raw('GET', '/api/v1/namespaces', { server, token: foreign })).status, 401);
      assert.equal((await raw('GET', '/version', { server, token: null })).status, 200);
      const [good, bad, anonymous] = server.requests;
      assert.equal(good?.user, 'token:#2', 'named by position, not by a prefix of the token');
      assert.deepEqual(good?.authorization, { scheme: 'Bearer', sandboxToken: true, fingerprint: server.fingerprint(tokens[1]!) });
      assert.deepEqual(bad?.authorization, { scheme: 'Bearer', sandboxToken: false, fingerprint: server.fingerprint(foreign) });
      assert.notEqual(bad?.authorization?.fingerprint, server.fingerprint(tokens[0]!));
      assert.equal(bad?.user, undefined);
      assert.equal(anonymous?.authorization, undefined);
      for (const r of server.requests) {
        assert.equal(r.headers['authorization'], undefined);
        assert.equal(r.headers['proxy-authorization'], undefined);
      }
      const everything = JSON.stringify(server.requests);
      for (const secret of [...tokens, foreign, 'proxy-secret', Buffer.from('u:proxy-secret').toString('base64'), tokens[1]!.slice(0, 4)]) {
        assert.ok(!everything.includes(secret), `the record holds no part of ${secret.slice(0, 6)}…`);
      }
    } finally {
      await server.close();
    }
  });

  it('bounds exec sessions too: the newest max sessions, stdin cut at 64 KiB', async () => {
    const server = await startKubeApiServer({ requestLog: { max: 2 } });
    const config = join(workDir, 'exec-log-kubeconfig');
    await writeFile(config, kubeconfigFor({ url: server.url, caPem: server.caPem, token: server.token }), { mode: 0o600 });
    try {
      for (const word of ['one', 'two']) assert.equal((await kubectl(['exec', '-n', 'default', 'nginx-7c5ddbdf54-x8f9k', '--', 'echo', word], config)).code, 0);
      const big = `${'x'.repeat(100 * 1024)}\n`;
      const child = spawn(
        KUBECTL,
        ['--kubeconfig', config, '--cache-dir', join(workDir, `cache-${++cacheCounter}`), 'exec', '-i', '-n', 'default', 'nginx-7c5ddbdf54-x8f9k', '--', 'cat'],
        {
          env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: workDir },
          stdio: ['pipe', 'pipe', 'inherit'],
        },
      );
      let echoed = 0;
      child.stdout.on('data', (d: Buffer) => (echoed += d.length));
      child.stdin.end(big);
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0);
      assert.equal(echoed, big.length, 'cat echoed all of stdin: the cap is on the record, not the session');
      const sessions = server.execSessions;
      assert.deepEqual(
        sessions.map((s) => s.command.join(' ')),
        ['echo two', 'cat'],
      );
      assert.equal(sessions[1]?.stdin.length, 64 * 1024);
      assert.equal(sessions[1]?.exitCode, 0);
    } finally {
      await server.close();
    }
  });
});

describe('the sandbox API server: authentication and process mode', () => {
  it('authenticates client certificates signed by clientCaPem as their CN', async () => {
    const clientCa = await createCertificateAuthority('upstream client CA');
    const client = await issueClientCertificate(clientCa, { commonName: 'portcullis-edge', organizations: ['system:masters'] });
    const stranger = await issueClientCertificate(await createCertificateAuthority('other CA'), { commonName: 'mallory' });
    const server = await startKubeApiServer({ clientCaPem: clientCa.certPem, seed: false, requestLog: { max: 100 } });
    try {
      const ok = await raw('GET', '/api/v1/namespaces', {
        server,
        token: null,
        clientCert: client,
        headers: { 'Impersonate-User': 'ci-bot', 'Impersonate-Group': 'ci' },
      });
      assert.equal(ok.status, 200);
      assert.deepEqual((JSON.parse(ok.body) as { items: unknown[] }).items, []);
      const recorded = server.requests.at(-1);
      assert.equal(recorded?.user, 'portcullis-edge');
      assert.equal(recorded?.headers['impersonate-user'], 'ci-bot');
      assert.equal(recorded?.headers['impersonate-group'], 'ci');
      const rejected = await raw('GET', '/api/v1/namespaces', { server, token: null, clientCert: stranger });
      assert.equal(rejected.status, 401);
      assert.equal(server.requests.at(-1)?.user, undefined);
    } finally {
      await server.close();
    }
  });

  it('apps/sandbox runs it as a process, prints its URL and CA, and stops on SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kube-fixture-main-'));
    const tokenFile = join(dir, 'token');
    const mainPath = new URL('../../apps/sandbox/src/main.js', import.meta.url);
    const child = spawn(process.execPath, [mainPath.pathname, '--port', '0', '--cert-dir', join(dir, 'certs'), '--token-file', tokenFile], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const lines = createInterface({ input: child.stdout });
      const [line] = (await once(lines, 'line')) as [string];
      const info = JSON.parse(line) as { url: string; ca: string; token: string };
      assert.match(info.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      assert.equal((await readFile(tokenFile, 'utf8')).trim(), info.token);
      assert.equal(await readFile(join(dir, 'certs', 'ca.pem'), 'utf8'), info.ca);
      const server = { url: info.url, caPem: info.ca, token: info.token };
      const version = JSON.parse((await raw('GET', '/version', { server })).body) as { gitVersion: string };
      assert.equal(version.gitVersion, 'v1.32.4');
      const pods = JSON.parse((await raw('GET', '/api/v1/namespaces/prod/pods', { server })).body) as { items: unknown[] };
      assert.equal(pods.items.length, 2);
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
