import { encodeEvent, Subjects, type EventEnvelope } from '../../contracts/src/index.js';
import type { EventLog } from '../../bus/src/bus.port.js';
import type { Logger } from '../../common/src/index.js';
import type { PortcullisMetrics } from '../../observability/src/index.js';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';

/**
 * Appends audit events to the durable log. `record` waits for every acknowledgement and fails
 * closed; `recordLater` is for events after the response (completion), retried in the background.
 */
export class AuditPublisher {
  constructor(
    private readonly log: EventLog,
    private readonly ackTimeoutMs: number,
    private readonly logger: Logger,
    private readonly metrics?: PortcullisMetrics['edge'],
  ) {}

  /** Appends the events and waits for all acks; GatewayError `audit_unavailable` otherwise. */
  async record(...events: EventEnvelope[]): Promise<void> {
    try {
      await Promise.all(events.map((e) => this.append(e)));
    } catch (cause) {
      throw new GatewayError(GatewayErrorCode.AuditUnavailable, 'audit log unavailable: the request was not forwarded', { cause });
    }
  }

  /** Appends without holding the caller; retries a few times, then logs the loss loudly. */
  recordLater(event: EventEnvelope): void {
    void this.retry(event, 0);
  }

  private append(event: EventEnvelope): Promise<unknown> {
    return this.log.append(Subjects.auditEvent(event.connection, event.type), encodeEvent(event), event.id, {
      timeoutMs: this.ackTimeoutMs,
    });
  }

  private async retry(event: EventEnvelope, attempt: number): Promise<void> {
    try {
      await this.append(event);
    } catch (err) {
      if (attempt < 5) {
        // Same event id on every try: the stream's de-duplication window keeps it once.
        setTimeout(() => void this.retry(event, attempt + 1), 200 * 2 ** attempt).unref();
      } else {
        this.metrics?.auditPublishFailures.inc(['completion']);
        this.logger.error('audit event could not be appended', { eventId: event.id, type: event.type, err });
      }
    }
  }
}
