import type { StatusCode } from '@portcullis/kube';

/** Every way the edge refuses or fails a request, with the HTTP status it maps to. */
export const GatewayErrorCode = {
  BadPath: 'bad_path',
  UnknownConnection: 'unknown_connection',
  Unauthenticated: 'unauthenticated',
  IdentityUnavailable: 'identity_unavailable',
  Denied: 'denied',
  ApprovalRequired: 'approval_required',
  ApprovalPending: 'approval_pending',
  ApprovalRefused: 'approval_refused',
  ApprovalUnavailable: 'approval_unavailable',
  DecisionUnavailable: 'decision_unavailable',
  AuditUnavailable: 'audit_unavailable',
  UpstreamUnreachable: 'upstream_unreachable',
  UpstreamTimeout: 'upstream_timeout',
  BodyTooLarge: 'body_too_large',
  /** The decision asks for a masking profile this gateway does not have: nothing is forwarded. */
  MaskingUnavailable: 'masking_unavailable',
  /** A masked response the gateway cannot read (protobuf, YAML, unknown encoding, bad JSON): withheld. */
  UnmaskableResponse: 'unmaskable_response',
} as const;
export type GatewayErrorCode = (typeof GatewayErrorCode)[keyof typeof GatewayErrorCode];

// Each is a code with a Status reason (statusReason): a Kubernetes client reads the two together.
const HTTP_STATUS = {
  bad_path: 400,
  unknown_connection: 404,
  unauthenticated: 401,
  identity_unavailable: 503,
  denied: 403,
  approval_required: 403,
  approval_pending: 403,
  approval_refused: 403,
  approval_unavailable: 503,
  decision_unavailable: 503,
  audit_unavailable: 503,
  upstream_unreachable: 502,
  upstream_timeout: 504,
  body_too_large: 413,
  masking_unavailable: 500,
  unmaskable_response: 502,
} as const satisfies Record<GatewayErrorCode, StatusCode>;

/** Extra fields of the Kubernetes Status a refusal is answered with. */
export interface GatewayErrorDetails {
  name?: string;
  kind?: string;
  causes?: { reason: string; message: string; field?: string }[];
}

/** A refusal or failure at the edge; `message` is safe to show to the client. */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  /** Status details (e.g. the approval id of a pending approval). */
  readonly details: GatewayErrorDetails | undefined;
  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    options?: { cause?: unknown; details?: GatewayErrorDetails },
  ) {
    super(message, options);
    this.details = options?.details;
  }

  /** The HTTP status this error is answered with. */
  get httpStatus(): (typeof HTTP_STATUS)[GatewayErrorCode] {
    return HTTP_STATUS[this.code];
  }
}
