/** Kubernetes request understanding: the request-info parser, path hygiene and Status objects. */
export { parseKubeRequest, canonicalKubePath, assertCleanPath, RequestPathError, MAX_PATH_BYTES } from './request-info.js';
export { failureStatus, StatusReason } from './status.js';
export type { KubeStatus } from './status.js';
