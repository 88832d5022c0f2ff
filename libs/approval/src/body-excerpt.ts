/**
 * A short excerpt of a held request's body for approvers (Slack, the REST API) and the
 * approval.requested event. Secret values never leave: for Secrets the `data` and `stringData`
 * values are masked, and any other key that looks like a credential is masked too. A local
 * redaction until the masking library lands.
 */

/** Longest excerpt, in characters. */
export const MAX_EXCERPT_CHARS = 600;

const MASK = '***';
const SECRET_KEY = /(password|passwd|secret|token|apikey|api_key|private|credential|cert|key)$/i;

/** Builds the excerpt: masked JSON when the body is JSON, a marker for anything else. */
export function bodyExcerpt(body: Uint8Array, resource: string, contentType: string): string {
  if (body.length === 0) return '';
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // YAML, protobuf or anything else: no structure to mask safely, so show none of it.
    return `(${body.length} bytes of ${contentType || 'unknown content'}, not shown)`;
  }
  const isSecret = resource === 'secrets' || (isObject(parsed) && parsed['kind'] === 'Secret');
  const masked = mask(parsed, isSecret, 0);
  const json = JSON.stringify(masked);
  return json.length > MAX_EXCERPT_CHARS ? `${json.slice(0, MAX_EXCERPT_CHARS - 1)}…` : json;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function mask(value: unknown, isSecret: boolean, depth: number): unknown {
  if (depth > 20) return MASK;
  if (Array.isArray(value)) return value.map((v) => mask(v, isSecret, depth + 1));
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (isSecret && depth === 0 && (k === 'data' || k === 'stringData') && isObject(v)) {
      out[k] = Object.fromEntries(Object.keys(v).map((key) => [key, MASK]));
    } else if (SECRET_KEY.test(k) && (typeof v === 'string' || typeof v === 'number')) {
      out[k] = MASK;
    } else {
      out[k] = mask(v, isSecret, depth + 1);
    }
  }
  // A Secret list or embedded Secret: mask at any depth.
  if (out['kind'] === 'Secret' && depth > 0) {
    for (const k of ['data', 'stringData']) {
      const v = out[k];
      if (isObject(v)) out[k] = Object.fromEntries(Object.keys(v).map((key) => [key, MASK]));
    }
  }
  return out;
}
