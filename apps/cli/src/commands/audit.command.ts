import { existsSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { PortcullisConfig } from '@portcullis/config';
import { createLogger, silentLogger } from '@portcullis/common';
import {
  AuditChain,
  chainedRecorder,
  formatAuditRowJson,
  auditRowTarget,
  formatBytes,
  formatReplayEvent,
  formatRetentionPlan,
  formatVerifyReport,
  loadTimeline,
  ocsfRecord,
  OcsfRequestMerger,
  rowForJson,
  runRetention,
  SqliteAuditSink,
  verifyAuditLog,
  cliReader,
  EvidenceAction,
  EvidenceReadRecorder,
  type AuditRow,
  type AuditSink,
  type RetentionPlan,
  type VerifyReport,
} from '@portcullis/audit-store';
import {
  FileCheckpointStore,
  StreamCheckpointStore,
  keyId,
  loadSigningKey,
  loadTrustedKeys,
  parseCheckpointLines,
  type CheckpointSet,
} from '@portcullis/audit-store/pure';
import { connectNats } from '@portcullis/bus';
import { checkpointCliHeads } from '../checkpoint-heads.js';
import { CliError, ExitCode } from '../cli-error.js';
import { configOption, withExamples } from '../command-help.js';
import { loadCliConfig } from '../config-file.js';
import { readTextFile } from '../gateway-endpoints.js';
import { jsonAliasOption, OutputFormat, outputFormat, outputOption, renderTable, renderTableRows, toYaml } from '../output.js';
import { parseTimeArg, TIME_FORMS } from '../time-arg.js';

/** The most rows `audit tail --limit` shows. */
const MAX_TAIL_LIMIT = 100_000;
/** How often `audit tail --follow` asks the store for new events. */
const FOLLOW_POLL_MS = 500;

/** `portcullis audit tail|replay|verify|export|retention`. */
export function createAuditCommand(): Command {
  const audit = new Command('audit')
    .summary('read, verify, export and trim the audit log')
    .description('Reads the audit store the config points at: the SQLite file in the embedded mode, ClickHouse in cluster mode.');
  audit.addCommand(tailCommand());
  audit.addCommand(replayCommand());
  audit.addCommand(verifyCommand());
  audit.addCommand(exportCommand());
  audit.addCommand(retentionCommand());
  audit.addCommand(checkpointsCommand());
  return withExamples(audit, [['portcullis audit tail --since 1h', 'what the gateway recorded in the last hour']]);
}

/** Only the long-running commands stop cleanly on Ctrl-C; the others just end. */
function stopOnSigint(): () => boolean {
  let stop = false;
  process.once('SIGINT', () => (stop = true));
  return () => stop;
}

function tailCommand(): Command {
  const command = new Command('tail')
    .summary('recent events, then new ones with --follow')
    .description(
      'Prints recent audit events, oldest first, then with --follow new ones as they are stored. A table like kubectl get, or one JSON object per line.',
    )
    .option('-f, --follow', `keep printing new events as they are stored (polls every ${FOLLOW_POLL_MS} ms; Ctrl-C stops)`)
    .option('--since <time>', `the oldest event to show: ${TIME_FORMS}`, '10m')
    .option('--limit <n>', `show at most the newest N events of the window, 1-${MAX_TAIL_LIMIT}`, parseLimit, 200)
    .option('--request <audit-id>', "only this request's events (its Audit-Id response header)")
    .addOption(
      outputOption(
        [OutputFormat.Table, OutputFormat.Wide, OutputFormat.Json, OutputFormat.Yaml],
        'the events: wide adds the client, source address, bytes, duration, node and details; json is one object per line (ndjson); yaml one document per event',
      ),
    )
    .addOption(jsonAliasOption())
    .addOption(configOption())
    .action(
      async (opts: { follow?: boolean; since: string; limit: number; request?: string; output: string; json?: boolean; config?: string }, cmd: Command) => {
        const format = outputFormat(opts, cmd.getOptionValueSource('output') === 'cli');
        const sinceMs = parseTimeArg(opts.since, '--since');
        const stopped = stopOnSigint();
        const { config } = loadCliConfig(opts.config);
        const shown = await auditTailCommand(
          config,
          { follow: opts.follow === true, format, sinceMs, limit: opts.limit, request: opts.request },
          (l) => process.stdout.write(`${l}\n`),
          stopped,
        );
        // Like kubectl's "No resources found": said on stderr, so the table on stdout stays empty for scripts.
        if (shown === 0 && (format === OutputFormat.Table || format === OutputFormat.Wide)) {
          process.stderr.write(`no audit events since ${new Date(sinceMs).toISOString()}${opts.request !== undefined ? ` for request ${opts.request}` : ''}\n`);
        }
      },
    );
  return withExamples(command, [
    ['portcullis audit tail', 'the last 10 minutes, as a table'],
    ['portcullis audit tail -f --since 1h -o wide', 'the last hour, then new events as they land'],
    ['portcullis audit tail --request 2f0c5d1e-8a7b-4c3d-9e2f-1a0b3c4d5e6f -o json | jq .type', "one request's events as JSON"],
  ]);
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_TAIL_LIMIT) throw new InvalidArgumentError(`expected an integer 1-${MAX_TAIL_LIMIT}.`);
  return n;
}

