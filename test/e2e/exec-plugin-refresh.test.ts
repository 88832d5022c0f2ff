/**
 * The exec-plugin kubeconfig really refreshes short-lived tokens: with a 3-second development
 * token lifetime (and 1 s clock skew), kubectl and @kubernetes/client-node keep working across
 * the expiry, and the audit rows show a new token id after it. No sleeps: the test waits until
 * the first token's recorded expiry has passed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { freePort } from '../harness/services.js';
import { kubectl, REPO_ROOT, runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from '../support/portcullis-process.js';
import { eventually } from '../support/eventually.js';

type Row = Record<string, unknown>;

describe('exec credential plugin refreshes expired tokens', { timeout: 180_000 }, () => {
  const dir = tempDir('exec-refresh');
  let gateway: PortcullisProcess;
  let config: string;
  let kubeconfig: string;
  // The credential plugin's token cache ($XDG_CACHE_HOME/portcullis): this test's own; kubectl and the plugin inherit it.
  process.env['XDG_CACHE_HOME'] = join(dir, 'xdg-cache');

  before(async () => {
    const port = await freePort();
    config = writeConfig(dir, 'portcullis.yaml', {
      node: { stateDir: join(dir, 'state') },
      edge: { listen: { host: '127.0.0.1', port } },
      identity: {
        clockSkew: '1s',
        devIssuer: { enabled: true, tokenLifetime: '3s', clients: [{ id: 'ci-bot', secret: 'dev-secret-ci-bot', subject: 'ci-bot', groups: ['bots'] }] },
      },
      policy: { file: join(REPO_ROOT, 'examples', 'policy.yaml') },
      // Not the default 8444: another embedded test may hold it at the same time.
      approval: { listen: { host: '127.0.0.1', port: await freePort() } },
    });
    gateway = startPortcullis(['start', '--config', config]);
    await gateway.waitFor(/Stop with Ctrl-C/, 60_000);
    const kc = await runPortcullis(['kubeconfig', '--connection', 'sandbox', '--client', 'ci-bot', '--config', config]);
    assert.equal(kc.code, 0, kc.stderr);
    kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, kc.stdout);
  });

  after(async () => {
    const code = await gateway?.stop();
    assert.equal(code, 0, gateway.output().slice(-2000));
  });

  async function rows(): Promise<Row[]> {
    const r = await runPortcullis(['audit', 'tail', '--json', '--limit', '10000', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout
      .trim()
      .split('\n')
      .filter((l) => l)
      .map((l) => JSON.parse(l) as Row);
  }

  /** The token id and expiry of the token that made the (only) pods list in `namespace`. */
  async function tokenOf(namespace: string): Promise<{ tokenId: string; expiresAtMs: number }> {
    return eventually(`audit rows for pods in ${namespace}`, async () => {
      const all = await rows();
      const received = all.find((r) => r['type'] === 'request.received' && r['resource'] === 'pods' && r['namespace'] === namespace);
      if (received === undefined) return undefined;
      const tokenId = String(received['token_id']);
      const announced = all.find((r) => r['type'] === 'identity.authenticated' && r['token_id'] === tokenId);
      if (announced === undefined) return undefined;
      const payload = JSON.parse(String(announced['payload_json'])) as { identityAuthenticated: { expiresAtMs: number } };
      return { tokenId, expiresAtMs: payload.identityAuthenticated.expiresAtMs };
    });
  }

  const until = (ms: number) => eventually(`the clock passes ${new Date(ms).toISOString()}`, () => (Date.now() > ms ? true : undefined), 30_000);

  test('kubectl: two calls spanning the expiry use two different tokens, both accepted', async () => {
    const cache = join(dir, 'kube-cache');
    const first = await kubectl(kubeconfig, cache, ['get', 'pods', '-n', 'default']);
    assert.equal(first.code, 0, first.stderr);
    const t1 = await tokenOf('default');
    await until(t1.expiresAtMs + 1000); // past exp + clock skew: the old token would now be refused
    const second = await kubectl(kubeconfig, cache, ['get', 'pods', '-n', 'staging']);
    assert.equal(second.code, 0, second.stderr);
    const t2 = await tokenOf('staging');
    assert.notEqual(t2.tokenId, t1.tokenId);
    assert.ok(t2.expiresAtMs > t1.expiresAtMs);
    assert.ok(t2.expiresAtMs - t1.expiresAtMs < 60_000, 'the lifetime is the configured 3 s, not minutes');
  });

  test('@kubernetes/client-node in one process: the cached credential is refreshed after its expirationTimestamp', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const api = kc.makeApiClient(CoreV1Api);
    const a = await api.listNamespacedPod({ namespace: 'kube-system' });
    assert.ok(Array.isArray(a.items));
    const t1 = await tokenOf('kube-system');
    await until(t1.expiresAtMs + 1000);
    const b = await api.listNamespacedPod({ namespace: 'prod' });
    assert.ok(Array.isArray(b.items));
    const t2 = await tokenOf('prod');
    assert.notEqual(t2.tokenId, t1.tokenId, 'the client ran the plugin again after expiry');
  });
});
