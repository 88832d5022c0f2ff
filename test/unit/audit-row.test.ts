import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import {
  EvidenceReadSchema,
  IdentityAuthenticatedSchema,
  IdentityRejectedSchema,
  ApprovalApprovedSchema,
  ApprovalConsumedSchema,
  ApprovalDeniedSchema,
  ApprovalExpiredSchema,
  ApprovalRequestedSchema,
  PolicyActivatedSchema,
  PolicyPushedSchema,
  PolicyRejectedSchema,
  RequestCompletedSchema,
  RequestDecidedSchema,
  RequestReceivedSchema,
  RequestRejectedSchema,
  SessionEndedSchema,
  SessionFramesSchema,
  SessionStartedSchema,
  buildEvent,
  create,
  decodeEvent,
  encodeEvent,
  type EventEnvelope,
} from '@portcullis/contracts';
import {
  AUDIT_COLUMNS,
  formatAuditRow,
  formatAuditRowJson,
  formatBytes,
  sqlIdentifier,
  sqlString,
  sqlUInt,
  rowEnvelope,
  rowForJson,
  toAuditRow,
  toAuditRowOfWire,
  withPayloadJson,
  type AuditRow,
} from '@portcullis/audit-store';

// Compiled to dist/test/unit; the golden event data stays in the source tree (test/golden).
const FIXTURES = fileURLToPath(new URL('../../../test/golden/events/', import.meta.url));
// UPDATE_GOLDEN=1 rewrites the golden files (review the diff: an encoding change is a contract change).
const UPDATE = process.env['UPDATE_GOLDEN'] === '1';

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
const IDENTITY = {
  subject: 'system:serviceaccount:ci:deployer',
  groups: ['ci', 'deployers'],
  clientId: 'ci-bot',
  issuer: 'https://issuer.example',
  scopes: ['k8s'],
  audiences: ['portcullis'],
  tokenId: 'jti-123',
  tokenLifetimeSeconds: 300,
};
const KUBE_ATTRIBUTES = {
  connection: 'prod',
  connectionType: 'kubernetes',
  kube: {
    isResourceRequest: true,
    verb: 'get',
    apiPrefix: 'api',
    apiGroup: '',
    apiVersion: 'v1',
    namespace: 'default',
    resource: 'pods',
    subresource: 'log',
    name: 'web-0',
    path: '',
    labelSelector: '',
    fieldSelector: '',
  },
  method: 'GET',
  sourceIp: '10.0.0.7',
  userAgent: 'kubectl/v1.32.0',
  bodyBytes: 0,
};
const APPROVAL_ID = '01900000-0000-7000-8000-0000000000ff';
const META = { correlationId: '01900000-0000-7000-8000-000000000001', nodeId: 'edge-1', connection: 'prod', sessionId: 'sess-1' };

