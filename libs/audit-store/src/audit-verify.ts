/**
 * `portcullis audit verify`: recomputes the hash chains ({@link AuditChain}) from the stored rows
 * and reports every gap, reordering and edited row, naming the event, the expected value and what
 * was found. Works on any {@link ChainReader} (ClickHouse, SQLite); memory is bounded per chain
 * (a page of rows plus a window of recent hashes).
 */
import { AUDIT_COLUMNS, ColumnKind, rowEnvelope, toAuditRow, toAuditRowOfWire, type AuditColumnName, type AuditRow } from './audit-row.js';
import { eventHash, parseChainId } from './audit-chain.js';
import type { AuditSink, ChainFilter, ChainReader, ChainSummary } from './audit-sink.port.js';
import { checkpointProblem, type Checkpoint, type CheckpointSet } from './audit-checkpoint.js';
import type { KeyObject } from 'node:crypto';
import { EventType, type EventEnvelope } from '@portcullis/contracts';

/** What kind of problem a finding is. */
export const FindingKind = {
  /** The row's content does not match its signed hash, or a column differs from the signed content. */
  Edited: 'edited',
  /** Chain positions are missing (deleted rows, or events the producer lost). */
  Gap: 'gap',
  /** An event is stored at another position or time than it was signed with, or chained elsewhere. */
  Reordered: 'reordered',
  /** Two different events claim the same chain position. */
  Duplicate: 'duplicate',
  /** An event's `prev_hash` matches no event of its chain: its predecessor was replaced. */
  BrokenLink: 'broken_link',
  /** The stored envelope cannot be parsed. */
  Unreadable: 'unreadable',
  /** A row without a chain, of a type that was already chained when it was stored: inserted by hand or stripped of its chain. */
  Unchained: 'unchained',
  /** A checkpoint is refused: unreadable, signed by an unknown key, or its signature does not verify. */
  Checkpoint: 'checkpoint',
} as const;
export type FindingKind = (typeof FindingKind)[keyof typeof FindingKind];

/** One problem, precise enough to act on. */
export interface VerifyFinding {
  kind: FindingKind;
  chainId: string;
  /** The stored chain position of the event concerned. */
  seq: number;
  eventId: string;
  /** One line: which event, what was expected, what was found. */
  message: string;
}

/** One chain as checked. */
export interface ChainCheck {
  chainId: string;
  nodeId: string;
  fromSeq: number;
  toSeq: number;
  events: number;
  /** The hash of the last event checked: anchor it elsewhere to detect truncation later. */
  headHash: string;
}

/** The verification result; `findings` empty means the checked log is intact. */
export interface VerifyReport {
  chains: ChainCheck[];
  findings: VerifyFinding[];
  eventsChecked: number;
  /**
   * Rows in the window that carry no chain and are older than the first chained row of their
   * type (stored before chaining existed). Newer unchained rows are findings instead.
   */
  unchained: number;
  /** Facts that are not failures (e.g. a chain's head dropped by retention). */
  notes: string[];
  /** Chains whose stored end was checked against their newest valid checkpoint. */
  checkpointedChains: number;
}

/** Options of {@link verifyAuditLog}. */
export interface VerifyOptions extends ChainFilter {
  /** Rows fetched per query (default 10,000). */
  pageSize?: number;
  /** Recent hashes remembered per chain to recognise a reordering (default 4096). */
  lookback?: number;
  /** The signed checkpoints and the keys trusted to sign them: the stored end of each chain is checked against its newest checkpoint. */
  checkpoints?: { set: CheckpointSet; trusted: ReadonlyMap<string, KeyObject> };
}

// Compared between the stored row and the row rebuilt from the signed envelope. event_time is
// derived from ts_ms (and not read back from ClickHouse); payload_pb (or, on rows from before
// migration 5, payload_json) is the signed content itself.
const COMPARED = AUDIT_COLUMNS.filter((c) => c.name !== 'event_time' && c.name !== 'payload_json' && c.name !== 'payload_pb');
const ORDER_COLUMNS = new Set<AuditColumnName>(['chain_seq', 'ts_ms']);

