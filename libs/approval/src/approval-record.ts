/**
 * The approval state machine: an approval's record is the fold of its events, in stream order.
 * Pure: the Redis projection, the in-memory store and the rebuild all use the same fold.
 *
 *   pending ──approved (quorum reached)──▶ granted ──consumed (once)──▶ consumed
 *      │ ╲──denied──▶ denied                  └─ window: consumed events count uses until the grant ends
 *      └──expired──▶ expired
 */
import type { EventEnvelope } from '@portcullis/contracts';

/** Where an approval stands. */
export const ApprovalState = {
  Pending: 'pending',
  Granted: 'granted',
  Denied: 'denied',
  Expired: 'expired',
  Consumed: 'consumed',
} as const;
export type ApprovalState = (typeof ApprovalState)[keyof typeof ApprovalState];

/** How an approval's grant is used: by one request, or by identical requests for a while. */
export const ApprovalScope = { Once: 'once', Window: 'window' } as const;
export type ApprovalScope = (typeof ApprovalScope)[keyof typeof ApprovalScope];

/** One approver's decision. */
export interface ApprovalVote {
  readonly subject: string;
  readonly groups: readonly string[];
  readonly via: string;
  readonly externalId: string;
  readonly breakGlass: boolean;
  readonly reason: string;
  readonly atMs: number;
}

/** What an approver sees of the held request. */
export interface ApprovalRequestSummary {
  readonly connection: string;
  readonly method: string;
  readonly verb: string;
  readonly apiGroup: string;
  readonly resource: string;
  readonly subresource: string;
  readonly namespace: string;
  readonly name: string;
  readonly path: string;
  readonly bodyExcerpt: string;
}

/** An approval as the projection holds it (JSON in Redis). */
export interface ApprovalRecord {
  readonly id: string;
  readonly fingerprint: string;
  readonly state: ApprovalState;
  /** The request that opened it (its Audit-Id). */
  readonly requestId: string;
  readonly requester: { readonly subject: string; readonly issuer: string; readonly groups: readonly string[]; readonly clientId: string };
  readonly request: ApprovalRequestSummary;
  readonly ruleId: string;
  readonly policyVersion: string;
  readonly message: string;
  readonly requirement: {
    readonly approverGroups: readonly string[];
    readonly quorum: number;
    readonly scope: ApprovalScope;
    readonly windowSeconds: number;
    readonly waitSeconds: number;
    readonly reasonRequired: boolean;
    readonly channel: string;
  };
  readonly requestedAtMs: number;
  /** Pending until then. */
  readonly expiresAtMs: number;
  readonly approvals: readonly ApprovalVote[];
  readonly denial: ApprovalVote | undefined;
  readonly decidedAtMs: number;
  /** A grant admits requests until then (once: until consumed or then). */
  readonly grantExpiresAtMs: number;
  readonly uses: number;
  /** Events folded in; a rebuild never overwrites a record with a newer version. */
  readonly version: number;
}

