/**
 * Plain HTTP APIs behind `/http/<connection>/…`: requests read as method, canonical path and query,
 * refusals answered as a small JSON error carrying the Audit-Id, bodies masked as generic JSON.
 */
import { create, HttpAttributesSchema, KubeAttributesSchema, type RequestAttributes } from '@portcullis/contracts';
import type { MaskTarget } from '@portcullis/masking';
import { ConnectionKind } from './connection-kind.js';
import type { GatewayError } from './gateway-error.js';
import { canonicalHttpPath } from './http-path.js';
import type { ProtocolAdapter } from './protocol-adapter.js';

const GENERIC: MaskTarget = Object.freeze({ mode: 'generic' });

/** The HTTP protocol adapter. */
export const httpProtocol: ProtocolAdapter = {
  kind: ConnectionKind.Http,
  prefix: '/http/',
  readAttributes(attributes: RequestAttributes, rawPath: string, query: URLSearchParams): string {
    const path = canonicalHttpPath(rawPath);
    attributes.http = create(HttpAttributesSchema, { method: attributes.method, path, query: query.toString() });
    attributes.kube = create(KubeAttributesSchema, {});
    return path;
  },
  describe(attributes: RequestAttributes): string {
    return `${attributes.method} ${attributes.http?.path ?? ''}`;
  },
  refusalContentType: 'application/json',
  refusalBody(err: GatewayError, message: string, requestId: string): string {
    return JSON.stringify({ error: err.code, message, auditId: requestId });
  },
  maskTarget(): MaskTarget {
    return GENERIC;
  },
};
