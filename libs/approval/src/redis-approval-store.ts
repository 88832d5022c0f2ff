import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ApprovalState, type ApprovalRecord } from './approval-record.js';
import type { ApprovalStore, ConsumeResult, SlackMessageRef } from './approval-store.port.js';
import { ApprovalError, ApprovalErrorCode } from './approval-error.js';

/**
 * Each record is a hash: `json` (the record) plus the fields the atomic scripts change in place
 * (`state`, `grant`, `scope`, `uses`, `version`); the stored fields win over the JSON's.
 */
const OPEN = `
local bound = redis.call('GET', KEYS[1])
if bound then
  local f = redis.call('HMGET', ARGV[6] .. bound, 'state', 'grant')
  local stale = (not f[1]) or f[1] == 'consumed' or (f[1] == 'granted' and tonumber(f[2]) <= tonumber(ARGV[13]))
  if not stale then return bound end
end
redis.call('HSET', KEYS[2], 'json', ARGV[2], 'state', ARGV[8], 'grant', ARGV[9], 'scope', ARGV[10], 'uses', ARGV[11], 'version', ARGV[12])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return ''
`;

const PUT = `
local v = redis.call('HGET', KEYS[1], 'version')
if v and tonumber(v) > tonumber(ARGV[12]) then return 0 end
redis.call('HSET', KEYS[1], 'json', ARGV[2], 'state', ARGV[8], 'grant', ARGV[9], 'scope', ARGV[10], 'uses', ARGV[11], 'version', ARGV[12])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local bound = redis.call('GET', KEYS[2])
if (not bound) or bound == ARGV[1] or redis.call('EXISTS', ARGV[6] .. bound) == 0 then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
end
if ARGV[8] == 'pending' then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1]) else redis.call('ZREM', KEYS[3], ARGV[1]) end
return 1
`;

const CONSUME = `
local f = redis.call('HMGET', KEYS[1], 'state', 'grant', 'scope', 'uses', 'version')
if not f[1] then return 0 end
if f[1] ~= 'granted' or tonumber(f[2]) <= tonumber(ARGV[1]) then return 0 end
local st = 'granted'
if f[3] == 'once' then st = 'consumed' end
redis.call('HSET', KEYS[1], 'state', st, 'uses', tonumber(f[4]) + 1, 'version', tonumber(f[5]) + 1)
return 1
`;

const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

const REMOVE = `
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
`;

/** Options of the Redis projection. */
export interface RedisApprovalStoreOptions {
  /** Prefix of every key, e.g. `portcullis:approval:`. */
  keyPrefix: string;
  /** How long a decision waits for another decision on the same approval. */
  lockWaitMs?: number;
  now?: () => number;
}

/**
 * The approval projection in Redis, shared by every approval process: records with a ttl, the
 * fingerprint binding, a pending index, and Lua scripts for the steps that must be atomic (open
 * once per fingerprint, consume a once-grant exactly once, write only newer versions).
 */
export class RedisApprovalStore implements ApprovalStore {
  private readonly p: string;
  private readonly lockWaitMs: number;
  private readonly now: () => number;