/** Recomputes the chains the filter selects and reports every inconsistency. */
export async function verifyAuditLog(sink: ChainReader & Pick<AuditSink, 'query'>, options: VerifyOptions = {}): Promise<VerifyReport> {
  const pageSize = options.pageSize ?? 10_000;
  const lookback = options.lookback ?? 4096;
  const report: VerifyReport = { chains: [], findings: [], eventsChecked: 0, unchained: 0, notes: [], checkpointedChains: 0 };
  const retainedFromMs = await retentionBoundary(sink);
  report.unchained = await sink.unchainedCount(options);
  if (report.unchained > 0) await findUnchained(sink, options, report);
  const summaries = await sink.chains(options);
  for (const summary of summaries) {
    await verifyChain(sink, summary, retainedFromMs, pageSize, lookback, report);
  }
  if (options.checkpoints !== undefined) await checkCheckpoints(sink, options, options.checkpoints, summaries, retainedFromMs, report);
  return report;
}

/**
 * Checks the stored end of each chain against its newest valid checkpoint: events the checkpoint
 * says were acknowledged but are not stored are named as a gap (a deleted tail), a stored head
 * that differs as edited. Refused checkpoints (unreadable, unknown key, bad signature) are findings.
 * Only for whole chains: a window (session, request, time) does not reach the chains' ends.
 */
async function checkCheckpoints(
  sink: ChainReader,
  filter: VerifyOptions,
  { set, trusted }: NonNullable<VerifyOptions['checkpoints']>,
  summaries: readonly ChainSummary[],
  retainedFromMs: number,
  report: VerifyReport,
): Promise<void> {
  const refuse = (c: Checkpoint | undefined, message: string): void => {
    report.findings.push({ kind: FindingKind.Checkpoint, chainId: c?.chainId ?? '', seq: c?.seq ?? 0, eventId: '', message: `checkpoint: ${message}` });
  };
  for (const line of set.unreadable) refuse(undefined, `refused ${line}`);
  if (filter.sessionId !== undefined || filter.correlationId !== undefined || filter.sinceMs !== undefined || filter.untilMs !== undefined) {
    report.notes.push('checkpoints not checked: the window covers only part of the chains (no --session, --request, --since, --until for that)');
    return;
  }
  const newest = new Map<string, Checkpoint>();
  for (const c of set.checkpoints) {
    const problem = checkpointProblem(c, trusted);
    if (problem !== undefined) {
      refuse(c, `refused the checkpoint of chain ${c.chainId} at seq ${c.seq} (${c.role} ${c.nodeId}, ${isoOf(c.signedAtMs)}): ${problem}`);
      continue;
    }
    if (filter.nodeId !== undefined && parseChainId(c.chainId)?.nodeId !== filter.nodeId) continue;
    const known = newest.get(c.chainId);
    if (known === undefined || known.seq < c.seq) newest.set(c.chainId, c);
  }
  const byId = new Map(summaries.map((s) => [s.chainId, s]));
  for (const c of newest.values()) {
    const summary = byId.get(c.chainId);
    const by = `the checkpoint signed by ${c.role} ${c.nodeId} at ${isoOf(c.signedAtMs)} says the chain reached seq ${c.seq} (head ${c.hash})`;
    report.checkpointedChains++;
    if (summary === undefined) {
      const started = parseChainId(c.chainId)?.startedAtMs;
      if (started !== undefined && started < retainedFromMs) continue; // the whole segment was older than the retention cutoff
      report.findings.push({
        kind: FindingKind.Gap,
        chainId: c.chainId,
        seq: 1,
        eventId: '',
        message: `gap: ${c.seq} event${c.seq === 1 ? '' : 's'} missing at seq 1${c.seq > 1 ? `..${c.seq}` : ''} of chain ${c.chainId}: none is stored, but ${by}`,
      });
    } else if (summary.maxSeq < c.seq) {
      const missing = c.seq - summary.maxSeq;
      report.findings.push({
        kind: FindingKind.Gap,
        chainId: c.chainId,
        seq: summary.maxSeq + 1,
        eventId: '',
        message: `gap: ${missing} event${missing === 1 ? '' : 's'} missing at seq ${summary.maxSeq + 1}${missing > 1 ? `..${c.seq}` : ''} of chain ${c.chainId} (its tail): the store ends at seq ${summary.maxSeq}, but ${by}`,
      });
    } else {
      const [row] = await sink.chainRows(c.chainId, c.seq, c.seq);
      if (row !== undefined && signedHash(row) !== c.hash) {
        report.findings.push({
          kind: FindingKind.Edited,
          chainId: c.chainId,
          seq: c.seq,
          eventId: row.event_id,
          message: `edited: event ${row.event_id} (${row.type}, chain ${c.chainId} seq ${c.seq}) was signed with ${signedHash(row)}, but ${by}`,
        });
      }
    }
  }
  const bare = summaries.filter((s) => !newest.has(s.chainId)).length;
  if (bare > 0) report.notes.push(`${bare} chain${bare === 1 ? ' has' : 's have'} no checkpoint yet: deleting their last events would not be detected`);
}

