import { createHash } from 'node:crypto';
import type { Identity, RequestAttributes } from '@portcullis/contracts';

/**
 * The fingerprint an approval is bound to: SHA-256 over who asks (subject and issuer), where
 * (connection), what (verb, API group, resource, subresource, namespace, name, non-resource or
 * HTTP path, query) and the body's keyed digest (`BodyDigest` of @portcullis/masking). Two requests share a fingerprint only when an approval
 * of one may admit the other.
 */
export function requestFingerprint(identity: Identity, attributes: RequestAttributes, query: string, bodyHash: string): string {
  const k = attributes.kube;
  const h = attributes.http;
  // A JSON array: unambiguous field boundaries whatever the values contain.
  const parts = [
    'portcullis.approval.v1',
    identity.subject,
    identity.issuer,
    attributes.connection,
    attributes.connectionType,
    attributes.method,
    k?.verb ?? '',
    k?.apiGroup ?? '',
    k?.apiVersion ?? '',
    k?.resource ?? '',
    k?.subresource ?? '',
    k?.namespace ?? '',
    k?.name ?? '',
    k?.path ?? '',
    h?.path ?? '',
    query,
    bodyHash,
  ];
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}