/** The golden events, built from fixed inputs. */
const GOLDEN: Record<string, () => EventEnvelope> = {
  'request-received': () =>
    buildEvent('request.received', create(RequestReceivedSchema, { identity: IDENTITY, attributes: KUBE_ATTRIBUTES }), {
      ...META,
      id: '01900000-0000-7000-8000-0000000000a1',
      occurredAtMs: T0,
    }),
  'request-decided': () =>
    buildEvent(
      'request.decided',
      create(RequestDecidedSchema, {
        decision: { effect: 'allow', ruleId: 'read-pods', policyVersion: 'v7', message: 'ok', maskProfile: 'secrets' },
        decisionLatencyUs: 412,
      }),
      { ...META, id: '01900000-0000-7000-8000-0000000000a2', causationId: '01900000-0000-7000-8000-0000000000a1', occurredAtMs: T0 + 1 },
    ),
  'request-rejected': () =>
    buildEvent(
      'request.rejected',
      create(RequestRejectedSchema, { status: 401, reason: 'invalid_token', message: 'token expired', attributes: KUBE_ATTRIBUTES }),
      { ...META, id: '01900000-0000-7000-8000-0000000000a3', occurredAtMs: T0 + 2 },
    ),
  'request-completed': () =>
    buildEvent('request.completed', create(RequestCompletedSchema, { status: 200, bytesOut: 123456, bytesIn: 0, durationMs: 17, error: '', forwarded: true }), {
      ...META,
      id: '01900000-0000-7000-8000-0000000000a4',
      occurredAtMs: T0 + 20,
    }),
  'identity-authenticated': () =>
    buildEvent('identity.authenticated', create(IdentityAuthenticatedSchema, { identity: IDENTITY, expiresAtMs: T0 + 300_000 }), {
      ...META,
      id: '01900000-0000-7000-8000-0000000000a5',
      causationId: META.correlationId,
      occurredAtMs: T0 + 21,
    }),
  'identity-rejected': () =>
    buildEvent(
      'identity.rejected',
      create(IdentityRejectedSchema, {
        reason: 'unknown_issuer',
        issuer: 'https://evil.example',
        message: 'portcullis: unauthorized: the token issuer is not trusted',
        tokenHash: '0123456789abcdef0123456789abcdef',
        status: 401,
      }),
      { ...META, id: '01900000-0000-7000-8000-0000000000a6', causationId: META.correlationId, occurredAtMs: T0 + 22 },
    ),
  'session-started': () =>
    buildEvent(
      'session.started',
      create(SessionStartedSchema, {
        kind: 'exec',
        protocol: 'v5.channel.k8s.io',
        transport: 'websocket',
        command: ['sh', '-c', 'echo hi'],
        container: 'web',
        stdin: true,
        tty: false,
        recorded: true,
        recordLimitBytes: 1048576,
      }),
      { ...META, id: '01900000-0000-7000-8000-0000000000a5', causationId: '01900000-0000-7000-8000-0000000000a2', occurredAtMs: T0 + 30 },
    ),
  'session-frames': () =>
    buildEvent(
      'session.frames',
      create(SessionFramesSchema, {
        sequence: 1,
        frames: [
          { channel: 0, offsetMs: 3, data: new TextEncoder().encode('ls\n') },
          { channel: 1, offsetMs: 9, data: new TextEncoder().encode('hi\n') },
          { channel: 2, offsetMs: 10, data: new Uint8Array([0xff, 0x00]), truncated: true },
        ],
      }),
      { ...META, id: '01900000-0000-7000-8000-0000000000a6', causationId: '01900000-0000-7000-8000-0000000000a5', occurredAtMs: T0 + 40 },
    ),
  'session-ended': () =>
    buildEvent(
      'session.ended',
      create(SessionEndedSchema, {
        exitCode: 3,
        status: 'Failure',
        message: 'command terminated with non-zero exit code',
        bytesIn: 3,
        bytesOut: 250,
        durationMs: 41,
        recordedBytes: 8,
        truncated: true,
        frameBatches: 1,
        error: '',
      }),
      { ...META, id: '01900000-0000-7000-8000-0000000000a7', causationId: '01900000-0000-7000-8000-0000000000a5', occurredAtMs: T0 + 50 },
    ),
  'request-completed-masked': () =>
    buildEvent(
      'request.completed',
      create(RequestCompletedSchema, {
        status: 201,
        bytesOut: 310,
        bytesIn: 120,
        durationMs: 9,
        error: '',
        forwarded: true,
        maskedFields: 2,
        maskProfile: 'secrets',
        requestBody: {
          bytes: 120,
          sha256: 'a'.repeat(64),
          contentType: 'application/vnd.kubernetes.protobuf',
          decoding: 'protobuf',
          excerpt: '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"data":{"password":"KioqbWFza2VkKioq"}}',
          truncated: false,
          maskedFields: 1,
          note: '',
        },
        responseBody: {
          bytes: 310,
          sha256: 'b'.repeat(64),
          contentType: 'application/json',
          decoding: 'json',
          excerpt: '{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"data":{"password":"KioqbWFza2VkKioq"}}',
          truncated: false,
          maskedFields: 2,
          note: '',
        },
      }),
      { ...META, id: '01900000-0000-7000-8000-0000000000a8', occurredAtMs: T0 + 60 },
    ),
  'approval-requested': () =>
    buildEvent(
      'approval.requested',
      create(ApprovalRequestedSchema, {
        approvalId: APPROVAL_ID,
        fingerprint: 'f'.repeat(64),
        requester: IDENTITY,
        attributes: {
          ...KUBE_ATTRIBUTES,
          kube: { ...KUBE_ATTRIBUTES.kube, verb: 'delete', resource: 'namespaces', subresource: '', namespace: '', name: 'staging' },
        },
        ruleId: 'delete-namespace-needs-sre',
        policyVersion: 'v7',
        requirement: { approverGroups: ['sre'], quorum: 2, scope: 'once', waitSeconds: 60, reasonRequired: true, channel: '#approvals' },
        expiresAtMs: T0 + 900_000,
        bodyExcerpt: '{"kind":"DeleteOptions"}',
        bodySha256: 'e'.repeat(64),
        message: 'deleting a namespace needs an approval from sre',
      }),
      { ...META, id: '01900000-0000-7000-8000-0000000000b1', occurredAtMs: T0 + 30 },
    ),
  'approval-approved': () =>
    buildEvent(
      'approval.approved',
      create(ApprovalApprovedSchema, {
        approvalId: APPROVAL_ID,
        approver: { subject: 'alice', groups: ['sre'], via: 'slack', externalId: 'U012ALICE', breakGlass: false },
        reason: 'INC-42 cleanup',
        granted: false,
        approvals: 1,
      }),
      { ...META, id: '01900000-0000-7000-8000-0000000000b2', causationId: '01900000-0000-7000-8000-0000000000b1', occurredAtMs: T0 + 40 },
    ),
  'approval-denied': () =>
    buildEvent(
      'approval.denied',
      create(ApprovalDeniedSchema, { approvalId: APPROVAL_ID, approver: { subject: 'bob', groups: ['sre'], via: 'api' }, reason: 'not during the freeze' }),
      { ...META, id: '01900000-0000-7000-8000-0000000000b3', causationId: '01900000-0000-7000-8000-0000000000b1', occurredAtMs: T0 + 50 },
    ),
  'approval-expired': () =>
    buildEvent('approval.expired', create(ApprovalExpiredSchema, { approvalId: APPROVAL_ID }), {
      ...META,
      id: '01900000-0000-7000-8000-0000000000b4',
      occurredAtMs: T0 + 60,
    }),
  'approval-consumed': () =>
    buildEvent('approval.consumed', create(ApprovalConsumedSchema, { approvalId: APPROVAL_ID, requestId: META.correlationId, uses: 1 }), {
      ...META,
      id: '01900000-0000-7000-8000-0000000000b5',
      occurredAtMs: T0 + 70,
    }),
  'policy-pushed': () =>
    buildEvent(
      'policy.pushed',
      create(PolicyPushedSchema, {
        policyName: 'example',
        policyVersion: 'v8',
        bundleSha256: 'a'.repeat(64),
        pushedBy: 'pat (nats user ops)',
        pushedFrom: 'laptop-7',
        target: 'kv portcullis_policy/bundle',
        previousVersion: 'v7',
        rules: 12,
      }),
      { ...META, connection: '_system', id: '01900000-0000-7000-8000-0000000000c1', occurredAtMs: T0 + 80 },
    ),
  'policy-activated': () =>
    buildEvent(
      'policy.activated',
      create(PolicyActivatedSchema, {
        policyName: 'example',
        policyVersion: 'v8',
        bundleSha256: 'a'.repeat(64),
        source: 'kv portcullis_policy/bundle revision 9',
        previousVersion: 'v7',
        rules: 12,
      }),
      { ...META, connection: '_system', id: '01900000-0000-7000-8000-0000000000c2', occurredAtMs: T0 + 90 },
    ),
  'policy-rejected': () =>
    buildEvent(
      'policy.rejected',
      create(PolicyRejectedSchema, {
        claimedVersion: 'v9',
        bundleSha256: 'b'.repeat(64),
        source: 'kv portcullis_policy/bundle revision 10',
        problems: ['kv portcullis_policy/bundle revision 10:7:13: rules[0].effect: unknown effect "allwo"'],
        keepingVersion: 'v8',
      }),
      { ...META, connection: '_system', id: '01900000-0000-7000-8000-0000000000c3', occurredAtMs: T0 + 100 },
    ),
  'evidence-read': () =>
    buildEvent(
      'evidence.read',
      create(EvidenceReadSchema, {
        reader: IDENTITY,
        action: 'audit.export',
        via: 'cli',
        query: '{"sinceMs":1767322800000,"format":"ocsf"}',
        results: -1,
        source: 'ops-host-1',
      }),
      { ...META, correlationId: '', sessionId: '', connection: '_system', id: '01900000-0000-7000-8000-0000000000c1', occurredAtMs: T0 + 80 },
    ),
};

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

