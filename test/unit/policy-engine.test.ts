import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RequestAttributes } from '@portcullis/contracts';
import { DEFAULT_DENY_RULE_ID, evaluate, explain, type CompiledPolicy, type PolicyIdentity } from '@portcullis/policy-engine';
import { http, kube, loadPolicy, mustParse, nonResource, who } from './policy-engine.fixtures.js';

const EXAMPLE = loadPolicy('examples/policy.yaml');

const RICH = mustParse(`
apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: rich, version: "7" }
maskingProfiles: [secrets, tokens, pii]
defaults:
  approval: { approverGroups: [sre], wait: 45s }
rules:
  - id: prod-exec-in-hours
    description: exec into pods in prod only with approval, during working hours
    match:
      connections: [prod]
      resources: [pods/exec]
      namespaces: [prod]
      time: { days: [mon-fri], hours: "09:00-18:00", timezone: Europe/Paris }
    effect: require_approval
    approval: { approverGroups: [sre, oncall], quorum: 2, scope: window, ttl: 15m, reasonRequired: true, channel: "#prod" }
  - id: kube-system-read-only
    match:
      namespaces: [kube-system]
      verbs: [create, update, patch, delete, deletecollection]
    effect: deny
    message: kube-system is read-only
  - id: agents-read
    match:
      subjects: ["agent-*"]
      issuers: ["https://idp.example.com"]
      verbs: [get, list, watch]
    effect: allow
  - id: agents-see-tokens-masked
    match:
      subjects: ["agent-*"]
      resources: [secrets, serviceaccounts/token]
    effect: mask
    mask: tokens
  - id: auditors-cluster-scope
    match:
      groups: [auditors]
      namespaces: [""]
      verbs: [get, list]
    effect: allow
  - id: deployer
    match:
      clientIds: [deployer]
      scopes: ["k8s:write", "k8s:read"]
      verbs: [create, update, patch]
      apiGroups: [apps]
      resources: [deployments, deployments/scale]
      namespaces: ["team-*"]
      names: ["web-*", api]
    effect: allow
  - id: staging-by-claim
    match:
      claims: { env: staging, team: [payments, "core-*"] }
      connections: ["staging-*"]
      verbs: [get]
    effect: allow
    mask: pii
  - id: billing-admin-off-limits
    match:
      connections: [billing]
      http: { paths: ["/v1/admin*"] }
    effect: deny
    message: the admin API is off limits
  - id: billing-read
    match:
      connections: [billing]
      http: { methods: [get, HEAD], paths: ["/v1/*"] }
    effect: allow
  - id: billing-refund-approval
    match:
      connections: [billing]
      http: { methods: [POST], paths: [/v1/refunds] }
    effect: require_approval
  - id: night-batch
    match:
      subjects: [batch]
      verbs: [list]
      time: { hours: "22:00-06:00" }
    effect: allow
  - id: gateway-audience-nodes
    match:
      audiences: [kube-gw]
      verbs: [get]
      resources: [nodes]
    effect: allow
  - id: ops-pod-subresources
    match:
      groups: ["ops-*"]
      verbs: ["*"]
      resources: ["pods/*"]
      namespaces: ["*"]
    effect: allow
  - id: no-crd-deletes
    match:
      verbs: [delete, deletecollection]
      apiGroups: ["apiextensions.k8s.io"]
    effect: deny
  - id: cluster-admins
    match:
      groups: [cluster-admins]
    effect: allow
`);

