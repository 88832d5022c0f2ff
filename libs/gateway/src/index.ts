/** The edge's gateway logic: request pipeline, upstream connections, header hygiene, errors. */
export { EdgePipeline, AUDIT_ID_HEADER } from './edge-pipeline.js';
export type { EdgePipelineDeps } from './edge-pipeline.js';
export { EdgeServer } from './edge-server.js';
export type { EdgeServerOptions } from './edge-server.js';
export { ConnectionRegistry, createUpstreamConnection } from './connection-registry.js';
export type { UpstreamConnection, UpstreamConnectionSpec } from './connection-registry.js';
export { DecisionClient } from './decision-client.js';
export { ApprovalGate, APPROVAL_HEADER } from './approval-gate.js';
export type { ApprovalGateOptions, HeldRequest, Admitted } from './approval-gate.js';
export { AuditPublisher } from './audit-publisher.js';
export { GatewayError, GatewayErrorCode } from './gateway-error.js';
export type { GatewayErrorDetails } from './gateway-error.js';
export { upstreamRequestHeaders, clientResponseHeaders } from './header-hygiene.js';
export { DEV_ISSUER_PATH } from './dev-issuer-routes.js';
export { renderKubeconfig } from './kubeconfig.js';
export type { KubeconfigSpec } from './kubeconfig.js';
