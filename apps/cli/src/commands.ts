import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEV_ISSUER_PATH, renderKubeconfig } from '../../../libs/gateway/src/index.js';
import type { PortcullisConfig } from '../../../libs/config/src/index.js';
import { formatPolicyError, parsePolicy } from '../../../libs/policy-engine/src/index.js';
import {
  formatAuditRow,
  formatAuditRowJson,
  SqliteAuditSink,
  type AuditRow,
  type AuditSink,
} from '../../../libs/audit-store/src/index.js';
import { parseDuration } from '../../../libs/config/src/index.js';
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

/** The CA clients should trust for the edge: the configured certificate's chain or the development CA. */
export function edgeCaPem(config: PortcullisConfig): string {
  const file = config.edge.tls.certFile ?? join(config.node.stateDir, 'tls', 'ca.pem');
  if (!existsSync(file)) {
    throw new CliError(`no CA for the edge at ${file}: start the gateway once (npm start) so it creates its development CA`);
  }
  return readFileSync(file, 'utf8');
}

/** `portcullis token`: a short-lived token from the development issuer. */
export async function tokenCommand(
  config: PortcullisConfig,
  opts: { client: string; secret?: string | undefined; scopes: string[]; ttl?: string | undefined; exec: boolean },
): Promise<string> {
  const dev = config.identity.devIssuer;
  if (!dev.enabled) throw new CliError('the development issuer is disabled in this config (identity.devIssuer.enabled): get tokens from your identity provider');
  const secret = opts.secret ?? process.env['PORTCULLIS_CLIENT_SECRET'] ?? dev.clients.find((c) => c.id === opts.client)?.secret;
  if (secret === undefined) throw new CliError(`no secret for client ${opts.client}: pass --secret, set PORTCULLIS_CLIENT_SECRET, or add the client to identity.devIssuer.clients`);
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: opts.client, client_secret: secret });
  if (opts.scopes.length > 0) form.set('scope', opts.scopes.join(' '));
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
    status: { token, expirationTimestamp: new Date(Date.now() + expiresIn * 1000 - 5000).toISOString() },
  })}\n`;
}

/** `portcullis kubeconfig`: a kubeconfig that fetches short-lived tokens through an exec plugin. */
export function kubeconfigCommand(
  config: PortcullisConfig,
  configPath: string,
  opts: { connection: string; client: string; namespace?: string | undefined },
): string {
  const known = config.connections.some((c) => c.name === opts.connection && c.type === 'kubernetes');
  if (!known && opts.connection !== 'sandbox') {
    throw new CliError(`no kubernetes connection named ${JSON.stringify(opts.connection)} in ${configPath}`);
  }
  return renderKubeconfig({
    edgeUrl: edgeUrl(config),
    connection: opts.connection,
    caPem: edgeCaPem(config),
    exec: { command: process.execPath, args: [CLI_SCRIPT, 'token', '--exec', '--client', opts.client, '--config', configPath] },
    ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
  });
}

/** `portcullis policy check`: validates a policy file, with line and column for each error. */
export function policyCheckCommand(file: string): { ok: boolean; output: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const result = parsePolicy(text, { source: file });
  if (result.ok) return { ok: true, output: `${file}: valid (policy ${result.policy.version}, ${result.policy.rules.length} rules)\n` };
  return { ok: false, output: `${result.errors.map((e) => formatPolicyError(e, file)).join('\n')}\n` };
}

/** Opens the audit store the config points at, for reading. */
export async function openAuditReader(config: PortcullisConfig): Promise<AuditSink> {
  if (config.bus.mode === 'embedded' || config.audit.sink === 'sqlite') {
    if (!existsSync(config.audit.sqlite.file)) throw new CliError(`no audit store at ${config.audit.sqlite.file} yet: start the gateway (npm start) and send a request`);
    return new SqliteAuditSink({ path: config.audit.sqlite.file });
  }
  const ch = config.audit.clickhouse;
  const { ClickHouseAuditSink } = await import('../../../libs/audit-store/src/index.js');
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
