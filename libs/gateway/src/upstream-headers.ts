import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Identity } from '@portcullis/contracts';
import type { UpstreamConnection } from './connection-registry.js';
import { addImpersonationHeaders, upstreamRequestHeaders } from './header-hygiene.js';

/**
 * The headers of the upstream request: the client's after hygiene, the upstream's Host, the
 * gateway's own credential and the impersonation of the machine identity. Used for plain
 * requests and upgrades alike, so both carry exactly the same identity.
 */
export function gatewayRequestHeaders(
  incoming: IncomingHttpHeaders,
  connection: UpstreamConnection,
  identity: Identity,
  requestId: string,
): OutgoingHttpHeaders {
  const headers = upstreamRequestHeaders(incoming);
  headers['host'] = connection.url.host;
  const credential = connection.credential();
  if (credential !== undefined) headers['authorization'] = `Bearer ${credential}`;
  if (connection.impersonate) addImpersonationHeaders(headers, connection.impersonationPrefix, identity, requestId);
  return headers;
}
