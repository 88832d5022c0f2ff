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
    if (HOP_BY_HOP.has(lower) || named.has(lower) || isIdentityHeader(lower) || lower === 'host') continue;
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
