import { request } from 'node:https';

/** One HTTPS exchange with the edge, for assertions on status, headers and body. */
export function edgeRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string | string[]>; body?: string; ca: string },
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    // Send the path exactly as written: URL parsing would resolve dot segments before they reach the edge.
    const u = /^https:\/\/([^/]+?)(?::(\d+))?(\/.*)$/.exec(url);
    if (!u) throw new Error(`edgeRequest: not an https URL: ${url}`);
    const target = { hostname: u[1]!.replace(/^\[|\]$/g, ''), port: Number(u[2] ?? 443), path: u[3]! };
    const req = request({ ...target, method: opts.method ?? 'GET', headers: opts.headers, ca: opts.ca, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 30s`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}
