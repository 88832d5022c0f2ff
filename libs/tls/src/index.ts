/** Development TLS: a local CA, server and client certificates, and a persistent dev store. */
export {
  createCertificateAuthority,
  issueServerCertificate,
  issueClientCertificate,
  type CertificateKeyPair,
  type ServerCertificateOptions,
  type ClientCertificateOptions,
} from './certificate-authority.js';
export { loadOrCreateDevTls, DEV_TLS_FILES, type DevTls, type DevTlsFile } from './dev-tls-store.js';
export { SERVER_TLS_OPTIONS } from './server-tls-options.js';
export { clientTrustFor, isSelfSigned, parseCertificates, ClientTrustError, ClientTrustSource, type ClientTrust } from './client-trust.js';
