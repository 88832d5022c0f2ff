/** The sandbox's optional, bounded record of what it served (requests, sessions), for tests. */
import { createHmac, randomBytes } from 'node:crypto';

/** Keeps the newest `max` entries; older ones fall out. O(1) per push, whatever `max` is. */
export class BoundedLog<T> {
  private readonly ring: (T | undefined)[];
  private start = 0;
  private size = 0;

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`a request log holds at least 1 entry (max: ${max})`);
    this.ring = new Array<T | undefined>(max);
  }

  push(entry: T): void {
    if (this.size < this.max) {
      this.ring[(this.start + this.size) % this.max] = entry;
      this.size++;
      return;
    }
    this.ring[this.start] = entry;
    this.start = (this.start + 1) % this.max;
  }

  /** The entries, oldest first (a copy). */
  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.size; i++) out.push(this.ring[(this.start + i) % this.max]!);
    return out;
  }

  clear(): void {
    this.ring.fill(undefined);
    this.start = 0;
    this.size = 0;
  }
}

/**
 * Fingerprints of credentials, so a record can say which credential a request carried without
 * holding it: HMAC-SHA256 under a key that lives only in this process, cut to 16 hex digits
 * (not reversible, not comparable across sandboxes, useless offline even for a weak secret).
 */
export class CredentialFingerprints {
  private readonly key = randomBytes(32);

  of(secret: string): string {
    return createHmac('sha256', this.key).update(secret).digest('hex').slice(0, 16);
  }
}
