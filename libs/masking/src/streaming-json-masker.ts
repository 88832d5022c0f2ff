/**
 * The streaming masker for JSON bodies: objects, lists, Tables and watch streams
 * (newline-delimited events), with bounded memory.
 *
 * Design (a per-object buffer, chosen over masking token by token): a byte scanner walks only the
 * top two levels of each JSON document — the root object's keys and the elements of arrays held
 * directly by the root (`items`, `rows`, a root array). Each value found there is a *unit*: its
 * raw bytes are buffered (at most `maxObjectBytes`), parsed, masked with full context (the
 * object's kind, an env var's name next to its value, the applied object inside an annotation)
 * and written out before the next unit is read. Memory is bounded by the largest single object,
 * not the body: a 200 MB SecretList is masked one Secret at a time, and each watch event is
 * written as soon as its last byte arrives. Token-level masking would need the same buffering
 * for the context-dependent rules (an env var's value may precede its name), so the per-object
 * buffer costs nothing in generality and lets V8's native JSON.parse do the tokenizing.
 * A secret split across network chunks is masked because a unit is only parsed once complete.
 *
 * Numbers: while scanning a unit the scanner notes any number a double might not print back as
 * written (more than 15 digits, a fraction, an exponent, a minus sign); only such a unit is parsed
 * with the tokenizer of exact-json.ts, so its numbers leave as the upstream wrote them and the
 * common unit still costs one native JSON.parse.
 */
import type { PathSegment } from './json-path-rule.js';
import { MaskingError, MaskingErrorCode } from './masking-error.js';
import type { MaskingProfile } from './masking-profile.js';
import { numberRoundTrips, parseJsonExact, stringifyJson } from './exact-json.js';
import { ValueMasker, type MaskTarget } from './value-masker.js';

/** Options of one streaming masker. */
export interface StreamingMaskOptions extends MaskTarget {
  /** Largest single unit (one list item, one watch event's object, one root field). */
  readonly maxObjectBytes: number;
}

const S = {
  /** Before a root value (between watch events). */
  Root: 0,
  /** Inside the root object, expecting a key or `}`. */
  ObjKey: 1,
  /** After a key, expecting `:`. */
  ObjColon: 2,
  /** Expecting a root field's value. */
  ObjValue: 3,
  /** After a root field's value: `,` or `}`. */
  ObjNext: 4,
  /** Inside an array held by the root (or the root array), expecting an element or `]`. */
  ArrElem: 5,
  /** After an element: `,` or `]`. */
  ArrNext: 6,
} as const;
type S = (typeof S)[keyof typeof S];

const U = { None: 0, Container: 1, String: 2, Literal: 3, Key: 4 } as const;
type U = (typeof U)[keyof typeof U];

/**
 * The index of the quote that closes a JSON string whose bytes continue at `from` (not escaped by
 * the character before `from`): -1 when the chunk ends inside the string, -2 when it ends on an
 * escaping backslash.
 */
function stringEnd(chunk: Buffer, from: number): number {
  let at = from;
  for (;;) {
    const q = chunk.indexOf(0x22, at);
    if (q === -1) {
      let k = chunk.length - 1;
      let run = 0;
      while (k >= at && chunk[k] === 0x5c) {
        run++;
        k--;
      }
      return run % 2 === 1 ? -2 : -1;
    }
    let k = q - 1;
    let run = 0;
    while (k >= from && chunk[k] === 0x5c) {
      run++;
      k--;
    }
    if (run % 2 === 0) return q;
    at = q + 1;
  }
}

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function isLiteralChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x2b || c === 0x2d || c === 0x2e;
}

/**
 * Masks a JSON byte stream chunk by chunk: {@link push} returns the masked text that is ready,
 * {@link end} the rest. Throws {@link MaskingError} on bodies that are not JSON, units over the
 * limit, or a truncated body; the caller must then stop sending (never the raw bytes).
 */
export class StreamingJsonMasker {
  private readonly masker: ValueMasker;
  private state: S = S.Root;
  /** Root array (true) or root object (false) for the current document. */
  private rootIsArray = false;
  private key = '';
  private arrayIndex = 0;
  private rootKind: string | undefined;

  private unit: U = U.None;
  private parts: Buffer[] = [];
  private partStart = 0;
  private unitBytes = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Digits in a row outside strings, and whether the unit holds a number a double may not reproduce. */
  private digits = 0;
  private inexact = false;
  /** The unit being emitted was parsed exactly (it holds placeholders of exact numbers). */
  private exact = false;
  private out: string[] = [];
  /** Nothing is released before the first unit is masked, so an early failure can still be a clean error. */
  private released = false;

  constructor(
    profile: MaskingProfile,
    private readonly options: StreamingMaskOptions,
  ) {
    this.masker = new ValueMasker(profile, options);
  }

  /** Values masked so far. */
  get maskedFields(): number {
    return this.masker.count;
  }

