import { request } from 'node:https';

/** POSTs a form over HTTPS trusting `ca` (the development CA) and returns status and JSON body. */
export function postForm(url: string, form: URLSearchParams, ca: string | undefined): Promise<{ status: number; body: Record<string, unknown> }> {
  const body = form.toString();
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), accept: 'application/json' },
        ...(ca !== undefined ? { ca } : {}),
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
          } catch {
            resolve({ status: res.statusCode ?? 0, body: { error: 'invalid_response', error_description: text.slice(0, 200) } });
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 10s`)));
    req.on('error', reject);
    req.end(body);
  });
}
