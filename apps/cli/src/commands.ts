import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEV_ISSUER_PATH, renderKubeconfig } from '@portcullis/gateway';
import type { PortcullisConfig } from '@portcullis/config';
import {
  describeRequest,
  explain,
  explainInput,
  ExplainSpecSchema,
  formatExplanation,
  formatPolicyError,
  parsePolicy,
  type CompiledPolicy,
  type ExplainSpec,
  type ExplanationView,
} from '@portcullis/policy-engine';
import { BucketKeys, Buckets, DecisionSchema, toJson } from '@portcullis/contracts';
import { connectNats, type NatsBus } from '@portcullis/bus';
import { DecisionClient, GatewayError } from '@portcullis/gateway';
import {
  AuditChain,
  chainedRecorder,
  formatAuditRow,
  formatAuditRowJson,
  formatReplayEvent,
  formatRetentionPlan,
  formatVerifyReport,
  loadTimeline,
  ocsfRecord,
  OcsfRequestMerger,
  runRetention,
  SqliteAuditSink,
  verifyAuditLog,
  type AuditRow,
  type AuditSink,
  type RetentionPlan,
  type VerifyReport,
} from '@portcullis/audit-store';
import { parseDuration } from '@portcullis/config';
import { ClientTrustSource, type ClientTrust } from '@portcullis/tls';
// The one rule for what clients trust, shared with the roles that serve the certificate (light: no Nest).
import { edgeClientTrust } from '../../runtime/src/gateway-identity.js';
import { createLogger } from '@portcullis/common';
import { CLI_SCRIPT } from './config-file.js';
import { postForm } from './https-form.js';
import { requestJson } from './https-json.js';

/** A CLI failure: printed as one line, exit code 1 (2 for usage). */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** The edge's public base URL as clients should use it. */
export function edgeUrl(config: PortcullisConfig): string {
  if (config.edge.publicUrl !== undefined) return config.edge.publicUrl.replace(/\/$/, '');
  const h = config.edge.listen.host;
  const host = h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h;
  return `https://${host}:${config.edge.listen.port}`;
}

/**
 * What clients should trust for the edge: the development CA, or for a configured certificate
 * `edge.tls.caBundleFile`, the certificate itself when self-signed, else nothing (system roots).
 */
