/**
 * The edge as its own process for the data-path bench: in-process bus and policy, in-memory event
 * log (so the figures are the data path's, not a disk's). Reads its upstreams as JSON from argv[2]
 * ({"name":{"url","caPem","token"}}); prints {"url","ca","token"} once listening.
 */
import { startTestEdge } from '../test/support/kube-edge.js';

const connections = JSON.parse(process.argv[2] ?? '{}') as Record<string, { url: string; caPem: string; token: string }>;
const edge = await startTestEdge({
  connections,
  policy:
    'apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: bench, version: "v1" }\nrules:\n  - id: bots\n    match: { groups: [bots] }\n    effect: allow\n',
  upstreamTimeoutMs: 30_000,
  keepEvents: false,
});
process.stdout.write(`${JSON.stringify({ url: edge.url, ca: edge.ca, token: edge.token })}\n`);
process.once('SIGTERM', () => {
  void edge.close().then(() => process.exit(0));
});
