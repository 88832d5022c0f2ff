import { createServer, type Server } from 'node:https';
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '@portcullis/common';
import type { ConnectionKind } from './connection-kind.js';
import type { EdgePipeline } from './edge-pipeline.js';
import { AUDIT_ID_HEADER } from './edge-responses.js';
import { routeFromHost, routeFromPath, type EdgeRoute } from './edge-route.js';
import { newEventId } from '@portcullis/contracts';
import { failureStatus } from '@portcullis/kube';
import { UPGRADE_PROTOCOLS } from './upgrade-forwarder.js';
import { SERVER_TLS_OPTIONS } from '@portcullis/tls';

/** Connections reachable as `<connection>.<domain>` (SNI and Host), besides the path prefix. */
export interface HostRouting {
  /** The gateway domain, e.g. `portcullis.example.com`, lower-case, without a leading dot. */
  readonly domain: string;
  /** The type of the connection named `name`, undefined when there is none. */
  readonly kindOf: (name: string) => ConnectionKind | undefined;
}

/** What the edge server needs. */
export interface EdgeServerOptions {
  host: string;
  port: number;
  tls: { certPem: string; keyPem: string };
  pipeline: EdgePipeline;
  logger: Logger;
  hostRouting?: HostRouting | undefined;
  /**
   * The host names the edge serves path-prefix requests (`/k8s/…`, `/http/…`) as: a Host, or an
   * absolute-form request target, naming any other is answered 421 Misdirected Request. Lower-case,
   * IPv6 literals without brackets, no port. Default: {@link defaultServedNames} of `host`.
   */
  servedNames?: Iterable<string> | undefined;
  /**
   * Everything that is not the data path (`/k8s/…`, `/http/…`, host-routed): the admin surfaces
   * (health, the development issuer, policy explain), served by the Nest HTTP adapter. The
   * response already carries an `Audit-Id`. Absent: every such request gets the 404 below.
   */
  admin?: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  /** How long a client may take to send the request headers before the connection is cut (default 15 s). */
  headersTimeoutMs?: number | undefined;
}

/** A request the server refuses itself, before the pipeline: the status and the reason. */
interface Refusal {
  readonly refuse: number;
  readonly message: string;
}

/**
 * The edge's HTTPS server. Plain Node on the hot path (no framework per request): resolves each
 * data-path request (`/k8s/<connection>/…`, `/http/<connection>/…` — the pipeline's protocols —
 * or host-routed) to a route for the pipeline, and hands every other request to the `admin` hook
 * (health, the development issuer, policy explain: the Nest HTTP adapter).
 */
export class EdgeServer {
  private server: Server | undefined;
  /** Where upgrades are served, for the refusal of one that is not. */
  private readonly upgradeHint: string;
  private readonly servedNames: ReadonlySet<string>;

  constructor(private readonly opts: EdgeServerOptions) {
    this.upgradeHint = opts.pipeline.protocols.all.map((p) => `${p.prefix}<connection>/`).join(' and ');
    this.servedNames = new Set([...(opts.servedNames ?? defaultServedNames(opts.host))].map((n) => hostName(n)));
  }

