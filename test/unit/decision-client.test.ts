import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createInProcessBus } from '@portcullis/bus';
import { create, encodePolicyChanged, PolicyChangedSchema, QueueGroups, Subjects } from '@portcullis/contracts';
import { answerDecisionRequest, type CompiledPolicy } from '@portcullis/policy-engine';
import { DecisionCache, DecisionClient, GatewayError } from '@portcullis/gateway';
import { kube, mustParse, who } from './policy-engine.fixtures.js';

const policy = (version: string, effect: string): CompiledPolicy =>
  mustParse(`apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: t, version: "${version}" }
rules:
  - { id: bots, match: { groups: [bots] }, effect: ${effect} }
`);

describe('DecisionClient with a decision cache (in-process bus)', () => {
  const handle = createInProcessBus();
  after(() => handle.close());
  let current = policy('v1', 'allow');
  let serving = true;
  let asked = 0;
  handle.bus.serve(Subjects.policyDecide(), QueueGroups.policy, (msg) => {
    asked++;
    return serving ? answerDecisionRequest(current, msg.data, new Date()) : new Promise<Uint8Array>(() => undefined);
  });
  const cache = new DecisionCache({ ttlMs: 60_000, maxEntries: 100 });
  const client = new DecisionClient(handle.bus, 200, cache);
  const changes = client.followPolicyChanges();
  after(() => changes?.unsubscribe());
  const bot = who({ sub: 'ci-bot', groups: ['bots'] });
  const get = kube('get pods -n default');

  test('a repeated request is answered from the cache, marked cached; a new request still asks', async () => {
    const first = await client.decide('r1', bot, get);
    assert.deepEqual([first.cached, first.decision.ruleId, first.decision.policyVersion], [false, 'bots', 'v1']);
    const second = await client.decide('r2', bot, get);
    assert.deepEqual([second.cached, second.decision.ruleId], [true, 'bots']);
    assert.equal(asked, 1);
    const other = await client.decide('r3', bot, kube('get pods -n staging'));
    assert.equal(other.cached, false);
    assert.equal(asked, 2);
  });

  test('a policy.changed notice empties the cache; the next decision is the new version’s', async () => {
    current = policy('v2', 'deny');
    handle.bus.publish(Subjects.policyChanged(), encodePolicyChanged(create(PolicyChangedSchema, { policyVersion: 'v2' })));
    await new Promise((r) => setImmediate(r));
    const after = await client.decide('r4', bot, get);
    assert.deepEqual([after.cached, after.decision.effect, after.decision.policyVersion], [false, 'deny', 'v2']);
  });

  test('fail closed under the cache: a miss with the policy role silent is decision_unavailable, never a stale allow', async () => {
    serving = false;
    try {
      await assert.rejects(client.decide('r5', bot, kube('delete pods web -n default')), (err: unknown) => {
        assert.ok(err instanceof GatewayError);
        assert.equal(err.code, 'decision_unavailable');
        assert.equal(err.httpStatus, 503);
        return true;
      });
    } finally {
      serving = true;
    }
  });
});
