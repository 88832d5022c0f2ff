import { auditMessageEvents, decodeEvent, encodeEvent, Streams, Subjects, type EventEnvelope } from '@portcullis/contracts';
import type { EventLog } from '@portcullis/bus';
import { ApprovalError, ApprovalErrorCode } from './approval-error.js';

/**
 * Approval events in the durable log, the source of truth: appended to the audit stream as
 * `audit.<connection>.approval.<type>` (so the audit store records them with the requests), and
 * read back to rebuild the projection.
 */
export class ApprovalJournal {
  constructor(
    private readonly log: EventLog,
    private readonly ackTimeoutMs: number,
  ) {}

  /** Appends and waits for the acknowledgement; ApprovalError `unavailable` otherwise. */
  async append(event: EventEnvelope): Promise<void> {
    try {
      await this.log.append(Subjects.auditEvent(event.connection, event.type), encodeEvent(event), event.id, { timeoutMs: this.ackTimeoutMs });
    } catch (cause) {
      throw new ApprovalError(ApprovalErrorCode.Unavailable, 'the approval could not be recorded in the audit log', { cause });
    }
  }

  /** Every approval event since `sinceMs`, in stream order (undecodable ones skipped). */
  async replay(sinceMs: number): Promise<EventEnvelope[]> {
    const messages = await this.log.snapshot(Streams.audit.name, { startTimeMs: sinceMs, filterSubject: Subjects.auditApprovalEvents() });
    const out: EventEnvelope[] = [];
    for (const m of messages) {
      try {
        // Approval events are appended one per message; a batch is read all the same.
        for (const data of auditMessageEvents(m.subject, m.data)) {
          const event = decodeEvent(data);
          if (event.type.startsWith('approval.')) out.push(event);
        }
      } catch {
        // The audit writer dead-letters these; the projection cannot use them either.
      }
    }
    return out;
  }
}
