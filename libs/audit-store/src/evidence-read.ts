/**
 * Who reads the evidence is evidence: every read of the audit log (replay, export, tail, verify)
 * and every policy explanation is recorded as an `evidence.read` event, durably, before the
 * answer is given. A read that cannot be recorded is not answered (fail closed).
 */
import { hostname, userInfo } from 'node:os';
import type { EventLog } from '@portcullis/bus/pure';
import { buildEvent, create, EventType, EvidenceReadSchema, IdentitySchema, type Identity } from '@portcullis/contracts';
import { ChainedAppender, type ChainHead } from './chained-appender.js';
import { SYSTEM_CONNECTION } from './audit-retention.js';

/** What was read. */
export const EvidenceAction = {
  AuditReplay: 'audit.replay',
  AuditExport: 'audit.export',
  AuditTail: 'audit.tail',
  AuditVerify: 'audit.verify',
  PolicyExplain: 'policy.explain',
} as const;
export type EvidenceAction = (typeof EvidenceAction)[keyof typeof EvidenceAction];

/** One read, as the caller describes it. */
export interface EvidenceReadInput {
  readonly reader: Identity;
  readonly action: EvidenceAction;
  readonly via: 'api' | 'cli';
  /** What was asked (ids, window, filters, the explain request): stored as JSON. */
  readonly query: Readonly<Record<string, unknown>>;
  /** Items in the answer; -1 for a streamed answer recorded before it is counted. */
  readonly results: number;
  /** The client's address (api) or the host (cli). */
  readonly source: string;
}

/** The read could not be recorded: it must not be answered. */
export class EvidenceReadUnrecordedError extends Error {
  override readonly name = 'EvidenceReadUnrecordedError';
}

/** The CLI's reader: the operating-system user on this host (the CLI holds no token). */
export function cliReader(): { reader: Identity; source: string } {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (a container's arbitrary uid): the host still says where from.
  }
  const host = hostname();
  return { reader: create(IdentitySchema, { subject: `os:${user}@${host}` }), source: host };
}

/**
 * Records reads on the event log, sealed into a chain of their own, awaiting each append's ack.
 * One recorder per process: its heads go to the process's checkpointer ({@link takeHeads}), so a
 * deleted read is reported like any other deleted event.
 */
export class EvidenceReadRecorder {
  private readonly appender: ChainedAppender;

  constructor(log: Pick<EventLog, 'append'>, nodeId: string, timeoutMs = 5000) {
    this.appender = new ChainedAppender(log, nodeId, timeoutMs);
  }

  /** Resolves once the read is durably recorded; EvidenceReadUnrecordedError otherwise. */
  async record(input: EvidenceReadInput): Promise<void> {
    // The reader's token id is kept (it names the token, not its secret); nothing else of the token exists here.
    const event = buildEvent(
      EventType.EvidenceRead,
      create(EvidenceReadSchema, {
        reader: create(IdentitySchema, {
          subject: input.reader.subject,
          groups: [...input.reader.groups],
          clientId: input.reader.clientId,
          issuer: input.reader.issuer,
          tokenId: input.reader.tokenId,
        }),
        action: input.action,
        via: input.via,
        query: JSON.stringify(input.query),
        results: input.results,
        source: input.source,
      }),
      { correlationId: '', nodeId: this.appender.nodeId, connection: SYSTEM_CONNECTION },
    );
    try {
      // A sealed event that never landed would read as a deleted one: the appender starts a new segment after it.
      await this.appender.append(event);
    } catch (cause) {
      throw new EvidenceReadUnrecordedError('the read could not be recorded in the audit log', { cause });
    }
  }

  /** The heads of the read chains acknowledged since the last call (for the checkpointer). */
  takeHeads(): ChainHead[] {
    return this.appender.takeHeads();
  }
}
