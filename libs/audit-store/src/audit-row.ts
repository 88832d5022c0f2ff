/**
 * The audit row: one wide, flat row per event, the same columns in ClickHouse and SQLite.
 * Rows of one request are joined by `correlation_id` (the request's Audit-Id).
 */
import { fromBinary, fromJsonString, toBinary } from '@bufbuild/protobuf';
import { EventEnvelopeSchema, toJson, type ApprovalApprover, type EventEnvelope, type Identity, type RequestAttributes } from '@portcullis/contracts';

/** Storage kinds of a column; each sink maps them to its own types. */
export const ColumnKind = {
  String: 'string',
  StringArray: 'string_array',
  DateTime: 'datetime',
  UInt8: 'uint8',
  UInt16: 'uint16',
  UInt32: 'uint32',
  UInt64: 'uint64',
  /** Raw bytes (ClickHouse `String`, SQLite `BLOB`). */
  Bytes: 'bytes',
} as const;
export type ColumnKind = (typeof ColumnKind)[keyof typeof ColumnKind];

/**
 * Every column of the audit table, in table order. Additive changes only: a new column goes at
 * the end with `since` = the number of the migration adding it, in each sink.
 */
export const AUDIT_COLUMNS = [
  { name: 'event_id', kind: ColumnKind.String },
  { name: 'event_time', kind: ColumnKind.DateTime },
  { name: 'ts_ms', kind: ColumnKind.UInt64 },
  { name: 'type', kind: ColumnKind.String },
  { name: 'schema_version', kind: ColumnKind.UInt16 },
  { name: 'correlation_id', kind: ColumnKind.String },
  { name: 'causation_id', kind: ColumnKind.String },
  { name: 'session_id', kind: ColumnKind.String },
  { name: 'node_id', kind: ColumnKind.String },
  { name: 'connection', kind: ColumnKind.String },
  { name: 'subject', kind: ColumnKind.String },
  { name: 'groups', kind: ColumnKind.StringArray },
  { name: 'client_id', kind: ColumnKind.String },
  { name: 'issuer', kind: ColumnKind.String },
  { name: 'token_id', kind: ColumnKind.String },
  { name: 'verb', kind: ColumnKind.String },
  { name: 'api_group', kind: ColumnKind.String },
  { name: 'api_version', kind: ColumnKind.String },
  { name: 'resource', kind: ColumnKind.String },
  { name: 'subresource', kind: ColumnKind.String },
  { name: 'namespace', kind: ColumnKind.String },
  { name: 'name', kind: ColumnKind.String },
  { name: 'path', kind: ColumnKind.String },
  { name: 'method', kind: ColumnKind.String },
  { name: 'source_ip', kind: ColumnKind.String },
  { name: 'user_agent', kind: ColumnKind.String },
  { name: 'effect', kind: ColumnKind.String },
  { name: 'rule_id', kind: ColumnKind.String },
  { name: 'policy_version', kind: ColumnKind.String },
  { name: 'decision_message', kind: ColumnKind.String },
  { name: 'mask_profile', kind: ColumnKind.String },
  { name: 'approval_id', kind: ColumnKind.String },
  { name: 'decision_latency_us', kind: ColumnKind.UInt32 },
  { name: 'status', kind: ColumnKind.UInt16 },
  { name: 'reason', kind: ColumnKind.String },
  { name: 'bytes_in', kind: ColumnKind.UInt64 },
  { name: 'bytes_out', kind: ColumnKind.UInt64 },
  { name: 'duration_ms', kind: ColumnKind.UInt32 },
  { name: 'forwarded', kind: ColumnKind.UInt8 },
  { name: 'error', kind: ColumnKind.String },
  { name: 'prev_hash', kind: ColumnKind.String },
  { name: 'hash', kind: ColumnKind.String },
  { name: 'payload_json', kind: ColumnKind.String },
  { name: 'chain_id', kind: ColumnKind.String, since: 2 },
  { name: 'chain_seq', kind: ColumnKind.UInt64, since: 2 },
  { name: 'masked_fields', kind: ColumnKind.UInt32, since: 4 },
  { name: 'request_body_sha256', kind: ColumnKind.String, since: 4 },
  { name: 'request_body_excerpt', kind: ColumnKind.String, since: 4 },
  { name: 'response_body_sha256', kind: ColumnKind.String, since: 4 },
  { name: 'response_body_excerpt', kind: ColumnKind.String, since: 4 },
  { name: 'payload_pb', kind: ColumnKind.Bytes, since: 5 },
] as const satisfies readonly { name: string; kind: ColumnKind; since?: number }[];

