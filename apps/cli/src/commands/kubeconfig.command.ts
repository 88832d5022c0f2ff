import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { PortcullisConfig } from '@portcullis/config';
import { DEV_ISSUER_PATH, renderKubeconfig } from '@portcullis/gateway';
import { CliError, ExitCode } from '../cli-error.js';
import { collect, configOption, withExamples } from '../command-help.js';
import { CLI_SCRIPT, loadCliConfig } from '../config-file.js';
import { edgeCaFile, edgeTrust, edgeUrl } from '../gateway-endpoints.js';
import { OutputFormat, outputOption } from '../output.js';

/** How the kubeconfig's exec plugin gets its tokens, and for what. */
export interface KubeconfigOptions {
  connection: string;
  /** The client: a development issuer client, or the client id at the identity provider. */
  client?: string | undefined;
  namespace?: string | undefined;
  hostRouting?: boolean;
  /** A file holding the token (projected service-account token, CI OIDC token). */
  tokenFile?: string | undefined;
  /** Client credentials grant at an identity provider of identity.issuers. */
  oidcClientCredentials?: boolean;
  issuer?: string | undefined;
  clientSecretEnv?: string | undefined;
  clientSecretFile?: string | undefined;
  audience?: string | undefined;
  scopes?: readonly string[];
}

/** `portcullis kubeconfig`. */
export function createKubeconfigCommand(): Command {
  const command = new Command('kubeconfig')
    .summary('a kubeconfig that reaches a connection through the gateway')
    .description(
      "Prints a kubeconfig for one kubernetes connection. It holds no token and no secret: its user runs 'portcullis credential', a small exec credential plugin that caches tokens on disk (0600, per issuer, client and audience) and fetches a new one shortly before the last expires. Tokens come from the development issuer (the default, when enabled), a token file (--token-file), or an identity provider's client credentials grant (--oidc-client-credentials).",
    )
    .requiredOption('--connection <name>', 'the kubernetes connection (connections[].name; "sandbox" for the embedded sandbox)')
    .option(
      '--client <id>',
      'the client whose tokens kubectl uses: one of identity.devIssuer.clients, or with --oidc-client-credentials the client id at the identity provider (not with --token-file)',
    )
    .option('--token-file <path>', 'use the token in this file, read on every kubectl call (a projected service-account token, a CI OIDC token)')
    .option('--oidc-client-credentials', 'get tokens from an identity provider of identity.issuers with the client credentials grant (needs --client)')
    .option('--issuer <url>', 'with --oidc-client-credentials: which of identity.issuers (default: the only one configured)')
    .option(
      '--client-secret-env <name>',
      'with --oidc-client-credentials: the environment variable the plugin reads the client secret from at run time (default: PORTCULLIS_CLIENT_SECRET)',
    )
    .option('--client-secret-file <path>', 'with --oidc-client-credentials: a file the plugin reads the client secret from at run time')
    .option(
      '--audience <audience>',
      "the audience to ask for: one the connection accepts (default: the connection's first audiences entry, else the issuer's default)",
    )
    .option('--scope <scope>', "a scope to ask for; repeat for several (default: none, i.e. the client's)", collect)
    .option('-n, --namespace <namespace>', "the context's default namespace (default: kubectl's, i.e. default)")
    .option('--host-routing', 'server https://<connection>.<edge.domain>:<port> instead of <edge>/k8s/<connection> (needs edge.domain)')
    .addOption(outputOption([OutputFormat.Yaml, OutputFormat.Json], 'the kubeconfig'))
    .addOption(configOption())
    .action((opts: Omit<KubeconfigOptions, 'scopes'> & { scope?: string[]; output: string; config?: string }) => {
      const { config, path } = loadCliConfig(opts.config);
      const kc = kubeconfigCommand(config, path, { ...opts, hostRouting: opts.hostRouting === true, scopes: opts.scope ?? [] });
      process.stdout.write(opts.output === OutputFormat.Json ? `${JSON.stringify(parseYaml(kc.kubeconfig), null, 2)}\n` : kc.kubeconfig);
      for (const notice of kc.notices) process.stderr.write(`portcullis kubeconfig: ${notice}\n`);
    });
  return withExamples(command, [
    [
      'portcullis kubeconfig --connection sandbox --client ci-bot > /tmp/portcullis.kubeconfig\n  kubectl --kubeconfig /tmp/portcullis.kubeconfig get pods',
      'kubectl as the ci-bot client of the development issuer, through the embedded gateway',
    ],
    [
      'portcullis kubeconfig --connection prod --token-file /var/run/secrets/tokens/portcullis --config cluster.yaml',
      "a pod's projected service-account token (kubelet rotates the file; the plugin reads it on every call)",
    ],
    [
      'portcullis kubeconfig --connection prod --oidc-client-credentials --client deployer --client-secret-env IDP_SECRET --config cluster.yaml',
      'client credentials at the identity provider; the secret is read from $IDP_SECRET when a token is fetched',
    ],
    [
      'portcullis kubeconfig --connection prod --client ci-bot --host-routing -n payments --config cluster.yaml',
      'host routing (prod.<edge.domain>) and a default namespace',
    ],
  ]);
}

