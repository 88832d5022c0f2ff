/** Slack Web API failures: rate limits carry Slack's Retry-After. */
export class SlackApiError extends Error {
  override readonly name = 'SlackApiError';
  constructor(
    /** Slack's `error` string, `rate_limited`, or `http_<status>` / `network`. */
    readonly code: string,
    message: string,
    /** From Retry-After on a 429, in milliseconds. */
    readonly retryAfterMs: number | undefined,
    /** True when retrying cannot help (bad token, unknown channel, invalid blocks). */
    readonly permanent: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const PERMANENT = new Set([
  'invalid_auth',
  'not_authed',
  'account_inactive',
  'token_revoked',
  'channel_not_found',
  'not_in_channel',
  'is_archived',
  'invalid_blocks',
  'invalid_arguments',
  'message_not_found',
  'cant_update_message',
  'missing_scope',
  'user_not_found',
]);

/** A string field of a Slack answer, or `fallback` when it is missing or not a string. */
function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}

/** A posted message. */
export interface PostedMessage {
  channel: string;
  ts: string;
}

/** The few Slack Web API methods the approval flow uses, over fetch, with a configurable base URL. */
export class SlackWebClient {
  constructor(private readonly opts: { apiUrl: string; botToken: string; timeoutMs?: number }) {}

  async postMessage(body: Record<string, unknown>): Promise<PostedMessage> {
    const r = await this.call('chat.postMessage', body);
    return { channel: stringOr(r['channel'], ''), ts: stringOr(r['ts'], '') };
  }

  async update(body: Record<string, unknown>): Promise<void> {
    await this.call('chat.update', body);
  }

  /**
   * Finds a message this bot posted for `approvalId` in the channel's recent history (by the
   * message metadata), for a worker that crashed after posting but before recording the ts.
   */
  async findApprovalMessage(channel: string, approvalId: string, oldestSec: number): Promise<PostedMessage | undefined> {
    let cursor = '';
    for (let page = 0; page < 10; page++) {
      const r = await this.call('conversations.history', {
        channel,
        oldest: String(oldestSec),
        limit: 200,
        include_all_metadata: true,
        ...(cursor ? { cursor } : {}),
      });
      const messages = Array.isArray(r['messages']) ? (r['messages'] as Record<string, unknown>[]) : [];
      for (const m of messages) {
        const meta = m['metadata'] as { event_type?: unknown; event_payload?: Record<string, unknown> } | undefined;
        if (meta?.event_type === APPROVAL_METADATA_EVENT && meta.event_payload?.['approval_id'] === approvalId) {
          return { channel: stringOr(r['channel'], channel), ts: stringOr(m['ts'], '') };
        }
      }
      const next = (r['response_metadata'] as { next_cursor?: unknown } | undefined)?.next_cursor;
      if (typeof next !== 'string' || next === '') return undefined;
      cursor = next;
    }
    return undefined;
  }

  /** The email of a Slack user (users:read.email), for approver mapping by email. */
  async userEmail(userId: string): Promise<string | undefined> {
    const r = await this.call('users.info', { user: userId });
    const email = (r['user'] as { profile?: { email?: unknown } } | undefined)?.profile?.email;
    return typeof email === 'string' ? email : undefined;
  }

  /** Answers an interaction through its response_url (ephemeral to the clicking user). */
  async respond(responseUrl: string, text: string): Promise<void> {
    const res = await this.fetch(responseUrl, { response_type: 'ephemeral', replace_original: false, text }, false);
    if (!res.ok) throw new SlackApiError(`http_${res.status}`, `response_url answered ${res.status}`, undefined, res.status < 500 && res.status !== 429);
  }

  private async call(method: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const res = await this.fetch(`${this.opts.apiUrl.replace(/\/$/, '')}/${method}`, body, true);
    if (res.status === 429) {
      const after = Number(res.headers.get('retry-after') ?? '1');
      throw new SlackApiError('rate_limited', `Slack ${method} rate limited`, (Number.isFinite(after) && after >= 0 ? after : 1) * 1000, false);
    }
    if (!res.ok) throw new SlackApiError(`http_${res.status}`, `Slack ${method} answered HTTP ${res.status}`, undefined, false);
    let json: Record<string, unknown>;
    try {
      json = (await res.json()) as Record<string, unknown>;
    } catch (cause) {
      throw new SlackApiError('bad_response', `Slack ${method} answered with something other than JSON`, undefined, false, { cause });
    }
    if (json['ok'] !== true) {
      const code = typeof json['error'] === 'string' ? json['error'] : 'unknown_error';
      throw new SlackApiError(code, `Slack ${method} failed: ${code}`, undefined, PERMANENT.has(code));
    }
    return json;
  }

  private async fetch(url: string, body: Record<string, unknown>, auth: boolean): Promise<Response> {
    try {
      return await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8', ...(auth ? { authorization: `Bearer ${this.opts.botToken}` } : {}) },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      });
    } catch (cause) {
      throw new SlackApiError('network', `Slack unreachable: ${(cause as Error).message}`, undefined, false, { cause });
    }
  }
}

/** The metadata event type on every approval message (found again after a crash). */
export const APPROVAL_METADATA_EVENT = 'portcullis_approval';
