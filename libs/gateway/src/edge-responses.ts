/**
 * The answers the edge itself writes (the upstream's are relayed by the forwarders): a refusal in
 * the request's protocol, and the messages of the refusals a decision causes.
 */
import type { ServerResponse } from 'node:http';
import type { Decision, Identity } from '@portcullis/contracts';
import type { GatewayError } from './gateway-error.js';
import type { ProtocolAdapter } from './protocol-adapter.js';

/** The response header carrying the request's event id. */
export const AUDIT_ID_HEADER = 'Audit-Id';
/** {@link AUDIT_ID_HEADER} as a key of a headers object (lower-case, as Node sends them). */
export const AUDIT_ID_FIELD = 'audit-id';

/**
 * Writes `gw` as `protocol` words a refusal (a Kubernetes Status, a JSON error…). A response whose
 * headers already went out cannot change its status: its connection is cut instead.
 */
export function writeRefusal(res: ServerResponse, protocol: ProtocolAdapter, gw: GatewayError, requestId: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const message = gw.message.startsWith('portcullis:') ? gw.message : `portcullis: ${gw.message}`;
  const text = protocol.refusalBody(gw, message, requestId);
  const headers: Record<string, string | number> = {
    'content-type': protocol.refusalContentType,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  };
  if (gw.httpStatus === 401) headers['www-authenticate'] = 'Bearer realm="portcullis"';
  // A refused body is not read: close rather than leave the client's bytes to be parsed as the next request.
  if (gw.httpStatus === 413) headers['connection'] = 'close';
  // No Retry-After on 503: client-go would silently retry up to ten times and hide the outage.
  res.writeHead(gw.httpStatus, headers);
  res.end(text);
}

/** Why a denied request was denied: who may not do `what`, under which rule and policy version. */
export function denyMessage(decision: Decision, what: string, identity: Identity): string {
  const why = decision.message ? `: ${decision.message}` : '';
  return `portcullis: ${identity.subject} may not ${what} (rule ${decision.ruleId}, policy ${decision.policyVersion})${why}`;
}

/** Why a require_approval request is refused on an edge without approvals. */
export function approvalsOffMessage(decision: Decision): string {
  return `portcullis: this request requires approval by rule ${decision.ruleId} (policy ${decision.policyVersion}); approvals are not enabled on this gateway yet`;
}
