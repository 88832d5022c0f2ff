/**
 * Connections by path prefix (/k8s/<connection>) and by host name (<connection>.<domain>, SNI and
 * Host). kubectl caches discovery per server URL; two connections whose API servers serve
 * different resources must never see each other's discovery, whatever the form and order. There
 * is no DNS for the test domain here, so kubectl reaches host names through a CONNECT proxy that
 * sends *.portcullis.test to the edge (the TLS session, SNI included, stays end to end).
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startKubeApiServer, type KubeApiServer } from '@portcullis/kube-sandbox';
import { kubectl, tempDir } from '../support/portcullis-process.js';
import { startTestEdge, type TestEdge } from '../support/kube-edge.js';

const DOMAIN = 'portcullis.test';
const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: host-routing, version: "v1" }
rules:
  - id: bots
    match: { groups: [bots] }
    effect: allow
`;

describe('connections by path and by host name; discovery caches never mix', { timeout: 120_000 }, () => {
  let withWidgets: KubeApiServer;
  let withoutWidgets: KubeApiServer;
  let edge: TestEdge;
  let proxy: Server;
  let proxyUrl: string;
  let dir: string;

  before(async () => {
    dir = tempDir('host-routing');
    withWidgets = await startKubeApiServer();
    withoutWidgets = await startKubeApiServer({ customResources: false, requestLog: { max: 10_000 } });
    edge = await startTestEdge({ connections: { a: withWidgets, b: withoutWidgets }, policy: POLICY, domain: DOMAIN });
    proxy = createServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req, client: Socket, head: Buffer) => {
      const [host = ''] = (req.url ?? '').split(':');
      if (!host.endsWith(`.${DOMAIN}`)) {
        client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
        return;
      }
      const upstream = netConnect(edge.port, '127.0.0.1', () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length > 0) upstream.write(head);
        client.pipe(upstream).pipe(client);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  after(async () => {
    proxy.closeAllConnections();
    await new Promise<void>((r) => proxy.close(() => r()));
    await edge.close();
    await withWidgets.close();
    await withoutWidgets.close();
  });

  test('one cache dir, four servers (two connections × two forms): each sees only its own resources', async () => {
    const cacheDir = join(dir, 'shared-cache');
    const servers = {
      'path a': edge.kubeconfig(`${edge.url}/k8s/a`),
      'path b': edge.kubeconfig(`${edge.url}/k8s/b`),
      'host a': edge.kubeconfig(`https://a.${DOMAIN}:${edge.port}`, { proxyUrl }),
      'host b': edge.kubeconfig(`https://b.${DOMAIN}:${edge.port}`, { proxyUrl }),
    };
    // Twice round, in an order where each B read follows an A read that filled the shared cache.
    for (let round = 0; round < 2; round++) {
      for (const [name, kubeconfig] of Object.entries(servers)) {
        const hasWidgets = name.endsWith('a');
        const resources = await kubectl(kubeconfig, cacheDir, ['api-resources', '-o', 'name']);
        assert.equal(resources.code, 0, `${name}: ${resources.stderr}`);
        assert.equal(resources.stdout.split('\n').includes('widgets.example.com'), hasWidgets, `${name} round ${round}: ${resources.stdout}`);
        const widgets = await kubectl(kubeconfig, cacheDir, ['get', 'widgets']);
        if (hasWidgets) assert.match(widgets.stdout, /sprocket/, `${name}: ${widgets.stderr}`);
        else assert.match(widgets.stderr, /the server doesn't have a resource type "widgets"/, `${name}: ${widgets.stdout}`);
      }
    }
    // kubectl keyed the cache by host and path: one discovery directory per server URL.
    const keys = readdirSync(join(cacheDir, 'discovery'));
    assert.ok(keys.some((k) => k.startsWith(`a.${DOMAIN}_`)) && keys.some((k) => k.startsWith(`b.${DOMAIN}_`)), keys.join(' '));
    assert.ok(
      keys.some((k) => k.startsWith('127.0.0.1_')),
      keys.join(' '),
    );
  });

  test('a host-routed request reaches the named connection with the same pipeline (audit, policy)', async () => {
    const kubeconfig = edge.kubeconfig(`https://b.${DOMAIN}:${edge.port}`, { proxyUrl });
    const r = await kubectl(kubeconfig, join(dir, 'c2'), ['get', 'pods', '-n', 'prod']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /worker-0/);
    assert.ok(withoutWidgets.requests.some((x) => x.path.startsWith('/api/v1/namespaces/prod/pods')));
    assert.ok(edge.log.appended.some((e) => e.type === 'request.received' && e.connection === 'b'));
  });

  test('SNI and Host must agree; an unknown name is a 404 Status', async () => {
    const exchange = (servername: string, host: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: edge.port, ca: edge.ca, servername }, () => {
          socket.write(`GET /api/v1/namespaces HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${edge.token}\r\nConnection: close\r\n\r\n`);
        });
        let out = '';
        socket.on('data', (d: Buffer) => (out += d.toString()));
        socket.on('close', () => resolve(out));
        socket.on('error', reject);
      });
    assert.match(await exchange(`a.${DOMAIN}`, `b.${DOMAIN}`), /^HTTP\/1\.1 421 /);
    const unknown = await exchange(`zz.${DOMAIN}`, `zz.${DOMAIN}`);
    assert.match(unknown, /^HTTP\/1\.1 404 /);
    assert.match(unknown, /"kind":"Status"/);
    assert.match(await exchange(`a.${DOMAIN}`, `a.${DOMAIN}:${edge.port}`), /^HTTP\/1\.1 200 /);
  });

  test('a path-prefix request must name a host the edge serves as (421), with exactly one Host (400, closed); upgrades too', async () => {
    const raw = (head: string): Promise<{ text: string; closed: boolean }> =>
      new Promise((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: edge.port, ca: edge.ca, servername: 'localhost' }, () => socket.write(`${head}\r\n`));
        let text = '';
        // Without "Connection: close": the edge itself must close after a 400 for a duplicate Host.
        const timer = setTimeout(() => {
          socket.destroy();
          resolve({ text, closed: false });
        }, 3000);
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('close', () => {
          clearTimeout(timer);
          resolve({ text, closed: true });
        });
        socket.on('error', reject);
      });
    const auth = `Authorization: Bearer ${edge.token}\r\n`;
    const get = (target: string, hosts: string): string => `GET ${target} HTTP/1.1\r\n${hosts}${auth}`;
    const before = withoutWidgets.requests.length;
    const twoHosts = await raw(get('/k8s/b/api/v1/namespaces', 'Host: 127.0.0.1\r\nHost: evil.example\r\n'));
    assert.match(twoHosts.text, /^HTTP\/1\.1 400 [^]*more than one Host header/);
    assert.ok(twoHosts.closed, 'the connection is closed after a duplicate Host');
    const foreign = await raw(get('/k8s/b/api/v1/namespaces', 'Host: evil.example\r\nConnection: close\r\n'));
    assert.match(foreign.text, /^HTTP\/1\.1 421 [^]*does not serve as "evil.example"/);
    const absolute = await raw(get('https://evil.example/k8s/b/api/v1/namespaces', 'Host: 127.0.0.1\r\nConnection: close\r\n'));
    assert.match(absolute.text, /^HTTP\/1\.1 421 /);
    const upgrade = await raw(
      get(
        '/k8s/b/api/v1/namespaces/prod/pods/worker-0/exec?command=sh&stdout=true',
        'Host: evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n',
      ),
    );
    assert.match(upgrade.text, /^HTTP\/1\.1 421 /);
    assert.equal(withoutWidgets.requests.length, before, 'nothing reached the upstream');
    // The edge's own names pass: loopback by default, and an absolute-form target's authority replaces the Host.
    const own = await raw(get(`https://localhost:${edge.port}/k8s/b/api/v1/namespaces`, 'Host: evil.example\r\nConnection: close\r\n'));
    assert.match(own.text, /^HTTP\/1\.1 200 /);
    const loopback = await raw(get('/k8s/b/api/v1/namespaces', `Host: 127.0.0.1:${edge.port}\r\nConnection: close\r\n`));
    assert.match(loopback.text, /^HTTP\/1\.1 200 /);
  });
});