const PRECEDENCE = mustParse(`
apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: precedence, version: p1 }
rules:
  - id: allow-everything
    effect: allow
  - id: deletes-need-approval
    match: { verbs: [delete] }
    effect: require_approval
    approval: { approverGroups: [sre] }
  - id: never-delete-secrets
    match: { verbs: [delete], resources: [secrets] }
    effect: deny
  - id: mask-secrets-a
    match: { resources: [secrets] }
    effect: mask
    mask: profile-a
  - id: allow-secrets-b
    match: { resources: [secrets] }
    effect: allow
    mask: profile-b
  - id: approve-configmap-deletes-masked
    match: { verbs: [delete], resources: [configmaps] }
    effect: require_approval
    mask: profile-c
    approval: { approverGroups: [sre] }
  - id: deny-namespaces-last
    match: { resources: [namespaces] }
    effect: deny
    message: namespaces are managed elsewhere
`);

const EMPTY = mustParse(`
apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: empty, version: "0" }
rules: []
`);

// Thursday 2026-11-26 (CET, UTC+1) and a summer Wednesday (CEST, UTC+2).
const THU_11_PARIS = new Date('2026-11-26T10:00:00Z');
const THU_0859_PARIS = new Date('2026-11-26T07:59:00Z');
const THU_0900_PARIS = new Date('2026-11-26T08:00:00Z');
const THU_1800_PARIS = new Date('2026-11-26T17:00:00Z');
const SAT_11_PARIS = new Date('2026-11-28T10:00:00Z');
const SUMMER_0930_PARIS = new Date('2026-07-01T07:30:00Z');
const UTC_2300 = new Date('2026-11-26T23:00:00Z');
const UTC_0559 = new Date('2026-11-27T05:59:00Z');
const UTC_0600 = new Date('2026-11-27T06:00:00Z');

interface Case {
  readonly name: string;
  readonly policy: CompiledPolicy;
  readonly identity: PolicyIdentity;
  readonly request: RequestAttributes;
  readonly now?: Date;
  readonly effect: 'allow' | 'deny' | 'require_approval';
  readonly rule: string;
  readonly mask?: string;
}

const ciBot = who({ sub: 'ci-bot', groups: ['bots'] });
const stranger = who({ sub: 'someone', groups: ['nobody'] });
const agent = who({ sub: 'agent-7', groups: ['agents'] });
const deployer = who({ sub: 'deploy', clientId: 'deployer', scopes: ['k8s:read', 'k8s:write', 'openid'] });
const D = DEFAULT_DENY_RULE_ID;