export function edgeTrust(config: PortcullisConfig): ClientTrust {
  const certFile = config.edge.tls.certFile;
  if (certFile !== undefined) {
    try {
      return edgeClientTrust(config, readTextFile(certFile));
    } catch (err) {
      if (err instanceof CliError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      throw new CliError(code !== undefined ? `cannot read edge.tls.caBundleFile ${config.edge.tls.caBundleFile ?? ''}: ${code}` : (err as Error).message);
    }
  }
  const file = join(config.node.stateDir, 'tls', 'ca.pem');
  if (!existsSync(file)) {
    throw new CliError(`no CA for the edge at ${file}: start the gateway once (npm start) so it creates its development CA`);
  }
  return { caPem: readFileSync(file, 'utf8'), source: ClientTrustSource.DevCa };
}

/** The CA the CLI trusts for the edge; undefined: the system's roots. */
export function edgeCaPem(config: PortcullisConfig): string | undefined {
  return edgeTrust(config).caPem;
}

/** `portcullis token`: a short-lived token from the development issuer. */
export async function tokenCommand(
  config: PortcullisConfig,
  opts: { client: string; secret?: string | undefined; scopes: string[]; ttl?: string | undefined; audience?: string | undefined; exec: boolean },
): Promise<string> {
  const dev = config.identity.devIssuer;
  if (!dev.enabled) throw new CliError('the development issuer is disabled in this config (identity.devIssuer.enabled): get tokens from your identity provider');
  const secret = opts.secret ?? process.env['PORTCULLIS_CLIENT_SECRET'] ?? dev.clients.find((c) => c.id === opts.client)?.secret;
  if (secret === undefined) throw new CliError(`no secret for client ${opts.client}: pass --secret, set PORTCULLIS_CLIENT_SECRET, or add the client to identity.devIssuer.clients`);
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: opts.client, client_secret: secret });
  if (opts.scopes.length > 0) form.set('scope', opts.scopes.join(' '));
  if (opts.audience !== undefined) form.set('audience', opts.audience);
  if (opts.ttl !== undefined) {
    const ms = parseDuration(opts.ttl);
    if (ms === undefined) throw new CliError(`--ttl: expected a duration such as 90s or 5m, got ${JSON.stringify(opts.ttl)}`, 2);
    form.set('ttl_seconds', String(Math.max(1, Math.floor(ms / 1000))));
  }
  const url = `${edgeUrl(config)}${DEV_ISSUER_PATH}/token`;
  let res;
  try {
    res = await postForm(url, form, edgeCaPem(config));
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`cannot reach the token endpoint ${url}: ${(err as Error).message} (is the gateway running? npm start)`);
  }
  if (res.status !== 200 || typeof res.body['access_token'] !== 'string') {
    throw new CliError(`token request refused (${res.status}): ${String(res.body['error'] ?? '')} ${String(res.body['error_description'] ?? '')}`.trim());
  }
  const token = res.body['access_token'];
  if (!opts.exec) return `${token}\n`;
  const expiresIn = Number(res.body['expires_in'] ?? 0);
  return `${JSON.stringify({
    apiVersion: 'client.authentication.k8s.io/v1',
    kind: 'ExecCredential',
    // A margin so a token is not sent in its last moments, but never more than a tenth of a short lifetime.
    status: { token, expirationTimestamp: new Date(Date.now() + expiresIn * 1000 - Math.min(5000, expiresIn * 100)).toISOString() },
  })}\n`;
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
  const kubeconfig = (notice === undefined ? '' : `# ${notice}.\n`) + renderKubeconfig({
    edgeUrl: edgeUrl(config),
    ...(hostUrl !== undefined ? { serverUrl: hostUrl } : {}),
    connection: opts.connection,
    caPem: trust.caPem,
    exec: {
      command: process.execPath,
      // A connection with its own audiences gets tokens minted for it (a token for another connection is refused there).
      args: [CLI_SCRIPT, 'token', '--exec', '--client', opts.client, ...(conn?.audiences?.[0] !== undefined ? ['--audience', conn.audiences[0]] : []), '--config', configPath],
    },
    ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
  });
  return notice === undefined ? { kubeconfig } : { kubeconfig, notice };
}

/** Reads a text file the user named; a CliError naming the file and the reason otherwise. */
function readTextFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** `portcullis policy check`: validates a policy file, with line and column for each error. */
export function policyCheckCommand(file: string): { ok: boolean; output: string } {
  const text = readTextFile(file);
  const result = parsePolicy(text, { source: file });
  if (result.ok) return { ok: true, output: `${file}: valid (policy ${result.policy.version}, ${result.policy.rules.length} rules)\n` };
  return { ok: false, output: `${result.errors.map((e) => formatPolicyError(e, file)).join('\n')}\n` };
}

/** Opens the audit store the config points at, for reading. */
export async function openAuditReader(config: PortcullisConfig): Promise<AuditSink> {
  if (config.bus.mode === 'embedded' || config.audit.sink === 'sqlite') {
    if (!existsSync(config.audit.sqlite.file)) throw new CliError(`no audit store at ${config.audit.sqlite.file} yet: start the gateway (npm start) and send a request`);
    const sink = new SqliteAuditSink({ path: config.audit.sqlite.file });
    // A store written by an older version gains the new columns (idempotent, serialized).
    await sink.migrate();
    return sink;
  }
  const ch = config.audit.clickhouse;
  const { ClickHouseAuditSink } = await import('@portcullis/audit-store');
  return new ClickHouseAuditSink({ url: ch.url, database: ch.database, username: ch.username, password: ch.password });
}

