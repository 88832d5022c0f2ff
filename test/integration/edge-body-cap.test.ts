/**
 * `edge.maxRequestBodyBytes` on every request path, against the API-server fixture (which records
 * complete requests and, separately, requests whose body was cut off): a declared body over the cap
 * is refused before anything is forwarded; a chunked body is counted as it streams and, at the cap,
 * the upstream request is aborted (the upstream never sees a complete body) and the client gets a
 * 413 Status; a body exactly at the cap goes through; a held request's body is capped while it is
 * buffered. Each row checks the answer, what the upstream received and the audit event.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { startKubeApiServer, type KubeApiServer } from '@portcullis/kube-sandbox';
import {
  ApprovalGateState,
  create,
  ApprovalGateReplySchema,
  decodeApprovalGateRequest,
  encodeApprovalGateReply,
  QueueGroups,
  Subjects,
  newEventId,
  type EventEnvelope,
} from '@portcullis/contracts';
import { startTestEdge, type TestEdge } from '../support/kube-edge.js';
import { eventually } from '../support/eventually.js';

const CAP = 64 * 1024;
const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: body-cap, version: "b1" }
rules:
  - id: held-writes
    match: { verbs: [create], namespaces: [held] }
    effect: require_approval
    approval: { approverGroups: [sre], wait: 5s }
  - id: bots
    match: { groups: [bots] }
    effect: allow
`;

/** A ConfigMap manifest of exactly `size` bytes. */
function configMapOf(name: string, namespace: string, size: number): Buffer {
  const base = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { pad: '' } });
  assert.ok(size >= base.length, `a ConfigMap needs at least ${base.length} bytes`);
  return Buffer.from(base.replace('"pad":""', `"pad":"${'x'.repeat(size - base.length)}"`));
}

interface Answer {
  readonly status: number;
  readonly auditId: string;
  readonly body: string;
}

/** POSTs `body` to the edge, with its Content-Length or chunked in 16 KiB pieces (no Content-Length). */
function post(edge: TestEdge, path: string, body: Buffer, framing: 'content-length' | 'chunked'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${edge.token}`, 'content-type': 'application/json' };
    if (framing === 'content-length') headers['content-length'] = String(body.length);
    const req = request(`${edge.url}${path}`, { method: 'POST', ca: edge.ca, headers, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, auditId: String(res.headers['audit-id'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to POST ${path} within 20s`)));
    req.on('error', reject);
    if (framing === 'content-length') {
      req.end(body);
      return;
    }
    for (let at = 0; at < body.length; at += 16 * 1024) req.write(body.subarray(at, at + 16 * 1024));
    req.end();
  });
}

