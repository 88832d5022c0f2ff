/** Kubernetes request understanding: the request-info parser, path hygiene and Status objects. */
export { parseKubeRequest, canonicalKubePath, assertCleanPath, RequestPathError, MAX_PATH_BYTES } from './request-info.js';
export { failureStatus, statusReason, StatusReason } from './status.js';
export type { KubeStatus, StatusCode } from './status.js';
export { RESOURCE_VERBS, NON_RESOURCE_VERBS, REQUEST_VERBS, RBAC_ONLY_VERBS, BUILTIN_RESOURCES } from './kube-vocabulary.js';
