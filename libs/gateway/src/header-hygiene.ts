import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Hop-by-hop headers (RFC 9110 §7.6.1) never forwarded in either direction. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Headers a client must never choose, whatever their letter case. */
function isIdentityHeader(lower: string): boolean {
  return (
    lower === 'authorization' || lower.startsWith('impersonate-') || lower.startsWith('x-remote-') || lower === 'x-portcullis-approval' || lower === 'cookie'
  );
}

/** Header names listed in `Connection` (every line, any letter case): hop-by-hop for this message. */
function connectionNamed(incoming: IncomingHttpHeaders): Set<string> {
  const named = new Set<string>();
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || name.toLowerCase() !== 'connection') continue;
    for (const line of Array.isArray(value) ? value : [value]) for (const n of line.split(',')) named.add(n.trim().toLowerCase());
  }
  return named;
}

/**
 * Copies the client's headers for the upstream, dropping its credential, any impersonation or
 * front-proxy identity header, hop-by-hop headers and every header named in `Connection`.
 * Names are compared lower-cased: node lower-cases incoming names, but a header object built
 * elsewhere may not be, and a missed `Impersonate-Group` would be a privilege escalation.
 */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = connectionNamed(incoming);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    // `Expect: 100-continue` is answered to the client by the edge's own server (Node sends the 100
    // itself); upstream, the body follows at once, so the header is not forwarded.
    if (HOP_BY_HOP.has(lower) || named.has(lower) || isIdentityHeader(lower) || lower === 'host' || lower === 'expect') continue;
    out[name] = value;
  }
  return out;
}

/** Copies the upstream's response headers for the client, dropping hop-by-hop headers. */
export function clientResponseHeaders(incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = connectionNamed(incoming);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    const lower = name.toLowerCase();
    if (value === undefined || HOP_BY_HOP.has(lower) || named.has(lower)) continue;
    out[name] = value;
  }
  return out;
}

/** The `Impersonate-Extra-` keys the gateway sets: percent-encoded as client-go's headerKeyEscape does. */
export const IMPERSONATE_EXTRA = {
  auditId: 'impersonate-extra-portcullis.dev%2Faudit-id',
  sessionId: 'impersonate-extra-portcullis.dev%2Fsession-id',
  clientId: 'impersonate-extra-portcullis.dev%2Fclient-id',
} as const;

/**
 * A header value as Node sends it: strings go out as latin1, so a UTF-8 name (a subject or group
 * outside latin1) is passed as its UTF-8 bytes, which is what the API server reads.
 */
function headerText(value: string): string {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 0x7e) return Buffer.from(value, 'utf8').toString('latin1');
  return value;
}

/**
 * Adds the impersonation headers for the machine identity (after {@link upstreamRequestHeaders}
 * removed the client's): Impersonate-User and -Group with the connection's prefix, and
 * Impersonate-Extra- keys `portcullis.dev/audit-id` (the request's Audit-Id),
 * `portcullis.dev/session-id` (the token id: one token, one session) and `portcullis.dev/client-id`.
 * The identity's fields were checked for control characters when the token was verified.
 */
export function addImpersonationHeaders(
  headers: OutgoingHttpHeaders,
  prefix: string,
  identity: { subject: string; groups: readonly string[]; clientId: string; tokenId: string },
  auditId: string,
): void {
  headers['impersonate-user'] = headerText(`${prefix}${identity.subject}`);
  if (identity.groups.length > 0) headers['impersonate-group'] = identity.groups.map((g) => headerText(`${prefix}${g}`));
  headers[IMPERSONATE_EXTRA.auditId] = auditId;
  if (identity.tokenId) headers[IMPERSONATE_EXTRA.sessionId] = headerText(identity.tokenId);
  if (identity.clientId) headers[IMPERSONATE_EXTRA.clientId] = headerText(identity.clientId);
}
