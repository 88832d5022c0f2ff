import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { createCertificateAuthority, issueClientCertificate, issueServerCertificate, loadOrCreateDevTls } from '@portcullis/tls';

interface HandshakeResult {
  readonly authorized: boolean;
  readonly error?: string;
}

async function withTlsServer<T>(cert: { certPem: string; keyPem: string }, fn: (port: number) => Promise<T>): Promise<T> {
  const server = tls.createServer({ key: cert.keyPem, cert: cert.certPem }, (socket) => {
    socket.end('hello');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    return await fn((server.address() as AddressInfo).port);
  } finally {
    server.close();
  }
}

async function handshake(port: number, servername: string, ca: string | undefined): Promise<HandshakeResult> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ...(servername === '127.0.0.1' ? {} : { servername }),
      checkServerIdentity: (_host, peer) => tls.checkServerIdentity(servername, peer),
      ...(ca === undefined ? {} : { ca }),
    });
    socket.once('secureConnect', () => {
      resolve({ authorized: socket.authorized });
      socket.destroy();
    });
    socket.once('error', (err: Error) => resolve({ authorized: false, error: err.message }));
  });
}

describe('dev TLS', () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-tls-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('issues a server certificate trusted with the CA for localhost and 127.0.0.1, not without it', async () => {
    const devTls = await loadOrCreateDevTls(join(dir, 'a'), ['localhost', '127.0.0.1']);
    assert.equal(devTls.created, true);
    await withTlsServer(devTls, async (port) => {
      assert.deepEqual(await handshake(port, 'localhost', devTls.caPem), { authorized: true });
      assert.deepEqual(await handshake(port, '127.0.0.1', devTls.caPem), { authorized: true });
      const untrusted = await handshake(port, 'localhost', undefined);
      assert.equal(untrusted.authorized, false);
      assert.match(untrusted.error ?? '', /self[- ]signed|unable to (get|verify)/i);
      const wrongHost = await handshake(port, 'example.com', devTls.caPem);
      assert.equal(wrongHost.authorized, false);
      assert.match(wrongHost.error ?? '', /altnames/i);
    });
    const cert = new X509Certificate(devTls.certPem);
    assert.match(cert.subjectAltName ?? '', /DNS:localhost/);
    assert.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
  });

  it('writes keys 0600 in a 0700 directory and reuses them on the second call', async () => {
    const target = join(dir, 'b');
    const first = await loadOrCreateDevTls(target, ['localhost']);
    const second = await loadOrCreateDevTls(target, ['localhost']);
    assert.equal(second.created, false);
    assert.equal(second.caPem, first.caPem);
    assert.equal(second.certPem, first.certPem);
    assert.equal(second.keyPem, first.keyPem);
    assert.equal((await stat(target)).mode & 0o777, 0o700);
    assert.equal((await stat(join(target, 'ca-key.pem'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(target, 'server-key.pem'))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(target, 'ca.pem'), 'utf8'), first.caPem);
  });

  it('re-issues the server certificate from the same CA when the hosts change', async () => {
    const target = join(dir, 'c');
    const first = await loadOrCreateDevTls(target, ['localhost']);
    const again = await loadOrCreateDevTls(target, ['localhost', '127.0.0.1', 'gateway.test']);
    assert.equal(again.created, true);
    assert.equal(again.caPem, first.caPem);
    assert.notEqual(again.certPem, first.certPem);
    const caKeyBefore = await readFile(join(target, 'ca-key.pem'), 'utf8');
    await withTlsServer(again, async (port) => {
      assert.deepEqual(await handshake(port, 'gateway.test', first.caPem), { authorized: true });
      assert.deepEqual(await handshake(port, '127.0.0.1', first.caPem), { authorized: true });
    });
    // A subset of the covered hosts needs no new certificate.
    const subset = await loadOrCreateDevTls(target, ['gateway.test']);
    assert.equal(subset.created, false);
    assert.equal(subset.certPem, again.certPem);
    assert.equal(await readFile(join(target, 'ca-key.pem'), 'utf8'), caKeyBefore);
  });

  it('issues client certificates with CN and O and clientAuth usage', async () => {
    const ca = await createCertificateAuthority('test CA');
    const client = await issueClientCertificate(ca, { commonName: 'portcullis-edge', organizations: ['system:masters', 'ops'] });
    const cert = new X509Certificate(client.certPem);
    assert.equal(cert.verify(new X509Certificate(ca.certPem).publicKey), true);
    assert.match(cert.subject, /CN=portcullis-edge/);
    assert.match(cert.subject, /O=system:masters/);
    assert.match(cert.subject, /O=ops/);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);

    // The server requests and verifies the client certificate against the same CA.
    const server = await issueServerCertificate(ca, { hosts: ['localhost'], days: 1 });
    const mtls = tls.createServer({ key: server.keyPem, cert: server.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (socket) => {
      socket.end(String(socket.getPeerCertificate().subject.CN));
    });
    mtls.listen(0, '127.0.0.1');
    await once(mtls, 'listening');
    try {
      const port = (mtls.address() as AddressInfo).port;
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.certPem, key: client.keyPem, cert: client.certPem });
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      await once(socket, 'end');
      assert.equal(text, 'portcullis-edge');
    } finally {
      mtls.close();
    }
  });
});
