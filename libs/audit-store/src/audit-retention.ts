/**
 * Retention by whole months: ClickHouse 18.16 has no TTL, so the audit role (and
 * `portcullis audit retention`) drops every monthly partition whose events are all older than
 * the cutoff (now − `audit.retention`). The run is recorded as an `audit.retention_applied` event
 * **before** anything is dropped: no record, no deletion.
 */
import { buildEvent, create, AuditRetentionAppliedSchema, EventType, Subjects, type EventEnvelope } from '@portcullis/contracts';
import type { EventLog } from '@portcullis/bus/pure';
import { type AuditChain } from './audit-chain.js';
import type { RetentionPlan, RetentionStore } from './audit-sink.port.js';

/** The pseudo-connection of events that belong to no upstream (a DNS label never starts with `_`). */
export const SYSTEM_CONNECTION = '_system';

/** Options of {@link runRetention}. */
export interface RetentionRunOptions {
  /** How long events are kept, in ms. */
  retentionMs: number;
  /** The configured text (e.g. `400d`), for the record. */
  retentionText: string;
  /** Plan only. */
  dryRun: boolean;
  now?: number;
  /** Records the run durably before the drop (required unless dryRun). */
  record?: (event: EventEnvelope) => Promise<void>;
  /** Node id on the event. */
  nodeId: string;
}

/** Plans and (unless dry-run) records and applies a retention run; returns the plan. */
export async function runRetention(store: RetentionStore, options: RetentionRunOptions): Promise<RetentionPlan> {
  const now = options.now ?? Date.now();
  const plan = await store.retentionPlan(now - options.retentionMs);
  if (options.dryRun || plan.partitions.length === 0) return plan;
  if (options.record === undefined) throw new Error('runRetention: a recorder is required to drop anything');
  const event = buildEvent(
    EventType.AuditRetentionApplied,
    create(AuditRetentionAppliedSchema, {
      store: plan.store,
      cutoffMs: plan.cutoffMs,
      droppedBeforeMs: plan.droppedBeforeMs,
      partitions: plan.partitions.map((p) => p.id),
      rowsDropped: plan.partitions.reduce((n, p) => n + p.rows, 0),
      retention: options.retentionText,
    }),
    { correlationId: '', nodeId: options.nodeId, connection: SYSTEM_CONNECTION, occurredAtMs: now },
  );
  event.correlationId = event.id;
  await options.record(event);
  await store.applyRetention(plan);
  return plan;
}

/** A recorder that seals events into `chain` and appends them to the log with an ack. */
export function chainedRecorder(log: EventLog, chain: AuditChain, timeoutMs = 5000): (event: EventEnvelope) => Promise<void> {
  return async (event) => {
    const bytes = chain.seal(event);
    await log.append(Subjects.auditEvent(event.connection, event.type), bytes, event.id, { timeoutMs });
  };
}

/** One line per month for the CLI and the log. */
export function formatRetentionPlan(plan: RetentionPlan, dryRun: boolean): string[] {
  const verb = dryRun ? 'would drop' : 'dropped';
  const lines = plan.partitions.map((p) => `${verb} ${plan.store} month ${p.id}: ${p.rows} events, newest ${new Date(p.maxTsMs).toISOString()}`);
  lines.push(
    plan.partitions.length === 0
      ? `nothing to drop: no month lies entirely before ${new Date(plan.droppedBeforeMs).toISOString()} (cutoff ${new Date(plan.cutoffMs).toISOString()})`
      : `${verb} ${plan.partitions.length} month(s), ${plan.partitions.reduce((n, p) => n + p.rows, 0)} events, everything before ${new Date(plan.droppedBeforeMs).toISOString()}`,
  );
  return lines;
}
