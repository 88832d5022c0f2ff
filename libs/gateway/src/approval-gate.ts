import {
  ApprovalGateRequestSchema,
  ApprovalGateState,
  create,
  decodeApprovalDecisionNotice,
  decodeApprovalGateReply,
  encodeApprovalGateRequest,
  Subjects,
  type ApprovalGateReply,
  type Decision,
  type Identity,
  type RequestAttributes,
} from '@portcullis/contracts';
import { BusError, type BusSubscription, type MessageBus } from '@portcullis/bus/pure';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';

/** The header a client names its approval with. */
export const APPROVAL_HEADER = 'x-portcullis-approval';

/** Approval ids are UUIDv7s; anything else in the header is refused before it reaches a subject. */
const APPROVAL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A held request, as the gate sees it. */
export interface HeldRequest {
  readonly requestId: string;
  readonly identity: Identity;
  readonly attributes: RequestAttributes;
  readonly decision: Decision;
  readonly fingerprint: string;
  readonly bodySha256: string;
  readonly bodyExcerpt: string;
  /** X-Portcullis-Approval, or '' */
  readonly approvalId: string;
}

/** Gate settings. */
export interface ApprovalGateOptions {
  bus: MessageBus;
  /** How long one question to the approval role may take. */
  timeoutMs: number;
  /** Hold time when the rule names none. */
  defaultWaitMs?: number;
  /** The command hint printed in pending answers (e.g. `npx portcullis`). */
  cliName?: string;
  /** Extra CLI flags naming who can approve (e.g. ` --as-client sre-alice` with the dev issuer). */
  approverFlags?: (approverGroups: readonly string[]) => string;
}

/** The request may go through, under this approval. */
export interface Admitted {
  readonly approvalId: string;
  readonly approvedBy: string;
}

/**
 * The edge's side of just-in-time approval: asks the approval role (request-reply) to open or
 * find the approval bound to this exact request, then holds the request — writing nothing to
 * the client — until the decision is broadcast, the rule's wait is over, or the client leaves.
 * Resolves when the request may be forwarded; rejects with the GatewayError to answer otherwise.
 */
export class ApprovalGate {
  private readonly defaultWaitMs: number;
  private readonly cli: string;

  constructor(private readonly opts: ApprovalGateOptions) {
    this.defaultWaitMs = opts.defaultWaitMs ?? 30_000;
    this.cli = opts.cliName ?? 'portcullis';
  }

  /** Validates the X-Portcullis-Approval header value ('' when absent). */
  static approvalIdFrom(header: string | string[] | undefined): string {
    const v = (Array.isArray(header) ? header[0] : header)?.trim().toLowerCase() ?? '';
    if (v !== '' && !APPROVAL_ID.test(v)) {
      throw new GatewayError(
        GatewayErrorCode.BadPath,
        `portcullis: the ${APPROVAL_HEADER} header must be an approval id (a UUID), got ${JSON.stringify(v.slice(0, 64))}`,
      );
    }
    return v;
  }

