/**
 * A role's own chain segments: the approval role (approval decisions), the policy role (policy
 * changes) and the audit role (retention runs) record their events in hash chains of their own,
 * like the edge does for requests, so `audit verify` covers every decision a human or an
 * operator makes.
 */
import type { EventLog } from '@portcullis/bus/pure';
import { Subjects, type EventEnvelope } from '@portcullis/contracts';
import { AuditChain } from './audit-chain.js';

/** A chain's head as acknowledged by the log: what a checkpoint signs. */
export interface ChainHead {
  chainId: string;
  /** The position of the last event the log acknowledged. */
  seq: number;
  /** That event's hash. */
  hash: string;
}

/**
 * Seals each event into the role's current chain segment and appends it to the audit stream with
 * an acknowledgement, one event at a time (decisions are rare; one at a time keeps the chain order
 * the order in which the log acknowledged them). When an append fails the segment ends there and
 * the next event starts a new one: an unacknowledged event is either stored as the last event of
 * its segment or not at all, so a producer's failure never leaves a gap for `audit verify` to report.
 */
export class ChainedAppender {
  readonly #log: Pick<EventLog, 'append'>;
  readonly #nodeId: string;
  readonly #ackTimeoutMs: number;
  #chain: AuditChain | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  /** Acknowledged heads not yet taken by {@link takeHeads}, by chain id. */
  readonly #changed = new Map<string, ChainHead>();
  #head: ChainHead | undefined;

  constructor(log: Pick<EventLog, 'append'>, nodeId: string, ackTimeoutMs: number) {
    this.#log = log;
    this.#nodeId = nodeId;
    this.#ackTimeoutMs = ackTimeoutMs;
  }

  /** Seals and appends `event` after the events appended before it; rejects when the log did not acknowledge it. */
  append(event: EventEnvelope): Promise<void> {
    const run = this.#queue.then(() => this.#appendNow(event));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** The node whose chains this appender writes. */
  get nodeId(): string {
    return this.#nodeId;
  }

  /** The head of the segment last appended to (undefined before the first acknowledged event). */
  get head(): ChainHead | undefined {
    return this.#head;
  }

  /** The heads acknowledged since the last call, one per segment (a checkpointer signs them). */
  takeHeads(): ChainHead[] {
    const heads = [...this.#changed.values()];
    this.#changed.clear();
    return heads;
  }

  async #appendNow(event: EventEnvelope): Promise<void> {
    const chain = (this.#chain ??= new AuditChain(this.#nodeId));
    const bytes = chain.seal(event);
    try {
      await this.#log.append(Subjects.auditEvent(event.connection, event.type), bytes, event.id, { timeoutMs: this.#ackTimeoutMs });
    } catch (err) {
      if (this.#chain === chain) this.#chain = undefined;
      throw err;
    }
    this.#head = { chainId: chain.chainId, seq: event.chainSeq, hash: event.hash };
    this.#changed.set(chain.chainId, this.#head);
  }
}

/**
 * The heads of chains whose events are acknowledged out of order (the edge: group-committed
 * batches, background retries): per chain, the end of the longest run of settled positions from
 * the start. An event given up after every retry counts as settled too — `audit verify` reports it
 * missing, and a checkpoint past it shows it was not simply cut off.
 */
export class SettledHeads {
  readonly #chains = new Map<string, { upTo: number; hash: string; ahead: Map<number, string> }>();
  readonly #changed = new Map<string, ChainHead>();

  /** Marks sealed events settled (acknowledged, or given up). */
  settled(events: readonly Pick<EventEnvelope, 'chainId' | 'chainSeq' | 'hash'>[]): void {
    for (const e of events) {
      if (e.chainId === '') continue;
      let c = this.#chains.get(e.chainId);
      if (c === undefined) {
        c = { upTo: 0, hash: '', ahead: new Map() };
        this.#chains.set(e.chainId, c);
      }
      if (e.chainSeq <= c.upTo) continue;
      c.ahead.set(e.chainSeq, e.hash);
      let next = c.ahead.get(c.upTo + 1);
      if (next === undefined) continue;
      while (next !== undefined) {
        c.ahead.delete(++c.upTo);
        c.hash = next;
        next = c.ahead.get(c.upTo + 1);
      }
      this.#changed.set(e.chainId, { chainId: e.chainId, seq: c.upTo, hash: c.hash });
    }
  }

  /** The heads that moved since the last call. */
  takeHeads(): ChainHead[] {
    const heads = [...this.#changed.values()];
    this.#changed.clear();
    return heads;
  }
}
