import { Command } from 'commander';
import type { PortcullisConfig } from '@portcullis/config';
import { DEV_ISSUER_PATH } from '@portcullis/gateway';
import { CliError, ExitCode } from '../cli-error.js';
import { collect, configOption, withExamples } from '../command-help.js';
import { loadCliConfig } from '../config-file.js';
import { edgeCaPem, edgeEndpoint, setBy } from '../gateway-endpoints.js';
import { postForm } from '../https-form.js';
import { OutputFormat, outputOption, toYaml } from '../output.js';
import { parseCompoundDuration } from '../time-arg.js';

/** What `portcullis token` asks the development issuer for. */
export interface TokenRequest {
  client: string;
  secret?: string | undefined;
  scopes: readonly string[];
  ttl?: string | undefined;
  audience?: string | undefined;
}

/** The issuer's answer (RFC 6749 §5.1). */
export interface IssuedToken {
  readonly accessToken: string;
  readonly expiresIn: number;
  /** The whole response: access_token, token_type, expires_in, scope. */
  readonly response: Record<string, unknown>;
}

/** `portcullis token`. */
export function createTokenCommand(): Command {
  const command = new Command('token')
    .summary('a short-lived token from the development issuer')
    .description(
      "Gets a short-lived access token from the gateway's development issuer (client credentials grant). Production clients get theirs from the identity provider.",
    )
    .requiredOption('--client <id>', 'the client id, one of identity.devIssuer.clients')
    .option('--secret <secret>', "the client's secret (default: $PORTCULLIS_CLIENT_SECRET, else the client's entry in identity.devIssuer.clients)")
    .option('--scope <scope>', 'a scope to ask for; repeat for several (default: none)', collect)
    .option(
      '--ttl <duration>',
      'the token lifetime: 90s, 5m, 1h30m (default: identity.devIssuer.tokenLifetime, 5m unless set; at most identity.maxTokenLifetime)',
    )
    .option(
      '--audience <audience>',
      "the token's audience (aud): a connection's audiences entry, for a connection that requires its own (default: the issuer's)",
    )
    .option(
      '--exec',
      "print a client.authentication.k8s.io/v1 ExecCredential instead: what kubectl's exec plugin reads (the kubeconfig from 'portcullis kubeconfig' runs this)",
    )
    .addOption(
      outputOption(
        [OutputFormat.Text, OutputFormat.Json, OutputFormat.Yaml],
        "the token: text is the token alone; json and yaml the issuer's whole answer (access_token, token_type, expires_in in seconds, scope)",
      ),
    )
    .addOption(configOption())
    .action(
      async (
        opts: { client: string; secret?: string; scope?: string[]; ttl?: string; audience?: string; exec?: boolean; output: string; config?: string },
        cmd: Command,
      ) => {
        if (opts.exec === true && cmd.getOptionValueSource('output') === 'cli')
          throw new CliError('--exec prints an ExecCredential: it cannot be combined with -o', ExitCode.Usage);
        const { config, path } = loadCliConfig(opts.config);
        const issued = await issueToken(config, path, {
          client: opts.client,
          secret: opts.secret,
          scopes: opts.scope ?? [],
          ttl: opts.ttl,
          audience: opts.audience,
        });
        process.stdout.write(opts.exec === true ? execCredential(issued) : formatToken(issued, opts.output as OutputFormat));
      },
    );
  return withExamples(command, [
    ['export TOKEN=$(portcullis token --client ci-bot)', 'a token for the ci-bot client, in a shell variable'],
    ['portcullis token --client ci-bot --scope deploy --ttl 2m -o json', "a two-minute token with a scope, and the issuer's whole answer"],
  ]);
}

/** Gets a token from the development issuer. */
export async function issueToken(config: PortcullisConfig, configPath: string, opts: TokenRequest): Promise<IssuedToken> {
  const dev = config.identity.devIssuer;
  if (!dev.enabled)
    throw new CliError('the development issuer is disabled in this config (identity.devIssuer.enabled): get tokens from your identity provider');
  const secret = opts.secret ?? process.env['PORTCULLIS_CLIENT_SECRET'] ?? dev.clients.find((c) => c.id === opts.client)?.secret;
  if (secret === undefined)
    throw new CliError(`no secret for client ${opts.client}: pass --secret, set PORTCULLIS_CLIENT_SECRET, or add the client to identity.devIssuer.clients`);
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: opts.client, client_secret: secret });
  if (opts.scopes.length > 0) form.set('scope', opts.scopes.join(' '));
  if (opts.audience !== undefined) form.set('audience', opts.audience);
  if (opts.ttl !== undefined) {
    const ms = parseCompoundDuration(opts.ttl);
    if (ms === undefined) throw new CliError(`--ttl: expected a duration such as 90s, 5m or 1h30m, got ${JSON.stringify(opts.ttl)}`, ExitCode.Usage);
    form.set('ttl_seconds', String(Math.max(1, Math.floor(ms / 1000))));
  }
  const edge = edgeEndpoint(config);
  const url = `${edge.url}${DEV_ISSUER_PATH}/token`;
  let res;
  try {
    res = await postForm(url, form, edgeCaPem(config));
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(
      `cannot reach the token endpoint ${url} (${setBy(edge, configPath)}): ${(err as Error).message} — is the gateway running? (npm start)`,
      ExitCode.Failure,
      { cause: err },
    );
  }
  if (res.status !== 200 || typeof res.body['access_token'] !== 'string') {
    const error = typeof res.body['error'] === 'string' ? res.body['error'] : '';
    const description = typeof res.body['error_description'] === 'string' ? res.body['error_description'] : '';
    throw new CliError(`token request for client ${opts.client} refused (${res.status}): ${error} ${description}`.trim());
  }
  return { accessToken: res.body['access_token'], expiresIn: Number(res.body['expires_in'] ?? 0), response: res.body };
}

function formatToken(issued: IssuedToken, format: OutputFormat): string {
  switch (format) {
    case OutputFormat.Json:
      return `${JSON.stringify(issued.response)}\n`;
    case OutputFormat.Yaml:
      return toYaml(issued.response);
    case OutputFormat.Table:
    case OutputFormat.Wide:
    case OutputFormat.Text:
      return `${issued.accessToken}\n`;
  }
}

/** The ExecCredential kubectl's exec plugin reads. */
function execCredential(issued: IssuedToken): string {
  return `${JSON.stringify({
    apiVersion: 'client.authentication.k8s.io/v1',
    kind: 'ExecCredential',
    // A margin so a token is not sent in its last moments, but never more than a tenth of a short lifetime.
    status: {
      token: issued.accessToken,
      expirationTimestamp: new Date(Date.now() + issued.expiresIn * 1000 - Math.min(5000, issued.expiresIn * 100)).toISOString(),
    },
  })}\n`;
}
