import { Inject, Injectable, type CanActivate } from '@nestjs/common';
import type { PortcullisConfig } from '@portcullis/config';
import type { Logger } from '@portcullis/common';
import { SLACK_MAX_AGE_MS, verifySlackSignature, type ApprovalStore, type SlackJobQueue } from '@portcullis/approval';
import { CLOCK, CONFIG, LOGGER, type Clock } from '../../runtime/src/index.js';
import { APPROVAL_STORE, SLACK_QUEUE } from './approval.providers.js';

/** Why a Slack interaction was not taken. */
export const SlackInteractionRefusal = {
  Disabled: 'slack_disabled',
  BadSignature: 'bad_signature',
  Replay: 'replay',
  NoPayload: 'no_payload',
  Unavailable: 'unavailable',
} as const;
export type SlackInteractionRefusal = (typeof SlackInteractionRefusal)[keyof typeof SlackInteractionRefusal];

const HTTP_STATUS = {
  slack_disabled: 404,
  bad_signature: 401,
  replay: 409,
  no_payload: 400,
  unavailable: 503,
} as const satisfies Record<SlackInteractionRefusal, number>;

/** A Slack interaction refused; `error` is the code the API answers with (`signature_stale`, `replay`, …). */
export class SlackInteractionError extends Error {
  override readonly name = 'SlackInteractionError';
  constructor(
    readonly refusal: SlackInteractionRefusal,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }

  /** The HTTP status the API answers with. */
  get httpStatus(): number {
    return HTTP_STATUS[this.refusal];
  }
}

/** One signed Slack callback as received. */
export interface SlackInteraction {
  readonly rawBody: Buffer;
  readonly signature: string | undefined;
  readonly timestamp: string | undefined;
  readonly ip: string;
}

/**
 * Slack interactivity: verifies a callback is genuine and fresh (signature over the raw body),
 * refuses a replay, and hands the work to the Slack queue — answered at once, done by the worker.
 */
@Injectable()
export class SlackInteractions {
  constructor(
    @Inject(CONFIG) private readonly config: PortcullisConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(APPROVAL_STORE) private readonly store: ApprovalStore,
    @Inject(SLACK_QUEUE) private readonly queue: SlackJobQueue | undefined,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  /** Whether Slack is enabled on this gateway (`approval.slack.enabled`). */
  get enabled(): boolean {
    return this.queue !== undefined;
  }

  async receive(i: SlackInteraction): Promise<void> {
    const queue = this.queue;
    if (queue === undefined) throw disabled();
    const signingSecret = this.config.approval.slack.signingSecret;
    const problem = verifySlackSignature({ signingSecret, timestamp: i.timestamp, signature: i.signature, rawBody: i.rawBody, nowMs: this.clock() });
    if (problem !== undefined) {
      this.logger.warn('Slack interaction refused', { problem, ip: i.ip });
      throw new SlackInteractionError(SlackInteractionRefusal.BadSignature, `signature_${problem}`, 'the request is not a genuine, fresh Slack request');
    }
    // The same signed request twice is a replay (Slack never resends an interaction).
    if (!(await this.store.claimOnce(`slack-signature:${i.signature!}`, 2 * SLACK_MAX_AGE_MS))) {
      this.logger.warn('Slack interaction replay refused', { ip: i.ip });
      throw new SlackInteractionError(SlackInteractionRefusal.Replay, 'replay', 'this interaction was already received');
    }
    const payload = new URLSearchParams(i.rawBody.toString('utf8')).get('payload');
    if (payload === null) throw new SlackInteractionError(SlackInteractionRefusal.NoPayload, 'no_payload', 'expected a form field "payload"');
    try {
      await queue.add({ kind: 'interaction', payload, signature: i.signature! });
    } catch (err) {
      this.logger.error('could not queue a Slack interaction', { err });
      throw new SlackInteractionError(SlackInteractionRefusal.Unavailable, 'unavailable', 'the approval queue is unavailable');
    }
  }
}

/** Refuses Slack callbacks before their body is read when Slack is off. */
@Injectable()
export class SlackEnabledGuard implements CanActivate {
  constructor(@Inject(SlackInteractions) private readonly slack: SlackInteractions) {}

  canActivate(): boolean {
    if (!this.slack.enabled) throw disabled();
    return true;
  }
}

function disabled(): SlackInteractionError {
  return new SlackInteractionError(SlackInteractionRefusal.Disabled, 'slack_disabled', 'Slack is not enabled on this gateway (approval.slack.enabled)');
}
