import { Subjects, type EventEnvelope } from '../../contracts/src/index.js';
import { AuditChain } from '../../audit-store/src/audit-chain.js';
import type { EventLog } from '../../bus/src/bus.port.js';
import type { Logger } from '../../common/src/index.js';
import type { PortcullisMetrics } from '../../observability/src/index.js';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';

/** Tuning of {@link AuditPublisher}'s background re-appends. */
export interface AuditPublisherOptions {
  /**
   * How long an event that could not be appended is retried in the background (default 120 s,
   * the stream's default duplicate window: within it a retry that races a late ack is stored once).
   */
  retryForMs?: number;
  /** Events waiting for a retry at most; beyond it new failures are logged as lost (default 50,000). */
  maxPendingRetries?: number;
  /** The chain to seal events with; default one {@link AuditChain} per node id, started lazily. */
  chain?: AuditChain;
  /** Counts appends the log did not acknowledge (`stage`: admission or background). */
  metrics?: PortcullisMetrics['edge'];
}

interface Sealed {
  readonly event: EventEnvelope;
  readonly bytes: Uint8Array;
  readonly subject: string;
}

/**
 * Appends audit events to the durable log. Every event is sealed into this process's hash chain
 * ({@link AuditChain}) first, in call order, so the chain order is the order the edge handled
 * events. `record` waits for every acknowledgement and fails closed; `recordLater` is for events
 * after the response (completion). An event whose append failed — also one whose request was
 * refused for it — is re-appended in the background with the same id and bytes, so that a short
 * JetStream outage leaves no gap in the chain; one still missing after `retryForMs` is logged
 * as lost (and `portcullis audit verify` reports the gap).
 */
export class AuditPublisher {
  private readonly retryForMs: number;
  private readonly maxPendingRetries: number;
  private readonly chains = new Map<string, AuditChain>();
  private pendingRetries = 0;
  private lostCount = 0;
  private readonly metrics: PortcullisMetrics['edge'] | undefined;

  /** Events given up after every retry (session frames included): a metric to alert on. */
  get lost(): number {
    return this.lostCount;
  }

  constructor(
    private readonly log: EventLog,
    private readonly ackTimeoutMs: number,
    private readonly logger: Logger,
    options: AuditPublisherOptions = {},
  ) {
    this.metrics = options.metrics;
    this.retryForMs = options.retryForMs ?? 120_000;
    this.maxPendingRetries = options.maxPendingRetries ?? 50_000;
    if (options.chain !== undefined) this.chains.set('', options.chain);
  }

  /** Appends the events and waits for all acks; GatewayError `audit_unavailable` otherwise. */
  async record(...events: EventEnvelope[]): Promise<void> {
    const appends = events.map((event) => {
      const sealed = this.seal(event);
      return this.append(sealed).catch((err: unknown) => {
        this.metrics?.auditPublishFailures.inc(['admission']);
        this.retryLater(sealed, Date.now());
        throw err;
      });
    });
    try {
      await Promise.all(appends);
    } catch (cause) {
      throw new GatewayError(GatewayErrorCode.AuditUnavailable, 'audit log unavailable: the request was not forwarded', { cause });
    }
  }

  /** Appends without holding the caller; retried in the background, then logged loudly as lost. */
  recordLater(event: EventEnvelope): void {
    const sealed = this.seal(event);
    this.append(sealed).catch(() => this.retryLater(sealed, Date.now()));
  }

  /** Events currently waiting for a background retry. */
  get retrying(): number {
    return this.pendingRetries;
  }

  private seal(event: EventEnvelope): Sealed {
    const key = this.chains.has('') ? '' : event.nodeId;
    let chain = this.chains.get(key);
    if (chain === undefined) {
      chain = new AuditChain(event.nodeId);
      this.chains.set(key, chain);
      this.logger.info('audit chain segment started', { chainId: chain.chainId });
    }
    const bytes = chain.seal(event);
    return { event, bytes, subject: Subjects.auditEvent(event.connection, event.type) };
  }

  private append(sealed: Sealed): Promise<unknown> {
    return this.log.append(sealed.subject, sealed.bytes, sealed.event.id, { timeoutMs: this.ackTimeoutMs });
  }

  private retryLater(sealed: Sealed, firstFailureAt: number): void {
    if (this.pendingRetries >= this.maxPendingRetries) {
      this.giveUp(sealed, 'too many events waiting for a retry');
      return;
    }
    this.pendingRetries++;
    const attempt = (n: number): void => {
      // Same event id and bytes on every try: the stream's de-duplication keeps it once.
      const delay = Math.min(200 * 2 ** n, 5000);
      setTimeout(() => {
        this.append(sealed).then(
          () => {
            this.pendingRetries--;
          },
          () => {
            if (Date.now() - firstFailureAt + Math.min(200 * 2 ** (n + 1), 5000) > this.retryForMs) {
              this.pendingRetries--;
              this.giveUp(sealed, `not acknowledged for ${Math.round(this.retryForMs / 1000)}s`);
            } else {
              attempt(n + 1);
            }
          },
        );
      }, delay).unref();
    };
    attempt(0);
  }

  private giveUp(sealed: Sealed, why: string): void {
    this.lostCount++;
    this.metrics?.auditPublishFailures.inc(['lost']);
    const e = sealed.event;
    this.logger.error('audit event could not be appended: it is lost, and audit verify will report a gap', {
      eventId: e.id,
      type: e.type,
      chainId: e.chainId,
      chainSeq: e.chainSeq,
      why,
    });
  }
}