  /** Starts listening; resolves with the bound address. */
  async listen(): Promise<{ host: string; port: number }> {
    const headersTimeout = this.opts.headersTimeoutMs ?? 15_000;
    const server = createServer(
      {
        key: this.opts.tls.keyPem,
        cert: this.opts.tls.certPem,
        ...SERVER_TLS_OPTIONS,
        // Slow-header clients are cut off; long-running responses (watch, logs -f, exec) are not.
        headersTimeout,
        requestTimeout: 0,
        // Node checks the header deadline only this often (30 s by default, which let a slow client hold a socket for up to 45 s).
        connectionsCheckingInterval: Math.min(1_000, headersTimeout),
        // Every event of a watch or log stream leaves at once (no Nagle delay).
        noDelay: true,
        keepAliveTimeout: 65_000,
        maxHeaderSize: 32 * 1024,
      },
      (req, res) => {
        this.route(req, res).catch((err: unknown) => {
          this.opts.logger.error('unhandled error in request', { err });
          if (!res.headersSent) {
            res.writeHead(500, { 'content-type': 'application/json' });
            res.end(JSON.stringify(failureStatus(500, 'portcullis: internal error')));
          } else {
            res.destroy();
          }
        });
      },
    );
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.routeUpgrade(req, socket, head));
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (socket.writable) socket.end(CLIENT_ERROR_RESPONSES[err.code ?? ''] ?? CLIENT_ERROR_RESPONSES['']);
      else socket.destroy();
      this.opts.logger.debug('client error', { err });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as AddressInfo;
    return { host: addr.address, port: addr.port };
  }

  /**
   * Where a request goes: `<connection>.<domain>` (the whole URL goes upstream), else the protocol
   * whose prefix the path starts with, when the request names a host the edge serves as (421
   * otherwise); undefined when neither (admin routes, not found). The host is the Host header's,
   * or an absolute-form target's authority, which replaces the Host (RFC 9112 §3.2.2).
   */
  private target(req: IncomingMessage): EdgeRoute | Refusal | undefined {
    const protocols = this.opts.pipeline.protocols;
    const routing = this.opts.hostRouting;
    const requested = requestedHost(req);
    if (requested === undefined) return { refuse: 400, message: 'portcullis: the request target is not a path or an http(s) URL with a host' };
    const { url, host } = requested;
    if (routing !== undefined) {
      const suffix = `.${routing.domain}`;
      if (host.endsWith(suffix)) {
        const name = host.slice(0, -suffix.length);
        const sni = (req.socket as TLSSocket).servername;
        // The TLS name and the Host must name the same connection: no reaching one through another's session.
        if (typeof sni === 'string' && sni.toLowerCase() !== host)
          return { refuse: 421, message: `portcullis: the TLS server name ${JSON.stringify(sni)} does not match the Host ${JSON.stringify(host)}` };
        if (name.includes('.') || !url.startsWith('/')) return { refuse: 400, message: 'portcullis: bad host-routed request' };
        return routeFromHost(protocols.forKind(routing.kindOf(name)), name, url);
      }
    }
    const protocol = protocols.byPath(url);
    if (protocol === undefined) return undefined;
    if (!this.servedNames.has(host)) {
      return {
        refuse: 421,
        message: `portcullis: misdirected request: this edge does not serve as ${JSON.stringify(host.slice(0, 255))} (the names it serves as come from edge.publicUrl, edge.domain and edge.hostNames)`,
      };
    }
    return routeFromPath(protocol, url);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const hostError = hostHeaderError(req);
    if (hostError !== undefined) return refuseAndClose(res, hostError);
    const target = this.target(req);
    if (target !== undefined && 'protocol' in target) return this.opts.pipeline.handle(req, res, target);
    res.setHeader(AUDIT_ID_HEADER, newEventId());
    if (target !== undefined) return text(res, target.refuse, `${target.message}\n`);
    if (this.opts.admin !== undefined) return this.opts.admin(req, res);
    text(res, 404, EDGE_NOT_FOUND);
  }

  // An upgrade (WebSocket, SPDY) goes through the same pipeline; refusals are plain HTTP responses on its socket.
  private routeUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as Socket);
    res.on('finish', () => socket.end());
    const hostError = hostHeaderError(req);
    if (hostError !== undefined) return refuseAndClose(res, hostError);
    const target = this.target(req);
    const protocol = (req.headers.upgrade ?? '').toLowerCase();
    if (target === undefined || !('protocol' in target) || !UPGRADE_PROTOCOLS.has(protocol)) {
      res.setHeader(AUDIT_ID_HEADER, newEventId());
      const refusal =
        target !== undefined && !('protocol' in target)
          ? target
          : {
              refuse: 400,
              message: `portcullis: cannot upgrade to ${JSON.stringify(protocol.slice(0, 32))} here; upgrades (websocket, SPDY/3.1) are served under ${this.upgradeHint}`,
            };
      return text(res, refusal.refuse, `${refusal.message}\n`);
    }
    this.opts.pipeline.handle(req, res, target, { socket, head }).catch((err: unknown) => {
      this.opts.logger.error('unhandled error in upgrade', { err });
      socket.destroy();
    });
  }

  /** Stops accepting connections and closes idle ones. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeIdleConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Ends every open connection (watches included), for a fast shutdown. */
  closeAll(): void {
    this.server?.closeAllConnections();
  }
}

/** What the edge answers (404, text/plain) for a path that is neither the data path nor an admin route. */
export const EDGE_NOT_FOUND = 'portcullis: not found. Kubernetes connections are served under /k8s/<connection>/, HTTP connections under /http/<connection>/\n';

// What a request the HTTP parser refused gets: 431 for oversized headers, 408 for headers too slow, else 400.
const CLIENT_ERROR_RESPONSES: Readonly<Record<string, string>> = {
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
  ERR_HTTP_REQUEST_TIMEOUT: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
  '': 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
};

/**
 * What is wrong with the request's Host header, if anything. HTTP/1.0 lets a client leave Host out;
 * the edge routes and checks SNI by it, so it is required. More than one is a 400 (RFC 9112 §3.2):
 * Node keeps the first, a proxy in front may have routed by another.
 */
function hostHeaderError(req: IncomingMessage): string | undefined {
  let count = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') count++;
  if (count > 1) return 'portcullis: more than one Host header';
  if (count === 0 || req.headers.host === '') return 'portcullis: a Host header is required';
  return undefined;
}

// A malformed request: 400, and the connection is closed (its framing cannot be trusted).
function refuseAndClose(res: ServerResponse, message: string): void {
  res.setHeader(AUDIT_ID_HEADER, newEventId());
  res.shouldKeepAlive = false;
  text(res, 400, `${message}\n`);
}

/** The names an edge listening on `listenHost` serves as when none are configured: loopback, and the listen address unless it is a wildcard. */
export function defaultServedNames(listenHost: string): string[] {
  const names = ['localhost', '127.0.0.1', '::1'];
  const h = hostName(listenHost);
  if (h !== '' && h !== '0.0.0.0' && h !== '::' && !names.includes(h)) names.push(h);
  return names;
}

/** A host name as compared: lower-case, without port, brackets or a trailing dot. */
function hostName(hostPort: string): string {
  const h = hostPort.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end === -1 ? h : h.slice(1, end);
  }
  // A bare IPv6 literal (as configured, never in a Host) has more than one colon.
  const bare = (h.match(/:/g)?.length ?? 0) > 1 ? h : h.replace(/:\d*$/, '');
  return bare.endsWith('.') ? bare.slice(0, -1) : bare;
}

/**
 * The path-and-query the request routes by and the host it names: the origin-form target and the
 * Host, or an absolute-form target's path and authority (RFC 9112 §3.2.2: then the Host is
 * ignored). Undefined for a target that is neither (or an authority with user info).
 */
function requestedHost(req: IncomingMessage): { url: string; host: string } | undefined {
  const target = req.url ?? '/';
  if (target.startsWith('/')) return { url: target, host: hostName(req.headers.host ?? '') };
  const abs = /^https?:\/\/([^/?#@]+)([/?].*)?$/is.exec(target);
  if (abs === null) return target === '*' ? { url: target, host: hostName(req.headers.host ?? '') } : undefined;
  const rest = abs[2] ?? '/';
  return { url: rest.startsWith('?') ? `/${rest}` : rest, host: hostName(abs[1]!) };
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
