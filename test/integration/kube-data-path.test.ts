/**
 * The Kubernetes data path through the edge with real kubectl 1.32 and @kubernetes/client-node:
 * CRUD and printing, protobuf bodies carried byte for byte, watch and logs -f event by event,
 * long-running requests outliving the upstream timeout, client disconnects reaching the fixture,
 * exec/attach over WebSocket with the frames in the audit log, port-forward over WebSocket and
 * SPDY/3.1, refusals before any upgrade, and path tricks refused with a 400 Status.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, Exec, KubeConfig, Watch, type V1Pod, type V1Status } from '@kubernetes/client-node';
import { startKubeApiServer, type KubeApiServer } from '@portcullis/kube-sandbox';
import type { EventEnvelope, SessionEnded, SessionFrames, SessionStarted } from '@portcullis/contracts';
import { edgeRequest } from '../support/gateway-https.js';
import { eventually } from '../support/eventually.js';
import { kubectl, tempDir } from '../support/portcullis-process.js';
import { spawnKubectl, startTestEdge, type TestEdge } from '../support/kube-edge.js';

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: data-path, version: "v1" }
rules:
  - id: no-exec-in-prod
    match: { namespaces: [prod], resources: [pods/exec, pods/attach] }
    effect: deny
    message: no shells in prod
  - id: bots
    match: { groups: [bots] }
    effect: allow
`;
const UPSTREAM_TIMEOUT_MS = 1_500;
const RECORD_CAP = 4096;
const POD = 'nginx-7c5ddbdf54-x8f9k';

describe('Kubernetes data path through the edge', { timeout: 180_000 }, () => {
  let fixture: KubeApiServer;
  let edge: TestEdge;
  let kubeconfig: string;
  let dir: string;
  let cacheN = 0;
  const cache = (): string => join(dir, `cache-${++cacheN}`);
  const k = async (args: readonly string[], env?: NodeJS.ProcessEnv): Promise<string> => {
    const r = env === undefined ? await kubectl(kubeconfig, cache(), args) : await kubectlEnv(kubeconfig, cache(), args, env);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  const eventsOf = (requestId: string): EventEnvelope[] => edge.log.appended.filter((e) => e.correlationId === requestId);

  before(async () => {
    dir = tempDir('kube-data-path');
    fixture = await startKubeApiServer({ requestLog: { max: 10_000 } });
    edge = await startTestEdge({
      connections: { k: fixture },
      policy: POLICY,
      upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS,
      sessionRecording: { maxBytes: RECORD_CAP, flushIntervalMs: 50, flushBytes: 1024 },
    });
    kubeconfig = edge.kubeconfig(`${edge.url}/k8s/k`);
  });

  after(async () => {
    await edge.close();
    await fixture.close();
  });

  test('get, list, -o yaml, -o json, describe of core, apps and custom resources', async () => {
    assert.match(await k(['get', 'pods']), new RegExp(`${POD}\\s+1/1\\s+Running`));
    assert.match(await k(['get', 'pods', '-A']), /kube-system\s+coredns/);
    const pod = JSON.parse(await k(['get', 'pod', POD, '-o', 'json'])) as { metadata: { name: string } };
    assert.equal(pod.metadata.name, POD);
    assert.match(await k(['get', 'configmap', 'app-config', '-o', 'yaml']), /FEATURE_FLAGS: search,export/);
    assert.match(await k(['describe', 'pod', POD]), /Image:\s+nginx:1\.27\.3/);
    assert.match(await k(['get', 'deployments']), /nginx\s+2\/2\s+2\s+2/);
    assert.match(await k(['get', 'widgets']), /sprocket\s+large/);
    assert.match(await k(['describe', 'deployment', 'nginx']), /Replicas:\s+2 desired/);
  });

  test('create, apply, patch, label, scale, delete; protobuf request bodies arrive byte for byte', async () => {
    fixture.clearRequests();
    await k(['create', 'configmap', 'dp-proto', '--from-literal=a=b']);
    const post = fixture.requests.find((r) => r.method === 'POST' && r.path.startsWith('/api/v1/namespaces/default/configmaps'));
    assert.ok(post?.body, 'the fixture saw the create');
    assert.equal(post.contentType, 'application/vnd.kubernetes.protobuf', 'kubectl sends the ConfigMap as protobuf');
    assert.deepEqual(fixture.store.get('configmaps', 'default', 'dp-proto')?.['data'], { a: 'b' });
    // The same protobuf bytes sent raw through the edge reach the upstream unchanged.
    await k(['delete', 'configmap', 'dp-proto']);
    fixture.clearRequests();
    const replay = await rawRequest(`${edge.url}/k8s/k/api/v1/namespaces/default/configmaps`, edge.ca, {
      method: 'POST',
      headers: { authorization: `Bearer ${edge.token}`, 'content-type': 'application/vnd.kubernetes.protobuf', accept: 'application/json' },
      body: post.body,
    });
    assert.equal(replay.status, 201, replay.body.toString());
    const seen = fixture.requests.find((r) => r.method === 'POST');
    assert.equal(sha(seen?.body ?? Buffer.alloc(0)), sha(post.body));

    const manifest = join(dir, 'cm.yaml');
    await import('node:fs').then((fs) => fs.writeFileSync(manifest, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dp-apply\ndata:\n  k: v1\n'));
    assert.match(await k(['apply', '-f', manifest]), /configmap\/dp-apply created/);
    await import('node:fs').then((fs) => fs.writeFileSync(manifest, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dp-apply\ndata:\n  k: v2\n'));
    assert.match(await k(['apply', '-f', manifest]), /configmap\/dp-apply configured/);
    await k(['patch', 'configmap', 'dp-apply', '--type', 'merge', '-p', '{"data":{"p":"q"}}']);
    await k(['label', 'configmap', 'dp-apply', 'team=sre']);
    const cm = fixture.store.get('configmaps', 'default', 'dp-apply');
    assert.deepEqual([cm?.['data'], cm?.metadata.labels], [{ k: 'v2', p: 'q' }, { team: 'sre' }]);
    assert.match(await k(['scale', 'deployment', 'nginx', '--replicas=3']), /scaled/);
    assert.match(await k(['get', 'deployment', 'nginx']), /3\/3/);
    await k(['scale', 'deployment', 'nginx', '--replicas=2']);
    assert.match(await k(['delete', 'configmap', 'dp-apply']), /deleted/);
    assert.equal(fixture.store.get('configmaps', 'default', 'dp-apply'), undefined);
  });

  test('responses are carried byte for byte (protobuf-preferring Accept, as describe sends)', async () => {
    const path = `/api/v1/namespaces/default/pods/${POD}`;
    const accept = 'application/vnd.kubernetes.protobuf,application/json';
    const direct = await rawRequest(`${fixture.url}${path}`, fixture.caPem, { headers: { authorization: `Bearer ${fixture.token}`, accept } });
    const viaEdge = await rawRequest(`${edge.url}/k8s/k${path}`, edge.ca, { headers: { authorization: `Bearer ${edge.token}`, accept } });
    assert.equal(viaEdge.status, 200);
    assert.equal(viaEdge.headers['content-type'], direct.headers['content-type']);
    assert.equal(sha(viaEdge.body), sha(direct.body));
  });

  test('get pods -w receives the events a second client causes; the watch ends at the fixture when kubectl goes', async () => {
    const watch = spawnKubectl(kubeconfig, cache(), ['get', 'pods', '-w']);
    try {
      await watch.waitFor(new RegExp(POD));
      await k(['run', 'dp-watched', '--image=busybox:1.36', '--restart=Never']);
      await watch.waitFor(/dp-watched\s+0\/1\s+Pending/);
      await k(['label', 'pod', 'dp-watched', 'seen=yes']);
      await k(['delete', 'pod', 'dp-watched', '--wait=false']);
      await watch.waitFor(/(dp-watched[^\n]*\n[\s\S]*){3}/);
      assert.ok(
        fixture.openStreams().some((s) => s.kind === 'watch'),
        'the fixture serves the watch',
      );
    } finally {
      await watch.stop();
    }
    await eventually('the fixture sees the watch close', () => (fixture.openStreams().some((s) => s.kind === 'watch') ? undefined : true));
  });

  test('watch from a resourceVersion replays later changes; a compacted one gets an ERROR event with 410 Expired', async () => {
    const rv = fixture.store.resourceVersion;
    fixture.store.put('configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dp-rv', namespace: 'default' }, data: { a: '1' } });
    const headers = { authorization: `Bearer ${edge.token}` };
    const replay = await edgeRequest(`${edge.url}/k8s/k/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${rv}&timeoutSeconds=1`, {
      ca: edge.ca,
      headers,
    });
    const events = replay.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; object: { metadata: { name: string } } });
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.object.metadata.name}`),
      ['ADDED dp-rv'],
    );
    fixture.store.compact();
    const gone = await edgeRequest(`${edge.url}/k8s/k/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${rv}`, { ca: edge.ca, headers });
    assert.equal(gone.status, 200);
    const error = JSON.parse(gone.body.trim()) as { type: string; object: { code: number; reason: string } };
    assert.deepEqual([error.type, error.object.code, error.object.reason], ['ERROR', 410, 'Expired']);
    fixture.store.delete('configmaps', 'default', 'dp-rv');
  });

  test('logs -f flows line by line, outlives the upstream timeout, and ends at the fixture when the client goes', async () => {
    const logs = spawnKubectl(kubeconfig, cache(), ['logs', '-f', POD]);
    try {
      await logs.waitFor(/handled request GET \/metrics 200/);
      fixture.logs.append('default', POD, 'nginx', 'first live line');
      await logs.waitFor(/first live line/);
      // The property under test is time: the stream must stay open past the upstream (header) timeout.
      await new Promise((r) => setTimeout(r, UPSTREAM_TIMEOUT_MS + 500));
      fixture.logs.append('default', POD, 'nginx', 'line after the timeout');
      await logs.waitFor(/line after the timeout/);
      assert.ok(fixture.openStreams().some((s) => s.kind === 'log'));
    } finally {
      await logs.stop();
    }
    await eventually('the fixture sees the log stream close', () => (fixture.openStreams().some((s) => s.kind === 'log') ? undefined : true));
    const completed = edge.log.appended.filter((e) => e.payload.case === 'requestCompleted' && e.payload.value.error === 'client disconnected');
    assert.ok(completed.length >= 1, 'request.completed says the client went away');
  });

  test('exec -- echo hi: output arrives and stdin/stdout frames are in the audit log', async () => {
    const out = await k(['exec', POD, '--', 'echo', 'hi']);
    assert.equal(out, 'hi\n');
    const started = await eventually('session.started', () =>
      edge.log.appended.find((e) => e.type === 'session.started' && (e.payload.value as SessionStarted).command.join(' ') === 'echo hi'),
    );
    const requestId = started.correlationId;
    assert.equal(started.sessionId, requestId, 'session_id is the request id');
    const s = started.payload.value as SessionStarted;
    assert.deepEqual([s.kind, s.protocol, s.transport, s.recorded], ['exec', 'v5.channel.k8s.io', 'websocket', true]);
    const ended = await eventually('session.ended', () => eventsOf(requestId).find((e) => e.type === 'session.ended'));
    assert.equal((ended.payload.value as SessionEnded).exitCode, 0);
    const frames = eventsOf(requestId)
      .filter((e) => e.type === 'session.frames')
      .flatMap((e) => (e.payload.value as SessionFrames).frames);
    assert.equal(Buffer.from(frames.find((f) => f.channel === 1)?.data ?? []).toString(), 'hi\n');
    assert.match(Buffer.from(frames.find((f) => f.channel === 3)?.data ?? []).toString(), /"status":"Success"/);
    const received = eventsOf(requestId).find((e) => e.type === 'request.received');
    assert.ok(received?.payload.case === 'requestReceived');
    assert.deepEqual([received.payload.value.attributes?.kube?.verb, received.payload.value.attributes?.kube?.subresource], ['create', 'exec']);
  });

  test('exec with stdin, exit codes, and the recording cap', async () => {
    const cat = spawnKubectl(kubeconfig, cache(), ['exec', '-i', POD, '--', 'cat']);
    cat.child.stdin?.end('typed into the pod\n');
    await cat.waitFor(/typed into the pod/);
    await new Promise<void>((r) => cat.child.once('exit', () => r()));
    assert.equal(cat.child.exitCode, 0);
    const session = await eventually('the cat session ended', () =>
      edge.log.appended.find(
        (e) =>
          e.type === 'session.ended' &&
          eventsOf(e.correlationId).some((x) => x.type === 'session.started' && (x.payload.value as SessionStarted).command[0] === 'cat'),
      ),
    );
    const stdin = eventsOf(session.correlationId)
      .filter((e) => e.type === 'session.frames')
      .flatMap((e) => (e.payload.value as SessionFrames).frames)
      .filter((f) => f.channel === 0);
    assert.equal(Buffer.concat(stdin.map((f) => Buffer.from(f.data))).toString(), 'typed into the pod\n');

    const failed = await kubectlEnv(kubeconfig, cache(), ['exec', POD, '--', 'sh', '-c', 'exit 3'], {});
    assert.equal(failed.code, 3, failed.stderr);
    assert.ok(
      await eventually('exit 3 recorded', () => edge.log.appended.find((e) => e.type === 'session.ended' && (e.payload.value as SessionEnded).exitCode === 3)),
    );

    const big = 'x'.repeat(RECORD_CAP * 3);
    const cat2 = spawnKubectl(kubeconfig, cache(), ['exec', '-i', POD, '--', 'cat']);
    cat2.child.stdin?.end(big);
    await new Promise<void>((r) => cat2.child.once('exit', () => r()));
    assert.equal(cat2.output().length, big.length, 'the session itself is not capped');
    const capped = await eventually('a truncated session', () =>
      edge.log.appended.find((e) => e.type === 'session.ended' && (e.payload.value as SessionEnded).truncated),
    );
    assert.equal((capped.payload.value as SessionEnded).recordedBytes, RECORD_CAP);
    assert.equal((capped.payload.value as SessionEnded).exitCode, 0, 'the exit status is still read after the cap');
  });

  test('a refused exec gets a 403 Status before any upgrade; the fixture never sees it', async () => {
    fixture.clearRequests();
    const r = await kubectlEnv(kubeconfig, cache(), ['exec', '-n', 'prod', 'worker-0', '--', 'echo', 'hi'], {});
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no shells in prod/);
    assert.equal(fixture.requests.filter((x) => x.path.includes('/exec')).length, 0);
    // The same refusal as a raw WebSocket upgrade: an HTTP 403 Status, not a 101.
    const raw = await rawUpgrade(edge, '/k8s/k/api/v1/namespaces/prod/pods/worker-0/exec?command=ls&stdout=true', 'websocket');
    assert.match(raw, /^HTTP\/1\.1 403 /);
    assert.match(raw, /"kind":"Status"/);
    assert.match(raw, /"reason":"Forbidden"/);
    assert.match(raw, /Audit-Id: [0-9a-f-]{36}/i);
  });

  test('exec and attach for a missing pod come back as the upstream NotFound', async () => {
    const r = await kubectlEnv(kubeconfig, cache(), ['exec', 'no-such-pod', '--', 'echo'], {});
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /pods "no-such-pod" not found/);
  });

  for (const websockets of ['true', 'false']) {
    test(`port-forward (${websockets === 'true' ? 'SPDY over WebSocket' : 'SPDY/3.1 upgrade'}): bytes make a round trip through a local port`, async () => {
      const localPort = 20_000 + Math.floor(Math.random() * 20_000);
      const pf = spawnKubectl(kubeconfig, cache(), ['port-forward', `pod/${POD}`, `${localPort}:8080`], { KUBECTL_PORT_FORWARD_WEBSOCKETS: websockets });
      try {
        await pf.waitFor(/Forwarding from 127\.0\.0\.1/);
        const payload = `round trip ${websockets} ${'z'.repeat(3000)}`;
        const echoed = await tcpRoundTrip(localPort, payload);
        assert.equal(echoed, payload);
      } finally {
        await pf.stop();
      }
      const started = await eventually('port-forward session.started', () =>
        edge.log.appended.find(
          (e) =>
            e.type === 'session.started' &&
            (e.payload.value as SessionStarted).kind === 'portforward' &&
            (e.payload.value as SessionStarted).transport === (websockets === 'true' ? 'websocket' : 'spdy'),
        ),
      );
      assert.equal((started.payload.value as SessionStarted).recorded, false);
    });
  }

  test('@kubernetes/client-node lists, watches and execs through the edge', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const api = kc.makeApiClient(CoreV1Api);
    const pods = await api.listNamespacedPod({ namespace: 'default' });
    assert.ok(pods.items.some((p) => p.metadata?.name === POD));

    const seen: string[] = [];
    const controller = await new Watch(kc).watch(
      '/api/v1/namespaces/default/pods',
      {},
      (type: string, obj: V1Pod) => seen.push(`${type} ${obj.metadata?.name ?? ''}`),
      () => undefined,
    );
    try {
      await eventually('the initial ADDED events', () => (seen.includes(`ADDED ${POD}`) ? true : undefined));
      fixture.store.put('pods', {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'dp-client-node', namespace: 'default' },
        spec: { containers: [{ name: 'c', image: 'busybox' }] },
      });
      await eventually('ADDED for the new pod', () => (seen.includes('ADDED dp-client-node') ? true : undefined));
    } finally {
      controller.abort();
    }

    const stdout = new PassThrough();
    let text = '';
    stdout.on('data', (d: Buffer) => (text += d.toString()));
    const status = await new Promise<V1Status>((resolve, reject) => {
      new Exec(kc).exec('default', POD, 'nginx', ['echo', 'from', 'client-node'], stdout, null, null, false, (s) => resolve(s)).catch(reject);
    });
    assert.equal(status.status, 'Success');
    await eventually('stdout', () => (text === 'from client-node\n' ? true : undefined));
  });

  const PATH_TRICKS: readonly [string, string][] = [
    ['dot-dot segment', '/k8s/k/api/v1/namespaces/default/../kube-system/secrets'],
    ['dot segment', '/k8s/k/api/v1/./namespaces/default/pods'],
    ['double slash', '/k8s/k/api/v1//namespaces/default/pods'],
    ['encoded slash', '/k8s/k/api/v1/namespaces/default%2fsecrets'],
    ['encoded dot-dot', '/k8s/k/api/v1/namespaces/default/%2e%2e/secrets'],
    ['upper-case encoded dot', '/k8s/k/api/v1/namespaces/%2E/pods'],
    ['NUL', '/k8s/k/api/v1/namespaces/default%00/pods'],
    ['backslash dot-dot', '/k8s/k/api/v1/namespaces/default/..%5csecrets'],
    ['overlong', `/k8s/k/api/v1/namespaces/${'a'.repeat(9000)}/pods`],
  ];
  for (const [name, path] of PATH_TRICKS) {
    test(`path trick refused through the edge with a 400 Status: ${name}`, async () => {
      fixture.clearRequests();
      const res = await edgeRequest(`${edge.url}${path}`, { ca: edge.ca, headers: { authorization: `Bearer ${edge.token}` } });
      assert.equal(res.status, 400, res.body);
      const status = JSON.parse(res.body) as { kind: string; reason: string; code: number };
      assert.deepEqual([status.kind, status.reason, status.code], ['Status', 'BadRequest', 400]);
      assert.equal(fixture.requests.length, 0, 'nothing reached the upstream');
    });
  }

  test('path tricks on an upgrade are refused before the upgrade too', async () => {
    const raw = await rawUpgrade(edge, '/k8s/k/api/v1/namespaces/default/pods/x/../exec?command=ls', 'websocket');
    assert.match(raw, /^HTTP\/1\.1 400 /);
    assert.match(raw, /"reason":"BadRequest"/);
  });
});

function sha(b: Buffer | Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function kubectlEnv(
  kubeconfig: string,
  cacheDir: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = spawnKubectl(kubeconfig, cacheDir, ['--request-timeout', '30s', ...args], env);
  return new Promise((resolve) => {
    p.child.stdin?.end();
    let stdout = '';
    let stderr = '';
    p.child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    p.child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    p.child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function rawRequest(
  url: string,
  ca: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Buffer },
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: opts.method ?? 'GET', headers: opts.headers, ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Sends an upgrade request with the path exactly as written and returns everything the edge answers. */
async function rawUpgrade(edge: TestEdge, path: string, protocol: string): Promise<string> {
  const { connect } = await import('node:tls');
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: edge.port, ca: edge.ca, servername: 'localhost' }, () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${edge.port}\r\nAuthorization: Bearer ${edge.token}\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n`,
      );
    });
    let out = '';
    socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
    socket.on('end', () => resolve(out));
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
  });
}

function tcpRoundTrip(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1', () => s.write(payload));
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= payload.length) {
        s.end();
        resolve(got);
      }
    });
    s.on('error', reject);
  });
}