const cases: readonly Case[] = [
  // examples/policy.yaml: the embedded gateway's policy
  {
    name: 'example: anyone reads /api discovery',
    policy: EXAMPLE,
    identity: stranger,
    request: nonResource('get', '/api'),
    effect: 'allow',
    rule: 'discovery',
  },
  {
    name: 'example: anyone reads /apis/apps/v1',
    policy: EXAMPLE,
    identity: stranger,
    request: nonResource('get', '/apis/apps/v1'),
    effect: 'allow',
    rule: 'discovery',
  },
  { name: 'example: anyone reads /version', policy: EXAMPLE, identity: stranger, request: nonResource('get', '/version'), effect: 'allow', rule: 'discovery' },
  { name: 'example: openapi v3 discovery', policy: EXAMPLE, identity: ciBot, request: nonResource('get', '/openapi/v3'), effect: 'allow', rule: 'discovery' },
  {
    name: 'example: post to a non-resource path is denied',
    policy: EXAMPLE,
    identity: ciBot,
    request: nonResource('post', '/version'),
    effect: 'deny',
    rule: D,
  },
  {
    name: 'example: unlisted non-resource path is denied',
    policy: EXAMPLE,
    identity: stranger,
    request: nonResource('get', '/metrics'),
    effect: 'deny',
    rule: D,
  },
  { name: 'example: bot gets a pod', policy: EXAMPLE, identity: ciBot, request: kube('get pods web -n default'), effect: 'allow', rule: 'bots-read' },
  { name: 'example: bot lists pods in all namespaces', policy: EXAMPLE, identity: ciBot, request: kube('list pods'), effect: 'allow', rule: 'bots-read' },
  {
    name: 'example: bot watches deployments',
    policy: EXAMPLE,
    identity: ciBot,
    request: kube('watch deployments.apps -n default'),
    effect: 'allow',
    rule: 'bots-read',
  },
  { name: 'example: bot reads pod logs', policy: EXAMPLE, identity: ciBot, request: kube('get pods/log web -n default'), effect: 'allow', rule: 'bots-read' },
  {
    name: 'example: bot gets a Secret, masked',
    policy: EXAMPLE,
    identity: ciBot,
    request: kube('get secrets db -n default'),
    effect: 'allow',
    rule: 'bots-read-secrets-masked',
    mask: 'secrets',
  },
  {
    name: 'example: bot lists Secrets, masked',
    policy: EXAMPLE,
    identity: ciBot,
    request: kube('list secrets -n default'),
    effect: 'allow',
    rule: 'bots-read-secrets-masked',
    mask: 'secrets',
  },
  {
    name: 'example: bot reads on another connection is denied',
    policy: EXAMPLE,
    identity: ciBot,
    request: kube('get pods web -n default --on prod'),
    effect: 'deny',
    rule: D,
  },
  { name: 'example: non-bot reading pods is denied', policy: EXAMPLE, identity: stranger, request: kube('get pods web -n default'), effect: 'deny', rule: D },
  {
    name: 'example: bot deleting a namespace needs sre approval',
    policy: EXAMPLE,
    identity: ciBot,
    request: kube('delete namespaces team-a'),
    effect: 'require_approval',
    rule: 'delete-namespace-needs-sre',
  },
  {
    name: 'example: anyone deleting a namespace needs approval',
    policy: EXAMPLE,
    identity: stranger,
    request: kube('delete namespaces team-a'),
    effect: 'require_approval',
    rule: 'delete-namespace-needs-sre',
  },
  {
    name: 'example: bot exec into a pod is denied',
    policy: EXAMPLE,
    identity: ciBot,
    request: kube('create pods/exec web -n default'),
    effect: 'deny',
    rule: 'no-exec',
  },
  {
    name: 'example: bot exec via get (websocket) is denied',
    policy: EXAMPLE,
    identity: ciBot,
    request: kube('get pods/exec web -n default'),
    effect: 'deny',
    rule: 'no-exec',
  },
  {
    name: 'example: bot attach is denied',
    policy: EXAMPLE,
    identity: ciBot,
    request: kube('create pods/attach web -n default'),
    effect: 'deny',
    rule: 'no-exec',
  },
  {
    name: 'example: bot creates a configmap in staging',
    policy: EXAMPLE,
    identity: ciBot,
    request: kube('create configmaps cfg -n staging'),
    effect: 'allow',
    rule: 'bots-edit-staging-configmaps',
  },
  {
    name: 'example: bot patches a configmap in staging',
    policy: EXAMPLE,
    identity: ciBot,
    request: kube('patch configmaps cfg -n staging'),
    effect: 'allow',
    rule: 'bots-edit-staging-configmaps',
  },
  {
    name: 'example: bot updates a configmap in staging',
    policy: EXAMPLE,
    identity: ciBot,
    request: kube('update configmaps cfg -n staging'),
    effect: 'allow',
    rule: 'bots-edit-staging-configmaps',
  },
  {
    name: 'example: bot creating a configmap in default is denied',
    policy: EXAMPLE,
    identity: ciBot,
    request: kube('create configmaps cfg -n default'),
    effect: 'deny',
    rule: D,
  },
  {
    name: 'example: bot deleting a configmap in staging is denied',
    policy: EXAMPLE,
    identity: ciBot,
    request: kube('delete configmaps cfg -n staging'),
    effect: 'deny',
    rule: D,
  },
  { name: 'example: bot deleting a pod is denied', policy: EXAMPLE, identity: ciBot, request: kube('delete pods web -n default'), effect: 'deny', rule: D },
  { name: 'example: bot creating secrets is denied', policy: EXAMPLE, identity: ciBot, request: kube('create secrets s -n staging'), effect: 'deny', rule: D },
  { name: 'example: HTTP requests are denied by default', policy: EXAMPLE, identity: ciBot, request: http('GET', '/v1/x', 'sandbox'), effect: 'deny', rule: D },

  // RICH: every match field
  {
    name: 'time: exec in prod at 11:00 Paris on a Thursday needs approval',
    policy: RICH,
    identity: agent,
    request: kube('create pods/exec web -n prod --on prod'),
    now: THU_11_PARIS,
    effect: 'require_approval',
    rule: 'prod-exec-in-hours',
  },
  {
    name: 'time: 09:00 Paris is inside the window (start inclusive)',
    policy: RICH,
    identity: agent,
    request: kube('create pods/exec web -n prod --on prod'),
    now: THU_0900_PARIS,
    effect: 'require_approval',
    rule: 'prod-exec-in-hours',
  },
  {
    name: 'time: 08:59 Paris is outside the window',
    policy: RICH,
    identity: agent,
    request: kube('create pods/exec web -n prod --on prod'),
    now: THU_0859_PARIS,
    effect: 'deny',
    rule: D,
  },
  {
    name: 'time: 18:00 Paris is outside the window (end exclusive)',
    policy: RICH,
    identity: agent,
    request: kube('create pods/exec web -n prod --on prod'),
    now: THU_1800_PARIS,
    effect: 'deny',
    rule: D,
  },
  {
    name: 'time: Saturday is outside mon-fri',
    policy: RICH,
    identity: agent,
    request: kube('create pods/exec web -n prod --on prod'),
    now: SAT_11_PARIS,
    effect: 'deny',
    rule: D,
  },
  {
    name: 'time: summer time is honoured (07:30Z is 09:30 CEST)',
    policy: RICH,
    identity: agent,
    request: kube('create pods/exec web -n prod --on prod'),
    now: SUMMER_0930_PARIS,
    effect: 'require_approval',
    rule: 'prod-exec-in-hours',
  },
  {
    name: 'time: exec in another namespace of prod is denied',
    policy: RICH,
    identity: agent,
    request: kube('create pods/exec web -n team-a --on prod'),
    now: THU_11_PARIS,
    effect: 'deny',
    rule: D,
  },
  {
    name: 'time: window wrapping midnight, 23:00 UTC',
    policy: RICH,
    identity: who({ sub: 'batch' }),
    request: kube('list jobs.batch -n default'),
    now: UTC_2300,
    effect: 'allow',
    rule: 'night-batch',
  },
  {
    name: 'time: window wrapping midnight, 05:59 UTC',
    policy: RICH,
    identity: who({ sub: 'batch' }),
    request: kube('list jobs.batch -n default'),
    now: UTC_0559,
    effect: 'allow',
    rule: 'night-batch',
  },
  {
    name: 'time: window wrapping midnight, 06:00 UTC is out',
    policy: RICH,
    identity: who({ sub: 'batch' }),
    request: kube('list jobs.batch -n default'),
    now: UTC_0600,
    effect: 'deny',
    rule: D,
  },
  { name: 'subjects glob: agent reads pods', policy: RICH, identity: agent, request: kube('get pods web -n default'), effect: 'allow', rule: 'agents-read' },
  {
    name: 'subjects glob: non-agent subject is denied',
    policy: RICH,
    identity: who({ sub: 'agentless' }),
    request: kube('get pods web -n default'),
    effect: 'deny',
    rule: D,
  },
  {
    name: 'issuers: agent from another issuer is denied',
    policy: RICH,
    identity: who({ sub: 'agent-7', issuer: 'https://evil.example.com' }),
    request: kube('get pods web -n default'),
    effect: 'deny',
    rule: D,
  },
  {
    name: 'mask effect: agent reading secrets gets tokens mask',
    policy: RICH,
    identity: agent,
    request: kube('get secrets db -n default'),
    effect: 'allow',
    rule: 'agents-read',
    mask: 'tokens',
  },
  {
    name: 'mask effect: agent reading a service account token',
    policy: RICH,
    identity: agent,
    request: kube('get serviceaccounts/token default -n default'),
    effect: 'allow',
    rule: 'agents-read',
    mask: 'tokens',
  },
  { name: 'mask effect alone never allows', policy: RICH, identity: agent, request: kube('create secrets db -n default'), effect: 'deny', rule: D },
  {
    name: 'deny message: agent writing kube-system',
    policy: RICH,
    identity: who({ groups: ['cluster-admins'] }),
    request: kube('delete pods dns -n kube-system'),
    effect: 'deny',
    rule: 'kube-system-read-only',
  },
  {
    name: 'cluster-admins can do anything else',
    policy: RICH,
    identity: who({ groups: ['cluster-admins'] }),
    request: kube('delete pods dns -n default'),
    effect: 'allow',
    rule: 'cluster-admins',
  },
  {
    name: 'cluster-admins reading kube-system is fine',
    policy: RICH,
    identity: who({ groups: ['cluster-admins'] }),
    request: kube('get pods dns -n kube-system'),
    effect: 'allow',
    rule: 'cluster-admins',
  },
  {
    name: 'cluster-admins cannot delete CRDs',
    policy: RICH,
    identity: who({ groups: ['cluster-admins'] }),
    request: kube('delete customresourcedefinitions.apiextensions.k8s.io widgets.example.com'),
    effect: 'deny',
    rule: 'no-crd-deletes',
  },
  {
    name: 'namespaces "": auditors list nodes (cluster-scoped)',
    policy: RICH,
    identity: who({ groups: ['auditors'] }),
    request: kube('list nodes'),
    effect: 'allow',
    rule: 'auditors-cluster-scope',
  },
  {
    name: 'namespaces "": auditors get a namespace object',
    policy: RICH,
    identity: who({ groups: ['auditors'] }),
    request: kube('get namespaces default'),
    effect: 'allow',
    rule: 'auditors-cluster-scope',
  },
  {
    name: 'namespaces "": auditors cannot read namespaced pods',
    policy: RICH,
    identity: who({ groups: ['auditors'] }),
    request: kube('get pods web -n default'),
    effect: 'deny',
    rule: D,
  },
  {
    name: 'namespaces "*": does not cover cluster scope',
    policy: RICH,
    identity: who({ groups: ['ops-1'] }),
    request: kube('get pods/log web'),
    effect: 'deny',
    rule: D,
  },
  {
    name: 'resources "pods/*": ops read pod logs',
    policy: RICH,
    identity: who({ groups: ['x', 'ops-eu'] }),
    request: kube('get pods/log web -n default'),
    effect: 'allow',
    rule: 'ops-pod-subresources',
  },
  {
    name: 'resources "pods/*": does not cover pods itself',
    policy: RICH,
    identity: who({ groups: ['ops-eu'] }),
    request: kube('get pods web -n default'),
    effect: 'deny',
    rule: D,
  },
  {
    name: 'deployer: clientId + scopes + apiGroup + names',
    policy: RICH,
    identity: deployer,
    request: kube('patch deployments.apps web-frontend -n team-a'),
    effect: 'allow',
    rule: 'deployer',
  },
  {
    name: 'deployer: scale subresource',
    policy: RICH,
    identity: deployer,
    request: kube('update deployments.apps/scale api -n team-b'),
    effect: 'allow',
    rule: 'deployer',
  },
  { name: 'deployer: name outside the globs', policy: RICH, identity: deployer, request: kube('patch deployments.apps db -n team-a'), effect: 'deny', rule: D },
  {
    name: 'deployer: wrong API group (core)',
    policy: RICH,
    identity: deployer,
    request: kube('patch deployments web-frontend -n team-a'),
    effect: 'deny',
    rule: D,
  },
  {
    name: 'deployer: namespace outside team-*',
    policy: RICH,
    identity: deployer,
    request: kube('patch deployments.apps web-frontend -n default'),
    effect: 'deny',
    rule: D,
  },
  {
    name: 'scopes: missing k8s:write',
    policy: RICH,
    identity: who({ sub: 'deploy', clientId: 'deployer', scopes: ['k8s:read'] }),
    request: kube('patch deployments.apps web-frontend -n team-a'),
    effect: 'deny',
    rule: D,
  },
  {
    name: 'clientIds: another client with the same scopes',
    policy: RICH,
    identity: who({ clientId: 'other', scopes: ['k8s:read', 'k8s:write'] }),
    request: kube('patch deployments.apps web-frontend -n team-a'),
    effect: 'deny',
    rule: D,
  },
  {
    name: 'claims: env and team match',
    policy: RICH,
    identity: who({ claims: { env: 'staging', team: 'payments' } }),
    request: kube('get pods web -n default --on staging-eu'),
    effect: 'allow',
    rule: 'staging-by-claim',
    mask: 'pii',
  },
  {
    name: 'claims: list-valued claim matches a glob',
    policy: RICH,
    identity: who({ claims: { env: 'staging', team: ['x', 'core-infra'] } }),
    request: kube('get pods web -n default --on staging-eu'),
    effect: 'allow',
    rule: 'staging-by-claim',
    mask: 'pii',
  },
  {
    name: 'claims: wrong env',
    policy: RICH,
    identity: who({ claims: { env: 'prod', team: 'payments' } }),
    request: kube('get pods web -n default --on staging-eu'),
    effect: 'deny',
    rule: D,
  },
  {
    name: 'claims: absent claims fail closed',
    policy: RICH,
    identity: who({}),
    request: kube('get pods web -n default --on staging-eu'),
    effect: 'deny',
    rule: D,
  },
  {
    name: 'audiences: token for kube-gw reads nodes',
    policy: RICH,
    identity: who({ audiences: ['other', 'kube-gw'] }),
    request: kube('get nodes n1'),
    effect: 'allow',
    rule: 'gateway-audience-nodes',
  },
  {
    name: 'audiences: token for another audience',
    policy: RICH,
    identity: who({ audiences: ['other'] }),
    request: kube('get nodes n1'),
    effect: 'deny',
    rule: D,
  },
  { name: 'http: GET /v1/invoices allowed', policy: RICH, identity: stranger, request: http('GET', '/v1/invoices'), effect: 'allow', rule: 'billing-read' },
  {
    name: 'http: methods are case-insensitive',
    policy: RICH,
    identity: stranger,
    request: http('head', '/v1/invoices'),
    effect: 'allow',
    rule: 'billing-read',
  },
  {
    name: 'http: GET /v1/admin is denied with a message',
    policy: RICH,
    identity: stranger,
    request: http('GET', '/v1/admin/users'),
    effect: 'deny',
    rule: 'billing-admin-off-limits',
  },
  {
    name: 'http: POST /v1/refunds needs approval (defaults)',
    policy: RICH,
    identity: stranger,
    request: http('POST', '/v1/refunds'),
    effect: 'require_approval',
    rule: 'billing-refund-approval',
  },
  { name: 'http: DELETE /v1/invoices is denied', policy: RICH, identity: stranger, request: http('DELETE', '/v1/invoices'), effect: 'deny', rule: D },
  {
    name: 'http: GET on another connection is denied',
    policy: RICH,
    identity: stranger,
    request: http('GET', '/v1/invoices', 'payroll'),
    effect: 'deny',
    rule: D,
  },
  { name: 'http: a kube rule with verbs never matches HTTP', policy: RICH, identity: agent, request: http('GET', '/v1/x', 'other'), effect: 'deny', rule: D },

  // PRECEDENCE
  {
    name: 'precedence: allow-everything for a plain get',
    policy: PRECEDENCE,
    identity: stranger,
    request: kube('get pods web -n a'),
    effect: 'allow',
    rule: 'allow-everything',
  },
  {
    name: 'precedence: first allow names the decision, first let-through mask applies',
    policy: PRECEDENCE,
    identity: stranger,
    request: kube('get secrets s -n a'),
    effect: 'allow',
    rule: 'allow-everything',
    mask: 'profile-a',
  },
  {
    name: 'precedence: require_approval beats an earlier allow',
    policy: PRECEDENCE,
    identity: stranger,
    request: kube('delete pods web -n a'),
    effect: 'require_approval',
    rule: 'deletes-need-approval',
  },
  {
    name: 'precedence: deny beats earlier allow and approval',
    policy: PRECEDENCE,
    identity: stranger,
    request: kube('delete secrets s -n a'),
    effect: 'deny',
    rule: 'never-delete-secrets',
  },
  {
    name: 'precedence: deny as the last rule still wins',
    policy: PRECEDENCE,
    identity: stranger,
    request: kube('get namespaces a'),
    effect: 'deny',
    rule: 'deny-namespaces-last',
  },
  {
    name: "precedence: first approval names it, a later approval rule's mask applies",
    policy: PRECEDENCE,
    identity: stranger,
    request: kube('delete configmaps c -n a'),
    effect: 'require_approval',
    rule: 'deletes-need-approval',
    mask: 'profile-c',
  },
  {
    name: 'precedence: non-resource request, allow-everything',
    policy: PRECEDENCE,
    identity: stranger,
    request: nonResource('get', '/version'),
    effect: 'allow',
    rule: 'allow-everything',
  },

  // EMPTY
  { name: 'empty policy: everything is default-deny', policy: EMPTY, identity: ciBot, request: kube('get pods web -n default'), effect: 'deny', rule: D },
  { name: 'empty policy: discovery too', policy: EMPTY, identity: ciBot, request: nonResource('get', '/api'), effect: 'deny', rule: D },
];

