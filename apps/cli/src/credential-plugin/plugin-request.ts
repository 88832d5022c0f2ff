/** What the credential plugin is asked for, and its failures: shared by its hot path and its token-endpoint path. */

/** A failure the plugin reports on stderr (kubectl shows it) with a non-zero exit. */
export class CredentialError extends Error {
  override readonly name = 'CredentialError';
}

/** What the plugin was asked for, from its arguments (written by `portcullis kubeconfig`). */
export type PluginRequest =
  | { readonly mode: 'token-file'; readonly tokenFile: string }
  | {
      readonly mode: 'client-credentials';
      readonly issuer: string;
      readonly client: string;
      readonly audience: string | undefined;
      readonly scopes: readonly string[];
      /** The token endpoint, when discovery is not needed (the development issuer). */
      readonly tokenEndpoint: string | undefined;
      readonly caFile: string | undefined;
      readonly secret: SecretSource;
    };

/** Where the client secret is read from when a token is fetched (never the kubeconfig itself). */
export type SecretSource =
  | { readonly kind: 'env'; readonly name: string }
  | { readonly kind: 'file'; readonly path: string }
  /** The development issuer: $PORTCULLIS_CLIENT_SECRET, else the client's entry in this Portcullis config. */
  | { readonly kind: 'dev-config'; readonly configPath: string };

/** A JWT's exp in milliseconds, read without verifying it (the gateway verifies); undefined for an opaque token. */
export function jwtExpiryMs(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
