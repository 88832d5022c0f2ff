import { create, fromBinary } from '@bufbuild/protobuf';
import { randomFillSync } from 'node:crypto';
import { decodeMessage, encodeMessage } from './message-codec.js';
import type { ApprovalApproved, ApprovalConsumed, ApprovalDenied, ApprovalExpired, ApprovalRequested } from './gen/portcullis/v1/approval_pb.js';
import {
  EventBatchSchema,
  EventEnvelopeSchema,
  type AuditRetentionApplied,
  type EventEnvelope,
  type EvidenceRead,
  type IdentityAuthenticated,
  type IdentityRejected,
  type PolicyActivated,
  type PolicyPushed,
  type PolicyRejected,
  type RequestCompleted,
  type RequestDecided,
  type RequestReceived,
  type RequestRejected,
  type SessionEnded,
  type SessionFrames,
  type SessionStarted,
} from './gen/portcullis/v1/events_pb.js';

/** Current envelope schema version; bump only with additive changes. */
export const SCHEMA_VERSION = 1;

/** Event type names (past tense). */
export const EventType = {
  RequestReceived: 'request.received',
  RequestDecided: 'request.decided',
  RequestRejected: 'request.rejected',
  RequestCompleted: 'request.completed',
  IdentityAuthenticated: 'identity.authenticated',
  IdentityRejected: 'identity.rejected',
  AuditRetentionApplied: 'audit.retention_applied',
  EvidenceRead: 'evidence.read',
  SessionStarted: 'session.started',
  SessionFrames: 'session.frames',
  SessionEnded: 'session.ended',
  ApprovalRequested: 'approval.requested',
  ApprovalApproved: 'approval.approved',
  ApprovalDenied: 'approval.denied',
  ApprovalExpired: 'approval.expired',
  ApprovalConsumed: 'approval.consumed',
  PolicyPushed: 'policy.pushed',
  PolicyActivated: 'policy.activated',
  PolicyRejected: 'policy.rejected',
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

/** The typed event map: emitting an event with the wrong payload is a compile error. */
export interface EventPayloadMap {
  'request.received': RequestReceived;
  'request.decided': RequestDecided;
  'request.rejected': RequestRejected;
  'request.completed': RequestCompleted;
  'identity.authenticated': IdentityAuthenticated;
  'identity.rejected': IdentityRejected;
  'audit.retention_applied': AuditRetentionApplied;
  'evidence.read': EvidenceRead;
  'session.started': SessionStarted;
  'session.frames': SessionFrames;
  'session.ended': SessionEnded;
  'approval.requested': ApprovalRequested;
  'approval.approved': ApprovalApproved;
  'approval.denied': ApprovalDenied;
  'approval.expired': ApprovalExpired;
  'approval.consumed': ApprovalConsumed;
  'policy.pushed': PolicyPushed;
  'policy.activated': PolicyActivated;
  'policy.rejected': PolicyRejected;
}

const PAYLOAD_CASE = {
  'request.received': 'requestReceived',
  'request.decided': 'requestDecided',
  'request.rejected': 'requestRejected',
  'request.completed': 'requestCompleted',
  'identity.authenticated': 'identityAuthenticated',
  'identity.rejected': 'identityRejected',
  'audit.retention_applied': 'auditRetentionApplied',
  'evidence.read': 'evidenceRead',
  'session.started': 'sessionStarted',
  'session.frames': 'sessionFrames',
  'session.ended': 'sessionEnded',
  'approval.requested': 'approvalRequested',
  'approval.approved': 'approvalApproved',
  'approval.denied': 'approvalDenied',
  'approval.expired': 'approvalExpired',
  'approval.consumed': 'approvalConsumed',
  'policy.pushed': 'policyPushed',
  'policy.activated': 'policyActivated',
  'policy.rejected': 'policyRejected',
} as const satisfies Record<EventType, NonNullable<EventEnvelope['payload']['case']>>;

const TYPE_OF_CASE = Object.fromEntries(Object.entries(PAYLOAD_CASE).map(([type, c]) => [c, type])) as Record<
  NonNullable<EventEnvelope['payload']['case']>,
  EventType
>;

/** Envelope fields an event producer supplies. */
export interface EventMeta {
  correlationId: string;
  causationId?: string;
  sessionId?: string;
  nodeId: string;
  connection: string;
  occurredAtMs?: number;
  id?: string;
}

/** Builds an event envelope around a typed payload. */
export function buildEvent<T extends EventType>(type: T, payload: EventPayloadMap[T], meta: EventMeta): EventEnvelope {
  return create(EventEnvelopeSchema, {
    id: meta.id ?? newEventId(),
    type,
    schemaVersion: SCHEMA_VERSION,
    occurredAtMs: meta.occurredAtMs ?? Date.now(),
    correlationId: meta.correlationId,
    causationId: meta.causationId ?? '',
    sessionId: meta.sessionId ?? '',
    nodeId: meta.nodeId,
    connection: meta.connection,
    payload: { case: PAYLOAD_CASE[type], value: payload } as EventEnvelope['payload'],
  });
}

/** Encodes an envelope for the bus (protobuf binary). */
export function encodeEvent(event: EventEnvelope): Uint8Array {
  return encodeMessage(EventEnvelopeSchema, event);
}

/** The subject of a group-committed batch of events (see {@link encodeEventBatch}). */
export const AUDIT_BATCH_SUBJECT = 'audit._batch.events';

/**
 * Encodes sealed events (each exactly as sealed, in chain order) as one message for
 * {@link AUDIT_BATCH_SUBJECT}. Connection names cannot start with "_", and event types always
 * have a dot, so no event's own subject (`audit.<connection>.<type>`) is ever the batch subject.
 */
export function encodeEventBatch(events: readonly Uint8Array[]): Uint8Array {
  // Written by hand (field 1, wire type 2, per entry): the same bytes as protobuf-es' toBinary, in
  // one exact-size allocation.
  let size = 0;
  for (const e of events) size += 1 + varintSize(e.length) + e.length;
  const out = new Uint8Array(size);
  let p = 0;
  for (const e of events) {
    out[p++] = BATCH_EVENTS_TAG;
    let n = e.length;
    while (n > 0x7f) {
      out[p++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    out[p++] = n;
    out.set(e, p);
    p += e.length;
  }
  return out;
}

/** `EventBatch.events` (field 1, length-delimited). */
const BATCH_EVENTS_TAG = (1 << 3) | 2;

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/**
 * The entries of an EventBatch, as views of `data`; undefined when the bytes are anything but a
 * plain sequence of field-1 entries (protobuf-es then decides: unknown fields, or an error).
 */
function readBatchEntries(data: Uint8Array): Uint8Array[] | undefined {
  const entries: Uint8Array[] = [];
  const end = data.length;
  let p = 0;
  while (p < end) {
    if (data[p++] !== BATCH_EVENTS_TAG) return undefined;
    let len = 0;
    let shift = 0;
    let b: number;
    do {
      if (p >= end || shift > 28) return undefined;
      b = data[p++]!;
      len += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    if (len > end - p) return undefined;
    entries.push(data.subarray(p, p + len));
    p += len;
  }
  return entries;
}

/**
 * The encoded events one audit-stream message carries: the message itself when it is on an
 * event's own subject, the batch's entries when it is on {@link AUDIT_BATCH_SUBJECT}. Throws
 * {@link EventDecodeError} when a batch cannot be read; each entry still has to be decoded.
 */
export function auditMessageEvents(subject: string, data: Uint8Array): Uint8Array[] {
  if (subject !== AUDIT_BATCH_SUBJECT) return [data];
  try {
    return readBatchEntries(data) ?? fromBinary(EventBatchSchema, data).events;
  } catch (cause) {
    throw new EventDecodeError(`not a protobuf EventBatch: ${(cause as Error).message}`, { cause });
  }
}

/** Why an event could not be decoded. */
export class EventDecodeError extends Error {
  override readonly name = 'EventDecodeError';
}

/**
 * Decodes and checks an envelope: throws {@link EventDecodeError} when the bytes are not an
 * envelope, the payload is missing, or the type does not match the payload.
 */
export function decodeEvent(bytes: Uint8Array): EventEnvelope {
  let event: EventEnvelope;
  try {
    event = decodeMessage(EventEnvelopeSchema, bytes);
  } catch (cause) {
    throw new EventDecodeError(`not a protobuf EventEnvelope: ${(cause as Error).message}`, { cause });
  }
  if (!event.id) throw new EventDecodeError('event has no id');
  const c = event.payload.case;
  if (c === undefined) throw new EventDecodeError(`event ${event.id} has no payload`);
  if (TYPE_OF_CASE[c] !== event.type) {
    throw new EventDecodeError(`event ${event.id} has type ${event.type} but payload ${c}`);
  }
  return event;
}

/** The payload case name of an event type. */
export function payloadCaseOf(type: EventType): (typeof PAYLOAD_CASE)[EventType] {
  return PAYLOAD_CASE[type];
}

// One randomFillSync per 512 ids instead of one randomBytes per id (it showed in the edge's profile).
const RANDOM_POOL_BYTES = 4096;
const randomPool = Buffer.alloc(RANDOM_POOL_BYTES);
let poolOffset = RANDOM_POOL_BYTES;
let lastMs = 0;
let sequence = 0;

/**
 * A UUIDv7: time-ordered, so ids sort by creation time in ClickHouse and logs. Within one
 * millisecond a 12-bit counter (RFC 9562 §6.2 method 1) keeps ids from one process in creation
 * order. Node 20 has randomUUID (v4) only.
 */
export function newEventId(now: number = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    sequence = Math.floor(Math.random() * 0x200); // random start, room to count up
  } else {
    now = lastMs; // clock went back or same ms: stay monotonic
    sequence += 1;
    if (sequence > 0xfff) {
      lastMs += 1;
      now = lastMs;
      sequence = 0;
    }
  }
  const b = Buffer.allocUnsafe(16);
  if (poolOffset + 10 > RANDOM_POOL_BYTES) {
    randomFillSync(randomPool);
    poolOffset = 0;
  }
  // Bytes 0-7 are the time and counter; only 8-15 need randomness.
  randomPool.copy(b, 8, poolOffset, poolOffset + 8);
  poolOffset += 8;
  b[0] = Math.floor(now / 2 ** 40) & 0xff;
  b[1] = Math.floor(now / 2 ** 32) & 0xff;
  b[2] = (now >>> 24) & 0xff;
  b[3] = (now >>> 16) & 0xff;
  b[4] = (now >>> 8) & 0xff;
  b[5] = now & 0xff;
  b[6] = 0x70 | ((sequence >>> 8) & 0x0f);
  b[7] = sequence & 0xff;
  b[8] = 0x80 | (b[8]! & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
