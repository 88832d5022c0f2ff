/**
 * In-process policy engine throughput: decisions per second on a generated 500-rule policy,
 * median of 5 runs. Run: `npm run build && node dist/bench/policy-engine.bench.js`.
 */
import { stringify } from 'yaml';
import {
  IdentitySchema,
  KubeAttributesSchema,
  RequestAttributesSchema,
  create,
  type Identity,
  type RequestAttributes,
} from '../libs/contracts/src/index.js';
import { evaluate, parsePolicy } from '../libs/policy-engine/src/index.js';

const RULES = 500;
const DECISIONS_PER_RUN = 300_000;
const RUNS = 5;

const verbsSets = [['get', 'list', 'watch'], ['create', 'update', 'patch'], ['delete'], ['*']];
const resources = ['pods', 'deployments', 'configmaps', 'secrets', 'services', 'jobs', 'pods/log', 'pods/exec', 'ingresses'];

/** 500 rules shaped like a real multi-team policy: per-team grants, a few globs, denies and approvals. */
function generatePolicy(): string {
  const rules: Record<string, unknown>[] = [
    { id: 'discovery', match: { verbs: ['get'], nonResourcePaths: ['/api', '/api/*', '/apis', '/apis/*', '/version'] }, effect: 'allow' },
  ];
  for (let i = 1; i < RULES; i++) {
    const team = `team-${i % 60}`;
    const match: Record<string, unknown> = {
      connections: [i % 5 === 0 ? 'prod' : `cluster-${i % 7}`],
      verbs: verbsSets[i % verbsSets.length],
      resources: [resources[i % resources.length], resources[(i * 7) % resources.length]],
      namespaces: i % 11 === 0 ? [`${team}-*`] : [team, `${team}-staging`],
    };
    if (i % 3 === 0) match['groups'] = [team, 'platform'];
    else match['subjects'] = [`bot-${i % 40}`, i % 13 === 0 ? `ci-${i % 9}-*` : `ci-${i % 9}`];
    if (i % 17 === 0) match['names'] = ['web-*', 'api'];
    if (i % 50 === 0) match['time'] = { days: ['mon-fri'], hours: '08:00-20:00', timezone: 'Europe/Paris' };
    const effect = i % 23 === 0 ? 'deny' : i % 31 === 0 ? 'require_approval' : 'allow';
    rules.push({
      id: `rule-${i}`,
      match,
      effect,
      ...(effect === 'require_approval' ? { approval: { approverGroups: ['sre'], quorum: 2 } } : {}),
      ...(effect === 'allow' && i % 4 === 0 ? { mask: 'secrets' } : {}),
    });
  }
  return stringify(
    { apiVersion: 'portcullis.dev/v1', kind: 'Policy', metadata: { name: 'bench', version: 'b1' }, rules },
    { aliasDuplicateObjects: false },
  );
}

function request(i: number): [Identity, RequestAttributes] {
  const team = `team-${i % 60}`;
  const identity = create(IdentitySchema, { subject: i % 3 === 0 ? `bot-${i % 40}` : `ci-${i % 9}`, groups: [team, 'everyone'] });
  const nonResource = i % 10 === 0;
  const attributes = create(RequestAttributesSchema, {
    connection: i % 5 === 0 ? 'prod' : `cluster-${i % 7}`,
    connectionType: 'kubernetes',
    kube: nonResource
      ? create(KubeAttributesSchema, { isResourceRequest: false, verb: 'get', path: '/apis/apps/v1' })
      : create(KubeAttributesSchema, {
          isResourceRequest: true,
          verb: ['get', 'list', 'create', 'delete', 'patch'][i % 5] ?? 'get',
          resource: resources[i % resources.length] ?? 'pods',
          namespace: i % 4 === 0 ? `${team}-staging` : team,
          name: i % 2 === 0 ? `web-${i}` : '',
        }),
  });
  return [identity, attributes];
}

const parsed = parsePolicy(generatePolicy(), { source: 'bench' });
if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors.slice(0, 5)));
const policy = parsed.policy;
const requests = Array.from({ length: 1024 }, (_, i) => request(i));
const now = new Date('2026-11-26T10:00:00Z');

const outcomes = new Map<string, number>();
for (const [id, attrs] of requests) {
  const d = evaluate(policy, id, attrs, now);
  const key = d.ruleId === 'default-deny' ? 'default-deny' : d.effect;
  outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
}

const rates: number[] = [];
for (let run = 0; run < RUNS + 1; run++) {
  const start = process.hrtime.bigint();
  let sink = 0;
  for (let i = 0; i < DECISIONS_PER_RUN; i++) {
    const [id, attrs] = requests[i & 1023]!;
    sink += evaluate(policy, id, attrs, now).ruleId.length;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (run > 0) rates.push(DECISIONS_PER_RUN / seconds); // run 0 warms the JIT
  if (sink === 0) throw new Error('unreachable');
}
rates.sort((a, b) => a - b);
const median = rates[Math.floor(rates.length / 2)] ?? 0;
process.stdout.write(
  `policy-engine: ${RULES} rules, ${requests.length} distinct requests (${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')})\n` +
    `policy-engine: ${Math.round(median).toLocaleString('en-US')} decisions/s (median of ${RUNS} runs of ${DECISIONS_PER_RUN.toLocaleString('en-US')}; ` +
    `min ${Math.round(rates[0] ?? 0).toLocaleString('en-US')}, max ${Math.round(rates[rates.length - 1] ?? 0).toLocaleString('en-US')})\n`,
);
