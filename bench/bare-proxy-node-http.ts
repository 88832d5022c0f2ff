/**
 * The bare Node proxy of bench/bare-proxy.ts with node:https (keep-alive Agent) to the upstream
 * instead of undici: `BENCH_BARE_NODE_HTTP=1 npm run bench:proxy` runs it as the "bare Node"
 * target, to show what the HTTP client alone costs per request. Args as bare-proxy.ts.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { loadOrCreateDevTls } from '@portcullis/tls';

const [upstreamUrl = '', caFile = '', dir = '.'] = process.argv.slice(2);
const up = new URL(upstreamUrl);
const agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: 'lifo', noDelay: true, ca: readFileSync(caFile, 'utf8') });
const tls = await loadOrCreateDevTls(join(dir, 'bare-proxy-tls'), ['127.0.0.1', 'localhost']);
const server = createServer({ cert: tls.certPem, key: tls.keyPem, keepAliveTimeout: 120_000 }, (req, res) => {
  const u = request(
    { hostname: up.hostname, port: up.port, method: 'GET', path: req.url ?? '/', headers: { accept: req.headers.accept ?? '*/*' }, agent },
    (r) => {
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && k !== 'connection' && k !== 'keep-alive') headers[k] = v;
      res.writeHead(r.statusCode ?? 502, headers);
      r.pipe(res);
    },
  );
  u.on('error', () => res.writeHead(502).end());
  u.end();
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
process.stdout.write(`${JSON.stringify({ url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, ca: tls.caPem })}\n`);
process.once('SIGTERM', () => process.exit(0));
