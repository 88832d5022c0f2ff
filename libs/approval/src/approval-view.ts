/**
 * The approvers' REST API in plain functions (the HTTP controllers in apps/approval call them):
 * the representation of an approval, who may see one, the id format and the decision body.
 */
import { describeRequest, type ApprovalRecord } from './approval-record.js';
import { ApprovalError, ApprovalErrorCode } from './approval-error.js';

/** Approval ids as the API takes them (UUIDs, lower-case hex). */
export const APPROVAL_ID_PATTERN = /^[0-9a-f-]{36}$/;

/** Who called the REST API (from a verified bearer token). */
export interface ApiCaller {
  readonly subject: string;
  readonly groups: readonly string[];
}

/** The REST representation of an approval. */
export function approvalView(r: ApprovalRecord): Record<string, unknown> {
  return {
    id: r.id,
    state: r.state,
    what: describeRequest(r.request),
    rule: r.ruleId,
    policyVersion: r.policyVersion,
    message: r.message,
    requester: { subject: r.requester.subject, clientId: r.requester.clientId },
    request: r.request,
    requirement: r.requirement,
    requestedAt: new Date(r.requestedAtMs).toISOString(),
    expiresAt: new Date(r.expiresAtMs).toISOString(),
    approvals: r.approvals.map((a) => ({ subject: a.subject, reason: a.reason, via: a.via, breakGlass: a.breakGlass, at: new Date(a.atMs).toISOString() })),
    ...(r.denial ? { denial: { subject: r.denial.subject, reason: r.denial.reason, via: r.denial.via, at: new Date(r.denial.atMs).toISOString() } } : {}),
    ...(r.grantExpiresAtMs > 0 ? { grantExpiresAt: new Date(r.grantExpiresAtMs).toISOString() } : {}),
    uses: r.uses,
  };
}

/**
 * The approval `id` as `caller` may see it: its requester and its approvers do; for anyone else
 * (and for an id that does not exist) a `not_found`, so ids of others' requests reveal nothing.
 */
export function visibleTo(record: ApprovalRecord | undefined, id: string, caller: ApiCaller): ApprovalRecord {
  const visible =
    record !== undefined && (record.requester.subject === caller.subject || caller.groups.some((g) => record.requirement.approverGroups.includes(g)));
  if (!visible) throw new ApprovalError(ApprovalErrorCode.NotFound, `no approval ${id} visible to ${caller.subject}`);
  return record;
}

/** The reason of `POST /approvals/:id/approve|deny`: an empty body, or JSON `{"reason": "…"}`. */
export function decisionReason(raw: Uint8Array): string {
  if (raw.length === 0) return '';
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'));
  } catch {
    throw new ApprovalError(ApprovalErrorCode.BadRequest, 'the body must be JSON: {"reason": "…"}');
  }
  const reason = (body as { reason?: unknown } | null)?.reason;
  if (reason !== undefined && typeof reason !== 'string') throw new ApprovalError(ApprovalErrorCode.BadRequest, '"reason" must be a string');
  return reason ?? '';
}
