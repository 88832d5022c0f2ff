/**
 * The edge's masking of one request: the upstream is asked for identity-encoded JSON, and the
 * response is piped through the streaming masker (JSON), or, for `text/plain` (container logs),
 * through the text masker line by line. Anything the maskers cannot read is withheld with a 502
 * Status — never passed through. The request body's audit copy is masked here too.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Readable, Transform } from 'node:stream';
import {
  BodyDecoding,
  BodyDigest,
  BodyRecorder,
  MaskingError,
  MaskingErrorCode,
  type MaskingProfile,
  MaskingProfiles,
  maskRequestBody,
  ResponseExcerpt,
  StreamingJsonMasker,
  StreamingTextMasker,
  TextStreamDecoder,
  type BodyExcerpt,
  type MaskingProfileSpec,
  type MaskTarget,
} from '@portcullis/masking';
import { AUDIT_ID_FIELD } from './edge-responses.js';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';
import { clientResponseHeaders } from './header-hygiene.js';

/** The edge's masking configuration (compiled once). */
export interface EdgeMasking {
  readonly profiles: MaskingProfiles;
  /** Masks request-body audit copies of requests whose decision names no profile. */
  readonly auditProfile: MaskingProfile;
  readonly maxObjectBytes: number;
  readonly requestCaptureBytes: number;
  readonly excerptBytes: number;
  /** Keys the digests of audited bodies (and of bodies an approval is bound to). */
  readonly bodyDigest: BodyDigest;
}

/** Builds the edge's masking from config-shaped settings. */
export function createEdgeMasking(settings: {
  profiles: Readonly<Record<string, MaskingProfileSpec>>;
  auditProfile: string;
  hmacKey?: string | undefined;
  maxObjectBytes: number;
  requestCaptureBytes: number;
  excerptBytes: number;
  bodyDigest: BodyDigest;
}): EdgeMasking {
  const profiles = new MaskingProfiles(settings.profiles, settings.hmacKey);
  return {
    profiles,
    auditProfile: profiles.get(settings.auditProfile),
    maxObjectBytes: settings.maxObjectBytes,
    requestCaptureBytes: settings.requestCaptureBytes,
    excerptBytes: settings.excerptBytes,
    bodyDigest: settings.bodyDigest,
  };
}

/** The built-in masking when none is configured: one `secrets` profile with every default rule, a body key of its own. */
export function defaultEdgeMasking(): EdgeMasking {
  return createEdgeMasking({
    profiles: { secrets: {} },
    auditProfile: 'secrets',
    maxObjectBytes: 16 * 1024 * 1024,
    requestCaptureBytes: 1024 * 1024,
    excerptBytes: 8192,
    bodyDigest: new BodyDigest(randomBytes(32)),
  });
}

/** The masking of one request whose decision named a profile. */
export interface MaskPlan {
  readonly profile: MaskingProfile;
  readonly target: MaskTarget;
}

/** Resolves the decision's profile; a profile this gateway lacks is a refusal (fail closed). */
export function planMasking(masking: EdgeMasking, profileName: string, target: MaskTarget): MaskPlan {
  try {
    return { profile: masking.profiles.get(profileName), target };
  } catch (cause) {
    throw new GatewayError(GatewayErrorCode.MaskingUnavailable, `portcullis: ${(cause as Error).message}; the request was not forwarded`, { cause });
  }
}

const PROTOBUF = 'application/vnd.kubernetes.protobuf';

/**
 * How long masked text (a log line, exec output) without a newline is held before it is released
 * up to its last whitespace (a prompt goes out; a word still being written, perhaps a secret's
 * head, waits), and before everything is released anyway: the longest delay the text masker adds
 * (see the README's masking section).
 */
export const TEXT_FLUSH_MS = 100;
export const TEXT_HOLD_MAX_MS = 1000;

/**
 * Releases held text after bounded waits. `release(all)` sends what it releases and says whether
 * text is still held; {@link update} is called after each push with whether text is held.
 */
export class HeldTextTimer {
  private timer: NodeJS.Timeout | undefined;
  private since = 0;

  constructor(private readonly release: (all: boolean) => boolean) {}

