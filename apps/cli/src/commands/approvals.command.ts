import { Command, Option } from 'commander';
import type { PortcullisConfig } from '@portcullis/config';
import { CliError, ExitCode } from '../cli-error.js';
import { configOption, withExamples } from '../command-help.js';
import { loadCliConfig } from '../config-file.js';
import { approvalEndpoint, edgeCaPem, setBy, type Endpoint } from '../gateway-endpoints.js';
import { requestJson } from '../https-json.js';
import { jsonAliasOption, OutputFormat, outputFormat, outputOption, renderTable, toYaml } from '../output.js';
import { issueToken } from './token.command.js';

/** What the approvals API is asked to do. */
export const ApprovalAction = { List: 'list', Approve: 'approve', Deny: 'deny' } as const;
export type ApprovalAction = (typeof ApprovalAction)[keyof typeof ApprovalAction];

/** How the caller authenticates to the approvals API. */
export interface ApproverAuth {
  asClient?: string | undefined;
  token?: string | undefined;
}

interface AuthOptions {
  asClient?: string;
  token?: string;
  output: string;
  json?: boolean;
  config?: string;
}

// An approval id is a UUID; the API matches lower case.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `portcullis approvals list|approve|deny`. */
export function createApprovalsCommand(): Command {
  const approvals = new Command('approvals')
    .summary('list, approve and deny held requests')
    .description("Requests a policy holds for a human approval, through the approval role's REST API, as an approver (a bearer token).");
  approvals.addCommand(listCommand());
  approvals.addCommand(decideCommand(ApprovalAction.Approve));
  approvals.addCommand(decideCommand(ApprovalAction.Deny));
  return withExamples(approvals, [['portcullis approvals list --as-client sre-alice', 'what is waiting for you']]);
}

function withAuth(command: Command): Command {
  return command
    .addOption(new Option('--as-client <id>', 'authenticate with a token minted for this development client (identity.devIssuer.clients)').conflicts('token'))
    .option('--token <token>', "an approver's bearer token from your identity provider (default: $PORTCULLIS_TOKEN unless --as-client is given)")
    .addOption(configOption());
}

function listCommand(): Command {
  const command = withAuth(
    new Command('list')
      .summary('the pending approvals you can decide')
      .description("Lists the pending approvals you can decide (and your own requests), like kubectl get: an aligned table, or the API's JSON.")
      .addOption(
        outputOption(
          [OutputFormat.Table, OutputFormat.Wide, OutputFormat.Json, OutputFormat.Yaml],
          'the approvals: wide adds when each was requested and expires, the client, the approver groups, the policy version and the message',
        ),
      )
      .addOption(jsonAliasOption()),
  ).action(async (opts: AuthOptions, cmd: Command) => {
    const format = outputFormat(opts, cmd.getOptionValueSource('output') === 'cli');
    const { config, path } = loadCliConfig(opts.config);
    process.stdout.write(await approvalsCommand(config, path, { action: ApprovalAction.List, asClient: opts.asClient, token: opts.token, format }));
  });
  return withExamples(command, [
    ['portcullis approvals list --as-client sre-alice', 'the approvals sre-alice can decide (a development client)'],
    ['portcullis approvals list --token "$APPROVER_TOKEN" -o json | jq -r \'.approvals[].id\'', 'the ids, with a token from your identity provider'],
  ]);
}