describe('toAuditRow', () => {
  it('maps request.received: identity and attributes', () => {
    const row = toAuditRow(GOLDEN['request-received']!());
    assert.equal(row.type, 'request.received');
    assert.equal(row.event_time, Math.floor(T0 / 1000));
    assert.equal(row.ts_ms, T0);
    assert.equal(row.subject, IDENTITY.subject);
    assert.deepEqual(row.groups, ['ci', 'deployers']);
    assert.equal(row.token_id, 'jti-123');
    assert.equal(row.verb, 'get');
    assert.equal(row.resource, 'pods');
    assert.equal(row.subresource, 'log');
    assert.equal(row.namespace, 'default');
    assert.equal(row.name, 'web-0');
    assert.equal(row.method, 'GET');
    assert.equal(row.source_ip, '10.0.0.7');
    assert.equal(row.connection, 'prod');
    assert.equal(row.session_id, 'sess-1');
    assert.equal(row.effect, '');
    assert.equal(row.status, 0);
  });

  it('maps request.decided: decision fields, connection from the envelope, no identity', () => {
    const row = toAuditRow(GOLDEN['request-decided']!());
    assert.equal(row.effect, 'allow');
    assert.equal(row.rule_id, 'read-pods');
    assert.equal(row.policy_version, 'v7');
    assert.equal(row.decision_message, 'ok');
    assert.equal(row.mask_profile, 'secrets');
    assert.equal(row.decision_latency_us, 412);
    assert.equal(row.connection, 'prod');
    assert.equal(row.causation_id, '01900000-0000-7000-8000-0000000000a1');
    assert.equal(row.subject, '');
    assert.deepEqual(row.groups, []);
    assert.equal(row.approval_id, '');
  });

  it('maps request.rejected: status, reason, the message shown, attributes without identity', () => {
    const row = toAuditRow(GOLDEN['request-rejected']!());
    assert.equal(row.status, 401);
    assert.equal(row.reason, 'invalid_token');
    assert.equal(row.decision_message, 'token expired');
    assert.equal(row.subject, '');
    assert.equal(row.resource, 'pods');
  });

  it('maps identity.authenticated: the identity columns, nothing of a request', () => {
    const row = toAuditRow(GOLDEN['identity-authenticated']!());
    assert.equal(row.type, 'identity.authenticated');
    assert.equal(row.subject, IDENTITY.subject);
    assert.equal(row.issuer, IDENTITY.issuer);
    assert.equal(row.client_id, 'ci-bot');
    assert.equal(row.token_id, 'jti-123');
    assert.deepEqual(row.groups, ['ci', 'deployers']);
    assert.equal(row.resource, '');
    assert.match(withPayloadJson(row).payload_json, /"tokenLifetimeSeconds":300/);
  });

  it('maps identity.rejected: reason, claimed issuer, token hash, status, message', () => {
    const row = toAuditRow(GOLDEN['identity-rejected']!());
    assert.equal(row.type, 'identity.rejected');
    assert.equal(row.reason, 'unknown_issuer');
    assert.equal(row.issuer, 'https://evil.example');
    assert.equal(row.token_id, '0123456789abcdef0123456789abcdef');
    assert.equal(row.status, 401);
    assert.equal(row.subject, '');
    assert.match(row.decision_message, /not trusted/);
  });

  it('maps request.completed: status, bytes, duration, forwarded', () => {
    const row = toAuditRow(GOLDEN['request-completed']!());
    assert.equal(row.status, 200);
    assert.equal(row.bytes_out, 123456);
    assert.equal(row.bytes_in, 0);
    assert.equal(row.duration_ms, 17);
    assert.equal(row.forwarded, 1);
    assert.equal(row.error, '');
    assert.equal(row.connection, 'prod');
    assert.equal(row.masked_fields, 0);
    assert.equal(row.request_body_excerpt, '');
  });

  it('maps the masked body excerpts, hashes and counts of request.completed', () => {
    const row = toAuditRow(GOLDEN['request-completed-masked']!());
    assert.equal(row.mask_profile, 'secrets');
    assert.equal(row.masked_fields, 2);
    assert.equal(row.request_body_sha256, 'a'.repeat(64));
    assert.match(row.request_body_excerpt, /"password":"KioqbWFza2VkKioq"/);
    assert.equal(row.response_body_sha256, 'b'.repeat(64));
    assert.match(row.response_body_excerpt, /"kind":"Secret"/);
  });

  it('maps session.started: kind and protocol', () => {
    const row = toAuditRow(GOLDEN['session-started']!());
    assert.equal(row.type, 'session.started');
    assert.equal(row.session_id, 'sess-1');
    assert.equal(row.subresource, 'exec');
    assert.equal(row.reason, 'v5.channel.k8s.io');
  });

  it('maps session.frames: recorded bytes by direction, the frames in payload_json as base64', () => {
    const row = toAuditRow(GOLDEN['session-frames']!());
    assert.equal(row.bytes_in, 3);
    assert.equal(row.bytes_out, 5);
    const json = JSON.parse(withPayloadJson(row).payload_json) as { sessionFrames: { frames: { channel?: number; data: string; truncated?: boolean }[] } };
    assert.deepEqual(
      json.sessionFrames.frames.map((f) => [f.channel ?? 0, Buffer.from(f.data, 'base64').toString('latin1'), f.truncated ?? false]),
      [
        [0, 'ls\n', false],
        [1, 'hi\n', false],
        [2, '\xff\x00', true],
      ],
    );
  });

  it('maps session.ended: exit status, bytes, duration', () => {
    const row = toAuditRow(GOLDEN['session-ended']!());
    assert.equal(row.reason, 'exit 3');
    assert.equal(row.decision_message, 'command terminated with non-zero exit code');
    assert.equal(row.bytes_out, 250);
    assert.equal(row.duration_ms, 41);
  });

  it('maps approval events: the approval id on every row, the approver and reason on decisions', () => {
    const requested = toAuditRow(GOLDEN['approval-requested']!());
    assert.equal(requested.approval_id, APPROVAL_ID);
    assert.equal(requested.subject, IDENTITY.subject, 'the requester');
    assert.equal(requested.verb, 'delete');
    assert.equal(requested.resource, 'namespaces');
    assert.equal(requested.name, 'staging');
    assert.equal(requested.rule_id, 'delete-namespace-needs-sre');
    assert.equal(requested.effect, 'require_approval');
    const approved = toAuditRow(GOLDEN['approval-approved']!());
    assert.deepEqual([approved.approval_id, approved.subject, approved.reason, approved.client_id], [APPROVAL_ID, 'alice', 'INC-42 cleanup', 'U012ALICE']);
    assert.deepEqual(approved.groups, ['sre']);
    const denied = toAuditRow(GOLDEN['approval-denied']!());
    assert.deepEqual([denied.subject, denied.reason], ['bob', 'not during the freeze']);
    assert.equal(toAuditRow(GOLDEN['approval-expired']!()).approval_id, APPROVAL_ID);
    const consumed = toAuditRow(GOLDEN['approval-consumed']!());
    assert.deepEqual([consumed.approval_id, consumed.forwarded], [APPROVAL_ID, 1]);
  });

  it('maps an HTTP request: method and path', () => {
    const event = buildEvent(
      'request.received',
      create(RequestReceivedSchema, {
        identity: IDENTITY,
        attributes: { connection: 'api', connectionType: 'http', http: { method: 'POST', path: '/v1/x', query: 'a=1' } },
      }),
      { correlationId: 'c', nodeId: 'n', connection: '' },
    );
    const row = toAuditRow(event);
    assert.equal(row.method, 'POST');
    assert.equal(row.path, '/v1/x');
    assert.equal(row.verb, '');
    assert.equal(row.connection, 'api', 'falls back to the attributes when the envelope has none');
  });

  it('clamps numbers into their column ranges', () => {
    const event = buildEvent(
      'request.completed',
      create(RequestCompletedSchema, { status: -5, bytesOut: Number.NaN, bytesIn: 1.9, durationMs: 5, error: 'upstream reset' }),
      { correlationId: 'c', nodeId: 'n', connection: 'x', occurredAtMs: -1 },
    );
    const row = toAuditRow(event);
    assert.equal(row.status, 0);
    assert.equal(row.bytes_out, 0);
    assert.equal(row.bytes_in, 1);
    assert.equal(row.ts_ms, 0);
    assert.equal(row.event_time, 0);
    assert.equal(row.error, 'upstream reset');
  });

  it('stores the envelope as its signed bytes; readers get payload_json derived from them', () => {
    const wire = encodeEvent(GOLDEN['request-received']!());
    const row = toAuditRowOfWire(decodeEvent(wire), wire);
    assert.equal(row.payload_pb, wire, 'the bytes as received, not a re-encoding');
    assert.equal(row.payload_json, '', 'no JSON is built on the write path');
    const json = JSON.parse(withPayloadJson(row).payload_json) as Record<string, unknown>;
    assert.equal(json['id'], '01900000-0000-7000-8000-0000000000a1');
    assert.equal(json['type'], 'request.received');
    assert.ok(json['requestReceived']);
    assert.equal(rowEnvelope(row).id, json['id']);
  });

  it('reads rows from before migration 5 (payload_json, no bytes) and refuses a row holding neither', () => {
    const legacy = { ...withPayloadJson(toAuditRow(GOLDEN['request-received']!())), payload_pb: new Uint8Array(0) };
    assert.equal(rowEnvelope(legacy).id, '01900000-0000-7000-8000-0000000000a1');
    assert.equal(withPayloadJson({ ...legacy }).payload_json, legacy.payload_json);
    assert.throws(() => rowEnvelope({ payload_pb: new Uint8Array(0), payload_json: '' }), /holds no envelope/);
  });

  it('fills exactly the declared columns', () => {
    const row = toAuditRow(GOLDEN['request-completed']!());
    assert.deepEqual(Object.keys(row).sort(), AUDIT_COLUMNS.map((c) => c.name).sort());
  });
});

