/**
 * One process, one Nest application, four listeners (edge, approval, audit, observability): every
 * admin route answers on its own listener only, each listener keeps its own 404, the edge's
 * answers all carry an Audit-Id, and what the roles share — the bus, the token verifier, the
 * development issuer, the TLS material, metrics — is one provider in the container.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModulesContainer } from '@nestjs/core';
import { DEV_ISSUER, GATEWAY_TLS, METRICS, PROCESS_BUS, READINESS, TOKEN_VERIFIER } from '../../apps/runtime/src/index.js';
import { edgeRequest } from '../support/gateway-https.js';
import { Role, startTestProcess, testConfig, type RunningProcess } from '../support/nest-process.js';

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: listeners, version: "l1" }
rules:
  - id: read
    match: { verbs: [get] }
    effect: allow
`;

type Where = 'edge' | 'approval' | 'audit' | 'observability';
const LISTENERS: readonly Where[] = ['edge', 'approval', 'audit', 'observability'];

describe('admin routes, each on its own listener', { timeout: 60_000 }, () => {
  let proc: RunningProcess;
  const dir = mkdtempSync(join(tmpdir(), 'admin-listeners-'));

  before(async () => {
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    const listen = { host: '127.0.0.1', port: 0 };
    proc = await startTestProcess({
      config: testConfig(
        {
          edge: { listen, admin: { groups: ['admins'] } },
          approval: { listen },
          audit: { listen, auditorGroups: ['auditors'] },
          observability: { listen },
          identity: { devIssuer: { enabled: true, clients: [{ id: 'ops', secret: 'ops-secret-123', groups: ['admins'] }] } },
          policy: { file: join(dir, 'policy.yaml') },
          sandbox: { enabled: 'never' },
        },
        dir,
      ),
      roles: [Role.Policy, Role.Approval, Role.Audit, Role.Edge],
    });
  });
  after(() => proc.close());

  const call = async (
    where: Where,
    method: string,
    path: string,
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> => {
    const port = proc.port(where);
    assert.ok(port !== undefined, `${where} listener open`);
    if (where === 'observability') {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
      return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
    }
    return edgeRequest(`https://127.0.0.1:${port}${path}`, { method, ca: proc.caPem ?? '' });
  };

  // route → the status on its own listener; every other listener answers its own 404 (405 for a
  // non-GET on the observability listener, which refuses every other method).
  const routes: { method: string; path: string; on: Where; status: number }[] = [
    { method: 'POST', path: '/admin/policy/explain', on: 'edge', status: 401 },
    { method: 'GET', path: '/oidc/dev/jwks.json', on: 'edge', status: 200 },
    { method: 'GET', path: '/oidc/dev/.well-known/openid-configuration', on: 'edge', status: 200 },
    { method: 'GET', path: '/approvals', on: 'approval', status: 401 },
    { method: 'GET', path: '/approvals/01a25277-8728-71cc-9d64-a39f4b7369f8', on: 'approval', status: 401 },
    { method: 'POST', path: '/slack/interactions', on: 'approval', status: 404 /* Slack is off: slack_disabled */ },
    { method: 'GET', path: '/v1/audit/replay/01a25277-8728-71cc-9d64-a39f4b7369f8', on: 'audit', status: 401 },
    { method: 'GET', path: '/metrics', on: 'observability', status: 200 },
  ];

  test('every route answers on its own listener and nowhere else', async () => {
    for (const r of routes) {
      for (const where of LISTENERS) {
        const res = await call(where, r.method, r.path);
        const name = `${r.method} ${r.path} on the ${where} listener`;
        if (where === r.on) {
          assert.equal(res.status, r.status, `${name}: ${res.body}`);
          if (r.path === '/slack/interactions') assert.match(res.body, /slack_disabled/, name);
          continue;
        }
        const refused = where === 'observability' && r.method !== 'GET' ? 405 : 404;
        assert.equal(res.status, refused, `${name}: ${res.body}`);
        if (where === 'edge') assert.match(res.body, /^portcullis: not found\. Kubernetes connections are served under \/k8s\/<connection>\//, name);
        if (where === 'approval') assert.match(res.body, /"routes: POST \/slack\/interactions, GET \/approvals/, name);
        if (where === 'audit') assert.match(res.body, /GET \/v1\/audit\/replay\/<session id or Audit-Id>/, name);
      }
    }
  });

  test('health on every listener; readiness on the edge (text) and the observability listener (the checks)', async () => {
    for (const where of LISTENERS) assert.equal((await call(where, 'GET', '/healthz')).status, 200, where);
    const edge = await call('edge', 'GET', '/readyz');
    assert.deepEqual([edge.status, edge.body], [200, 'ok']);
    const ready = await call('observability', 'GET', '/readyz');
    assert.equal(ready.status, 200, ready.body);
    assert.deepEqual(JSON.parse(ready.body), { ready: true, checks: { bus: 'ok' } });
    assert.equal((await call('approval', 'GET', '/readyz')).status, 404);
  });

  test('every answer on the edge listener carries an Audit-Id; admin JSON is never cached', async () => {
    for (const path of ['/healthz', '/readyz', '/nope', '/oidc/dev/jwks.json', '/admin/policy/explain']) {
      const res = await call('edge', 'GET', path);
      assert.match(String(res.headers['audit-id']), /^[0-9a-f-]{36}$/, `${path} (${res.status})`);
    }
    for (const [where, path] of [
      ['edge', '/oidc/dev/jwks.json'],
      ['approval', '/approvals'],
      ['audit', '/v1/audit/replay/x'],
    ] as const) {
      assert.equal((await call(where, 'GET', path)).headers['cache-control'], 'no-store', `${where} ${path}`);
    }
  });

  test('what the roles share is one provider in the container', () => {
    const modules = proc.app.get(ModulesContainer);
    for (const [name, token] of Object.entries({ PROCESS_BUS, TOKEN_VERIFIER, DEV_ISSUER, GATEWAY_TLS, METRICS, READINESS })) {
      const holders = [...modules.values()].filter((m) => m.providers.has(token));
      assert.equal(holders.length, 1, `${name} is provided by ${holders.length} modules`);
    }
  });
});