/**
 * `portcullis kubeconfig`: a kubeconfig that fetches short-lived tokens through the exec plugin.
 * Everything the plugin will need is checked now (the client exists for the chosen mode, the issuer
 * is trusted, the audience is one the connection accepts), so a mistake is an error here rather
 * than a 401 inside kubectl later. When the edge's certificate chains to a CA clients already
 * trust, the cluster carries no certificate-authority-data and a comment at the top says why.
 */
export function kubeconfigCommand(config: PortcullisConfig, configPath: string, opts: KubeconfigOptions): { kubeconfig: string; notices: string[] } {
  const conn = config.connections.find((c) => c.name === opts.connection && c.type === 'kubernetes');
  if (conn === undefined && opts.connection !== 'sandbox') {
    throw new CliError(`no kubernetes connection named ${JSON.stringify(opts.connection)} in ${configPath}`);
  }
  let hostUrl: string | undefined;
  if (opts.hostRouting === true) {
    const domain = config.edge.domain;
    if (domain === undefined) throw new CliError(`--host-routing needs edge.domain in ${configPath}`);
    const base = new URL(edgeUrl(config));
    hostUrl = `https://${opts.connection}.${domain}${base.port === '' ? '' : `:${base.port}`}`;
  }
  const credential = credentialArgs(config, configPath, opts, conn?.audiences);
  const trust = edgeTrust(config);
  const notice =
    trust.caPem === undefined
      ? `certificate-authority-data left out: edge.tls.certFile (${config.edge.tls.certFile ?? ''}) is not self-signed and no edge.tls.caBundleFile is configured, so kubectl verifies the edge with the system's trusted roots`
      : undefined;
  // The notice goes into the file too: whoever reads the kubeconfig later sees why it has no CA.
  const kubeconfig =
    (notice === undefined ? '' : `# ${notice}.\n`) +
    renderKubeconfig({
      edgeUrl: edgeUrl(config),
      ...(hostUrl !== undefined ? { serverUrl: hostUrl } : {}),
      connection: opts.connection,
      caPem: trust.caPem,
      exec: { command: process.execPath, args: [CLI_SCRIPT, 'credential', ...credential.args] },
      ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
    });
  return { kubeconfig, notices: [...(notice === undefined ? [] : [notice]), ...credential.notices] };
}

/** The plugin's arguments for the chosen mode, after checking the mode can serve what was asked. */
function credentialArgs(
  config: PortcullisConfig,
  configPath: string,
  opts: KubeconfigOptions,
  connectionAudiences: readonly string[] | undefined,
): { args: string[]; notices: string[] } {
  if (opts.tokenFile !== undefined && opts.oidcClientCredentials === true) {
    throw new CliError('--token-file and --oidc-client-credentials are two ways to get a token: give one', ExitCode.Usage);
  }
  if (opts.tokenFile !== undefined) return tokenFileArgs(config, opts);
  notApplicable(opts, opts.oidcClientCredentials === true ? [] : ['issuer', 'clientSecretEnv', 'clientSecretFile'], 'the development issuer');
  if (opts.clientSecretEnv !== undefined && opts.clientSecretFile !== undefined) {
    throw new CliError('--client-secret-env and --client-secret-file are two places for one secret: give one', ExitCode.Usage);
  }
  const audience = opts.audience ?? connectionAudiences?.[0];
  const common = [...(audience !== undefined ? ['--audience', audience] : []), ...(opts.scopes ?? []).flatMap((s) => ['--scope', s])];
  return opts.oidcClientCredentials === true
    ? oidcClientCredentialsArgs(config, configPath, opts, audience, connectionAudiences, common)
    : devIssuerArgs(config, configPath, opts, audience, connectionAudiences, common);
}