/** The columns a schema version has (`since`: the migration that added the column; absent = 1). */
export function columnsOfVersion(version: number): readonly (typeof AUDIT_COLUMNS)[number][] {
  return AUDIT_COLUMNS.filter((c) => ('since' in c ? c.since : 1) <= version);
}

/** The columns a migration adds. */
export function columnsAddedIn(version: number): readonly (typeof AUDIT_COLUMNS)[number][] {
  return AUDIT_COLUMNS.filter((c) => ('since' in c ? c.since : 1) === version);
}

/** Name of an audit column. */
export type AuditColumnName = (typeof AUDIT_COLUMNS)[number]['name'];

/** One audit row (column names as in the tables, so rows go to `JSONEachRow` unchanged). */
export interface AuditRow {
  /** Event id (UUIDv7), unique; a redelivered event has the same id. */
  event_id: string;
  /** Event time, whole seconds since the epoch (ClickHouse `DateTime`, the partition key). */
  event_time: number;
  /** Event time in milliseconds since the epoch. */
  ts_ms: number;
  /** Event type, e.g. `request.received`. */
  type: string;
  schema_version: number;
  /** The request's id (its Audit-Id). */
  correlation_id: string;
  causation_id: string;
  session_id: string;
  /** The node (edge process) that produced the event. */
  node_id: string;
  connection: string;
  /** Identity fields; empty on events whose payload has no identity (decided, completed). */
  subject: string;
  groups: string[];
  client_id: string;
  issuer: string;
  token_id: string;
  /** Request attributes; empty on events whose payload has none (decided, completed). */
  verb: string;
  api_group: string;
  api_version: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  /** Non-resource Kubernetes path, or the HTTP path. */
  path: string;
  method: string;
  source_ip: string;
  user_agent: string;
  /** Decision fields (request.decided). */
  effect: string;
  rule_id: string;
  policy_version: string;
  /** The decision's message, the message a rejected client was shown, or what a retention run dropped. */
  decision_message: string;
  mask_profile: string;
  /** The approval an approval.* event belongs to. */
  approval_id: string;
  decision_latency_us: number;
  /** HTTP status (request.rejected, request.completed). */
  status: number;
  /** Why a request was rejected (request.rejected); `retention` on audit.retention_applied. */
  reason: string;
  bytes_in: number;
  bytes_out: number;
  duration_ms: number;
  /** 1 when the request reached the upstream (request.completed). */
  forwarded: number;
  /** Why the exchange failed (request.completed), empty on success. */
  error: string;
  prev_hash: string;
  hash: string;
  /**
   * The envelope as canonical protobuf JSON. Never raw bodies or tokens: events carry only
   * masked excerpts. Stored only by rows written before migration 5; rows read back from a sink
   * always carry it ({@link withPayloadJson} derives it from `payload_pb`).
   */
  payload_json: string;
  /** The hash chain segment (one per edge process run), empty on events from before chaining. */
  chain_id: string;
  /** Position in the chain, from 1; 0 on events from before chaining. */
  chain_seq: number;
  /** Values masked in the response (request.completed). */
  masked_fields: number;
  /** Hex SHA-256 of the whole request body (request.completed), empty without a body. */
  request_body_sha256: string;
  /** The request body, masked and capped; empty when it could not be decoded (size and hash only). */
  request_body_excerpt: string;
  /** Hex SHA-256 of the masked response as sent (masked responses only). */
  response_body_sha256: string;
  /** The masked response, capped (masked responses only). */
  response_body_excerpt: string;
  /**
   * The envelope's signed wire encoding (protobuf binary, `hash` included), exactly as the
   * producer sealed it; empty on rows written before migration 5 (they have `payload_json`).
   * Stored instead of JSON because building protobuf JSON was a third of the writer's CPU.
   */
  payload_pb: Uint8Array;
}

// Compile-time check that AuditRow and AUDIT_COLUMNS name the same columns (else the type names the odd ones).
type NoneOf<T> = [T] extends [never] ? true : T;
const everyColumnInRow: NoneOf<Exclude<AuditColumnName, keyof AuditRow>> = true;
const everyRowFieldAColumn: NoneOf<Exclude<keyof AuditRow, AuditColumnName>> = true;
void everyColumnInRow;
void everyRowFieldAColumn;