function parseSpeed(value: string): number {
  const n = Number(value);
  if (!(Number.isFinite(n) && n > 0)) throw new InvalidArgumentError('expected a positive number (2 = twice as fast).');
  return n;
}

function replayCommand(): Command {
  const command = new Command('replay')
    .summary('the timeline of a session or of one request')
    .description(
      "Prints the timeline of a session, or of one request: each event with its offset from the first. The audit role's replay API serves the same JSON.",
    )
    .argument('<id>', "a session id, or a request's Audit-Id")
    .option('--speed <factor>', 'replay at the recorded pace divided by this: 1 = as it happened, 2 = twice as fast (default: everything at once)', parseSpeed)
    .addOption(outputOption([OutputFormat.Text, OutputFormat.Json, OutputFormat.Yaml], 'the timeline'))
    .addOption(jsonAliasOption())
    .addOption(configOption())
    .action(async (id: string, opts: { speed?: number; output: string; json?: boolean; config?: string }, cmd: Command) => {
      const format = outputFormat(opts, cmd.getOptionValueSource('output') === 'cli');
      const stopped = stopOnSigint();
      const { config } = loadCliConfig(opts.config);
      await auditReplayCommand(config, id, { format, speed: opts.speed }, (l) => process.stdout.write(`${l}\n`), stopped);
    });
  return withExamples(command, [
    ['portcullis audit replay 2f0c5d1e-8a7b-4c3d-9e2f-1a0b3c4d5e6f', 'what happened to one request (its Audit-Id)'],
    ['portcullis audit replay <session-id> --speed 10', 'a session at ten times its recorded pace'],
  ]);
}

function verifyCommand(): Command {
  const command = new Command('verify')
    .summary('find edited, deleted or reordered events (hash chains)')
    .description(
      'Recomputes the hash chains of the audit log and names every edited, deleted or reordered event. Exit code 1 when it finds any (as text, printed on stderr).',
    )
    .option('--session <id>', 'only the chains holding this session')
    .option('--request <audit-id>', 'only the chains holding this request')
    .option('--since <time>', `only events from this time: ${TIME_FORMS} (default: the beginning)`)
    .option('--until <time>', `only events before this time, same forms as --since (default: now)`)
    .option('--node <id>', "only this node's chains (node.id of the edge that wrote them)")
    .option('--checkpoints <file>', 'check the chains against these exported checkpoints (audit checkpoints > FILE) instead of the stored ones')
    .addOption(outputOption([OutputFormat.Text, OutputFormat.Json, OutputFormat.Yaml], 'the report'))
    .addOption(jsonAliasOption())
    .addOption(configOption())
    .action(
      async (
        opts: {
          session?: string;
          request?: string;
          since?: string;
          until?: string;
          node?: string;
          checkpoints?: string;
          output: string;
          json?: boolean;
          config?: string;
        },
        cmd: Command,
      ) => {
        const format = outputFormat(opts, cmd.getOptionValueSource('output') === 'cli');
        const window = {
          ...(opts.since !== undefined ? { sinceMs: parseTimeArg(opts.since, '--since') } : {}),
          ...(opts.until !== undefined ? { untilMs: parseTimeArg(opts.until, '--until') } : {}),
        };
        const { config } = loadCliConfig(opts.config);
        const r = await auditVerifyCommand(config, {
          session: opts.session,
          request: opts.request,
          node: opts.node,
          checkpointsFile: opts.checkpoints,
          ...window,
          format,
        });
        // Data goes to stdout either way (the exit code says whether it found problems); the text's problems to stderr.
        (r.ok || format !== OutputFormat.Text ? process.stdout : process.stderr).write(r.output);
        process.exitCode = r.ok ? ExitCode.Ok : ExitCode.Failure;
      },
    );
  return withExamples(command, [
    ['portcullis audit verify', 'every chain in the store'],
    ['portcullis audit verify --since 7d --node edge-1 -o json', "one edge's last week, as data"],
  ]);
}

