import { Body, Get, Headers, HttpCode, Inject, Ip, Param, Post, UseFilters, UseGuards, type PipeTransform } from '@nestjs/common';
import type { Identity } from '@portcullis/contracts';
import { APPROVAL_ID_PATTERN, ApprovalError, ApprovalErrorCode, ApprovalService, approvalView, decisionReason, Verdict, visibleTo } from '@portcullis/approval';
import { BearerAuthGuard, Caller, JsonNoStore, Listener, ListenerController, ReadBodyPipe } from '../../runtime/src/index.js';
import { ApprovalHttpFilter } from './approval-http.filter.js';
import { SlackEnabledGuard, SlackInteractions } from './slack-interactions.service.js';

/** Largest body the approval listener reads (a `{ reason }` or a Slack form). */
export const MAX_APPROVAL_BODY_BYTES = 64 * 1024;

/** What a request for an unknown route on the approval listener is told. */
export const APPROVAL_ROUTES = 'routes: POST /slack/interactions, GET /approvals, GET /approvals/:id, POST /approvals/:id/approve|deny';

/** An approval id from the path; anything else is not a route here (404 naming the routes). */
class ApprovalIdPipe implements PipeTransform<string, string> {
  transform(id: string): string {
    if (!APPROVAL_ID_PATTERN.test(id)) throw new ApprovalError(ApprovalErrorCode.NotFound, APPROVAL_ROUTES);
    return id;
  }
}

/** The reason of an approve or deny: an empty body or JSON `{"reason": "…"}`. */
class DecisionReasonPipe implements PipeTransform<Buffer, string> {
  transform(raw: Buffer): string {
    return decisionReason(raw);
  }
}

const reasonBody = Body(new ReadBodyPipe(MAX_APPROVAL_BODY_BYTES, true), new DecisionReasonPipe());

/**
 * The approvers' REST API on the approval listener, with a bearer token (the process's one
 * verifier): list what the caller may decide, read one (requester and approvers only), approve
 * or deny (the approval service checks the caller may, atomically with the record's state).
 */
@ListenerController(Listener.Approval)
@UseFilters(ApprovalHttpFilter)
@UseGuards(BearerAuthGuard)
export class ApprovalsController {
  constructor(@Inject(ApprovalService) private readonly approvals: ApprovalService) {}

  @Get('approvals')
  @JsonNoStore()
  async list(@Caller() caller: Identity): Promise<unknown> {
    return { approvals: (await this.approvals.list(caller)).map(approvalView) };
  }

  @Get('approvals/:id')
  @JsonNoStore()
  async get(@Param('id', ApprovalIdPipe) id: string, @Caller() caller: Identity): Promise<unknown> {
    return approvalView(visibleTo(await this.approvals.get(id), id, caller));
  }

  @Post('approvals/:id/approve')
  @HttpCode(200)
  @JsonNoStore()
  async approve(@Param('id', ApprovalIdPipe) id: string, @Caller() caller: Identity, @reasonBody reason: string): Promise<unknown> {
    return approvalView(await this.approvals.decide(id, { subject: caller.subject, groups: caller.groups, via: 'api' }, Verdict.Approve, reason));
  }

  @Post('approvals/:id/deny')
  @HttpCode(200)
  @JsonNoStore()
  async deny(@Param('id', ApprovalIdPipe) id: string, @Caller() caller: Identity, @reasonBody reason: string): Promise<unknown> {
    return approvalView(await this.approvals.decide(id, { subject: caller.subject, groups: caller.groups, via: 'api' }, Verdict.Deny, reason));
  }
}

/** Slack interactivity (`approval.slack`): signed callbacks, answered at once, the work queued. */
@ListenerController(Listener.Approval)
@UseFilters(ApprovalHttpFilter)
export class SlackInteractionsController {
  constructor(@Inject(SlackInteractions) private readonly slack: SlackInteractions) {}

  @Post('slack/interactions')
  @HttpCode(200)
  @UseGuards(SlackEnabledGuard)
  async interaction(
    @Body(new ReadBodyPipe(MAX_APPROVAL_BODY_BYTES, true)) rawBody: Buffer,
    @Headers('x-slack-signature') signature: string | undefined,
    @Headers('x-slack-request-timestamp') timestamp: string | undefined,
    @Ip() ip: string,
  ): Promise<void> {
    await this.slack.receive({ rawBody, signature, timestamp, ip });
  }
}