  update(holding: boolean): void {
    if (!holding) {
      this.since = 0;
      return;
    }
    if (this.since === 0) this.since = performance.now();
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.update(this.release(performance.now() - this.since >= TEXT_HOLD_MAX_MS - TEXT_FLUSH_MS / 2));
    }, TEXT_FLUSH_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** What a masked response's body goes through: the JSON masker, or the text masker for logs. */
interface BodyMasker {
  readonly decoding: BodyDecoding;
  readonly maskedFields: number;
  /** Text held back waiting for its newline (text only). */
  readonly holding: boolean;
  push(chunk: Buffer): string;
  /** Releases held text (text only): all of it, or up to its last whitespace. */
  flush(all: boolean): string;
  end(): string;
}

class JsonBodyMasker implements BodyMasker {
  readonly decoding = BodyDecoding.Json;
  readonly holding = false;
  constructor(private readonly masker: StreamingJsonMasker) {}
  get maskedFields(): number {
    return this.masker.maskedFields;
  }
  push(chunk: Buffer): string {
    return this.masker.push(chunk);
  }
  flush(): string {
    return '';
  }
  end(): string {
    return this.masker.end();
  }
}

/** UTF-8 text masked by the value detectors; bytes that are not text fail it (`not_text`). */
export class TextBodyMasker implements BodyMasker {
  readonly decoding = BodyDecoding.Text;
  private readonly decoder = new TextStreamDecoder();
  private readonly masker: StreamingTextMasker;
  constructor(profile: MaskingProfile) {
    this.masker = new StreamingTextMasker(profile);
  }
  get maskedFields(): number {
    return this.masker.count;
  }
  get holding(): boolean {
    return this.masker.holding;
  }
  push(chunk: Buffer): string {
    return this.masker.push(this.decoder.decode(chunk));
  }
  flush(all: boolean): string {
    return all ? this.masker.flush() : this.masker.flushWords();
  }
  end(): string {
    return this.masker.push(this.decoder.end()) + this.masker.flush();
  }
}

/** `text/plain` in UTF-8 (or ASCII, or no charset): the text the text masker reads. */
function isMaskableText(contentType: string): boolean {
  const [type = '', ...params] = contentType.split(';');
  if (type.trim().toLowerCase() !== 'text/plain') return false;
  const charset = params.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith('charset='));
  return charset === undefined || /^charset="?(utf-8|utf8|us-ascii)"?$/.test(charset);
}

/**
 * Rewrites a masked request's `Accept` so the upstream answers JSON the masker can read:
 * protobuf and YAML ranges become JSON with the same parameters (`as=Table` survives), `*` ranges
 * become JSON, anything else is dropped; and `Accept-Encoding: identity`.
 */
export function rewriteAcceptForMasking(headers: OutgoingHttpHeaders): void {
  let text = '';
  for (const [name, raw] of Object.entries(headers)) {
    if (name.toLowerCase() !== 'accept') continue;
    text += `${text === '' ? '' : ','}${Array.isArray(raw) ? raw.join(',') : String(raw ?? '')}`;
  }
  const ranges: string[] = [];
  for (const part of text.split(',')) {
    const [type = '', ...params] = part.split(';');
    const mediaType = type.trim().toLowerCase();
    if (mediaType === '') continue;
    const keep = params.map((p) => p.trim()).filter((p) => p !== '' && !/^q=/i.test(p));
    let json: string;
    if (mediaType === 'application/json' || mediaType === PROTOBUF || mediaType === 'application/yaml') json = ['application/json', ...keep].join(';');
    else if (mediaType === '*/*' || mediaType === 'application/*') json = 'application/json';
    else continue;
    if (!ranges.includes(json)) ranges.push(json);
  }
  if (!ranges.includes('application/json')) ranges.push('application/json');
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (lower === 'accept' || lower === 'accept-encoding') delete headers[name];
  }
  headers['accept'] = ranges.join(', ');
  headers['accept-encoding'] = 'identity';
}

/** Audited body details of a completed exchange. */
export interface ExchangeBodies {
  requestBody?: BodyExcerpt;
  responseBody?: BodyExcerpt;
  maskedFields: number;
  maskProfile: string;
}

/** Starts recording a request body when the request has one (no cost for bodiless requests). */
export function requestBodyRecorder(req: IncomingMessage, masking: EdgeMasking): BodyRecorder | undefined {
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) return undefined;
  return new BodyRecorder(masking.requestCaptureBytes, masking.bodyDigest);
}

