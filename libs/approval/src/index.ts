/**
 * Just-in-time approval of single requests: the fingerprint an approval is bound to, the state
 * machine (a fold of approval events), the projection stores (Redis, memory), the service, and
 * Slack (signatures, Block Kit, Web API client, notification jobs).
 */
// Everything the pure entry point exports (./pure.ts lists it), then what needs the heavier dependencies.
export * from './pure.js';
export type { ApprovalStore, ConsumeResult, SlackMessageRef } from './approval-store.port.js';
export { MemoryApprovalStore } from './memory-approval-store.js';
export { RedisApprovalStore } from './redis-approval-store.js';
export type { RedisApprovalStoreOptions } from './redis-approval-store.js';
export { ApprovalJournal } from './approval-journal.js';
export { ApprovalService, Verdict } from './approval-service.js';
export type { Approver, ApprovalNotifier, ApprovalOutcome, ApprovalServiceOptions } from './approval-service.js';
export { SlackWebClient, SlackApiError, APPROVAL_METADATA_EVENT } from './slack-client.js';
export type { PostedMessage } from './slack-client.js';
export { renderApprovalRequest, renderApprovalUpdate, SlackActionId, REASON_BLOCK_ID, mrkdwnEscape } from './slack-blocks.js';
export { SlackApprovalNotifier, SlackJobHandler, slackJobId } from './slack-jobs.js';
export type { SlackJob, SlackJobQueue, SlackUserMapping, SlackJobHandlerOptions } from './slack-jobs.js';
export { BullMqSlackQueue, InProcessSlackQueue } from './slack-queues.js';
export type { SlackQueueRetry } from './slack-queues.js';
export { APPROVAL_ID_PATTERN, approvalView, decisionReason, visibleTo } from './approval-view.js';
export type { ApiCaller } from './approval-view.js';
