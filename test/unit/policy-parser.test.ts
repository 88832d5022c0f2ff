import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  compileGlob,
  compilePolicy,
  formatPolicyError,
  formatPolicyWarning,
  globError,
  parseDurationSeconds,
  parsePolicy,
  policyJsonSchemaText,
  PolicyStore,
  type PolicyError,
} from '@portcullis/policy-engine';
import type { Logger } from '@portcullis/common';
import { repoRoot } from './policy-engine.fixtures.js';

const HEADER = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: t, version: "1" }
`;

function errorsOf(text: string): readonly PolicyError[] {
  const r = parsePolicy(text, { source: 't.yaml' });
  assert.equal(r.ok, false, 'expected the policy to be rejected');
  return r.ok ? [] : r.errors;
}

function only(text: string): PolicyError {
  const errors = errorsOf(text);
  assert.equal(errors.length, 1, JSON.stringify(errors, null, 2));
  return errors[0]!;
}

describe('parsePolicy errors carry path, line and column', () => {
  test('unknown key: names the key, the allowed keys and a suggestion', () => {
    const e = only(`${HEADER}rules:
  - id: a
    effect: allow
    match:
      verb: [get]
`);
    assert.equal(e.path, 'rules[0].match.verb');
    assert.equal(e.line, 8);
    assert.equal(e.column, 7);
    assert.match(e.message, /unknown key "verb" in match; allowed keys: subjects, groups, .*verbs/);
    assert.match(e.message, /did you mean "verbs"\?/);
    assert.ok(formatPolicyError(e, 't.yaml').startsWith('t.yaml:8:7: rules[0].match.verb: unknown key "verb"'));
  });

  test('unknown top-level key', () => {
    const e = only(`${HEADER}rules: []\nrulez: []\n`);
    assert.equal(e.path, 'rulez');
    assert.deepEqual([e.line, e.column], [5, 1]);
    assert.match(e.message, /did you mean "rules"/);
  });

  test('YAML syntax errors are reported with their position', () => {
    const errors = errorsOf(`${HEADER}rules:\n  - id: a\n    effect: [allow\n`);
    assert.ok(errors.length >= 1);
    assert.ok(errors[0]!.line >= 6, JSON.stringify(errors));
  });

  test('duplicate YAML keys are errors', () => {
    const errors = errorsOf(`${HEADER}rules:\n  - id: a\n    id: b\n    effect: allow\n`);
    assert.match(errors[0]!.message, /unique/i);
    assert.equal(errors[0]!.line, 6);
  });

  test('unknown effect', () => {
    const e = only(`${HEADER}rules:\n  - id: a\n    effect: permit\n`);
    assert.equal(e.path, 'rules[0].effect');
    assert.deepEqual([e.line, e.column], [6, 13]);
    assert.equal(e.message, 'must be one of "allow", "deny", "require_approval", "mask"; got string "permit"');
  });

  test('missing required key points at its mapping', () => {
    const e = only(`${HEADER}rules:\n  - id: a\n    match: { verbs: [get] }\n`);
    assert.equal(e.path, 'rules[0].effect');
    assert.equal(e.message, 'is required');
    assert.deepEqual([e.line, e.column], [5, 5]);
  });

  test('wrong apiVersion and kind', () => {
    const errors = errorsOf(`apiVersion: portcullis.dev/v2\nkind: Polcy\nmetadata: { name: t, version: "1" }\nrules: []\n`);
    assert.deepEqual(
      errors.map((e) => [e.path, e.line, e.column, e.message]),
      [
        ['apiVersion', 1, 13, 'must be "portcullis.dev/v1", got string "portcullis.dev/v2"'],
        ['kind', 2, 7, 'must be "Policy", got string "Polcy"'],
      ],
    );
  });

  test('an unquoted numeric version says what was expected', () => {
    const e = only(`apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: t, version: 3 }\nrules: []\n`);
    assert.equal(e.path, 'metadata.version');
    assert.equal(e.message, 'expected a string, got number 3');
  });

  test('duplicate rule ids are reported together with other errors', () => {
    const errors = errorsOf(`${HEADER}rules:
  - id: same
    effect: allow
  - id: same
    effect: nope