const UINT16_MAX = 0xffff;
const UINT32_MAX = 0xffff_ffff;

/** Clamps a protobuf number into an unsigned integer column's range (NaN → 0). */
function unsigned(value: number, max: number = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isFinite(value) || value <= 0) return 0;
  return Math.min(Math.trunc(value), max);
}

function identityFields(identity: Identity | undefined): Pick<AuditRow, 'subject' | 'groups' | 'client_id' | 'issuer' | 'token_id'> {
  return {
    subject: identity?.subject ?? '',
    groups: identity ? [...identity.groups] : [],
    client_id: identity?.clientId ?? '',
    issuer: identity?.issuer ?? '',
    token_id: identity?.tokenId ?? '',
  };
}

function approverFields(approver: ApprovalApprover | undefined): Pick<AuditRow, 'subject' | 'groups' | 'client_id'> {
  return { subject: approver?.subject ?? '', groups: approver ? [...approver.groups] : [], client_id: approver?.externalId ?? '' };
}

type AttributeFields = Pick<
  AuditRow,
  'verb' | 'api_group' | 'api_version' | 'resource' | 'subresource' | 'namespace' | 'name' | 'path' | 'method' | 'source_ip' | 'user_agent'
>;

function attributeFields(attributes: RequestAttributes | undefined): AttributeFields {
  const kube = attributes?.kube;
  const http = attributes?.http;
  return {
    verb: kube?.verb ?? '',
    api_group: kube?.apiGroup ?? '',
    api_version: kube?.apiVersion ?? '',
    resource: kube?.resource ?? '',
    subresource: kube?.subresource ?? '',
    namespace: kube?.namespace ?? '',
    name: kube?.name ?? '',
    path: kube?.path || http?.path || '',
    method: attributes?.method || http?.method || '',
    source_ip: attributes?.sourceIp ?? '',
    user_agent: attributes?.userAgent ?? '',
  };
}

/** The row of an event with every payload-dependent column empty. */
function baseRowOf(event: EventEnvelope, connection: string, wire: Uint8Array): AuditRow {
  const tsMs = unsigned(event.occurredAtMs);
  return {
    event_id: event.id,
    event_time: Math.min(Math.floor(tsMs / 1000), UINT32_MAX),
    ts_ms: tsMs,
    type: event.type,
    schema_version: unsigned(event.schemaVersion, UINT16_MAX),
    correlation_id: event.correlationId,
    causation_id: event.causationId,
    session_id: event.sessionId,
    node_id: event.nodeId,
    connection,
    ...identityFields(undefined),
    ...attributeFields(undefined),
    effect: '',
    rule_id: '',
    policy_version: '',
    decision_message: '',
    mask_profile: '',
    approval_id: '',
    decision_latency_us: 0,
    status: 0,
    reason: '',
    bytes_in: 0,
    bytes_out: 0,
    duration_ms: 0,
    forwarded: 0,
    error: '',
    prev_hash: event.prevHash,
    hash: event.hash,
    payload_json: '',
    chain_id: event.chainId,
    chain_seq: unsigned(event.chainSeq),
    masked_fields: 0,
    request_body_sha256: '',
    request_body_excerpt: '',
    response_body_sha256: '',
    response_body_excerpt: '',
    payload_pb: wire,
  };
}

function isoOrEmpty(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : '';
}

/**
 * Maps a decoded event to its audit row. Total: every well-formed envelope maps, numbers are
 * clamped into their column's range. Identity and attribute columns are filled only from the
 * events that carry them; the connection always comes from the envelope.
 *
 * `payload_pb` is the event encoded again (same content, same hash); the writer, which has the
 * bytes as received, uses {@link toAuditRowOfWire} instead.
 */
export function toAuditRow(event: EventEnvelope): AuditRow {
  return toAuditRowOfWire(event, toBinary(EventEnvelopeSchema, event));
}

/**
 * {@link toAuditRow} with `payload_pb` = `wire`, the event's encoding as received (what the
 * producer signed), unchanged. `wire` must be the encoding of `event`.
 */
