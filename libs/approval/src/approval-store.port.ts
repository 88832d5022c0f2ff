import type { ApprovalRecord } from './approval-record.js';

/** Where the Slack message of an approval is (to update it on a decision). */
export interface SlackMessageRef {
  readonly channel: string;
  readonly ts: string;
}

/** Result of an atomic consume. */
export type ConsumeResult = { readonly ok: true; readonly record: ApprovalRecord } | { readonly ok: false; readonly record: ApprovalRecord | undefined };

/**
 * The approval projection: pending approvals and grants with a ttl. Redis in cluster mode (shared
 * by every approval process), memory in the embedded mode. JetStream stays the source of truth:
 * {@link needsRebuild} says when the projection lost its state (flushed, restarted) and must be
 * rebuilt from the stream before it answers.
 */
export interface ApprovalStore {
  get(id: string): Promise<ApprovalRecord | undefined>;
  /** The approval bound to a fingerprint, if any is still remembered. */
  findByFingerprint(fingerprint: string): Promise<string | undefined>;
  /**
   * Stores a new pending approval and binds its fingerprint, unless the fingerprint is bound to
   * a live, not stale (isStale) approval: then nothing changes and the bound id is
   * returned (so identical concurrent requests share one approval).
   */
  openIfAbsent(record: ApprovalRecord, deadlineMs: number, nowMs: number): Promise<{ opened: boolean; id: string }>;
  /** Writes a record (and its fingerprint binding) unless the stored one has a higher version. */
  put(record: ApprovalRecord, deadlineMs: number): Promise<void>;
  /** Forgets a record and its binding (an open whose event could not be recorded). */
  remove(record: ApprovalRecord): Promise<void>;
  /**
   * Atomically takes a granted approval for one request: a once-grant succeeds for exactly one
   * caller, a window grant for every caller until it ends.
   */
  consume(id: string, nowMs: number): Promise<ConsumeResult>;
  /** Runs `fn` holding the approval's lock (decisions on one approval are serialised). */
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T>;
  /** Pending approvals (for the list and the expiry sweep). */
  listPending(): Promise<ApprovalRecord[]>;
  /** True when the projection has no marker: it was flushed or never built. */
  needsRebuild(): Promise<boolean>;
  /** Marks the projection as built. */
  markBuilt(nowMs: number): Promise<void>;
  /** True the first time a key is claimed within `ttlMs` (replay protection). */
  claimOnce(key: string, ttlMs: number): Promise<boolean>;
  getSlackMessage(approvalId: string): Promise<SlackMessageRef | undefined>;
  setSlackMessage(approvalId: string, ref: SlackMessageRef, ttlMs: number): Promise<void>;
  close(): Promise<void>;
}
