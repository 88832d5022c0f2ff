import { parseArgs } from 'node:util';
import { ConfigError, type PortcullisConfig } from '@portcullis/config';
import { createUpstreamConnection, type UpstreamConnection } from '@portcullis/gateway';
// eslint-disable-next-line no-restricted-imports -- temporary: the sandbox moves out of test/ into a lib (issue 15, point 4)
import { startKubeApiServer, type KubeApiServer } from '../../../test/fixture/kube-apiserver/index.js';
import { ALL_ROLES, type Role } from './roles.js';
import { loadCliConfig, PACKAGE_ROOT } from './config-file.js';
import {
  approvalsCommand,
  auditExportCommand,
  auditReplayCommand,
  auditRetentionCommand,
  auditTailCommand,
  auditVerifyCommand,
  CliError,
  kubeconfigCommand,
  policyCheckCommand,
  policyExplainCommand,
  policyPushCommand,
  tokenCommand,
} from './commands.js';
import { relative } from 'node:path';

const USAGE = `portcullis — access gateway for non-human identities

Usage:
  portcullis start [--config FILE]                 the embedded all-in-one gateway
  portcullis serve <edge|policy|approval|audit|all> [--config FILE]
                                                   cluster mode roles (NATS, JetStream, ClickHouse)
  portcullis token --client ID [--scope S]... [--ttl 5m] [--audience A] [--exec] [--secret S] [--config FILE]
  portcullis kubeconfig --connection C --client ID [--namespace NS] [--host-routing] [--config FILE]
                                                   --host-routing: server https://C.<edge.domain>:<port> instead of /k8s/C
  portcullis policy check FILE
  portcullis policy push FILE [--config FILE]      validate, then publish to the cluster's KV bucket
  portcullis policy explain --as SUBJECT [--group G]... [--client-id ID] [--scope S]... [--issuer URL]
                            --connection C VERB RESOURCE [NAME] [-n NS] [--subresource S]
                            [--api-group G] [--at ISO-TIME] [--policy FILE] [--json] [--config FILE]
                                                   which rule decides and why, and what every rule failed on
  portcullis audit tail [--follow] [--json] [--since 10m] [--limit N] [--request AUDIT_ID] [--config FILE]
  portcullis audit replay SESSION|AUDIT_ID [--speed N] [--json] [--config FILE]
  portcullis audit verify [--session S] [--request AUDIT_ID] [--since T] [--until T] [--node N] [--json] [--config FILE]
  portcullis audit export --since T [--until T] [--format ndjson|ocsf] [--config FILE]
  portcullis audit retention [--dry-run] [--config FILE]
                                                   T: a duration back from now (10m, 7d), ISO 8601 or epoch ms
  portcullis approvals list [--json] (--as-client ID | --token TOKEN) [--config FILE]
  portcullis approvals approve|deny ID [--reason TEXT] (--as-client ID | --token TOKEN) [--config FILE]

Config: --config, else $PORTCULLIS_CONFIG, else ./portcullis.yaml, else the example config.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return start(rest);
    case 'serve':
      return serve(rest);
    case 'token': {
      const { values } = parseArgs({
        args: rest,
        options: {
          client: { type: 'string' },
          secret: { type: 'string' },
          scope: { type: 'string', multiple: true },
          ttl: { type: 'string' },
          audience: { type: 'string' },
          exec: { type: 'boolean', default: false },
          config: { type: 'string' },
        },
      });
      if (values.client === undefined) throw new CliError('token: --client is required', 2);
      const { config } = loadCliConfig(values.config);
      process.stdout.write(
        await tokenCommand(config, { client: values.client, secret: values.secret, scopes: values.scope ?? [], ttl: values.ttl, audience: values.audience, exec: values.exec }),
      );
      return 0;
    }
    case 'kubeconfig': {
      const { values } = parseArgs({
        args: rest,
        options: {
          connection: { type: 'string' },
          client: { type: 'string' },
          namespace: { type: 'string' },
          config: { type: 'string' },
          'host-routing': { type: 'boolean', default: false },
        },
      });
      if (values.connection === undefined || values.client === undefined) throw new CliError('kubeconfig: --connection and --client are required', 2);
      const { config, path } = loadCliConfig(values.config);
      const kc = kubeconfigCommand(config, path, { connection: values.connection, client: values.client, namespace: values.namespace, hostRouting: values['host-routing'] });
      process.stdout.write(kc.kubeconfig);
      if (kc.notice !== undefined) process.stderr.write(`portcullis kubeconfig: ${kc.notice}\n`);
      return 0;
    }
    case 'policy':
      return policy(rest);
    case 'audit':
      return audit(rest);
    case 'approvals': {
      const [sub, ...args] = rest;
      if (sub !== 'list' && sub !== 'approve' && sub !== 'deny') throw new CliError('usage: portcullis approvals list|approve|deny ID [--reason TEXT] (--as-client ID | --token TOKEN)', 2);
      const { values, positionals } = parseArgs({
        args,
        allowPositionals: true,
        options: { reason: { type: 'string' }, 'as-client': { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean', default: false }, config: { type: 'string' } },
      });
      const id = positionals[0];
      if (sub !== 'list' && id === undefined) throw new CliError(`approvals ${sub}: name the approval id`, 2);
      const { config } = loadCliConfig(values.config);
      process.stdout.write(
        await approvalsCommand(config, { action: sub, id, reason: values.reason, asClient: values['as-client'], token: values.token, json: values.json }),
      );
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new CliError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`, 2);
  }
}

