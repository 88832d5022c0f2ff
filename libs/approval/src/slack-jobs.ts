import { createHash } from 'node:crypto';
import type { Logger } from '@portcullis/common';
import { ApprovalState, type ApprovalRecord } from './approval-record.js';
import type { ApprovalStore } from './approval-store.port.js';
import { ApprovalError, ApprovalErrorCode } from './approval-error.js';
import { Verdict, type ApprovalNotifier, type Approver, type ApprovalService } from './approval-service.js';
import { REASON_BLOCK_ID, renderApprovalRequest, renderApprovalUpdate, SlackActionId } from './slack-blocks.js';
import { SlackApiError, type SlackWebClient } from './slack-client.js';

/** Work for the Slack worker. Jobs name approvals, not their content: the worker reads the current record. */
export type SlackJob =
  | { readonly kind: 'post'; readonly approvalId: string }
  | { readonly kind: 'update'; readonly approvalId: string; readonly version: number }
  | { readonly kind: 'interaction'; readonly payload: string; readonly signature: string };

/** The job id: the same notification is one job however often it is enqueued (BullMQ dedupes by id). */
export function slackJobId(job: SlackJob): string {
  switch (job.kind) {
    case 'post':
      return `post-${job.approvalId}`;
    case 'update':
      return `update-${job.approvalId}-${job.version}`;
    case 'interaction':
      return `interaction-${createHash('sha256').update(job.signature).digest('hex').slice(0, 32)}`;
  }
}

/** Where Slack jobs go: BullMQ in cluster mode, this process in the embedded mode. */
export interface SlackJobQueue {
  add(job: SlackJob): Promise<void>;
  close(): Promise<void>;
}

/** A Slack user mapped to an approver identity (config `approval.slack.users`). */
export interface SlackUserMapping {
  readonly slackUserId?: string | undefined;
  readonly email?: string | undefined;
  readonly subject: string;
  readonly groups: readonly string[];
}

/** Enqueues a post when an approval opens and an update on every decision; never throws. */
export class SlackApprovalNotifier implements ApprovalNotifier {
  constructor(
    private readonly queue: SlackJobQueue,
    private readonly logger: Logger,
  ) {}

  requested(record: ApprovalRecord): void {
    if (record.requirement.channel === '') return;
    this.enqueue({ kind: 'post', approvalId: record.id });
  }

  decided(record: ApprovalRecord): void {
    if (record.requirement.channel === '') return;
    this.enqueue({ kind: 'update', approvalId: record.id, version: record.version });
  }

  private enqueue(job: SlackJob): void {
    this.queue.add(job).catch((err: unknown) => this.logger.error('could not enqueue a Slack notification', { job: slackJobId(job), err }));
  }
}

/** What the Slack worker needs. */
export interface SlackJobHandlerOptions {
  service: ApprovalService;
  store: ApprovalStore;
  client: SlackWebClient;
  users: readonly SlackUserMapping[];
  logger: Logger;
  /** How long the posted message's ts is remembered. */
  messageTtlMs: number;
}

/**
 * Runs Slack jobs. Idempotent: a post first looks for the ts it stored, then for the message in
 * the channel's history (a worker killed after Slack accepted the post but before it stored the
 * ts), and posts only when neither exists; the ts is stored before the job is acknowledged.
 * Throws SlackApiError for the queue to retry (rate limits carry Retry-After).
 */
export class SlackJobHandler {
  constructor(private readonly opts: SlackJobHandlerOptions) {}

  async handle(job: SlackJob): Promise<void> {
    switch (job.kind) {
      case 'post':
        return this.post(job.approvalId);
      case 'update':
        return this.update(job.approvalId);
      case 'interaction':
        return this.interaction(job.payload);
    }
  }

