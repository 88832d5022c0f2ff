import type { ProtocolAdapter } from './protocol-adapter.js';

/**
 * Where a data-path request goes, as the server resolved it — from the path prefix
 * (`/k8s/<connection>/…`) or the Host (`<connection>.<edge.domain>`) — so the pipeline sees one
 * shape and the request's URL is never rewritten.
 */
export interface EdgeRoute {
  /** The protocol serving the request; `protocol.kind` is the kind of connection it must name. */
  readonly protocol: ProtocolAdapter;
  /** The connection's name as the client wrote it (the pipeline checks that it exists). */
  readonly connectionName: string;
  /**
   * The path and query as the client wrote them, after the connection's base path; always starts
   * with `/`. Never sent as is: the protocol reads it, and its canonical form is what goes upstream.
   */
  readonly upstreamPath: string;
}

/** The route of `<prefix><connection>[/path][?query]`, a URL that starts with `protocol.prefix`. */
export function routeFromPath(protocol: ProtocolAdapter, url: string): EdgeRoute {
  const afterPrefix = url.slice(protocol.prefix.length);
  const slash = afterPrefix.search(/[/?]/);
  const connectionName = slash === -1 ? afterPrefix : afterPrefix.slice(0, slash);
  let upstreamPath = slash === -1 ? '/' : afterPrefix.slice(slash);
  if (upstreamPath.startsWith('?')) upstreamPath = `/${upstreamPath}`;
  return { protocol, connectionName, upstreamPath };
}

/** The route of a host-routed request: the whole URL (which starts with `/`) goes upstream. */
export function routeFromHost(protocol: ProtocolAdapter, connectionName: string, url: string): EdgeRoute {
  return { protocol, connectionName, upstreamPath: url };
}
