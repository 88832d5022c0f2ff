import { auditMessageEvents, decodeEvent, Streams, Subjects, type EventEnvelope } from '@portcullis/contracts';
import type { EventLog } from '@portcullis/bus';
import { ChainedAppender, type ChainHead } from '@portcullis/audit-store/pure';
import { ApprovalError, ApprovalErrorCode } from './approval-error.js';

/**
 * Approval events in the durable log, the source of truth: sealed into the approval role's own
 * hash chain segments ({@link ChainedAppender}: `audit verify` reports an approval row edited or
 * deleted), appended to the audit stream as `audit.<connection>.approval.<type>` (so the audit
 * store records them with the requests), and read back to rebuild the projection.
 */
export class ApprovalJournal {
  readonly #appender: ChainedAppender;

  constructor(
    private readonly log: EventLog,
    ackTimeoutMs: number,
    /** The node id of the process (the chain segments are named after it). */
    nodeId: string,
  ) {
    this.#appender = new ChainedAppender(log, nodeId, ackTimeoutMs);
  }

  /** The chain heads acknowledged since the last call (for the checkpointer). */
  takeHeads(): ChainHead[] {
    return this.#appender.takeHeads();
  }

  /** Seals, appends and waits for the acknowledgement; ApprovalError `unavailable` otherwise. */
  async append(event: EventEnvelope): Promise<void> {
    try {
      await this.#appender.append(event);
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
