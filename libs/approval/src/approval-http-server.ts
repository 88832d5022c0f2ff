import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@portcullis/common';
import { SERVER_TLS_OPTIONS } from '@portcullis/tls';
import { describeRequest, type ApprovalRecord } from './approval-record.js';
import type { ApprovalStore } from './approval-store.port.js';
import { ApprovalError, ApprovalErrorCode } from './approval-error.js';
import { Verdict, type ApprovalService } from './approval-service.js';
import { SLACK_MAX_AGE_MS, verifySlackSignature } from './slack-signature.js';
import type { SlackJobQueue } from './slack-jobs.js';

/** Who called the REST API (from a verified bearer token). */
export interface ApiCaller {
  readonly subject: string;
  readonly groups: readonly string[];
}

/** What the approval role's HTTP listener needs. */
export interface ApprovalHttpServerOptions {
  host: string;
  port: number;
  tls: { certPem: string; keyPem: string };
  service: ApprovalService;
  store: ApprovalStore;
  /** Verifies a bearer token (the edge's verifier config); throws when it is not valid. */
  authenticate: (token: string) => Promise<ApiCaller>;
  /** Slack interactivity, when Slack is enabled. */
  slack?: { signingSecret: string; queue: SlackJobQueue } | undefined;
  logger: Logger;
  now?: () => number;
}

const MAX_BODY = 64 * 1024;
const ROUTE = /^\/approvals\/([0-9a-f-]{36})(?:\/(approve|deny))?$/;

/**
 * The approval role's own HTTPS listener: `POST /slack/interactions` (signed Slack callbacks,
 * answered at once, the work handed to the queue) and the REST API for approvers:
 * `GET /approvals`, `GET /approvals/:id`, `POST /approvals/:id/approve|deny` with a bearer token.
 */
