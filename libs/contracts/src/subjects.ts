import { AUDIT_BATCH_SUBJECT } from './events.js';
/** A NATS subject token must not contain separators or wildcards. */
const SUBJECT_TOKEN = /^[A-Za-z0-9_-]+$/;

function token(value: string, what: string): string {
  if (!SUBJECT_TOKEN.test(value)) {
    throw new Error(`invalid ${what} for a NATS subject token: ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Every NATS subject the system uses, built by functions so that no handler concatenates
 * subject strings itself.
 */
export const Subjects = {
  /** Edge → policy role, request-reply in the {@link QueueGroups.policy} queue group. */
  policyDecide: (): string => 'portcullis.policy.decide',
  /** Edge or CLI → policy role, request-reply in {@link QueueGroups.policy}: explain a decision. */
  policyExplain: (): string => 'portcullis.policy.explain',
  /** Policy role → every edge, broadcast: a policy process swapped in a new policy version. */
  policyChanged: (): string => 'portcullis.policy.changed',
  /** Audit events: `audit.<connection>.<event type>` (the type has dots, e.g. request.received). */
  auditEvent: (connection: string, eventType: string): string => `audit.${token(connection, 'connection')}.${eventType}`,
  /** All audit events (the audit stream's filter). */
  auditAll: (): string => 'audit.>',
  /** A group-committed batch of an edge's events (an `EventBatch`; see `auditMessageEvents`). */
  auditBatch: (): string => AUDIT_BATCH_SUBJECT,
  /** Approval events of every connection (the approval role's replay filter). */
  auditApprovalEvents: (): string => 'audit.*.approval.>',
  /**
   * Edge → approval role, request-reply in the {@link QueueGroups.approval} queue group: open or
   * find the approval of one exact request, and consume it when granted.
   */
  approvalGate: (): string => 'portcullis.approval.gate',
  /** Broadcast when an approval is granted, denied or expires: releases the edge holding it. */
  approvalDecided: (approvalId: string): string => `portcullis.approval.decided.${token(approvalId, 'approval id')}`,
  /** Events the audit writer could not decode, with the reason in a header. */
  auditDeadLetter: (): string => 'portcullis.deadletter.audit',
} as const;

/** Queue groups: members share the load; one answer per request. */
export const QueueGroups = {
  policy: 'portcullis-policy',
  approval: 'portcullis-approval',
} as const;

/** NATS KV buckets. */
export const Buckets = {
  /** Policy bundles: key {@link BucketKeys.policyBundle} holds the YAML policy in force. */
  policy: 'portcullis_policy',
} as const;

/** Keys within the {@link Buckets}. */
export const BucketKeys = {
  /** The policy bundle (the policy document's YAML text); each put is a new revision. */
  policyBundle: 'bundle',
} as const;

/** JetStream streams and their subjects. */
export const Streams = {
  audit: { name: 'PORTCULLIS_AUDIT', subjects: ['audit.>'] },
  deadLetter: { name: 'PORTCULLIS_DEADLETTER', subjects: ['portcullis.deadletter.>'] },
} as const;

/** Durable consumer names. */
export const Consumers = {
  auditWriter: 'audit-writer',
} as const;

/** Message headers used on the bus. */
export const BusHeaders = {
  /** JetStream de-duplication id: always the event id. */
  msgId: 'Nats-Msg-Id',
  /** Why a message went to the dead-letter stream. */
  deadLetterReason: 'Portcullis-Dead-Letter-Reason',
  deadLetterSubject: 'Portcullis-Original-Subject',
} as const;
