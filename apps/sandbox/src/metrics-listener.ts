import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenUrl } from '@portcullis/common';
import { PROMETHEUS_CONTENT_TYPE, type MetricsRegistry } from '@portcullis/observability';

/**
 * `GET /metrics` of the standalone sandbox (`--metrics-port`): the process metrics every role
 * exports (RSS, heap after GC), so a soak can watch the sandbox itself. The sandbox is a
 * development stand-in, not a Portcullis role: a bare listener, not the roles' Nest admin surface.
 */
export async function listenForMetrics(registry: MetricsRegistry, host: string, port: number): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const send = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== '/metrics') return send(404, 'text/plain', 'not found: GET /metrics\n');
    registry.render().then(
      (text) => send(200, PROMETHEUS_CONTENT_TYPE, text),
      () => send(500, 'text/plain', 'metrics unavailable\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    url: `${listenUrl('http', host, (server.address() as AddressInfo).port)}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