  private async post(approvalId: string): Promise<void> {
    const { store, client } = this.opts;
    if ((await store.getSlackMessage(approvalId)) !== undefined) return;
    const record = await this.opts.service.get(approvalId);
    if (record === undefined) return; // forgotten before its message went out: nothing to ask
    const channel = record.requirement.channel;
    const found = await client.findApprovalMessage(channel, approvalId, Math.floor(record.requestedAtMs / 1000) - 60);
    if (found !== undefined) {
      await store.setSlackMessage(approvalId, found, this.opts.messageTtlMs);
      this.opts.logger.info('Slack message already posted by an earlier attempt', { approvalId, ts: found.ts });
      return;
    }
    const body = record.state === ApprovalState.Pending ? renderApprovalRequest(record, channel) : withoutTs(renderApprovalUpdate(record, { channel, ts: '' }));
    const posted = await client.postMessage(body);
    await store.setSlackMessage(approvalId, posted, this.opts.messageTtlMs);
    this.opts.logger.info('approval posted to Slack', { approvalId, channel: posted.channel, ts: posted.ts });
  }

  private async update(approvalId: string): Promise<void> {
    const ref = await this.opts.store.getSlackMessage(approvalId);
    const record = await this.opts.service.get(approvalId);
    if (record === undefined) return;
    // Not posted yet: the post job will render the current state; retry in case it already ran elsewhere.
    if (ref === undefined) throw new SlackApiError('not_posted_yet', `the Slack message of ${approvalId} is not posted yet`, undefined, false);
    await this.opts.client.update(renderApprovalUpdate(record, ref));
  }

  private async interaction(raw: string): Promise<void> {
    let payload: SlackInteraction;
    try {
      payload = JSON.parse(raw) as SlackInteraction;
    } catch {
      this.opts.logger.warn('undecodable Slack interaction payload dropped');
      return;
    }
    if (payload.type !== 'block_actions') return;
    const action = payload.actions?.find((a) => a.action_id === SlackActionId.Approve || a.action_id === SlackActionId.Deny);
    if (action === undefined || typeof action.value !== 'string') return;
    const verdict = action.action_id === SlackActionId.Approve ? Verdict.Approve : Verdict.Deny;
    const userId = payload.user?.id ?? '';
    const reason = payload.state?.values?.[REASON_BLOCK_ID]?.[SlackActionId.Reason]?.value ?? '';
    const approver = await this.approverFor(userId);
    if (approver === undefined) {
      await this.tell(payload, `Portcullis: your Slack user ${userId} is not mapped to an approver (approval.slack.users); nothing was decided.`);
      return;
    }
    try {
      await this.opts.service.decide(action.value, approver, verdict, reason ?? '');
    } catch (err) {
      if (err instanceof ApprovalError && err.code !== ApprovalErrorCode.Unavailable) {
        await this.tell(payload, `Portcullis: ${err.message}`);
        return;
      }
      throw err;
    }
  }

  private async approverFor(userId: string): Promise<Approver | undefined> {
    const byId = this.opts.users.find((u) => u.slackUserId === userId);
    let mapped = byId;
    if (mapped === undefined && userId !== '' && this.opts.users.some((u) => u.email !== undefined)) {
      const email = (await this.opts.client.userEmail(userId))?.toLowerCase();
      mapped = email === undefined ? undefined : this.opts.users.find((u) => u.email?.toLowerCase() === email);
    }
    return mapped === undefined ? undefined : { subject: mapped.subject, groups: mapped.groups, via: 'slack', externalId: userId };
  }

  private async tell(payload: SlackInteraction, text: string): Promise<void> {
    if (typeof payload.response_url !== 'string' || payload.response_url === '') return;
    await this.opts.client.respond(payload.response_url, text).catch((err: unknown) => this.opts.logger.warn('could not answer a Slack interaction', { err }));
  }
}

function withoutTs(body: Record<string, unknown>): Record<string, unknown> {
  const { ts: _ts, ...rest } = body;
  return rest;
}

/** The part of a block_actions payload the worker reads. */
interface SlackInteraction {
  type?: string;
  user?: { id?: string };
  response_url?: string;
  actions?: { action_id?: string; value?: string }[];
  state?: { values?: Record<string, Record<string, { value?: string | null }>> };
}