function exportCommand(): Command {
  const command = new Command('export')
    .summary('a window of the log as ndjson or OCSF')
    .description('Streams a window of the audit log to stdout, page by page (memory stays bounded however large the window).')
    .requiredOption('--since <time>', `the start of the window: ${TIME_FORMS}`)
    .option('--until <time>', 'the end of the window, same forms as --since (default: now)')
    .addOption(
      new Option('--format <format>', 'ndjson: one audit row per line; ocsf: one OCSF API Activity (class 6003) record per request, see docs/ocsf.md')
        .choices(['ndjson', 'ocsf'])
        .default('ndjson'),
    )
    .addOption(configOption())
    .action(async (opts: { since: string; until?: string; format: 'ndjson' | 'ocsf'; config?: string }) => {
      const sinceMs = parseTimeArg(opts.since, '--since');
      const untilMs = opts.until !== undefined ? parseTimeArg(opts.until, '--until') : undefined;
      const { config } = loadCliConfig(opts.config);
      const out = process.stdout;
      await auditExportCommand(config, { sinceMs, untilMs, format: opts.format }, (line) =>
        out.write(`${line}\n`) ? undefined : new Promise<void>((r) => out.once('drain', () => r())),
      );
    });
  return withExamples(command, [
    ['portcullis audit export --since 24h > audit.ndjson', 'the last day, one row per line'],
    ['portcullis audit export --since 2026-06-01 --until 2026-07-01 --format ocsf', 'June as OCSF records for a SIEM'],
  ]);
}

function retentionCommand(): Command {
  const command = new Command('retention')
    .summary('drop the months older than audit.retention')
    .description(
      'Drops the whole months older than audit.retention, after recording the run as an audit.retention_applied event. The audit role does this on its own; this runs it now.',
    )
    .option('--dry-run', 'show what would be dropped; drop nothing')
    .addOption(outputOption([OutputFormat.Text, OutputFormat.Json, OutputFormat.Yaml], 'the plan (times in epoch ms in json and yaml)'))
    .addOption(configOption())
    .action(async (opts: { dryRun?: boolean; output: string; config?: string }) => {
      const { config } = loadCliConfig(opts.config);
      const dryRun = opts.dryRun === true;
      const r = await auditRetentionCommand(config, { dryRun });
      const format = opts.output as OutputFormat;
      const data = { dryRun, ...r.plan };
      process.stdout.write(
        format === OutputFormat.Json ? `${JSON.stringify(data)}\n` : format === OutputFormat.Yaml ? toYaml(data) : `${r.lines.join('\n')}\n`,
      );
    });
  return withExamples(command, [['portcullis audit retention --dry-run', 'which months the configured retention would drop']]);
}

/**
 * Records a read of the audit log as an `evidence.read` event on the configured log (JetStream, or
 * the embedded SQLite log) before anything is printed: a read that cannot be recorded is not made.
 */
async function recordCliRead(config: PortcullisConfig, action: EvidenceAction, query: Record<string, unknown>, results: number): Promise<void> {
  const { connectProcessBus } = await import('../../../runtime/src/process-bus.js');
  const { reader, source } = cliReader();
  try {
    const { cliBusRole } = await import('../../../runtime/src/nats-options.js');
    const platform = await connectProcessBus(config, 'cli', [cliBusRole(config.bus.nats)], silentLogger);
    try {
      const reads = new EvidenceReadRecorder(platform.log, config.node.id);
      await reads.record({ reader, action, via: 'cli', query, results, source });
      await checkpointCliHeads(config, platform.log, reads.takeHeads(), 'this read record');
    } finally {
      await platform.close();
    }
  } catch (err) {
    const why = err instanceof Error ? (err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message) : String(err);
    throw new CliError(`this read of the audit log could not be recorded, so nothing was read out (${why})`, ExitCode.Failure, { cause: err });
  }
}