describe('edge.maxRequestBodyBytes on forwarded and held requests', { timeout: 90_000 }, () => {
  let fixture: KubeApiServer;
  let edge: TestEdge;
  let gateAsked = 0;

  before(async () => {
    fixture = await startKubeApiServer({ requestLog: { max: 10_000 } });
    edge = await startTestEdge({ connections: { k: fixture }, policy: POLICY, maxRequestBodyBytes: CAP, approvals: true });
    // The approval role, reduced to "granted": a held request whose body fits is forwarded once.
    edge.bus.serve(Subjects.approvalGate(), QueueGroups.approval, (msg) => {
      gateAsked++;
      decodeApprovalGateRequest(msg.data);
      return encodeApprovalGateReply(create(ApprovalGateReplySchema, { approvalId: newEventId(), state: ApprovalGateState.Admitted, decidedBy: 'sre-test' }));
    });
  });

  after(async () => {
    await edge.close();
    await fixture.close();
  });

  const eventsOf = (auditId: string, type: string): Promise<EventEnvelope> =>
    eventually(`${type} of ${auditId}`, () => edge.log.appended.find((e) => e.correlationId === auditId && e.type === type));

  const rows: {
    name: string;
    namespace: string;
    size: number;
    framing: 'content-length' | 'chunked';
    status: number;
    /** What the upstream must have seen of this request. */
    upstream: 'nothing' | 'aborted' | 'complete';
    /** The audit event that says what happened, and the error it must carry. */
    event: 'request.rejected' | 'request.completed';
    error?: RegExp;
    gate: number;
  }[] = [
    {
      name: 'declared Content-Length over the cap',
      namespace: 'default',
      size: CAP + 1,
      framing: 'content-length',
      status: 413,
      upstream: 'nothing',
      event: 'request.rejected',
      gate: 0,
    },
    {
      name: 'chunked, one byte over the cap',
      namespace: 'default',
      size: CAP + 1,
      framing: 'chunked',
      status: 413,
      upstream: 'aborted',
      event: 'request.completed',
      error: /exceeds edge\.maxRequestBodyBytes \(65536 bytes\); the upstream request was aborted/,
      gate: 0,
    },
    {
      name: 'chunked, four times the cap',
      namespace: 'default',
      size: 4 * CAP,
      framing: 'chunked',
      status: 413,
      upstream: 'aborted',
      event: 'request.completed',
      error: /exceeds edge\.maxRequestBodyBytes/,
      gate: 0,
    },
    {
      name: 'chunked, exactly at the cap (allowed)',
      namespace: 'default',
      size: CAP,
      framing: 'chunked',
      status: 201,
      upstream: 'complete',
      event: 'request.completed',
      gate: 0,
    },
    {
      name: 'Content-Length exactly at the cap (allowed)',
      namespace: 'default',
      size: CAP,
      framing: 'content-length',
      status: 201,
      upstream: 'complete',
      event: 'request.completed',
      gate: 0,
    },
    {
      name: 'held, chunked over the cap',
      namespace: 'held',
      size: 2 * CAP,
      framing: 'chunked',
      status: 413,
      upstream: 'nothing',
      event: 'request.completed',
      error: /exceeds the 65536 bytes a held request may carry/,
      gate: 0,
    },
    {
      name: 'held, declared Content-Length over the cap',
      namespace: 'held',
      size: 2 * CAP,
      framing: 'content-length',
      status: 413,
      upstream: 'nothing',
      event: 'request.rejected',
      gate: 0,
    },
    {
      name: 'held, at the cap (granted, forwarded once)',
      namespace: 'held',
      size: CAP,
      framing: 'chunked',
      status: 404,
      upstream: 'complete',
      event: 'request.completed',
      gate: 1,
    },
  ];

  for (const [i, row] of rows.entries()) {
    test(row.name, async () => {
      fixture.clearRequests();
      gateAsked = 0;
      const path = `/api/v1/namespaces/${row.namespace}/configmaps`;
      const name = `cap-${i}`;
      const res = await post(edge, `/k8s/k${path}`, configMapOf(name, row.namespace, row.size), row.framing);
      assert.equal(res.status, row.status, res.body);
      assert.match(res.auditId, /^[0-9a-f-]{36}$/);
      if (row.status === 413) {
        const status = JSON.parse(res.body) as { kind: string; reason: string; code: number };
        assert.deepEqual([status.kind, status.reason, status.code], ['Status', 'RequestEntityTooLarge', 413]);
      }

      // The upstream: never a complete over-cap body; a cut-off one is seen as cut off.
      const complete = fixture.requests.filter((r) => r.path === path && r.method === 'POST');
      if (row.upstream === 'complete') {
        assert.equal(complete.length, 1);
        assert.equal(complete[0]!.bodyBytes, row.size);
      } else {
        assert.equal(complete.length, 0, `the upstream received a complete body for ${row.name}`);
      }
      if (row.upstream === 'aborted') {
        const cut = await eventually('the upstream to see the request cut off', () => fixture.incompleteRequests.find((r) => r.path === path));
        assert.ok(cut.bodyBytes <= CAP, `the upstream received ${cut.bodyBytes} bytes, over the cap`);
      }
      if (row.upstream === 'nothing') assert.equal(fixture.incompleteRequests.length, 0);
      assert.equal(gateAsked, row.gate);

      const event = await eventsOf(res.auditId, row.event);
      const p = event.payload;
      if (row.event === 'request.rejected') {
        assert.ok(p.case === 'requestRejected');
        assert.equal(p.value.status, 413);
        assert.equal(p.value.reason, 'body_too_large');
      } else {
        assert.ok(p.case === 'requestCompleted');
        assert.equal(p.value.status, row.status);
        if (row.error === undefined) assert.equal(p.value.error, '');
        else assert.match(p.value.error, row.error);
        if (row.upstream === 'aborted') assert.ok(p.value.bytesIn <= CAP, `bytesIn ${p.value.bytesIn}`);
        if (row.upstream === 'complete') assert.equal(p.value.bytesIn, row.size);
      }
    });
  }

  test('the edge serves the next request after a refused body (no state left behind)', async () => {
    fixture.clearRequests();
    const res = await post(edge, '/k8s/k/api/v1/namespaces/default/configmaps', configMapOf('after', 'default', 200), 'chunked');
    assert.equal(res.status, 201, res.body);
  });
});
