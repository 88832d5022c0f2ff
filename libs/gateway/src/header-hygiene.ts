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
    lower === 'authorization' ||
    lower.startsWith('impersonate-') ||
    lower.startsWith('x-remote-') ||
    lower === 'x-portcullis-approval' ||
    lower === 'cookie'
  );
}

/**
 * Copies the client's headers for the upstream, dropping its credential, any impersonation or
 * front-proxy identity header, hop-by-hop headers and every header named in `Connection`.
 * Node lower-cases incoming header names, so the checks cover every letter case.
 */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = new Set<string>();
  const conn = incoming['connection'];
  if (typeof conn === 'string') for (const n of conn.split(',')) named.add(n.trim().toLowerCase());
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || named.has(name) || isIdentityHeader(name) || name === 'host') continue;
    out[name] = value;
  }
  return out;
}

/** Copies the upstream's response headers for the client, dropping hop-by-hop headers. */
export function clientResponseHeaders(incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = new Set<string>();
  const conn = incoming['connection'];
  if (typeof conn === 'string') for (const n of conn.split(',')) named.add(n.trim().toLowerCase());
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  return out;
}
