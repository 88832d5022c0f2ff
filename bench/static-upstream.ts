/**
 * The proxy comparison's upstream, as its own process: a minimal static HTTPS server, so every
 * scenario measures what sits in front of it and not the upstream's work. Any GET answers a small
 * ConfigMap (~400 bytes, sized); `…/secrets` answers a ~1 MB SecretList (sized); `…/stream` a 200 MB
 * ConfigMapList without a length. Args: STATE_DIR.
 * Prints {"url","ca"} once listening.
 */
import { once } from 'node:events';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { listenUrl } from '@portcullis/common';
import { loadOrCreateDevTls } from '@portcullis/tls';
import { streamConfigMapList } from './configmap-stream.js';

const dir = process.argv[2] ?? '.';
const b64 = (s: string): string => Buffer.from(s).toString('base64');

const small = Buffer.from(
  JSON.stringify({
    kind: 'ConfigMap',
    apiVersion: 'v1',
    metadata: {
      name: 'app-config',
      namespace: 'default',
      uid: '8f1c0c7e-1111-2222-3333-444455556666',
      resourceVersion: '4711',
      creationTimestamp: '2026-01-01T00:00:00Z',
      labels: { app: 'web' },
    },
    data: { LOG_LEVEL: 'info', REGION: 'eu-west-1', FEATURE_FLAGS: 'a,b,c' },
  }),
);

/** A SecretList of about 1 MB: realistic items, three data keys each, values the masker must rewrite. */
function secretList(bytes: number): Buffer {
  const items: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const item = JSON.stringify({
      metadata: { name: `app-${i}-credentials`, namespace: 'default', resourceVersion: String(100000 + i), labels: { app: `app-${i}` } },
      data: {
        username: b64(`user-${i}`),
        password: b64(`pw-${i}-${'x'.repeat(24)}`),
        'tls.key': b64(`-----BEGIN PRIVATE KEY-----\n${'A'.repeat(600)}\n-----END PRIVATE KEY-----\n`),
      },
      type: 'Opaque',
    });
    items.push(item);
    size += item.length + 1;
  }
  return Buffer.from(`{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[${items.join(',')}]}`);
}
const list = secretList(1024 * 1024);

const tls = await loadOrCreateDevTls(join(dir, 'upstream-tls'), ['127.0.0.1', 'localhost']);
const STREAM_BYTES = 200 * 1024 * 1024;
const server = createServer({ cert: tls.certPem, key: tls.keyPem, keepAliveTimeout: 120_000 }, (req, res) => {
  if (req.url?.endsWith('/stream') === true) {
    streamConfigMapList(res, STREAM_BYTES);
    return;
  }
  const body = req.url?.endsWith('/secrets') === true ? list : small;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const bound = server.address() as AddressInfo;
process.stdout.write(`${JSON.stringify({ url: listenUrl('https', bound.address, bound.port), ca: tls.caPem, listBytes: list.length })}\n`);
process.once('SIGTERM', () => process.exit(0));
