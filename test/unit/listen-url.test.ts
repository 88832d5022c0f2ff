import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listenUrl, urlHost } from '@portcullis/common';

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