describe('golden event encodings', () => {
  for (const [name, build] of Object.entries(GOLDEN)) {
    it(`${name}: bytes and row match the fixture`, () => {
      const hexPath = `${FIXTURES}${name}.hex`;
      const rowPath = `${FIXTURES}${name}.row.json`;
      const encoded = hex(encodeEvent(build()));
      // The row as readers see it (payload_json derived), the stored bytes in hex.
      const fixtureRow = (row: AuditRow): unknown => ({ ...withPayloadJson(row), payload_pb: hex(row.payload_pb) });
      if (UPDATE) {
        writeFileSync(hexPath, `${encoded}\n`);
        writeFileSync(rowPath, `${JSON.stringify(fixtureRow(toAuditRow(build())), null, 2)}\n`);
      }
      assert.ok(existsSync(hexPath), `missing fixture ${hexPath}; create it with UPDATE_GOLDEN=1`);
      const fixtureHex = readFileSync(hexPath, 'utf8').trim();
      assert.equal(encoded, fixtureHex, 'the encoder output changed; if intended, regenerate with UPDATE_GOLDEN=1');
      const decoded = decodeEvent(Buffer.from(fixtureHex, 'hex'));
      const expected = JSON.parse(readFileSync(rowPath, 'utf8')) as unknown;
      assert.deepEqual(fixtureRow(toAuditRow(decoded)), expected);
    });
  }
});

