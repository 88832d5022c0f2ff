import { fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  ApprovalDecisionNoticeSchema,
  ApprovalGateReplySchema,
  ApprovalGateRequestSchema,
  type ApprovalDecisionNotice,
  type ApprovalGateReply,
  type ApprovalGateRequest,
} from './gen/portcullis/v1/approval_pb.js';

/** What the approval gate answers the edge (`ApprovalGateReply.state`). */
export const ApprovalGateState = {
  /** Nobody decided yet: hold, then answer "approval pending". */
  Pending: 'pending',
  /** Granted, and this request took the grant: forward it. */
  Admitted: 'admitted',
  /** An approver denied: 403 with the approver's reason. */
  Denied: 'denied',
  /** Nobody decided in time. */
  Expired: 'expired',
  /** A once-grant another request already consumed. */
  Used: 'used',
  /** X-Portcullis-Approval names an approval of a different request. */
  Mismatch: 'mismatch',
  /** X-Portcullis-Approval names no approval the gate knows. */
  Unknown: 'unknown',
} as const;
export type ApprovalGateState = (typeof ApprovalGateState)[keyof typeof ApprovalGateState];

export const encodeApprovalGateRequest = (m: ApprovalGateRequest): Uint8Array => toBinary(ApprovalGateRequestSchema, m);
export const decodeApprovalGateRequest = (b: Uint8Array): ApprovalGateRequest => fromBinary(ApprovalGateRequestSchema, b);
export const encodeApprovalGateReply = (m: ApprovalGateReply): Uint8Array => toBinary(ApprovalGateReplySchema, m);
export const decodeApprovalGateReply = (b: Uint8Array): ApprovalGateReply => fromBinary(ApprovalGateReplySchema, b);
export const encodeApprovalDecisionNotice = (m: ApprovalDecisionNotice): Uint8Array => toBinary(ApprovalDecisionNoticeSchema, m);
export const decodeApprovalDecisionNotice = (b: Uint8Array): ApprovalDecisionNotice => fromBinary(ApprovalDecisionNoticeSchema, b);
