import { createHmac, timingSafeEqual } from 'node:crypto';

/** Why a Slack request signature was refused. */
export const SlackSignatureProblem = {
  Missing: 'missing',
  Malformed: 'malformed',
  Stale: 'stale',
  Mismatch: 'mismatch',
} as const;
export type SlackSignatureProblem = (typeof SlackSignatureProblem)[keyof typeof SlackSignatureProblem];

/** Slack refuses requests older than this; so do we (replays outside the window are stale). */
export const SLACK_MAX_AGE_MS = 5 * 60_000;

const SIGNATURE = /^v0=[0-9a-f]{64}$/;
const TIMESTAMP = /^[0-9]{1,12}$/;

/** The v0 signature Slack sends: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}`. */
export function slackSignature(signingSecret: string, timestamp: string, rawBody: Buffer | string): string {
  const mac = createHmac('sha256', signingSecret);
  mac.update(`v0:${timestamp}:`);
  mac.update(rawBody);
  return `v0=${mac.digest('hex')}`;
}

/**
 * Verifies `X-Slack-Signature` over the raw body with a constant-time compare, refusing
 * timestamps more than five minutes from now (either way). Returns the problem, or undefined
 * when the request is genuine.
 */
export function verifySlackSignature(opts: {
  signingSecret: string;
  timestamp: string | undefined;
  signature: string | undefined;
  rawBody: Buffer;
  nowMs: number;
}): SlackSignatureProblem | undefined {
  const { timestamp, signature } = opts;
  if (timestamp === undefined || signature === undefined || timestamp === '' || signature === '') return SlackSignatureProblem.Missing;
  if (!TIMESTAMP.test(timestamp) || !SIGNATURE.test(signature)) return SlackSignatureProblem.Malformed;
  if (Math.abs(opts.nowMs - Number(timestamp) * 1000) > SLACK_MAX_AGE_MS) return SlackSignatureProblem.Stale;
  const expected = Buffer.from(slackSignature(opts.signingSecret, timestamp, opts.rawBody), 'utf8');
  const given = Buffer.from(signature, 'utf8');
  // Same length guaranteed by the format check: timingSafeEqual never throws here.
  return timingSafeEqual(expected, given) ? undefined : SlackSignatureProblem.Mismatch;
}
