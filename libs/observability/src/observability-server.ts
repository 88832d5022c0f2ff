import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readiness } from './health.js';
import { PROMETHEUS_CONTENT_TYPE, type MetricsRegistry } from './metrics-registry.js';

/**
 * The plain-HTTP listener every role can open (`observability.listen`): `/metrics`, `/healthz`,
 * `/readyz`. No authentication: bind it to a private address (deploy/README.md explains).
 */
export class ObservabilityServer {
  private server: Server | undefined;

  constructor(
    private readonly registry: MetricsRegistry,
    private readonly readiness: Readiness,
  ) {}

  /** Starts listening; resolves with the bound port. */
  async listen(host: string, port: number): Promise<number> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const send = (status: number, type: string, body: string): void => {
        res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
      if (path === '/healthz') return send(200, 'text/plain; charset=utf-8', 'ok\n');
      if (path === '/readyz') {
        void this.readiness.run().then((r) => send(r.ready ? 200 : 503, 'application/json', `${JSON.stringify(r)}\n`));
        return;
      }
      if (path === '/metrics') {
        this.registry.render().then(
          (text) => send(200, PROMETHEUS_CONTENT_TYPE, text),
          () => send(500, 'text/plain', 'metrics unavailable\n'),
        );
        return;
      }
      send(404, 'text/plain', 'not found: /metrics, /healthz, /readyz\n');
    });
    server.keepAliveTimeout = 65_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