export function toAuditRowOfWire(event: EventEnvelope, wire: Uint8Array): AuditRow {
  const payload = event.payload;
  const bytes = wire;
  const baseRow = (e: EventEnvelope, connection: string): AuditRow => baseRowOf(e, connection, bytes);
  switch (payload.case) {
    case 'requestReceived': {
      const { identity, attributes } = payload.value;
      return {
        ...baseRow(event, event.connection || attributes?.connection || ''),
        ...identityFields(identity),
        ...attributeFields(attributes),
      };
    }
    case 'requestDecided': {
      const { decision, decisionLatencyUs } = payload.value;
      return {
        ...baseRow(event, event.connection),
        effect: decision?.effect ?? '',
        rule_id: decision?.ruleId ?? '',
        policy_version: decision?.policyVersion ?? '',
        decision_message: decision?.message ?? '',
        mask_profile: decision?.maskProfile ?? '',
        decision_latency_us: unsigned(decisionLatencyUs, UINT32_MAX),
      };
    }
    case 'requestRejected': {
      const { status, reason, message, attributes, identity } = payload.value;
      return {
        ...baseRow(event, event.connection || attributes?.connection || ''),
        ...identityFields(identity),
        ...attributeFields(attributes),
        status: unsigned(status, UINT16_MAX),
        reason,
        decision_message: message,
      };
    }
    case 'requestCompleted': {
      const { status, bytesIn, bytesOut, durationMs, error, forwarded, maskedFields, requestBody, responseBody, maskProfile } = payload.value;
      return {
        ...baseRow(event, event.connection),
        mask_profile: maskProfile,
        masked_fields: unsigned(maskedFields, UINT32_MAX),
        request_body_sha256: requestBody?.sha256 ?? '',
        request_body_excerpt: requestBody?.excerpt ?? '',
        response_body_sha256: responseBody?.sha256 ?? '',
        response_body_excerpt: responseBody?.excerpt ?? '',
        status: unsigned(status, UINT16_MAX),
        bytes_in: unsigned(bytesIn),
        bytes_out: unsigned(bytesOut),
        duration_ms: unsigned(durationMs, UINT32_MAX),
        error,
        forwarded: forwarded ? 1 : 0,
      };
    }
    case 'identityAuthenticated': {
      const { identity } = payload.value;
      return { ...baseRow(event, event.connection), ...identityFields(identity) };
    }
    case 'identityRejected': {
      const { reason, issuer, message, tokenHash, status } = payload.value;
      return {
        ...baseRow(event, event.connection),
        // The claimed (unverified) issuer and the token's hash, so repeated attempts can be grouped.
        issuer,
        token_id: tokenHash,
        status: unsigned(status, UINT16_MAX),
        reason,
        decision_message: message,
      };
    }
    case 'auditRetentionApplied': {
      const { store, droppedBeforeMs, partitions, rowsDropped } = payload.value;
      return {
        ...baseRow(event, event.connection),
        reason: 'retention',
        decision_message: `${store}: dropped ${unsigned(rowsDropped)} events before ${isoOrEmpty(droppedBeforeMs)} (months ${partitions.join(', ') || 'none'})`,
      };
    }
    case 'evidenceRead': {
      // Who read the evidence: the reader as the row's identity, the action as its reason, what was asked and how much came back.
      const { reader, action, via, query, results, source } = payload.value;
      return {
        ...baseRow(event, event.connection),
        ...identityFields(reader),
        reason: action,
        source_ip: source,
        decision_message: `${action} via ${via}: ${query} (${results < 0 ? 'streamed' : `${unsigned(results)} results`})`,
      };
    }
    case 'sessionStarted': {
      // The session's kind goes to subresource (exec, attach, portforward) and its protocol to reason.
      const { kind, protocol } = payload.value;
      return { ...baseRow(event, event.connection), subresource: kind, reason: protocol };
    }
    case 'sessionFrames': {
      // bytes_in: recorded client→server bytes (stdin, resize); bytes_out: server→client (stdout, stderr, status).
      let bytesIn = 0;
      let bytesOut = 0;
      for (const f of payload.value.frames) {
        if (f.channel === 0 || f.channel === 4) bytesIn += f.data.length;
        else bytesOut += f.data.length;
      }
      return { ...baseRow(event, event.connection), bytes_in: bytesIn, bytes_out: bytesOut };
    }
    case 'sessionEnded': {
      const { exitCode, status, message, bytesIn, bytesOut, durationMs, error } = payload.value;
      return {
        ...baseRow(event, event.connection),
        // The exit status as text ("exit 0", "exit 3"), empty when unknown; the message as shown to the client.
        reason: exitCode >= 0 ? `exit ${exitCode}` : status,
        decision_message: message,
        bytes_in: unsigned(bytesIn),
        bytes_out: unsigned(bytesOut),
        duration_ms: unsigned(durationMs, UINT32_MAX),
        error,
      };
    }
    case 'approvalRequested': {
      const v = payload.value;
      return {
        ...baseRow(event, event.connection || v.attributes?.connection || ''),
        ...identityFields(v.requester),
        ...attributeFields(v.attributes),
        approval_id: v.approvalId,
        effect: 'require_approval',
        rule_id: v.ruleId,
        policy_version: v.policyVersion,
        decision_message: v.message,
      };
    }
    case 'approvalApproved':
    case 'approvalDenied': {
      // The approver fills the identity columns: who decided, with the reason they gave.
      const v = payload.value;
      return {
        ...baseRow(event, event.connection),
        ...approverFields(v.approver),
        approval_id: v.approvalId,
        reason: v.reason,
      };
    }
    case 'approvalExpired':
      return { ...baseRow(event, event.connection), approval_id: payload.value.approvalId };
    case 'approvalConsumed':
      return { ...baseRow(event, event.connection), approval_id: payload.value.approvalId, forwarded: 1 };
    case 'policyPushed': {
      const v = payload.value;
      return {
        ...baseRow(event, event.connection),
        // Who pushed fills subject; what, from where and the bundle's digest go to the message.
        subject: v.pushedBy,
        policy_version: v.policyVersion,
        reason: 'policy_push',
        decision_message: `pushed policy ${v.policyName} version ${v.policyVersion} (${v.rules} rules, sha256 ${v.bundleSha256}) to ${v.target} from ${v.pushedFrom}${v.previousVersion ? `, replacing ${v.previousVersion}` : ''}`,
      };
    }
    case 'policyActivated': {
      const v = payload.value;
      return {
        ...baseRow(event, event.connection),
        policy_version: v.policyVersion,
        reason: 'policy_activated',
        decision_message: `policy ${v.policyName} version ${v.policyVersion} (${v.rules} rules, sha256 ${v.bundleSha256}) in force from ${v.source}${v.previousVersion ? `, replacing ${v.previousVersion}` : ''}`,
      };
    }
    case 'policyRejected': {
      const v = payload.value;
      return {
        ...baseRow(event, event.connection),
        policy_version: v.claimedVersion,
        reason: 'policy_rejected',
        decision_message: `refused ${v.source} (sha256 ${v.bundleSha256}), keeping ${v.keepingVersion || 'no policy'}: ${v.problems.join('; ')}`,
      };
    }
    case undefined:
      // decodeEvent refuses these; a hand-built envelope still gets its envelope columns.
      return baseRow(event, event.connection);
  }
}