export class ApprovalHttpServer {
  private server: Server | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: ApprovalHttpServerOptions) {
    this.now = opts.now ?? Date.now;
  }

  async listen(): Promise<{ host: string; port: number }> {
    const server = createServer({ key: this.opts.tls.keyPem, cert: this.opts.tls.certPem, ...SERVER_TLS_OPTIONS, headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1_000 }, (req, res) => {
      this.route(req, res).catch((err: unknown) => {
        this.opts.logger.error('approval API request failed', { err });
        if (!res.headersSent) json(res, 500, { error: 'internal', message: 'internal error' });
        else res.destroy();
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const a = server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    const s = this.server;
    if (s === undefined) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === '/healthz') return json(res, 200, { ok: true });
    if (path === '/slack/interactions') {
      if (req.method !== 'POST') return json(res, 405, { error: 'method_not_allowed', message: 'POST only' });
      return this.slackInteraction(req, res);
    }
    if (path === '/approvals' || ROUTE.test(path)) return this.api(req, res, path);
    json(res, 404, { error: 'not_found', message: 'routes: POST /slack/interactions, GET /approvals, GET /approvals/:id, POST /approvals/:id/approve|deny' });
  }

  private async slackInteraction(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const slack = this.opts.slack;
    if (slack === undefined) return json(res, 404, { error: 'slack_disabled', message: 'Slack is not enabled on this gateway (approval.slack.enabled)' });
    const raw = await readRaw(req, MAX_BODY);
    if (raw === undefined) return json(res, 413, { error: 'too_large', message: `body over ${MAX_BODY} bytes` });
    const signature = header(req, 'x-slack-signature');
    const problem = verifySlackSignature({ signingSecret: slack.signingSecret, timestamp: header(req, 'x-slack-request-timestamp'), signature, rawBody: raw, nowMs: this.now() });
    if (problem !== undefined) {
      this.opts.logger.warn('Slack interaction refused', { problem, ip: req.socket.remoteAddress });
      return json(res, 401, { error: `signature_${problem}`, message: 'the request is not a genuine, fresh Slack request' });
    }
    // The same signed request twice is a replay (Slack never resends an interaction).
    if (!(await this.opts.store.claimOnce(`slack-signature:${signature!}`, 2 * SLACK_MAX_AGE_MS))) {
      this.opts.logger.warn('Slack interaction replay refused', { ip: req.socket.remoteAddress });
      return json(res, 409, { error: 'replay', message: 'this interaction was already received' });
    }
    const payload = new URLSearchParams(raw.toString('utf8')).get('payload');
    if (payload === null) return json(res, 400, { error: 'no_payload', message: 'expected a form field "payload"' });
    try {
      await slack.queue.add({ kind: 'interaction', payload, signature: signature! });
    } catch (err) {
      this.opts.logger.error('could not queue a Slack interaction', { err });
      return json(res, 503, { error: 'unavailable', message: 'the approval queue is unavailable' });
    }
    res.writeHead(200, { 'content-length': 0 });
    res.end();
  }

  private async api(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const auth = header(req, 'authorization') ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m) return json(res, 401, { error: 'unauthenticated', message: 'send an approver token: Authorization: Bearer <token>' }, { 'www-authenticate': 'Bearer realm="portcullis"' });
    let caller: ApiCaller;
    try {
      caller = await this.opts.authenticate(m[1]!);
    } catch (err) {
      return json(res, 401, { error: 'unauthenticated', message: `the token was refused: ${(err as Error).message}` }, { 'www-authenticate': 'Bearer realm="portcullis"' });
    }
    try {
      if (path === '/approvals') {
        if (req.method !== 'GET') return json(res, 405, { error: 'method_not_allowed', message: 'GET /approvals' });
        const list = await this.opts.service.list(caller);
        return json(res, 200, { approvals: list.map(view) });
      }
      const [, id, action] = ROUTE.exec(path)!;
      if (action === undefined) {
        if (req.method !== 'GET') return json(res, 405, { error: 'method_not_allowed', message: 'GET /approvals/:id' });
        const record = await this.opts.service.get(id!);
        const visible = record !== undefined && (record.requester.subject === caller.subject || caller.groups.some((g) => record.requirement.approverGroups.includes(g)));
        if (!visible) throw new ApprovalError(ApprovalErrorCode.NotFound, `no approval ${id} visible to ${caller.subject}`);
        return json(res, 200, view(record));
      }
      if (req.method !== 'POST') return json(res, 405, { error: 'method_not_allowed', message: `POST /approvals/:id/${action}` });
      const raw = await readRaw(req, MAX_BODY);
      if (raw === undefined) return json(res, 413, { error: 'too_large', message: `body over ${MAX_BODY} bytes` });
      let reason = '';
      if (raw.length > 0) {
        let body: unknown;
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch {
          throw new ApprovalError(ApprovalErrorCode.BadRequest, 'the body must be JSON: {"reason": "…"}');
        }
        const r = (body as { reason?: unknown } | null)?.reason;
        if (r !== undefined && typeof r !== 'string') throw new ApprovalError(ApprovalErrorCode.BadRequest, '"reason" must be a string');
        reason = r ?? '';
      }
      const record = await this.opts.service.decide(id!, { subject: caller.subject, groups: caller.groups, via: 'api' }, action === 'approve' ? Verdict.Approve : Verdict.Deny, reason);
      return json(res, 200, view(record));
    } catch (err) {
      if (err instanceof ApprovalError) return json(res, err.httpStatus, { error: err.code, message: err.message });
      throw err;
    }
  }
}

/** The REST representation of an approval. */
export function view(r: ApprovalRecord): Record<string, unknown> {
  return {
    id: r.id,
    state: r.state,
    what: describeRequest(r.request),
    rule: r.ruleId,
    policyVersion: r.policyVersion,
    message: r.message,
    requester: { subject: r.requester.subject, clientId: r.requester.clientId },
    request: r.request,
    requirement: r.requirement,
    requestedAt: new Date(r.requestedAtMs).toISOString(),
    expiresAt: new Date(r.expiresAtMs).toISOString(),
    approvals: r.approvals.map((a) => ({ subject: a.subject, reason: a.reason, via: a.via, breakGlass: a.breakGlass, at: new Date(a.atMs).toISOString() })),
    ...(r.denial ? { denial: { subject: r.denial.subject, reason: r.denial.reason, via: r.denial.via, at: new Date(r.denial.atMs).toISOString() } } : {}),
    ...(r.grantExpiresAtMs > 0 ? { grantExpiresAt: new Date(r.grantExpiresAtMs).toISOString() } : {}),
    uses: r.uses,
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...extra });
  res.end(text);
}

/** The raw body (for the signature), or undefined when it exceeds `max`. */
function readRaw(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) over = true;
      else chunks.push(c);
    });
    req.once('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.once('error', reject);
  });
}
