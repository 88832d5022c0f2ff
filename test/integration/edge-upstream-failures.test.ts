/**
 * What a client sees, and what the audit log records, when the upstream fails — for the undici
 * forward path: refused connection, an untrusted certificate, no response headers within
 * `upstreamTimeout`, and a response cut off mid-body. Each row: the status (a Kubernetes Status
 * naming the cause, or a cut connection once the response has started) and the request.completed
 * event's status, error and `forwarded` flag. Scripted TLS upstreams on loopback; nothing is mocked.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { request } from 'node:https';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateDevTls } from '@portcullis/tls';
import { EventType, type EventEnvelope } from '@portcullis/contracts';
import { freePort } from '../harness/services.js';
import { startTestEdge, type TestEdge } from '../support/kube-edge.js';
import { eventually } from '../support/eventually.js';

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: upstream-failures, version: "u1" }
rules:
  - id: bots
    match: { groups: [bots] }
    effect: allow
`;

interface Outcome {
  /** HTTP status, or 0 when the connection was cut before a complete response. */
  readonly status: number;
  readonly auditId: string;
  readonly body: string;
}

function get(edge: TestEdge, path: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request(`${edge.url}${path}`, { ca: edge.ca, headers: { authorization: `Bearer ${edge.token}` }, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      const auditId = String(res.headers['audit-id'] ?? '');
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, auditId, body: Buffer.concat(chunks).toString('utf8') }));
      // A response cut mid-body: the client sees an aborted stream, not a complete answer.
      res.on('error', () => resolve({ status: 0, auditId, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('aborted', () => resolve({ status: 0, auditId, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 20s')));
    req.on('error', () => resolve({ status: 0, auditId: '', body: '' }));
    req.end();
  });
}

describe('edge: upstream failures (undici forward path)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-upstream-failures-'));
  const servers: Server[] = [];
  let edge: TestEdge;

  before(async () => {
    const trusted = await loadOrCreateDevTls(join(dir, 'trusted'), ['127.0.0.1', 'localhost']);
    const stranger = await loadOrCreateDevTls(join(dir, 'stranger'), ['127.0.0.1', 'localhost']);
    const listen = async (tls: { certPem: string; keyPem: string }, handler: Parameters<typeof createServer>[1]): Promise<string> => {
      const server = createServer({ cert: tls.certPem, key: tls.keyPem }, handler);
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    };
    const ok = (_req: unknown, res: ServerResponse): void => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"Status","status":"Success"}');
    };
    // Accepts the request and never answers.
    const silent = await listen(trusted, () => undefined);
    // Promises 1 MB, sends a little, then cuts the connection.
    const cut = await listen(trusted, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(1024 * 1024) });
      res.write('{"kind":"ConfigMapList","items":[');
      setImmediate(() => res.socket?.destroy());
    });
    const untrusted = await listen(stranger, ok);
    // Reads the whole body and answers with what it got (and whether it was asked to continue).
    const echo = await listen(trusted, (req, res) => {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ bytes, expect: req.headers['expect'] ?? null })));
    });
    const refused = `https://127.0.0.1:${await freePort()}`;
    const as = (url: string) => ({ url, caPem: trusted.caPem, token: 'gateway-token' });
    edge = await startTestEdge({
      connections: { refused: as(refused), untrusted: as(untrusted), silent: as(silent), cut: as(cut), echo: as(echo) },
      policy: POLICY,
      upstreamTimeoutMs: 400,
    });
  });

  after(async () => {
    await edge.close();
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
  });

  const completedOf = (auditId: string): Promise<EventEnvelope> =>
    eventually(`request.completed for ${auditId}`, () => edge.log.appended.find((x) => x.type === EventType.RequestCompleted && x.correlationId === auditId));

  const rows: {
    name: string;
    connection: string;
    status: number;
    message?: RegExp;
    completed: { status: number; error: RegExp; forwarded: boolean };
  }[] = [
    {
      name: 'connection refused',
      connection: 'refused',
      status: 502,
      message: /upstream refused unreachable \(ECONNREFUSED\)/,
      completed: { status: 502, error: /ECONNREFUSED/, forwarded: false },
    },
    {
      name: 'certificate from a CA the connection does not trust',
      connection: 'untrusted',
      status: 502,
      message:
        /upstream untrusted unreachable \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/,
      completed: { status: 502, error: /unreachable/, forwarded: false },
    },
    {
      name: 'no response headers within upstreamTimeout',
      connection: 'silent',
      status: 504,
      message: /did not answer within/,
      completed: { status: 504, error: /did not answer within/, forwarded: false },
    },
    {
      name: 'response cut off mid-body',
      connection: 'cut',
      status: 0,
      completed: { status: 200, error: /upstream (response aborted|failed mid-response)/, forwarded: true },
    },
  ];

  test('a client that sends Expect: 100-continue (curl does, for bodies over 1 KiB) gets its 100 from the edge and its body forwarded', async () => {
    const body = Buffer.from(JSON.stringify({ kind: 'ConfigMap', data: { pad: 'x'.repeat(4096) } }));
    const result = await new Promise<{ status: number; continued: boolean; body: string }>((resolve, reject) => {
      let continued = false;
      const req = request(
        `${edge.url}/k8s/echo/api/v1/namespaces/default/configmaps`,
        {
          method: 'POST',
          ca: edge.ca,
          headers: { authorization: `Bearer ${edge.token}`, 'content-type': 'application/json', 'content-length': String(body.length), expect: '100-continue' },
          timeout: 20_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, continued, body: Buffer.concat(chunks).toString('utf8') }));
        },
      );
      // The body goes only after the 100: a gateway that never sends it would hang the client.
      req.on('continue', () => {
        continued = true;
        req.end(body);
      });
      req.on('timeout', () => req.destroy(new Error('no answer within 20s')));
      req.on('error', reject);
    });
    assert.equal(result.continued, true, 'the edge answered 100 Continue');
    assert.equal(result.status, 201, result.body);
    assert.deepEqual(JSON.parse(result.body), { bytes: body.length, expect: null });
  });

  for (const row of rows) {
    test(`${row.name}: ${row.status === 0 ? 'the client connection is cut' : row.status}, and request.completed says why`, async () => {
      const started = Date.now();
      const res = await get(edge, `/k8s/${row.connection}/api/v1/namespaces/default/configmaps`);
      assert.equal(res.status, row.status, `${row.name}: ${res.body}`);
      assert.ok(res.auditId !== '', 'every answer carries an Audit-Id');
      if (row.message !== undefined) {
        const s = JSON.parse(res.body) as { kind: string; code: number; message: string };
        assert.equal(s.kind, 'Status');
        assert.equal(s.code, row.status);
        assert.match(s.message, row.message);
        assert.doesNotMatch(s.message, /gateway-token/, 'the gateway credential never reaches the client');
      }
      assert.ok(Date.now() - started < 10_000, 'answered well before the client gives up');
      const done = await completedOf(res.auditId);
      assert.equal(done.payload.case, 'requestCompleted');
      if (done.payload.case !== 'requestCompleted') return;
      assert.equal(done.payload.value.status, row.completed.status);
      assert.match(done.payload.value.error, row.completed.error);
      assert.equal(done.payload.value.forwarded, row.completed.forwarded);
    });
  }
});

