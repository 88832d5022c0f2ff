/** Why an approval operation was refused or failed. */
export const ApprovalErrorCode = {
  NotFound: 'not_found',
  AlreadyDecided: 'already_decided',
  SelfApproval: 'self_approval',
  NotAnApprover: 'not_an_approver',
  ReasonRequired: 'reason_required',
  AlreadyApproved: 'already_approved',
  Unavailable: 'unavailable',
  BadRequest: 'bad_request',
} as const;
export type ApprovalErrorCode = (typeof ApprovalErrorCode)[keyof typeof ApprovalErrorCode];

const HTTP_STATUS = {
  not_found: 404,
  already_decided: 409,
  self_approval: 403,
  not_an_approver: 403,
  reason_required: 400,
  already_approved: 409,
  unavailable: 503,
  bad_request: 400,
} as const satisfies Record<ApprovalErrorCode, number>;

/** A refused or failed approval operation; `message` is safe to show to the approver. */
export class ApprovalError extends Error {
  override readonly name = 'ApprovalError';
  constructor(
    readonly code: ApprovalErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** The HTTP status the REST API answers with. */
  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }
}