const FLAG: Record<string, string> = {
  client: '--client',
  issuer: '--issuer',
  clientSecretEnv: '--client-secret-env',
  clientSecretFile: '--client-secret-file',
  audience: '--audience',
  scopes: '--scope',
};

function notApplicable(opts: KubeconfigOptions, keys: readonly (keyof KubeconfigOptions)[], mode: string): void {
  const given = keys.filter((k) => (k === 'scopes' ? (opts.scopes ?? []).length > 0 : opts[k] !== undefined));
  if (given.length > 0) {
    const flags = given.map((k) => FLAG[k] ?? k).join(', ');
    throw new CliError(`${flags} ${given.length > 1 ? 'do' : 'does'} not apply to ${mode}`, ExitCode.Usage);
  }
}

/** --token-file: the plugin reads the file on every call; the token in it names its own client. */
function tokenFileArgs(config: PortcullisConfig, opts: KubeconfigOptions): { args: string[]; notices: string[] } {
  notApplicable(
    opts,
    ['client', 'issuer', 'clientSecretEnv', 'clientSecretFile', 'audience', 'scopes'],
    '--token-file (the token in the file already names its issuer, client and audience)',
  );
  const file = resolve(opts.tokenFile ?? '');
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    // CI and kubelet may write the file after the kubeconfig: said, not refused.
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return { args: ['--token-file', file], notices: [`cannot read ${file} now (${code}): the plugin reads it on every kubectl call`] };
  }
  const iss = unverifiedIssuer(text);
  const trusted = trustedIssuers(config);
  if (iss !== undefined && !trusted.includes(iss)) {
    throw new CliError(
      `the token in ${file} is issued by ${JSON.stringify(iss.slice(0, 200))}, which this gateway does not trust (identity.issuers: ${trusted.join(', ') || 'none'})`,
    );
  }
  return { args: ['--token-file', file], notices: [] };
}

/** --oidc-client-credentials: a client of one of identity.issuers; the secret is read by the plugin at run time. */
function oidcClientCredentialsArgs(
  config: PortcullisConfig,
  configPath: string,
  opts: KubeconfigOptions,
  audience: string | undefined,
  connectionAudiences: readonly string[] | undefined,
  common: string[],
): { args: string[]; notices: string[] } {
  if (opts.client === undefined || opts.client === '') {
    throw new CliError('--oidc-client-credentials needs --client: the client id registered at the identity provider', ExitCode.Usage);
  }
  const issuers = config.identity.issuers;
  const names = issuers.map((i) => i.issuer).join(', ');
  let issuer: PortcullisConfig['identity']['issuers'][number] | undefined;
  if (opts.issuer !== undefined) {
    issuer = issuers.find((i) => i.issuer.replace(/\/$/, '') === opts.issuer?.replace(/\/$/, ''));
    if (issuer === undefined) {
      throw new CliError(
        `--issuer ${opts.issuer} is not in identity.issuers of ${configPath}, so the gateway would refuse its tokens (trusted: ${names || 'none'})`,
      );
    }
  } else if (issuers.length === 1) {
    issuer = issuers[0];
  } else {
    throw new CliError(
      issuers.length === 0
        ? `--oidc-client-credentials: ${configPath} trusts no identity provider (identity.issuers is empty), so the gateway would refuse any token`
        : `--oidc-client-credentials: ${configPath} trusts several issuers: choose one with --issuer (${names})`,
      ExitCode.Usage,
    );
  }
  if (issuer === undefined) throw new CliError('no issuer');
  // The edge checks a connection's own audiences instead of the issuer's.
  const accepted = connectionAudiences ?? issuer.audiences;
  if (audience !== undefined && !accepted.includes(audience)) {
    throw new CliError(
      `--audience ${audience}: connection ${opts.connection} accepts tokens for ${accepted.join(', ')} only (${connectionAudiences !== undefined ? 'connections[].audiences' : `the audiences of ${issuer.issuer}`})`,
    );
  }
  const secret =
    opts.clientSecretFile !== undefined
      ? ['--client-secret-file', resolve(opts.clientSecretFile)]
      : ['--client-secret-env', opts.clientSecretEnv ?? 'PORTCULLIS_CLIENT_SECRET'];
  return {
    args: [
      '--issuer',
      issuer.issuer,
      '--client',
      opts.client,
      ...common,
      ...(issuer.caFile !== undefined ? ['--ca-file', resolve(issuer.caFile)] : []),
      ...secret,
    ],
    notices: [],
  };
}

