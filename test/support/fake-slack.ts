/**
 * A local fake of the Slack Web API for the approval tests: records every call, keeps the
 * channel history (with message metadata) so chat.update and conversations.history behave like
 * Slack's, can answer 429 with Retry-After or hold a chat.postMessage open, and drives
 * interaction callbacks with genuinely signed payloads (v0 HMAC over the raw body).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { slackSignature } from '@portcullis/approval/pure';
import { listenUrl } from '@portcullis/common';

/** One Web API call as the fake received it. */
export interface SlackCall {
  method: string;
  body: Record<string, unknown>;
  authorization: string;
  at: number;
  /** What the fake answered (429, 200). */
  status: number;
}

/** A message in the fake's history. */
export interface FakeSlackMessage {
  channel: string;
  ts: string;
  text: string;
  blocks: Record<string, unknown>[];
  metadata: { event_type?: string; event_payload?: Record<string, unknown> } | undefined;
  updates: number;
}

/** A signed interaction ready to send (or to tamper with, for the refusal table). */
export interface SignedInteraction {
  body: string;
  headers: Record<string, string>;
}

/** The fake. */
export interface FakeSlack {
  /** Base URL for `approval.slack.apiUrl` (…/api). */
  readonly apiUrl: string;
  readonly calls: SlackCall[];
  readonly messages: FakeSlackMessage[];
  /** Bodies POSTed to response_url (ephemeral answers to the clicking user). */
  readonly responses: Record<string, unknown>[];
  /** The next `count` calls of `method` answer 429 with `Retry-After: retryAfterSec`. */
  rateLimit(method: string, count: number, retryAfterSec: number): void;
  /**
   * The next chat.postMessage is recorded (the message exists) but its answer is held until
   * `release()`; `received` resolves when it arrives.
   */
  holdNextPost(): { received: Promise<void>; release: () => void };
  /** Messages posted for an approval (by the metadata Portcullis attaches). */
  messagesFor(approvalId: string): FakeSlackMessage[];
  /** The approval ids in posted messages, oldest first. */
  approvalIds(): string[];
  /** Builds a block_actions payload as Slack sends it when a user clicks Approve or Deny. */
  interaction(opts: {
    approvalId: string;
    action: 'approve' | 'deny';
    userId: string;
    reason?: string;
    signingSecret: string;
    timestampSec?: number;
  }): SignedInteraction;
  /** POSTs an interaction to `url` (the approval role's /slack/interactions). */
  send(url: string, interaction: SignedInteraction, ca: string): Promise<{ status: number; body: string; ms: number }>;
  close(): Promise<void>;
}

/** A string field of a request, or `fallback` when it is missing or not a string. */
function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}

