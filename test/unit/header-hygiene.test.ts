import assert from 'node:assert/strict';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { addImpersonationHeaders, clientResponseHeaders, IMPERSONATE_EXTRA, upstreamRequestHeaders } from '@portcullis/gateway';

/** What the upstream would receive for a raw request, as the echo server reports it. */
interface Echo {
  readonly forwarded: Record<string, string | string[]>;
  readonly received: IncomingHttpHeaders;
}

let server: Server;
let port: number;

before(async () => {
  server = createServer((req, res) => {
    const body = JSON.stringify({ forwarded: upstreamRequestHeaders(req.headers), received: req.headers });
    // Connection: close makes node end the socket after the body, so the client reads to EOF.
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
    req.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
});

/** Sends header lines exactly as written (letter case, duplicates) over a raw TCP socket. */
async function rawRequest(headerLines: readonly string[], body = ''): Promise<Echo> {
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((resolve, reject) => {
    socket.on('end', resolve);
    socket.on('error', reject);
  });
  socket.write(`GET /api/v1/namespaces/default/pods HTTP/1.1\r\n${headerLines.map((l) => `${l}\r\n`).join('')}\r\n${body}`);
  await closed;
  socket.destroy();
  const text = Buffer.concat(chunks).toString('utf8');
  const split = text.indexOf('\r\n\r\n');
  assert.match(text.slice(0, split), /^HTTP\/1\.1 200 /, text);
  return JSON.parse(text.slice(split + 4)) as Echo;
}

/** A realistic request carrying every header a client must not get through to the upstream. */
const HOSTILE_REQUEST: readonly string[] = [
  'Host: portcullis.example.com:8443',
  'Authorization: Bearer client-token-abc',
  'IMPERSONATE-USER: admin',
  'impersonate-group: system:masters',
  'Impersonate-Extra-scopes: cluster-admin',
  'Impersonate-Uid: 0',
  'X-Remote-User: admin',
  'x-remote-group: system:masters',
  'X-Remote-Extra-foo: bar',
  'Connection: keep-alive, X-Secret-Hop',
  'X-Secret-Hop: 1',
  'Keep-Alive: timeout=5',
  'Proxy-Authorization: Basic YWRtaW46YWRtaW4=',
  'Proxy-Connection: keep-alive',
  'TE: trailers',
  'Trailer: X-Checksum',
  'Upgrade: h2c',
  'Cookie: session=s3cr3t',
  'X-Portcullis-Approval: apr-forged-123',
  'Accept: application/json;as=Table;v=v1;g=meta.k8s.io, application/json',
  'Content-Type: application/json',
  'User-Agent: kubectl/v1.31.0 (linux/amd64) kubernetes/abc',
  'Accept-Encoding: gzip',
  'X-Request-Id: req-42',
];

const MUST_DROP: readonly { header: string; why: string }[] = [
  { header: 'host', why: 'the upstream host is set by the gateway' },
  { header: 'authorization', why: "the client's credential never reaches the upstream" },
  { header: 'impersonate-user', why: "impersonation is the gateway's, not the client's" },
  { header: 'impersonate-group', why: 'system:masters by header' },
  { header: 'impersonate-extra-scopes', why: 'impersonated extra' },
  { header: 'impersonate-uid', why: 'impersonated uid' },
  { header: 'x-remote-user', why: 'front-proxy identity' },
  { header: 'x-remote-group', why: 'front-proxy group' },
  { header: 'x-remote-extra-foo', why: 'front-proxy extra' },
  { header: 'connection', why: 'hop-by-hop' },
  { header: 'x-secret-hop', why: 'named in Connection, so hop-by-hop' },
  { header: 'keep-alive', why: 'hop-by-hop' },
  { header: 'proxy-authorization', why: 'hop-by-hop credential for this proxy' },
  { header: 'proxy-connection', why: 'hop-by-hop (legacy)' },
  { header: 'te', why: 'hop-by-hop' },
  { header: 'trailer', why: 'hop-by-hop' },
  { header: 'upgrade', why: 'hop-by-hop' },
  { header: 'cookie', why: 'browser session for the gateway, not for the upstream' },
  { header: 'x-portcullis-approval', why: 'consumed by the gateway' },
];

const MUST_KEEP: readonly { header: string; value: string }[] = [
  { header: 'accept', value: 'application/json;as=Table;v=v1;g=meta.k8s.io, application/json' },
  { header: 'content-type', value: 'application/json' },
  { header: 'user-agent', value: 'kubectl/v1.31.0 (linux/amd64) kubernetes/abc' },
  { header: 'accept-encoding', value: 'gzip' },
  { header: 'x-request-id', value: 'req-42' },
];

describe('upstreamRequestHeaders over a real socket (mixed-case raw headers)', () => {
  let echo: Echo;
  before(async () => {
    echo = await rawRequest(HOSTILE_REQUEST);
  });

  for (const { header, why } of MUST_DROP) {
    test(`drops ${header} (${why})`, () => {
      assert.ok(echo.received[header] !== undefined, `the server did receive ${header}, so the test is meaningful`);
      assert.equal(echo.forwarded[header], undefined, `${header} was forwarded`);
    });
  }

  for (const { header, value } of MUST_KEEP) {
    test(`keeps ${header}`, () => {
      assert.equal(echo.forwarded[header], value);
    });
  }

  test('nothing but the kept headers gets through', () => {
    assert.deepEqual(Object.keys(echo.forwarded).sort(), MUST_KEEP.map((k) => k.header).sort());
  });

  test('duplicate identity headers are all dropped', async () => {
    const e = await rawRequest([
      'Host: x',
      'Impersonate-Group: system:masters',
      'Impersonate-Group: system:nodes',
      'impersonate-user: a',
      'IMPERSONATE-USER: b',
      'Authorization: Bearer one',
      'Authorization: Bearer two',
      'X-Remote-Group: g1',
      'X-REMOTE-GROUP: g2',
      'Cookie: a=1',
      'Cookie: b=2',
      'X-Request-Id: dup',
    ]);
    assert.equal(e.received['impersonate-group'], 'system:masters, system:nodes', 'node joined both lines');
    assert.equal(e.received['x-remote-group'], 'g1, g2');
    assert.deepEqual(e.forwarded, { 'x-request-id': 'dup' });
  });

  test('every header named in Connection is dropped, whatever its case or spacing', async () => {
    const e = await rawRequest(['Host: x', 'Connection: X-A ,x-b,  X-C', 'x-a: 1', 'X-B: 2', 'X-c: 3', 'X-D: 4']);
    assert.deepEqual(e.forwarded, { 'x-d': '4' });
  });

  test('two Connection lines: headers named in either are dropped', async () => {
    const e = await rawRequest(['Host: x', 'Connection: X-A', 'Connection: X-B', 'x-a: 1', 'x-b: 2', 'x-c: 3']);
    assert.deepEqual(e.forwarded, { 'x-c': '3' });
  });

  test('transfer-encoding is hop-by-hop', async () => {
    const e = await rawRequest(['Host: x', 'Transfer-Encoding: chunked', 'Content-Type: text/plain'], '0\r\n\r\n');
    assert.equal(e.received['transfer-encoding'], 'chunked');
    assert.deepEqual(e.forwarded, { 'content-type': 'text/plain' });
  });
});

describe('upstreamRequestHeaders on header objects', () => {
  test('mixed-case keys (a caller that did not come through node) are dropped too', () => {
    const out = upstreamRequestHeaders({
      Authorization: 'Bearer x',
      'Impersonate-User': 'admin',
      'X-Remote-User': 'admin',
      Cookie: 'a=1',
      Host: 'h',
      'X-Portcullis-Approval': 'apr',
      Accept: 'application/json',
    });
    assert.deepEqual(out, { Accept: 'application/json' });
  });

  test('a mixed-case Connection header still names hop-by-hop headers', () => {
    const headers = { Connection: 'X-Hop', 'X-Hop': 'internal', 'Keep-Alive': '5', 'X-Kept': '1' } as IncomingHttpHeaders;
    assert.deepEqual(upstreamRequestHeaders(headers), { 'X-Kept': '1' });
    assert.deepEqual(clientResponseHeaders(headers), { 'X-Kept': '1' });
  });

  test('Connection given as several lines (an array) names every header in them', () => {
    const headers = { connection: ['x-a', 'x-b, x-c'], 'x-a': '1', 'x-b': '2', 'x-c': '3', 'x-d': '4' } as unknown as IncomingHttpHeaders;
    assert.deepEqual(upstreamRequestHeaders(headers), { 'x-d': '4' });
    assert.deepEqual(clientResponseHeaders(headers), { 'x-d': '4' });
  });

  test('array values are kept as arrays; undefined values are skipped', () => {
    const out = upstreamRequestHeaders({ 'x-multi': ['a', 'b'], 'x-none': undefined, accept: '*/*' });
    assert.deepEqual(out, { 'x-multi': ['a', 'b'], accept: '*/*' });
  });
});

describe('clientResponseHeaders', () => {
  test('drops hop-by-hop and Connection-named headers, keeps the rest', () => {
    const out = clientResponseHeaders({
      connection: 'keep-alive, X-Upstream-Hop',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      'x-upstream-hop': 'internal',
      'proxy-authenticate': 'Basic',
      trailer: 'x-sum',
      upgrade: 'h2c',
      'content-type': 'application/json',
      'audit-id': 'abc',
      'set-cookie': ['a=1', 'b=2'],
      'cache-control': 'no-cache, private',
    });
    assert.deepEqual(out, {
      'content-type': 'application/json',
      'audit-id': 'abc',
      'set-cookie': ['a=1', 'b=2'],
      'cache-control': 'no-cache, private',
    });
  });
});

describe('addImpersonationHeaders', () => {
  test('user, groups and percent-encoded extra keys; UTF-8 names reach the upstream as UTF-8 bytes', async () => {
    const headers: Record<string, string | string[] | number> = {};
    addImpersonationHeaders(headers, 'portcullis:', { subject: 'bot-łódź', groups: ['bots', 'équipe'], clientId: 'ci', tokenId: 'jti-1' }, 'audit-1');
    assert.equal(IMPERSONATE_EXTRA.auditId, 'impersonate-extra-portcullis.dev%2Faudit-id');
    const received = await new Promise<string[]>((resolve, reject) => {
      const echo = createServer((req, res) => {
        res.end();
        resolve(req.rawHeaders);
        echo.close();
      });
      echo.listen(0, '127.0.0.1', () => {
        const req = request({ host: '127.0.0.1', port: (echo.address() as AddressInfo).port, headers: headers as Record<string, string | string[]> }, (res) =>
          res.resume(),
        );
        req.on('error', reject);
        req.end();
      });
    });
    const pairs: [string, string][] = [];
    for (let i = 0; i + 1 < received.length; i += 2) pairs.push([received[i]!.toLowerCase(), Buffer.from(received[i + 1]!, 'latin1').toString('utf8')]);
    const get = (n: string) => pairs.filter(([k]) => k === n).map(([, v]) => v);
    assert.deepEqual(get('impersonate-user'), ['portcullis:bot-łódź']);
    assert.deepEqual(get('impersonate-group'), ['portcullis:bots', 'portcullis:équipe']);
    assert.deepEqual(get('impersonate-extra-portcullis.dev%2faudit-id'), ['audit-1']);
    assert.deepEqual(get('impersonate-extra-portcullis.dev%2fsession-id'), ['jti-1']);
    assert.deepEqual(get('impersonate-extra-portcullis.dev%2fclient-id'), ['ci']);
  });
});
