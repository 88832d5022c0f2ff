/** The edge's gateway logic: request pipeline, upstream connections, header hygiene, errors. */
export { EdgePipeline, AUDIT_ID_HEADER } from './edge-pipeline.js';
export type { EdgePipelineDeps } from './edge-pipeline.js';
export { EdgeServer } from './edge-server.js';
export type { EdgeServerOptions } from './edge-server.js';
export { ConnectionRegistry, createUpstreamConnection, inClusterCredential, InClusterConfigError, SERVICE_ACCOUNT_DIR } from './connection-registry.js';
export type { UpstreamConnection, UpstreamConnectionSpec } from './connection-registry.js';
export { DecisionClient } from './decision-client.js';
export type { DecisionOutcome } from './decision-client.js';
export { DecisionCache, decisionCacheKey } from './decision-cache.js';
export type { DecisionCacheOptions, DecisionCacheStats } from './decision-cache.js';
export { PolicyExplainRoute, POLICY_EXPLAIN_PATH } from './policy-explain-route.js';
export type { PolicyExplainRouteOptions } from './policy-explain-route.js';
export { AuditPublisher } from './audit-publisher.js';
export { GatewayError, GatewayErrorCode } from './gateway-error.js';
export { upstreamRequestHeaders, clientResponseHeaders, addImpersonationHeaders, IMPERSONATE_EXTRA } from './header-hygiene.js';
export { DEV_ISSUER_PATH } from './dev-issuer-routes.js';
export { renderKubeconfig } from './kubeconfig.js';
export type { KubeconfigSpec } from './kubeconfig.js';
