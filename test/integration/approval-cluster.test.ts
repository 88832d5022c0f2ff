/**
 * Just-in-time approval in cluster mode (test/support/cluster.ts: two edges, two approval
 * processes, policy, NATS, Redis, fake Slack, the API-server fixture): held kubectl released by a
 * signed Slack click on the other approval process, retries through the other edge, header
 * binding, the once-grant race, who may approve.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectNats } from '@portcullis/bus';
import { auditMessageEvents, decodeEvent, EventType, Subjects } from '@portcullis/contracts';
import { eventually } from '../support/eventually.js';
import { runPortcullis } from '../support/portcullis-process.js';
import { approvalIdIn, startCluster, type Cluster } from '../support/cluster.js';

describe('approvals in cluster mode: held, released anywhere, bound to the exact request', { timeout: 300_000 }, () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster({ pendingTtl: '12s' });
  });
  after(async () => {
    await c?.stop();
  });

  test('kubectl delete namespace is held on edge A, a Slack Approve on the OTHER approval process releases it, and it is deleted once', async () => {
    const before = c.deletes('/api/v1/namespaces/staging');
    const postsBefore = c.slack.messages.length;
    const held = c.kube('ci-bot', 0, ['delete', 'namespace', 'staging']);
    const post = await eventually('the Slack message', () => c.slack.messages.slice(postsBefore).find((m) => m.text.includes('namespaces staging')));
    const id = String(post.metadata?.event_payload?.['approval_id']);
    const call = c.slack.calls.find(
      (c) => c.method === 'chat.postMessage' && (c.body['metadata'] as { event_payload?: { approval_id?: string } })?.event_payload?.approval_id === id,
    )!;
    assert.equal(call.body['channel'], '#approvals');
    const text = JSON.stringify(call.body['blocks']);
    for (const want of ['ci-bot', 'delete namespaces staging', 'delete-namespace-needs-sre', 'portcullis_approve', 'portcullis_deny', id, 'expires']) {
      assert.ok(text.includes(want), `the Block Kit message shows ${want}`);
    }
    assert.equal(c.deletes('/api/v1/namespaces/staging'), before, 'nothing reached the upstream while held');

    // No reason: the rule requires one; the clicking user is told, nothing is decided.
    const noReason = await c.click(1, id, 'approve', 'U0ALICE');
    assert.equal(noReason.status, 200);
    await eventually('the ephemeral answer', () => c.slack.responses.find((r) => String(r['text']).includes('requires a reason')));
    const ok = await c.click(1, id, 'approve', 'U0ALICE', 'INC-4711 cleanup');
    assert.equal(ok.status, 200);
    assert.ok(ok.ms < 3000, `answered within 3 s (${Math.round(ok.ms)} ms)`);

    const res = await held;
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /namespace "staging" deleted/);
    assert.equal(c.deletes('/api/v1/namespaces/staging'), before + 1, 'deleted exactly once');
    const forwarded = c.fixture.requests.filter((r) => r.method === 'DELETE' && r.path.startsWith('/api/v1/namespaces/staging')).at(-1)!;
    assert.equal(forwarded.headers['impersonate-user'], 'portcullis:ci-bot');

    // The Slack message is updated: approved by alice with her reason, buttons gone.
    const updated = await eventually('the chat.update', () => {
      const m = c.slack.messagesFor(id)[0];
      return m !== undefined && m.updates > 0 && JSON.stringify(m.blocks).includes('Approved') ? m : undefined;
    });
    assert.ok(JSON.stringify(updated.blocks).includes('INC-4711 cleanup'));
    assert.ok(!JSON.stringify(updated.blocks).includes('portcullis_approve'));
    assert.equal(c.slack.messagesFor(id).length, 1);
  });

  test('timeout, then retries through edge B: forwarded after approval, refused after denial, refused after expiry', async () => {
    for (const name of ['t-approved', 't-denied', 't-expired']) c.putConfigMap('default', name);
    const pending = async (name: string): Promise<string> => {
      const r = await c.kube('ci-bot', 0, ['delete', 'configmap', name, '-n', 'default']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /approval pending/);
      assert.match(r.stderr, /X-Portcullis-Approval: /);
      assert.match(r.stderr, /approvals approve/);
      return approvalIdIn(r.stderr);
    };
    // Opened first: it expires while the other two are decided.
    const e = await pending('t-expired');
    // 1. approved while nobody waits; the same command through edge B goes through.
    const a = await pending('t-approved');
    const again = await c.kube('ci-bot', 1, ['delete', 'configmap', 't-approved', '-n', 'default']);
    assert.notEqual(again.code, 0);
    assert.equal(approvalIdIn(again.stderr), a, 'an identical request finds the same approval through any edge');
    const cli = await runPortcullis(['approvals', 'approve', a, '--as-client', 'sre-alice', '--config', c.configs.get('approval-1')!]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /granted/);
    const through = await c.kube('ci-bot', 1, ['delete', 'configmap', 't-approved', '-n', 'default']);
    assert.equal(through.code, 0, through.stderr);
    assert.equal(c.deletes('/api/v1/namespaces/default/configmaps/t-approved'), 1);

    // 2. denied: the retry gets the approver's reason.
    const d = await pending('t-denied');
    const deny = await runPortcullis([
      'approvals',
      'deny',
      d,
      '--reason',
      'not during the freeze',
      '--as-client',
      'sre-alice',
      '--config',
      c.configs.get('approval-1')!,
    ]);
    assert.equal(deny.code, 0, deny.stderr);
    const refused = await c.kube('ci-bot', 1, ['delete', 'configmap', 't-denied', '-n', 'default']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /denied by alice: not during the freeze/);
    assert.equal(c.deletes('/api/v1/namespaces/default/configmaps/t-denied'), 0);

    // 3. expired: nobody decides within approval.pendingTtl (12 s); the sweep records it.
    await eventually(
      'the approval to expire',
      async () => ((await c.api(0, 'GET', `/approvals/${e}`, 'sre-alice')).body['state'] === 'expired' ? true : undefined),
      45_000,
    );
    const expired = await c.kube('ci-bot', 1, ['delete', 'configmap', 't-expired', '-n', 'default']);
    assert.notEqual(expired.code, 0);
    assert.match(expired.stderr, /expired: nobody decided it in time/);
    assert.equal(approvalIdIn(expired.stderr), e);
    const late = await c.api(0, 'POST', `/approvals/${e}/approve`, 'sre-alice', { reason: 'too late' });
    assert.equal(late.status, 409);
    assert.equal(c.deletes('/api/v1/namespaces/default/configmaps/t-expired'), 0);
  });

  test('X-Portcullis-Approval must match the exact request: an approval for A never admits B', async () => {
    c.putConfigMap('default', 'hdr-a');
    c.putConfigMap('default', 'hdr-b');
    const first = await c.raw('ci-bot', 0, 'DELETE', '/api/v1/namespaces/default/configmaps/hdr-a');
    assert.equal(first.status, 403);
    const id = approvalIdIn(first.body);
    assert.equal((await c.api(0, 'POST', `/approvals/${id}/approve`, 'sre-alice', {})).status, 200);
    const cases: { name: string; client: string; method: string; path: string; header: string; code: number; message: RegExp }[] = [
      {
        name: 'another object',
        client: 'ci-bot',
        method: 'DELETE',
        path: '/api/v1/namespaces/default/configmaps/hdr-b',
        header: id,
        code: 403,
        message: /different request/,
      },
      {
        name: 'another identity',
        client: 'sre-bob',
        method: 'DELETE',
        path: '/api/v1/namespaces/default/configmaps/hdr-a',
        header: id,
        code: 403,
        message: /different request/,
      },
      {
        name: 'another query',
        client: 'ci-bot',
        method: 'DELETE',
        path: '/api/v1/namespaces/default/configmaps/hdr-a?gracePeriodSeconds=0',
        header: id,
        code: 403,
        message: /different request/,
      },
      {
        name: 'unknown id',
        client: 'ci-bot',
        method: 'DELETE',
        path: '/api/v1/namespaces/default/configmaps/hdr-a',
        header: '01900000-0000-7000-8000-000000000000',
        code: 403,
        message: /no approval/,
      },
      {
        name: 'not a uuid',
        client: 'ci-bot',
        method: 'DELETE',
        path: '/api/v1/namespaces/default/configmaps/hdr-a',
        header: 'portcullis.approval.gate',
        code: 400,
        message: /must be an approval id/,
      },
    ];
    for (const row of cases) {
      const res = await c.raw(row.client, 1, row.method, row.path, { 'x-portcullis-approval': row.header });
      assert.equal(res.status, row.code, `${row.name}: ${res.body}`);
      assert.match((JSON.parse(res.body) as { message: string }).message, row.message, row.name);
    }
    assert.equal(c.deletes('/api/v1/namespaces/default/configmaps/hdr-b'), 0);
    const ok = await c.raw('ci-bot', 1, 'DELETE', '/api/v1/namespaces/default/configmaps/hdr-a', { 'x-portcullis-approval': id });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(c.deletes('/api/v1/namespaces/default/configmaps/hdr-a'), 1);
  });

  test('a once-grant admits exactly one of 50 concurrent identical requests', async () => {
    c.fixture.store.put('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'race' } });
    const path = '/api/v1/namespaces/race';
    // Approve only once all 50 are decided (and so held): a request arriving after the grant was
    // used would rightly open a new approval instead.
    const watcher = await connectNats({ servers: [c.nats.url], name: 'race-watcher', ...c.nats.admin });
    let decided = 0;
    // The edges group-commit their events: a request.decided arrives alone or in a batch.
    const sub = watcher.bus.subscribe(Subjects.auditAll(), (m) => {
      for (const data of auditMessageEvents(m.subject, m.data)) {
        const e = decodeEvent(data);
        if (e.connection === 'prod' && e.type === EventType.RequestDecided) decided++;
      }
    });
    await watcher.flush();
    const all = Promise.all(Array.from({ length: 50 }, (_, i) => c.raw('ci-bot', i % 2, 'DELETE', path)));
    await eventually('50 decided requests', () => (decided >= 50 ? true : undefined));
    await sub.unsubscribe();
    await watcher.close();
    const pendingList = await eventually('one approval for the 50 requests', async () => {
      const list = await c.api(0, 'GET', '/approvals', 'sre-alice');
      const mine = (list.body['approvals'] as { id: string; what: string }[]).filter((x) => x.what.includes('namespaces race'));
      return mine.length > 0 ? mine : undefined;
    });
    assert.equal(pendingList.length, 1, 'identical requests share one approval');
    const approve = await c.api(1, 'POST', `/approvals/${pendingList[0]!.id}/approve`, 'sre-alice', { reason: 'race test' });
    assert.equal(approve.status, 200, JSON.stringify(approve.body));
    const results = await all;
    const ok = results.filter((r) => r.status === 200);
    assert.equal(ok.length, 1, `exactly one forwarded: ${results.map((r) => r.status).join(',')}`);
    for (const r of results.filter((x) => x.status !== 200)) {
      assert.equal(r.status, 403);
      assert.match(r.body, /already used it/);
    }
    assert.equal(c.deletes(path), 1);
  });

  test('who may approve: never the requester, only approver groups, a quorum of two distinct approvers (Slack by email too)', async () => {
    const held = c.kube('sre-bob', 0, ['delete', 'secret', 'db-credentials', '-n', 'prod']);
    const id = await eventually('the approval', async () => {
      const list = await c.api(0, 'GET', '/approvals', 'sre-alice');
      return (list.body['approvals'] as { id: string; what: string }[]).find((x) => x.what.includes('secrets db-credentials'))?.id;
    });
    const self = await c.api(0, 'POST', `/approvals/${id}/approve`, 'sre-bob', { reason: 'mine' });
    assert.deepEqual([self.status, self.body['error']], [403, 'self_approval']);
    const outsider = await c.api(1, 'POST', `/approvals/${id}/approve`, 'dev-dave', {});
    assert.deepEqual([outsider.status, outsider.body['error']], [403, 'not_an_approver']);
    const anonymous = await c.api(1, 'POST', `/approvals/${id}/approve`, undefined, {});
    assert.equal(anonymous.status, 401);
    const mallory = await c.click(0, id, 'approve', 'U0MALLORY');
    assert.equal(mallory.status, 200);
    await eventually('mallory told no', () => c.slack.responses.find((r) => String(r['text']).includes('mallory is not in an approver group')));
    const first = await c.api(0, 'POST', `/approvals/${id}/approve`, 'sre-alice', { reason: 'one' });
    assert.equal(first.status, 200);
    assert.equal(first.body['state'], 'pending', 'one of two approvals');
    const twice = await c.api(1, 'POST', `/approvals/${id}/approve`, 'sre-alice', { reason: 'one again' });
    assert.deepEqual([twice.status, twice.body['error']], [409, 'already_approved']);
    // The second approver clicks in Slack; her Slack user is mapped by email (users.info).
    assert.equal((await c.click(1, id, 'approve', 'U0CAROL', 'two')).status, 200);
    const res = await held;
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /secret "db-credentials" deleted/);
    assert.equal(c.deletes('/api/v1/namespaces/prod/secrets/db-credentials'), 1);
    const final = await c.api(0, 'GET', `/approvals/${id}`, 'sre-alice');
    assert.deepEqual(
      (final.body['approvals'] as { subject: string }[]).map((a) => a.subject),
      ['alice', 'carol'],
    );
  });
});
