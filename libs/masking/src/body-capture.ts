/**
 * Bodies on their way to the audit log: digested in full (keyed: {@link BodyDigest}), captured up
 * to a bound, decoded (JSON, YAML, Kubernetes protobuf), masked, and cut to an excerpt. A body that
 * cannot be decoded — or was too large to capture — is described by its size and digest only,
 * never by its bytes.
 */
import type { BodyDigest, BodyDigestRun } from './body-digest.js';
import { parse as parseYaml } from 'yaml';
import { decodeKubeProtobuf } from './kube-protobuf-decoder.js';
import type { MaskingProfile } from './masking-profile.js';
import { ValueMasker, type MaskTarget } from './value-masker.js';
import { parseJsonExact, stringifyJson } from './exact-json.js';

/** How an audited body was read. */
export const BodyDecoding = {
  Json: 'json',
  Yaml: 'yaml',
  Protobuf: 'protobuf',
  /** UTF-8 text (container logs), masked line by line. */
  Text: 'text',
  /** Not decoded: size and hash only (see `note`). */
  None: 'none',
} as const;
export type BodyDecoding = (typeof BodyDecoding)[keyof typeof BodyDecoding];

/** What the audit log keeps of one body. */
export interface BodyExcerpt {
  /** Size of the whole body in bytes. */
  readonly bytes: number;
  /**
   * Keyed digest of the whole body, `hmac-sha256:<key id>:<hex>` (request: as received; response:
   * as sent to the client, masked). Named sha256 for the event field it fills.
   */
  readonly sha256: string;
  readonly contentType: string;
  readonly decoding: BodyDecoding;
  /** The masked body as JSON text, cut to the excerpt cap; empty when not decoded. */
  readonly excerpt: string;
  /** True when `excerpt` was cut. */
  readonly truncated: boolean;
  readonly maskedFields: number;
  /** Why the body was not decoded, empty otherwise. */
  readonly note: string;
}

/** Digests every byte of a body and keeps the first `captureLimit` bytes. */
export class BodyRecorder {
  private readonly hash: BodyDigestRun;
  private readonly parts: Buffer[] = [];
  private captured = 0;
  private total = 0;

  constructor(
    private readonly captureLimit: number,
    digest: BodyDigest,
  ) {
    this.hash = digest.start();
  }

  /** Size so far. */
  get bytes(): number {
    return this.total;
  }

  add(chunk: Buffer): void {
    this.hash.update(chunk);
    this.total += chunk.length;
    if (this.captured <= this.captureLimit) {
      this.parts.push(chunk);
      this.captured += chunk.length;
    }
  }

  /** The hash, size and — when the whole body fit under the limit — its bytes. */
  finish(): { bytes: number; sha256: string; body: Buffer | undefined } {
    const sha256 = this.hash.finish();
    const body = this.total <= this.captureLimit ? Buffer.concat(this.parts) : undefined;
    this.parts.length = 0;
    return { bytes: this.total, sha256, body };
  }
}

/** Cuts `text` to at most `maxBytes` UTF-8 bytes. */
export function capText(text: string, maxBytes: number): { text: string; truncated: boolean } {
  if (text.length <= maxBytes / 3 || Buffer.byteLength(text) <= maxBytes) return { text, truncated: false };
  return {
    text: Buffer.from(text)
      .subarray(0, maxBytes)
      .toString('utf8')
      .replace(/\uFFFD$/, ''),
    truncated: true,
  };
}

/**
 * The audit copy of a request body: decoded by its content type, masked with `profile`, cut to
 * `excerptBytes`. Never returns any byte of a body it could not decode and mask.
 */
export function maskRequestBody(
  recorded: { bytes: number; sha256: string; body: Buffer | undefined },
  contentType: string,
  profile: MaskingProfile,
  target: MaskTarget,
  excerptBytes: number,
): BodyExcerpt {
  const mediaType = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  const base = { bytes: recorded.bytes, sha256: recorded.sha256, contentType: contentType.slice(0, 200) };
  const opaque = (note: string): BodyExcerpt => ({ ...base, decoding: BodyDecoding.None, excerpt: '', truncated: false, maskedFields: 0, note });
  if (recorded.bytes === 0) return opaque('');
  if (recorded.body === undefined) return opaque('larger than the capture limit');
  let value: unknown;
  let exact = false;
  let decoding: BodyDecoding;
  try {
    if (mediaType === 'application/vnd.kubernetes.protobuf') {
      value = decodeKubeProtobuf(recorded.body);
      decoding = BodyDecoding.Protobuf;
    } else if (
      mediaType === 'application/yaml' ||
      mediaType === 'application/apply-patch+yaml' ||
      mediaType === 'application/x-yaml' ||
      mediaType === 'text/yaml'
    ) {
      value = parseYaml(recorded.body.toString('utf8')) as unknown;
      decoding = BodyDecoding.Yaml;
    } else if (mediaType === 'application/json' || mediaType.endsWith('+json') || mediaType === '') {
      ({ value, exact } = parseJsonExact(recorded.body.toString('utf8')));
      decoding = BodyDecoding.Json;
    } else return opaque(`content type ${mediaType} is not decoded`);
  } catch (err) {
    return opaque(`not decodable as ${mediaType || 'JSON'}: ${(err as Error).name}`);
  }
  const masker = new ValueMasker(profile, target);
  const masked = masker.maskDocument(value);
  const { text, truncated } = capText(stringifyJson(masked, exact), excerptBytes);
  return { ...base, decoding, excerpt: text, truncated, maskedFields: masker.count, note: '' };
}

/** Collects the masked text sent to a client: its digest, size and the first `excerptBytes`. */
export class ResponseExcerpt {
  private readonly hash: BodyDigestRun;
  private head = '';
  private total = 0;

  constructor(
    private readonly excerptBytes: number,
    digest: BodyDigest,
  ) {
    this.hash = digest.start();
  }

  add(text: string): void {
    if (text.length === 0) return;
    this.hash.update(text);
    this.total += Buffer.byteLength(text);
    if (this.head.length < this.excerptBytes) this.head += text.slice(0, this.excerptBytes - this.head.length);
  }

  finish(contentType: string, maskedFields: number, decoding: BodyDecoding = BodyDecoding.Json): BodyExcerpt {
    const { text, truncated } = capText(this.head, this.excerptBytes);
    return {
      bytes: this.total,
      sha256: this.hash.finish(),
      contentType: contentType.slice(0, 200),
      decoding,
      excerpt: text,
      truncated: truncated || this.total > Buffer.byteLength(text),
      maskedFields,
      note: '',
    };
  }
}