/** Most rows without a chain named per event type; the rest are counted. */
const MAX_UNCHAINED_NAMED = 1000;

/**
 * Rows without a chain stored after their type was first chained: not from before chaining, so
 * they were inserted by hand (a forged approval, say) or stripped of their chain fields.
 */
async function findUnchained(sink: ChainReader, filter: ChainFilter, report: VerifyReport): Promise<void> {
  for (const { type, sinceMs } of await sink.chainingStarted()) {
    const rows = await sink.unchainedRows(filter, type, sinceMs, MAX_UNCHAINED_NAMED);
    for (const row of rows) {
      report.findings.push({
        kind: FindingKind.Unchained,
        chainId: '',
        seq: 0,
        eventId: row.event_id,
        message:
          `unchained: event ${row.event_id} (${row.type}, ${isoOf(row.ts_ms)}) carries no hash chain, but ${type} events are chained since ` +
          `${isoOf(sinceMs)}: it was stored outside any chain (inserted by hand, or stripped of its chain)`,
      });
    }
    report.unchained -= rows.length;
  }
  report.unchained = Math.max(0, report.unchained);
}

/** The latest `dropped_before_ms` of the retention events: older chain heads may be gone legitimately. */
async function retentionBoundary(sink: Pick<AuditSink, 'query'>): Promise<number> {
  let boundary = 0;
  for (const row of await sink.query({ type: EventType.AuditRetentionApplied, limit: 100_000 })) {
    try {
      const event = rowEnvelope(row);
      if (event.payload.case === 'auditRetentionApplied') boundary = Math.max(boundary, event.payload.value.droppedBeforeMs);
    } catch {
      // an unreadable retention event is reported by the chain walk; it cannot widen the boundary
    }
  }
  return boundary;
}

interface Link {
  seq: number;
  eventId: string;
}

