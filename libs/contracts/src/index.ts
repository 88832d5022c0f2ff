/**
 * Contracts: the event envelope, events, decision messages (generated from proto/) and the
 * names of every subject, stream and consumer. The single source of truth for what crosses
 * a process boundary.
 */
export { create, clone, toJson } from '@bufbuild/protobuf';
export * from './gen/portcullis/v1/identity_pb.js';
export * from './gen/portcullis/v1/request_pb.js';
export * from './gen/portcullis/v1/decision_pb.js';
export * from './gen/portcullis/v1/events_pb.js';
export * from './gen/portcullis/v1/approval_pb.js';
export {
  SCHEMA_VERSION,
  EventType,
  EventDecodeError,
  buildEvent,
  encodeEvent,
  decodeEvent,
  AUDIT_BATCH_SUBJECT,
  encodeEventBatch,
  auditMessageEvents,
  newEventId,
  payloadCaseOf,
} from './events.js';
export type { EventPayloadMap, EventMeta } from './events.js';
export { encodeMessage, decodeMessage, withEncodedMessage, MessageDecodeError } from './message-codec.js';
export {
  Effect,
  effectOf,
  encodeDecisionRequest,
  decodeDecisionRequest,
  encodeDecisionReply,
  decodeDecisionReply,
  decisionReply,
  encodeExplainRequest,
  decodeExplainRequest,
  encodeExplainReply,
  decodeExplainReply,
  encodePolicyChanged,
  decodePolicyChanged,
} from './decisions.js';
export {
  ApprovalGateState,
  encodeApprovalGateRequest,
  decodeApprovalGateRequest,
  encodeApprovalGateReply,
  decodeApprovalGateReply,
  encodeApprovalDecisionNotice,
  decodeApprovalDecisionNotice,
} from './approvals.js';
export { Subjects, QueueGroups, Streams, Consumers, BusHeaders, Buckets, BucketKeys } from './subjects.js';
export {
  BusRoles,
  natsInboxPrefix,
  natsRolePermissions,
  natsPermissionsFor,
  natsAuthorizationConfig,
  natsUserEntry,
  natsUserName,
  natsDeployUsers,
  NATS_DEPLOY_USERS_HEADER,
} from './nats-permissions.js';
export type { BusRole, NatsRolePermissions, NatsUserSpec } from './nats-permissions.js';