/**
 * The envelope a stored row holds: decoded from `payload_pb`, or parsed from `payload_json` on
 * rows written before migration 5. Throws when neither holds an envelope.
 */
export function rowEnvelope(row: Pick<AuditRow, 'payload_pb' | 'payload_json'>): EventEnvelope {
  if (row.payload_pb.length > 0) return fromBinary(EventEnvelopeSchema, row.payload_pb);
  if (row.payload_json === '') throw new Error('the row holds no envelope (payload_pb and payload_json are both empty)');
  return fromJsonString(EventEnvelopeSchema, row.payload_json);
}

/**
 * A row as readers see it: `payload_json` derived from `payload_pb` when the row stored bytes
 * (the JSON is built on read, where it is rare, instead of on every insert). A row whose bytes
 * do not decode keeps an empty `payload_json`; `audit verify` reports it as unreadable.
 */
export function withPayloadJson(row: AuditRow): AuditRow {
  if (row.payload_pb.length === 0) return row;
  try {
    row.payload_json = JSON.stringify(toJson(EventEnvelopeSchema, fromBinary(EventEnvelopeSchema, row.payload_pb)));
  } catch {
    row.payload_json = '';
  }
  return row;
}

/** The row without its bytes, for JSON output (`payload_json` carries the same content). */
export function rowForJson(row: AuditRow): Omit<AuditRow, 'payload_pb'> {
  const { payload_pb: _bytes, ...rest } = row;
  return rest;
}