`);
    assert.deepEqual(
      errors.map((e) => [e.path, e.line]),
      [
        ['rules[1].id', 7],
        ['rules[1].effect', 8],
      ],
    );
    assert.equal(errors[0]!.message, 'duplicate rule id "same" (first used by rules[0])');
  });

  test('invalid globs name the pattern and the problem', () => {
    const errors = errorsOf(`${HEADER}rules:
  - id: a
    effect: allow
    match:
      subjects: ["ci-[0-9]"]
      names: ["web-\\\\"]
      http: { paths: ["/v1/**"] }
`);
    assert.deepEqual(
      errors.map((e) => [e.path, e.line, e.column]),
      [
        ['rules[0].match.subjects[0]', 8, 18],
        ['rules[0].match.names[0]', 9, 15],
        ['rules[0].match.http.paths[0]', 10, 23],
      ],
    );
    assert.match(errors[0]!.message, /reserved character "\["/);
    assert.match(errors[1]!.message, /unfinished escape/);
    assert.match(errors[2]!.message, /"\*\*"/);
  });

  test('require_approval without approver groups (and no defaults)', () => {
    const e = only(`${HEADER}rules:\n  - id: a\n    effect: require_approval\n`);
    assert.equal(e.path, 'rules[0].effect');
    assert.match(e.message, /needs approval\.approverGroups \(or defaults\.approval\.approverGroups\)/);
  });

  test('require_approval takes approver groups from defaults', () => {
    const r = parsePolicy(`${HEADER}defaults: { approval: { approverGroups: [sre] } }\nrules:\n  - id: a\n    effect: require_approval\n`);
    assert.ok(r.ok);
    assert.deepEqual(r.policy.rules[0]?.approval?.approverGroups, ['sre']);
  });

  test('bad durations', () => {
    const errors = errorsOf(`${HEADER}rules:
  - id: a
    effect: require_approval
    approval: { approverGroups: [sre], scope: window, ttl: 15x, wait: 0s }
  - id: b
    effect: require_approval
    approval: { approverGroups: [sre], scope: window, ttl: 1m1h, wait: 1500ms }
`);
    assert.deepEqual(
      errors.map((e) => [e.path, e.message]),
      [
        ['rules[0].approval.ttl', 'expected a duration such as 30s, 15m, 1h or 1h30m (whole numbers with units d, h, m, s or ms, largest first), got "15x"'],
        ['rules[0].approval.wait', 'expected a duration of at least 1s, got "0s"'],
        ['rules[1].approval.ttl', 'expected a duration such as 30s, 15m, 1h or 1h30m (whole numbers with units d, h, m, s or ms, largest first), got "1m1h"'],
        ['rules[1].approval.wait', 'expected a whole number of seconds (no ms part), got "1500ms"'],
      ],
    );
    assert.equal(errors[0]!.line, 7);
  });

  test('scope window needs a ttl; ttl needs scope window', () => {
    const errors = errorsOf(`${HEADER}rules:
  - id: a
    effect: require_approval
    approval: { approverGroups: [sre], scope: window }
  - id: b
    effect: require_approval
    approval: { approverGroups: [sre], ttl: 1h }
`);
    assert.deepEqual(
      errors.map((e) => [e.path, e.message]),
      [
        ['rules[0].approval', 'scope: window needs a ttl, e.g. ttl: 15m'],
        ['rules[1].approval.ttl', 'ttl applies only to scope: window'],
      ],
    );
  });

  test('quorum must be a positive integer; scope must be once or window', () => {
    const errors = errorsOf(`${HEADER}rules:
  - id: a
    effect: require_approval
    approval: { approverGroups: [sre], quorum: 0, scope: forever }
`);
    assert.deepEqual(
      errors.map((e) => e.path),
      ['rules[0].approval.quorum', 'rules[0].approval.scope'],
    );
  });

  test('mask on deny, unknown profile, mask effect without profile', () => {
    const errors = errorsOf(`${HEADER}maskingProfiles: [secrets]
rules:
  - id: a
    effect: deny
    mask: secrets
  - id: b
    effect: allow
    mask: tokens
  - id: c
    effect: mask
