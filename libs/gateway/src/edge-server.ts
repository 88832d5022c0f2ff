import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DevIssuer } from '../../identity/src/index.js';
import type { Logger } from '../../common/src/index.js';
import { DEV_ISSUER_PATH, handleDevIssuer } from './dev-issuer-routes.js';
import { AUDIT_ID_HEADER, type EdgePipeline } from './edge-pipeline.js';
import { POLICY_EXPLAIN_PATH, type PolicyExplainRoute } from './policy-explain-route.js';
import { newEventId } from '../../contracts/src/index.js';

/** What the edge server needs. */
export interface EdgeServerOptions {
  host: string;
  port: number;
  tls: { certPem: string; keyPem: string };
  pipeline: EdgePipeline;
  devIssuer?: DevIssuer | undefined;
  /** `POST /admin/policy/explain`; absent = 404. */
  policyExplain?: PolicyExplainRoute | undefined;
  logger: Logger;
  /** Readiness: true when every dependency the edge needs is connected. */
  ready: () => boolean;
}

/**
 * The edge's HTTPS server. Plain Node on the hot path (no framework per request): routes
 * `/k8s/<connection>/…`, `/http/<connection>/…`, the development issuer, `/healthz` and `/readyz`.
 */
export class EdgeServer {
  private server: Server | undefined;

  constructor(private readonly opts: EdgeServerOptions) {}

  /** Starts listening; resolves with the bound address. */
  async listen(): Promise<{ host: string; port: number }> {
    const server = createServer(
      {
        key: this.opts.tls.keyPem,
        cert: this.opts.tls.certPem,
        minVersion: 'TLSv1.2',
        // Slow-header clients are cut off; long-running responses are not.
        headersTimeout: 15_000,
        requestTimeout: 0,
        keepAliveTimeout: 65_000,
        maxHeaderSize: 32 * 1024,
      },
      (req, res) => {
        this.route(req, res).catch((err: unknown) => {
          this.opts.logger.error('unhandled error in request', { err });
          if (!res.headersSent) {
            res.writeHead(500, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'portcullis: internal error', reason: 'InternalError', code: 500 }));
          } else {
            res.destroy();
          }
        });
      },
    );
    server.on('clientError', (err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
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

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    if (url.startsWith('/k8s/')) return this.opts.pipeline.handle(req, res, 'kubernetes');
    if (url.startsWith('/http/')) return this.opts.pipeline.handle(req, res, 'http');
    res.setHeader(AUDIT_ID_HEADER, newEventId());
    const path = url.split('?')[0] ?? '/';
    if (path === '/healthz') return text(res, 200, 'ok');
    if (path === '/readyz') return this.opts.ready() ? text(res, 200, 'ok') : text(res, 503, 'not ready');
    if (path === POLICY_EXPLAIN_PATH && this.opts.policyExplain !== undefined) return this.opts.policyExplain.handle(req, res);
    if (this.opts.devIssuer && (path === DEV_ISSUER_PATH || path.startsWith(`${DEV_ISSUER_PATH}/`))) {
      return handleDevIssuer(this.opts.devIssuer, req, res, path.slice(DEV_ISSUER_PATH.length));
    }
    text(res, 404, 'portcullis: not found. Kubernetes connections are served under /k8s/<connection>/, HTTP connections under /http/<connection>/\n');
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

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
