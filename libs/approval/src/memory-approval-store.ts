import { ApprovalScope, ApprovalState, isStale, type ApprovalRecord } from './approval-record.js';
import type { ApprovalStore, ConsumeResult, SlackMessageRef } from './approval-store.port.js';

interface Expiring<T> {
  value: T;
  deadlineMs: number;
}

/**
 * The embedded mode's projection: the same semantics as the Redis one, in this process.
 * Entries past their deadline are dropped when read and by a periodic sweep.
 */
export class MemoryApprovalStore implements ApprovalStore {
  private readonly records = new Map<string, Expiring<ApprovalRecord>>();
  private readonly fingerprints = new Map<string, Expiring<string>>();
  private readonly claims = new Map<string, number>();
  private readonly slack = new Map<string, Expiring<SlackMessageRef>>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private built = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly now: () => number = Date.now) {
    this.timer = setInterval(() => this.sweep(), 60_000);
    this.timer.unref();
  }

  get(id: string): Promise<ApprovalRecord | undefined> {
    return Promise.resolve(this.live(this.records, id));
  }

  findByFingerprint(fingerprint: string): Promise<string | undefined> {
    return Promise.resolve(this.live(this.fingerprints, fingerprint));
  }

  openIfAbsent(record: ApprovalRecord, deadlineMs: number, nowMs: number): Promise<{ opened: boolean; id: string }> {
    const bound = this.live(this.fingerprints, record.fingerprint);
    const current = bound === undefined ? undefined : this.live(this.records, bound);
    if (bound !== undefined && current !== undefined && !isStale(current, nowMs)) return Promise.resolve({ opened: false, id: bound });
    this.records.set(record.id, { value: record, deadlineMs });
    this.fingerprints.set(record.fingerprint, { value: record.id, deadlineMs });
    return Promise.resolve({ opened: true, id: record.id });
  }

  put(record: ApprovalRecord, deadlineMs: number): Promise<void> {
    const current = this.live(this.records, record.id);
    if (current !== undefined && current.version > record.version) return Promise.resolve();
    this.records.set(record.id, { value: record, deadlineMs });
    const bound = this.live(this.fingerprints, record.fingerprint);
    const boundRecord = bound === undefined ? undefined : this.live(this.records, bound);
    if (bound === undefined || bound === record.id || boundRecord === undefined) this.fingerprints.set(record.fingerprint, { value: record.id, deadlineMs });
    return Promise.resolve();
  }

  remove(record: ApprovalRecord): Promise<void> {
    this.records.delete(record.id);
    if (this.live(this.fingerprints, record.fingerprint) === record.id) this.fingerprints.delete(record.fingerprint);
    return Promise.resolve();
  }

  consume(id: string, nowMs: number): Promise<ConsumeResult> {
    // Synchronous check-and-set: no other caller runs in between.
    const entry = this.records.get(id);
    const record = this.live(this.records, id);
    if (entry === undefined || record === undefined || record.state !== ApprovalState.Granted || record.grantExpiresAtMs <= nowMs) {
      return Promise.resolve({ ok: false, record });
    }
    const next: ApprovalRecord = {
      ...record,
      uses: record.uses + 1,
      state: record.requirement.scope === ApprovalScope.Once ? ApprovalState.Consumed : ApprovalState.Granted,
      version: record.version + 1,
    };
    entry.value = next;
    return Promise.resolve({ ok: true, record: next });
  }

  async withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const settled = run.catch(() => undefined);
    this.locks.set(id, settled);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === settled) this.locks.delete(id);
    }
  }

  listPending(): Promise<ApprovalRecord[]> {
    const out: ApprovalRecord[] = [];
    for (const id of this.records.keys()) {
      const r = this.live(this.records, id);
      if (r?.state === ApprovalState.Pending) out.push(r);
    }
    return Promise.resolve(out.sort((a, b) => a.requestedAtMs - b.requestedAtMs));
  }

  needsRebuild(): Promise<boolean> {
    return Promise.resolve(!this.built);
  }

  markBuilt(): Promise<void> {
    this.built = true;
    return Promise.resolve();
  }

  claimOnce(key: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    const until = this.claims.get(key);
    if (until !== undefined && until > now) return Promise.resolve(false);
    this.claims.set(key, now + ttlMs);
    return Promise.resolve(true);
  }

  getSlackMessage(approvalId: string): Promise<SlackMessageRef | undefined> {
    return Promise.resolve(this.live(this.slack, approvalId));
  }

  setSlackMessage(approvalId: string, ref: SlackMessageRef, ttlMs: number): Promise<void> {
    this.slack.set(approvalId, { value: ref, deadlineMs: this.now() + ttlMs });
    return Promise.resolve();
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    return Promise.resolve();
  }

  private live<T>(map: Map<string, Expiring<T>>, key: string): T | undefined {
    const e = map.get(key);
    if (e === undefined) return undefined;
    if (e.deadlineMs <= this.now()) {
      map.delete(key);
      return undefined;
    }
    return e.value;
  }

  private sweep(): void {
    const now = this.now();
    for (const map of [this.records, this.fingerprints, this.slack] as Map<string, Expiring<unknown>>[]) {
      for (const [k, e] of map) if (e.deadlineMs <= now) map.delete(k);
    }
    for (const [k, until] of this.claims) if (until <= now) this.claims.delete(k);
  }
}