async function audit(rest: string[]): Promise<number> {
  const [sub, ...args] = rest;
  let stop = false;
  // Only the long-running ones stop cleanly on Ctrl-C; the others just end.
  if (sub === 'tail' || sub === 'replay') process.once('SIGINT', () => (stop = true));
  switch (sub) {
    case 'tail': {
      const { values } = parseArgs({
        args,
        options: {
          follow: { type: 'boolean', short: 'f', default: false },
          json: { type: 'boolean', default: false },
          since: { type: 'string', default: '10m' },
          limit: { type: 'string', default: '200' },
          request: { type: 'string' },
          config: { type: 'string' },
        },
      });
      const limit = Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new CliError('--limit: expected an integer 1..100000', 2);
      const { config } = loadCliConfig(values.config);
      await auditTailCommand(config, { follow: values.follow, json: values.json, since: values.since, limit, request: values.request }, (l) => process.stdout.write(`${l}\n`), () => stop);
      return 0;
    }
    case 'replay': {
      const { values, positionals } = parseArgs({
        args,
        allowPositionals: true,
        options: { speed: { type: 'string' }, json: { type: 'boolean', default: false }, config: { type: 'string' } },
      });
      const [id] = positionals;
      if (id === undefined || positionals.length > 1) throw new CliError('usage: portcullis audit replay SESSION|AUDIT_ID [--speed N] [--json]', 2);
      const speed = values.speed === undefined ? undefined : Number(values.speed);
      if (speed !== undefined && !(Number.isFinite(speed) && speed > 0)) throw new CliError('--speed: expected a positive number (2 = twice as fast)', 2);
      const { config } = loadCliConfig(values.config);
      await auditReplayCommand(config, id, { json: values.json, speed }, (l) => process.stdout.write(`${l}\n`), () => stop);
      return 0;
    }
    case 'verify': {
      const { values } = parseArgs({
        args,
        options: {
          session: { type: 'string' },
          request: { type: 'string' },
          since: { type: 'string' },
          until: { type: 'string' },
          node: { type: 'string' },
          json: { type: 'boolean', default: false },
          config: { type: 'string' },
        },
      });
      const { config } = loadCliConfig(values.config);
      const r = await auditVerifyCommand(config, { ...values });
      (r.ok ? process.stdout : process.stderr).write(r.output);
      return r.ok ? 0 : 1;
    }
    case 'export': {
      const { values } = parseArgs({
        args,
        options: { since: { type: 'string' }, until: { type: 'string' }, format: { type: 'string', default: 'ndjson' }, config: { type: 'string' } },
      });
      if (values.since === undefined) throw new CliError('export: --since is required (e.g. --since 24h or --since 2026-06-01)', 2);
      if (values.format !== 'ndjson' && values.format !== 'ocsf') throw new CliError(`--format: expected ndjson or ocsf, got ${JSON.stringify(values.format)}`, 2);
      const { config } = loadCliConfig(values.config);
      const out = process.stdout;
      await auditExportCommand(config, { since: values.since, until: values.until, format: values.format }, (line) =>
        out.write(`${line}\n`) ? undefined : new Promise<void>((r) => out.once('drain', () => r())),
      );
      return 0;
    }
    case 'retention': {
      const { values } = parseArgs({ args, options: { 'dry-run': { type: 'boolean', default: false }, config: { type: 'string' } } });
      const { config } = loadCliConfig(values.config);
      const r = await auditRetentionCommand(config, { dryRun: values['dry-run'] });
      process.stdout.write(`${r.lines.join('\n')}\n`);
      return 0;
    }
    default:
      throw new CliError(`usage: portcullis audit tail|replay|verify|export|retention … (got ${sub === undefined ? 'no subcommand' : JSON.stringify(sub)})`, 2);
  }
}

