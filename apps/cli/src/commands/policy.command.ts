import { Command } from 'commander';
import type { PortcullisConfig } from '@portcullis/config';
import { connectNats, withoutCredentials, type NatsBus } from '@portcullis/bus';
import { silentLogger } from '@portcullis/common';
import { createHash } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { BucketKeys, Buckets, buildEvent, create, DecisionSchema, EventType, PolicyPushedSchema, toJson } from '@portcullis/contracts';
import { ChainedAppender, SYSTEM_CONNECTION } from '@portcullis/audit-store/pure';
import { DecisionClient, GatewayError } from '@portcullis/gateway';
import {
  describeRequest,
  explain,
  explainInput,
  ExplainSpecSchema,
  formatExplanation,
  formatPolicyError,
  formatPolicyWarning,
  parsePolicy,
  type CompiledPolicy,
  type ExplainSpec,
  type ExplanationView,
  type PolicyError,
} from '@portcullis/policy-engine';
import { checkpointCliHeads } from '../checkpoint-heads.js';
import { natsConnectOptions } from '../../../runtime/src/nats-options.js';
import { CliError, ExitCode } from '../cli-error.js';
import { collect, configOption, withExamples } from '../command-help.js';
import { loadCliConfig } from '../config-file.js';
import { readTextFile } from '../gateway-endpoints.js';
import { jsonAliasOption, OutputFormat, outputFormat, outputOption, toYaml } from '../output.js';
import { parseTimeArg, TIME_FORMS } from '../time-arg.js';

/** `portcullis policy check|push|explain`. */
export function createPolicyCommand(): Command {
  const policy = new Command('policy')
    .summary('check, publish and explain policies')
    .description('Checks a policy file, publishes it to a cluster, or explains which rule decides a request and why.');
  policy.addCommand(checkCommand());
  policy.addCommand(pushCommand());
  policy.addCommand(explainCommand());
  return withExamples(policy, [['portcullis policy check examples/policy.yaml', 'validate a policy file']]);
}

function checkCommand(): Command {
  const command = new Command('check')
    .summary('validate a policy file')
    .description(
      'Validates a policy file: every error with its line and column (an unknown verb is an error), and warnings for what is valid but probably not meant (a resource no built-in API group serves). Exit code 1 when it is invalid (as text, errors and warnings go to stderr).',
    )
    .argument('<file>', 'the policy file (YAML)')
    .addOption(outputOption([OutputFormat.Text, OutputFormat.Json, OutputFormat.Yaml], 'the result'))
    .action((file: string, opts: { output: string }) => {
      const r = policyCheckCommand(file);
      const format = opts.output as OutputFormat;
      // Data goes to stdout either way (the exit code says whether it is valid); the text's problems to stderr.
      if (format === OutputFormat.Json) process.stdout.write(`${JSON.stringify(r.result)}\n`);
      else if (format === OutputFormat.Yaml) process.stdout.write(toYaml(r.result));
      else {
        process.stderr.write(r.warnings);
        (r.ok ? process.stdout : process.stderr).write(r.output);
      }
      process.exitCode = r.ok ? ExitCode.Ok : ExitCode.Failure;
    });
  return withExamples(command, [
    ['portcullis policy check examples/policy.yaml', 'validate a policy file before pushing it'],
    ['portcullis policy check policy.yaml -o json | jq .errors', 'the errors as data'],
  ]);
}

function pushCommand(): Command {
  const command = new Command('push')
    .summary('validate a policy and publish it to a cluster')
    .description(
      "Validates a policy file and publishes it to the cluster's NATS KV bucket, which every policy process follows. Nothing is pushed when the file is invalid; a bundle must carry a new metadata.version.",
    )
    .argument('<file>', 'the policy file (YAML)')
    .addOption(configOption())
    .action(async (file: string, opts: { config?: string }) => {
      const { config, path } = loadCliConfig(opts.config);
      process.stdout.write(await policyPushCommand(config, path, file));
    });
  return withExamples(command, [
    ['portcullis policy push policy.yaml --config cluster.yaml', 'publish a new policy version to every policy process of a cluster'],
  ]);
}

