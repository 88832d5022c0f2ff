import {
  ApprovalApprovedSchema,
  ApprovalConsumedSchema,
  ApprovalDeniedSchema,
  ApprovalExpiredSchema,
  ApprovalGateReplySchema,
  ApprovalGateState,
  ApprovalRequestedSchema,
  buildEvent,
  create,
  encodeApprovalDecisionNotice,
  ApprovalDecisionNoticeSchema,
  EventType,
  newEventId,
  Subjects,
  type ApprovalGateReply,
  type ApprovalGateRequest,
  type EventEnvelope,
} from '@portcullis/contracts';
import type { MessageBus } from '@portcullis/bus';
import type { Logger } from '@portcullis/common';
import { applyApprovalEvent, ApprovalScope, ApprovalState, describeRequest, isStale, recordDeadlineMs, type ApprovalRecord } from './approval-record.js';
import type { ApprovalStore } from './approval-store.port.js';
import type { ApprovalJournal } from './approval-journal.js';
import type { ChainHead } from '@portcullis/audit-store/pure';
import { ApprovalError, ApprovalErrorCode } from './approval-error.js';

/** Someone deciding an approval, as the approval role established them. */
export interface Approver {
  readonly subject: string;
  readonly groups: readonly string[];
  /** `slack` or `api` (REST and CLI). */
  readonly via: string;
  /** The Slack user id, when via Slack. */
  readonly externalId?: string;
}

/** What an approver decides. */
export const Verdict = { Approve: 'approve', Deny: 'deny' } as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/** Told about approvals that need a message (Slack); must not throw or block. */
export interface ApprovalNotifier {
  requested(record: ApprovalRecord): void;
  decided(record: ApprovalRecord): void;
}

/** What the approval service needs. */
export interface ApprovalServiceOptions {
  store: ApprovalStore;
  journal: ApprovalJournal;
  bus: MessageBus;
  nodeId: string;
  logger: Logger;
  /** How long an approval can be decided. */
  pendingTtlMs: number;
  /** How long a once-grant waits to be used. */
  grantTtlMs: number;
  /** How long decided approvals are remembered (retries get the same answer). */
  retentionMs: number;
  /** How far back a rebuild reads the stream. */
  rebuildLookbackMs: number;
  /** Members approve alone, whatever the rule's groups and quorum. */
  breakGlassGroups: readonly string[];
  notifier?: ApprovalNotifier | undefined;
  /** Told when an approval ends pending, with how long it waited (for portcullis_approval_wait_duration_seconds). */
  onDecided?: (outcome: ApprovalOutcome, waitedMs: number) => void;
  now?: () => number;
}

/** How an approval stopped waiting. */
export type ApprovalOutcome = 'approved' | 'denied' | 'expired';

/**
 * The approval state machine over the durable log and the projection: opens one approval per
 * request fingerprint, records each decision as an event (acked) before the projection changes,
 * releases the edge holding the request with a broadcast, and consumes grants atomically.
 */
export class ApprovalService {
  private rebuilding: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: ApprovalServiceOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The edge's question for one held request: open or find its approval; consume it when granted. */
  async gate(req: ApprovalGateRequest): Promise<ApprovalGateReply> {
    await this.ready();
    const now = this.now();
    if (req.approvalId !== '') {
      const record = await this.opts.store.get(req.approvalId);
      if (record === undefined) return reply(ApprovalGateState.Unknown, req.approvalId);
      if (record.fingerprint !== req.fingerprint) return reply(ApprovalGateState.Mismatch, record.id);
      return this.answer(record, req, now);
    }
    const boundId = await this.opts.store.findByFingerprint(req.fingerprint);
    const bound = boundId === undefined ? undefined : await this.opts.store.get(boundId);
    if (bound !== undefined && !isStale(bound, now)) return this.answer(bound, req, now);
    if (req.noOpen) return reply(ApprovalGateState.Unknown, '');
    return this.open(req, now);
  }

