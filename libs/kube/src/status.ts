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

/** Standard reasons (metav1.StatusReason) for each HTTP status the gateway answers with. */
export const StatusReason = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  413: 'RequestEntityTooLarge',
  415: 'UnsupportedMediaType',
  429: 'TooManyRequests',
  500: 'InternalError',
  502: 'ServiceUnavailable',
  503: 'ServiceUnavailable',
  504: 'Timeout',
} as const satisfies Record<number, string>;

/** Builds a failure `Status` for an HTTP code. */
export function failureStatus(code: keyof typeof StatusReason, message: string, details?: KubeStatus['details']): KubeStatus {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: StatusReason[code],
    code,
    ...(details ? { details } : {}),
  };
}