/** Opens the audit store the config points at, for reading. */
export async function openAuditReader(config: PortcullisConfig): Promise<AuditSink> {
  if (config.bus.mode === 'embedded' || config.audit.sink === 'sqlite') {
    if (!existsSync(config.audit.sqlite.file))
      throw new CliError(`no audit store at ${config.audit.sqlite.file} yet: start the gateway (npm start) and send a request`);
    const sink = new SqliteAuditSink({ path: config.audit.sqlite.file });
    // A store written by an older version gains the new columns (idempotent, serialized).
    await sink.migrate();
    return sink;
  }
  const ch = config.audit.clickhouse;
  const { ClickHouseAuditSink } = await import('@portcullis/audit-store');
  return new ClickHouseAuditSink({ url: ch.url, database: ch.database, username: ch.username, password: ch.password });
}

/**
 * The keys whose checkpoints verify trusts: `audit.checkpoints.publicKeys`, and the public half of
 * `audit.checkpoints.signingKeyFile` when this host has it (the embedded mode's state directory).
 */
export function trustedCheckpointKeys(config: PortcullisConfig): ReturnType<typeof loadTrustedKeys> {
  const c = config.audit.checkpoints;
  try {
    return loadTrustedKeys([...c.publicKeys, ...(existsSync(c.signingKeyFile) ? [c.signingKeyFile] : [])]);
  } catch (err) {
    throw new CliError((err as Error).message, ExitCode.Failure, { cause: err });
  }
}

/** The stored checkpoints: the embedded mode's file, or the cluster's PORTCULLIS_CHECKPOINTS stream. */
export async function readCheckpoints(config: PortcullisConfig): Promise<CheckpointSet> {
  if (config.bus.mode === 'embedded') return new FileCheckpointStore(config.audit.checkpoints.file).list();
  const nats = config.bus.nats;
  let handle: Awaited<ReturnType<typeof connectNats>>;
  try {
    const { cliBusRole, natsConnectOptions } = await import('../../../runtime/src/nats-options.js');
    handle = await connectNats({ ...natsConnectOptions(nats, [cliBusRole(nats)]), name: 'portcullis-cli-audit-checkpoints', logger: silentLogger });
  } catch (err) {
    throw new CliError(`cannot read the checkpoints: NATS at ${nats.servers.join(', ')} (bus.nats.servers): ${(err as Error).message}`, ExitCode.Failure, {
      cause: err,
    });
  }
  try {
    return await new StreamCheckpointStore(handle.log).list();
  } catch (err) {
    throw new CliError(`cannot read the checkpoints from the PORTCULLIS_CHECKPOINTS stream: ${(err as Error).message}`, ExitCode.Failure, { cause: err });
  } finally {
    await handle.close();
  }
}

function checkpointsCommand(): Command {
  const command = new Command('checkpoints')
    .summary('export the signed chain checkpoints (or this host’s public key)')
    .description(
      "Prints the signed checkpoints of the chains' heads, one JSON object per line, for safekeeping outside the gateway: `audit verify --checkpoints FILE` checks the log against such a copy. With --public-key, prints the public key of audit.checkpoints.signingKeyFile (PEM), to list in audit.checkpoints.publicKeys on the hosts that verify.",
    )
    .option('--public-key', 'print the public key of this host’s signing key instead')
    .addOption(configOption())
    .action(async (opts: { publicKey?: boolean; config?: string }) => {
      const { config } = loadCliConfig(opts.config);
      if (opts.publicKey === true) {
        let key;
        try {
          key = createPublicKey(loadSigningKey(config.audit.checkpoints.signingKeyFile, false));
        } catch (err) {
          throw new CliError((err as Error).message, ExitCode.Failure, { cause: err });
        }
        process.stderr.write(`key id ${keyId(key)}\n`);
        process.stdout.write(key.export({ type: 'spki', format: 'pem' }).toString());
        return;
      }
      const set = await readCheckpoints(config);
      for (const c of set.checkpoints) process.stdout.write(`${JSON.stringify(c)}\n`);
      for (const line of set.unreadable) process.stderr.write(`unreadable checkpoint: ${line}\n`);
      if (set.unreadable.length > 0) process.exitCode = ExitCode.Failure;
    });
  return withExamples(command, [
    ['portcullis audit checkpoints > checkpoints.jsonl', 'a copy to keep elsewhere'],
    ['portcullis audit verify --checkpoints checkpoints.jsonl', 'check the log against that copy'],
    ['portcullis audit checkpoints --public-key > edge-1.pub', 'the key to trust in audit.checkpoints.publicKeys'],
  ]);
}