  /** Records an approver's decision. Refusals are ApprovalErrors naming the rule broken. */
  async decide(id: string, approver: Approver, verdict: Verdict, reason: string): Promise<ApprovalRecord> {
    await this.ready();
    const trimmed = reason.trim().slice(0, 500);
    const record = await this.opts.store.withLock(id, async () => {
      let current = await this.opts.store.get(id);
      if (current === undefined) throw new ApprovalError(ApprovalErrorCode.NotFound, `no approval ${id} (unknown, or it ended and was forgotten)`);
      const now = this.now();
      if (current.state === ApprovalState.Pending && current.expiresAtMs <= now) current = await this.expireLocked(current);
      if (current.state !== ApprovalState.Pending) {
        throw new ApprovalError(ApprovalErrorCode.AlreadyDecided, `approval ${id} is already ${current.state}`);
      }
      if (approver.subject === current.requester.subject) {
        throw new ApprovalError(ApprovalErrorCode.SelfApproval, `${approver.subject} asked for this request and cannot decide it`);
      }
      const breakGlass = approver.groups.some((g) => this.opts.breakGlassGroups.includes(g));
      if (!breakGlass && !approver.groups.some((g) => current.requirement.approverGroups.includes(g))) {
        throw new ApprovalError(
          ApprovalErrorCode.NotAnApprover,
          `${approver.subject} is not in an approver group of rule ${current.ruleId} (${current.requirement.approverGroups.join(', ')})`,
        );
      }
      if (current.requirement.reasonRequired && trimmed === '') {
        throw new ApprovalError(ApprovalErrorCode.ReasonRequired, `rule ${current.ruleId} requires a reason or ticket link`);
      }
      const who = { subject: approver.subject, groups: [...approver.groups], via: approver.via, externalId: approver.externalId ?? '', breakGlass };
      const meta = { correlationId: current.requestId, nodeId: this.opts.nodeId, connection: current.request.connection, occurredAtMs: now };
      let event: EventEnvelope;
      if (verdict === Verdict.Deny) {
        event = buildEvent(EventType.ApprovalDenied, create(ApprovalDeniedSchema, { approvalId: id, approver: who, reason: trimmed }), meta);
      } else {
        if (current.approvals.some((a) => a.subject === approver.subject)) {
          throw new ApprovalError(
            ApprovalErrorCode.AlreadyApproved,
            `${approver.subject} already approved ${id}; the rule needs ${current.requirement.quorum} distinct approvers`,
          );
        }
        const approvals = current.approvals.length + 1;
        const granted = breakGlass || approvals >= current.requirement.quorum;
        const grantExpiresAtMs = !granted
          ? 0
          : current.requirement.scope === ApprovalScope.Window
            ? now + current.requirement.windowSeconds * 1000
            : now + this.opts.grantTtlMs;
        event = buildEvent(
          EventType.ApprovalApproved,
          create(ApprovalApprovedSchema, { approvalId: id, approver: who, reason: trimmed, granted, approvals, grantExpiresAtMs }),
          meta,
        );
      }
      return this.commit(current, event);
    });
    this.opts.logger.info('approval decided', { approvalId: id, verdict, by: approver.subject, via: approver.via, state: record.state });
    if (record.state !== ApprovalState.Pending) this.announce(record);
    else this.opts.notifier?.decided(record); // a partial approval: the message shows the votes so far
    return record;
  }

  /** One approval, after a rebuild if the projection lost its state. */
  async get(id: string): Promise<ApprovalRecord | undefined> {
    await this.ready();
    return this.opts.store.get(id);
  }

  /** Pending approvals the viewer may decide or asked for themselves. */
  async list(viewer: { subject: string; groups: readonly string[] }): Promise<ApprovalRecord[]> {
    await this.ready();
    const breakGlass = viewer.groups.some((g) => this.opts.breakGlassGroups.includes(g));
    return (await this.opts.store.listPending()).filter(
      (r) => breakGlass || r.requester.subject === viewer.subject || viewer.groups.some((g) => r.requirement.approverGroups.includes(g)),
    );
  }

  /** Expires pending approvals whose time is up; returns how many. */
  async expireDue(): Promise<number> {
    await this.ready();
    const now = this.now();
    let n = 0;
    for (const r of await this.opts.store.listPending()) {
      if (r.expiresAtMs > now) continue;
      const expired = await this.opts.store.withLock(r.id, async () => {
        const current = await this.opts.store.get(r.id);
        return current?.state === ApprovalState.Pending && current.expiresAtMs <= this.now() ? this.expireLocked(current) : undefined;
      });
      if (expired !== undefined) n++;
    }
    return n;
  }

