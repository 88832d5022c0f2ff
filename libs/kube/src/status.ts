/** A Kubernetes `Status` object (meta/v1), what kubectl prints for refusals. */
export interface KubeStatus {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  code: number;
  details?: { name?: string; kind?: string; causes?: { reason: string; message: string; field?: string }[]; retryAfterSeconds?: number };
}

/**
 * The `reason` (metav1.StatusReason) of each HTTP status the gateway answers with: the one
 * Kubernetes documents for that code. 502 has none in Kubernetes; client-go reads any 5xx it has
 * no reason for as InternalError (errors.NewGenericServerResponse), so that is what a 502 says —
 * not ServiceUnavailable, which client-go's IsServiceUnavailable would take for a 503.
 */
export const StatusReason = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  406: 'NotAcceptable',
  409: 'Conflict',
  413: 'RequestEntityTooLarge',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  502: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
} as const satisfies Record<number, string>;

/** An HTTP status the gateway may answer a Kubernetes client with. */
export type StatusCode = keyof typeof StatusReason;

/** The `reason` that goes with `code`: the one mapping every Status body of the gateway uses. */
export function statusReason(code: StatusCode): (typeof StatusReason)[StatusCode] {
  return StatusReason[code];
}

/** Builds a failure `Status` for an HTTP code, its `reason` from {@link statusReason}. */
export function failureStatus(code: StatusCode, message: string, details?: KubeStatus['details']): KubeStatus {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: statusReason(code),
    code,
    ...(details ? { details } : {}),
  };
}