function explainCommand(): Command {
  const command = new Command('explain')
    .summary('which rule decides a request, and why')
    .description(
      'Which rule decides a described request and why, with what every other rule failed on. Against --policy FILE when given; otherwise the policy in force (asked of the policy role in cluster mode, read from policy.file in the embedded mode).',
    )
    .argument('<verb>', 'the Kubernetes verb: get, list, watch, create, update, patch, delete, …')
    .argument('<resource>', 'the resource (plural): pods, secrets, namespaces, …')
    .argument('[name]', 'the object name')
    .requiredOption('--as <subject>', "the identity's subject (sub)")
    .requiredOption('--connection <name>', 'the connection the request goes to (connections[].name, or sandbox)')
    .option('--group <group>', 'a group of the identity; repeat for several (default: none)', collect)
    .option('--client-id <id>', "the identity's client id")
    .option('--scope <scope>', 'a scope of the token; repeat for several (default: none)', collect)
    .option('--issuer <url>', "the token's issuer (iss)")
    .option('-n, --namespace <namespace>', 'the namespace (default: none, a cluster-scoped request)')
    .option('--subresource <subresource>', 'the subresource: log, exec, status, …')
    .option('--api-group <group>', 'the API group (default: the core group)')
    .option('--at <time>', `evaluate at this time, for rules with time windows (default: now); ${TIME_FORMS}`)
    .option('--policy <file>', 'explain against this policy file instead of the policy in force (needs no running gateway)')
    .addOption(outputOption([OutputFormat.Text, OutputFormat.Json, OutputFormat.Yaml], 'the explanation'))
    .addOption(jsonAliasOption())
    .addOption(configOption())
    .action(async (verb: string, resource: string, name: string | undefined, opts: ExplainOptions, cmd: Command) => {
      const spec: Record<string, unknown> = {
        subject: opts.as,
        groups: opts.group ?? [],
        scopes: opts.scope ?? [],
        connection: opts.connection,
        verb,
        resource,
        ...(name !== undefined ? { name } : {}),
        ...(opts.clientId !== undefined ? { clientId: opts.clientId } : {}),
        ...(opts.issuer !== undefined ? { issuer: opts.issuer } : {}),
        ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
        ...(opts.subresource !== undefined ? { subresource: opts.subresource } : {}),
        ...(opts.apiGroup !== undefined ? { apiGroup: opts.apiGroup } : {}),
        ...(opts.at !== undefined ? { at: new Date(parseTimeArg(opts.at, '--at')).toISOString() } : {}),
      };
      const format = outputFormat(opts, cmd.getOptionValueSource('output') === 'cli');
      // --policy FILE needs no config; only the policy in force does.
      const { config } = loadCliConfig(opts.config);
      process.stdout.write(await policyExplainCommand(config, spec, { policyFile: opts.policy, format }));
    });
  return withExamples(command, [
    ['portcullis policy explain --as ci-bot --group bots --connection sandbox delete namespaces staging', 'why deleting a namespace needs an approval'],
    [
      'portcullis policy explain --as reporter-bot --group bots --connection prod get secrets db -n prod --policy policy.yaml -o json',
      'a policy file not yet pushed, as data',
    ],
    [
      'portcullis policy explain --as ci-bot --group bots --connection prod patch deployments api -n web --at 2026-06-06T22:00:00Z',
      'the decision at another time (for rules with time windows)',
    ],
  ]);
}

interface ExplainOptions {
  as: string;
  connection: string;
  group?: string[];
  clientId?: string;
  scope?: string[];
  issuer?: string;
  namespace?: string;
  subresource?: string;
  apiGroup?: string;
  at?: string;
  policy?: string;
  output: string;
  json?: boolean;
  config?: string;
}

/** What `policy check -o json|yaml` prints. */
export interface PolicyCheckResult {
  file: string;
  valid: boolean;
  policy?: { name: string; version: string; rules: number };
  errors?: { line: number; column: number; path: string; message: string }[];
  /** Valid but probably not meant (a resource no built-in API group serves); never makes the file invalid. */
  warnings: { line: number; column: number; path: string; message: string }[];
}

const asData = (p: PolicyError): { line: number; column: number; path: string; message: string } => ({
  line: p.line,
  column: p.column,
  path: p.path,
  message: p.message,
});

/** The warnings of a parse as `policy check` and `push` print them, one a line. */
const warningLines = (warnings: readonly PolicyError[], file: string): string => warnings.map((w) => `${formatPolicyWarning(w, file)}\n`).join('');

