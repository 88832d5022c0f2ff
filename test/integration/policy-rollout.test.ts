/**
 * The policy service as separate processes on a real nats-server: two `portcullis serve policy`
 * in one queue group behind two edges (one with the decision cache off, one with it on), real
 * HTTPS requests under steady load, one policy process killed with SIGKILL; then `policy push` of
 * an invalid bundle (nothing changes anywhere) and of valid ones (every edge changes its decisions
 * within one second, the cached ones included). Every policy change is an event in the audit
 * stream, in the hash chains of the process that made it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:https';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { startKubeApiServer, type KubeApiServer } from '@portcullis/kube-sandbox';
import { freePort, startNats, type TestNats } from '../harness/services.js';
import { runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from '../support/portcullis-process.js';
import { eventually } from '../support/eventually.js';
import { connectNats, type NatsBus } from '@portcullis/bus';
import { StreamCheckpointStore } from '@portcullis/audit-store/pure';
import { silentLogger } from '@portcullis/common';
import { auditMessageEvents, BucketKeys, Buckets, decodeEvent, Streams, type EventEnvelope, type RequestDecided } from '@portcullis/contracts';

const policyText = (version: string, extraRules = ''): string => `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: rollout-test, version: "${version}" }
rules:
  - id: discovery
    match: { verbs: [get], nonResourcePaths: ["/api", "/api/*", "/apis", "/apis/*", "/version"] }
    effect: allow
${extraRules}  - id: bots-read
    match: { groups: [bots], verbs: [get, list, watch] }
    effect: allow
`;
const FILE_POLICY = policyText('f1');
const FROZEN_RULE = `  - id: pods-frozen
    match: { resources: [pods], namespaces: [default] }
    effect: deny
    message: pods in default are frozen
`;
const V2 = policyText('v2', FROZEN_RULE);
const V3 = policyText('v3', FROZEN_RULE);
// An unknown effect at line 7: the kind of typo a push must never put in force.
const INVALID = policyText('v-bad').replace('effect: allow\n  - id: bots-read', 'effect: allwo\n  - id: bots-read');

const PODS_PATH = '/k8s/prod/api/v1/namespaces/default/pods';
const DECISION_TIMEOUT_MS = 1000;

interface Answer {
  readonly edge: number;
  readonly status: number;
  readonly auditId: string;
  readonly at: number;
  readonly body: string;
}

describe('policy service: failover, invalid and valid pushes across processes', { timeout: 240_000 }, () => {
  let nats: TestNats;
  let fixture: KubeApiServer;
  let client: NatsBus;
  const dir = tempDir('policy-rollout');
  const policies = new Map<string, PortcullisProcess>();
  const edges: PortcullisProcess[] = [];
  const edgeUrls: string[] = [];
  let rolesConfig = '';
  let operatorConfig = '';
  let caPem = '';
  let token = '';
  let agent: Agent;

  const ask = (edge: number, path = PODS_PATH): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const u = new URL(`${edgeUrls[edge]}${path}`);
      const req = request(
        { hostname: u.hostname, port: u.port, path, method: 'GET', ca: caPem, agent, headers: { authorization: `Bearer ${token}` }, timeout: 10_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              edge,
              status: res.statusCode ?? 0,
              auditId: String(res.headers['audit-id']),
              at: performance.now(),
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 10s')));
      req.on('error', reject);
      req.end();
    });

  /** Every request.decided event in the audit stream so far, by request (correlation) id. */
  const decidedEvents = async (ids: ReadonlySet<string>): Promise<Map<string, RequestDecided>> => {
    const found = new Map<string, RequestDecided>();
    // The edge group-commits its events: they arrive one per message or in batches (audit._batch.events).
    const sub = client.log.read(Streams.audit.name, { startSeq: 1 }, (m) => {
      for (const data of auditMessageEvents(m.subject, m.data)) {
        const e = decodeEvent(data);
        if (e.connection === 'prod' && ids.has(e.correlationId) && e.payload.case === 'requestDecided') found.set(e.correlationId, e.payload.value);
      }
    });
    try {
      await eventually(`a request.decided event for each of ${ids.size} requests`, () => (found.size === ids.size ? true : undefined), 20_000);
    } catch (err) {
      const missing = [...ids].filter((id) => !found.has(id)).slice(0, 5);
      throw new Error(`${(err as Error).message}; ${found.size}/${ids.size} found, missing e.g. ${missing.join(', ')}`);
    } finally {
      await sub.unsubscribe();
    }
    return found;
  };

  const startPolicy = async (name: string): Promise<PortcullisProcess> => {
    const p = startPortcullis(['serve', 'policy', '--config', rolesConfig]);
    policies.set(name, p);
    await p.waitFor(/"ready":true/);
    return p;
  };

  before(async () => {
    nats = await startNats({ jetstream: true, roles: ['edge', 'policy', 'operator'] });
    fixture = await startKubeApiServer({ requestLog: { max: 10_000 } });
    const tokenFile = join(dir, 'upstream-token');
    const caFile = join(dir, 'upstream-ca.pem');
    writeFileSync(tokenFile, fixture.token, { mode: 0o600 });
    writeFileSync(caFile, fixture.caPem);
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(policyFile, FILE_POLICY);
    const ports = [await freePort(), await freePort()];
    const issuerUrl = `https://127.0.0.1:${ports[0]}/oidc/dev`;
    const base = (role: 'edge' | 'policy' | 'operator', id: string, port: number, cache: boolean): Record<string, unknown> => ({
      node: { id, stateDir: join(dir, 'state') },
      edge: {
        listen: { host: '127.0.0.1', port },
        decisionTimeout: `${DECISION_TIMEOUT_MS}ms`,
        auditAckTimeout: '2s',
        // A long ttl on the caching edge: only invalidation can make it change its decisions in time.
        decisionCache: { enabled: cache, ttl: '60s', maxEntries: 1000 },
      },
      // Each its own NATS user: the policy processes, the edges and `policy push` (operator).
      bus: nats.busConfig(role),
      identity: { devIssuer: { enabled: true, issuerUrl, clients: [{ id: 'ci-bot', secret: 'ci-bot-secret-123', subject: 'ci-bot', groups: ['bots'] }] } },
      connections: [{ name: 'prod', type: 'kubernetes', server: fixture.url, caFile, tokenFile }],
      policy: { file: policyFile },
    });
    const edgeConfigs = [
      writeConfig(dir, 'edge-0.yaml', base('edge', 'edge-0', ports[0]!, false)),
      writeConfig(dir, 'edge-1.yaml', base('edge', 'edge-1', ports[1]!, true)),
    ];
    rolesConfig = writeConfig(dir, 'roles.yaml', base('policy', 'policy', ports[0]!, false));
    operatorConfig = writeConfig(dir, 'operator.yaml', base('operator', 'operator', ports[0]!, false));

    await Promise.all([startPolicy('a'), startPolicy('b')]);
    await Promise.all(
      edgeConfigs.map(async (cfg, i) => {
        const p = startPortcullis(['serve', 'edge', '--config', cfg]);
        edges[i] = p;
        edgeUrls[i] = (JSON.parse(await p.waitFor(/"ready":true/)) as { url: string }).url;
      }),
    );
    const t = await runPortcullis(['token', '--client', 'ci-bot', '--config', edgeConfigs[0]!]);
    assert.equal(t.code, 0, t.stderr);
    token = t.stdout.trim();
    caPem = readFileSync(join(dir, 'state', 'tls', 'ca.pem'), 'utf8');
    agent = new Agent({ keepAlive: true, maxSockets: 16 });
    client = await connectNats({ servers: [nats.url], name: 'policy-rollout-test', logger: silentLogger, ...nats.admin });
  });

  after(async () => {
    agent?.destroy();
    await client?.close();
    await Promise.all([...edges, ...policies.values()].map((p) => p.stop()));
    await fixture?.close();
    await nats?.stop();
  });

  test('an empty bucket: every policy process serves the configured file', async () => {
    for (const p of policies.values()) await p.waitFor(/no bundle yet: serving the configured file/);
    const answers = await Promise.all([ask(0), ask(1), ask(0), ask(1)]);
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200],
      answers.map((a) => a.body.slice(0, 200)).join('\n'),
    );
    const events = await decidedEvents(new Set(answers.map((a) => a.auditId)));
    for (const e of events.values()) assert.deepEqual([e.decision?.ruleId, e.decision?.policyVersion], ['bots-read', 'f1']);
  });

  test('SIGKILL of one of two policy processes under load: nothing allowed without a decision, errors stop once the survivor takes over', async () => {
    fixture.clearRequests();
    const answers: Answer[] = [];
    let stop = false;
    const loop = async (edge: number): Promise<void> => {
      while (!stop) answers.push(await ask(edge));
    };
    const started = performance.now();
    const loops = [0, 0, 0, 0, 0, 0, 1, 1].map((edge) => loop(edge));
    await eventually('steady load through both edges', () => (answers.filter((a) => a.status === 200).length >= 100 ? true : undefined));
    const killedAt = performance.now();
    await policies.get('b')!.kill();
    const countAtKill = answers.length;
    await eventually('200 more answers after the kill', () => (answers.length >= countAtKill + 200 ? true : undefined), 60_000);
    // Keep the load on until well past the decision timeout, so late errors would show.
    await eventually('three decision timeouts to pass since the kill', () => performance.now() - killedAt > DECISION_TIMEOUT_MS * 3);
    stop = true;
    await Promise.all(loops);

    const byStatus = new Map<number, number>();
    for (const a of answers) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1);
    const summary = `${answers.length} answers in ${Math.round(performance.now() - started)} ms: ${JSON.stringify(Object.fromEntries(byStatus))}`;
    assert.deepEqual(
      [...byStatus.keys()].filter((s) => s !== 200 && s !== 503),
      [],
      summary,
    );

    // No request reached the upstream without an allow decision recorded for it.
    const allowed = answers.filter((a) => a.status === 200);
    const forwarded = fixture.requests.filter((r) => r.path.startsWith('/api/v1/namespaces/default/pods')).length;
    assert.equal(forwarded, allowed.length, `the upstream saw exactly the allowed requests (${summary})`);
    const events = await decidedEvents(new Set(allowed.map((a) => a.auditId)));
    for (const a of allowed) {
      const e = events.get(a.auditId)!;
      assert.equal(e.decision?.effect, 'allow', a.auditId);
      assert.equal(e.decision?.ruleId, 'bots-read');
    }
    const fromCache = allowed.filter((a) => events.get(a.auditId)!.cached);
    assert.ok(fromCache.length > 0 && fromCache.every((a) => a.edge === 1), 'only the caching edge reused decisions, and each reuse is an event marked cached');

    // Errors: only requests in flight to the killed process, bounded by the concurrency, and none
    // once its in-flight requests have timed out.
    const errors = answers.filter((a) => a.status === 503);
    assert.ok(errors.length <= loops.length, `at most one 503 per concurrent client (${summary})`);
    for (const e of errors) {
      // In flight to the killed process: answered when the decision timeout runs out (plus scheduling slack on a busy machine).
      assert.ok(e.at >= killedAt && e.at <= killedAt + DECISION_TIMEOUT_MS + 2000, `503 ${Math.round(e.at - killedAt)} ms after the kill (${summary})`);
      assert.match(e.body, /decision service unavailable/);
    }
    const lastError = Math.max(killedAt, ...errors.map((e) => e.at));
    process.stdout.write(
      `# SIGKILL under load: ${summary}, ${fromCache.length} from the cache, last 503 ${Math.round(lastError - killedAt)} ms after the kill\n`,
    );
    assert.ok(answers.filter((a) => a.at > lastError && a.status === 200).length >= 100, `the survivor answers everything after the takeover (${summary})`);
  });

  test('policy push of an invalid bundle: refused with line and column, and an invalid bundle in the bucket leaves the old version in force everywhere', async () => {
    await startPolicy('c'); // two live policy processes again: a and c
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, INVALID);
    const push = await runPortcullis(['policy', 'push', bad, '--config', operatorConfig]);
    assert.equal(push.code, 1, push.stdout + push.stderr);
    assert.match(push.stderr, /bad\.yaml:\d+:\d+/);
    assert.match(push.stderr, /nothing was changed/);
    const kv = await client.kv(Buckets.policy);
    assert.equal(await kv.get(BucketKeys.policyBundle), undefined, 'nothing was pushed');

    // A bundle that skipped validation (another tool, an older CLI) reaches every policy process:
    // each rejects it, names the version, and keeps serving the one in force.
    await kv.put(BucketKeys.policyBundle, new TextEncoder().encode(INVALID));
    for (const name of ['a', 'c']) {
      const line = await policies.get(name)!.waitFor(/policy rejected; keeping the last good version/);
      assert.match(line, /"rejectedVersion":"v-bad"/);
      assert.match(line, /"keeping":"f1"/);
    }
    const answers = await Promise.all([0, 1, 0, 1, 0, 1, 0, 1].map((edge) => ask(edge)));
    assert.deepEqual(
      answers.map((a) => a.status),
      answers.map(() => 200),
    );
    const events = await decidedEvents(new Set(answers.map((a) => a.auditId)));
    for (const e of events.values()) assert.equal(e.decision?.policyVersion, 'f1');
  });

  test('a valid push changes decisions on every edge within one second, the caching edge included', async () => {
    const kv = await client.kv(Buckets.policy);
    // Warm the caching edge so its answer for this request comes from the cache.
    await ask(1);
    assert.equal((await ask(1)).status, 200);

    const firstChange = (edge: number, from: number, version: string): Promise<number> =>
      eventually(
        `edge ${edge} to answer with policy ${version}`,
        async () => {
          const a = await ask(edge);
          return a.status === 403 && a.body.includes(`policy ${version})`) ? a.at - from : undefined;
        },
        5_000,
      );

    // Through the CLI, measured from its report that the bundle was published.
    const v2 = join(dir, 'v2.yaml');
    writeFileSync(v2, V2);
    const pusher = startPortcullis(['policy', 'push', v2, '--config', operatorConfig]);
    const pushedLine = await pusher.waitFor(/pushed policy rollout-test version v2/);
    const pushedAt = performance.now();
    assert.match(pushedLine, /portcullis_policy\/bundle revision \d+/);
    assert.equal(await pusher.exited, 0);
    const v2Latency = await Promise.all([firstChange(0, pushedAt, 'v2'), firstChange(1, pushedAt, 'v2')]);
    for (const ms of v2Latency) assert.ok(ms < 1000, `decisions changed ${Math.round(ms)} ms after the push`);
    const denied = await ask(1);
    assert.equal(denied.status, 403);
    assert.match(denied.body, /rule pods-frozen, policy v2/);
    assert.match(denied.body, /pods in default are frozen/);

    // Pushing other content under the version in force is refused; the same content is a no-op.
    const v2changed = join(dir, 'v2-changed.yaml');
    writeFileSync(v2changed, V2.replace('are frozen', 'are frozen for now'));
    const clash = await runPortcullis(['policy', 'push', v2changed, '--config', operatorConfig]);
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /version v2 is already in portcullis_policy\/bundle .* with different content; change metadata.version/);
    const same = await runPortcullis(['policy', 'push', v2, '--config', operatorConfig]);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /already the bundle .* nothing pushed/);

    // The policy in force, explained by the policy role.
    const explained = await runPortcullis([
      'policy',
      'explain',
      '--as',
      'ci-bot',
      '--group',
      'bots',
      '--connection',
      'prod',
      'list',
      'pods',
      '-n',
      'default',
      '--config',
      operatorConfig,
    ]);
    assert.equal(explained.code, 0, explained.stderr);
    assert.match(explained.stdout, /decision: DENY by rule pods-frozen/);
    assert.match(explained.stdout, /policy:\s+rollout-test version v2 \(kv portcullis_policy\/bundle revision \d+\)/);
    assert.match(explained.stdout, /skipped\s+discovery \(allow\): verbs: "list" does not match \["get"\]/);

    // Measured precisely: a put from here, timed from just before it, to both edges' first v3 answer.
    const t0 = performance.now();
    await kv.put(BucketKeys.policyBundle, new TextEncoder().encode(V3));
    const v3Latency = await Promise.all([firstChange(0, t0, 'v3'), firstChange(1, t0, 'v3')]);
    for (const ms of v3Latency) assert.ok(ms < 1000, `decisions changed ${Math.round(ms)} ms after the put`);
    process.stdout.write(
      `# policy push → changed decisions: v2 ${v2Latency.map(Math.round).join('/')} ms, v3 ${v3Latency.map(Math.round).join('/')} ms (edge 0 / edge 1)\n`,
    );
  });

  test('policy changes are events in the audit chain: the push (who, from where, version, digest), each process activating it, the invalid bundle refused and why', async () => {
    const events: EventEnvelope[] = [];
    for (const m of await client.log.snapshot(Streams.audit.name, { filterSubject: 'audit._system.policy.>' })) {
      for (const data of auditMessageEvents(m.subject, m.data)) events.push(decodeEvent(data));
    }
    assert.ok(
      events.every((e) => e.chainId !== '' && e.chainSeq > 0 && e.hash.length === 64),
      'every policy event is sealed in a chain',
    );
    // Only the push that published something is recorded: the invalid file, the clash and the no-op are not pushes.
    const pushes = events.flatMap((e) => (e.payload.case === 'policyPushed' ? [e.payload.value] : []));
    assert.equal(pushes.length, 1, JSON.stringify(pushes));
    assert.equal(pushes[0]!.policyVersion, 'v2');
    assert.equal(pushes[0]!.bundleSha256, createHash('sha256').update(V2).digest('hex'));
    assert.match(pushes[0]!.pushedBy, new RegExp(`^${userInfo().username}`));
    assert.equal(pushes[0]!.pushedFrom, hostname());
    assert.equal(pushes[0]!.target, 'kv portcullis_policy/bundle');
    // a and c (b was killed) each put v2 and v3 in force, each in its own chain segment.
    for (const version of ['v2', 'v3']) {
      const activated = events.filter((e) => e.payload.case === 'policyActivated' && e.payload.value.policyVersion === version);
      assert.equal(new Set(activated.map((e) => e.chainId)).size, 2, `${version} activated by both live processes`);
    }
    const v2 = events.find((e) => e.payload.case === 'policyActivated' && e.payload.value.policyVersion === 'v2');
    assert.equal(v2?.payload.case === 'policyActivated' ? v2.payload.value.bundleSha256 : '', pushes[0]!.bundleSha256);
    const rejected = events.flatMap((e) => (e.payload.case === 'policyRejected' ? [e.payload.value] : []));
    assert.ok(rejected.length >= 2, 'both live processes refused the invalid bundle');
    for (const r of rejected) {
      assert.equal(r.claimedVersion, 'v-bad');
      assert.equal(r.keepingVersion, 'f1');
      assert.match(r.problems.join('\n'), /:\d+:\d+/);
      assert.equal(r.bundleSha256, createHash('sha256').update(INVALID).digest('hex'));
    }
    // The push record's one-event chain is anchored by a checkpoint the CLI signed (this host has the
    // state directory's key), and every policy process signs the heads of its own chains.
    const pushed = events.find((e) => e.payload.case === 'policyPushed')!;
    const store = new StreamCheckpointStore(client.log);
    await eventually('checkpoints of the push and of both policy processes', async () => {
      const { checkpoints } = await store.list();
      const policyChains = new Set(checkpoints.filter((k) => k.role === 'policy').map((k) => k.chainId));
      const pushAnchored = checkpoints.some((k) => k.role === 'cli' && k.chainId === pushed.chainId && k.seq === 1 && k.hash === pushed.hash);
      return pushAnchored && policyChains.size >= 2 ? true : undefined;
    });
  });
});
