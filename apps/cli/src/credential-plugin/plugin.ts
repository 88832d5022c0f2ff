/**
 * `portcullis credential`: the client-go exec credential plugin a kubeconfig from `portcullis
 * kubeconfig` runs on every kubectl call. Kept small on purpose — node builtins only on the hot
 * path (a token from the disk cache or a token file), no commander, no config loading, no Nest —
 * so a kubectl call pays little more than a bare node start. Fetching a new token (a cache miss)
 * loads ./token-endpoint.js, and the development issuer's config lookup only then.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CredentialError, jwtExpiryMs, type PluginRequest, type SecretSource } from './plugin-request.js';
import { cacheDir, fnv64, readCachedToken, staleAtMs, writeCachedToken, type CacheKey, type CachedToken } from './token-cache.js';

export const EXEC_CREDENTIAL_API = 'client.authentication.k8s.io/v1';

const USAGE = `Usage: portcullis credential [options]

The exec credential plugin of a kubeconfig from 'portcullis kubeconfig': prints a ${EXEC_CREDENTIAL_API}
ExecCredential for kubectl. Tokens are cached in $XDG_CACHE_HOME/portcullis (else ~/.cache/portcullis;
0600 files in a 0700 directory) and fetched again shortly before they expire. kubeconfig writes these
arguments; you rarely type them.

Options:
  --token-file <path>          print the token in this file (read on every call: a projected service-account token, a CI OIDC token)
  --issuer <url>               the issuer to get a token from (client credentials grant; discovery at <url>/.well-known/openid-configuration)
  --client <id>                the client id
  --audience <aud>             the audience to ask for (default: the provider's)
  --scope <scope>              a scope to ask for; repeat for several
  --token-endpoint <url>       the token endpoint (default: from discovery)
  --ca-file <path>             the CA to trust for the token endpoint (default: the system's roots)
  --client-secret-env <name>   read the client secret from this environment variable (default: PORTCULLIS_CLIENT_SECRET)
  --client-secret-file <path>  read the client secret from this file
  --dev-config <path>          the development issuer: the secret is $PORTCULLIS_CLIENT_SECRET, else the client's entry in this config
  -h, --help                   show this help

Examples:
  # the token a kubeconfig's exec plugin gets from a projected service-account token file
  portcullis credential --token-file /var/run/secrets/tokens/portcullis
  # a client-credentials token from an identity provider, the secret from $IDP_SECRET
  portcullis credential --issuer https://idp.example.com --client ci-bot --client-secret-env IDP_SECRET
`;

/** Runs the plugin: the ExecCredential on stdout, or a message on stderr and exit code 1 (2 for bad arguments). */
export async function runCredentialPlugin(argv: readonly string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  let request: PluginRequest | 'help';
  try {
    request = parsePluginArgs(argv);
  } catch (err) {
    process.stderr.write(`portcullis credential: ${(err as Error).message}\nRun 'portcullis credential --help' for usage.\n`);
    return 2;
  }
  if (request === 'help') {
    out.write(USAGE);
    return 0;
  }
  try {
    const token = request.mode === 'token-file' ? tokenFromFile(request.tokenFile) : await clientCredentialsToken(request);
    out.write(execCredential(token.accessToken, token.expirationMs));
    return 0;
  } catch (err) {
    process.stderr.write(`portcullis credential: ${err instanceof CredentialError ? err.message : String(err)}\n`);
    return 1;
  }
}

