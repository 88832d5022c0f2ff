/**
 * The streaming masker for text: container logs (`text/plain`, `logs -f` included) and the
 * stdout/stderr channels of exec/attach. The value detectors run over each piece of text before it
 * is released, together with a bounded look-behind, so a secret split across chunks or frames is
 * still found.
 *
 * Trade-off (documented in the README's masking section):
 * - Text is held until a newline, until more than `maxHoldChars` are held, or until the caller
 *   releases it: the edge calls {@link StreamingTextMasker.flushWords} after `TEXT_FLUSH_MS`
 *   without a newline (a prompt is released, a word still being written is not) and
 *   {@link StreamingTextMasker.flush} after `TEXT_HOLD_MAX_MS`. Output is delayed at most that
 *   long, and memory is bounded by the hold size.
 * - The last `lookBehindChars` characters already released stay as context: the detectors run
 *   over look-behind + held text, and every part of a match that is not yet released is masked.
 *   A secret (with the label its detector needs, e.g. `Bearer `) of up to `lookBehindChars`
 *   characters is masked wherever the chunks split it, as long as its pieces arrive within
 *   `TEXT_HOLD_MAX_MS` of each other or on one line; a secret released in pieces further apart
 *   (an interactive terminal echoing keystrokes) is masked from the point the detector can
 *   recognise it, so a prefix may show.
 * - PEM private keys span lines: from a `BEGIN … PRIVATE KEY` line every line is masked until its
 *   `END` line, however long the key.
 */
import { MaskingError, MaskingErrorCode } from './masking-error.js';
import type { MaskingProfile } from './masking-profile.js';
import { DetectorName, type Span } from './value-detectors.js';

/** Limits of one text masker. */
export interface StreamingTextOptions {
  /** Characters of released text kept as detector context: the longest secret caught across chunks. Default 4096. */
  readonly lookBehindChars?: number;
  /** Held text beyond which a line is released without its newline (keeping `lookBehindChars` back). Default 16384. */
  readonly maxHoldChars?: number;
}

export const DEFAULT_TEXT_LOOK_BEHIND = 4096;
export const DEFAULT_TEXT_MAX_HOLD = 16 * 1024;

/**
 * Decodes a byte stream as UTF-8 text for the text masker. What it cannot read as text — invalid
 * UTF-8 (binary, another charset) or a NUL byte (binary, or UTF-16 text the detectors would not
 * see) — is a {@link MaskingError} `not_text`: the caller withholds it rather than pass it on.
 */
export class TextStreamDecoder {
  private readonly decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

  decode(chunk: Uint8Array): string {
    return checked(() => this.decoder.decode(chunk, { stream: true }));
  }

  /** The end of the stream: an unfinished UTF-8 sequence is not text either. */
  end(): string {
    return checked(() => this.decoder.decode());
  }
}

function checked(decode: () => string): string {
  let text: string;
  try {
    text = decode();
  } catch (cause) {
    throw new MaskingError(MaskingErrorCode.NotText, 'the upstream text is not valid UTF-8 (binary output cannot be masked)', { cause });
  }
  if (text.includes('\u0000')) throw new MaskingError(MaskingErrorCode.NotText, 'the upstream text holds NUL bytes (binary output cannot be masked)');
  return text;
}

const PEM_BEGIN = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----/g;
const PEM_END = /-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----/g;

function lastMatch(re: RegExp, text: string): number {
  re.lastIndex = 0;
  let at = -1;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) at = m.index;
  return at;
}

/**
 * Masks a text stream piece by piece: {@link push} returns the masked text that may be released
 * now, {@link flush} everything held. Holds at most `maxHoldChars` + one chunk.
 */
export class StreamingTextMasker {
  /** Values (or parts of values) masked so far. */
  count = 0;
  private readonly lookBehind: number;
  private readonly maxHold: number;
  private readonly pem: boolean;
  /** The tail of the released text, as the upstream wrote it (context for the detectors). */
  private released = '';
  private held = '';
  private inPem = false;

  constructor(
    private readonly profile: MaskingProfile,
    options: StreamingTextOptions = {},
  ) {
    this.lookBehind = options.lookBehindChars ?? DEFAULT_TEXT_LOOK_BEHIND;
    this.maxHold = Math.max(options.maxHoldChars ?? DEFAULT_TEXT_MAX_HOLD, this.lookBehind * 2);
    this.pem = profile.detectors.has(DetectorName.PemPrivateKey);
  }

  /** True while text is held back (the caller should {@link flush} it after a bounded time). */
  get holding(): boolean {
    return this.held.length > 0;
  }

  /** Adds text; returns the masked text released by it (whole lines, or a long line's head). */
  push(text: string): string {
    this.held += text;
    const nl = this.held.lastIndexOf('\n');
    if (nl !== -1) return this.release(nl + 1);
    if (this.held.length > this.maxHold) return this.release(this.held.length - this.lookBehind);
    return '';
  }

  /**
   * Releases held text up to its last whitespace: a word still being written (perhaps the head of
   * a secret) stays held. The edge calls it when text has waited `TEXT_FLUSH_MS` for its newline.
   */
  flushWords(): string {
    const h = this.held;
    let i = h.length - 1;
    while (i >= 0 && h.charCodeAt(i) !== 0x20 && h.charCodeAt(i) !== 0x09 && h.charCodeAt(i) !== 0x0d) i--;
    return i < 0 ? '' : this.release(i + 1);
  }

  /** Releases everything held, masked as far as the detectors can tell now. */
  flush(): string {
    return this.held.length === 0 ? '' : this.release(this.held.length);
  }

  /** Masks and releases the first `upTo` held characters. */
  private release(upTo: number): string {
    const base = this.released.length;
    const text = this.released + this.held;
    const end = base + upTo;
    const spans = this.spans(text, base, end);
    let out = '';
    let at = base;
    for (const s of spans) {
      const from = Math.max(s.start, at);
      const to = Math.min(s.end, end);
      if (to <= from) continue;
      out += text.slice(at, from) + this.profile.replace(text.slice(from, to), false);
      this.count++;
      at = to;
    }
    out += text.slice(at, end);
    if (this.pem) this.trackPem(text.slice(0, end));
    this.released = text.slice(Math.max(0, end - this.lookBehind), end);
    this.held = text.slice(end);
    return out;
  }

  /** Detector spans over look-behind + held text that reach into `[base, end)`. */
  private spans(text: string, base: number, end: number): Span[] {
    const found = this.profile.detectors.find(text).filter((s) => s.end > base && s.start < end);
    if (this.inPem) {
      // Inside a key whose BEGIN line left the look-behind: mask up to its END line.
      PEM_END.lastIndex = base;
      const m = PEM_END.exec(text);
      found.unshift({ start: base, end: m === null ? text.length : m.index + m[0].length });
      found.sort((a, b) => a.start - b.start);
    }
    return found;
  }

  /** Whether the released text ends inside a PEM private key. */
  private trackPem(released: string): void {
    const begin = lastMatch(PEM_BEGIN, released);
    const end = lastMatch(PEM_END, released);
    if (begin !== -1 || end !== -1) this.inPem = begin > end;
  }
}