/** `portcullis policy check`: validates a policy file, with line and column for each error. */
export function policyCheckCommand(file: string): { ok: boolean; output: string; warnings: string; result: PolicyCheckResult } {
  const text = readTextFile(file);
  const result = parsePolicy(text, { source: file });
  const warnings = result.warnings.map(asData);
  if (result.ok) {
    const { name, version, rules } = result.policy;
    return {
      ok: true,
      output: `${file}: valid (policy ${version}, ${rules.length} rules${warnings.length > 0 ? `, ${warnings.length} warnings` : ''})\n`,
      warnings: warningLines(result.warnings, file),
      result: { file, valid: true, policy: { name, version, rules: rules.length }, warnings },
    };
  }
  return {
    ok: false,
    output: result.errors.map((e) => `${formatPolicyError(e, file)}\n`).join(''),
    warnings: warningLines(result.warnings, file),
    result: { file, valid: false, errors: result.errors.map(asData), warnings },
  };
}

/** Parses a policy file for push and explain; invalid → CliError listing each error with line and column. */
function readPolicyFile(file: string): { text: string; policy: CompiledPolicy; warnings: string } {
  const text = readTextFile(file);
  const result = parsePolicy(text, { source: file });
  if (!result.ok) throw new CliError(`${file} is invalid, nothing was changed:\n${result.errors.map((e) => formatPolicyError(e, file)).join('\n')}`);
  return { text, policy: result.policy, warnings: warningLines(result.warnings, file) };
}

/** Connects the CLI to the cluster's NATS, quietly. */
async function connectCluster(config: PortcullisConfig, what: string): Promise<NatsBus> {
  const nats = config.bus.nats;
  try {
    // As `operator`: the NATS identity allowed to write the policy bucket (bus.nats.user of the config given).
    return await connectNats({ ...natsConnectOptions(nats, ['operator']), name: `portcullis-cli-${what}`, logger: silentLogger });
  } catch (err) {
    throw new CliError(
      `cannot reach NATS at ${nats.servers.map(withoutCredentials).join(', ')} (set by bus.nats.servers): ${(err as Error).message}`,
      ExitCode.Failure,
      {
        cause: err,
      },
    );
  }
}

/** Who runs the CLI: the operating-system user, and the NATS user when the config names one. */
function pusher(config: PortcullisConfig): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = process.env['USER'] ?? 'unknown';
  }
  const natsUser = config.bus.nats.user;
  return natsUser === undefined ? user : `${user} (nats user ${natsUser})`;
}

/** Appends `policy.pushed` to the audit stream, in a chain segment of its own; throws (nothing pushed) without an acknowledgement. */
async function recordPush(config: PortcullisConfig, handle: NatsBus, policy: CompiledPolicy, text: string, previousVersion: string): Promise<void> {
  const event = buildEvent(
    EventType.PolicyPushed,
    create(PolicyPushedSchema, {
      policyName: policy.name,
      policyVersion: policy.version,
      bundleSha256: createHash('sha256').update(text).digest('hex'),
      pushedBy: pusher(config),
      pushedFrom: hostname(),
      target: `kv ${Buckets.policy}/${BucketKeys.policyBundle}`,
      previousVersion,
      rules: policy.rules.length,
    }),
    { correlationId: '', nodeId: config.node.id, connection: SYSTEM_CONNECTION },
  );
  event.correlationId = event.id;
  const appender = new ChainedAppender(handle.log, config.node.id, config.edge.auditAckTimeout);
  try {
    await appender.append(event);
  } catch (err) {
    throw new CliError(`the push could not be recorded in the audit log, so nothing was pushed: ${(err as Error).message}`, ExitCode.Failure, { cause: err });
  }
  await checkpointCliHeads(config, handle.log, appender.takeHeads(), 'the push record');
}

/**
 * `portcullis policy push FILE`: validates the file (line and column for each error; nothing is
 * pushed when it is invalid) and publishes it as the new bundle in the KV bucket, which every
 * policy process follows. A bundle must carry a new `metadata.version`: pushing other content
 * under the version in force is refused, since edges and the audit trail tell versions apart by it.
 * The push is recorded first, as a `policy.pushed` event in the audit log (who, from where, the
 * version, the bundle's SHA-256): no acknowledged record, nothing pushed.
 */
