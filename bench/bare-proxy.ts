/**
 * The ceiling for any gateway written in Node on this machine: a TLS reverse proxy with no checks
 * at all — node:https in front, one undici Pool (keep-alive, TLS) to the upstream behind, the
 * response streamed back. Args: UPSTREAM_URL UPSTREAM_CA_FILE STATE_DIR. Prints {"url","ca"}.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Pool } from 'undici';
import { loadOrCreateDevTls } from '@portcullis/tls';

const [upstreamUrl = '', caFile = '', dir = '.'] = process.argv.slice(2);
const pool = new Pool(upstreamUrl, { connections: 128, pipelining: 1, connect: { ca: readFileSync(caFile, 'utf8') } });
const tls = await loadOrCreateDevTls(join(dir, 'bare-proxy-tls'), ['127.0.0.1', 'localhost']);

const server = createServer({ cert: tls.certPem, key: tls.keyPem, keepAliveTimeout: 120_000 }, (req, res) => {
  pool.request({ method: 'GET', path: req.url ?? '/', headers: { accept: req.headers.accept ?? '*/*' } }).then(
    (up) => {
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && k !== 'connection' && k !== 'keep-alive') headers[k] = v;
      res.writeHead(up.statusCode, headers);
      up.body.pipe(res);
    },
    () => {
      res.writeHead(502).end();
    },
  );
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
process.stdout.write(`${JSON.stringify({ url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, ca: tls.caPem })}\n`);
process.once('SIGTERM', () => process.exit(0));
