/**
 * Replay: a session's (or one request's) timeline from the audit store — requests, decisions,
 * approvals, responses, exec frames — in time order with each event's offset from the start.
 * Event types this build does not know are shown generically from their stored envelope, so
 * new event types replay before the CLI learns about them.
 */
import type { AuditRow } from './audit-row.js';
import type { AuditSink } from './audit-sink.port.js';
import { cleanText, formatAuditRow } from './audit-format.js';

/** The envelope's own JSON keys; the one other key of `payload_json` is the payload. */
const ENVELOPE_KEYS = new Set([
  'id',
  'type',
  'schemaVersion',
  'occurredAtMs',
  'correlationId',
  'causationId',
  'sessionId',
  'nodeId',
  'connection',
  'prevHash',
  'hash',
  'chainSeq',
  'chainId',
]);

/** Types whose row columns say everything worth a line; others are printed from their payload. */
const KNOWN_TYPES = new Set(['request.received', 'request.decided', 'request.rejected', 'request.completed', 'audit.retention_applied']);

/** One event on the timeline. */
export interface ReplayEvent {
  /** Milliseconds from the timeline's start at which to show it (frame offsets honoured). */
  offsetMs: number;
  /** ISO 8601 time the event occurred. */
  time: string;
  type: string;
  eventId: string;
  correlationId: string;
  nodeId: string;
  /** One human line (control characters escaped). */
  summary: string;
  /** The stored row (without `payload_json` and `payload_pb`: the payload is below). */
  row: Omit<AuditRow, 'payload_json' | 'payload_pb'>;
  /** The event's payload as protobuf JSON (`{}` when it has none). */
  payload: Record<string, unknown>;
}

/** A session's or a request's events in time order. */
export interface ReplayTimeline {
  id: string;
  kind: 'session' | 'request';
  startedAtMs: number;
  events: ReplayEvent[];
  /** True when the timeline was cut at `maxEvents`. */
  truncated: boolean;
}

/** Where the audit role's HTTPS API serves timelines: `GET /v1/audit/replay/<session id or Audit-Id>`. */
export const REPLAY_API_PREFIX = '/v1/audit/replay/';

// Session ids and Audit-Ids: UUIDs and similar tokens, nothing that needs escaping.
const REPLAY_ID = /^[A-Za-z0-9_.:-]{1,200}$/;

/** Whether `id` can name a session or a request (checked before the store is asked). */
export function isReplayId(id: string): boolean {
  return REPLAY_ID.test(id);
}

/**
 * Loads the timeline of `id`: the session with that id, else the request (Audit-Id). Undefined
 * when neither has events. Reads page by page; at most `maxEvents` events.
 */
export async function loadTimeline(sink: Pick<AuditSink, 'query'>, id: string, maxEvents: number = 100_000): Promise<ReplayTimeline | undefined> {
  for (const kind of ['session', 'request'] as const) {
    const filter = kind === 'session' ? { sessionId: id } : { correlationId: id };
    const rows: AuditRow[] = [];
    let page = await sink.query({ ...filter, limit: Math.min(10_000, maxEvents) });
    while (page.length > 0) {
      rows.push(...page);
      if (rows.length >= maxEvents) break;
      const last = page.at(-1)!;
      page = await sink.query({ ...filter, afterTsMs: last.ts_ms, afterEventId: last.event_id, limit: Math.min(10_000, maxEvents - rows.length) });
    }
    if (rows.length > 0) return buildTimeline(id, kind, rows.slice(0, maxEvents), rows.length >= maxEvents);
  }
  return undefined;
}

/** Builds the timeline of rows already in (ts_ms, event_id) order. */
export function buildTimeline(id: string, kind: 'session' | 'request', rows: readonly AuditRow[], truncated = false): ReplayTimeline {
  const start = rows[0]?.ts_ms ?? 0;
  const requestStart = new Map<string, number>();
  const events = rows.map((row): ReplayEvent => {
    if (!requestStart.has(row.correlation_id)) requestStart.set(row.correlation_id, row.ts_ms);
    const payload = payloadOf(row.payload_json);
    // A frame carries its offset within its exec stream: place it there, not at its insert time.
    const frameOffset = numberField(payload, 'offsetMs');
    const offsetMs = frameOffset !== undefined ? requestStart.get(row.correlation_id)! - start + frameOffset : row.ts_ms - start;
    const { payload_json: _omit, payload_pb: _bytes, ...rest } = row;
    return {
      offsetMs,
      time: new Date(row.ts_ms).toISOString(),
      type: row.type,
      eventId: row.event_id,
      correlationId: row.correlation_id,
      nodeId: row.node_id,
      summary: KNOWN_TYPES.has(row.type) ? formatAuditRow(row) : genericSummary(row, payload),
      row: rest,
      payload,
    };
  });
  events.sort((a, b) => a.offsetMs - b.offsetMs);
  return { id, kind, startedAtMs: start, events, truncated };
}

/** The payload object of a stored envelope (the one non-envelope key), `{}` if none or unreadable. */
export function payloadOf(payloadJson: string): Record<string, unknown> {
  let envelope: unknown;
  try {
    envelope = JSON.parse(payloadJson);
  } catch {
    return {};
  }
  if (typeof envelope !== 'object' || envelope === null) return {};
  for (const [key, value] of Object.entries(envelope)) {
    if (!ENVELOPE_KEYS.has(key) && typeof value === 'object' && value !== null) return value as Record<string, unknown>;
  }
  return {};
}

function numberField(payload: Record<string, unknown>, name: string): number | undefined {
  const v = payload[name];
  const n = typeof v === 'number' ? v : typeof v === 'string' && v !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** An unknown type: its name and the payload's fields as `key=value` (long values cut). */
function genericSummary(row: AuditRow, payload: Record<string, unknown>): string {
  const fields = Object.entries(payload)
    .map(([k, v]) => {
      const text = typeof v === 'string' ? v : JSON.stringify(v);
      return `${k}=${text.length > 80 ? `${text.slice(0, 77)}...` : text}`;
    })
    .join(' ');
  return cleanText(`${new Date(row.ts_ms).toISOString()}  ${row.type.padEnd(17)}  ${fields}  Audit-Id=${row.correlation_id || row.event_id}`);
}

/** A timeline line: `+12.345s  <summary>`. */
export function formatReplayEvent(event: ReplayEvent): string {
  return `+${(event.offsetMs / 1000).toFixed(3)}s  ${event.summary}`;
}
