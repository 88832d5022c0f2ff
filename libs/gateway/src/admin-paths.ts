/**
 * Where the edge's administrative routes live on its listener. They are served by the Nest HTTP
 * adapter (apps/edge), off the data path; the CLI builds its URLs from the same constants.
 */
export { DEV_ISSUER_PATH } from '@portcullis/identity';

/** Where the edge explains policy decisions to administrators. */
export const POLICY_EXPLAIN_PATH = '/admin/policy/explain';
