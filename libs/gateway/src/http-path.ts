/**
 * The path grammar of `/http/<connection>/…`: the path the policy matches is the path that is
 * sent. A raw path is decoded segment by segment and written again in one canonical encoding, so
 * `/%61dmin` and `/admin` are the same path to the policy and to the upstream; a path an upstream
 * could read as something else than the edge does is refused instead.
 */
import { GatewayError, GatewayErrorCode } from './gateway-error.js';

// Kept as they are in the canonical form: unreserved characters and the sub-delimiters a path segment may carry (RFC 3986 pchar), less ";".
const PLAIN = /^[A-Za-z0-9\-._~!$&'()*+,=:@]$/;
// Refused even percent-encoded: what would split, parameterise or re-encode a segment at some upstream, and control characters.
const REFUSED = /[/\\;%?#\x00-\x1f\x7f]/;
const HEX = '0123456789ABCDEF';

/**
 * The canonical form of a raw HTTP request path (without its query): each segment decoded and
 * re-encoded (letters, digits, `-._~!$&'()*+,=:@` as themselves, other printable ASCII as `%XX`).
 * Refused (GatewayError `bad_path`): an empty, "." or ".." segment (one trailing slash is kept), a
 * `;` parameter, an encoded "/", "\", "%", "?" or "#", a control character, a malformed escape, and
 * any non-ASCII character (the look-alikes of "." and "/" that some upstreams fold to them).
 */
export function canonicalHttpPath(rawPath: string): string {
  if (!rawPath.startsWith('/')) throw badPath('the request path must start with "/"');
  if (rawPath === '/') return '/';
  const trailing = rawPath.endsWith('/');
  const segments = rawPath.slice(1, trailing ? -1 : undefined).split('/');
  let out = '';
  for (const raw of segments) out += `/${httpSegment(raw)}`;
  return trailing ? `${out}/` : out;
}

function httpSegment(raw: string): string {
  if (raw === '') throw badPath('the request path contains an empty segment ("//")');
  if (raw.includes(';')) throw badPath(`the request path segment ${quote(raw)} carries a ";" parameter`);
  let segment: string;
  try {
    segment = decodeURIComponent(raw);
  } catch {
    throw badPath('the request path contains a malformed percent-encoding');
  }
  if (segment === '.' || segment === '..') throw badPath('the request path contains a "." or ".." segment');
  let out = '';
  for (const c of segment) {
    const code = c.codePointAt(0)!;
    if (code > 0x7e || REFUSED.test(c))
      throw badPath(`the request path segment ${quote(segment)} contains ${quote(c)}, which the edge does not forward in a path`);
    out += PLAIN.test(c) ? c : `%${HEX[code >> 4]}${HEX[code & 15]}`;
  }
  return out;
}

function badPath(message: string): GatewayError {
  return new GatewayError(GatewayErrorCode.BadPath, message);
}

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}
