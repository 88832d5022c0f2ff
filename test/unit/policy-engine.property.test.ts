import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_DENY_RULE_ID, compilePolicy, evaluate, explain, type CompiledPolicy } from '@portcullis/policy-engine';
import { kube, nonResource, who } from './policy-engine.fixtures.js';

const VOCAB = {
  subjects: ['ci-bot', 'agent-1', 'agent-2', 'deploy'],
  groups: ['bots', 'sre', 'ops-eu', 'auditors'],
  connections: ['sandbox', 'prod'],
  verbs: ['get', 'list', 'watch', 'create', 'delete', 'patch'],
  resources: ['pods', 'pods/log', 'pods/exec', 'secrets', 'configmaps', 'namespaces', 'deployments'],
  namespaces: ['default', 'staging', 'prod', 'kube-system', ''],
  names: ['web', 'api', 'db'],
  nonResourcePaths: ['/api', '/apis', '/version', '/healthz'],
} as const;
type Field = keyof typeof VOCAB;
const FIELDS = Object.keys(VOCAB) as Field[];

/** An entry of a field: a literal, a prefix glob, or (when allowed) "*". */
const entry = (field: Field, allowStar: boolean) => {
  const values = VOCAB[field] as readonly string[];
  const options = [fc.constantFrom(...values), fc.constantFrom(...values.filter((v) => v.length > 1)).map((v) => `${v.slice(0, 2)}*`)];
  if (allowStar) options.push(fc.constant('*'));
  return fc.oneof(...options);
};

const rule = (allowStar: boolean) =>
  fc
    .tuple(
      fc.subarray(
        FIELDS.filter((f) => f !== 'nonResourcePaths'),
        { minLength: 1, maxLength: 4 },
      ),
      fc.boolean(),
      fc.constantFrom('allow', 'deny', 'require_approval', 'mask'),
      fc.option(fc.constantFrom('secrets', 'tokens'), { nil: undefined }),
    )
    .chain(([fields, nonResource, effect, mask]) => {
      // nonResourcePaths cannot be combined with resource fields; swap them in half the time.
      const chosen: Field[] = nonResource ? [...fields.filter((f) => !['resources', 'namespaces', 'names'].includes(f)), 'nonResourcePaths'] : fields;
      const match = Object.fromEntries(chosen.map((f) => [f, fc.array(entry(f, allowStar), { minLength: 1, maxLength: 3 })]));
      return fc.record(match).map((m) => ({
        effect,
        match: m,
        ...(effect === 'deny' ? {} : effect === 'mask' ? { mask: mask ?? 'secrets' } : mask ? { mask } : {}),
        ...(effect === 'require_approval' ? { approval: { approverGroups: ['sre'] } } : {}),
      }));
    });

const policy = (allowStar: boolean) =>
  fc.array(rule(allowStar), { minLength: 0, maxLength: 40 }).map((rules): CompiledPolicy => {
    const result = compilePolicy({
      apiVersion: 'portcullis.dev/v1',
      kind: 'Policy',
      metadata: { name: 'generated', version: 'g1' },
      rules: rules.map((r, i) => ({ id: `r${i}`, ...r })),
    });
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    return result.policy;
  });

const pick = <F extends Field>(f: F) => fc.constantFrom(...(VOCAB[f] as readonly string[]), `zz-${f}`);

const request = fc.oneof(
  fc
    .record({
      verb: pick('verbs'),
      resource: pick('resources'),
      ns: pick('namespaces'),
      name: fc.oneof(pick('names'), fc.constant('')),
      conn: pick('connections'),
    })
    .map((r) => kube(`${r.verb} ${r.resource} ${r.name} ${r.ns === '' ? '' : `-n ${r.ns}`} --on ${r.conn}`)),
  fc.record({ verb: pick('verbs'), path: pick('nonResourcePaths'), conn: pick('connections') }).map((r) => nonResource(r.verb, r.path, r.conn)),
);
const identity = fc.record({ sub: pick('subjects'), groups: fc.subarray([...VOCAB.groups, 'zz-group']) }).map((i) => who(i));
const NOW = new Date('2026-11-26T10:00:00Z');