`);
    assert.deepEqual(
      errors.map((e) => [e.path, e.line]),
      [
        ['rules[0].mask', 8],
        ['rules[1].mask', 11],
        ['rules[2].effect', 13],
      ],
    );
    assert.match(errors[1]!.message, /unknown masking profile "tokens"; maskingProfiles declares: secrets/);
  });

  test('approval on a non-approval rule', () => {
    const e = only(`${HEADER}rules:\n  - id: a\n    effect: allow\n    approval: { approverGroups: [sre] }\n`);
    assert.equal(e.path, 'rules[0].approval');
    assert.equal(e.line, 7);
  });

  test('rules that could never match are rejected', () => {
    const errors = errorsOf(`${HEADER}rules:
  - id: a
    effect: allow
    match: { nonResourcePaths: [/api], resources: [pods] }
  - id: b
    effect: allow
    match: { verbs: [get], http: { methods: [GET] } }
`);
    assert.deepEqual(
      errors.map((e) => e.path),
      ['rules[0].match.nonResourcePaths', 'rules[1].match.http'],
    );
    assert.match(errors[0]!.message, /split the rule in two/);
  });

  test('time windows: bad hours, same start and end, unknown zone, bad day, empty', () => {
    const errors = errorsOf(`${HEADER}rules:
  - id: a
    effect: allow
    match: { time: { hours: "9-18" } }
  - id: b
    effect: allow
    match: { time: { hours: "09:00-09:00", timezone: Mars/Olympus } }
  - id: c
    effect: allow
    match: { time: { days: [monday] } }
  - id: d
    effect: allow
    match: { time: {} }