async function verifyChain(
  sink: ChainReader,
  summary: ChainSummary,
  retainedFromMs: number,
  pageSize: number,
  lookback: number,
  report: VerifyReport,
): Promise<void> {
  const { chainId } = summary;
  const reported = new Set<string>();
  const add = (kind: FindingKind, row: AuditRow, message: string): void => {
    // One finding per event and kind (the first, most specific one).
    const key = `${row.event_id}\0${kind}`;
    if (reported.has(key)) return;
    reported.add(key);
    report.findings.push({ kind, chainId, seq: row.chain_seq, eventId: row.event_id, message: `${kind}: ${message}` });
  };
  const recent = new Map<string, Link>();
  const remember = (hash: string, link: Link): void => {
    recent.set(hash, link);
    if (recent.size > lookback) recent.delete(recent.keys().next().value!);
  };
  // Events whose prev_hash pointed forward, waiting for the event that has that hash.
  const waiting = new Map<string, AuditRow>();

  let lastSeq = summary.minSeq - 1;
  let lastHash: string | undefined;
  let lastEvent = '';
  if (summary.minSeq > 1) {
    const [before] = await sink.chainRows(chainId, summary.minSeq - 1, summary.minSeq - 1);
    if (before !== undefined) {
      lastHash = signedHash(before);
      lastEvent = before.event_id;
      remember(lastHash, { seq: before.chain_seq, eventId: before.event_id });
    } else {
      const started = parseChainId(chainId)?.startedAtMs;
      if (started !== undefined && started < retainedFromMs) {
        report.notes.push(
          `chain ${chainId} begins at seq ${summary.minSeq}: its earlier events were older than the retention cutoff ${new Date(retainedFromMs).toISOString()}`,
        );
      } else {
        report.findings.push({
          kind: FindingKind.Gap,
          chainId,
          seq: summary.minSeq,
          eventId: '',
          message: `gap: chain ${chainId} has no events at seq 1..${summary.minSeq - 1}; the first stored event is at seq ${summary.minSeq}`,
        });
      }
    }
  }

  let checked = 0;
  let head = '';
  for (let from = summary.minSeq; from <= summary.maxSeq; from += pageSize) {
    const rows = await sink.chainRows(chainId, from, Math.min(summary.maxSeq, from + pageSize - 1));
    for (const row of rows) {
      checked++;
      let event: EventEnvelope;
      try {
        event = rowEnvelope(row);
      } catch (err) {
        const column = row.payload_pb.length > 0 ? 'payload_pb' : 'payload_json';
        add(
          FindingKind.Unreadable,
          row,
          `event ${row.event_id} (chain ${chainId} seq ${row.chain_seq}): ${column} is not an event envelope (${(err as Error).message})`,
        );
        lastSeq = row.chain_seq;
        lastHash = undefined;
        continue;
      }
      const where = `event ${row.event_id} (${row.type}, chain ${chainId} seq ${row.chain_seq})`;
      const recomputed = eventHash(event);
      if (recomputed !== event.hash) {
        add(FindingKind.Edited, row, `${where}: its content hashes to ${recomputed}, but it was signed with ${event.hash || '(no hash)'}`);
      } else if (row.hash !== event.hash) {
        add(FindingKind.Edited, row, `${where}: column hash is ${row.hash || '(empty)'}, the signed envelope says ${event.hash}`);
      }
      const expected = row.payload_pb.length > 0 ? toAuditRowOfWire(event, row.payload_pb) : toAuditRow(event);
      const differing = COMPARED.filter((c) => !sameValue(row[c.name], expected[c.name], c.kind));
      const moved = differing.filter((c) => ORDER_COLUMNS.has(c.name));
      const edited = differing.filter((c) => !ORDER_COLUMNS.has(c.name));
      if (moved.length > 0) {
        add(
          FindingKind.Reordered,
          row,
          `${where}: stored at seq ${row.chain_seq}, time ${isoOf(row.ts_ms)}, but signed as seq ${expected.chain_seq}, time ${isoOf(expected.ts_ms)}`,
        );
      }
      if (edited.length > 0) {
        const what = edited.map((c) => `column ${c.name} is ${show(row[c.name])}, the signed event says ${show(expected[c.name])}`).join('; ');
        add(FindingKind.Edited, row, `${where}: ${what}`);
      }

      const hash = event.hash;
      if (row.chain_seq === lastSeq && lastEvent !== row.event_id) {
        add(FindingKind.Duplicate, row, `${where}: seq ${row.chain_seq} is already taken by event ${lastEvent}`);
        continue;
      }
      if (row.chain_seq > lastSeq + 1 && (lastSeq > 0 || row.chain_seq > 1)) {
        const missing = row.chain_seq - lastSeq - 1;
        add(
          FindingKind.Gap,
          row,
          `${missing} event${missing === 1 ? '' : 's'} missing at seq ${lastSeq + 1}${missing > 1 ? `..${row.chain_seq - 1}` : ''} of chain ${chainId}, before ${where}`,
        );
        lastHash = undefined; // the predecessor is gone: the link cannot be checked
      }
      if (row.chain_seq === 1 && lastSeq === 0) {
        if (event.prevHash !== '') add(FindingKind.BrokenLink, row, `${where}: the genesis event must have an empty prev_hash, found ${event.prevHash}`);
      } else if (lastHash !== undefined && event.prevHash !== lastHash) {
        const target = recent.get(event.prevHash);
        if (target !== undefined) {
          add(
            FindingKind.Reordered,
            row,
            `${where} is chained after event ${target.eventId} (seq ${target.seq}), but is stored after event ${lastEvent} (seq ${lastSeq})`,
          );
        } else {
          waiting.set(event.prevHash, row);
        }
      }
      const pointed = waiting.get(hash);
      if (pointed !== undefined) {
        waiting.delete(hash);
        add(
          FindingKind.Reordered,
          pointed,
          `event ${pointed.event_id} (chain ${chainId} seq ${pointed.chain_seq}) is chained after event ${row.event_id}, which is stored later, at seq ${row.chain_seq}`,
        );
      }
      remember(hash, { seq: row.chain_seq, eventId: row.event_id });
      lastSeq = row.chain_seq;
      lastHash = hash;
      lastEvent = row.event_id;
      head = hash;
    }
  }
  for (const [prevHash, row] of waiting) {
    add(
      FindingKind.BrokenLink,
      row,
      `event ${row.event_id} (${row.type}, chain ${chainId} seq ${row.chain_seq}) follows an event hashing to ${prevHash}, which is not in the chain (its predecessor was replaced or removed)`,
    );
  }
  report.eventsChecked += checked;
  report.chains.push({ chainId, nodeId: summary.nodeId, fromSeq: summary.minSeq, toSeq: summary.maxSeq, events: checked, headHash: head });
}