/** Reads the plugin's arguments; throws on a bad combination. */
export function parsePluginArgs(argv: readonly string[]): PluginRequest | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      'token-file': { type: 'string' },
      issuer: { type: 'string' },
      client: { type: 'string' },
      audience: { type: 'string' },
      scope: { type: 'string', multiple: true },
      'token-endpoint': { type: 'string' },
      'ca-file': { type: 'string' },
      'client-secret-env': { type: 'string' },
      'client-secret-file': { type: 'string' },
      'dev-config': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';
  if (values['token-file'] !== undefined) {
    const extra = ['issuer', 'client', 'audience', 'scope', 'token-endpoint', 'client-secret-env', 'client-secret-file', 'dev-config'].filter(
      (k) => (values as Record<string, unknown>)[k] !== undefined,
    );
    if (extra.length > 0) throw new Error(`--token-file cannot be combined with --${extra.join(', --')}`);
    return { mode: 'token-file', tokenFile: values['token-file'] };
  }
  if (values.issuer === undefined || values.client === undefined) throw new Error('give --token-file, or --issuer and --client');
  const sources = [values['client-secret-env'], values['client-secret-file'], values['dev-config']].filter((v) => v !== undefined);
  if (sources.length > 1) throw new Error('give one of --client-secret-env, --client-secret-file and --dev-config');
  const secret: SecretSource =
    values['client-secret-file'] !== undefined
      ? { kind: 'file', path: values['client-secret-file'] }
      : values['dev-config'] !== undefined
        ? { kind: 'dev-config', configPath: values['dev-config'] }
        : { kind: 'env', name: values['client-secret-env'] ?? 'PORTCULLIS_CLIENT_SECRET' };
  return {
    mode: 'client-credentials',
    issuer: values.issuer,
    client: values.client,
    audience: values.audience,
    scopes: values.scope ?? [],
    tokenEndpoint: values['token-endpoint'],
    caFile: values['ca-file'],
    secret,
  };
}

/** A token and when kubectl should ask again. */
interface PluginToken {
  readonly accessToken: string;
  readonly expirationMs: number | undefined;
}

/** How often a token file is read again at most (kubelet and CI jobs rotate the file before the token expires). */
const TOKEN_FILE_RECHECK_MS = 60_000;

/**
 * The token in a file, read on every call. kubectl is told to ask again within a minute, or at the
 * token's expiry if sooner; an expired token is an error naming the file rather than a 401 later.
 */
export function tokenFromFile(file: string, now: number = Date.now()): PluginToken {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new CredentialError(`cannot read the token file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (text === '') throw new CredentialError(`the token file ${file} is empty`);
  if (/\s/.test(text)) throw new CredentialError(`the token file ${file} does not hold one token (it contains whitespace)`);
  const exp = jwtExpiryMs(text);
  if (exp !== undefined && exp <= now) {
    throw new CredentialError(
      `the token in ${file} expired at ${new Date(exp).toISOString()}: whatever writes the file (kubelet, the CI job) has not replaced it`,
    );
  }
  return { accessToken: text, expirationMs: Math.min(exp ?? Infinity, now + TOKEN_FILE_RECHECK_MS) };
}

async function clientCredentialsToken(request: Extract<PluginRequest, { mode: 'client-credentials' }>): Promise<PluginToken> {
  let caPem: string | undefined;
  if (request.caFile !== undefined) {
    try {
      caPem = readFileSync(request.caFile, 'utf8');
    } catch (err) {
      throw new CredentialError(`cannot read the CA file ${request.caFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  // The trust anchor is part of the key: a gateway re-created with a new development CA (and a new
  // issuer key) must not be handed a token its predecessor minted.
  const key: CacheKey = {
    issuer: request.issuer,
    client: request.client,
    audience: request.audience ?? '',
    scopes: request.scopes,
    trust: caPem === undefined ? '' : fnv64(caPem),
  };
  const dir = cacheDir();
  const cached = readCachedToken(dir, key);
  if (cached !== undefined) return { accessToken: cached.accessToken, expirationMs: staleAtMs(cached) };
  const { fetchClientCredentialsToken } = await import('./token-endpoint.js');
  const fresh: CachedToken = await fetchClientCredentialsToken(request, caPem, dir);
  try {
    writeCachedToken(dir, key, fresh);
  } catch (err) {
    // Still usable: the next call fetches again. Said once on stderr, which kubectl shows.
    process.stderr.write(`portcullis credential: cannot cache the token in ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`);
  }
  return { accessToken: fresh.accessToken, expirationMs: staleAtMs(fresh) };
}

/** The ExecCredential kubectl reads. */
export function execCredential(token: string, expirationMs: number | undefined): string {
  return `${JSON.stringify({
    apiVersion: EXEC_CREDENTIAL_API,
    kind: 'ExecCredential',
    status: { token, ...(expirationMs !== undefined ? { expirationTimestamp: new Date(expirationMs).toISOString() } : {}) },
  })}\n`;
}