/** `portcullis audit tail`: recent events, then (with --follow) new ones as they land; how many it printed. */
export async function auditTailCommand(
  config: PortcullisConfig,
  opts: { follow: boolean; format: OutputFormat; sinceMs: number; limit: number; request?: string | undefined },
  write: (line: string) => void,
  stopped: () => boolean,
): Promise<number> {
  const sink = await openAuditReader(config);
  const print = rowPrinter(opts.format, write);
  try {
    // The newest `limit` rows of the window: queries return oldest first.
    let rows: AuditRow[] = (
      await sink.query({
        sinceMs: opts.sinceMs,
        limit: MAX_TAIL_LIMIT,
        ...(opts.request !== undefined ? { correlationId: opts.request } : {}),
      })
    ).slice(-opts.limit);
    await recordCliRead(
      config,
      EvidenceAction.AuditTail,
      { sinceMs: opts.sinceMs, limit: opts.limit, follow: opts.follow, ...(opts.request !== undefined ? { request: opts.request } : {}) },
      rows.length,
    );
    let last: AuditRow | undefined;
    let shown = 0;
    for (;;) {
      print(rows);
      shown += rows.length;
      last = rows.at(-1) ?? last;
      if (!opts.follow || stopped()) return shown;
      await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
      if (stopped()) return shown;
      rows = await sink.query({
        ...(last !== undefined ? { afterTsMs: last.ts_ms, afterEventId: last.event_id } : { sinceMs: opts.sinceMs }),
        limit: 1000,
        ...(opts.request !== undefined ? { correlationId: opts.request } : {}),
      });
    }
  } finally {
    await sink.close();
  }
}

/** Prints batches of rows in one format; a table's header comes once, with the first rows. */
function rowPrinter(format: OutputFormat, write: (line: string) => void): (rows: readonly AuditRow[]) => void {
  switch (format) {
    case OutputFormat.Json:
      return (rows) => rows.forEach((row) => write(formatAuditRowJson(row)));
    case OutputFormat.Yaml:
      return (rows) => rows.forEach((row) => write(`---\n${toYaml(rowForJson(row)).trimEnd()}`));
    case OutputFormat.Table:
    case OutputFormat.Wide:
    case OutputFormat.Text: {
      const wide = format === OutputFormat.Wide;
      const headers = wide ? AUDIT_WIDE_HEADERS : AUDIT_HEADERS;
      let widths: number[] | undefined;
      return (rows) => {
        if (rows.length === 0) return;
        const cells = rows.map((row) => auditCells(row, wide));
        if (widths === undefined) {
          const table = renderTable(headers, cells);
          widths = table.widths;
          table.lines.forEach(write);
        } else {
          renderTableRows(headers, cells, widths).forEach(write);
        }
      };
    }
  }
}

const AUDIT_HEADERS = ['TIME', 'TYPE', 'CONNECTION', 'SUBJECT', 'REQUEST', 'RESULT', 'AUDIT-ID'] as const;
const AUDIT_WIDE_HEADERS = [...AUDIT_HEADERS, 'CLIENT', 'SOURCE', 'BYTES-IN', 'BYTES-OUT', 'DURATION', 'NODE', 'DETAIL'] as const;

/** One audit row as table cells: empty where the event type carries nothing. */
export function auditCells(row: AuditRow, wide: boolean): string[] {
  const decision = row.effect ? (row.rule_id ? `${row.effect} (${row.rule_id})` : row.effect) : '';
  const result = [decision, row.status ? String(row.status) : '', row.reason].filter(Boolean).join(' ');
  const cells = [new Date(row.ts_ms).toISOString(), row.type, row.connection, row.subject, auditRowTarget(row), result, row.correlation_id || row.event_id];
  if (!wide) return cells;
  const completed = row.type === 'request.completed';
  const detail = [
    row.decision_message ? `"${row.decision_message}"` : '',
    row.approval_id ? `approval ${row.approval_id}` : '',
    row.type.startsWith('identity.') && row.issuer ? `iss ${row.issuer}` : '',
    row.type.startsWith('identity.') && row.token_id ? `token ${row.token_id}` : '',
    row.error ? `error: ${row.error}` : '',
  ]
    .filter(Boolean)
    .join(' ');
  return [
    ...cells,
    row.client_id,
    row.source_ip,
    completed ? formatBytes(row.bytes_in) : '',
    completed ? formatBytes(row.bytes_out) : '',
    completed ? `${row.duration_ms} ms` : '',
    row.node_id,
    detail,
  ];
}

