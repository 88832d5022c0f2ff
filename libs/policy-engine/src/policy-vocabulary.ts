/**
 * What a rule names must exist, or the rule silently never matches: a verb no request has is an
 * error (with the closest known verb), a resource no built-in API group serves is a warning (it
 * may be a custom resource), and so is an HTTP method outside the standard ones.
 */
import { BUILTIN_RESOURCES, RBAC_ONLY_VERBS, REQUEST_VERBS } from '@portcullis/kube';
import { closest, didYouMean } from './did-you-mean.js';
import { compileGlob, globLiteral } from './glob.js';
import type { RuleDocument } from './policy-schema.js';

type PathSegment = string | number;
/** Where {@link checkVocabulary} reports: a path under the rule and a message. */
export type VocabularySink = (path: readonly PathSegment[], message: string) => void;

const RBAC_ONLY = new Set<string>(RBAC_ONLY_VERBS);
const ALL_BUILTIN_RESOURCES = new Set(Object.values(BUILTIN_RESOURCES).flat());
/** RFC 9110 methods plus PATCH (RFC 5789). */
const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE'];

function verbProblem(pattern: string, ruleId: string): string | undefined {
  const literal = globLiteral(pattern);
  if (literal === undefined) {
    const test = compileGlob(pattern);
    return REQUEST_VERBS.some(test)
      ? undefined
      : `verb pattern ${JSON.stringify(pattern)} in rule ${JSON.stringify(ruleId)} matches no verb (verbs: ${REQUEST_VERBS.join(', ')})`;
  }
  if (REQUEST_VERBS.includes(literal)) return undefined;
  if (RBAC_ONLY.has(literal)) {
    return `verb ${JSON.stringify(literal)} in rule ${JSON.stringify(ruleId)} is one Kubernetes RBAC checks inside the API server; no request through the gateway has it, so the rule would never match`;
  }
  return `unknown verb ${JSON.stringify(literal)} in rule ${JSON.stringify(ruleId)}${didYouMean(literal, REQUEST_VERBS)}; verbs: ${REQUEST_VERBS.join(', ')}`;
}

/** The built-in groups a rule names, when it names only literal built-in groups; undefined when it could match another group. */
function builtinGroups(apiGroups: readonly string[] | undefined): string[] | undefined {
  if (apiGroups === undefined) return undefined;
  const groups = apiGroups.map(globLiteral);
  return groups.every((g): g is string => g !== undefined && Object.hasOwn(BUILTIN_RESOURCES, g)) ? groups : undefined;
}

function resourceWarning(pattern: string, ruleId: string, groups: string[] | undefined): string | undefined {
  const literal = globLiteral(pattern.split('/')[0] ?? '');
  if (literal === undefined || literal === '') return undefined;
  const where = `in rule ${JSON.stringify(ruleId)}`;
  if (groups !== undefined) {
    const known = groups.flatMap((g) => BUILTIN_RESOURCES[g] ?? []);
    if (known.includes(literal)) return undefined;
    const named = groups.map((g) => (g === '' ? 'the core group ("")' : `"${g}"`)).join(', ');
    return `unknown resource ${JSON.stringify(literal)} ${where} for API group ${named}${didYouMean(literal, known)}; the rule matches only a resource of that name`;
  }
  // Without apiGroups any group matches, custom resources too: only a near-miss of a built-in name is worth a word.
  if (ALL_BUILTIN_RESOURCES.has(literal)) return undefined;
  const near = closest(literal, ALL_BUILTIN_RESOURCES);
  return near === undefined || near === literal
    ? undefined
    : `resource ${JSON.stringify(literal)} ${where} is not a built-in resource (did you mean ${JSON.stringify(near)}?); it matches only a custom resource of that name`;
}

/** Verb errors of one rule (reported through `errors`) and resource and method warnings (through `warnings`). */
export function checkVocabulary(rule: RuleDocument, errors: VocabularySink, warnings: VocabularySink): void {
  const m = rule.match ?? {};
  m.verbs?.forEach((verb, i) => {
    const problem = verbProblem(verb, rule.id);
    if (problem !== undefined) errors(['match', 'verbs', i], problem);
  });
  const groups = builtinGroups(m.apiGroups);
  m.resources?.forEach((resource, i) => {
    const warning = resourceWarning(resource, rule.id, groups);
    if (warning !== undefined) warnings(['match', 'resources', i], warning);
  });
  m.http?.methods?.forEach((method, i) => {
    if (HTTP_METHODS.includes(method.toUpperCase())) return;
    warnings(
      ['match', 'http', 'methods', i],
      `${JSON.stringify(method)} in rule ${JSON.stringify(rule.id)} is not a standard HTTP method${didYouMean(method.toUpperCase(), HTTP_METHODS)}`,
    );
  });
}
