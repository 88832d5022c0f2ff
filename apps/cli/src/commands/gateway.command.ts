import { relative } from 'node:path';
import { Argument, Command } from 'commander';
import type { PortcullisConfig } from '@portcullis/config';
import type { UpstreamConnection } from '@portcullis/gateway';
import type { KubeApiServer } from '@portcullis/kube-sandbox';
import type { Role } from '../roles.js';
import { CliError } from '../cli-error.js';
import { configOption, withExamples } from '../command-help.js';
import { loadCliConfig, PACKAGE_ROOT } from '../config-file.js';

/** The roles `serve` takes (checked against roles.ts below; its ALL_ROLES needs Nest loaded). */
const ROLE_NAMES = ['edge', 'policy', 'approval', 'audit'] as const satisfies readonly Role[];
// A role added to roles.ts and not here fails to compile.
const EVERY_ROLE_NAMED: Exclude<Role, (typeof ROLE_NAMES)[number]> extends never ? true : never = true;
void EVERY_ROLE_NAMED;

/**
 * The process bootstrap (Nest and the roles) and the sandbox, loaded only when start or serve
 * runs: every other command starts in a fraction of the time without them (and `portcullis
 * credential`, which kubectl runs on each call, loads none of the CLI: see bin/portcullis.js).
 */
async function gatewayModules() {
  const [bootstrap, roles, gateway, sandbox] = await Promise.all([
    import('../../../runtime/src/start-process.js'),
    import('../../../runtime/src/roles.js'),
    import('@portcullis/gateway'),
    import('@portcullis/kube-sandbox'),
  ]);
  return {
    startProcess: bootstrap.startProcess,
    runUntilSignal: bootstrap.runUntilSignal,
    ALL_ROLES: roles.ALL_ROLES,
    createUpstreamConnection: gateway.createUpstreamConnection,
    startKubeApiServer: sandbox.startKubeApiServer,
  };
}

/** `portcullis start`: the embedded all-in-one gateway. */
export function createStartCommand(): Command {
  const command = new Command('start')
    .summary('the embedded all-in-one gateway')
    .description(
      'Runs every role in one process on the in-process bus, with the SQLite audit store and, when no kubernetes connection is configured, an in-memory sandbox API server. Needs no other servers (bus.mode: embedded). Ctrl-C stops it.',
    )
    .addOption(configOption())
    .action(async (opts: { config?: string }) => start(opts.config));
  return withExamples(command, [
    ['portcullis start', 'the example config: the sandbox, the example policy, development tokens (what npm start runs)'],
    ['portcullis start --config portcullis.yaml', 'your own config'],
  ]);
}

/** `portcullis serve <role…|all>`: cluster-mode roles. */
export function createServeCommand(): Command {
  const command = new Command('serve')
    .summary('cluster mode roles (NATS, JetStream, ClickHouse)')
    .description(
      'Runs cluster mode roles on NATS/JetStream (bus.mode: nats), several in one process if named together. Prints one JSON line {"ready": true, …} once they serve. SIGTERM or Ctrl-C stops them.',
    )
    .addArgument(new Argument('<roles...>', 'the roles to run').choices([...ROLE_NAMES, 'all']))
    .addOption(configOption())
    .action(async (roles: string[], opts: { config?: string }) => serve(roles, opts.config));
  return withExamples(command, [
    ['portcullis serve edge --config cluster.yaml', 'one edge (run N of them behind a load balancer)'],
    ['portcullis serve policy approval audit --config cluster.yaml', 'the other roles in one process'],
  ]);
}

/** `portcullis start`: every role in one process on the in-process bus, plus the sandbox. */
async function start(configFlag: string | undefined): Promise<void> {
  const { config, path } = loadCliConfig(configFlag);
  if (config.bus.mode !== 'embedded') {
    throw new CliError(`${path} sets bus.mode: nats — "start" runs the embedded gateway; use "portcullis serve all" for cluster mode`, 2);
  }
  const { startProcess, runUntilSignal, ALL_ROLES, createUpstreamConnection, startKubeApiServer } = await gatewayModules();
  let sandbox: KubeApiServer | undefined;
  const extra: UpstreamConnection[] = [];
  const hasKube = config.connections.some((c) => c.type === 'kubernetes');
  if (config.sandbox.enabled === 'always' || (config.sandbox.enabled === 'auto' && !hasKube)) {
    if (config.connections.some((c) => c.name === 'sandbox'))
      throw new CliError('a configured connection is named "sandbox": rename it or set sandbox.enabled: never', 2);
    sandbox = await startKubeApiServer({ host: '127.0.0.1', port: 0 });
    extra.push(
      createUpstreamConnection({ name: 'sandbox', type: 'kubernetes', server: sandbox.url, caPem: sandbox.caPem, token: sandbox.token, label: 'sandbox' }),
    );
  }
  const running = await startProcess({ config, roles: ALL_ROLES, label: 'embedded', extraConnections: extra }).catch(async (err: unknown) => {
    await sandbox?.close();
    throw err;
  });
  if (sandbox !== undefined) {
    running.logger.warn('SANDBOX: connection "sandbox" is an in-memory fake Kubernetes API server for trying Portcullis — not a real cluster', {
      sandbox: true,
      url: sandbox.url,
    });
  }
  process.stdout.write(banner(config, path, running.edgeUrl ?? '', running.devIssuerUrl, sandbox !== undefined, running.approvalUrl ?? ''));
  await runUntilSignal(running, async () => sandbox?.close());
}

