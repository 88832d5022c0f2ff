/**
 * The edge's masking of one request: the upstream is asked for identity-encoded JSON, and the
 * response is piped through the streaming masker. Anything the masker cannot read is withheld
 * with a 502 Status — never passed through. The request body's audit copy is masked here too.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Readable, Transform } from 'node:stream';
import type { RequestAttributes } from '@portcullis/contracts';
import {
  BodyRecorder,
  MaskingError,
  MaskingErrorCode,
  type MaskingProfile,
  MaskingProfiles,
  maskRequestBody,
  ResponseExcerpt,
  StreamingJsonMasker,
  type BodyExcerpt,
  type MaskingProfileSpec,
  type MaskTarget,
} from '@portcullis/masking';
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
}

/** Builds the edge's masking from config-shaped settings. */
export function createEdgeMasking(settings: {
  profiles: Readonly<Record<string, MaskingProfileSpec>>;
  auditProfile: string;
  hmacKey?: string | undefined;
  maxObjectBytes: number;
  requestCaptureBytes: number;
  excerptBytes: number;
}): EdgeMasking {
  const profiles = new MaskingProfiles(settings.profiles, settings.hmacKey);
  return {
    profiles,
    auditProfile: profiles.get(settings.auditProfile),
    maxObjectBytes: settings.maxObjectBytes,
    requestCaptureBytes: settings.requestCaptureBytes,
    excerptBytes: settings.excerptBytes,
  };
}

/** The built-in masking when none is configured: one `secrets` profile with every default rule. */
export function defaultEdgeMasking(): EdgeMasking {
  return createEdgeMasking({
    profiles: { secrets: {} },
    auditProfile: 'secrets',
    maxObjectBytes: 16 * 1024 * 1024,
    requestCaptureBytes: 1024 * 1024,
    excerptBytes: 8192,
  });
}

const KIND_OF_RESOURCE: Readonly<Record<string, string>> = {
  secrets: 'Secret',
  configmaps: 'ConfigMap',
  pods: 'Pod',
  deployments: 'Deployment',
  statefulsets: 'StatefulSet',
  daemonsets: 'DaemonSet',
  replicasets: 'ReplicaSet',
  jobs: 'Job',
  cronjobs: 'CronJob',
  serviceaccounts: 'ServiceAccount',
};

/** What the masker reads a request's bodies as. */
export function maskTargetFor(kind: 'kubernetes' | 'http', attributes: RequestAttributes): MaskTarget {
  if (kind === 'http') return { mode: 'generic' };
  const k = attributes.kube;
  const hint = k?.resource === 'serviceaccounts' && k.subresource === 'token' ? 'TokenRequest' : KIND_OF_RESOURCE[k?.resource ?? ''];
  return { mode: 'kubernetes', kindHint: hint };
}

/** The masking of one request whose decision named a profile. */
export interface MaskPlan {
  readonly profile: MaskingProfile;
  readonly target: MaskTarget;
}

/** Resolves the decision's profile; a profile this gateway lacks is a refusal (fail closed). */
export function planMasking(masking: EdgeMasking, profileName: string, kind: 'kubernetes' | 'http', attributes: RequestAttributes): MaskPlan {
  try {
    return { profile: masking.profiles.get(profileName), target: maskTargetFor(kind, attributes) };
  } catch (cause) {
    throw new GatewayError(GatewayErrorCode.MaskingUnavailable, `portcullis: ${(cause as Error).message}; the request was not forwarded`, { cause });
  }
}

const PROTOBUF = 'application/vnd.kubernetes.protobuf';

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
  return new BodyRecorder(masking.requestCaptureBytes);
}

/** The masked audit copy of a recorded request body. */
export function auditRequestBody(recorder: BodyRecorder, req: IncomingMessage, masking: EdgeMasking, plan: MaskPlan | undefined, target: MaskTarget): BodyExcerpt {
  const contentType = typeof req.headers['content-type'] === 'string' ? req.headers['content-type'] : '';
  return maskRequestBody(recorder.finish(), contentType, plan?.profile ?? masking.auditProfile, plan?.target ?? target, masking.excerptBytes);
}