/** Starts the fake on a free loopback port. */
export async function startFakeSlack(opts: { botToken: string; channels?: Record<string, string>; emails?: Record<string, string> }): Promise<FakeSlack> {
  const calls: SlackCall[] = [];
  const messages: FakeSlackMessage[] = [];
  const responses: Record<string, unknown>[] = [];
  const limits = new Map<string, { count: number; retryAfterSec: number }>();
  const channels = opts.channels ?? { '#approvals': 'C0APPROVALS' };
  let held: { onReceived: () => void; released: Promise<void> } | undefined;
  let seq = 0;
  let base = '';

  const channelId = (c: unknown): string => {
    const s = stringOr(c, '');
    return channels[s] ?? s;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const path = req.url ?? '/';
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (path.startsWith('/response/')) {
      responses.push(JSON.parse(raw) as Record<string, unknown>);
      return send(200, { ok: true });
    }
    const method = path.replace(/^\/api\//, '');
    let body: Record<string, unknown> = {};
    try {
      body = raw === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
    } catch {
      body = Object.fromEntries(new URLSearchParams(raw));
    }
    const call: SlackCall = { method, body, authorization: String(req.headers['authorization'] ?? ''), at: Date.now(), status: 200 };
    calls.push(call);
    const limit = limits.get(method);
    if (limit !== undefined && limit.count > 0) {
      limit.count--;
      call.status = 429;
      return send(429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(limit.retryAfterSec) });
    }
    if (call.authorization !== `Bearer ${opts.botToken}`) return send(200, { ok: false, error: 'invalid_auth' });
    switch (method) {
      case 'chat.postMessage': {
        const channel = channelId(body['channel']);
        if (channel === '') return send(200, { ok: false, error: 'channel_not_found' });
        const ts = `${Math.floor(Date.now() / 1000)}.${String(++seq).padStart(6, '0')}`;
        messages.push({
          channel,
          ts,
          text: stringOr(body['text'], ''),
          blocks: (body['blocks'] as Record<string, unknown>[] | undefined) ?? [],
          metadata: body['metadata'] as FakeSlackMessage['metadata'],
          updates: 0,
        });
        const h = held;
        if (h !== undefined) {
          held = undefined;
          h.onReceived();
          await h.released;
        }
        return send(200, { ok: true, channel, ts });
      }
      case 'chat.update': {
        const m = messages.find((x) => x.channel === channelId(body['channel']) && x.ts === body['ts']);
        if (m === undefined) return send(200, { ok: false, error: 'message_not_found' });
        m.text = stringOr(body['text'], m.text);
        m.blocks = (body['blocks'] as Record<string, unknown>[] | undefined) ?? m.blocks;
        m.updates++;
        return send(200, { ok: true, channel: m.channel, ts: m.ts });
      }
      case 'conversations.history': {
        const channel = channelId(body['channel']);
        const oldest = Number(body['oldest'] ?? 0);
        const found = messages
          .filter((m) => m.channel === channel && Number(m.ts) >= oldest)
          .reverse()
          .map((m) => ({ type: 'message', ts: m.ts, text: m.text, ...(body['include_all_metadata'] === true && m.metadata ? { metadata: m.metadata } : {}) }));
        return send(200, { ok: true, channel, messages: found, has_more: false, response_metadata: { next_cursor: '' } });
      }
      case 'users.info': {
        const email = opts.emails?.[String(body['user'])];
        if (email === undefined) return send(200, { ok: false, error: 'user_not_found' });
        return send(200, { ok: true, user: { id: body['user'], profile: { email } } });
      }
      default:
        return send(200, { ok: false, error: 'unknown_method' });
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const bound = server.address() as AddressInfo;
  base = listenUrl('http', bound.address, bound.port);

  return {
    apiUrl: `${base}/api`,
    calls,
    messages,
    responses,
    rateLimit(method, count, retryAfterSec) {
      limits.set(method, { count, retryAfterSec });
    },
    holdNextPost() {
      let release!: () => void;
      let onReceived!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const received = new Promise<void>((r) => (onReceived = r));
      held = { onReceived, released };
      return { received, release };
    },
    messagesFor(approvalId) {
      return messages.filter((m) => m.metadata?.event_payload?.['approval_id'] === approvalId);
    },
    approvalIds() {
      return messages.map((m) => stringOr(m.metadata?.event_payload?.['approval_id'], ''));
    },
    interaction({ approvalId, action, userId, reason, signingSecret, timestampSec }) {
      const payload = {
        type: 'block_actions',
        user: { id: userId, username: userId.toLowerCase(), team_id: 'T0FAKE' },
        api_app_id: 'A0FAKE',
        token: 'deprecated-verification-token',
        container: { type: 'message', channel_id: 'C0APPROVALS', message_ts: '1.000001' },
        trigger_id: `${Date.now()}.${Math.random().toString().slice(2, 10)}`,
        team: { id: 'T0FAKE' },
        channel: { id: 'C0APPROVALS', name: 'approvals' },
        response_url: `${base}/response/${++seq}`,
        state: { values: { portcullis_reason_block: { portcullis_reason: { type: 'plain_text_input', value: reason ?? null } } } },
        actions: [
          {
            type: 'button',
            block_id: 'portcullis_decision',
            action_id: action === 'approve' ? 'portcullis_approve' : 'portcullis_deny',
            value: approvalId,
            action_ts: `${Date.now() / 1000}`,
          },
        ],
      };
      const body = `payload=${encodeURIComponent(JSON.stringify(payload))}`;
      const ts = String(timestampSec ?? Math.floor(Date.now() / 1000));
      return {
        body,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-slack-request-timestamp': ts,
          'x-slack-signature': slackSignature(signingSecret, ts, body),
        },
      };
    },
    send(url, interaction, ca) {
      const started = performance.now();
      return new Promise((resolve, reject) => {
        const req = httpsRequest(
          url,
          { method: 'POST', headers: { ...interaction.headers, 'content-length': Buffer.byteLength(interaction.body) }, ca },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - started }));
          },
        );
        req.on('error', reject);
        req.end(interaction.body);
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
