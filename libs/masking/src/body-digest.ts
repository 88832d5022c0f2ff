/**
 * The keyed digest of an audited body. A plain SHA-256 of a small, guessable body (a one-word
 * Secret value) gives the body back to anyone who reads the log and tries candidates; an
 * HMAC-SHA256 under a key that only the edges and the auditors hold does not. Written as
 * `hmac-sha256:<key id>:<hex>`, the key id naming the key without revealing it (for rotation).
 */
import { createHmac, type Hmac } from 'node:crypto';

/** The algorithm word a digest starts with. */
export const BODY_DIGEST_ALGORITHM = 'hmac-sha256';
/** Shortest key accepted (characters of the configured text, or bytes). */
export const MIN_BODY_KEY_LENGTH = 32;

/** A digest being computed over a body's chunks. */
export interface BodyDigestRun {
  update(chunk: Uint8Array | string): void;
  /** `hmac-sha256:<key id>:<hex>`. */
  finish(): string;
}

/** Computes and checks keyed body digests. Never exposes its key (not even through `toJSON`). */
export class BodyDigest {
  readonly #key: Buffer;
  /** 8 hex characters derived from the key: which key made a digest, without revealing it. */
  readonly keyId: string;

  constructor(key: Uint8Array | string) {
    const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key);
    if (bytes.length < MIN_BODY_KEY_LENGTH) throw new RangeError(`the audit body hash key must be at least ${MIN_BODY_KEY_LENGTH} bytes`);
    this.#key = bytes;
    this.keyId = createHmac('sha256', bytes).update('portcullis.audit.body-key-id').digest('hex').slice(0, 8);
  }

  /** Starts a digest over a body given in chunks. */
  start(): BodyDigestRun {
    const mac: Hmac = createHmac('sha256', this.#key);
    return {
      update: (chunk) => void mac.update(chunk),
      finish: () => `${BODY_DIGEST_ALGORITHM}:${this.keyId}:${mac.digest('hex')}`,
    };
  }

  /** The digest of a whole body. */
  of(body: Uint8Array | string): string {
    const run = this.start();
    run.update(body);
    return run.finish();
  }

  /**
   * Whether `body` is the body a recorded digest was made from. False for a digest made with
   * another key (its key id differs) or a plain SHA-256 of an older record.
   */
  matches(body: Uint8Array | string, recorded: string): boolean {
    return recorded === this.of(body);
  }

  toJSON(): { keyId: string } {
    return { keyId: this.keyId };
  }
}