/** How {@link pipeMaskedResponse} reports back to the pipeline. */
export interface MaskedResponseHooks {
  /** Answers a refusal (a Status) while no header was sent. */
  refuse(err: GatewayError): void;
  /** The exchange ended: status, error ('' on success), bytes sent, body details. */
  finish(status: number, error: string, bytesOut: number, response: BodyExcerpt | undefined, maskedFields: number): void;
}

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
export function pipeMaskedResponse(
  up: UpstreamResponse,
  res: ServerResponse,
  method: string,
  plan: MaskPlan,
  masking: EdgeMasking,
  auditIdHeader: string,
  requestId: string,
  hooks: MaskedResponseHooks,
): void {
  const status = up.statusCode;
  const contentType = typeof up.headers['content-type'] === 'string' ? up.headers['content-type'] : '';
  const mediaType = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  const encoding = (typeof up.headers['content-encoding'] === 'string' ? up.headers['content-encoding'] : '').trim().toLowerCase();
  const outHeaders = clientResponseHeaders(up.headers);
  for (const name of Object.keys(outHeaders)) {
    const lower = name.toLowerCase();
    if (lower === 'content-length' || lower === 'content-encoding' || lower === 'content-md5' || lower === 'digest') delete outHeaders[name];
  }
  outHeaders[auditIdHeader.toLowerCase()] = requestId;
  outHeaders['x-portcullis-masked'] = plan.profile.name;

  const noBody = method === 'HEAD' || status === 204 || status === 304 || up.headers['content-length'] === '0';
  if (noBody) {
    res.writeHead(status, outHeaders);
    up.body.resume();
    up.body.on('end', () => res.end());
    res.on('finish', () => hooks.finish(status, '', 0, undefined, 0));
    return;
  }
  const withhold = (why: string): void => {
    up.body.destroy();
    const err = new GatewayError(GatewayErrorCode.UnmaskableResponse, `portcullis: ${why}; the response was withheld because it could not be masked`);
    hooks.refuse(err);
    hooks.finish(err.httpStatus, err.message, 0, undefined, 0);
  };
  if (mediaType !== 'application/json' && !mediaType.endsWith('+json')) {
    withhold(`the upstream answered ${JSON.stringify(mediaType || 'no content type')} to a masked request (profile ${plan.profile.name})`);
    return;
  }
  const decoder = decoderFor(encoding);
  if (decoder === 'unsupported') {
    withhold(`the upstream used content encoding ${JSON.stringify(encoding.slice(0, 40))}, which the masker cannot decode`);
    return;
  }

  const masker = new StreamingJsonMasker(plan.profile, { ...plan.target, maxObjectBytes: masking.maxObjectBytes });
  const excerpt = new ResponseExcerpt(masking.excerptBytes);
  let bytesOut = 0;
  let failed = false;
  let done = false;
  const isStream = /stream=watch/i.test(contentType);
  const end = (error: string): void => {
    if (done) return;
    done = true;
    hooks.finish(res.headersSent ? res.statusCode : status, error, bytesOut, excerpt.finish(contentType, masker.maskedFields), masker.maskedFields);
  };
  const send = (text: string): boolean => {
    if (text.length === 0) return true;
    if (!res.headersSent) res.writeHead(status, outHeaders);
    excerpt.add(text);
    bytesOut += Buffer.byteLength(text);
    return res.write(text);
  };
  const fail = (err: unknown): void => {
    if (failed) return;
    failed = true;
    up.body.destroy();
    const code = err instanceof MaskingError ? err.code : MaskingErrorCode.InvalidJson;
    const message = err instanceof MaskingError ? err.message : `the upstream body could not be decoded (${(err as Error).message})`;
    if (!res.headersSent) {
      hooks.refuse(new GatewayError(GatewayErrorCode.UnmaskableResponse, `portcullis: ${message}; the response was withheld because it could not be masked`));
      end(`masking failed: ${code}`);
      return;
    }
    res.destroy();
    end(`masking failed mid-response: ${code}`);
  };
  // A watch stream's headers go out at once: the first event may be minutes away.
  if (isStream) {
    res.writeHead(status, outHeaders);
    res.flushHeaders();
  }
  const source: NodeJS.ReadableStream = decoder === undefined ? up.body : up.body.pipe(decoder);
  if (decoder !== undefined) decoder.on('error', fail);
  source.on('data', (chunk: Buffer) => {
    if (failed) return;
    let text: string;
    try {
      text = masker.push(chunk);
    } catch (err) {
      fail(err);
      return;
    }
    if (!send(text)) up.body.pause();
  });
  res.on('drain', () => up.body.resume());
  source.on('end', () => {
    if (failed) return;
    let text: string;
    try {
      text = masker.end();
    } catch (err) {
      fail(err);
      return;
    }
    send(text);
    if (!res.headersSent) res.writeHead(status, outHeaders);
    res.end();
  });
  up.body.on('error', (err) => {
    if (failed) return;
    failed = true;
    res.destroy();
    end(`upstream response aborted: ${err.message}`);
  });
  res.on('finish', () => end(''));
  res.on('close', () => {
    if (!res.writableFinished) {
      up.body.destroy();
      end('client disconnected');
    }
  });
}
