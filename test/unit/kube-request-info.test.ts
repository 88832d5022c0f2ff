import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { assertCleanPath, canonicalKubePath, MAX_PATH_BYTES, parseKubeRequest, RequestPathError } from '@portcullis/kube';
import type { KubeAttributes } from '@portcullis/contracts';

/**
 * One request and what k8s.io/apiserver pkg/endpoints/request/requestinfo.go (NewRequestInfo,
 * with AuthorizeWithSelectors) computes for it. `gv` is `api/<version>`,
 * `apis/<group>/<version>`, `-` for a non-resource URL, or `-apis` for the one non-resource
 * case where requestinfo.go has already set APIPrefix (/apis/<group>/<version>).
 */
type Row = readonly [request: string, verb: string, gv: string, namespace?: string, resource?: string, name?: string, subresource?: string];

/** The one intended difference: these subresources are authorised as create, whatever the method. */
const CONNECT = 'create';

const REFERENCE: readonly Row[] = [
  // Core group: method → verb, get vs list, cluster-wide lists.
  ['GET /api/v1/pods', 'list', 'api/v1', '', 'pods'],
  ['GET /api/v1/namespaces/default/pods', 'list', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods/web-0', 'get', 'api/v1', 'default', 'pods', 'web-0'],
  ['HEAD /api/v1/namespaces/default/pods/web-0', 'get', 'api/v1', 'default', 'pods', 'web-0'],
  ['HEAD /api/v1/namespaces/default/pods', 'list', 'api/v1', 'default', 'pods'],
  ['POST /api/v1/namespaces/default/pods', 'create', 'api/v1', 'default', 'pods'],
  ['POST /api/v1/namespaces/default/pods/web-0', 'create', 'api/v1', 'default', 'pods', 'web-0'],
  ['PUT /api/v1/namespaces/default/pods/web-0', 'update', 'api/v1', 'default', 'pods', 'web-0'],
  ['PATCH /api/v1/namespaces/default/pods/web-0', 'patch', 'api/v1', 'default', 'pods', 'web-0'],
  ['DELETE /api/v1/namespaces/default/pods/web-0', 'delete', 'api/v1', 'default', 'pods', 'web-0'],
  ['DELETE /api/v1/namespaces/default/pods', 'deletecollection', 'api/v1', 'default', 'pods'],
  ['DELETE /api/v1/pods', 'deletecollection', 'api/v1', '', 'pods'],
  ['OPTIONS /api/v1/namespaces/default/pods', '', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/pods/', 'list', 'api/v1', '', 'pods'],
  ['GET /api/v1/namespaces/default/configmaps/kube-root-ca.crt', 'get', 'api/v1', 'default', 'configmaps', 'kube-root-ca.crt'],
  ['GET /api/v1/namespaces/kube-system/secrets', 'list', 'api/v1', 'kube-system', 'secrets'],
  ['POST /api/v1/namespaces/default/bindings', 'create', 'api/v1', 'default', 'bindings'],
  ['GET /api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dweb-0', 'list', 'api/v1', 'default', 'events'],
  ['GET /api/v1/namespaces/default/pods/web-0?watch=true', 'get', 'api/v1', 'default', 'pods', 'web-0'],

  // Watch: ?watch= (any value but false/0, case-insensitive, first value wins) and the /watch/ prefix.
  ['GET /api/v1/namespaces/default/pods?watch=true', 'watch', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods?watch=1', 'watch', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods?watch=True', 'watch', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods?watch=yes', 'watch', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods?watch=', 'watch', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods?watch=false', 'list', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods?watch=FALSE', 'list', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods?watch=0', 'list', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods?watch=false&watch=true', 'list', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods?watch=1&watch=0', 'watch', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/pods?watch=1&resourceVersion=100&allowWatchBookmarks=true', 'watch', 'api/v1', '', 'pods'],
  ['GET /api/v1/watch/pods', 'watch', 'api/v1', '', 'pods'],
  ['GET /api/v1/watch/namespaces/default/pods', 'watch', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/watch/namespaces/default/pods/web-0', 'watch', 'api/v1', 'default', 'pods', 'web-0'],
  ['GET /api/v1/watch/namespaces', 'watch', 'api/v1', '', 'namespaces'],
  ['GET /api/v1/watch/namespaces/default', 'watch', 'api/v1', 'default', 'namespaces', 'default'],
  ['POST /api/v1/watch/pods', 'watch', 'api/v1', '', 'pods'],
  ['GET /apis/apps/v1/watch/namespaces/default/deployments', 'watch', 'apis/apps/v1', 'default', 'deployments'],
  ['GET /api/v1/watch/namespaces/default/pods/web-0/status', 'watch', 'api/v1', 'default', 'pods', 'web-0', 'status'],

  // proxy as a verb (path prefix) takes no subresource; proxy as a subresource is a connect.
  ['GET /api/v1/proxy/namespaces/default/pods/web-0', 'proxy', 'api/v1', 'default', 'pods', 'web-0'],
  ['GET /api/v1/proxy/namespaces/default/pods/web-0/healthz', 'proxy', 'api/v1', 'default', 'pods', 'web-0'],
  ['POST /api/v1/proxy/namespaces/default/services/web/api/items', 'proxy', 'api/v1', 'default', 'services', 'web'],
  ['GET /api/v1/proxy/nodes/node-1/metrics', 'proxy', 'api/v1', '', 'nodes', 'node-1'],
  ['GET /api/v1/namespaces/default/pods/web-0/proxy', CONNECT, 'api/v1', 'default', 'pods', 'web-0', 'proxy'],
  ['GET /api/v1/namespaces/default/services/https:web:443/proxy/healthz', CONNECT, 'api/v1', 'default', 'services', 'https:web:443', 'proxy'],
  ['DELETE /api/v1/nodes/node-1/proxy/metrics', CONNECT, 'api/v1', '', 'nodes', 'node-1', 'proxy'],

  // Subresources.
  ['GET /api/v1/namespaces/default/pods/web-0/log', 'get', 'api/v1', 'default', 'pods', 'web-0', 'log'],
  ['GET /api/v1/namespaces/default/pods/web-0/log?follow=true&container=app', 'get', 'api/v1', 'default', 'pods', 'web-0', 'log'],
  ['GET /api/v1/namespaces/default/pods/web-0/log/extra/parts', 'get', 'api/v1', 'default', 'pods', 'web-0', 'log'],
  ['GET /api/v1/namespaces/default/pods/web-0/exec?command=sh&stdin=true&tty=true', CONNECT, 'api/v1', 'default', 'pods', 'web-0', 'exec'],
  ['POST /api/v1/namespaces/default/pods/web-0/exec?command=ls', 'create', 'api/v1', 'default', 'pods', 'web-0', 'exec'],
  ['GET /api/v1/namespaces/default/pods/web-0/attach?stdout=true', CONNECT, 'api/v1', 'default', 'pods', 'web-0', 'attach'],
  ['POST /api/v1/namespaces/default/pods/web-0/attach', 'create', 'api/v1', 'default', 'pods', 'web-0', 'attach'],
  ['GET /api/v1/namespaces/default/pods/web-0/portforward?ports=8080', CONNECT, 'api/v1', 'default', 'pods', 'web-0', 'portforward'],
  ['POST /api/v1/namespaces/default/pods/web-0/portforward', 'create', 'api/v1', 'default', 'pods', 'web-0', 'portforward'],
  ['POST /api/v1/namespaces/default/pods/web-0/eviction', 'create', 'api/v1', 'default', 'pods', 'web-0', 'eviction'],
  ['POST /api/v1/namespaces/default/pods/web-0/binding', 'create', 'api/v1', 'default', 'pods', 'web-0', 'binding'],
  ['GET /api/v1/namespaces/default/pods/web-0/status', 'get', 'api/v1', 'default', 'pods', 'web-0', 'status'],
  ['PUT /api/v1/namespaces/default/pods/web-0/status', 'update', 'api/v1', 'default', 'pods', 'web-0', 'status'],
  ['PATCH /api/v1/namespaces/default/pods/web-0/status', 'patch', 'api/v1', 'default', 'pods', 'web-0', 'status'],
  ['PATCH /api/v1/namespaces/default/pods/web-0/ephemeralcontainers', 'patch', 'api/v1', 'default', 'pods', 'web-0', 'ephemeralcontainers'],
  ['POST /api/v1/namespaces/ci/serviceaccounts/builder/token', 'create', 'api/v1', 'ci', 'serviceaccounts', 'builder', 'token'],
  ['GET /apis/apps/v1/namespaces/default/deployments/web/scale', 'get', 'apis/apps/v1', 'default', 'deployments', 'web', 'scale'],
  ['PUT /apis/apps/v1/namespaces/default/deployments/web/scale', 'update', 'apis/apps/v1', 'default', 'deployments', 'web', 'scale'],
  ['PATCH /apis/apps/v1/namespaces/default/statefulsets/db/scale', 'patch', 'apis/apps/v1', 'default', 'statefulsets', 'db', 'scale'],

  // Namespaces themselves: status and finalize are namespace subresources, anything else a resource in it.
  ['GET /api/v1/namespaces', 'list', 'api/v1', '', 'namespaces'],
  ['POST /api/v1/namespaces', 'create', 'api/v1', '', 'namespaces'],
  ['DELETE /api/v1/namespaces', 'deletecollection', 'api/v1', '', 'namespaces'],
  ['GET /api/v1/namespaces/team-a', 'get', 'api/v1', 'team-a', 'namespaces', 'team-a'],
  ['DELETE /api/v1/namespaces/team-a', 'delete', 'api/v1', 'team-a', 'namespaces', 'team-a'],
  ['PATCH /api/v1/namespaces/team-a', 'patch', 'api/v1', 'team-a', 'namespaces', 'team-a'],
  ['GET /api/v1/namespaces/team-a/status', 'get', 'api/v1', 'team-a', 'namespaces', 'team-a', 'status'],
  ['PUT /api/v1/namespaces/team-a/status', 'update', 'api/v1', 'team-a', 'namespaces', 'team-a', 'status'],
  ['PUT /api/v1/namespaces/team-a/finalize', 'update', 'api/v1', 'team-a', 'namespaces', 'team-a', 'finalize'],
  ['GET /api/v1/namespaces/team-a/status/extra', 'get', 'api/v1', 'team-a', 'namespaces', 'team-a', 'status'],
  ['GET /api/v1/namespaces/status', 'get', 'api/v1', 'status', 'namespaces', 'status'],
  ['GET /api/v1/namespaces/status/pods', 'list', 'api/v1', 'status', 'pods'],
  ['GET /api/v1/namespaces/finalize/pods/x', 'get', 'api/v1', 'finalize', 'pods', 'x'],

  // Cluster-scoped resources.
  ['GET /api/v1/nodes', 'list', 'api/v1', '', 'nodes'],
  ['GET /api/v1/nodes/node-1', 'get', 'api/v1', '', 'nodes', 'node-1'],
  ['PATCH /api/v1/nodes/node-1/status', 'patch', 'api/v1', '', 'nodes', 'node-1', 'status'],
  ['DELETE /api/v1/persistentvolumes/pv-1', 'delete', 'api/v1', '', 'persistentvolumes', 'pv-1'],
  ['GET /apis/storage.k8s.io/v1/storageclasses', 'list', 'apis/storage.k8s.io/v1', '', 'storageclasses'],
  [
    'GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com',
    'get',
    'apis/apiextensions.k8s.io/v1',
    '',
    'customresourcedefinitions',
    'widgets.example.com',
  ],
  [
    'PUT /apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1/approval',
    'update',
    'apis/certificates.k8s.io/v1',
    '',
    'certificatesigningrequests',
    'csr-1',
    'approval',
  ],
  ['POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews', 'create', 'apis/authorization.k8s.io/v1', '', 'selfsubjectaccessreviews'],
  ['POST /apis/authentication.k8s.io/v1/tokenreviews', 'create', 'apis/authentication.k8s.io/v1', '', 'tokenreviews'],

  // Groups: apps, batch, rbac, networking, coordination, beta versions.
  ['GET /apis/apps/v1/deployments', 'list', 'apis/apps/v1', '', 'deployments'],
  ['GET /apis/apps/v1/namespaces/default/deployments', 'list', 'apis/apps/v1', 'default', 'deployments'],
  ['GET /apis/apps/v1/namespaces/default/deployments/web', 'get', 'apis/apps/v1', 'default', 'deployments', 'web'],
  ['DELETE /apis/apps/v1/namespaces/default/deployments', 'deletecollection', 'apis/apps/v1', 'default', 'deployments'],
  ['PATCH /apis/apps/v1/namespaces/default/daemonsets/agent', 'patch', 'apis/apps/v1', 'default', 'daemonsets', 'agent'],
  ['GET /apis/batch/v1/namespaces/ci/jobs/build-1', 'get', 'apis/batch/v1', 'ci', 'jobs', 'build-1'],
  ['POST /apis/batch/v1/namespaces/ci/cronjobs', 'create', 'apis/batch/v1', 'ci', 'cronjobs'],
  ['GET /apis/rbac.authorization.k8s.io/v1/clusterroles', 'list', 'apis/rbac.authorization.k8s.io/v1', '', 'clusterroles'],
  [
    'GET /apis/rbac.authorization.k8s.io/v1/clusterroles/system:controller:deployment-controller',
    'get',
    'apis/rbac.authorization.k8s.io/v1',
    '',
    'clusterroles',
    'system:controller:deployment-controller',
  ],
  ['POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings', 'create', 'apis/rbac.authorization.k8s.io/v1', '', 'clusterrolebindings'],
  ['POST /apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings', 'create', 'apis/rbac.authorization.k8s.io/v1', 'team-a', 'rolebindings'],
  ['DELETE /apis/rbac.authorization.k8s.io/v1/namespaces/team-a/roles/reader', 'delete', 'apis/rbac.authorization.k8s.io/v1', 'team-a', 'roles', 'reader'],
  ['GET /apis/networking.k8s.io/v1/namespaces/default/ingresses', 'list', 'apis/networking.k8s.io/v1', 'default', 'ingresses'],
  [
    'PUT /apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler',
    'update',
    'apis/coordination.k8s.io/v1',
    'kube-system',
    'leases',
    'kube-scheduler',
  ],
  ['GET /apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas', 'list', 'apis/flowcontrol.apiserver.k8s.io/v1beta3', '', 'flowschemas'],

  // Custom resources.
  ['GET /apis/example.com/v1alpha1/namespaces/default/widgets', 'list', 'apis/example.com/v1alpha1', 'default', 'widgets'],
  ['GET /apis/example.com/v1alpha1/widgets?watch=true', 'watch', 'apis/example.com/v1alpha1', '', 'widgets'],
  ['POST /apis/example.com/v1alpha1/namespaces/default/widgets', 'create', 'apis/example.com/v1alpha1', 'default', 'widgets'],
  ['GET /apis/example.com/v1alpha1/namespaces/default/widgets/w1/status', 'get', 'apis/example.com/v1alpha1', 'default', 'widgets', 'w1', 'status'],
  ['PATCH /apis/example.com/v1alpha1/namespaces/default/widgets/w1/scale', 'patch', 'apis/example.com/v1alpha1', 'default', 'widgets', 'w1', 'scale'],
  ['GET /apis/example.com/v1/clusterwidgets/cw', 'get', 'apis/example.com/v1', '', 'clusterwidgets', 'cw'],
  ['GET /apis/example.com/v1/namespaces/default/widgets/exec', 'get', 'apis/example.com/v1', 'default', 'widgets', 'exec'],
  ['GET /apis/example.com/v1/namespaces/default/widgets/proxy', 'get', 'apis/example.com/v1', 'default', 'widgets', 'proxy'],

  // fieldSelector=metadata.name=… names the object (fields.ParseSelector + RequiresExactMatch).
  ['GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-0', 'list', 'api/v1', 'default', 'pods', 'web-0'],
  ['GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3D%3Dweb-0', 'list', 'api/v1', 'default', 'pods', 'web-0'],
  ['GET /api/v1/namespaces/default/pods?watch=1&fieldSelector=metadata.name%3Dweb-0', 'watch', 'api/v1', 'default', 'pods', 'web-0'],
  ['GET /api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3Dn1,metadata.name%3Dweb-0', 'list', 'api/v1', 'default', 'pods', 'web-0'],
  ['GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name!%3Dweb-0', 'list', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces?fieldSelector=metadata.name%3Dstaging', 'list', 'api/v1', '', 'namespaces', 'staging'],
  ['GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3D..', 'list', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Da%25b', 'list', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Da%5C%2Cb', 'list', 'api/v1', 'default', 'pods', 'a,b'],
  ['GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Db,metadata.name%3Da', 'list', 'api/v1', 'default', 'pods', 'a'],
  ['GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Da%3Db', 'list', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods?fieldSelector=%20metadata.name%3Dweb-0', 'list', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-0,garbage', 'list', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/namespaces/default/pods/web-0?fieldSelector=metadata.name%3Dother', 'get', 'api/v1', 'default', 'pods', 'web-0'],
  ['DELETE /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-0', 'deletecollection', 'api/v1', 'default', 'pods'],
  ['GET /api/v1/watch/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-0', 'watch', 'api/v1', 'default', 'pods'],

  // The API server decodes the path before it parses it.
  ['GET /api/v1/namespaces/kube-%73ystem/secrets', 'list', 'api/v1', 'kube-system', 'secrets'],
  [
    'GET /apis/rbac.authorization.k8s.io/v1/clusterroles/system%3Anode%3Aworker',
    'get',
    'apis/rbac.authorization.k8s.io/v1',
    '',
    'clusterroles',
    'system:node:worker',
  ],
  ['GET /api/v1/namespaces/default/pods/%77eb-0/exec', CONNECT, 'api/v1', 'default', 'pods', 'web-0', 'exec'],
  ['GET /api/%761/namespaces/default/%70ods', 'list', 'api/v1', 'default', 'pods'],
  ['GET /ap%69/v1/pods', 'list', 'api/v1', '', 'pods'],

  // Non-resource URLs: the verb is the lower-cased method.
  ['GET /', 'get', '-'],
  ['GET /api', 'get', '-'],
  ['GET /api/v1', 'get', '-'],
  ['GET /api/v1/', 'get', '-'],
  ['GET /apis', 'get', '-'],
  ['GET /apis/apps', 'get', '-'],
  ['GET /apis/apps/v1', 'get', '-apis'],
  ['GET /apis/rbac.authorization.k8s.io/v1', 'get', '-apis'],
  ['GET /version', 'get', '-'],
  ['GET /healthz', 'get', '-'],
  ['HEAD /healthz', 'head', '-'],
  ['GET /healthz/etcd', 'get', '-'],
  ['GET /livez?verbose', 'get', '-'],
  ['GET /readyz', 'get', '-'],
  ['GET /openapi/v2', 'get', '-'],
  ['GET /openapi/v3/apis/apps/v1', 'get', '-'],
  ['GET /metrics', 'get', '-'],
  ['POST /logs/kube-apiserver.log', 'post', '-'],
  ['GET /.well-known/openid-configuration', 'get', '-'],
  ['GET /apiz/v1/pods', 'get', '-'],
  ['GET /heal%74hz', 'get', '-'],
];

function parse(request: string): KubeAttributes {
  const space = request.indexOf(' ');
  const method = request.slice(0, space);
  const target = request.slice(space + 1);
  const q = target.indexOf('?');
  return parseKubeRequest(method, q === -1 ? target : target.slice(0, q), new URLSearchParams(q === -1 ? '' : target.slice(q + 1)));
}

function expected(row: Row): Record<string, unknown> {
  const [, verb, gv, namespace = '', resource = '', name = '', subresource = ''] = row;
  if (gv.startsWith('-')) {
    return { isResourceRequest: false, verb, apiPrefix: gv.slice(1), apiGroup: '', apiVersion: '', namespace: '', resource: '', subresource: '', name: '' };
  }
  const parts = gv.split('/');
  const [apiPrefix = '', apiGroup, apiVersion] = parts.length === 2 ? [parts[0], '', parts[1]] : parts;
  return { isResourceRequest: true, verb, apiPrefix, apiGroup, apiVersion, namespace, resource, subresource, name };
}

function actual(info: KubeAttributes): Record<string, unknown> {
  const { isResourceRequest, verb, apiPrefix, apiGroup, apiVersion, namespace, resource, subresource, name } = info;
  return { isResourceRequest, verb, apiPrefix, apiGroup, apiVersion, namespace, resource, subresource, name };
}

describe('parseKubeRequest agrees with requestinfo.go', () => {
  test('the reference table is big enough and has no duplicate', () => {
    assert.ok(REFERENCE.length >= 80, `${REFERENCE.length} rows`);
    assert.equal(new Set(REFERENCE.map((r) => r[0])).size, REFERENCE.length);
  });

  for (const row of REFERENCE) {
    const suffix = [row[3], row[4], row[5], row[6]].filter((s) => s).join(' ');
    test(`${row[0]} → ${row[1] || '""'}${suffix ? ` ${suffix}` : ''}`, () => {
      assert.deepEqual(actual(parse(row[0])), expected(row));
    });
  }

  test('path is the decoded request path, without the query', () => {
    assert.equal(parse('GET /api/v1/namespaces/kube-%73ystem/pods?watch=1').path, '/api/v1/namespaces/kube-system/pods');
    assert.equal(parse('GET /heal%74hz?verbose').path, '/healthz');
    assert.equal(parse('GET /api/v1/pods/').path, '/api/v1/pods/');
  });

  test('a special verb with nothing after it is refused', () => {
    for (const r of ['GET /api/v1/watch', 'GET /api/v1/proxy', 'GET /apis/apps/v1/watch', 'GET /api/v1/watch/']) {
      assert.throws(() => parse(r), RequestPathError, r);
    }
  });

  test('a malformed percent-encoding is refused', () => {
    for (const r of ['GET /api/v1/pods/%zz', 'GET /api/v1/pods/%', 'GET /api/v1/namespaces/%ff%fe/pods']) {
      assert.throws(() => parse(r), RequestPathError, r);
    }
  });
});

describe('selectors are reported only where the API server honours them', () => {
  const SELECTOR_CASES: readonly [request: string, labelSelector: string, fieldSelector: string][] = [
    ['GET /api/v1/namespaces/default/pods?labelSelector=app%3Dweb%2Ctier+in+(fe)', 'app=web,tier in (fe)', ''],
    ['GET /api/v1/pods?watch=1&labelSelector=app%3Dweb&fieldSelector=spec.nodeName%3Dn1', 'app=web', 'spec.nodeName=n1'],
    ['DELETE /api/v1/namespaces/default/pods?labelSelector=app%3Dold', 'app=old', ''],
    ['GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-0', '', 'metadata.name=web-0'],
    ['GET /api/v1/namespaces/default/pods/web-0?labelSelector=app%3Dweb', '', ''],
    ['POST /api/v1/namespaces/default/pods?labelSelector=app%3Dweb', '', ''],
    ['GET /api/v1/watch/namespaces/default/pods?labelSelector=app%3Dweb', '', ''],
    ['GET /healthz?labelSelector=app%3Dweb', '', ''],
  ];
  for (const [request, labelSelector, fieldSelector] of SELECTOR_CASES) {
    test(request, () => {
      const info = parse(request);
      assert.deepEqual({ labelSelector: info.labelSelector, fieldSelector: info.fieldSelector }, { labelSelector, fieldSelector });
    });
  }
});

describe('assertCleanPath refuses path tricks', () => {
  const REFUSED: readonly [name: string, path: string][] = [
    ['".." segment', '/api/v1/namespaces/default/pods/../../secrets'],
    ['".." at the end', '/api/v1/namespaces/default/..'],
    ['"." segment', '/api/v1/./namespaces/default/pods'],
    ['"." at the end', '/api/v1/pods/.'],
    ['"//" empty segment', '/api/v1//namespaces/default/pods'],
    ['leading "//"', '//api/v1/pods'],
    ['trailing "//"', '/api/v1/pods//'],
    ['%2f encoded slash', '/api/v1/namespaces/default%2fpods'],
    ['%2F encoded slash', '/api/v1/namespaces/kube-system%2Fsecrets/x'],
    ['%2e%2e encoded dot-dot', '/api/v1/namespaces/default/pods/%2e%2e/%2e%2e/secrets'],
    ['%2E%2E encoded dot-dot', '/api/v1/namespaces/default/%2E%2E/kube-system'],
    ['mixed .%2e', '/api/v1/namespaces/default/.%2e/x'],
    ['%2e single encoded dot', '/api/v1/%2e/pods'],
    ['%2e inside a name', '/api/v1/namespaces/default/configmaps/a%2eb'],
    ['%5c encoded backslash', '/api/v1/namespaces/default/pods/..%5c..%5csecrets'],
    ['%5C encoded backslash', '/api/v1/pods%5C'],
    ['%00 encoded NUL', '/api/v1/namespaces/default/pods/web%00.json'],
    ['raw NUL', '/api/v1/pods/web\u0000'],
    ['raw newline (header injection)', '/api/v1/pods\r\nX-Remote-User: admin'],
    ['raw tab', '/api/v1/pods/\tweb'],
    ['raw DEL', '/api/v1/pods/\u007f'],
    ['raw escape', '/api/v1/pods/\u001b[31m'],
    ['control char in the query', '/api/v1/pods?labelSelector=a\nb'],
    ['backslash', '/api/v1/namespaces\\kube-system/secrets'],
    ['backslash dot-dot', '/api/v1/pods/..\\..\\secrets'],
    ['backslash in the query', '/api/v1/pods?fieldSelector=metadata.name%3Da\\,b'],
    ['no leading slash', 'api/v1/pods'],
    ['empty', ''],
    ['overlong path', `/api/v1/namespaces/default/configmaps/${'a'.repeat(MAX_PATH_BYTES)}`],
    ['overlong query', `/api/v1/pods?labelSelector=${'a'.repeat(MAX_PATH_BYTES)}`],
  ];
  for (const [name, path] of REFUSED) {
    test(`refuses ${name}`, () => {
      assert.throws(() => assertCleanPath(path), RequestPathError);
    });
  }

  const ACCEPTED: readonly [name: string, path: string][] = [
    ['a plain list', '/api/v1/namespaces/default/pods'],
    ['%3A in a label selector query', '/api/v1/pods?labelSelector=app.kubernetes.io%2Fname%3Dweb%2Cenv+in+(prod%3Aeu)'],
    ['":" in a name', '/apis/rbac.authorization.k8s.io/v1/clusterroles/system:controller:deployment-controller'],
    ['%3A-encoded ":" in a name', '/apis/rbac.authorization.k8s.io/v1/clusterroles/system%3Anode%3Aworker'],
    ['a service proxy name with a port', '/api/v1/namespaces/default/services/https:web:443/proxy/'],
    ['dots inside a name', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com'],
    ['a name starting with dots', '/api/v1/namespaces/default/configmaps/..data'],
    ['a trailing slash', '/api/'],
    ['the root', '/'],
    ['exactly the maximum length', `/${'a'.repeat(MAX_PATH_BYTES - 1)}`],
    ['%2f in the query only', '/api/v1/pods?labelSelector=app.kubernetes.io%2fname'],
  ];
  for (const [name, path] of ACCEPTED) {
    test(`accepts ${name}`, () => {
      assert.doesNotThrow(() => assertCleanPath(path));
    });
  }
});

describe('the path grammar: a path is refused, or read and sent in one canonical form', () => {
  const CANONICAL: readonly [raw: string, canonical: string][] = [
    ['/api/v1/namespaces/kube-%73ystem/pods', '/api/v1/namespaces/kube-system/pods'],
    ['/heal%74hz', '/healthz'],
    ['/api/v1/pods/', '/api/v1/pods/'],
    ['/', '/'],
    ['/apis/rbac.authorization.k8s.io/v1/clusterroles/system%3Anode%3Aworker', '/apis/rbac.authorization.k8s.io/v1/clusterroles/system:node:worker'],
    ['/api/v1/namespaces/default/services/https:web:443/proxy/', '/api/v1/namespaces/default/services/https:web:443/proxy/'],
    ['/api/v1/namespaces/default/configmaps/..data', '/api/v1/namespaces/default/configmaps/..data'],
    ['/api/v1/namespaces/default/pods/web-0/proxy/Some/Path', '/api/v1/namespaces/default/pods/web-0/proxy/Some/Path'],
    ['/.well-known/openid-configuration', '/.well-known/openid-configuration'],
    ['/%7Euser', '/~user'],
  ];
  for (const [raw, canonical] of CANONICAL) {
    test(`${raw} is read and sent as ${canonical}`, () => {
      assert.equal(canonicalKubePath(raw), canonical);
      assert.equal(parse(`GET ${raw}`).path, canonical);
      // The canonical form is its own canonical form: parsing what is sent gives what was decided on.
      assert.deepEqual(parse(`GET ${canonical}`), parse(`GET ${raw}`));
    });
  }

  const REFUSED: readonly [name: string, path: string][] = [
    ['a ";" parameter on the resource', '/api/v1/namespaces/default/secrets;x=1'],
    ['an empty ";" parameter', '/api/v1/namespaces/default/secrets;'],
    ['a ";" parameter on a namespace', '/api/v1/namespaces/default;v=1/secrets'],
    ['";" hiding a dot-dot', '/api/v1/namespaces/default/configmaps/..;/secrets'],
    ['an encoded ";" (%3B)', '/api/v1/namespaces/default/secrets%3Bx'],
    ['a double-encoded slash (%252F)', '/api/v1/namespaces/default/configmaps/x%252F..%252F..%252Fsecrets'],
    ['a double-encoded dot (%252e)', '/api/v1/namespaces/default/configmaps/%252e%252e/secrets'],
    ['a fullwidth dot-dot', '/api/v1/namespaces/default/configmaps/%EF%BC%8E%EF%BC%8E/secrets'],
    ['a fullwidth slash', '/api/v1/namespaces/default/configmaps/x%EF%BC%8F..%EF%BC%8Fsecrets'],
    ['a division slash (U+2215)', '/api/v1/namespaces/default/configmaps/x%E2%88%95secrets'],
    ['a one-dot leader (U+2024)', '/api/v1/namespaces/default/configmaps/%E2%80%A4%E2%80%A4/secrets'],
    ['a raw fullwidth dot-dot', '/api/v1/namespaces/default/configmaps/\uff0e\uff0e/secrets'],
    ['an overlong UTF-8 dot (%C0%AE)', '/api/v1/namespaces/default/configmaps/%C0%AE%C0%AE/secrets'],
    ['an overlong UTF-8 slash (%C0%AF)', '/api/v1/namespaces/default/configmaps/x%C0%AFsecrets'],
    ['an encoded space', '/api/v1/namespaces/default/configmaps/a%20b'],
    ['a "+"', '/api/v1/namespaces/default/configmaps/a+b'],
    ['a quote', "/api/v1/namespaces/default/configmaps/a'b"],
    ['an upper-case resource', '/api/v1/namespaces/default/SECRETS'],
    ['an upper-case namespace', '/api/v1/namespaces/Default/secrets'],
    ['an upper-case group', '/apis/Apps/v1/namespaces/default/deployments'],
    ['an upper-case version', '/api/V1/namespaces/default/secrets'],
    ['an upper-case subresource', '/api/v1/namespaces/default/pods/web-0/EXEC'],
    ['an upper-case API prefix', '/API/v1/namespaces/default/secrets'],
    ['an upper-case watch prefix', '/api/v1/WATCH/namespaces/default/secrets'],
    ['an empty segment', '/api/v1//pods'],
    ['a "." segment', '/api/v1/./pods'],
    ['a ".." segment', '/api/v1/pods/../secrets'],
  ];
  for (const [name, path] of REFUSED) {
    test(`refuses ${name}`, () => {
      assert.throws(() => parse(`GET ${path}`), RequestPathError, path);
    });
  }

  test('upper case stays allowed in an object name', () => {
    assert.equal(parse('GET /apis/rbac.authorization.k8s.io/v1/clusterroles/Admin-View').name, 'Admin-View');
  });

  test('a refusal names the segment and the character', () => {
    assert.throws(() => parse('GET /api/v1/namespaces/default/configmaps/x%252Fy'), /segment "x%2Fy" contains "%"/);
    assert.throws(() => parse('GET /api/v1/namespaces/default/secrets;x'), /"secrets;x" carries a ";" parameter/);
  });
});

describe('property: the parser is total and agrees with the reference table', () => {
  const HEX = '0123456789ABCDEF';
  // Characters a path segment may carry percent-encoded without changing what it means.
  const encodeSome = (segment: string, picks: readonly boolean[]): string =>
    segment.includes('%')
      ? segment // already encoded: encoding its digits again would change it
      : [...segment]
          .map((ch, i) => (picks[i % picks.length] === true && /[a-z0-9-]/.test(ch) ? `%${HEX[ch.charCodeAt(0) >> 4]}${HEX[ch.charCodeAt(0) & 15]}` : ch))
          .join('');
  const ignoredQuery = fc.dictionary(
    fc.constantFrom(
      'limit',
      'continue',
      'timeout',
      'pretty',
      'dryRun',
      'fieldManager',
      'propagationPolicy',
      'resourceVersion',
      'allowWatchBookmarks',
      'container',
      'follow',
    ),
    fc.string({ maxLength: 12 }),
    { maxKeys: 4 },
  );

  test('any method, path and query: attributes or a RequestPathError, never another exception', () => {
    const segment = fc.oneof(
      fc.constantFrom(
        'api',
        'apis',
        'v1',
        'apps',
        'namespaces',
        'default',
        'pods',
        'watch',
        'proxy',
        'exec',
        'log',
        'status',
        '..',
        '.',
        '',
        '%2e',
        '%2F',
        '%zz',
        '%',
        '%00',
        '\\',
      ),
      fc.string({ maxLength: 10 }),
      fc.string({ unit: 'binary', maxLength: 6 }),
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'get', 'constructor', 'valueOf', '__proto__'),
          fc.string({ maxLength: 8 }),
        ),
        fc.array(segment, { maxLength: 10 }),
        fc.string({ maxLength: 40 }),
        (method, segments, query) => {
          // As the edge does: the raw target is checked whole, then split at the first "?".
          const target = `/${segments.join('/')}?${query}`;
          try {
            assertCleanPath(target);
            const q = target.indexOf('?');
            const info = parseKubeRequest(method, target.slice(0, q), new URLSearchParams(target.slice(q + 1)));
            assert.equal(typeof info.verb, 'string');
            if (info.isResourceRequest) assert.notEqual(info.resource, '', target);
          } catch (err) {
            if (!(err instanceof RequestPathError)) throw err;
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('every reference request parses the same with unreserved characters percent-encoded and unrelated query parameters added', () => {
    fc.assert(
      fc.property(fc.constantFrom(...REFERENCE), fc.array(fc.boolean(), { minLength: 1, maxLength: 7 }), ignoredQuery, (row, picks, extra) => {
        const [request] = row;
        const space = request.indexOf(' ');
        const method = request.slice(0, space);
        const target = request.slice(space + 1);
        const q = target.indexOf('?');
        const path = q === -1 ? target : target.slice(0, q);
        const query = new URLSearchParams(q === -1 ? '' : target.slice(q + 1));
        for (const [key, value] of Object.entries(extra)) if (!query.has(key)) query.append(key, value);
        const encoded = path
          .split('/')
          .map((s) => encodeSome(s, picks))
          .join('/');
        assertCleanPath(encoded);
        assert.deepEqual(actual(parseKubeRequest(method, encoded, query)), expected(row), `${method} ${encoded}?${query.toString()}`);
      }),
      { numRuns: 2000 },
    );
  });
});
