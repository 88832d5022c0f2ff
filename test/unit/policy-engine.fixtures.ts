/** Builders for policy-engine tests: identities and request attributes in one line each. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HttpAttributesSchema, IdentitySchema, KubeAttributesSchema, RequestAttributesSchema, create, type RequestAttributes } from '@portcullis/contracts';
import { parsePolicy, type CompiledPolicy, type PolicyIdentity } from '@portcullis/policy-engine';

/** Repository root (tests run from dist/test/unit). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** Parses a policy or throws with every error, for fixtures that must be valid. */
export function mustParse(text: string, source = 'test'): CompiledPolicy {
  const result = parsePolicy(text, { source });
  if (!result.ok) throw new Error(`${source}: ${JSON.stringify(result.errors, null, 2)}`);
  return result.policy;
}

/** Loads a policy from a path relative to the repository root. */
export function loadPolicy(relative: string): CompiledPolicy {
  return mustParse(readFileSync(`${repoRoot}${relative}`, 'utf8'), relative);
}

export interface IdentitySpec {
  readonly sub?: string;
  readonly groups?: readonly string[];
  readonly clientId?: string;
  readonly issuer?: string;
  readonly scopes?: readonly string[];
  readonly audiences?: readonly string[];
  readonly claims?: Record<string, unknown>;
}

export function who(spec: IdentitySpec = {}): PolicyIdentity {
  const identity = create(IdentitySchema, {
    subject: spec.sub ?? 'someone',
    groups: [...(spec.groups ?? [])],
    clientId: spec.clientId ?? '',
    issuer: spec.issuer ?? 'https://idp.example.com',
    scopes: [...(spec.scopes ?? [])],
    audiences: [...(spec.audiences ?? [])],
  });
  return spec.claims ? Object.assign(identity, { claims: spec.claims }) : identity;
}

/**
 * A Kubernetes resource request from a kubectl-like line:
 * `get pods web -n default`, `create pods/exec web -n prod`, `delete namespaces team-a`,
 * `patch deployments.apps web -n team-a`. `--on CONN` sets the connection (default sandbox).
 */
export function kube(line: string): RequestAttributes {
  const words = line.split(/\s+/).filter((w) => w !== '');
  let connection = 'sandbox';
  let namespace = '';
  const positional: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] ?? '';
    if (w === '-n') namespace = words[++i] ?? '';
    else if (w === '--on') connection = words[++i] ?? '';
    else positional.push(w);
  }
  const [verb = '', what = '', name = ''] = positional;
  const [resourceAndGroup = '', subresource = ''] = what.split('/');
  const dot = resourceAndGroup.indexOf('.');
  const resource = dot < 0 ? resourceAndGroup : resourceAndGroup.slice(0, dot);
  const apiGroup = dot < 0 ? '' : resourceAndGroup.slice(dot + 1);
  return create(RequestAttributesSchema, {
    connection,
    connectionType: 'kubernetes',
    method: verb === 'get' || verb === 'list' || verb === 'watch' ? 'GET' : 'POST',
    kube: create(KubeAttributesSchema, {
      isResourceRequest: true,
      verb,
      apiGroup,
      apiVersion: 'v1',
      namespace,
      resource,
      subresource,
      name,
      path: '',
    }),
  });
}

/** A Kubernetes non-resource request (`/version`, `/api`, `/apis/apps/v1`). */
export function nonResource(verb: string, path: string, connection = 'sandbox'): RequestAttributes {
  return create(RequestAttributesSchema, {
    connection,
    connectionType: 'kubernetes',
    method: 'GET',
    kube: create(KubeAttributesSchema, { isResourceRequest: false, verb, path }),
  });
}

/** A generic HTTP request. */
export function http(method: string, path: string, connection = 'billing'): RequestAttributes {
  return create(RequestAttributesSchema, {
    connection,
    connectionType: 'http',
    method,
    http: create(HttpAttributesSchema, { method, path, query: '' }),
  });
}
