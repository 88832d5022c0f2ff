/**
 * The edge authorises exactly the request the upstream serves. The upstream here is the sandbox
 * in its lenient mode: it reads paths as a lenient proxy or server in front of an API server
 * might (`;params` dropped, decoded until stable, look-alikes folded, dot segments resolved), so
 * `configmaps/x%252F..%252F..%252Fsecrets` is a SecretList to it. Under a policy that denies
 * Secrets, every such path is a 400 Status before anything is decided and nothing reaches the
 * upstream; every path that passes is sent in its canonical form, which parses — for the
 * upstream, even a lenient one — to exactly the attributes the decision event recorded.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request as httpsRequest } from 'node:https';
import fc from 'fast-check';
import { lenientPath, startKubeApiServer, type KubeApiServer } from '@portcullis/kube-sandbox';
import { parseKubeRequest } from '@portcullis/kube';
import type { KubeAttributes } from '@portcullis/contracts';
import { edgeRequest } from '../support/gateway-https.js';
import { startTestEdge, type TestEdge } from '../support/kube-edge.js';

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: path-grammar, version: "p1" }
rules:
  - id: no-secrets
    match: { resources: [secrets] }
    effect: deny
    message: no secrets through the gateway
  - id: bots
    match: { groups: [bots] }
    effect: allow
`;

const SECRETS = '/api/v1/namespaces/default/secrets';

/** Paths a lenient upstream reads as the Secrets of default (each checked against the fixture directly). */
const TO_SECRETS: readonly [name: string, path: string][] = [
  ['";params" on the resource', '/api/v1/namespaces/default/secrets;x=1'],
  ['";" alone', '/api/v1/namespaces/default/secrets;'],
  ['double-encoded slash and dots (%252F)', '/api/v1/namespaces/default/configmaps/x%252F..%252F..%252Fsecrets'],
  ['double-encoded dots (%252e)', '/api/v1/namespaces/default/configmaps/%252e%252e/secrets'],
  ['fullwidth dot-dot (．．)', '/api/v1/namespaces/default/configmaps/%EF%BC%8E%EF%BC%8E/secrets'],
  ['fullwidth slash (／)', '/api/v1/namespaces/default/configmaps/x%EF%BC%8F..%EF%BC%8F..%EF%BC%8Fsecrets'],
  ['one-dot leader and fullwidth dot (․．)', '/api/v1/namespaces/default/configmaps/%E2%80%A4%EF%BC%8E/secrets'],
  ['";" hiding a dot-dot', '/api/v1/namespaces/default/configmaps/..;/secrets'],
];

/** The fields the policy reads, as a plain object. */
function fields(k: KubeAttributes | undefined): Record<string, unknown> {
  if (k === undefined) return {};
  const { isResourceRequest, verb, apiPrefix, apiGroup, apiVersion, namespace, resource, subresource, name, path, labelSelector, fieldSelector } = k;
  return { isResourceRequest, verb, apiPrefix, apiGroup, apiVersion, namespace, resource, subresource, name, path, labelSelector, fieldSelector };
}