  constructor(
    private readonly redis: Redis,
    opts: RedisApprovalStoreOptions,
  ) {
    this.p = opts.keyPrefix;
    this.lockWaitMs = opts.lockWaitMs ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  private rec(id: string): string {
    return `${this.p}rec:${id}`;
  }
  private fp(fingerprint: string): string {
    return `${this.p}fp:${fingerprint}`;
  }
  private get pending(): string {
    return `${this.p}pending`;
  }

  async get(id: string): Promise<ApprovalRecord | undefined> {
    const h = await this.redis.hgetall(this.rec(id));
    return fromHash(h);
  }

  async findByFingerprint(fingerprint: string): Promise<string | undefined> {
    return (await this.redis.get(this.fp(fingerprint))) ?? undefined;
  }

  async openIfAbsent(record: ApprovalRecord, deadlineMs: number, nowMs: number): Promise<{ opened: boolean; id: string }> {
    const bound = (await this.redis.eval(
      OPEN,
      3,
      this.fp(record.fingerprint),
      this.rec(record.id),
      this.pending,
      ...this.args(record, deadlineMs),
      String(nowMs),
    )) as string;
    return bound === '' ? { opened: true, id: record.id } : { opened: false, id: bound };
  }

  async put(record: ApprovalRecord, deadlineMs: number): Promise<void> {
    await this.redis.eval(PUT, 3, this.rec(record.id), this.fp(record.fingerprint), this.pending, ...this.args(record, deadlineMs));
  }

  async remove(record: ApprovalRecord): Promise<void> {
    await this.redis.eval(REMOVE, 3, this.rec(record.id), this.fp(record.fingerprint), this.pending, record.id);
  }

  async consume(id: string, nowMs: number): Promise<ConsumeResult> {
    const ok = (await this.redis.eval(CONSUME, 1, this.rec(id), String(nowMs))) as number;
    const record = await this.get(id);
    return ok === 1 && record !== undefined ? { ok: true, record } : { ok: false, record };
  }

  async withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const key = `${this.p}lock:${id}`;
    const token = randomBytes(12).toString('hex');
    const deadline = this.now() + this.lockWaitMs;
    let wait = 2;
    // The lock's own ttl frees it if its holder dies mid-decision.
    while ((await this.redis.set(key, token, 'PX', 15_000, 'NX')) !== 'OK') {
      if (this.now() > deadline) throw new ApprovalError(ApprovalErrorCode.Unavailable, `approval ${id} is busy: another decision is in progress`);
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 50);
    }
    try {
      return await fn();
    } finally {
      await this.redis.eval(UNLOCK, 1, key, token).catch(() => undefined);
    }
  }

  async listPending(): Promise<ApprovalRecord[]> {
    const ids = await this.redis.zrange(this.pending, '0', '-1');
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.rec(id));
    const results = (await pipeline.exec()) ?? [];
    const out: ApprovalRecord[] = [];
    const gone: string[] = [];
    results.forEach(([err, h], i) => {
      const r = err ? undefined : fromHash(h as Record<string, string>);
      if (r?.state === ApprovalState.Pending) out.push(r);
      else if (r === undefined) gone.push(ids[i]!);
    });
    if (gone.length > 0) await this.redis.zrem(this.pending, ...gone);
    return out.sort((a, b) => a.requestedAtMs - b.requestedAtMs);
  }

  async needsRebuild(): Promise<boolean> {
    return (await this.redis.exists(`${this.p}projection`)) === 0;
  }

  async markBuilt(nowMs: number): Promise<void> {
    await this.redis.set(`${this.p}projection`, String(nowMs));
  }

  async claimOnce(key: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(`${this.p}claim:${key}`, '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  async getSlackMessage(approvalId: string): Promise<SlackMessageRef | undefined> {
    const v = await this.redis.get(`${this.p}slack:${approvalId}`);
    return v === null ? undefined : (JSON.parse(v) as SlackMessageRef);
  }

  async setSlackMessage(approvalId: string, ref: SlackMessageRef, ttlMs: number): Promise<void> {
    await this.redis.set(`${this.p}slack:${approvalId}`, JSON.stringify(ref), 'PX', ttlMs);
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private args(record: ApprovalRecord, deadlineMs: number): string[] {
    return [
      record.id,
      JSON.stringify(record),
      String(Math.max(1, Math.round(deadlineMs - this.now()))),
      String(record.expiresAtMs),
      '',
      `${this.p}rec:`,
      '',
      record.state,
      String(record.grantExpiresAtMs),
      record.requirement.scope,
      String(record.uses),
      String(record.version),
    ];
  }
}

function fromHash(h: Record<string, string> | undefined): ApprovalRecord | undefined {
  if (h === undefined || h['json'] === undefined) return undefined;
  const base = JSON.parse(h['json']) as ApprovalRecord;
  return {
    ...base,
    state: (h['state'] ?? base.state) as ApprovalRecord['state'],
    uses: Number(h['uses'] ?? base.uses),
    version: Number(h['version'] ?? base.version),
  };
}