  /** Feeds one chunk; returns the masked text completed by it (may be empty). */
  push(chunk: Buffer): string {
    const n = chunk.length;
    let i = 0;
    this.partStart = 0;
    while (i < n) {
      if (this.unit !== U.None) {
        i = this.scanUnit(chunk, i);
        continue;
      }
      const c = chunk[i]!;
      if (isWs(c)) {
        i++;
        continue;
      }
      this.structural(i, c);
      i++;
    }
    if (this.unit !== U.None && this.partStart < n) {
      // Keep a copy: the caller may reuse the chunk's memory.
      this.parts.push(Buffer.from(chunk.subarray(this.partStart, n)));
    }
    return this.flush();
  }

  /** Ends the stream: throws `truncated` when a value is incomplete. */
  end(): string {
    if (this.unit === U.Literal) this.finishUnit();
    if (this.unit !== U.None || this.state !== S.Root) {
      throw new MaskingError(MaskingErrorCode.Truncated, 'the upstream body ended in the middle of a JSON value');
    }
    this.released = true;
    return this.flush();
  }

  private flush(): string {
    if (this.out.length === 0 || !this.released) return '';
    const text = this.out.join('');
    this.out = [];
    return text;
  }

  private structural(i: number, c: number): void {
    switch (this.state) {
      case S.Root:
        this.rootKind = undefined;
        if (c === 0x7b) {
          this.out.push('{');
          this.rootIsArray = false;
          this.state = S.ObjKey;
        } else if (c === 0x5b) {
          this.out.push('[');
          this.rootIsArray = true;
          this.arrayIndex = 0;
          this.state = S.ArrElem;
        } else this.startUnit(i, c);
        return;
      case S.ObjKey:
        if (c === 0x22) this.startKey(i);
        else if (c === 0x7d) this.closeRoot('}');
        else this.bad('a key or }');
        return;
      case S.ObjColon:
        if (c !== 0x3a) this.bad(':');
        this.state = S.ObjValue;
        return;
      case S.ObjValue:
        this.out.push(JSON.stringify(this.key), ':');
        if (c === 0x5b) {
          this.out.push('[');
          this.arrayIndex = 0;
          this.state = S.ArrElem;
        } else this.startUnit(i, c);
        return;
      case S.ObjNext:
        if (c === 0x2c) {
          this.out.push(',');
          this.state = S.ObjKey;
        } else if (c === 0x7d) this.closeRoot('}');
        else this.bad(', or }');
        return;
      case S.ArrElem:
        if (c === 0x5d) this.closeArray();
        else this.startUnit(i, c);
        return;
      case S.ArrNext:
        if (c === 0x2c) {
          this.out.push(',');
          this.arrayIndex++;
          this.state = S.ArrElem;
        } else if (c === 0x5d) this.closeArray();
        else this.bad(', or ]');
        return;
    }
  }

  private closeArray(): void {
    this.out.push(']');
    if (this.rootIsArray) this.closeRoot('');
    else this.state = S.ObjNext;
  }

  private closeRoot(close: string): void {
    // One document per line: watch events stay newline-delimited.
    this.out.push(close, '\n');
    this.state = S.Root;
  }

  private bad(expected: string): never {
    throw new MaskingError(MaskingErrorCode.InvalidJson, `the upstream body is not valid JSON (expected ${expected})`);
  }

  private startKey(i: number): void {
    this.unit = U.Key;
    this.beginCapture(i);
    this.inString = true;
    this.escaped = false;
  }

  private startUnit(i: number, c: number): void {
    this.beginCapture(i);
    // The first byte was consumed by the structural scan: a container starts at depth 1.
    if (c === 0x7b || c === 0x5b) {
      this.unit = U.Container;
      this.depth = 1;
      this.inString = false;
      // A previous unit may have ended right after an escape that straddled a chunk boundary.
      this.escaped = false;
    } else if (c === 0x22) {
      this.unit = U.String;
      this.inString = true;
      this.escaped = false;
    } else if (isLiteralChar(c)) this.unit = U.Literal;
    else this.bad('a JSON value');
  }

  private beginCapture(i: number): void {
    this.parts = [];
    this.partStart = i;
    this.unitBytes = 0;
    this.digits = 0;
    this.inexact = false;
  }

