/**
 * Policy engine: the `portcullis.dev/v1` policy language (YAML), its validation with line and
 * column, and a pure, indexed evaluator (no I/O and no clock of its own); and the keep-last-good
 * store that follows a policy file or KV bundle and swaps each valid version in whole.
 */
export { parsePolicy, compilePolicy, formatPolicyError, formatPolicyWarning, formatPath } from './policy-parser.js';
export type { PolicyError, ParsePolicyResult, ParsePolicyOptions } from './policy-parser.js';
export { evaluate, explain, describeRequest, decisionStableForMs, DEFAULT_DENY_RULE_ID } from './policy-engine.js';
export { ExplainSpecSchema, explainInput, explainView, formatExplanation, parseExplainSpec } from './explain-request.js';
export { PolicyStore, claimedVersion } from './policy-store.js';
export type { PolicyRejection, PolicySwap } from './policy-store.js';
export type { ExplainSpec, ExplanationView, ExplainTraceView } from './explain-request.js';
export { answerDecision, answerDecisionRequest, answerExplainRequest, MAX_CACHE_AGE_MS } from './policy-responder.js';
export type { TraceEntry, Explanation } from './policy-engine.js';
export { CompiledPolicy, APPROVAL_DEFAULTS } from './compiled-policy.js';
export { withClaims } from './policy-identity.js';
export type { CompiledRule, CompiledApproval, PolicyIdentity, RuleCheck } from './compiled-policy.js';
export { POLICY_API_VERSION, POLICY_KIND, RuleEffect, ApprovalScope, PolicyDocumentSchema, policyJsonSchema, policyJsonSchemaText } from './policy-schema.js';
export type { PolicyDocument, RuleDocument, MatchDocument, ApprovalDocument } from './policy-schema.js';
export { parseDurationSeconds } from './duration.js';
export { globError, compileGlob } from './glob.js';
