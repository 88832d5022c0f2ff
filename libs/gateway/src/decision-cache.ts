/**
 * The edge's decision cache: a bounded LRU of decisions the policy role made, keyed by the policy
 * version in force and everything a policy can match on, so a bot repeating a request does not
 * pay a NATS round trip each time. A cached decision is still a real decision of the version in
 * force: the cache is emptied whenever the version changes (a reply carries another version, or a
 * policy process announces a swap), entries live no longer than the ttl nor than the policy role
 * says the decision holds (time windows), and nothing is cached from a request that was in flight
 * while the policy changed.
 */
import type { Decision, Identity, RequestAttributes } from '@portcullis/contracts';

/** Options of a {@link DecisionCache}. */
export interface DecisionCacheOptions {
  /** Longest life of an entry. */
  readonly ttlMs: number;
  /** Most entries; the least recently used one goes first. */
  readonly maxEntries: number;
  /** Monotonic clock in ms (tests inject one). */
  readonly now?: () => number;
}

interface Entry {
  readonly decision: Decision;
  readonly expiresAt: number;
}

/** Counters for metrics and the benchmark. */
export interface DecisionCacheStats {
  hits: number;
  misses: number;
  invalidations: number;
}

/**
 * The cache key: every identity field and request attribute a `portcullis.dev/v1` policy can
 * match on, and nothing else (source IP, user agent, selectors, token id and lifetime are not
 * matchable, so they must not split the cache). JSON of an array of strings is injective, so two
 * requests share a key only when every matchable field is equal. When the policy language learns
 * to match a new field, it must be added here (the unit test's property checks the two agree).
 */
export function decisionCacheKey(identity: Identity, attributes: RequestAttributes, claimsJson = ''): string {
  const k = attributes.kube;
  const h = attributes.http;
  return JSON.stringify([
    identity.subject,
    identity.groups,
    identity.clientId,
    identity.issuer,
    identity.scopes,
    identity.audiences,
    attributes.connection,
    attributes.connectionType,
    attributes.method,
    k === undefined ? null : [k.isResourceRequest, k.verb, k.apiGroup, k.namespace, k.resource, k.subresource, k.name, k.path],
    h === undefined ? null : [h.method, h.path],
    // Rules may match any claim: two tokens that differ only in claims must not share a decision.
    claimsJson,
  ]);
}

/** A bounded, versioned LRU of decisions. Synchronous; one per edge process. */
export class DecisionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private versionInForce = '';
  private generationValue = 0;
  readonly stats: DecisionCacheStats = { hits: 0, misses: 0, invalidations: 0 };

  constructor(private readonly opts: DecisionCacheOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  /** Bumped on every invalidation; a decision asked for under an older generation is not stored. */
  get generation(): number {
    return this.generationValue;
  }

  /** The policy version the cached decisions belong to ('' before the first reply). */
  get version(): string {
    return this.versionInForce;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Monotonic time in ms, on the cache's clock: pass it to {@link store} as `askedAt`. */
  clock(): number {
    return this.now();
  }

  /** The cached decision for `key`, if it is still fresh. */
  lookup(key: string): Decision | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) {
      this.stats.misses++;
      return undefined;
    }
    this.entries.delete(key);
    if (entry.expiresAt <= this.now()) {
      this.stats.misses++;
      return undefined;
    }
    this.entries.set(key, entry); // most recently used goes last
    this.stats.hits++;
    return entry.decision;
  }

  /**
   * Stores a decision the policy role just made.
   *
   * @param maxAgeMs - how long the policy role says the decision holds (0 = do not cache).
   * @param generation - {@link generation} when the request was sent.
   * @param askedAt - {@link clock} when the request was sent: the entry's age counts from then,
   *   so it never outlives the policy role's `maxAgeMs`, however long the reply took.
   */
  store(key: string, decision: Decision, maxAgeMs: number, generation: number, askedAt: number): void {
    if (generation !== this.generationValue) return; // the policy changed while we asked
    if (decision.policyVersion !== this.versionInForce) {
      this.invalidate();
      this.versionInForce = decision.policyVersion;
    }
    const life = Math.min(this.opts.ttlMs, maxAgeMs);
    if (!(life > 0)) return;
    if (!this.entries.has(key) && this.entries.size >= this.opts.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.delete(key);
    this.entries.set(key, { decision, expiresAt: askedAt + life });
  }

  /** Drops every entry: the policy changed, or this edge may have missed a change notice. */
  invalidate(): void {
    this.generationValue++;
    this.stats.invalidations++;
    this.entries.clear();
  }
}
