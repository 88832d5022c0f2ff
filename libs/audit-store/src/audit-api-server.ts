/**
 * The audit role's HTTPS API: `GET /v1/audit/replay/<session id or Audit-Id>` returns the same
 * timeline as `portcullis audit replay --json`. Administrative: a caller without a valid bearer
 * token gets 401, one outside the auditor groups 403 — before any store access.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuditSink } from './audit-sink.port.js';
import { loadTimeline } from './audit-replay.js';
import { SERVER_TLS_OPTIONS } from '@portcullis/tls';

/** The slice of the identity verifier the API needs (libs/identity TokenVerifier fits). */
export interface BearerVerifier {
  verify(token: string): Promise<{ subject: string; groups: readonly string[] }>;
}

/** What the API server logs. */
export interface AuditApiLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

/** Options of {@link AuditApiServer}. */
export interface AuditApiServerOptions {
  host: string;
  port: number;
  tls: { certPem: string; keyPem: string };
  sink: Pick<AuditSink, 'query'>;
  verifier: BearerVerifier;
  /** Members of any of these groups may read; everyone else is refused with 403. */
  auditorGroups: readonly string[];
  logger: AuditApiLogger;
  /** Events per timeline at most (default 100,000). */
  maxEvents?: number;
}

const REPLAY_PREFIX = '/v1/audit/replay/';
// Session ids and Audit-Ids: UUIDs and similar tokens, nothing that needs escaping.
const ID = /^[A-Za-z0-9_.:-]{1,200}$/;

/** The replay API over HTTPS. */
export class AuditApiServer {
  readonly #server: Server;
  readonly #options: AuditApiServerOptions;
  readonly #auditors: ReadonlySet<string>;

  constructor(options: AuditApiServerOptions) {
    if (options.auditorGroups.length === 0) throw new RangeError('AuditApiServer needs at least one auditor group');
    this.#options = options;
    this.#auditors = new Set(options.auditorGroups);
    this.#server = createServer({ cert: options.tls.certPem, key: options.tls.keyPem, ...SERVER_TLS_OPTIONS, headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1_000 }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        options.logger.warn('audit API request failed', { err: err instanceof Error ? err.message : String(err) });
        if (!res.headersSent) send(res, 500, { error: 'internal', message: 'the audit store could not be read' });
        else res.destroy();
      });
    });
  }

  /** Starts listening; resolves with the bound port. */
  listen(): Promise<{ port: number }> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#options.port, this.#options.host, () => {
        this.#server.off('error', reject);
        resolve({ port: (this.#server.address() as AddressInfo).port });
      });
    });
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    if (url === '/healthz') {
      send(res, 200, { ok: true });
      return;
    }
    if (req.method !== 'GET' || !url.startsWith(REPLAY_PREFIX)) {
      send(res, 404, { error: 'not_found', message: `GET ${REPLAY_PREFIX}<session id or Audit-Id>` });
      return;
    }
    const auth = req.headers['authorization'] ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m) {
      send(res, 401, { error: 'unauthenticated', message: 'a bearer token is required' }, { 'www-authenticate': 'Bearer realm="portcullis-audit"' });
      return;
    }
    let caller: { subject: string; groups: readonly string[] };
    try {
      caller = await this.#options.verifier.verify(m[1]!);
    } catch {
      send(res, 401, { error: 'unauthenticated', message: 'the bearer token could not be verified' }, { 'www-authenticate': 'Bearer realm="portcullis-audit", error="invalid_token"' });
      return;
    }
    if (!caller.groups.some((g) => this.#auditors.has(g))) {
      this.#options.logger.warn('audit API refused a caller outside the auditor groups', { subject: caller.subject });
      send(res, 403, { error: 'forbidden', message: `${caller.subject} is not in an auditor group` });
      return;
    }
    let id: string;
    try {
      id = decodeURIComponent(url.slice(REPLAY_PREFIX.length).split('?')[0]!);
    } catch {
      id = '';
    }
    if (!ID.test(id)) {
      send(res, 400, { error: 'bad_request', message: 'expected a session id or Audit-Id' });
      return;
    }
    const timeline = await loadTimeline(this.#options.sink, id, this.#options.maxEvents);
    this.#options.logger.info('audit replay served', { subject: caller.subject, id, events: timeline?.events.length ?? 0 });
    if (timeline === undefined) {
      send(res, 404, { error: 'not_found', message: `no session or request ${id} in the audit log` });
      return;
    }
    send(res, 200, timeline);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}
