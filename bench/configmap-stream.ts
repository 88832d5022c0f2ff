/** A ConfigMapList of about `bytes` without a length, written chunk by chunk with back-pressure. */
import type { ServerResponse } from 'node:http';

const item = (i: number): string =>
  JSON.stringify({ metadata: { name: `cm-${i}`, namespace: 'bench', resourceVersion: String(i) }, data: { payload: 'x'.repeat(900) } });

/** Streams the list to `res` (status 200, JSON): the edge's RSS under a long body is measured with it. */
export function streamConfigMapList(res: ServerResponse, bytes: number): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write('{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[');
  let sent = 0;
  let i = 0;
  const pump = (): void => {
    while (sent < bytes) {
      const chunk = Array.from({ length: 64 }, () => item(i++)).join(',') + (sent + 70_000 < bytes ? ',' : '');
      sent += chunk.length;
      if (!res.write(chunk)) {
        res.once('drain', pump);
        return;
      }
    }
    res.end(']}');
  };
  pump();
}