/** The masked audit copy of a recorded request body. */
export function auditRequestBody(
  recorder: BodyRecorder,
  req: IncomingMessage,
  masking: EdgeMasking,
  plan: MaskPlan | undefined,
  target: MaskTarget,
): BodyExcerpt {
  const contentType = typeof req.headers['content-type'] === 'string' ? req.headers['content-type'] : '';
  return maskRequestBody(recorder.finish(), contentType, plan?.profile ?? masking.auditProfile, plan?.target ?? target, masking.excerptBytes);
}

/** The exchange a masked response belongs to (the request's context satisfies it). */
export interface MaskedExchange {
  readonly res: ServerResponse;
  /** The request's id, sent as its Audit-Id. */
  readonly id: string;
  readonly attributes: { readonly method: string };
  /** Response bytes sent to the client: set when the masked response ends. */
  bytesOut: number;
  /** Answers a refusal (while no header was sent). */
  fail(err: GatewayError): unknown;
}

/** How a masked response ends: status, error ('' on success), the audited excerpt and the masked field count. */
export type MaskedResponseEnd<T extends MaskedExchange> = (
  exchange: T,
  status: number,
  error: string,
  response: BodyExcerpt | undefined,
  maskedFields: number,
) => void;

function decoderFor(encoding: string): Transform | undefined | 'unsupported' {
  switch (encoding) {
    case '':
    case 'identity':
      return undefined;
    case 'gzip':
    case 'x-gzip':
      return createGunzip();
    case 'deflate':
      return createInflate();
    case 'br':
      return createBrotliDecompress();
    default:
      return 'unsupported';
  }
}

/** An upstream response: status, headers and the body stream. */
export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
}

/**
 * Pipes an upstream response through the masker to the client. Headers are sent with the first
 * masked bytes (a failure before them is a clean 502 Status; after them the connection is cut,
 * so a client never receives unmasked or half-masked JSON as if complete). Watch streams are
 * written event by event, with back-pressure on the upstream.
 */
export function pipeMaskedResponse<T extends MaskedExchange>(
  up: UpstreamResponse,
  exchange: T,
  plan: MaskPlan,
  masking: EdgeMasking,
  onEnd: MaskedResponseEnd<T>,
): void {
  new MaskedResponse(up, exchange, plan, masking, onEnd).start();
}

/** One masked response on its way to the client. */
class MaskedResponse<T extends MaskedExchange> {
  private readonly status: number;
  private readonly contentType: string;
  private readonly outHeaders: OutgoingHttpHeaders;
  private masker!: BodyMasker;
  private excerpt!: ResponseExcerpt;
  private readonly held = new HeldTextTimer((all) => {
    if (this.failed || this.done) return false;
    this.send(this.masker.flush(all));
    return this.masker.holding;
  });
  private bytesOut = 0;
  private failed = false;
  private done = false;

  constructor(
    private readonly up: UpstreamResponse,
    private readonly x: T,
    private readonly plan: MaskPlan,
    private readonly masking: EdgeMasking,
    private readonly onEnd: MaskedResponseEnd<T>,
  ) {
    this.status = up.statusCode;
    this.contentType = typeof up.headers['content-type'] === 'string' ? up.headers['content-type'] : '';
    this.outHeaders = clientResponseHeaders(up.headers);
    for (const name of Object.keys(this.outHeaders)) {
      const lower = name.toLowerCase();
      if (lower === 'content-length' || lower === 'content-encoding' || lower === 'content-md5' || lower === 'digest') delete this.outHeaders[name];
    }
    this.outHeaders[AUDIT_ID_FIELD] = x.id;
    this.outHeaders['x-portcullis-masked'] = plan.profile.name;
  }

  /** Relays a bodiless answer, withholds what the masker cannot read, or streams the body through the masker. */
  start(): void {
    const { up, x } = this;
    if (x.attributes.method === 'HEAD' || this.status === 204 || this.status === 304 || up.headers['content-length'] === '0') {
      this.relayEmpty();
      return;
    }
    const mediaType = (this.contentType.split(';')[0] ?? '').trim().toLowerCase();
    const text = isMaskableText(this.contentType);
    if (mediaType !== 'application/json' && !mediaType.endsWith('+json') && !text) {
      const what = mediaType === 'text/plain' ? this.contentType.trim().slice(0, 80) : mediaType || 'no content type';
      this.withhold(`the upstream answered ${JSON.stringify(what)} to a masked request (profile ${this.plan.profile.name})`);
      return;
    }
    const encoding = (typeof up.headers['content-encoding'] === 'string' ? up.headers['content-encoding'] : '').trim().toLowerCase();
    const decoder = decoderFor(encoding);
    if (decoder === 'unsupported') {
      this.withhold(`the upstream used content encoding ${JSON.stringify(encoding.slice(0, 40))}, which the masker cannot decode`);
      return;
    }
    this.masker = text
      ? new TextBodyMasker(this.plan.profile)
      : new JsonBodyMasker(new StreamingJsonMasker(this.plan.profile, { ...this.plan.target, maxObjectBytes: this.masking.maxObjectBytes }));
    this.stream(decoder);
  }