`);
    assert.deepEqual(
      errors.map((e) => e.path),
      ['rules[0].match.time.hours', 'rules[1].match.time.hours', 'rules[1].match.time.timezone', 'rules[2].match.time.days[0]', 'rules[3].match.time'],
    );
    assert.match(errors[2]!.message, /unknown time zone "Mars\/Olympus"/);
  });

  test('empty lists and empty documents', () => {
    assert.equal(only(`${HEADER}rules:\n  - id: a\n    effect: allow\n    match: { verbs: [] }\n`).message, 'must list at least 1 entry');
    assert.equal(only('').message, 'the policy document is empty');
  });

  test('claims values must be globs', () => {
    const e = only(`${HEADER}rules:\n  - id: a\n    effect: allow\n    match: { claims: { env: 3 } }\n`);
    assert.equal(e.path, 'rules[0].match.claims.env');
    assert.equal(e.message, 'must be a glob or a list of globs');
  });

  test('bad rule ids', () => {
    const e = only(`${HEADER}rules:\n  - id: "has space"\n    effect: allow\n`);
    assert.equal(e.path, 'rules[0].id');
  });
});

describe('a policy says what it means: verbs are checked, unknown built-in resources warned about', () => {
  const rule = (match: string): string => `${HEADER}rules:\n  - id: x\n    effect: allow\n    match: ${match}\n`;
  const warningsOf = (text: string): readonly PolicyError[] => {
    const r = parsePolicy(text, { source: 't.yaml' });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    return r.warnings;
  };

  test('an unknown verb is an error that names the rule and the closest verb', () => {
    const e = only(rule('{ verbs: [get, delet] }'));
    assert.equal(e.path, 'rules[0].match.verbs[1]');
    assert.deepEqual([e.line, e.column], [7, 27]);
    assert.match(e.message, /^unknown verb "delet" in rule "x" \(did you mean "delete"\?\); verbs: get, list, watch, /);
    assert.equal(only(rule('{ verbs: [GET] }')).message.split(';')[0], 'unknown verb "GET" in rule "x" (did you mean "get"?)');
    assert.equal(only(rule('{ verbs: [frobnicate] }')).message.split(';')[0], 'unknown verb "frobnicate" in rule "x"');
  });

  test('RBAC-only verbs and patterns that match no verb are errors; every request verb and matching patterns are not', () => {
    assert.match(only(rule('{ verbs: [impersonate] }')).message, /"impersonate" in rule "x" is one Kubernetes RBAC checks inside the API server/);
    assert.match(only(rule('{ verbs: ["dlete*"] }')).message, /verb pattern "dlete\*" in rule "x" matches no verb/);
    const all = '{ verbs: [get, list, watch, create, update, patch, delete, deletecollection, proxy, head, post, put, options, "*", "delete*", "?et"] }';
    assert.deepEqual(warningsOf(rule(all)), []);
  });

  test('compilePolicy checks verbs too (a bundle built in code)', () => {
    const r = compilePolicy({
      apiVersion: 'portcullis.dev/v1',
      kind: 'Policy',
      metadata: { name: 'j', version: '1' },
      rules: [{ id: 'a', effect: 'deny', match: { verbs: ['delet'] } }],
    });
    assert.ok(!r.ok);
    assert.match(r.errors[0]!.message, /did you mean "delete"/);
  });

  test('an unknown resource of a built-in API group is a warning, not an error', () => {
    const [w, ...rest] = warningsOf(rule('{ apiGroups: [apps], resources: [deploymnets, statefulsets/scale, "*"] }'));
    assert.deepEqual(rest, []);
    assert.equal(w!.path, 'rules[0].match.resources[0]');
    assert.equal(w!.line, 7);
    assert.match(w!.message, /^unknown resource "deploymnets" in rule "x" for API group "apps" \(did you mean "deployments"\?\)/);
    assert.ok(formatPolicyWarning(w!, 't.yaml').startsWith('t.yaml:7:'), formatPolicyWarning(w!, 't.yaml'));
    assert.match(formatPolicyWarning(w!, 't.yaml'), /: warning: rules\[0\]\.match\.resources\[0\]: unknown resource/);
    assert.match(warningsOf(rule('{ apiGroups: [""], resources: [deployments] }'))[0]!.message, /for API group the core group \(""\)/);
  });

  test('without apiGroups only a near-miss of a built-in resource is warned about (custom resources are fine)', () => {
    assert.match(warningsOf(rule('{ resources: [pdos] }'))[0]!.message, /"pdos" in rule "x" is not a built-in resource \(did you mean "pods"\?\)/);
    assert.deepEqual(warningsOf(rule('{ resources: [widgets, pods/exec] }')), []);
    assert.deepEqual(warningsOf(rule('{ apiGroups: [example.com], resources: [widgetz] }')), [], 'a custom group has no list to check against');
  });

  test('a non-standard HTTP method is a warning', () => {
    const [w] = warningsOf(rule('{ http: { methods: [get, DELET] } }'));
    assert.match(w!.message, /"DELET" in rule "x" is not a standard HTTP method \(did you mean "DELETE"\?\)/);
  });

  test('on load: an unknown verb keeps the last good version; a warning is logged and the policy loads', () => {
    const lines: { level: string; msg: string; fields: Record<string, unknown> | undefined }[] = [];
    const log = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
    const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), child: () => logger };
    const store = new PolicyStore(logger);
    const good = `${HEADER}rules:\n  - id: x\n    effect: allow\n    match: { verbs: [get], resources: [pdos] }\n`;
    assert.deepEqual(store.load(good, 'kv'), []);
    assert.equal(store.policy?.version, '1');
    const warned = lines.find((l) => l.level === 'warn');
    assert.match(JSON.stringify(warned?.fields?.['warnings']), /kv:7:\d+: warning: rules\[0\]\.match\.resources\[0\]: resource \\"pdos\\"/);
    const problems = store.load(good.replace('version: "1"', 'version: "2"').replace('[get]', '[delet]'), 'kv');
    assert.match(problems.join('\n'), /unknown verb "delet" in rule "x" \(did you mean "delete"\?\)/);
    assert.equal(store.policy?.version, '1', 'the last good version stays in force');
  });

  test('warnings come with errors too, and the shipped policies have none', () => {
    const r = parsePolicy(`${HEADER}rules:\n  - id: x\n    effect: maybe\n  - id: y\n    effect: allow\n    match: { resources: [pdos] }\n`);
    assert.ok(!r.ok);
    assert.equal(r.warnings.length, 1);
    for (const file of ['examples/policy.yaml', 'deploy/k8s/base/config/policy.yaml']) {
      const parsed = parsePolicy(readFileSync(`${repoRoot}${file}`, 'utf8'));
      assert.ok(parsed.ok, file);
      assert.deepEqual(parsed.warnings, [], file);
    }
  });
});

describe('valid documents', () => {
  test('the example policy parses and declares every effect', () => {
    const r = parsePolicy(readFileSync(`${repoRoot}examples/policy.yaml`, 'utf8'), { source: 'examples/policy.yaml' });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    assert.equal(r.policy.source, 'examples/policy.yaml');
    assert.deepEqual(new Set(r.policy.rules.map((x) => x.effect)), new Set(['allow', 'deny', 'require_approval']));
    assert.ok(r.policy.rules.some((x) => x.mask === 'secrets'));
    assert.ok(Object.isFrozen(r.policy.document.rules[0]));
  });

  test('JSON is YAML too; compilePolicy takes an object', () => {
    const doc = { apiVersion: 'portcullis.dev/v1', kind: 'Policy', metadata: { name: 'j', version: '1' }, rules: [{ id: 'a', effect: 'allow' }] };
    assert.ok(parsePolicy(JSON.stringify(doc)).ok);
    assert.ok(compilePolicy(doc).ok);
    const bad = compilePolicy({ ...doc, rules: [{ id: 'a', effect: 'allow', extra: 1 }] });
    assert.ok(!bad.ok);
    assert.deepEqual(
      bad.errors.map((e) => [e.path, e.line, e.column]),
      [['rules[0].extra', 0, 0]],
    );
  });

  test('policy.schema.json is generated from the zod schema and committed up to date', () => {
    const committed = readFileSync(`${repoRoot}libs/policy-engine/policy.schema.json`, 'utf8');
    assert.equal(
      committed,
      policyJsonSchemaText(),
      'policy.schema.json is stale: run `npm run build && node dist/libs/policy-engine/src/write-policy-schema.js`',
    );
    const schema = JSON.parse(committed) as Record<string, unknown>;
    assert.equal(schema['$schema'], 'https://json-schema.org/draft/2020-12/schema');
    assert.equal(schema['additionalProperties'], false);
  });
});

describe('building blocks', () => {
  test('durations', () => {
    assert.equal(parseDurationSeconds('30s'), 30);
    assert.equal(parseDurationSeconds('15m'), 900);
    assert.equal(parseDurationSeconds('1h'), 3600);
    assert.equal(parseDurationSeconds('1h30m'), 5400);
    assert.equal(parseDurationSeconds('2d'), 172800);
    // The shared grammar (as the config writes it): ms parts, when they add up to whole seconds.
    assert.equal(parseDurationSeconds('2000ms'), 2);
    assert.equal(parseDurationSeconds('1m30s'), 90);
    assert.equal(parseDurationSeconds('1d1h1m1s'), 90061);
    for (const bad of ['', '0s', '0ms', '15', 'm', '1m1h', '1.5h', '-1s', '1500ms', '1s500ms', '1h 30m', '30S'])
      assert.equal(parseDurationSeconds(bad), undefined, bad);
  });

  test('globs', () => {
    const cases: Array<[string, string, boolean]> = [
      ['web-*', 'web-1', true],
      ['web-*', 'web-', true],
      ['web-*', 'api-1', false],
      ['*-prod', 'eu-prod', true],
      ['*-prod', 'eu-prod-2', false],
      ['/api*', '/apis/apps/v1', true],
      ['a*b*c', 'aXXbYYc', true],
      ['a*b*c', 'aXXbYY', false],
      ['v?', 'v1', true],
      ['v?', 'v10', false],
      ['\\*', '*', true],
      ['\\*', 'x', false],
      ['a.b', 'aXb', false],
      ['*', '', true],
      ['(x)+', '(x)+', true],
    ];
    for (const [pattern, value, expected] of cases) {
      assert.equal(globError(pattern), undefined, pattern);
      assert.equal(compileGlob(pattern)(value), expected, `${pattern} ~ ${value}`);
    }
    for (const bad of ['[ab]', '{a,b}', 'x\\', 'a**']) assert.ok(globError(bad), bad);
  });
});