/** `portcullis serve <role…|all>`: cluster-mode roles on NATS/JetStream. */
async function serve(names: readonly string[], configFlag: string | undefined): Promise<void> {
  const { config, path } = loadCliConfig(configFlag);
  if (config.bus.mode !== 'nats')
    throw new CliError(`${path} sets bus.mode: embedded — "serve" runs cluster roles on NATS; use "portcullis start" for the embedded gateway`, 2);
  const { startProcess, runUntilSignal, ALL_ROLES } = await gatewayModules();
  // Commander checked the names against ROLE_NAMES.
  const roles = new Set<Role>();
  for (const p of names) {
    if (p === 'all') ALL_ROLES.forEach((r) => roles.add(r));
    else roles.add(p as Role);
  }
  const running = await startProcess({ config, roles: [...roles] });
  const ready: Record<string, unknown> = { roles: [...roles], config: path };
  if (running.edgeUrl !== undefined) ready['url'] = running.edgeUrl;
  if (running.approvalUrl !== undefined) ready['approvalUrl'] = running.approvalUrl;
  process.stdout.write(`${JSON.stringify({ ready: true, ...ready })}\n`);
  await runUntilSignal(running);
}

function banner(config: PortcullisConfig, configPath: string, url: string, issuer: string | undefined, sandbox: boolean, approvalsUrl: string): string {
  const rel = (p: string): string => {
    const r = relative(process.cwd(), p);
    return r.startsWith('..') ? p : r;
  };
  const cfgFlag = configPath.startsWith(PACKAGE_ROOT) && rel(configPath) === 'portcullis.example.yaml' ? '' : ` --config ${configPath}`;
  const client = config.identity.devIssuer.clients[0]?.id ?? '<client>';
  const conn = sandbox ? 'sandbox' : (config.connections.find((c) => c.type === 'kubernetes')?.name ?? '<connection>');
  const kc = '/tmp/portcullis.kubeconfig';
  return [
    '',
    'Portcullis is running (embedded mode: all roles in one process, no servers needed).',
    `  edge            ${url}   (/k8s/<connection>/… and /http/<connection>/…)`,
    `  TLS CA          ${rel(config.edge.tls.certFile ?? `${config.node.stateDir}/tls/ca.pem`)}`,
    ...(issuer ? [`  token issuer    ${issuer}   (development issuer; clients: ${config.identity.devIssuer.clients.map((c) => c.id).join(', ')})`] : []),
    ...(sandbox ? ['  connection      sandbox → an in-memory SANDBOX Kubernetes API server (not a real cluster)'] : []),
    ...config.connections.map((c) => `  connection      ${c.name} → ${c.server ?? 'in-cluster (KUBERNETES_SERVICE_HOST)'}`),
    `  policy          ${rel(config.policy.file)}   (reloaded when the file changes)`,
    `  audit store     ${rel(config.audit.sqlite.file)}`,
    `  approvals       ${approvalsUrl}   (REST API and Slack interactions; in-memory pending store)`,
    `  config          ${rel(configPath)}`,
    '',
    'Next, in a second shell:',
    `  npx portcullis kubeconfig --connection ${conn} --client ${client}${cfgFlag} > ${kc}`,
    `  kubectl --kubeconfig ${kc} get pods`,
    `  kubectl --kubeconfig ${kc} get secrets -o json            # Secret values come out masked`,
    `  kubectl --kubeconfig ${kc} delete namespace staging      # held for an approval (sre), then 403 "approval pending"`,
    `  npx portcullis approvals list --as-client sre-alice${cfgFlag}`,
    `  npx portcullis approvals approve <id> --reason "cleanup" --as-client sre-alice${cfgFlag}   # then re-run the delete`,
    `  npx portcullis audit tail${cfgFlag}                # what the gateway recorded`,
    '',
    'Stop with Ctrl-C.',
    '',
  ].join('\n');
}