  async hold(req: HeldRequest, clientGone: AbortSignal): Promise<Admitted> {
    const first = await this.ask(req, req.approvalId, false);
    if (first.state !== ApprovalGateState.Pending) return this.settle(first, req);
    const id = first.approvalId;
    const waitMs = (req.decision.approval?.waitSeconds ?? 0) > 0 ? req.decision.approval!.waitSeconds * 1000 : this.defaultWaitMs;

    let wake: (() => void) | undefined;
    let notified = false;
    let sub: BusSubscription | undefined;
    try {
      sub = this.opts.bus.subscribe(Subjects.approvalDecided(id), (msg) => {
        try {
          if (decodeApprovalDecisionNotice(msg.data).approvalId !== id) return;
        } catch {
          return;
        }
        notified = true;
        wake?.();
      });
    } catch (cause) {
      throw new GatewayError(GatewayErrorCode.ApprovalUnavailable, 'portcullis: approval service unavailable (cannot listen for the decision)', { cause });
    }
    const deadline = Date.now() + waitMs;
    try {
      // Asking again after subscribing closes the race with a decision made in between.
      let current = await this.ask(req, id, true);
      while (current.state === ApprovalGateState.Pending) {
        const left = deadline - Date.now();
        if (left <= 0 || clientGone.aborted) break;
        if (!notified) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, left);
            const done = (): void => {
              clearTimeout(timer);
              clientGone.removeEventListener('abort', done);
              wake = undefined;
              resolve();
            };
            wake = done;
            clientGone.addEventListener('abort', done, { once: true });
          });
        }
        if (clientGone.aborted) break;
        if (!notified && Date.now() < deadline) continue;
        notified = false;
        current = await this.ask(req, id, true);
      }
      if (clientGone.aborted)
        throw new GatewayError(GatewayErrorCode.ApprovalPending, 'portcullis: the client went away while its request was held for approval');
      return this.settle(current, req);
    } finally {
      void sub.unsubscribe().catch(() => undefined);
    }
  }

  private async ask(req: HeldRequest, approvalId: string, noOpen: boolean): Promise<ApprovalGateReply> {
    const payload = encodeApprovalGateRequest(
      create(ApprovalGateRequestSchema, {
        requestId: req.requestId,
        identity: req.identity,
        attributes: req.attributes,
        decision: req.decision,
        fingerprint: req.fingerprint,
        bodySha256: req.bodySha256,
        bodyExcerpt: req.bodyExcerpt,
        approvalId,
        noOpen,
      }),
    );
    let reply: ApprovalGateReply;
    try {
      const msg = await this.opts.bus.request(Subjects.approvalGate(), payload, { timeoutMs: this.opts.timeoutMs });
      reply = decodeApprovalGateReply(msg.data);
    } catch (cause) {
      const why = cause instanceof BusError ? (cause.code === 'remote' ? cause.message : cause.code) : 'undecodable reply';
      throw new GatewayError(GatewayErrorCode.ApprovalUnavailable, `portcullis: approval service unavailable (${why}); the request was not forwarded`, {
        cause,
      });
    }
    if (reply.error !== '') {
      throw new GatewayError(GatewayErrorCode.ApprovalUnavailable, `portcullis: approval service unavailable (${reply.error}); the request was not forwarded`);
    }
    return reply;
  }

  private settle(reply: ApprovalGateReply, req: HeldRequest): Admitted {
    const id = reply.approvalId;
    const rule = `rule ${req.decision.ruleId}`;
    const details = { name: id, kind: 'approvals' };
    switch (reply.state) {
      case ApprovalGateState.Admitted:
        return { approvalId: id, approvedBy: reply.decidedBy };
      case ApprovalGateState.Pending:
        throw new GatewayError(GatewayErrorCode.ApprovalPending, this.pendingMessage(reply, req), {
          details: { ...details, causes: [{ reason: 'ApprovalPending', message: `approval ${id} is pending` }] },
        });
      case ApprovalGateState.Denied:
        throw new GatewayError(
          GatewayErrorCode.ApprovalRefused,
          `portcullis: approval ${id} was denied by ${reply.decidedBy || 'an approver'}${reply.reason ? `: ${reply.reason}` : ''} (${rule})`,
          { details: { ...details, causes: [{ reason: 'ApprovalDenied', message: reply.reason }] } },
        );
      case ApprovalGateState.Expired:
        throw new GatewayError(GatewayErrorCode.ApprovalRefused, `portcullis: approval ${id} expired: nobody decided it in time (${rule})`, {
          details: { ...details, causes: [{ reason: 'ApprovalExpired', message: `approval ${id} expired` }] },
        });
      case ApprovalGateState.Used:
        throw new GatewayError(
          GatewayErrorCode.ApprovalRefused,
          `portcullis: approval ${id} was for one request and another request already used it (${rule}); re-run the command without ${APPROVAL_HEADER} to ask for a new approval`,
          { details: { ...details, causes: [{ reason: 'ApprovalUsed', message: `approval ${id} is used` }] } },
        );
      case ApprovalGateState.Mismatch:
        throw new GatewayError(
          GatewayErrorCode.ApprovalRefused,
          `portcullis: approval ${id} was given for a different request (another identity, target or body); it cannot admit this one`,
          { details: { ...details, causes: [{ reason: 'ApprovalMismatch', message: 'fingerprint mismatch' }] } },
        );
      default:
        throw new GatewayError(
          GatewayErrorCode.ApprovalRefused,
          `portcullis: no approval ${req.approvalId || id} is known (it may have ended and been forgotten); re-run the command without ${APPROVAL_HEADER}`,
          {
            details,
          },
        );
    }
  }

  private pendingMessage(reply: ApprovalGateReply, req: HeldRequest): string {
    const id = reply.approvalId;
    const a = req.decision.approval;
    const who = a ? `${a.quorum > 1 ? `${a.quorum} approvers` : 'an approver'} from ${a.approverGroups.join(' or ')}` : 'an approver';
    const expires = reply.expiresAtMs > 0 ? `; it expires at ${new Date(reply.expiresAtMs).toISOString()}` : '';
    const slack = a?.channel ? ` (or Approve in Slack ${a.channel})` : '';
    return (
      `portcullis: approval pending: approval ${id} (rule ${req.decision.ruleId}) waits for ${who}${expires}. ` +
      `An approver runs: ${this.cli} approvals approve ${id}${a?.reasonRequired ? ' --reason "…"' : ''}${this.opts.approverFlags?.(a?.approverGroups ?? []) ?? ''}${slack}. ` +
      `Then re-run the same command, or send the header X-Portcullis-Approval: ${id}`
    );
  }
}
