import { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { PortcullisConfig } from '@portcullis/config';
import { renderKubeconfig } from '@portcullis/gateway';
import { CliError } from '../cli-error.js';
import { configOption, withExamples } from '../command-help.js';
import { CLI_SCRIPT, loadCliConfig } from '../config-file.js';
import { edgeTrust, edgeUrl } from '../gateway-endpoints.js';
import { OutputFormat, outputOption } from '../output.js';

/** `portcullis kubeconfig`. */
export function createKubeconfigCommand(): Command {
  const command = new Command('kubeconfig')
    .summary('a kubeconfig that reaches a connection through the gateway')
    .description(
      "Prints a kubeconfig for one kubernetes connection. It holds no token: its user runs 'portcullis token --exec', so kubectl gets a fresh short-lived token whenever the last one expires.",
    )
    .requiredOption('--connection <name>', 'the kubernetes connection (connections[].name; "sandbox" for the embedded sandbox)')
    .requiredOption('--client <id>', 'the development issuer client whose tokens kubectl uses (identity.devIssuer.clients)')
    .option('-n, --namespace <namespace>', "the context's default namespace (default: kubectl's, i.e. default)")
    .option('--host-routing', 'server https://<connection>.<edge.domain>:<port> instead of <edge>/k8s/<connection> (needs edge.domain)')
    .addOption(outputOption([OutputFormat.Yaml, OutputFormat.Json], 'the kubeconfig'))
    .addOption(configOption())
    .action((opts: { connection: string; client: string; namespace?: string; hostRouting?: boolean; output: string; config?: string }) => {
      const { config, path } = loadCliConfig(opts.config);
      const kc = kubeconfigCommand(config, path, {
        connection: opts.connection,
        client: opts.client,
        namespace: opts.namespace,
        hostRouting: opts.hostRouting === true,
      });
      process.stdout.write(opts.output === OutputFormat.Json ? `${JSON.stringify(parseYaml(kc.kubeconfig), null, 2)}\n` : kc.kubeconfig);
      if (kc.notice !== undefined) process.stderr.write(`portcullis kubeconfig: ${kc.notice}\n`);
    });
  return withExamples(command, [
    [
      'portcullis kubeconfig --connection sandbox --client ci-bot > /tmp/portcullis.kubeconfig\n  kubectl --kubeconfig /tmp/portcullis.kubeconfig get pods',
      'kubectl as the ci-bot client, through the embedded gateway',
    ],
    [
      'portcullis kubeconfig --connection prod --client ci-bot --host-routing -n payments --config cluster.yaml',
      'host routing (prod.<edge.domain>) and a default namespace',
    ],
  ]);
}

/**
 * `portcullis kubeconfig`: a kubeconfig that fetches short-lived tokens through an exec plugin.
 * When the edge's certificate chains to a CA clients already trust, the cluster carries no
 * certificate-authority-data and a comment at the top says why.
 */
export function kubeconfigCommand(
  config: PortcullisConfig,
  configPath: string,
  opts: { connection: string; client: string; namespace?: string | undefined; hostRouting?: boolean },
): { kubeconfig: string; notice?: string } {
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
      exec: {
        command: process.execPath,
        // A connection with its own audiences gets tokens minted for it (a token for another connection is refused there).
        args: [
          CLI_SCRIPT,
          'token',
          '--exec',
          '--client',
          opts.client,
          ...(conn?.audiences?.[0] !== undefined ? ['--audience', conn.audiences[0]] : []),
          '--config',
          configPath,
        ],
      },
      ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
    });
  return notice === undefined ? { kubeconfig } : { kubeconfig, notice };
}