describe('sqlString', () => {
  const cases: [string, string][] = [
    ['', "''"],
    ['plain', "'plain'"],
    ["it's", "'it\\'s'"],
    ["' OR 1=1 --", "'\\' OR 1=1 --'"],
    ['back\\slash', "'back\\\\slash'"],
    ["\\'", "'\\\\\\''"],
    ['nul\0byte', "'nul\\0byte'"],
    ['line\nbreak\r\ttab', "'line\\nbreak\\r\\ttab'"],
    ['\x1b[31mred', "'\\x1b[31mred'"],
    ['del\x7f', "'del\\x7f'"],
    ['ünï 🚪', "'ünï 🚪'"],
  ];
  for (const [input, quoted] of cases) {
    it(`quotes ${JSON.stringify(input)}`, () => assert.equal(sqlString(input), quoted));
  }

  it('never lets a value end the literal or carry a raw control character', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (value) => {
        const body = sqlString(value).slice(1, -1);
        // Every quote inside is escaped: strip escape pairs, then no quote may remain.
        assert.equal(/'/.test(body.replace(/\\./gs, '')), false);
        assert.equal(/[\x00-\x1f\x7f]/.test(body), false);
      }),
      { numRuns: 500 },
    );
  });

  it('sqlUInt accepts safe non-negative integers only', () => {
    assert.equal(sqlUInt(0), '0');
    assert.equal(sqlUInt(2 ** 53 - 1), '9007199254740991');
    for (const bad of [-1, 1.5, Number.NaN, Infinity, 2 ** 53]) assert.throws(() => sqlUInt(bad), RangeError);
  });

  it('sqlIdentifier back-quotes plain names and refuses the rest', () => {
    assert.equal(sqlIdentifier('portcullis_audit'), '`portcullis_audit`');
    for (const bad of ['', '1abc', 'a-b', 'a`b', 'a b', 'db;DROP', 'x'.repeat(64)]) assert.throws(() => sqlIdentifier(bad), RangeError);
  });
});

