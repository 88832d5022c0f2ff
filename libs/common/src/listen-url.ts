/**
 * The one way to turn a listen address into a URL (copies of this drifted: one forgot the IPv6
 * brackets). A wildcard bind address (`0.0.0.0`, `::`) is reached through loopback; an IPv6
 * literal is bracketed.
 */

/** The host part of a URL for `host`: IPv6 literals in brackets, anything else as it is. */
export function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** The URL a client on this machine reaches a listener bound to `host`:`port` at, without a trailing slash. */
export function listenUrl(scheme: 'http' | 'https', host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
  return `${scheme}://${urlHost(reachable)}:${port}`;
}