function isoOf(ms: number): string {
  return Number.isFinite(ms) && ms >= 0 && ms <= 8.64e15 ? new Date(ms).toISOString() : String(ms);
}

function signedHash(row: AuditRow): string {
  try {
    return rowEnvelope(row).hash;
  } catch {
    return row.hash;
  }
}

function sameValue(a: unknown, b: unknown, kind: ColumnKind): boolean {
  if (kind === ColumnKind.StringArray) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => v === b[i]);
  }
  return a === b;
}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** One line per finding and a summary, for the CLI. */
export function formatVerifyReport(report: VerifyReport): string[] {
  const lines = report.findings.map((f) => f.message);
  for (const note of report.notes) lines.push(`note: ${note}`);
  if (report.unchained > 0) lines.push(`note: ${report.unchained} events in the window carry no hash chain (stored before chaining); they were not verified`);
  const verdict = report.findings.length === 0 ? 'OK' : `FAILED: ${report.findings.length} problem${report.findings.length === 1 ? '' : 's'}`;
  lines.push(`${verdict} — ${report.eventsChecked} events in ${report.chains.length} chain${report.chains.length === 1 ? '' : 's'} checked`);
  if (report.checkpointedChains > 0)
    lines.push(`  the end of ${report.checkpointedChains} chain${report.checkpointedChains === 1 ? '' : 's'} checked against signed checkpoints`);
  for (const c of report.chains) lines.push(`  chain ${c.chainId}: seq ${c.fromSeq}..${c.toSeq}, ${c.events} events, head ${c.headHash || '-'}`);
  return lines;
}
