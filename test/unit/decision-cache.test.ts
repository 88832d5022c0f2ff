import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  DecisionSchema,
  HttpAttributesSchema,
  clone,
  create,
  IdentitySchema,
  RequestAttributesSchema,
  type Decision,
  type Identity,
  type RequestAttributes,
} from '@portcullis/contracts';
import { DecisionCache, decisionCacheKey } from '@portcullis/gateway';
import { decisionStableForMs, evaluate, MAX_CACHE_AGE_MS } from '@portcullis/policy-engine';
import { kube, mustParse, nonResource, who } from './policy-engine.fixtures.js';

const decision = (ruleId: string, version = 'v1', effect = 'allow'): Decision => create(DecisionSchema, { effect, ruleId, policyVersion: version });

/** A clock the test moves by hand. */
function manualClock(start = 1_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('DecisionCache', () => {
  test('a stored decision is reused until the ttl, counted from when it was asked', () => {
    const clock = manualClock();
    const cache = new DecisionCache({ ttlMs: 5_000, maxEntries: 10, now: clock.now });
    const askedAt = cache.clock();
    clock.advance(300); // the round trip
    cache.store('k', decision('r1'), MAX_CACHE_AGE_MS, cache.generation, askedAt);
    assert.equal(cache.lookup('k')?.ruleId, 'r1');
    clock.advance(4_699);
    assert.equal(cache.lookup('k')?.ruleId, 'r1');
    clock.advance(1);
    assert.equal(cache.lookup('k'), undefined, 'expired 5 s after it was asked, not after the reply came');
    assert.equal(cache.size, 0);
  });

  test('the policy role’s max age caps the ttl; 0 (an older policy role, or "do not reuse") stores nothing', () => {
    const clock = manualClock();
    const cache = new DecisionCache({ ttlMs: 5_000, maxEntries: 10, now: clock.now });
    cache.store('short', decision('r1'), 1_200, cache.generation, cache.clock());
    cache.store('never', decision('r2'), 0, cache.generation, cache.clock());
    assert.equal(cache.lookup('never'), undefined);
    clock.advance(1_199);
    assert.equal(cache.lookup('short')?.ruleId, 'r1');
    clock.advance(1);
    assert.equal(cache.lookup('short'), undefined);
  });

  test('bounded: the least recently used entry goes first', () => {
    const cache = new DecisionCache({ ttlMs: 60_000, maxEntries: 3, now: manualClock().now });
    for (const k of ['a', 'b', 'c']) cache.store(k, decision(k), MAX_CACHE_AGE_MS, cache.generation, cache.clock());
    assert.ok(cache.lookup('a')); // a is now the most recently used
    cache.store('d', decision('d'), MAX_CACHE_AGE_MS, cache.generation, cache.clock());
    assert.equal(cache.size, 3);
    assert.equal(cache.lookup('b'), undefined, 'b was the least recently used');
    assert.deepEqual(
      ['a', 'c', 'd'].map((k) => cache.lookup(k)?.ruleId),
      ['a', 'c', 'd'],
    );
    // Re-storing an existing key never evicts another.
    cache.store('a', decision('a2'), MAX_CACHE_AGE_MS, cache.generation, cache.clock());
    assert.equal(cache.size, 3);
    assert.equal(cache.lookup('a')?.ruleId, 'a2');
  });

  test('a reply of another policy version empties the cache: entries are always of the version in force', () => {
    const cache = new DecisionCache({ ttlMs: 60_000, maxEntries: 10, now: manualClock().now });
    cache.store('a', decision('r1', 'v1'), MAX_CACHE_AGE_MS, cache.generation, cache.clock());
    cache.store('b', decision('r1', 'v1'), MAX_CACHE_AGE_MS, cache.generation, cache.clock());
    assert.equal(cache.version, 'v1');
    cache.store('c', decision('r9', 'v2', 'deny'), MAX_CACHE_AGE_MS, cache.generation, cache.clock());
    assert.equal(cache.version, 'v2');
    assert.equal(cache.lookup('a'), undefined);
    assert.equal(cache.lookup('b'), undefined);
    assert.equal(cache.lookup('c')?.ruleId, 'r9');
  });

  test('a change notice during a round trip: the answer is used but not cached (it may be of the old version)', () => {
    const cache = new DecisionCache({ ttlMs: 60_000, maxEntries: 10, now: manualClock().now });
    const generation = cache.generation;
    const askedAt = cache.clock();
    cache.invalidate(); // policy.changed arrives while the request is in flight
    cache.store('k', decision('old-rule', 'v1'), MAX_CACHE_AGE_MS, generation, askedAt);
    assert.equal(cache.lookup('k'), undefined);
    cache.store('k', decision('new-rule', 'v1'), MAX_CACHE_AGE_MS, cache.generation, cache.clock());
    assert.equal(cache.lookup('k')?.ruleId, 'new-rule');
  });
});

const EVERY_FIELD_POLICY = mustParse(`apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: every-field, version: "k1" }
rules:
  - { id: by-client, match: { clientIds: [agent-*] }, effect: allow }
  - { id: by-issuer, match: { issuers: ["https://other.example.com"] }, effect: deny }
  - { id: by-scope, match: { scopes: [write] }, effect: require_approval, approval: { approverGroups: [sre] } }
  - { id: by-audience, match: { audiences: [ops] }, effect: allow, mask: secrets }
  - { id: by-group, match: { groups: [sre], verbs: [delete] }, effect: allow }
  - { id: by-name, match: { names: [web-*], namespaces: [prod], resources: [pods/exec] }, effect: deny }
  - { id: by-cluster-scope, match: { namespaces: ["-"], resources: [namespaces], verbs: [get] }, effect: allow }
  - { id: by-api-group, match: { apiGroups: [apps], verbs: [patch] }, effect: allow }
  - { id: by-path, match: { nonResourcePaths: ["/version"] }, effect: allow }
  - { id: by-http, match: { http: { methods: [POST], paths: ["/v1/charges/*"] } }, effect: require_approval, approval: { approverGroups: [finance] } }
  - { id: by-connection, match: { connections: [prod], subjects: [ci-bot] }, effect: allow }
`);

const identityArb = fc
  .record({
    sub: fc.constantFrom('ci-bot', 'agent-1', 'deploy'),
    groups: fc.subarray(['bots', 'sre', 'ops']),
    clientId: fc.constantFrom('', 'agent-7', 'ci'),
    issuer: fc.constantFrom('https://idp.example.com', 'https://other.example.com'),
    scopes: fc.subarray(['read', 'write']),
    audiences: fc.subarray(['portcullis', 'ops']),
  })
  .map((s) => who(s));

const requestArb = fc.oneof(
  fc
    .record({
      verb: fc.constantFrom('get', 'list', 'delete', 'patch', 'create'),
      what: fc.constantFrom('pods', 'pods/exec', 'namespaces', 'deployments.apps', 'secrets'),
      name: fc.constantFrom('', 'web-1', 'db'),
      ns: fc.constantFrom('', 'prod', 'default'),
      conn: fc.constantFrom('prod', 'sandbox'),
    })
    .map((r) => kube(`${r.verb} ${r.what} ${r.name} ${r.ns === '' ? '' : `-n ${r.ns}`} --on ${r.conn}`)),
  fc
    .record({ path: fc.constantFrom('/version', '/api', '/apis/apps/v1'), conn: fc.constantFrom('prod', 'sandbox') })
    .map((r) => nonResource('get', r.path, r.conn)),
  fc.record({ method: fc.constantFrom('GET', 'POST'), path: fc.constantFrom('/v1/charges/1', '/v1/refunds') }).map((r) =>
    create(RequestAttributesSchema, {
      connection: 'billing',
      connectionType: 'http',
      method: r.method,
      http: create(HttpAttributesSchema, { method: r.method, path: r.path }),
    }),
  ),
);

/** The same request with every field a policy cannot match changed. */
function perturbUnmatchable(identity: Identity, attributes: RequestAttributes, salt: string): [Identity, RequestAttributes] {
  const i = clone(IdentitySchema, identity);
  i.tokenId = `jti-${salt}`;
  i.tokenLifetimeSeconds = 17;
  const a = clone(RequestAttributesSchema, attributes);
  a.sourceIp = `10.0.0.${salt.length}`;
  a.userAgent = `kubectl/${salt}`;
  a.bodyBytes = salt.length * 100;
  if (a.kube !== undefined) {
    a.kube.labelSelector = `app=${salt}`;
    a.kube.fieldSelector = `metadata.name=${salt}`;
    a.kube.apiVersion = 'v9';
  }
  if (a.http !== undefined) a.http.query = `q=${salt}`;
  return [i, a];
}

describe('decisionCacheKey', () => {
  const NOW = new Date('2026-11-26T10:00:00Z');

  test('property: fields a policy cannot match never split the key, and never change the decision', () => {
    fc.assert(
      fc.property(identityArb, requestArb, fc.string({ minLength: 1, maxLength: 8 }), (id, req, salt) => {
        const [id2, req2] = perturbUnmatchable(id, req, salt);
        assert.equal(decisionCacheKey(id2, req2), decisionCacheKey(id, req));
        assert.deepEqual(evaluate(EVERY_FIELD_POLICY, id2, req2, NOW), evaluate(EVERY_FIELD_POLICY, id, req, NOW));
      }),
      { numRuns: 400 },
    );
  });

  test('every matchable field is part of the key', () => {
    const id = who({ sub: 'ci-bot', groups: ['bots'], clientId: 'c', scopes: ['read'], audiences: ['portcullis'] });
    const req = kube('get pods web -n default --on prod');
    const base = decisionCacheKey(id, req);
    const identityChanges: ((i: Identity) => void)[] = [
      (i) => (i.subject = 'other'),
      (i) => i.groups.push('sre'),
      (i) => (i.clientId = 'd'),
      (i) => (i.issuer = 'https://x.example.com'),
      (i) => i.scopes.push('write'),
      (i) => i.audiences.push('ops'),
    ];
    for (const change of identityChanges) {
      const i = clone(IdentitySchema, id);
      change(i);
      assert.notEqual(decisionCacheKey(i, req), base, change.toString());
    }
    const attributeChanges: ((a: RequestAttributes) => void)[] = [
      (a) => (a.connection = 'sandbox'),
      (a) => (a.connectionType = 'http'),
      (a) => (a.method = 'DELETE'),
      (a) => (a.kube!.verb = 'list'),
      (a) => (a.kube!.isResourceRequest = false),
      (a) => (a.kube!.apiGroup = 'apps'),
      (a) => (a.kube!.namespace = 'prod'),
      (a) => (a.kube!.resource = 'secrets'),
      (a) => (a.kube!.subresource = 'exec'),
      (a) => (a.kube!.name = 'db'),
      (a) => (a.kube!.path = '/version'),
      (a) => (a.http = create(HttpAttributesSchema, { method: 'GET', path: '/x' })),
    ];
    for (const change of attributeChanges) {
      const a = clone(RequestAttributesSchema, req);
      change(a);
      assert.notEqual(decisionCacheKey(id, a), base, change.toString());
    }
    // Values with separators in them cannot collide.
    const tricky1 = who({ sub: 'a","b', groups: [] });
    const tricky2 = who({ sub: 'a', groups: ['b'] });
    assert.notEqual(decisionCacheKey(tricky1, req), decisionCacheKey(tricky2, req));
  });
});

describe('time windows and cached decisions', () => {
  const timed = mustParse(`apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: hours, version: "h1" }
rules:
  - id: exec-in-working-hours
    match:
      verbs: [create]
      resources: [pods/exec]
      namespaces: [prod]
      time: { days: [mon-fri], hours: "09:00-18:00", timezone: Europe/Paris }
    effect: require_approval
    approval: { approverGroups: [sre] }
  - id: bots-read
    match: { groups: [bots], verbs: [get, list] }
    effect: allow
`);
  const bot = who({ sub: 'ci-bot', groups: ['bots'] });
  const exec = kube('create pods/exec web -n prod --on prod');
  const read = kube('get pods -n prod --on prod');

  test('a decision a time window takes part in holds only until the next minute boundary', () => {
    // 17:59:30 in Paris (UTC+1 in November): inside the window, 30 s before it closes.
    const now = new Date('2026-11-26T16:59:30Z');
    assert.equal(evaluate(timed, bot, exec, now).ruleId, 'exec-in-working-hours');
    assert.equal(decisionStableForMs(timed, bot, exec, now), 30_000);
    assert.equal(decisionStableForMs(timed, bot, exec, new Date('2026-11-26T16:59:59.250Z')), 750);
    // A request the timed rule cannot match on its other fields is not time-bound.
    assert.equal(decisionStableForMs(timed, bot, read, now), Number.POSITIVE_INFINITY);
  });

  test('an edge never serves a cached decision past the window boundary', () => {
    // The edge's monotonic clock and the wall clock advance together here.
    let wall = new Date('2026-11-26T16:59:30Z').getTime();
    const clock = manualClock(0);
    const cache = new DecisionCache({ ttlMs: 300_000, maxEntries: 10, now: clock.now });
    const key = decisionCacheKey(bot, exec);
    const ask = (): Decision => {
      const hit = cache.lookup(key);
      if (hit !== undefined) return hit;
      const now = new Date(wall);
      const d = evaluate(timed, bot, exec, now);
      cache.store(key, d, Math.min(decisionStableForMs(timed, bot, exec, now), MAX_CACHE_AGE_MS), cache.generation, cache.clock());
      return d;
    };
    assert.equal(ask().ruleId, 'exec-in-working-hours');
    const tick = (ms: number): void => {
      wall += ms;
      clock.advance(ms);
    };
    tick(29_999);
    assert.equal(ask().ruleId, 'exec-in-working-hours', 'still 17:59:59.999 in Paris: the cached decision holds');
    assert.equal(cache.stats.hits, 1);
    tick(1);
    const after = ask();
    assert.equal(after.effect, 'deny', '18:00 in Paris: the window closed, the decision is made afresh');
    assert.equal(after.ruleId, 'default-deny');
  });
});