describe('policy decisions (table)', () => {
  test('the table has at least 60 cases', () => assert.ok(cases.length >= 60, `only ${cases.length}`));
  for (const c of cases) {
    test(c.name, () => {
      const now = c.now ?? THU_11_PARIS;
      const d = evaluate(c.policy, c.identity, c.request, now);
      assert.equal(d.effect, c.effect, d.message);
      assert.equal(d.ruleId, c.rule, d.message);
      assert.equal(d.maskProfile, c.effect === 'deny' ? '' : (c.mask ?? ''));
      assert.equal(d.policyVersion, c.policy.version);
      // explain walks every rule without the index; it must agree with evaluate.
      const e = explain(c.policy, c.identity, c.request, now);
      assert.deepEqual(
        { effect: e.decision.effect, ruleId: e.decision.ruleId, mask: e.decision.maskProfile, message: e.decision.message },
        { effect: d.effect, ruleId: d.ruleId, mask: d.maskProfile, message: d.message },
      );
      if (c.rule !== D) {
        assert.ok(e.trace.some((t) => t.ruleId === c.rule && t.matched));
      }
    });
  }
});

describe('decision details', () => {
  test('require_approval carries the approval settings, with defaults filled in', () => {
    const d = evaluate(RICH, agent, kube('create pods/exec web -n prod --on prod'), THU_11_PARIS);
    assert.equal(d.effect, 'require_approval');
    assert.deepEqual(
      { ...d.approval, $typeName: undefined },
      {
        $typeName: undefined,
        approverGroups: ['sre', 'oncall'],
        quorum: 2,
        scope: 'window',
        windowSeconds: 900,
        waitSeconds: 45,
        reasonRequired: true,
        channel: '#prod',
      },
    );
    const refund = evaluate(RICH, stranger, http('POST', '/v1/refunds'), THU_11_PARIS);
    assert.deepEqual(refund.approval?.approverGroups, ['sre']);
    assert.equal(refund.approval?.quorum, 1);
    assert.equal(refund.approval?.scope, 'once');
    assert.equal(refund.approval?.windowSeconds, 0);
    assert.equal(refund.approval?.waitSeconds, 45);
  });

  test('the example asks sre for namespace deletes in #approvals', () => {
    const d = evaluate(EXAMPLE, ciBot, kube('delete namespaces team-a'), THU_11_PARIS);
    assert.deepEqual(d.approval?.approverGroups, ['sre']);
    assert.equal(d.approval?.channel, '#approvals');
    assert.equal(d.approval?.reasonRequired, true);
    assert.equal(d.policyVersion, '2026-11-26.1');
  });

  test('deny carries the rule message; default deny says who, what and where', () => {
    const exec = evaluate(EXAMPLE, ciBot, kube('create pods/exec web -n default'), THU_11_PARIS);
    assert.match(exec.message, /exec and attach into pods are not allowed/);
    const d = evaluate(EXAMPLE, ciBot, kube('delete pods web -n default'), THU_11_PARIS);
    assert.equal(
      d.message,
      'no rule of policy "example" (version 2026-11-26.1) allows "ci-bot" to delete pods "web" in namespace "default" on connection "sandbox" (default deny)',
    );
    const denyNoMessage = evaluate(PRECEDENCE, stranger, kube('delete secrets s -n a'), THU_11_PARIS);
    assert.equal(denyNoMessage.message, 'denied by policy rule "never-delete-secrets"');
  });

  test('deny never carries a mask or approval', () => {
    const d = evaluate(PRECEDENCE, stranger, kube('delete secrets s -n a'), THU_11_PARIS);
    assert.equal(d.maskProfile, '');
    assert.equal(d.approval, undefined);
  });
});