/** `portcullis audit tail`: recent events, then (with --follow) new ones as they land. */
export async function auditTailCommand(
  config: PortcullisConfig,
  opts: { follow: boolean; json: boolean; since: string; limit: number; request?: string | undefined },
  write: (line: string) => void,
  stopped: () => boolean,
): Promise<void> {
  const sinceMs = parseDuration(opts.since);
  if (sinceMs === undefined) throw new CliError(`--since: expected a duration such as 10m or 1h, got ${JSON.stringify(opts.since)}`, 2);
  const sink = await openAuditReader(config);
  const format = opts.json ? formatAuditRowJson : formatAuditRow;
  try {
    // The newest `limit` rows of the window: queries return oldest first.
    let rows: AuditRow[] = (
      await sink.query({
        sinceMs: Date.now() - sinceMs,
        limit: 100_000,
        ...(opts.request !== undefined ? { correlationId: opts.request } : {}),
      })
    ).slice(-opts.limit);
    let last: AuditRow | undefined;
    for (;;) {
      for (const row of rows) write(format(row));
      last = rows.at(-1) ?? last;
      if (!opts.follow || stopped()) return;
      await new Promise((r) => setTimeout(r, 500));
      if (stopped()) return;
      rows = await sink.query({
        ...(last !== undefined ? { afterTsMs: last.ts_ms, afterEventId: last.event_id } : { sinceMs: Date.now() - sinceMs }),
        limit: 1000,
        ...(opts.request !== undefined ? { correlationId: opts.request } : {}),
      });
    }
  } finally {
    await sink.close();
  }
}

/** Parses a policy file for push and explain; invalid → CliError listing each error with line and column. */
function readPolicyFile(file: string): { text: string; policy: CompiledPolicy } {
  const text = readTextFile(file);
  const result = parsePolicy(text, { source: file });
  if (!result.ok) throw new CliError(`${file} is invalid, nothing was changed:\n${result.errors.map((e) => formatPolicyError(e, file)).join('\n')}`);
  return { text, policy: result.policy };
}

/** Connects the CLI to the cluster's NATS, quietly. */
async function connectCluster(config: PortcullisConfig, what: string): Promise<NatsBus> {
  const nats = config.bus.nats;
  try {
    return await connectNats({
      servers: [...nats.servers],
      name: `portcullis-cli-${what}`,
      logger: () => undefined,
      ...(nats.user !== undefined ? { user: nats.user } : {}),
      ...(nats.password !== undefined ? { pass: nats.password } : {}),
      ...(nats.token !== undefined ? { token: nats.token } : {}),
    });
  } catch (err) {
    throw new CliError(`cannot reach NATS at ${nats.servers.join(', ')}: ${(err as Error).message}`);
  }
}

/**
 * `portcullis policy push FILE`: validates the file (line and column for each error; nothing is
 * pushed when it is invalid) and publishes it as the new bundle in the KV bucket, which every
 * policy process follows. A bundle must carry a new `metadata.version`: pushing other content
 * under the version in force is refused, since edges and the audit trail tell versions apart by it.
 */
