import type { IncomingMessage, ServerResponse } from 'node:http';
import { DecisionSchema, toJson } from '@portcullis/contracts';
import { TokenError, TokenErrorCode, type TokenVerifier } from '@portcullis/identity';
import { ExplainSpecSchema, explainInput, formatExplanation } from '@portcullis/policy-engine';
import type { Logger } from '@portcullis/common';
import type { DecisionClient } from './decision-client.js';
import { GatewayError } from './gateway-error.js';

/** Where the edge serves policy explanations. */
export const POLICY_EXPLAIN_PATH = '/admin/policy/explain';

const MAX_BODY_BYTES = 64 * 1024;

/** What the explain endpoint needs. */
export interface PolicyExplainRouteOptions {
  readonly verifier: TokenVerifier;
  readonly decisions: DecisionClient;
  /** Callers in one of these groups may explain; nobody when empty (config `edge.admin.groups`). */
  readonly adminGroups: readonly string[];
  readonly logger: Logger;
}

/**
 * `POST /admin/policy/explain`: JSON in (an explain request: subject, groups, connection, verb,
 * resource, …), JSON out (the decision, the deciding rule and every rule's outcome), from the
 * policy in force at the policy role. Administrative: anonymous callers get 401, callers outside
 * the admin groups 403, before the body is read.
 */
export class PolicyExplainRoute {
  private readonly admins: ReadonlySet<string>;

  constructor(private readonly opts: PolicyExplainRouteOptions) {
    this.admins = new Set(opts.adminGroups);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') return json(res, 405, { error: 'method_not_allowed', message: 'use POST with a JSON body' }, { allow: 'POST', ...CLOSE });
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m) return unauthorized(res, auth === '' ? 'no bearer token' : 'the Authorization header is not a bearer token');
    let identity;
    try {
      identity = await this.opts.verifier.verify(m[1]!);
    } catch (err) {
      if (err instanceof TokenError && err.code === TokenErrorCode.Unavailable) {
        return json(res, 503, { error: 'identity_unavailable', message: `cannot verify tokens right now: ${err.message}` }, CLOSE);
      }
      return unauthorized(res, err instanceof TokenError ? err.message : 'the token could not be verified');
    }
    if (!identity.groups.some((g) => this.admins.has(g))) {
      this.opts.logger.warn('policy explain refused: caller not in an admin group', { subject: identity.subject, groups: identity.groups });
      return json(res, 403, { error: 'forbidden', message: `${identity.subject} is not in an admin group (edge.admin.groups)` }, CLOSE);
    }

    let text = '';
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) return json(res, 413, { error: 'body_too_large', message: `the body exceeds ${MAX_BODY_BYTES} bytes` }, CLOSE);
      text += chunk.toString('utf8');
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      return json(res, 400, { error: 'bad_request', message: `the body is not JSON: ${(err as Error).message}` });
    }
    const parsed = ExplainSpecSchema.safeParse(raw);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) =>
        i.code === 'unrecognized_keys' ? `unknown key ${i.keys.map((k) => JSON.stringify(k)).join(', ')}` : `${i.path.map(String).join('.') || '(body)'}: ${i.message}`,
      );
      return json(res, 400, { error: 'bad_request', message: problems.join('; '), problems });
    }
    const input = explainInput(parsed.data);
    let reply;
    try {
      reply = await this.opts.decisions.explain(input.identity, input.attributes, input.at);
    } catch (err) {
      const message = err instanceof GatewayError ? err.message : 'policy service unavailable';
      return json(res, 503, { error: 'policy_unavailable', message });
    }
    const decision = reply.decision!;
    this.opts.logger.info('policy explained', { by: identity.subject, request: reply.request, ruleId: decision.ruleId, version: decision.policyVersion });
    const trace = reply.trace.map((t) => ({ ruleId: t.ruleId, effect: t.effect, matched: t.matched, ...(t.matched ? {} : { failedOn: t.failedOn }) }));
    json(res, 200, {
      request: reply.request,
      policy: { name: reply.policyName, version: decision.policyVersion, source: reply.policySource },
      decision: toJson(DecisionSchema, decision),
      trace,
      text: formatExplanation({ decision, trace, request: reply.request, policyName: reply.policyName, policySource: reply.policySource }),
    });
  }
}

// Refusals before the body is read close the connection: the unread body must not be parsed as a next request.
const CLOSE = { connection: 'close' } as const;

function unauthorized(res: ServerResponse, why: string): void {
  json(res, 401, { error: 'unauthenticated', message: `portcullis: unauthorized: ${why}` }, { 'www-authenticate': 'Bearer realm="portcullis"', ...CLOSE });
}

function json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...extra });
  res.end(text);
}