describe('explain', () => {
  test('names the field each earlier rule failed on, with the request value', () => {
    const { decision, trace } = explain(EXAMPLE, ciBot, kube('delete pods web -n default'), THU_11_PARIS);
    assert.equal(decision.ruleId, D);
    assert.equal(trace.length, EXAMPLE.rules.length);
    assert.ok(trace.every((t) => !t.matched));
    assert.deepEqual(trace[0], { ruleId: 'discovery', effect: 'allow', matched: false, failedOn: 'verbs: "delete" does not match ["get"]' });
    assert.equal(trace[1]?.failedOn, 'resources: "pods" does not match ["pods/exec", "pods/attach"]');
  });

  test('reports time windows in the rule zone and missing kinds of request', () => {
    const { trace } = explain(RICH, agent, kube('create pods/exec web -n prod --on prod'), SAT_11_PARIS);
    assert.equal(trace[0]?.failedOn, 'time: sat 11:00 Europe/Paris is outside mon-fri 09:00-18:00');
    const httpTrace = explain(RICH, agent, http('GET', '/v1/x'), SAT_11_PARIS).trace;
    assert.equal(httpTrace.find((t) => t.ruleId === 'agents-read')?.failedOn, 'verbs: not a Kubernetes request');
    const nsTrace = explain(RICH, who({ groups: ['auditors'] }), kube('get pods a -n default'), SAT_11_PARIS).trace;
    assert.equal(nsTrace.find((t) => t.ruleId === 'auditors-cluster-scope')?.failedOn, 'namespaces: "default" does not match [""]');
  });

  test('lists every matching rule, not only the winner', () => {
    const { trace } = explain(PRECEDENCE, stranger, kube('delete secrets s -n a'), THU_11_PARIS);
    assert.deepEqual(
      trace.filter((t) => t.matched).map((t) => t.ruleId),
      ['allow-everything', 'deletes-need-approval', 'never-delete-secrets', 'mask-secrets-a', 'allow-secrets-b'],
    );
  });
});