export async function policyPushCommand(config: PortcullisConfig, configPath: string, file: string): Promise<string> {
  if (config.bus.mode !== 'nats') {
    throw new CliError(`${configPath} sets bus.mode: embedded — the embedded gateway reloads ${config.policy.file} when it changes; "policy push" publishes to a cluster's NATS KV bucket`, 2);
  }
  const { text, policy } = readPolicyFile(file);
  const handle = await connectCluster(config, 'policy-push');
  try {
    const kv = await handle.kv(Buckets.policy);
    const current = await kv.get(BucketKeys.policyBundle);
    if (current !== undefined) {
      const currentText = new TextDecoder().decode(current.value);
      const parsed = parsePolicy(currentText);
      if (currentText === text) {
        return `${file}: policy ${policy.version} is already the bundle in ${Buckets.policy}/${BucketKeys.policyBundle} (revision ${current.revision}); nothing pushed\n`;
      }
      if (parsed.ok && parsed.policy.version === policy.version) {
        throw new CliError(
          `${file}: version ${policy.version} is already in ${Buckets.policy}/${BucketKeys.policyBundle} (revision ${current.revision}) with different content; change metadata.version and push again`,
        );
      }
    }
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
  opts: { policyFile?: string | undefined; json: boolean },
): Promise<string> {
  const parsed = ExplainSpecSchema.safeParse(rawSpec);
  if (!parsed.success) {
    throw new CliError(`policy explain: ${parsed.error.issues.map((i) => `${i.path.map(String).join('.') || 'arguments'}: ${i.message}`).join('; ')}`, 2);
  }
  const spec: ExplainSpec = parsed.data;
  const input = explainInput(spec);
  let view: ExplanationView;
  const localFile = opts.policyFile ?? (config.bus.mode === 'nats' ? undefined : config.policy.file);
  if (localFile !== undefined) {
    const { policy } = readPolicyFile(localFile);
    const e = explain(policy, input.identity, input.attributes, input.at ?? new Date());
    view = { decision: e.decision, trace: e.trace, request: describeRequest(input.identity, input.attributes), policyName: policy.name, policySource: localFile };
  } else {
    const handle = await connectCluster(config, 'policy-explain');
    try {
      const reply = await new DecisionClient(handle.bus, config.edge.decisionTimeout).explain(input.identity, input.attributes, input.at);
      view = { decision: reply.decision!, trace: reply.trace, request: reply.request, policyName: reply.policyName, policySource: reply.policySource };
    } catch (err) {
      if (err instanceof GatewayError) throw new CliError(`${err.message}: is a policy process running (portcullis serve policy)?`);
      throw err;
    } finally {
      await handle.close();
    }
  }
  if (!opts.json) return formatExplanation(view);
  return `${JSON.stringify(
    {
      request: view.request,
      policy: { name: view.policyName, version: view.decision.policyVersion, source: view.policySource },
      decision: toJson(DecisionSchema, view.decision),
      trace: view.trace.map((t) => ({ ruleId: t.ruleId, effect: t.effect, matched: t.matched, ...(t.matched ? {} : { failedOn: t.failedOn }) })),
    },
    null,
    2,
  )}\n`;
}

/**
 * A point in time for --since/--until: a duration back from now (`10m`, `7d`), an ISO 8601 time
 * (`2026-06-01T00:00:00Z`, `2026-06-01`) or epoch milliseconds.
 */
export function parseTimeArg(text: string, flag: string, now: number = Date.now()): number {
  const ms = parseDuration(text);
  if (ms !== undefined) return now - ms;
  if (/^\d{10,}$/.test(text)) return Number(text);
  const t = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (!Number.isFinite(t)) throw new CliError(`${flag}: expected a duration (10m, 7d), an ISO 8601 time or epoch ms, got ${JSON.stringify(text)}`, 2);
  return t;
}

/** `portcullis audit verify`: recomputes the hash chains; exit 1 with one line per problem. */
export async function auditVerifyCommand(
  config: PortcullisConfig,
  opts: { session?: string | undefined; request?: string | undefined; since?: string | undefined; until?: string | undefined; node?: string | undefined; json: boolean },
): Promise<{ ok: boolean; output: string; report: VerifyReport }> {
  const sink = await openAuditReader(config);
  try {
    const report = await verifyAuditLog(sink, {
      ...(opts.session !== undefined ? { sessionId: opts.session } : {}),
      ...(opts.request !== undefined ? { correlationId: opts.request } : {}),
      ...(opts.node !== undefined ? { nodeId: opts.node } : {}),
      ...(opts.since !== undefined ? { sinceMs: parseTimeArg(opts.since, '--since') } : {}),
      ...(opts.until !== undefined ? { untilMs: parseTimeArg(opts.until, '--until') } : {}),
    });
    const ok = report.findings.length === 0;
    const output = opts.json ? `${JSON.stringify(report)}\n` : `${formatVerifyReport(report).join('\n')}\n`;
    return { ok, output, report };
  } finally {
    await sink.close();
  }
}

/**
 * `portcullis audit replay ID`: the timeline of a session (or of one request). With `speed`, the
 * events come at their recorded pace divided by it (frames at their own offsets); without, at once.
 */
export async function auditReplayCommand(
  config: PortcullisConfig,
  id: string,
  opts: { json: boolean; speed?: number | undefined },
  write: (line: string) => void,
  stopped: () => boolean,
): Promise<void> {
  const sink = await openAuditReader(config);
  try {
    const timeline = await loadTimeline(sink, id);
    if (timeline === undefined) throw new CliError(`no session or request ${JSON.stringify(id)} in the audit log`);
    if (opts.json) {
      write(JSON.stringify(timeline));
      return;
    }
    write(`${timeline.kind} ${id}: ${timeline.events.length} events from ${new Date(timeline.startedAtMs).toISOString()}${timeline.truncated ? ' (truncated)' : ''}`);
    let shownAt = 0;
    for (const event of timeline.events) {
      if (opts.speed !== undefined && event.offsetMs > shownAt) {
        await new Promise((r) => setTimeout(r, (event.offsetMs - shownAt) / opts.speed!));
        shownAt = event.offsetMs;
      }
      if (stopped()) return;
      write(formatReplayEvent(event));
    }
  } finally {
    await sink.close();
  }
}

/**
 * `portcullis audit export`: streams the window as ndjson (one audit row per line) or OCSF (one
 * API Activity record per request), page by page, waiting for the output to drain: memory stays
 * bounded however large the window.
 */
export async function auditExportCommand(
  config: PortcullisConfig,
  opts: { since: string; until?: string | undefined; format: 'ndjson' | 'ocsf'; pageSize?: number },
  write: (line: string) => Promise<void> | void,
): Promise<number> {
  const sinceMs = parseTimeArg(opts.since, '--since');
  const untilMs = opts.until !== undefined ? parseTimeArg(opts.until, '--until') : undefined;
  const sink = await openAuditReader(config);
  const pageSize = opts.pageSize ?? 5000;
  let written = 0;
  const pending: string[] = [];
  const merger = new OcsfRequestMerger((flat) => pending.push(JSON.stringify(ocsfRecord(flat))));
  const flush = async (): Promise<void> => {
    for (const line of pending.splice(0)) {
      await write(line);
      written++;
    }
  };
  try {
    const window = { sinceMs, ...(untilMs !== undefined ? { untilMs } : {}) };
    let page = await sink.query({ ...window, limit: pageSize });
    while (page.length > 0) {
      for (const row of page) {
        if (opts.format === 'ndjson') pending.push(formatAuditRowJson(row));
        else merger.push(row);
      }
      await flush();
      if (page.length < pageSize) break;
      const last = page.at(-1)!;
      page = await sink.query({ ...window, afterTsMs: last.ts_ms, afterEventId: last.event_id, limit: pageSize });
    }
    merger.end();
    await flush();
    return written;
  } finally {
    await sink.close();
  }
}

/**
 * `portcullis audit retention`: plans (and unless --dry-run applies) the retention of
 * `audit.retention`, recording the run as an audit event on the configured log first.
 */
export async function auditRetentionCommand(config: PortcullisConfig, opts: { dryRun: boolean }): Promise<{ plan: RetentionPlan; lines: string[] }> {
  const retention = config.audit.retention;
  if (retention === undefined) throw new CliError('audit.retention is not set in this config: events are kept forever', 2);
  const sink = await openAuditReader(config);
  try {
    if (opts.dryRun) {
      const plan = await runRetention(sink, { retentionMs: retention.ms, retentionText: retention.text, dryRun: true, nodeId: config.node.id });
      return { plan, lines: formatRetentionPlan(plan, true) };
    }
    const { connectProcessBus } = await import('../../runtime/src/process-bus.js');
    const platform = await connectProcessBus(config, 'cli', createLogger({ base: { role: 'cli', node: config.node.id } }));
    try {
      const plan = await runRetention(sink, {
        retentionMs: retention.ms,
        retentionText: retention.text,
        dryRun: false,
        nodeId: config.node.id,
        record: chainedRecorder(platform.log, new AuditChain(config.node.id)),
      });
      return { plan, lines: formatRetentionPlan(plan, false) };
    } finally {
      await platform.close();
    }
  } finally {
    await sink.close();
  }
}

/** The approval role's URL as clients should use it. */
export function approvalUrl(config: PortcullisConfig): string {
  const a = config.approval;
  if (a.publicUrl !== undefined) return a.publicUrl.replace(/\/$/, '');
  const h = a.listen.host;
  const host = h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h;
  return `https://${host}:${a.listen.port}`;
}

/** `portcullis approvals list|approve|deny`: the approvers' REST API with a bearer token. */
export async function approvalsCommand(
  config: PortcullisConfig,
  opts: { action: 'list' | 'approve' | 'deny'; id?: string | undefined; reason?: string | undefined; asClient?: string | undefined; token?: string | undefined; json: boolean },
): Promise<string> {
  let token = opts.token ?? process.env['PORTCULLIS_TOKEN'];
  if (token === undefined) {
    if (opts.asClient === undefined) throw new CliError('approvals: authenticate as an approver with --as-client ID (a development client), --token TOKEN or $PORTCULLIS_TOKEN', 2);
    token = (await tokenCommand(config, { client: opts.asClient, scopes: [], exec: false })).trim();
  }
  const base = approvalUrl(config);
  const ca = config.approval.publicUrl === undefined || config.edge.tls.certFile !== undefined ? edgeCaPem(config) : undefined;
  let res;
  try {
    res =
      opts.action === 'list'
        ? await requestJson('GET', `${base}/approvals`, { ca, token })
        : await requestJson('POST', `${base}/approvals/${encodeURIComponent(opts.id ?? '')}/${opts.action}`, { ca, token, body: { reason: opts.reason ?? '' } });
  } catch (err) {
    throw new CliError(`cannot reach the approval service at ${base}: ${(err as Error).message} (is the gateway running? npm start)`);
  }
  if (res.status !== 200) throw new CliError(`${opts.action} refused (${res.status} ${String(res.body['error'] ?? '')}): ${String(res.body['message'] ?? '')}`);
  if (opts.json) return `${JSON.stringify(res.body)}\n`;
  if (opts.action === 'list') {
    const list = (res.body['approvals'] as Record<string, unknown>[] | undefined) ?? [];
    if (list.length === 0) return 'no pending approvals you can decide\n';
    return `${list.map(formatApproval).join('\n')}\n`;
  }
  const a = res.body;
  const approvals = (a['approvals'] as { subject: string }[] | undefined) ?? [];
  const requirement = a['requirement'] as { quorum?: number } | undefined;
  const state = String(a['state']);
  const detail = state === 'pending' ? ` (${approvals.length} of ${requirement?.quorum ?? 1} approvals so far)` : state === 'granted' ? ': the held request may proceed' : '';
  return `approval ${String(a['id'])} is ${state}${detail}\n`;
}

function formatApproval(a: Record<string, unknown>): string {
  const requester = a['requester'] as { subject?: string } | undefined;
  const approvals = (a['approvals'] as unknown[] | undefined)?.length ?? 0;
  const quorum = (a['requirement'] as { quorum?: number } | undefined)?.quorum ?? 1;
  return `${String(a['id'])}  ${String(a['state'])}  ${requester?.subject ?? ''} wants to ${String(a['what'])}  rule ${String(a['rule'])}  ${approvals}/${quorum} approvals  expires ${String(a['expiresAt'])}`;
}
