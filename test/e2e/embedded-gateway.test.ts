/**
 * The newcomer's path: `portcullis start` (embedded: one process, no servers) with the example
 * policy and the sandbox, then the printed commands — kubeconfig, kubectl get pods, get secrets
 * -o json, a held `kubectl delete namespace` approved from a second shell with `portcullis
 * approvals` — and the requests show up in `portcullis audit tail`; after a policy edit, `portcullis
 * audit verify` covers every event of the tour (requests, the approval, the policy changes) and
 * names the approval rows deleted by hand.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { freePort } from '../harness/services.js';
import { kubectl, REPO_ROOT, runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from '../support/portcullis-process.js';
import { eventually } from '../support/eventually.js';

describe('embedded gateway: npm start, then the printed commands', { timeout: 180_000 }, () => {
  const dir = tempDir('embedded');
  let gateway: PortcullisProcess;
  let config: string;
  let kubeconfig: string;
  const cache = join(dir, 'kube-cache');
  // A copy of the example policy, edited during the tour.
  const policyFile = join(dir, 'policy.yaml');
  const examplePolicy = readFileSync(join(REPO_ROOT, 'examples', 'policy.yaml'), 'utf8');
  // The credential plugin's token cache ($XDG_CACHE_HOME/portcullis): this test's own; kubectl and the plugin inherit it.
  process.env['XDG_CACHE_HOME'] = join(dir, 'xdg-cache');

  before(async () => {
    const port = await freePort();
    // The example config with a free port and a private state dir; everything else as shipped.
    const example = readFileSync(join(REPO_ROOT, 'portcullis.example.yaml'), 'utf8')
      .replace('port: 8443', `port: ${port}`)
      .replace('port: 8444', `port: ${await freePort()}`)
      .replace('stateDir: .portcullis', `stateDir: ${join(dir, 'state')}`)
      .replace('file: examples/policy.yaml', `file: ${policyFile}`)
      // Checkpoints every second instead of every 10 s, so the test need not wait.
      .replace('    interval: 10s ', '    interval: 1s ');
    writeFileSync(policyFile, examplePolicy);
    config = join(dir, 'portcullis.yaml');
    writeFileSync(config, example);
    gateway = startPortcullis(['start', '--config', config]);
    await gateway.waitFor(/Stop with Ctrl-C/, 60_000);
  });

  after(async () => {
    const code = await gateway?.stop();
    assert.equal(code, 0, `the gateway exits cleanly on SIGTERM; output:\n${gateway.output().slice(-2000)}`);
  });

  test('the banner says what to run next and labels the sandbox', () => {
    const out = gateway.output();
    assert.match(out, /SANDBOX/);
    assert.match(out, /portcullis kubeconfig --connection sandbox --client ci-bot/);
    assert.match(out, /kubectl --kubeconfig \S+ get pods/);
    assert.match(out, /portcullis audit tail/);
  });

  test('kubectl through the printed kubeconfig: get pods and get secrets -o json', async () => {
    const kc = await runPortcullis(['kubeconfig', '--connection', 'sandbox', '--client', 'ci-bot', '--config', config]);
    assert.equal(kc.code, 0, kc.stderr);
    assert.doesNotMatch(kc.stdout, /token:/, 'no token is written into the kubeconfig');
    assert.match(kc.stdout, /exec:/);
    kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, kc.stdout);

    const pods = await kubectl(kubeconfig, cache, ['get', 'pods']);
    assert.equal(pods.code, 0, pods.stderr);
    assert.match(pods.stdout, /^NAME\s+READY\s+STATUS/m);

    const secrets = await kubectl(kubeconfig, cache, ['get', 'secrets', '-o', 'json']);
    assert.equal(secrets.code, 0, secrets.stderr);
    const list = JSON.parse(secrets.stdout) as { kind: string; items: unknown[] };
    assert.equal(list.kind, 'List');
    assert.ok(list.items.length > 0);

    const exec = await kubectl(kubeconfig, cache, ['get', '--raw', '/api/v1/namespaces/default/pods/x/exec?command=sh']);
    assert.notEqual(exec.code, 0);
  });

  test('a held kubectl delete is approved from a second shell with portcullis approvals', async () => {
    const held = kubectl(kubeconfig, cache, ['delete', 'namespace', 'staging']);
    const listed = await eventually('the pending approval', async () => {
      const r = await runPortcullis(['approvals', 'list', '--as-client', 'sre-alice', '--config', config]);
      assert.equal(r.code, 0, r.stderr);
      return /delete namespaces staging/.test(r.stdout) ? r.stdout : undefined;
    });
    // A table like kubectl get: a header row, then ID, STATE, REQUESTER, REQUEST, RULE, … per approval.
    assert.match(listed, /^ID +STATE +REQUESTER +REQUEST +RULE +APPROVALS +EXPIRES$/m);
    const id = /^([0-9a-f-]{36}) +pending +ci-bot +delete namespaces staging +delete-namespace-needs-sre +0\/1 +in \d/m.exec(listed)?.[1];
    assert.ok(id, listed);
    const noReason = await runPortcullis(['approvals', 'approve', id, '--as-client', 'sre-alice', '--config', config]);
    assert.notEqual(noReason.code, 0);
    assert.match(noReason.stderr, /requires a reason/);
    const self = await runPortcullis(['approvals', 'approve', id, '--reason', 'me', '--as-client', 'ci-bot', '--config', config]);
    assert.match(self.stderr, /cannot decide it/);
    const ok = await runPortcullis(['approvals', 'approve', id, '--reason', 'cleanup', '--as-client', 'sre-alice', '--config', config]);
    assert.equal(ok.code, 0, ok.stderr);
    const res = await held;
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /namespace "staging" deleted/);
  });

  test('the requests appear in portcullis audit tail', async () => {
    const rows = await eventually('audit rows', async () => {
      const r = await runPortcullis(['audit', 'tail', '--json', '--config', config]);
      assert.equal(r.code, 0, r.stderr);
      const parsed = r.stdout
        .trim()
        .split('\n')
        .filter((l) => l)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      return parsed.some((x) => x['rule_id'] === 'delete-namespace-needs-sre') ? parsed : undefined;
    });
    const received = rows.filter((r) => r['type'] === 'request.received');
    assert.ok(received.some((r) => r['resource'] === 'pods' && r['verb'] === 'list' && r['subject'] === 'ci-bot'));
    assert.ok(received.some((r) => r['resource'] === 'secrets' && r['verb'] === 'list'));
    const decided = rows.filter((r) => r['type'] === 'request.decided');
    assert.ok(decided.some((r) => r['rule_id'] === 'delete-namespace-needs-sre' && r['effect'] === 'require_approval'));
    assert.ok(decided.some((r) => r['rule_id'] === 'bots-read-secrets-masked'));
    const approval = rows.filter((r) => String(r['type']).startsWith('approval.')).map((r) => r['type']);
    assert.deepEqual(approval, ['approval.requested', 'approval.approved', 'approval.consumed']);
    const human = await runPortcullis(['audit', 'tail', '--config', config]);
    assert.match(human.stdout, /request\.received/);
    assert.match(human.stdout, /ci-bot/);
  });

  test('after a policy edit, audit verify covers every event of the tour, then names the approval rows deleted by hand', async () => {
    const edited = examplePolicy.replace(/version: "[^"]+"/, 'version: "tour-edit"');
    assert.notEqual(edited, examplePolicy);
    writeFileSync(policyFile, edited);
    const verify = (): Promise<{ code: number; stdout: string; stderr: string }> => runPortcullis(['audit', 'verify', '--config', config]);
    // Every chain (edge, approval, policy) stored and its end checkpointed.
    const ok = await eventually('the policy edit recorded and every chain checkpointed', async () => {
      const tail = await runPortcullis(['audit', 'tail', '--json', '--config', config]);
      if (!tail.stdout.includes('"policy_version":"tour-edit"')) return undefined;
      const r = await verify();
      const chains = /OK — \d+ events in (\d+) chains checked/.exec(r.stdout)?.[1];
      return r.code === 0 && chains !== undefined && r.stdout.includes(`the end of ${chains} chains checked against signed checkpoints`) ? r : undefined;
    });
    assert.doesNotMatch(ok.stdout, /no hash chain/);
    assert.doesNotMatch(ok.stdout, /no checkpoint/);
    const rows = (await runPortcullis(['audit', 'tail', '--json', '--limit', '10000', '--config', config])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(
      rows.every((r) => typeof r['chain_id'] === 'string' && r['chain_id'] !== ''),
      'every event of the tour is chained',
    );
    const types = new Set(rows.map((r) => r['type']));
    for (const t of ['approval.requested', 'approval.approved', 'approval.consumed', 'policy.activated']) assert.ok(types.has(t), t);

    // Who approved the namespace deletion and why, and its use: the last two events of the approval role's chain.
    const db = new Database(join(dir, 'state', 'audit.db'));
    db.pragma('busy_timeout = 5000');
    const gone = db.prepare(`DELETE FROM audit_events WHERE type IN ('approval.approved', 'approval.consumed')`).run().changes;
    db.close();
    assert.equal(gone, 2);
    const r = await verify();
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^gap: 2 events missing at seq 2\.\.3 of chain \S+ \(its tail\): the store ends at seq 1, but the checkpoint signed by approval /m);
    assert.match(r.stderr, /FAILED: 1 problem/);
  });

  void writeConfig;
});