export async function policyPushCommand(config: PortcullisConfig, configPath: string, file: string): Promise<string> {
  if (config.bus.mode !== 'nats') {
    throw new CliError(
      `${configPath} sets bus.mode: embedded — the embedded gateway reloads ${config.policy.file} when it changes; "policy push" publishes to a cluster's NATS KV bucket`,
      ExitCode.Usage,
    );
  }
  const { text, policy, warnings } = readPolicyFile(file);
  // Before connecting: a warning is worth reading even when the cluster cannot be reached.
  process.stderr.write(warnings);
  const handle = await connectCluster(config, 'policy-push');
  try {
    const kv = await handle.kv(Buckets.policy);
    const current = await kv.get(BucketKeys.policyBundle);
    let previousVersion = '';
    if (current !== undefined) {
      const currentText = new TextDecoder().decode(current.value);
      const parsed = parsePolicy(currentText);
      if (parsed.ok) previousVersion = parsed.policy.version;
      if (currentText === text) {
        return `${file}: policy ${policy.version} is already the bundle in ${Buckets.policy}/${BucketKeys.policyBundle} (revision ${current.revision}); nothing pushed\n`;
      }
      if (parsed.ok && parsed.policy.version === policy.version) {
        throw new CliError(
          `${file}: version ${policy.version} is already in ${Buckets.policy}/${BucketKeys.policyBundle} (revision ${current.revision}) with different content; change metadata.version and push again`,
        );
      }
    }
    await recordPush(config, handle, policy, text, previousVersion);
    const revision = await kv.put(BucketKeys.policyBundle, new TextEncoder().encode(text));
    return `${file}: pushed policy ${policy.name} version ${policy.version} (${policy.rules.length} rules) to ${Buckets.policy}/${BucketKeys.policyBundle} revision ${revision}\n`;
  } finally {
    await handle.close();
  }
}

/**
 * `portcullis policy explain`: the decision for a described request and why, with every rule's
 * outcome. Against `policyFile` when given; otherwise the policy in force — asked of the policy
 * role over NATS in cluster mode, read from `policy.file` in the embedded mode.
 */
export async function policyExplainCommand(
  config: PortcullisConfig,
  rawSpec: Record<string, unknown>,
  opts: { policyFile?: string | undefined; format: OutputFormat },
): Promise<string> {
  const parsed = ExplainSpecSchema.safeParse(rawSpec);
  if (!parsed.success) {
    throw new CliError(
      `policy explain: ${parsed.error.issues.map((i) => `${i.path.map(String).join('.') || 'arguments'}: ${i.message}`).join('; ')}`,
      ExitCode.Usage,
    );
  }
  const spec: ExplainSpec = parsed.data;
  const input = explainInput(spec);
  let view: ExplanationView;
  const localFile = opts.policyFile ?? (config.bus.mode === 'nats' ? undefined : config.policy.file);
  if (localFile !== undefined) {
    const { policy } = readPolicyFile(localFile);
    const e = explain(policy, input.identity, input.attributes, input.at ?? new Date());
    view = {
      decision: e.decision,
      trace: e.trace,
      request: describeRequest(input.identity, input.attributes),
      policyName: policy.name,
      policySource: localFile,
    };
  } else {
    const handle = await connectCluster(config, 'policy-explain');
    try {
      const reply = await new DecisionClient(handle.bus, config.edge.decisionTimeout).explain(input.identity, input.attributes, input.at);
      view = { decision: reply.decision!, trace: reply.trace, request: reply.request, policyName: reply.policyName, policySource: reply.policySource };
    } catch (err) {
      if (err instanceof GatewayError)
        throw new CliError(`${err.message}: is a policy process running (portcullis serve policy)?`, ExitCode.Failure, { cause: err });
      throw err;
    } finally {
      await handle.close();
    }
  }
  if (opts.format !== OutputFormat.Json && opts.format !== OutputFormat.Yaml) return formatExplanation(view);
  const data = {
    request: view.request,
    policy: { name: view.policyName, version: view.decision.policyVersion, source: view.policySource },
    decision: toJson(DecisionSchema, view.decision),
    trace: view.trace.map((t) => ({ ruleId: t.ruleId, effect: t.effect, matched: t.matched, ...(t.matched ? {} : { failedOn: t.failedOn }) })),
  };
  return opts.format === OutputFormat.Json ? `${JSON.stringify(data, null, 2)}\n` : toYaml(data);
}
