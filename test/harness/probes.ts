/** Free-port lookup and raw readiness probes (no client libraries: the harness tests those). */
import { request } from 'node:http';
import { connect, createServer } from 'node:net';

/** A loopback port that was free a moment ago (callers retry on EADDRINUSE: it can be taken). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not read the bound port'));
      });
    });
  });
}

/**
 * Opens a TCP connection, writes `initial` on connect and `send(received)` once it has something
 * to say, and resolves with everything read once `done(received)` is true. Rejects on error or
 * timeout.
 */
export function tcpExchange(
  port: number,
  options: {
    /** Written as soon as the connection opens (for servers that wait to be spoken to). */
    initial?: string;
    /** Called on each chunk until it returns something to write (once). */
    send?: (received: string) => string | undefined;
    done: (received: string) => boolean;
    timeoutMs: number;
  },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    let sent = false;
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error === undefined) resolve(received);
      else reject(error);
    };
    const timer = setTimeout(() => finish(new Error(`no answer on port ${port} within ${options.timeoutMs} ms`)), options.timeoutMs);
    socket.setEncoding('utf8');
    if (options.initial !== undefined) socket.once('connect', () => socket.write(options.initial ?? ''));
    socket.once('error', (error) => finish(error));
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (!sent && options.send !== undefined) {
        const out = options.send(received);
        if (out !== undefined) {
          sent = true;
          socket.write(out);
        }
      }
      if (options.done(received)) finish();
    });
    socket.once('end', () => finish(options.done(received) ? undefined : new Error(`port ${port} closed the connection`)));
  });
}

/** Result of one HTTP request made without connection pooling (servers restart under us). */
export interface HttpResult {
  readonly status: number;
  readonly body: string;
}

/** POSTs (or GETs when body is undefined) to a loopback URL with a fresh connection. */
export function httpRequest(url: string, body: string | undefined, timeoutMs: number): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: body === undefined ? 'GET' : 'POST', agent: false, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.once('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.once('error', reject);
    req.end(body);
  });
}

/** NATS is up: INFO line, then (with JetStream) a successful `$JS.API.INFO` request. */
export async function natsReady(port: number, jetstream: boolean, login?: { user: string; pass: string }): Promise<boolean> {
  const inbox = '_PORTCULLIS_PROBE';
  const connect = { verbose: false, pedantic: false, headers: true, no_responders: true, ...login };
  const connectLine = `CONNECT ${JSON.stringify(connect)}\r\n`;
  const send = jetstream ? `${connectLine}SUB ${inbox} 1\r\nPUB $JS.API.INFO ${inbox} 0\r\n\r\n` : `${connectLine}PING\r\n`;
  const out = await tcpExchange(port, {
    send: (received) => (received.includes('\r\n') ? send : undefined),
    done: (received) =>
      jetstream
        ? /\r\nH?MSG _PORTCULLIS_PROBE 1 [^\r]*\r\n[\s\S]*\r\n/.test(received) || received.includes('-ERR')
        : received.includes('PONG') || received.includes('-ERR'),
    timeoutMs: 2000,
  });
  if (!out.startsWith('INFO ') || out.includes('-ERR')) return false;
  // A 503 HMSG means "no responders": JetStream is not answering yet.
  return jetstream ? /\r\nMSG _PORTCULLIS_PROBE 1 /.test(out) && !out.includes('"error"') : true;
}

/** Redis answers PING with +PONG (not -LOADING). */
export async function redisReady(port: number): Promise<boolean> {
  const out = await tcpExchange(port, { initial: 'PING\r\n', done: (r) => r.includes('\r\n'), timeoutMs: 2000 });
  return out.startsWith('+PONG');
}

/** ClickHouse answers `SELECT 1` over HTTP. */
export async function clickHouseReady(httpPort: number): Promise<boolean> {
  const res = await httpRequest(`http://127.0.0.1:${httpPort}/?query=SELECT%201`, undefined, 2000);
  return res.status === 200 && res.body.trim() === '1';
}