describe('policy engine properties', () => {
  test('a request no rule matches is always denied by default-deny', () => {
    // Rules without "*" built from the vocabulary; the request uses only values outside it.
    const outsider = who({ sub: 'zz-sub', groups: ['zz-group'] });
    const requests = [kube('zz-verb zz-res zz-name -n zz-ns --on zz-conn'), nonResource('zz-verb', '/zz-path', 'zz-conn')];
    fc.assert(
      fc.property(policy(false), fc.constantFrom(...requests), (p, req) => {
        const d = evaluate(p, outsider, req, NOW);
        assert.equal(d.effect, 'deny');
        assert.equal(d.ruleId, DEFAULT_DENY_RULE_ID);
        assert.equal(d.maskProfile, '');
        assert.ok(explain(p, outsider, req, NOW).trace.every((t) => !t.matched));
      }),
      { numRuns: 300 },
    );
  });

  test('when no allow or require_approval rule matches, the decision is deny', () => {
    fc.assert(
      fc.property(policy(true), identity, request, (p, id, req) => {
        const { decision, trace } = explain(p, id, req, NOW);
        const matched = trace.filter((t) => t.matched);
        if (!matched.some((t) => t.effect === 'allow' || t.effect === 'require_approval')) {
          assert.equal(decision.effect, 'deny');
          const firstDeny = matched.find((t) => t.effect === 'deny');
          assert.equal(decision.ruleId, firstDeny?.ruleId ?? DEFAULT_DENY_RULE_ID);
        }
      }),
      { numRuns: 500 },
    );
  });

  test('precedence: deny > require_approval > allow; first of the winning effect; first let-through mask', () => {
    fc.assert(
      fc.property(policy(true), identity, request, (p, id, req) => {
        const { decision, trace } = explain(p, id, req, NOW);
        const matched = trace.filter((t) => t.matched);
        const first = (effect: string) => matched.find((t) => t.effect === effect)?.ruleId;
        const expected = first('deny')
          ? { effect: 'deny', ruleId: first('deny') }
          : first('require_approval')
            ? { effect: 'require_approval', ruleId: first('require_approval') }
            : first('allow')
              ? { effect: 'allow', ruleId: first('allow') }
              : { effect: 'deny', ruleId: DEFAULT_DENY_RULE_ID };
        assert.deepEqual({ effect: decision.effect, ruleId: decision.ruleId }, expected);
        const maskRule = matched.find((t) => t.effect !== 'deny' && p.rules.find((r) => r.id === t.ruleId)?.mask);
        const expectedMask = decision.effect === 'deny' ? '' : (p.rules.find((r) => r.id === maskRule?.ruleId)?.mask ?? '');
        assert.equal(decision.maskProfile, expectedMask);
      }),
      { numRuns: 500 },
    );
  });

  test('the indexed evaluate agrees with the exhaustive explain', () => {
    const seen = new Map<string, number>();
    fc.assert(
      fc.property(policy(true), identity, request, (p, id, req) => {
        const fast = evaluate(p, id, req, NOW);
        const kind = fast.ruleId === DEFAULT_DENY_RULE_ID ? 'default-deny' : `${fast.effect}${fast.maskProfile ? '+mask' : ''}`;
        seen.set(kind, (seen.get(kind) ?? 0) + 1);
        const slow = explain(p, id, req, NOW).decision;
        assert.deepEqual([fast.effect, fast.ruleId, fast.maskProfile, fast.message], [slow.effect, slow.ruleId, slow.maskProfile, slow.message]);
      }),
      { numRuns: 1000 },
    );
    // Guard against a vacuous property: the generators must exercise every outcome.
    for (const kind of ['default-deny', 'deny', 'allow', 'allow+mask', 'require_approval']) {
      assert.ok((seen.get(kind) ?? 0) >= 3, `${kind} seen ${seen.get(kind) ?? 0} times: ${JSON.stringify([...seen])}`);
    }
  });
});