  private relayEmpty(): void {
    const { up, x } = this;
    x.res.writeHead(this.status, this.outHeaders);
    up.body.resume();
    up.body.on('end', () => x.res.end());
    x.res.on('finish', () => this.onEnd(x, this.status, '', undefined, 0));
  }

  private withhold(why: string): void {
    this.up.body.destroy();
    const err = new GatewayError(GatewayErrorCode.UnmaskableResponse, `portcullis: ${why}; the response was withheld because it could not be masked`);
    this.x.fail(err);
    this.onEnd(this.x, err.httpStatus, err.message, undefined, 0);
  }

  private stream(decoder: Transform | undefined): void {
    const { up, x } = this;
    const res = x.res;
    this.excerpt = new ResponseExcerpt(this.masking.excerptBytes, this.masking.bodyDigest);
    // A watch stream's headers go out at once: the first event may be minutes away.
    if (/stream=watch/i.test(this.contentType)) {
      res.writeHead(this.status, this.outHeaders);
      res.flushHeaders();
    }
    const source: NodeJS.ReadableStream = decoder === undefined ? up.body : up.body.pipe(decoder);
    if (decoder !== undefined) decoder.on('error', (err) => this.fail(err));
    source.on('data', (chunk: Buffer) => this.push(chunk));
    res.on('drain', () => up.body.resume());
    source.on('end', () => this.flushEnd());
    up.body.on('error', (err) => {
      if (this.failed) return;
      this.failed = true;
      res.destroy();
      this.end(`upstream response aborted: ${err.message}`);
    });
    res.on('finish', () => this.end(''));
    res.on('close', () => {
      if (!res.writableFinished) {
        up.body.destroy();
        this.end('client disconnected');
      }
    });
  }

  private push(chunk: Buffer): void {
    if (this.failed) return;
    let text: string;
    try {
      text = this.masker.push(chunk);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (!this.send(text)) this.up.body.pause();
    // Text without its newline yet (a prompt, a progress line) is released after a bounded wait.
    this.held.update(this.masker.holding);
  }

  private flushEnd(): void {
    this.stopTimer();
    if (this.failed) return;
    let text: string;
    try {
      text = this.masker.end();
    } catch (err) {
      this.fail(err);
      return;
    }
    this.send(text);
    if (!this.x.res.headersSent) this.x.res.writeHead(this.status, this.outHeaders);
    this.x.res.end();
  }

  private send(text: string): boolean {
    if (text.length === 0) return true;
    const res = this.x.res;
    if (!res.headersSent) res.writeHead(this.status, this.outHeaders);
    this.excerpt.add(text);
    this.bytesOut += Buffer.byteLength(text);
    return res.write(text);
  }

  private stopTimer(): void {
    this.held.stop();
  }

  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.stopTimer();
    this.up.body.destroy();
    const code = err instanceof MaskingError ? err.code : MaskingErrorCode.InvalidJson;
    const message = err instanceof MaskingError ? err.message : `the upstream body could not be decoded (${(err as Error).message})`;
    if (!this.x.res.headersSent) {
      this.x.fail(new GatewayError(GatewayErrorCode.UnmaskableResponse, `portcullis: ${message}; the response was withheld because it could not be masked`));
      this.end(`masking failed: ${code}`);
      return;
    }
    this.x.res.destroy();
    this.end(`masking failed mid-response: ${code}`);
  }

  private end(error: string): void {
    if (this.done) return;
    this.done = true;
    this.stopTimer();
    const res = this.x.res;
    this.x.bytesOut = this.bytesOut;
    this.onEnd(
      this.x,
      res.headersSent ? res.statusCode : this.status,
      error,
      this.excerpt.finish(this.contentType, this.masker.maskedFields, this.masker.decoding),
      this.masker.maskedFields,
    );
  }
}