  /** Rebuilds the projection from the stream (single-flight per process). */
  rebuild(): Promise<void> {
    this.rebuilding ??= this.doRebuild().finally(() => {
      this.rebuilding = undefined;
    });
    return this.rebuilding;
  }

  /** The heads of the approval role's chain segments acknowledged since the last call (for the checkpointer). */
  takeChainHeads(): ChainHead[] {
    return this.opts.journal.takeHeads();
  }

  private async ready(): Promise<void> {
    if (this.rebuilding !== undefined) return this.rebuilding;
    if (await this.opts.store.needsRebuild()) await this.rebuild();
  }

  private async doRebuild(): Promise<void> {
    const started = this.now();
    const events = await this.opts.journal.replay(started - this.opts.rebuildLookbackMs);
    const records = new Map<string, ApprovalRecord>();
    for (const e of events) {
      const id = approvalIdOf(e);
      if (id === undefined) continue;
      const next = applyApprovalEvent(records.get(id), e, { grantTtlMs: this.opts.grantTtlMs });
      if (next !== undefined) records.set(id, next);
    }
    const now = this.now();
    let kept = 0;
    for (const r of records.values()) {
      const deadline = recordDeadlineMs(r, this.opts.retentionMs, now);
      if (deadline <= now) continue;
      await this.opts.store.put(r, deadline);
      kept++;
    }
    await this.opts.store.markBuilt(now);
    this.opts.logger.info('approval projection rebuilt from the stream', { events: events.length, approvals: kept, ms: now - started });
  }

  private async open(req: ApprovalGateRequest, now: number): Promise<ApprovalGateReply> {
    const identity = req.identity;
    const attributes = req.attributes;
    const decision = req.decision;
    if (identity === undefined || attributes === undefined || decision?.approval === undefined) {
      throw new ApprovalError(ApprovalErrorCode.BadRequest, 'gate request without identity, attributes or approval requirement');
    }
    const id = newEventId(now);
    const requested = buildEvent(
      EventType.ApprovalRequested,
      create(ApprovalRequestedSchema, {
        approvalId: id,
        fingerprint: req.fingerprint,
        requester: identity,
        attributes,
        ruleId: decision.ruleId,
        policyVersion: decision.policyVersion,
        requirement: decision.approval,
        expiresAtMs: now + this.opts.pendingTtlMs,
        bodyExcerpt: req.bodyExcerpt,
        bodySha256: req.bodySha256,
        message: decision.message,
      }),
      { correlationId: req.requestId, causationId: req.requestId, nodeId: this.opts.nodeId, connection: attributes.connection, occurredAtMs: now },
    );
    const record = applyApprovalEvent(undefined, requested, { grantTtlMs: this.opts.grantTtlMs })!;
    const { opened, id: boundId } = await this.opts.store.openIfAbsent(record, recordDeadlineMs(record, this.opts.retentionMs, now), now);
    if (!opened) {
      // An identical request opened it a moment ago: share it.
      const bound = await this.opts.store.get(boundId);
      return bound === undefined ? reply(ApprovalGateState.Unknown, boundId) : this.answer(bound, req, now);
    }
    try {
      await this.opts.journal.append(requested);
    } catch (err) {
      await this.opts.store.remove(record).catch(() => undefined);
      throw err;
    }
    this.opts.logger.info('approval requested', {
      approvalId: id,
      rule: record.ruleId,
      requester: record.requester.subject,
      what: describeRequest(record.request),
    });
    this.opts.notifier?.requested(record);
    return reply(ApprovalGateState.Pending, id, { expiresAtMs: record.expiresAtMs });
  }