  /** Scans bytes of the current unit from `i`; returns where structural scanning resumes. */
  private scanUnit(chunk: Buffer, i: number): number {
    const n = chunk.length;
    const limit = this.options.maxObjectBytes;
    const start = i;
    switch (this.unit) {
      case U.Container: {
        let depth = this.depth;
        let inString = this.inString;
        let escaped = this.escaped;
        let digits = this.digits;
        while (i < n) {
          if (inString) {
            if (escaped) {
              escaped = false;
              i++;
              continue;
            }
            // Jump to the string's end with native search; most of a Kubernetes object is strings.
            const end = stringEnd(chunk, i);
            if (end < 0) {
              escaped = end === -2;
              i = n;
              break;
            }
            inString = false;
            i = end + 1;
            continue;
          }
          const c = chunk[i]!;
          i++;
          if (c >= 0x30 && c <= 0x39) {
            // Up to 15 digits always survive a double; a 16th may not.
            if (++digits > 15) this.inexact = true;
            continue;
          }
          if (digits > 0) {
            if (c === 0x2e || c === 0x65 || c === 0x45) this.inexact = true;
            digits = 0;
          }
          if (c === 0x22) inString = true;
          else if (c === 0x7b || c === 0x5b) depth++;
          else if (c === 0x2d) this.inexact = true;
          else if (c === 0x7d || c === 0x5d) {
            depth--;
            if (depth === 0) {
              this.unitBytes += i - start;
              this.capture(chunk, i);
              this.finishUnit();
              return i;
            }
          }
        }
        this.depth = depth;
        this.inString = inString;
        this.escaped = escaped;
        this.digits = digits;
        break;
      }
      case U.String:
      case U.Key: {
        let j = i;
        if (this.escaped && j < n) {
          this.escaped = false;
          j++;
        }
        const end = j < n ? stringEnd(chunk, j) : -1;
        if (end >= 0) {
          this.unitBytes += end + 1 - start;
          this.capture(chunk, end + 1);
          this.finishUnit();
          return end + 1;
        }
        if (j < n) this.escaped = end === -2;
        i = n;
        break;
      }
      case U.Literal: {
        for (; i < n; i++) {
          if (!isLiteralChar(chunk[i]!)) {
            this.unitBytes += i - start;
            this.capture(chunk, i);
            this.finishUnit();
            return i;
          }
        }
        break;
      }
      case U.None:
        return i;
    }
    this.unitBytes += n - start;
    if (this.unitBytes > limit) {
      throw new MaskingError(
        MaskingErrorCode.ObjectTooLarge,
        `one object in the upstream body exceeds masking.maxObjectBytes (${limit} bytes); refusing to pass it on unmasked`,
      );
    }
    return n;
  }

  private capture(chunk: Buffer, end: number): void {
    if (end > this.partStart) this.parts.push(chunk.subarray(this.partStart, end));
    this.partStart = end;
  }

  private finishUnit(): void {
    const kind = this.unit;
    this.unit = U.None;
    if (this.unitBytes > this.options.maxObjectBytes) {
      throw new MaskingError(
        MaskingErrorCode.ObjectTooLarge,
        `one object in the upstream body exceeds masking.maxObjectBytes (${this.options.maxObjectBytes} bytes); refusing to pass it on unmasked`,
      );
    }
    const raw = this.parts.length === 1 ? this.parts[0]!.toString('utf8') : Buffer.concat(this.parts).toString('utf8');
    this.parts = [];
    let value: unknown;
    this.exact = false;
    try {
      if (this.inexact || (kind === U.Literal && !numberRoundTrips(raw))) ({ value, exact: this.exact } = parseJsonExact(raw));
      else value = JSON.parse(raw) as unknown;
    } catch (cause) {
      throw new MaskingError(MaskingErrorCode.InvalidJson, 'the upstream body is not valid JSON', { cause });
    }
    if (kind === U.Key) {
      this.key = value as string;
      this.state = S.ObjColon;
      return;
    }
    this.emitUnit(value);
  }

  private emitUnit(value: unknown): void {
    let path: PathSegment[];
    let root: { depth: number; kind: string | undefined } | undefined;
    const hint = this.options.kindHint;
    switch (this.state) {
      case S.Root:
        path = [];
        break;
      case S.ObjValue:
        path = [this.key];
        if (this.key === 'kind' && typeof value === 'string') this.rootKind = value;
        // A root field of a single object (or a watch event's `object`).
        root = this.key === 'object' ? { depth: 1, kind: kindOf(value) ?? hint } : { depth: 0, kind: this.rootKind ?? hint };
        break;
      default: {
        path = this.rootIsArray ? [this.arrayIndex] : [this.key, this.arrayIndex];
        // A list item carries no kind on the wire: it is the list's kind without "List".
        const listItemKind = this.rootKind?.endsWith('List') === true ? this.rootKind.slice(0, -4) : undefined;
        root = { depth: path.length, kind: kindOf(value) ?? listItemKind ?? hint };
      }
    }
    const masked = this.masker.maskAt(value, path, root);
    this.released = true;
    this.out.push(this.exact ? stringifyJson(masked, true) : JSON.stringify(masked));
    if (this.state === S.Root) this.out.push('\n');
    else if (this.state === S.ObjValue) this.state = S.ObjNext;
    else this.state = S.ArrNext;
  }
}

function kindOf(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const k = (v as Record<string, unknown>)['kind'];
  return typeof k === 'string' && k !== '' ? k : undefined;
}
