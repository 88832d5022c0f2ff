import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenUrl, urlHost } from '@portcullis/common';
import { inClusterCredential } from '@portcullis/gateway';

test('listenUrl: wildcard binds are reached through loopback, IPv6 literals are bracketed', () => {
  const cases: [scheme: 'http' | 'https', host: string, port: number, url: string][] = [
    ['https', '127.0.0.1', 8443, 'https://127.0.0.1:8443'],
    ['https', '0.0.0.0', 8443, 'https://127.0.0.1:8443'],
    ['https', '::', 8443, 'https://127.0.0.1:8443'],
    ['http', '::1', 9464, 'http://[::1]:9464'],
    ['https', 'fd00::12', 8444, 'https://[fd00::12]:8444'],
    ['https', 'gateway.internal', 443, 'https://gateway.internal:443'],
  ];
  for (const [scheme, host, port, url] of cases) {
    assert.equal(listenUrl(scheme, host, port), url, `${scheme} ${host} ${port}`);
    assert.doesNotThrow(() => new URL(listenUrl(scheme, host, port)), `${host}: a valid URL`);
  }
  assert.equal(urlHost('[::1]'), '[::1]', 'already bracketed stays as it is');
});

test('inClusterCredential builds the API server URL with the same host rule (IPv6 service hosts bracketed)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'in-cluster-'));
  try {
    for (const f of ['token', 'ca.crt']) writeFileSync(join(dir, f), 'x');
    const server = (host: string): string => inClusterCredential(dir, { KUBERNETES_SERVICE_HOST: host, KUBERNETES_SERVICE_PORT: '443' }).server;
    assert.equal(server('10.96.0.1'), 'https://10.96.0.1:443');
    assert.equal(server('fd00:10:96::1'), 'https://[fd00:10:96::1]:443');
    assert.equal(new URL(server('fd00:10:96::1')).hostname, '[fd00:10:96::1]');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