/** `portcullis audit verify`: recomputes the hash chains; exit 1 with one line per problem. */
export async function auditVerifyCommand(
  config: PortcullisConfig,
  opts: {
    session?: string | undefined;
    request?: string | undefined;
    sinceMs?: number;
    untilMs?: number;
    node?: string | undefined;
    checkpointsFile?: string | undefined;
    format: OutputFormat;
  },
): Promise<{ ok: boolean; output: string; report: VerifyReport }> {
  const sink = await openAuditReader(config);
  try {
    const set =
      opts.checkpointsFile !== undefined ? parseCheckpointLines(readTextFile(opts.checkpointsFile), opts.checkpointsFile) : await readCheckpoints(config);
    const report = await verifyAuditLog(sink, {
      checkpoints: { set, trusted: trustedCheckpointKeys(config) },
      ...(opts.session !== undefined ? { sessionId: opts.session } : {}),
      ...(opts.request !== undefined ? { correlationId: opts.request } : {}),
      ...(opts.node !== undefined ? { nodeId: opts.node } : {}),
      ...(opts.sinceMs !== undefined ? { sinceMs: opts.sinceMs } : {}),
      ...(opts.untilMs !== undefined ? { untilMs: opts.untilMs } : {}),
    });
    const { format: _format, ...query } = opts;
    await recordCliRead(config, EvidenceAction.AuditVerify, query, report.findings.length);
    const ok = report.findings.length === 0;
    const output =
      opts.format === OutputFormat.Json
        ? `${JSON.stringify(report)}\n`
        : opts.format === OutputFormat.Yaml
          ? toYaml(report)
          : `${formatVerifyReport(report).join('\n')}\n`;
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
  opts: { format: OutputFormat; speed?: number | undefined },
  write: (line: string) => void,
  stopped: () => boolean,
): Promise<void> {
  const sink = await openAuditReader(config);
  try {
    const timeline = await loadTimeline(sink, id);
    await recordCliRead(config, EvidenceAction.AuditReplay, { id }, timeline?.events.length ?? 0);
    if (timeline === undefined) throw new CliError(`no session or request ${JSON.stringify(id)} in the audit log`);
    if (opts.format === OutputFormat.Json) return write(JSON.stringify(timeline));
    if (opts.format === OutputFormat.Yaml) return write(toYaml(timeline).trimEnd());
    write(
      `${timeline.kind} ${id}: ${timeline.events.length} events from ${new Date(timeline.startedAtMs).toISOString()}${timeline.truncated ? ' (truncated)' : ''}`,
    );
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
  opts: { sinceMs: number; untilMs?: number | undefined; format: 'ndjson' | 'ocsf'; pageSize?: number },
  write: (line: string) => Promise<void> | void,
): Promise<number> {
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
    const window = { sinceMs: opts.sinceMs, ...(opts.untilMs !== undefined ? { untilMs: opts.untilMs } : {}) };
    // Streamed page by page: recorded before the first row, uncounted (-1).
    await recordCliRead(config, EvidenceAction.AuditExport, { ...window, format: opts.format }, -1);
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
  if (retention === undefined) throw new CliError('audit.retention is not set in this config: events are kept forever', ExitCode.Usage);
  const sink = await openAuditReader(config);
  try {
    if (opts.dryRun) {
      const plan = await runRetention(sink, { retentionMs: retention.ms, retentionText: retention.text, dryRun: true, nodeId: config.node.id });
      return { plan, lines: formatRetentionPlan(plan, true) };
    }
    // The configured log (JetStream, or the embedded SQLite log) without starting any role; on NATS as the audit role's user.
    const { connectProcessBus } = await import('../../../runtime/src/process-bus.js');
    const platform = await connectProcessBus(config, 'cli', ['audit'], createLogger({ base: { role: 'cli', node: config.node.id } }));
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
