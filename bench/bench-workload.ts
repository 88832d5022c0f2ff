/**
 * The benchmarks' workload: a generated 500-rule policy shaped like a real multi-team one, and
 * 1024 distinct requests against it.
 */
import { stringify } from 'yaml';
import { IdentitySchema, KubeAttributesSchema, RequestAttributesSchema, create, type Identity, type RequestAttributes } from '@portcullis/contracts';

export const RULES = 500;

const verbsSets = [['get', 'list', 'watch'], ['create', 'update', 'patch'], ['delete'], ['*']];
const resources = ['pods', 'deployments', 'configmaps', 'secrets', 'services', 'jobs', 'pods/log', 'pods/exec', 'ingresses'];

/** 500 rules shaped like a real multi-team policy: per-team grants, a few globs, denies and approvals. */
export function generatePolicy(): string {
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
  return stringify({ apiVersion: 'portcullis.dev/v1', kind: 'Policy', metadata: { name: 'bench', version: 'b1' }, rules }, { aliasDuplicateObjects: false });
}

export function request(i: number): [Identity, RequestAttributes] {
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
