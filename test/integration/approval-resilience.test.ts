/**
 * Just-in-time approval in cluster mode, resilience: forged/stale/replayed Slack signatures, Slack
 * 429, Redis flushed mid-way and rebuilt from JetStream, the Slack worker SIGKILLed mid-send.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { eventually } from '../support/eventually.js';
import { approvalIdIn, SIGNING_SECRET, startCluster, type Cluster } from '../support/cluster.js';

describe('approvals in cluster mode: signatures, rate limits, Redis loss, worker crash', { timeout: 300_000 }, () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster({ pendingTtl: '30s' });
  });
  after(async () => {
    await c?.stop();
  });

  test('Slack callbacks: forged, stale and replayed signatures are refused (a table)', async () => {
    c.putConfigMap('default', 'sig');
    const r = await c.raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/sig');
    const id = approvalIdIn(r.body);
    const now = Math.floor(Date.now() / 1000);
    const good = () => c.slack.interaction({ approvalId: id, action: 'approve', userId: 'U0ALICE', signingSecret: SIGNING_SECRET });
    const cases: { name: string; make: () => { body: string; headers: Record<string, string> }; status: number; error: string }[] = [
      {
        name: 'signed with another secret',
        make: () => c.slack.interaction({ approvalId: id, action: 'approve', userId: 'U0ALICE', signingSecret: 'attacker-secret' }),
        status: 401,
        error: 'signature_mismatch',
      },
      {
        name: 'body changed after signing',
        make: () => {
          const g = good();
          return { ...g, body: g.body.replace('U0ALICE', 'U0ALICX') };
        },
        status: 401,
        error: 'signature_mismatch',
      },
      {
        name: 'timestamp changed after signing',
        make: () => {
          const g = good();
          return { ...g, headers: { ...g.headers, 'x-slack-request-timestamp': String(now - 1) } };
        },
        status: 401,
        error: 'signature_mismatch',
      },
      {
        name: 'stale: 6 minutes old, correctly signed',
        make: () => c.slack.interaction({ approvalId: id, action: 'approve', userId: 'U0ALICE', signingSecret: SIGNING_SECRET, timestampSec: now - 360 }),
        status: 401,
        error: 'signature_stale',
      },
      {
        name: 'from the future: 6 minutes ahead',
        make: () => c.slack.interaction({ approvalId: id, action: 'approve', userId: 'U0ALICE', signingSecret: SIGNING_SECRET, timestampSec: now + 360 }),
        status: 401,
        error: 'signature_stale',
      },
      {
        name: 'no signature',
        make: () => {
          const g = good();
          const { 'x-slack-signature': _s, ...h } = g.headers;
          return { ...g, headers: h };
        },
        status: 401,
        error: 'signature_missing',
      },
      {
        name: 'no timestamp',
        make: () => {
          const g = good();
          const { 'x-slack-request-timestamp': _t, ...h } = g.headers;
          return { ...g, headers: h };
        },
        status: 401,
        error: 'signature_missing',
      },
      {
        name: 'v1 scheme',
        make: () => {
          const g = good();
          return { ...g, headers: { ...g.headers, 'x-slack-signature': g.headers['x-slack-signature']!.replace('v0=', 'v1=') } };
        },
        status: 401,
        error: 'signature_malformed',
      },
      {
        name: 'truncated signature',
        make: () => {
          const g = good();
          return { ...g, headers: { ...g.headers, 'x-slack-signature': g.headers['x-slack-signature']!.slice(0, 40) } };
        },
        status: 401,
        error: 'signature_malformed',
      },
      {
        name: 'uppercase hex (not what Slack sends)',
        make: () => {
          const g = good();
          return { ...g, headers: { ...g.headers, 'x-slack-signature': g.headers['x-slack-signature']!.toUpperCase() } };
        },
        status: 401,
        error: 'signature_malformed',
      },
    ];
    for (const row of cases) {
      const res = await c.slack.send(`${c.approvals[1]}/slack/interactions`, row.make(), c.caPem);
      assert.equal(res.status, row.status, `${row.name}: ${res.body}`);
      assert.equal((JSON.parse(res.body) as { error: string }).error, row.error, row.name);
    }
    const still = await c.api(0, 'GET', `/approvals/${id}`, 'sre-alice');
    assert.equal(still.body['state'], 'pending', 'no refused callback decided anything');
    // A genuine deny, then the very same signed request again (to either process): a replay.
    const genuine = c.slack.interaction({ approvalId: id, action: 'deny', userId: 'U0ALICE', reason: 'no', signingSecret: SIGNING_SECRET });
    assert.equal((await c.slack.send(`${c.approvals[1]}/slack/interactions`, genuine, c.caPem)).status, 200);
    for (const i of [1, 0]) {
      const replay = await c.slack.send(`${c.approvals[i]}/slack/interactions`, genuine, c.caPem);
      assert.equal(replay.status, 409, 'replay refused');
    }
    await eventually('the denial', async () => ((await c.api(0, 'GET', `/approvals/${id}`, 'sre-alice')).body['state'] === 'denied' ? true : undefined));
  });

  test('Slack 429: the worker honours Retry-After and posts exactly once', async () => {
    c.putConfigMap('default', 'ratelimited');
    c.slack.rateLimit('chat.postMessage', 1, 1);
    const r = await c.raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/ratelimited');
    const id = approvalIdIn(r.body);
    const msg = await eventually('the post after the rate limit', () => c.slack.messagesFor(id)[0]);
    const posts = c.slack.calls.filter((c) => c.method === 'chat.postMessage' && JSON.stringify(c.body['metadata']).includes(id));
    assert.deepEqual(
      posts.map((c) => c.status),
      [429, 200],
    );
    assert.ok(posts[1]!.at - posts[0]!.at >= 950, `waited for Retry-After (${posts[1]!.at - posts[0]!.at} ms)`);
    assert.equal(c.slack.messagesFor(id).length, 1);
    assert.ok(msg.ts !== '');
  });

  test('Redis flushed mid-way: the projection is rebuilt from JetStream; nothing pending or granted is lost', async () => {
    for (const name of ['flush-pending', 'flush-granted']) c.putConfigMap('default', name);
    const p = await c.raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/flush-pending');
    const pendingId = approvalIdIn(p.body);
    const g = await c.raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/flush-granted');
    const grantedId = approvalIdIn(g.body);
    assert.equal((await c.api(0, 'POST', `/approvals/${grantedId}/approve`, 'sre-alice', { reason: 'before the flush' })).status, 200);

    const client = new Redis(c.redis.url);
    await client.flushall();
    assert.equal(await client.dbsize(), 0);
    await client.quit();

    const list = await c.api(1, 'GET', '/approvals', 'sre-alice');
    assert.ok(
      (list.body['approvals'] as { id: string }[]).some((a) => a.id === pendingId),
      'the pending approval is back',
    );
    const viaB = await c.raw('ci-bot', 1, 'DELETE', '/api/v1/namespaces/default/configmaps/flush-granted');
    assert.equal(viaB.status, 200, `the grant survived the flush: ${viaB.body}`);
    assert.equal(c.deletes('/api/v1/namespaces/default/configmaps/flush-granted'), 1);
    const again = await c.raw('ci-bot', 1, 'DELETE', '/api/v1/namespaces/default/configmaps/flush-pending');
    assert.equal(approvalIdIn(again.body), pendingId, 'the retry finds the same pending approval');
    // A used once-grant stays used after another flush.
    const c2 = new Redis(c.redis.url);
    await c2.flushall();
    await c2.quit();
    const used = await c.raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/flush-granted', { 'x-portcullis-approval': grantedId });
    assert.equal(used.status, 403);
    assert.match(used.body, /already used it/);
  });

  test('Slack worker SIGKILLed mid-send: after restart exactly one message per approval', async () => {
    c.putConfigMap('default', 'crash');
    const hold = c.slack.holdNextPost();
    const r = await c.raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/crash');
    const id = approvalIdIn(r.body);
    await hold.received;
    // Slack has the message; the worker holding the job dies before it learns the ts.
    await Promise.all([c.procs.get('approval-1')!.kill(), c.procs.get('approval-2')!.kill()]);
    hold.release();
    assert.equal(c.slack.messagesFor(id).length, 1);
    const [a1, a2] = await Promise.all([c.start('approval-1', 'approval'), c.start('approval-2', 'approval')]);
    assert.equal(String(a1['approvalUrl']), c.approvals[0]);
    assert.equal(String(a2['approvalUrl']), c.approvals[1]);
    // The stalled job runs again, finds the message in the channel history and records its ts:
    // the decision then updates that message (no second post).
    await eventually('the history lookup', () => c.slack.calls.find((c) => c.method === 'conversations.history'), 30_000);
    assert.equal((await c.api(0, 'POST', `/approvals/${id}/approve`, 'sre-alice', {})).status, 200);
    await eventually('the update of the one message', () => ((c.slack.messagesFor(id)[0]?.updates ?? 0) > 0 ? true : undefined), 30_000);
    assert.equal(c.slack.messagesFor(id).length, 1);
    const ids = c.slack.approvalIds();
    assert.equal(new Set(ids).size, ids.length, `one message per approval: ${ids.join(', ')}`);
  });
});