const POLICY_USAGE = 'usage: portcullis policy check FILE | policy push FILE [--config FILE] | policy explain --as SUBJECT --connection C VERB RESOURCE [NAME] …';

/** `portcullis policy check|push|explain`. */
async function policy(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'check': {
      const [file] = rest;
      if (file === undefined || rest.length !== 1) throw new CliError(POLICY_USAGE, 2);
      const r = policyCheckCommand(file);
      (r.ok ? process.stdout : process.stderr).write(r.output);
      return r.ok ? 0 : 1;
    }
    case 'push': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { config: { type: 'string' } } });
      const [file] = positionals;
      if (file === undefined || positionals.length !== 1) throw new CliError(POLICY_USAGE, 2);
      const { config, path } = loadCliConfig(values.config);
      process.stdout.write(await policyPushCommand(config, path, file));
      return 0;
    }
    case 'explain': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          as: { type: 'string' },
          group: { type: 'string', multiple: true },
          'client-id': { type: 'string' },
          scope: { type: 'string', multiple: true },
          issuer: { type: 'string' },
          connection: { type: 'string' },
          namespace: { type: 'string', short: 'n' },
          subresource: { type: 'string' },
          'api-group': { type: 'string' },
          at: { type: 'string' },
          policy: { type: 'string' },
          json: { type: 'boolean', default: false },
          config: { type: 'string' },
        },
      });
      const [verb, resource, name, ...extra] = positionals;
      if (values.as === undefined || values.connection === undefined || verb === undefined || resource === undefined || extra.length > 0) {
        throw new CliError(`${POLICY_USAGE}\n  e.g. portcullis policy explain --as ci-bot --group bots --connection prod delete namespaces staging`, 2);
      }
      const spec: Record<string, unknown> = {
        subject: values.as,
        groups: values.group ?? [],
        scopes: values.scope ?? [],
        connection: values.connection,
        verb,
        resource,
        ...(name !== undefined ? { name } : {}),
        ...(values['client-id'] !== undefined ? { clientId: values['client-id'] } : {}),
        ...(values.issuer !== undefined ? { issuer: values.issuer } : {}),
        ...(values.namespace !== undefined ? { namespace: values.namespace } : {}),
        ...(values.subresource !== undefined ? { subresource: values.subresource } : {}),
        ...(values['api-group'] !== undefined ? { apiGroup: values['api-group'] } : {}),
        ...(values.at !== undefined ? { at: values.at } : {}),
      };
      // --policy FILE needs no config; only the policy in force does.
      const { config } = loadCliConfig(values.config);
      process.stdout.write(await policyExplainCommand(config, spec, { policyFile: values.policy, json: values.json }));
      return 0;
    }
    default:
      throw new CliError(POLICY_USAGE, 2);
  }
}