/** A GET straight to the fixture with its own token (no edge), the raw path sent as written. */
function direct(fixture: KubeApiServer, path: string): Promise<{ status: number; body: string }> {
  const u = new URL(fixture.url);
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ hostname: u.hostname, port: u.port, path, ca: fixture.caPem, headers: { authorization: `Bearer ${fixture.token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the edge forwards exactly the path it authorised', { timeout: 240_000 }, () => {
  let fixture: KubeApiServer;
  let edge: TestEdge;
  const get = (path: string) => edgeRequest(`${edge.url}/k8s/k${path}`, { ca: edge.ca, headers: { authorization: `Bearer ${edge.token}` } });
  /** request.received: the attributes recorded with the decision (both are acknowledged together before anything is forwarded). */
  const recordedFor = (auditId: string) =>
    edge.log.appended.find((e) => e.correlationId === auditId && e.payload.case === 'requestReceived')?.payload.value as
      { attributes?: { kube?: KubeAttributes } } | undefined;
  const decided = (auditId: string): boolean => edge.log.appended.some((e) => e.correlationId === auditId && e.payload.case === 'requestDecided');

  before(async () => {
    fixture = await startKubeApiServer({ requestLog: { max: 10_000 }, lenientPaths: true });
    edge = await startTestEdge({ connections: { k: fixture }, policy: POLICY });
  });

  after(async () => {
    await edge?.close();
    await fixture?.close();
  });

  test('the controls: Secrets are denied, ConfigMaps allowed', async () => {
    const denied = await get(SECRETS);
    assert.equal(denied.status, 403, denied.body);
    const allowed = await get('/api/v1/namespaces/default/configmaps');
    assert.equal(allowed.status, 200, allowed.body);
  });

  for (const [name, path] of TO_SECRETS) {
    test(`${name}: the lenient upstream serves it as Secrets; the edge refuses it with a 400 Status`, async () => {
      const straight = await direct(fixture, path);
      assert.equal(straight.status, 200, `the fixture should read ${path} as ${SECRETS}: ${straight.body.slice(0, 200)}`);
      assert.match(straight.body, /"kind":"SecretList"/);
      const before = fixture.requests.length;
      const res = await get(path);
      assert.equal(res.status, 400, `${path} → ${res.status} ${res.body.slice(0, 300)}`);
      const status = JSON.parse(res.body) as { kind: string; reason: string; message: string };
      assert.equal(status.kind, 'Status');
      assert.equal(status.reason, 'BadRequest');
      assert.doesNotMatch(res.body, /SecretList/);
      assert.equal(fixture.requests.length, before, 'nothing reaches the upstream');
      assert.equal(decided(String(res.headers['audit-id'])), false, 'nothing is decided');
    });
  }

  test('an allowed path goes upstream in its canonical form, the query as written; the decision records that path', async () => {
    const before = fixture.requests.length;
    const query = 'labelSelector=app%3Dweb%2Ctier+in+(fe)&limit=5&fieldSelector=metadata.name%21%3Dx';
    const res = await get(`/api/v1/namespaces/kube-%73ystem/config%6Daps?${query}`);
    assert.equal(res.status, 200, res.body);
    const sent = fixture.requests.slice(before);
    assert.deepEqual(
      sent.map((r) => r.path),
      [`/api/v1/namespaces/kube-system/configmaps?${query}`],
    );
    const recorded = recordedFor(String(res.headers['audit-id']));
    assert.equal(recorded?.attributes?.kube?.path, '/api/v1/namespaces/kube-system/configmaps');
    assert.equal(recorded?.attributes?.kube?.namespace, 'kube-system');
    assert.equal(recorded?.attributes?.kube?.labelSelector, 'app=web,tier in (fe)');
  });

  test('property: a generated path is refused, or the upstream receives a path that parses to exactly the attributes decided on', async () => {
    const segment = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.constantFrom('api', 'apis', 'v1', 'apps', 'namespaces', 'default', 'kube-system', 'configmaps', 'secrets', 'pods', 'status', 'web-0'),
      },
      {
        weight: 4,
        arbitrary: fc.constantFrom(
          '..',
          '.',
          '',
          '%2e%2e',
          '%2F',
          '%252F',
          '%252e%252e',
          '%EF%BC%8E%EF%BC%8E',
          '%EF%BC%8F',
          '%C0%AE%C0%AE',
          'secrets;x',
          '..;',
          '%73ecrets',
          'Secrets',
          '%3B',
          '%25',
          'a%20b',
          'x@y:z',
          '~',
        ),
      },
      { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9._~:@;%-]{1,8}$/) },
    );
    const query = fc.constantFrom('', '?watch=0', '?labelSelector=app%3Dweb', '?fieldSelector=metadata.name%3Dx&limit=1');
    let refused = 0;
    let served = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(segment, { minLength: 1, maxLength: 7 }), query, async (segments, q) => {
        const path = `/${segments.join('/')}`;
        const before = fixture.requests.length;
        const res = await get(`${path}${q}`);
        const sent = fixture.requests.slice(before);
        if (res.status === 400) {
          refused++;
          assert.equal(sent.length, 0, `${path}: refused, yet forwarded`);
          return;
        }
        const auditId = String(res.headers['audit-id']);
        const recorded = recordedFor(auditId);
        assert.ok(recorded?.attributes?.kube && decided(auditId), `${path} → ${res.status}: no decision recorded`);
        if (res.status === 403) {
          assert.equal(sent.length, 0, `${path}: denied, yet forwarded`);
          assert.equal(recorded.attributes.kube.resource, 'secrets', `${path}: denied, but not as secrets`);
          return;
        }
        served++;
        assert.equal(sent.length, 1, `${path} → ${res.status}: ${sent.length} upstream requests`);
        const target = sent[0]!.path;
        const at = target.indexOf('?');
        const received = at === -1 ? target : target.slice(0, at);
        assert.equal(at === -1 ? '' : target.slice(at), q, `${path}: the query changed on the way`);
        // What the upstream parses is what the policy decided on…
        assert.deepEqual(fields(parseKubeRequest('GET', received, new URLSearchParams(q.slice(1)))), fields(recorded.attributes.kube), path);
        // …and even a lenient upstream reads that path as itself.
        assert.equal(
          lenientPath(received),
          received.length > 1 ? received.replace(/\/$/, '') : '/',
          `${path}: the lenient upstream reads ${received} differently`,
        );
        assert.notEqual(recorded.attributes.kube.resource === 'secrets' ? res.status : 0, 200, `${path}: Secrets served`);
      }),
      { numRuns: 250 },
    );
    assert.ok(refused > 20 && served > 20, `a mix of refused (${refused}) and served (${served}) paths`);
  });
});