/** The development issuer (the default): only when enabled, and only for one of its configured clients. */
function devIssuerArgs(
  config: PortcullisConfig,
  configPath: string,
  opts: KubeconfigOptions,
  audience: string | undefined,
  connectionAudiences: readonly string[] | undefined,
  common: string[],
): { args: string[]; notices: string[] } {
  const dev = config.identity.devIssuer;
  if (!dev.enabled) {
    throw new CliError(
      `the development issuer is disabled in ${configPath} (identity.devIssuer.enabled): get tokens from your identity provider with --oidc-client-credentials --client ID, or from a file with --token-file PATH`,
    );
  }
  const known = dev.clients.map((c) => c.id).join(', ') || 'none';
  if (opts.client === undefined || opts.client === '') {
    throw new CliError(`--client: name one of the development issuer's clients (identity.devIssuer.clients: ${known})`, ExitCode.Usage);
  }
  const client = dev.clients.find((c) => c.id === opts.client);
  if (client === undefined) {
    throw new CliError(`--client ${opts.client}: the development issuer has no such client (identity.devIssuer.clients in ${configPath}: ${known})`);
  }
  const refused = (opts.scopes ?? []).filter((s) => !client.scopes.includes(s));
  if (refused.length > 0) {
    throw new CliError(`--scope ${refused.join(' ')}: not allowed for client ${client.id} (its scopes: ${client.scopes.join(', ') || 'none'})`);
  }
  // What the development issuer mints, and what this connection then accepts.
  const minted = [dev.audience, ...config.connections.flatMap((c) => c.audiences ?? [])];
  const accepted = connectionAudiences ?? [dev.audience];
  if (audience !== undefined && (!minted.includes(audience) || !accepted.includes(audience))) {
    throw new CliError(`--audience ${audience}: connection ${opts.connection} accepts development tokens for ${accepted.join(', ')} only`);
  }
  const caFile = edgeCaFile(config);
  return {
    args: [
      '--issuer',
      dev.issuerUrl ?? `${edgeUrl(config)}${DEV_ISSUER_PATH}`,
      '--token-endpoint',
      `${edgeUrl(config)}${DEV_ISSUER_PATH}/token`,
      '--client',
      client.id,
      ...common,
      ...(caFile !== undefined ? ['--ca-file', caFile] : []),
      '--dev-config',
      resolve(configPath),
    ],
    notices: [],
  };
}

/** Every issuer whose tokens the edge accepts: identity.issuers and the development issuer when enabled. */
function trustedIssuers(config: PortcullisConfig): string[] {
  const dev = config.identity.devIssuer;
  return [...config.identity.issuers.map((i) => i.issuer), ...(dev.enabled ? [dev.issuerUrl ?? `${edgeUrl(config)}${DEV_ISSUER_PATH}`] : [])];
}

/** A JWT's iss, unverified (only to catch a token file from the wrong provider early); undefined when not a JWT. */
function unverifiedIssuer(token: string): string | undefined {
  try {
    const iss = (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iss?: unknown }).iss;
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}