function decideCommand(action: typeof ApprovalAction.Approve | typeof ApprovalAction.Deny): Command {
  const verb = action === ApprovalAction.Approve ? 'Approves' : 'Denies';
  const command = withAuth(
    new Command(action)
      .summary(`${action} a held request`)
      .description(
        `${verb} a held request. ${action === ApprovalAction.Approve ? 'Once the quorum is reached the client may retry it (scope once: that one request).' : 'Its retry gets your reason.'}`,
      )
      .argument('<id>', "the approval id (a UUID, as 'portcullis approvals list' prints it)")
      .option(
        '--reason <text>',
        `why you ${action} it: recorded in the audit log${action === ApprovalAction.Approve ? ', required by rules with reasonRequired' : ' and shown to the client'}`,
      )
      .addOption(outputOption([OutputFormat.Text, OutputFormat.Json, OutputFormat.Yaml], 'the approval after your decision'))
      .addOption(jsonAliasOption()),
  ).action(async (id: string, opts: AuthOptions & { reason?: string }, cmd: Command) => {
    const approvalId = parseApprovalId(id);
    const format = outputFormat(opts, cmd.getOptionValueSource('output') === 'cli');
    const { config, path } = loadCliConfig(opts.config);
    process.stdout.write(
      await approvalsCommand(config, path, { action, id: approvalId, reason: opts.reason, asClient: opts.asClient, token: opts.token, format }),
    );
  });
  return withExamples(
    command,
    action === ApprovalAction.Approve
      ? [
          [
            'portcullis approvals approve 0193c5e2-7d1a-7c3e-9a4b-2f6d8e1a0b3c --reason "cleanup, INC-42" --as-client sre-alice',
            'approve, with the reason the rule requires',
          ],
        ]
      : [
          [
            'portcullis approvals deny 0193c5e2-7d1a-7c3e-9a4b-2f6d8e1a0b3c --reason "not during the freeze" --as-client sre-alice',
            'deny; the client sees the reason',
          ],
        ],
  );
}

/** An approval id from the command line, lower case; anything but a UUID is refused before any request. */
export function parseApprovalId(text: string): string {
  if (!UUID.test(text))
    throw new CliError(`not an approval id: ${JSON.stringify(text)} (an approval id is a UUID, as 'portcullis approvals list' prints it)`, ExitCode.Usage);
  return text.toLowerCase();
}

/** `portcullis approvals list|approve|deny`: the approvers' REST API with a bearer token. */
export async function approvalsCommand(
  config: PortcullisConfig,
  configPath: string,
  opts: ApproverAuth & { action: ApprovalAction; id?: string | undefined; reason?: string | undefined; format: OutputFormat },
): Promise<string> {
  const token = await approverToken(config, configPath, opts);
  const endpoint = approvalEndpoint(config);
  const ca = config.approval.publicUrl === undefined || config.edge.tls.certFile !== undefined ? edgeCaPem(config) : undefined;
  let res;
  try {
    res =
      opts.action === ApprovalAction.List
        ? await requestJson('GET', `${endpoint.url}/approvals`, { ca, token })
        : await requestJson('POST', `${endpoint.url}/approvals/${encodeURIComponent(opts.id ?? '')}/${opts.action}`, {
            ca,
            token,
            body: { reason: opts.reason ?? '' },
          });
  } catch (err) {
    throw new CliError(
      `cannot reach the approval service at ${endpoint.url} (${setBy(endpoint, configPath)}): ${(err as Error).message} — is the gateway running? (npm start)`,
      ExitCode.Failure,
      {
        cause: err,
      },
    );
  }
  if (res.status !== 200) throw refusal(opts.action, opts.id, res, endpoint, configPath);
  switch (opts.format) {
    case OutputFormat.Json:
      return `${JSON.stringify(res.body)}\n`;
    case OutputFormat.Yaml:
      return toYaml(res.body);
    case OutputFormat.Table:
    case OutputFormat.Wide:
    case OutputFormat.Text:
      return opts.action === ApprovalAction.List
        ? approvalsTable((res.body['approvals'] as ApprovalView[] | undefined) ?? [], opts.format === OutputFormat.Wide)
        : decisionLine(res.body);
  }
}