describe('edge: the body cap once the upstream has started answering', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-cap-after-response-'));
  const CAP = 64 * 1024;
  let upstream: Server;
  let edge: TestEdge;
  /** What the upstream saw of each request body: bytes, and whether it ended cleanly or was cut. */
  const seen: { bytes: number; outcome: 'complete' | 'aborted' }[] = [];

  before(async () => {
    const tls = await loadOrCreateDevTls(join(dir, 'tls'), ['127.0.0.1', 'localhost']);
    // Answers at once (headers and a first chunk), then keeps reading the request body.
    upstream = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"kind":"Status",');
      let bytes = 0;
      let ended = false;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        ended = true;
        seen.push({ bytes, outcome: 'complete' });
        res.end('"status":"Success"}');
      });
      req.on('close', () => {
        if (!ended) seen.push({ bytes, outcome: 'aborted' });
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    edge = await startTestEdge({ connections: { early: { url, caPem: tls.caPem, token: 'gateway-token' } }, policy: POLICY, maxRequestBodyBytes: CAP });
  });

  after(async () => {
    await edge.close();
    upstream.closeAllConnections();
    upstream.close();
  });

  test('a chunked body crossing the cap after the response started: the client connection is cut, the upstream sees an aborted body, request.completed keeps the status the client saw', async () => {
    const outcome = await new Promise<{ status: number; auditId: string; complete: boolean }>((resolve, reject) => {
      const req = request(
        `${edge.url}/k8s/early/api/v1/namespaces/default/configmaps`,
        { method: 'POST', ca: edge.ca, headers: { authorization: `Bearer ${edge.token}`, 'content-type': 'application/json' }, timeout: 20_000 },
        (res) => {
          const status = res.statusCode ?? 0;
          const auditId = String(res.headers['audit-id'] ?? '');
          // The answer has started: now send the rest of the body, well past the cap.
          const piece = Buffer.alloc(16 * 1024, 0x20);
          for (let i = 0; i < 8; i++) req.write(piece);
          req.end();
          res.resume();
          res.on('end', () => resolve({ status, auditId, complete: res.complete }));
          res.on('error', () => resolve({ status, auditId, complete: false }));
          res.on('aborted', () => resolve({ status, auditId, complete: false }));
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 20s')));
      req.on('error', (err) => (err.message.includes('20s') ? reject(err) : undefined));
      req.write('{"apiVersion":"v1","kind":"ConfigMap",');
    });
    assert.equal(outcome.status, 200, 'the upstream had answered before the cap was reached');
    assert.equal(outcome.complete, false, 'the client never receives a complete response');
    const done = await eventually(`request.completed for ${outcome.auditId}`, () =>
      edge.log.appended.find((x) => x.type === EventType.RequestCompleted && x.correlationId === outcome.auditId),
    );
    assert.equal(done.payload.case, 'requestCompleted');
    if (done.payload.case !== 'requestCompleted') return;
    assert.equal(done.payload.value.status, 200, 'the status the client saw, not 413');
    assert.match(done.payload.value.error, /exceeds edge\.maxRequestBodyBytes/);
    const upstreamSaw = await eventually('the upstream to see the request end', () => seen.at(-1));
    assert.equal(upstreamSaw.outcome, 'aborted', 'the upstream never saw a complete body');
    assert.ok(upstreamSaw.bytes <= CAP, `the upstream got at most the cap (${upstreamSaw.bytes} bytes)`);
  });
});
