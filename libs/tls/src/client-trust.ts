import { X509Certificate } from 'node:crypto';

/** Where the CA that clients are told to trust for a gateway listener comes from. */
export const ClientTrustSource = {
  /** The development CA the gateway created (no certificate configured). */
  DevCa: 'dev_ca',
  /** The CA bundle the config names for clients (`edge.tls.caBundleFile`). */
  CaBundle: 'ca_bundle',
  /** The configured certificate is self-signed: it is its own trust anchor. */
  SelfSigned: 'self_signed',
  /** The configured certificate chains to a CA the client already trusts (public or corporate): none is handed out. */
  SystemRoots: 'system_roots',
} as const;
export type ClientTrustSource = (typeof ClientTrustSource)[keyof typeof ClientTrustSource];

/** What clients (kubeconfig `certificate-authority-data`, the CLI's own requests) should trust. */
export interface ClientTrust {
  /** PEM to trust, or undefined: use the system's roots. */
  readonly caPem: string | undefined;
  readonly source: ClientTrustSource;
}

/** A PEM that is not what a trust decision needs; the message names the file and the problem. */
export class ClientTrustError extends Error {
  override readonly name = 'ClientTrustError';
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle, in order; a ClientTrustError when there are none or one does not parse. */
export function parseCertificates(pem: string, what: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ClientTrustError(`${what}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (cause) {
      throw new ClientTrustError(`${what}: certificate ${i + 1} does not parse: ${(cause as Error).message}`, { cause });
    }
  });
}

/** True when `cert` names itself as issuer and its own key verifies its signature. */
export function isSelfSigned(cert: X509Certificate): boolean {
  return cert.issuer === cert.subject && cert.checkIssued(cert) && cert.verify(cert.publicKey);
}

/**
 * Decides what clients should trust for a configured server certificate (`certPem`, the leaf
 * first, as served): the CA bundle the config names for clients; else the certificate itself when
 * it is self-signed; else nothing, so clients use their system roots — handing out a leaf chained
 * to a public or corporate CA as its own "CA" would pin clients to that one leaf (or fail outright).
 *
 * @param certPem - the configured certificate file's contents (leaf, then any intermediates).
 * @param caBundlePem - the configured CA bundle for clients, when there is one.
 * @param files - names of the files, for error messages.
 */
export function clientTrustFor(certPem: string, caBundlePem: string | undefined, files: { cert: string; caBundle?: string }): ClientTrust {
  const chain = parseCertificates(certPem, files.cert);
  const leaf = chain[0]!;
  if (caBundlePem !== undefined) {
    const bundleName = files.caBundle ?? 'the CA bundle';
    const anchors = parseCertificates(caBundlePem, bundleName);
    // A bundle that does not issue the served chain would break every client: say so at start-up.
    if (!chainsTo(leaf, chain.slice(1), anchors)) {
      throw new ClientTrustError(
        `${bundleName}: none of its certificates issued ${files.cert} (subject ${JSON.stringify(leaf.subject)}, issuer ${JSON.stringify(leaf.issuer)}), directly or through the intermediates in that file`,
      );
    }
    return { caPem: caBundlePem, source: ClientTrustSource.CaBundle };
  }
  if (isSelfSigned(leaf)) return { caPem: leaf.toString(), source: ClientTrustSource.SelfSigned };
  return { caPem: undefined, source: ClientTrustSource.SystemRoots };
}

/** True when `cert` is issued by one of `anchors`, directly or through `intermediates`. */
function chainsTo(cert: X509Certificate, intermediates: readonly X509Certificate[], anchors: readonly X509Certificate[]): boolean {
  // checkIssued reads "this certificate was issued by the argument" (names, key identifiers, key usage); verify checks the signature.
  const issues = (issuer: X509Certificate, subject: X509Certificate): boolean => subject.checkIssued(issuer) && subject.verify(issuer.publicKey);
  let current = cert;
  // Bounded: a chain in a certificate file is a handful of certificates, and a loop must not spin.
  for (let depth = 0; depth <= intermediates.length; depth++) {
    if (anchors.some((a) => a.fingerprint256 === current.fingerprint256 || issues(a, current))) return true;
    const next = intermediates.find((i) => i !== current && issues(i, current));
    if (next === undefined) return false;
    current = next;
  }
  return false;
}