/** `portcullis start`: every role in one process on the in-process bus, plus the sandbox. */
async function start(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } } });
  const { config, path } = loadCliConfig(values.config);
  if (config.bus.mode !== 'embedded') {
    throw new CliError(`${path} sets bus.mode: nats — "start" runs the embedded gateway; use "portcullis serve all" for cluster mode`, 2);
  }
  let sandbox: KubeApiServer | undefined;
  const extra: UpstreamConnection[] = [];
  const hasKube = config.connections.some((c) => c.type === 'kubernetes');
  if (config.sandbox.enabled === 'always' || (config.sandbox.enabled === 'auto' && !hasKube)) {
    if (config.connections.some((c) => c.name === 'sandbox')) throw new CliError('a configured connection is named "sandbox": rename it or set sandbox.enabled: never', 2);
    sandbox = await startKubeApiServer({ host: '127.0.0.1', port: 0 });
    extra.push(createUpstreamConnection({ name: 'sandbox', type: 'kubernetes', server: sandbox.url, caPem: sandbox.caPem, token: sandbox.token, label: 'sandbox' }));
  }
  // Loaded here: the other commands never pay for Nest.
  const { runUntilSignal, startProcess } = await import('../../runtime/src/start-process.js');
  const running = await startProcess({ config, roles: ALL_ROLES, label: 'embedded', extraConnections: extra }).catch(async (err: unknown) => {
    await sandbox?.close();
    throw err;
  });
  if (sandbox !== undefined) {
    running.logger.warn('SANDBOX: connection "sandbox" is an in-memory fake Kubernetes API server for trying Portcullis — not a real cluster', { sandbox: true, url: sandbox.url });
  }
  process.stdout.write(banner(config, path, running.edgeUrl ?? '', running.devIssuerUrl, sandbox !== undefined, running.approvalUrl ?? ''));
  await runUntilSignal(running, async () => sandbox?.close());
  return 0;
}

/** `portcullis serve <role…|all>`: cluster-mode roles on NATS/JetStream. */
async function serve(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { config: { type: 'string' } } });
  if (positionals.length === 0) throw new CliError('serve: name a role: edge, policy, approval, audit or all', 2);
  const roles = new Set<Role>();
  for (const p of positionals) {
    if (p === 'all') ALL_ROLES.forEach((r) => roles.add(r));
    else if ((ALL_ROLES as readonly string[]).includes(p)) roles.add(p as Role);
    else throw new CliError(`serve: unknown role ${JSON.stringify(p)} (edge, policy, approval, audit, all)`, 2);
  }
  const { config, path } = loadCliConfig(values.config);
  if (config.bus.mode !== 'nats') throw new CliError(`${path} sets bus.mode: embedded — "serve" runs cluster roles on NATS; use "portcullis start" for the embedded gateway`, 2);
  const { runUntilSignal, startProcess } = await import('../../runtime/src/start-process.js');
  const running = await startProcess({ config, roles: [...roles] });
  const ready: Record<string, unknown> = { roles: [...roles], config: path };
  if (running.edgeUrl !== undefined) ready['url'] = running.edgeUrl;
  if (running.approvalUrl !== undefined) ready['approvalUrl'] = running.approvalUrl;
  process.stdout.write(`${JSON.stringify({ ready: true, ...ready })}\n`);
  await runUntilSignal(running);
  return 0;
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`portcullis: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`portcullis: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof TypeError && (err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`portcullis: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`portcullis: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
