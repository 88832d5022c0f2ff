/**
 * The kinds of upstream the edge reaches: a connection's `type`, and the kind a protocol adapter
 * serves. Named once here; every other file in the gateway uses these names.
 */
export const ConnectionKind = {
  /** A Kubernetes API server (`/k8s/<connection>/…`). */
  Kubernetes: 'kubernetes',
  /** A plain HTTP API (`/http/<connection>/…`). */
  Http: 'http',
} as const;
/** One of {@link ConnectionKind}. */
export type ConnectionKind = (typeof ConnectionKind)[keyof typeof ConnectionKind];