/** Folds one approval event into the record (undefined before `approval.requested`). */
export function applyApprovalEvent(record: ApprovalRecord | undefined, event: EventEnvelope, opts: { grantTtlMs: number }): ApprovalRecord | undefined {
  const p = event.payload;
  switch (p.case) {
    case 'approvalRequested': {
      if (record !== undefined) return record;
      const v = p.value;
      const k = v.attributes?.kube;
      const r = v.requirement;
      return {
        id: v.approvalId,
        fingerprint: v.fingerprint,
        state: ApprovalState.Pending,
        requestId: event.correlationId,
        requester: {
          subject: v.requester?.subject ?? '',
          issuer: v.requester?.issuer ?? '',
          groups: [...(v.requester?.groups ?? [])],
          clientId: v.requester?.clientId ?? '',
        },
        request: {
          connection: v.attributes?.connection ?? event.connection,
          method: v.attributes?.method ?? '',
          verb: k?.verb ?? '',
          apiGroup: k?.apiGroup ?? '',
          resource: k?.resource ?? '',
          subresource: k?.subresource ?? '',
          namespace: k?.namespace ?? '',
          name: k?.name ?? '',
          path: k?.path || v.attributes?.http?.path || '',
          bodyExcerpt: v.bodyExcerpt,
        },
        ruleId: v.ruleId,
        policyVersion: v.policyVersion,
        message: v.message,
        requirement: {
          approverGroups: [...(r?.approverGroups ?? [])],
          quorum: Math.max(1, r?.quorum ?? 1),
          scope: r?.scope === ApprovalScope.Window ? ApprovalScope.Window : ApprovalScope.Once,
          windowSeconds: r?.windowSeconds ?? 0,
          waitSeconds: r?.waitSeconds ?? 0,
          reasonRequired: r?.reasonRequired ?? false,
          channel: r?.channel ?? '',
        },
        requestedAtMs: event.occurredAtMs,
        expiresAtMs: v.expiresAtMs,
        approvals: [],
        denial: undefined,
        decidedAtMs: 0,
        grantExpiresAtMs: 0,
        uses: 0,
        version: 1,
      };
    }
    case 'approvalApproved': {
      if (record === undefined || record.state !== ApprovalState.Pending) return record;
      const v = p.value;
      const subject = v.approver?.subject ?? '';
      if (record.approvals.some((a) => a.subject === subject)) return record;
      const vote: ApprovalVote = {
        subject,
        groups: [...(v.approver?.groups ?? [])],
        via: v.approver?.via ?? '',
        externalId: v.approver?.externalId ?? '',
        breakGlass: v.approver?.breakGlass ?? false,
        reason: v.reason,
        atMs: event.occurredAtMs,
      };
      const approvals = [...record.approvals, vote];
      if (!v.granted) return { ...record, approvals, version: record.version + 1 };
      const grantExpiresAtMs =
        v.grantExpiresAtMs > 0
          ? v.grantExpiresAtMs
          : record.requirement.scope === ApprovalScope.Window
            ? event.occurredAtMs + record.requirement.windowSeconds * 1000
            : event.occurredAtMs + opts.grantTtlMs;
      return { ...record, approvals, state: ApprovalState.Granted, decidedAtMs: event.occurredAtMs, grantExpiresAtMs, version: record.version + 1 };
    }
    case 'approvalDenied': {
      if (record === undefined || record.state !== ApprovalState.Pending) return record;
      const v = p.value;
      const denial: ApprovalVote = {
        subject: v.approver?.subject ?? '',
        groups: [...(v.approver?.groups ?? [])],
        via: v.approver?.via ?? '',
        externalId: v.approver?.externalId ?? '',
        breakGlass: v.approver?.breakGlass ?? false,
        reason: v.reason,
        atMs: event.occurredAtMs,
      };
      return { ...record, state: ApprovalState.Denied, denial, decidedAtMs: event.occurredAtMs, version: record.version + 1 };
    }
    case 'approvalExpired':
      if (record === undefined || record.state !== ApprovalState.Pending) return record;
      return { ...record, state: ApprovalState.Expired, decidedAtMs: event.occurredAtMs, version: record.version + 1 };
    case 'approvalConsumed': {
      if (record === undefined || record.state !== ApprovalState.Granted) return record;
      const uses = Math.max(record.uses + 1, p.value.uses);
      const state = record.requirement.scope === ApprovalScope.Once ? ApprovalState.Consumed : ApprovalState.Granted;
      return { ...record, state, uses, version: record.version + 1 };
    }
    default:
      return record;
  }
}

/**
 * True when an identical request should open a new approval instead of answering from this one:
 * its once-grant was used, or its grant ended. Denials and expiries are not stale: retries get
 * the same refusal until the record's retention ends.
 */
export function isStale(record: ApprovalRecord, nowMs: number): boolean {
  return record.state === ApprovalState.Consumed || (record.state === ApprovalState.Granted && record.grantExpiresAtMs <= nowMs);
}

/** When the projection may forget the record: its last useful moment plus the retention. */
export function recordDeadlineMs(record: ApprovalRecord, retentionMs: number, nowMs: number): number {
  switch (record.state) {
    case ApprovalState.Pending:
      return record.expiresAtMs + retentionMs;
    case ApprovalState.Granted:
      return record.grantExpiresAtMs + retentionMs;
    default:
      return Math.max(record.decidedAtMs, nowMs) + retentionMs;
  }
}

/** One line naming the held request, e.g. `delete namespaces staging` or `delete pods web-0 in namespace prod`. */
export function describeRequest(r: ApprovalRequestSummary): string {
  if (r.resource === '') return `${r.method} ${r.path}`;
  const res = r.subresource ? `${r.resource}/${r.subresource}` : r.resource;
  // The API server gives a Namespace object its own name as namespace: do not say it twice.
  const ns = r.namespace && !(r.resource === 'namespaces' && r.subresource === '') ? ` in namespace ${r.namespace}` : '';
  return `${r.verb} ${res}${r.name ? ` ${r.name}` : ''}${ns}`;
}