describe('formatAuditRow', () => {
  it('prints one line per event type with the Audit-Id', () => {
    // evidence.read belongs to no request: its line names its own event id.
    const lines = Object.entries(GOLDEN)
      .filter(([name]) => name !== 'evidence-read')
      .map(([, build]) => formatAuditRow(toAuditRow(build())));
    for (const line of lines) {
      assert.ok(!line.includes('\n'));
      assert.ok(line.includes(`Audit-Id=${META.correlationId}`), line);
      assert.ok(line.startsWith('2026-01-02T03:04:05.'), line);
    }
    assert.match(lines[0]!, /request\.received .*system:serviceaccount:ci:deployer {2}get pods\/log default\/web-0/);
    assert.match(lines[1]!, /allow \(rule read-pods\)/);
    assert.match(lines[2]!, /401 {2}invalid_token {2}"token expired"/);
    assert.match(lines[3]!, /200 {2}in 0 B out 123 kB {2}17 ms/);
    assert.match(lines[4]!, /identity\.authenticated .*system:serviceaccount:ci:deployer {2}iss https:\/\/issuer\.example {2}client ci-bot {2}token jti-123/);
    assert.match(lines[5]!, /identity\.rejected .*401 {2}unknown_issuer {2}iss https:\/\/evil\.example .*"portcullis: unauthorized/);
  });

  it('escapes control characters from client-supplied fields', () => {
    const row = { ...toAuditRow(GOLDEN['request-rejected']!()), reason: 'x\x1b]0;pwned\x07\nnext' };
    const line = formatAuditRow(row);
    assert.ok(!/[\x00-\x1f]/.test(line));
    assert.ok(line.includes('x\\x1b]0;pwned\\x07\\x0anext'));
  });

  it('the JSON form is one parseable line with every column', () => {
    const row = toAuditRow(GOLDEN['request-received']!());
    const line = formatAuditRowJson(row);
    assert.ok(!line.includes('\n'));
    assert.deepEqual(JSON.parse(line), rowForJson(row));
  });

  it('formats bytes', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(999), '999 B');
    assert.equal(formatBytes(1500), '1.5 kB');
    assert.equal(formatBytes(123456), '123 kB');
    assert.equal(formatBytes(3_200_000), '3.2 MB');
  });
});
