import { request } from 'node:https';

/** One JSON exchange over HTTPS trusting `ca`; resolves with the status and the parsed body. */
export function requestJson(
  method: string,
  url: string,
  opts: { ca: string | undefined; token?: string; body?: unknown; timeoutMs?: number },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const text = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        headers: {
          accept: 'application/json',
          ...(text !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } : {}),
          ...(opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {}),
        },
        ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: (raw === '' ? {} : JSON.parse(raw)) as Record<string, unknown> });
          } catch {
            resolve({ status: res.statusCode ?? 0, body: { error: 'invalid_response', message: raw.slice(0, 200) } });
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${Math.round((opts.timeoutMs ?? 10_000) / 1000)}s`)));
    req.on('error', reject);
    req.end(text);
  });
}
