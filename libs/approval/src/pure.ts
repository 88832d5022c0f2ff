/**
 * The approval library's pure entry point (`@portcullis/approval/pure`): what the edge needs to
 * bind a held request to an approval — the fingerprint, the masked body excerpt — and the record
 * fold, errors and Slack signatures, without loading Redis, BullMQ or an HTTP client.
 */
export { requestFingerprint } from './request-fingerprint.js';
export { bodyExcerpt, MAX_EXCERPT_CHARS } from './body-excerpt.js';
export { ApprovalState, ApprovalScope, applyApprovalEvent, describeRequest, isStale, recordDeadlineMs } from './approval-record.js';
export type { ApprovalRecord, ApprovalVote, ApprovalRequestSummary } from './approval-record.js';
export { ApprovalError, ApprovalErrorCode } from './approval-error.js';
export { slackSignature, verifySlackSignature, SlackSignatureProblem, SLACK_MAX_AGE_MS } from './slack-signature.js';
