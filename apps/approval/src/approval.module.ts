import { Module } from '@nestjs/common';
import { ApprovalGateController } from './approval-gate.controller.js';
import { ApprovalListenerController } from './approval-listener.controller.js';
import { approvalProviders } from './approval.providers.js';
import { ApprovalRoleService } from './approval-role.service.js';
import { ApprovalsController, SlackInteractionsController } from './approvals.controller.js';
import { SlackInteractions } from './slack-interactions.service.js';

/**
 * The approval role: the gate on the bus, the approvers' REST API and Slack interactions on its
 * own HTTPS listener, the projection store and the Slack queue.
 */
@Module({
  controllers: [ApprovalGateController, ApprovalsController, SlackInteractionsController, ApprovalListenerController],
  providers: [...approvalProviders, SlackInteractions, ApprovalRoleService],
  exports: [ApprovalRoleService],
})
export class ApprovalModule {}