  private async answer(record: ApprovalRecord, req: ApprovalGateRequest, now: number): Promise<ApprovalGateReply> {
    switch (record.state) {
      case ApprovalState.Pending:
        if (record.expiresAtMs <= now) {
          const expired = await this.opts.store.withLock(record.id, async () => {
            const current = await this.opts.store.get(record.id);
            return current?.state === ApprovalState.Pending && current.expiresAtMs <= this.now() ? this.expireLocked(current) : current;
          });
          return expired === undefined ? reply(ApprovalGateState.Unknown, record.id) : this.answer(expired, req, now);
        }
        return reply(ApprovalGateState.Pending, record.id, { expiresAtMs: record.expiresAtMs });
      case ApprovalState.Granted: {
        const taken = await this.opts.store.consume(record.id, now);
        if (!taken.ok) {
          const r = taken.record;
          return reply(r?.state === ApprovalState.Consumed ? ApprovalGateState.Used : ApprovalGateState.Expired, record.id);
        }
        const consumed = buildEvent(
          EventType.ApprovalConsumed,
          create(ApprovalConsumedSchema, { approvalId: record.id, requestId: req.requestId, uses: taken.record.uses }),
          { correlationId: req.requestId, causationId: req.requestId, nodeId: this.opts.nodeId, connection: record.request.connection, occurredAtMs: now },
        );
        // No acked consumed event, no access: the grant stays used (fail closed).
        await this.opts.journal.append(consumed);
        const last = taken.record.approvals.at(-1);
        return reply(ApprovalGateState.Admitted, record.id, { decidedBy: approversOf(taken.record), reason: last?.reason ?? '' });
      }
      case ApprovalState.Denied:
        return reply(ApprovalGateState.Denied, record.id, { decidedBy: record.denial?.subject ?? '', reason: record.denial?.reason ?? '' });
      case ApprovalState.Expired:
        return reply(ApprovalGateState.Expired, record.id);
      case ApprovalState.Consumed:
        return reply(ApprovalGateState.Used, record.id);
    }
  }

  /** Appends `approval.expired` for a pending record (caller holds the lock). */
  private async expireLocked(record: ApprovalRecord): Promise<ApprovalRecord> {
    const event = buildEvent(EventType.ApprovalExpired, create(ApprovalExpiredSchema, { approvalId: record.id }), {
      correlationId: record.requestId,
      nodeId: this.opts.nodeId,
      connection: record.request.connection,
      occurredAtMs: this.now(),
    });
    const next = await this.commit(record, event);
    this.opts.logger.info('approval expired', { approvalId: record.id });
    this.announce(next);
    return next;
  }

  /** Event first (the source of truth), then the projection. */
  private async commit(record: ApprovalRecord, event: EventEnvelope): Promise<ApprovalRecord> {
    await this.opts.journal.append(event);
    const next = applyApprovalEvent(record, event, { grantTtlMs: this.opts.grantTtlMs }) ?? record;
    await this.opts.store.put(next, recordDeadlineMs(next, this.opts.retentionMs, this.now()));
    return next;
  }

  /** Releases whichever edge holds the request, and updates the Slack message. */
  private announce(record: ApprovalRecord): void {
    const state = record.state === ApprovalState.Granted ? 'granted' : record.state;
    const outcome: ApprovalOutcome | undefined =
      record.state === ApprovalState.Granted
        ? 'approved'
        : record.state === ApprovalState.Denied
          ? 'denied'
          : record.state === ApprovalState.Expired
            ? 'expired'
            : undefined;
    if (outcome !== undefined) this.opts.onDecided?.(outcome, Math.max(0, this.now() - record.requestedAtMs));
    try {
      this.opts.bus.publish(
        Subjects.approvalDecided(record.id),
        encodeApprovalDecisionNotice(create(ApprovalDecisionNoticeSchema, { approvalId: record.id, state })),
      );
    } catch (err) {
      // Edges still see the decision when their wait ends or the client retries.
      this.opts.logger.warn('could not broadcast an approval decision', { approvalId: record.id, err });
    }
    this.opts.notifier?.decided(record);
  }
}

function reply(state: ApprovalGateState, approvalId: string, extra: { expiresAtMs?: number; decidedBy?: string; reason?: string } = {}): ApprovalGateReply {
  return create(ApprovalGateReplySchema, { state, approvalId, ...extra });
}

function approversOf(record: ApprovalRecord): string {
  return record.approvals.map((a) => a.subject).join(', ');
}

function approvalIdOf(e: EventEnvelope): string | undefined {
  switch (e.payload.case) {
    case 'approvalRequested':
    case 'approvalApproved':
    case 'approvalDenied':
    case 'approvalExpired':
    case 'approvalConsumed':
      return e.payload.value.approvalId;
    default:
      return undefined;
  }
}