async function approverToken(config: PortcullisConfig, configPath: string, auth: ApproverAuth): Promise<string> {
  if (auth.token !== undefined) return auth.token;
  const fromEnv = process.env['PORTCULLIS_TOKEN'];
  if (auth.asClient === undefined && fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (auth.asClient === undefined)
    throw new CliError('approvals: authenticate as an approver with --as-client ID (a development client), --token TOKEN or $PORTCULLIS_TOKEN', ExitCode.Usage);
  return (await issueToken(config, configPath, { client: auth.asClient, scopes: [] })).accessToken;
}

/**
 * A refusal from the API, said in terms of what was asked. The body is `{ error, message }`; a 404
 * on an id is named as such rather than showing whatever the server says about its routes.
 */
function refusal(
  action: ApprovalAction,
  id: string | undefined,
  res: { status: number; body: Record<string, unknown> },
  endpoint: Endpoint,
  configPath: string,
): CliError {
  const what = action === ApprovalAction.List ? 'listing approvals' : `${action === ApprovalAction.Approve ? 'approving' : 'denying'} ${id ?? ''}`;
  const message = typeof res.body['message'] === 'string' ? res.body['message'] : '';
  const code = typeof res.body['error'] === 'string' ? ` ${res.body['error']}` : '';
  switch (res.status) {
    case 401:
      return new CliError(
        `${what} refused: the approval service did not accept the token (401): ${message || 'no reason given'}; authenticate as an approver with --as-client ID, --token TOKEN or $PORTCULLIS_TOKEN`,
      );
    case 403:
      return new CliError(`${what} refused (403${code}): ${message || 'you may not decide it'}`);
    case 404:
      return action === ApprovalAction.List
        ? new CliError(`${endpoint.url}/approvals answered 404: does ${endpoint.configKey} (${setBy(endpoint, configPath)}) point at the approval role?`)
        : new CliError(
            `no approval ${id ?? ''} (or you may not see it): it may have ended and been forgotten — 'portcullis approvals list' shows what you can decide`,
          );
    default:
      return new CliError(`${what} refused (${res.status}${code})${message === '' ? '' : `: ${message}`}`);
  }
}

/** The REST representation of an approval (libs/approval `view`), as far as the CLI reads it. */
interface ApprovalView {
  id?: string;
  state?: string;
  what?: string;
  rule?: string;
  policyVersion?: string;
  message?: string;
  requester?: { subject?: string; clientId?: string };
  requirement?: { quorum?: number; approverGroups?: string[] };
  requestedAt?: string;
  expiresAt?: string;
  approvals?: unknown[];
}

const HEADERS = ['ID', 'STATE', 'REQUESTER', 'REQUEST', 'RULE', 'APPROVALS', 'EXPIRES'] as const;
const WIDE_HEADERS = [...HEADERS, 'REQUESTED-AT', 'EXPIRES-AT', 'CLIENT', 'APPROVERS', 'POLICY', 'MESSAGE'] as const;

/** `approvals list` as a table; a sentence when there is nothing to show. */
export function approvalsTable(list: readonly ApprovalView[], wide: boolean, now = Date.now()): string {
  if (list.length === 0) return 'no pending approvals you can decide\n';
  const rows = list.map((a) => {
    const row = [
      a.id ?? '',
      a.state ?? '',
      a.requester?.subject ?? '',
      a.what ?? '',
      a.rule ?? '',
      `${a.approvals?.length ?? 0}/${a.requirement?.quorum ?? 1}`,
      remaining(a.expiresAt, now),
    ];
    if (!wide) return row;
    return [
      ...row,
      a.requestedAt ?? '',
      a.expiresAt ?? '',
      a.requester?.clientId ?? '',
      (a.requirement?.approverGroups ?? []).join(','),
      a.policyVersion ?? '',
      a.message ?? '',
    ];
  });
  return `${renderTable(wide ? WIDE_HEADERS : HEADERS, rows).lines.join('\n')}\n`;
}

/** `in 4m12s`, `expired`: how long an approval stays open. */
function remaining(expiresAt: string | undefined, now: number): string {
  const at = expiresAt === undefined ? NaN : Date.parse(expiresAt);
  if (!Number.isFinite(at)) return '';
  const s = Math.round((at - now) / 1000);
  if (s <= 0) return 'expired';
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  return `in ${h > 0 ? `${h}h${m}m` : m > 0 ? `${m}m${sec}s` : `${sec}s`}`;
}

function decisionLine(a: ApprovalView): string {
  const state = String(a.state);
  const detail =
    state === 'pending'
      ? ` (${a.approvals?.length ?? 0} of ${a.requirement?.quorum ?? 1} approvals so far)`
      : state === 'granted'
        ? ': the held request may proceed'
        : '';
  return `approval ${String(a.id)} is ${state}${detail}\n`;
}
