import {
  All,
  Catch,
  Get,
  Inject,
  Injectable,
  Param,
  Req,
  Res,
  UseFilters,
  UseGuards,
  type ArgumentsHost,
  type ExceptionFilter,
  type OnModuleInit,
  type PipeTransform,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { EvidenceAction, type EvidenceReadRecorder, EvidenceReadUnrecordedError } from '@portcullis/audit-store/pure';
import type { PortcullisConfig } from '@portcullis/config';
import type { Logger } from '@portcullis/common';
import type { Identity } from '@portcullis/contracts';
import { isReplayId, loadTimeline, REPLAY_API_PREFIX, type AuditSink, type ReplayTimeline } from '@portcullis/audit-store';
import {
  AuthenticationError,
  BearerAuthGuard,
  Caller,
  CallerForbiddenError,
  CONFIG,
  EVIDENCE_READS,
  GATEWAY_TLS,
  GroupsGuard,
  HttpListeners,
  JsonNoStore,
  Listener,
  ListenerController,
  LOGGER,
  sendJson,
  type GatewayTls,
} from '../../runtime/src/index.js';
import { AUDIT_SINK } from './audit.providers.js';

/** A replay id that cannot name a session or a request. */
class BadReplayIdError extends Error {
  override readonly name = 'BadReplayIdError';
}

/** No session or request with this id in the audit log. */
class TimelineNotFoundError extends Error {
  override readonly name = 'TimelineNotFoundError';
}

/** Session ids and Audit-Ids only (checked before the store is asked). */
class ReplayIdPipe implements PipeTransform<string, string> {
  transform(id: string): string {
    if (!isReplayId(id)) throw new BadReplayIdError('expected a session id or Audit-Id');
    return id;
  }
}

/** Members of `audit.auditorGroups` only. */
@Injectable()
export class AuditorGroupsGuard extends GroupsGuard {
  protected readonly missing = 'an auditor group';
  constructor(@Inject(CONFIG) private readonly config: PortcullisConfig) {
    super();
  }

  protected groups(): readonly string[] {
    return this.config.audit.auditorGroups;
  }
}

/** The audit listener's typed errors as the status and JSON its clients read. */
@Catch()
export class AuditApiFilter implements ExceptionFilter {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    if (err instanceof AuthenticationError) {
      return err.failure === 'missing' || err.failure === 'not_bearer'
        ? sendJson(reply, 401, { error: 'unauthenticated', message: 'a bearer token is required' }, { 'www-authenticate': 'Bearer realm="portcullis-audit"' })
        : sendJson(
            reply,
            401,
            { error: 'unauthenticated', message: 'the bearer token could not be verified' },
            { 'www-authenticate': 'Bearer realm="portcullis-audit", error="invalid_token"' },
          );
    }
    if (err instanceof CallerForbiddenError) {
      this.logger.warn('audit API refused a caller outside the auditor groups', { subject: err.caller.subject });
      return sendJson(reply, 403, { error: 'forbidden', message: err.message });
    }
    if (err instanceof BadReplayIdError) return sendJson(reply, 400, { error: 'bad_request', message: err.message });
    if (err instanceof TimelineNotFoundError) return sendJson(reply, 404, { error: 'not_found', message: err.message });
    if (err instanceof EvidenceReadUnrecordedError) {
      this.logger.error('audit replay refused: the read could not be recorded', { err: err.cause });
      return sendJson(reply, 503, { error: 'audit_unavailable', message: 'the audit log cannot record this read right now; nothing was read out' });
    }
    this.logger.warn('audit API request failed', { err: err instanceof Error ? err.message : String(err) });
    if (!reply.sent) sendJson(reply, 500, { error: 'internal', message: 'the audit store could not be read' });
  }
}

/**
 * The audit role's replay API: `GET /v1/audit/replay/<session id or Audit-Id>` answers the same
 * timeline as `portcullis audit replay --json`. Administrative: without a valid bearer token 401,
 * outside the auditor groups 403 — before any store access. Every read (a miss too) is recorded
 * as an `evidence.read` event before it is answered; when it cannot be, 503 and nothing read out.
 */
@ListenerController(Listener.Audit)
@UseFilters(AuditApiFilter)
export class AuditReplayController {
  constructor(
    @Inject(AUDIT_SINK) private readonly sink: AuditSink,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(EVIDENCE_READS) private readonly reads: EvidenceReadRecorder,
  ) {}

  @Get(`${REPLAY_API_PREFIX.slice(1)}*`)
  @UseGuards(BearerAuthGuard, AuditorGroupsGuard)
  @JsonNoStore()
  async replay(@Param('*', ReplayIdPipe) id: string, @Caller() caller: Identity, @Req() req: FastifyRequest): Promise<ReplayTimeline> {
    const timeline = await loadTimeline(this.sink, id);
    await this.reads.record({
      reader: caller,
      action: EvidenceAction.AuditReplay,
      via: 'api',
      query: { id },
      results: timeline?.events.length ?? 0,
      source: req.ip,
    });
    this.logger.info('audit replay served', { subject: caller.subject, id, events: timeline?.events.length ?? 0 });
    if (timeline === undefined) throw new TimelineNotFoundError(`no session or request ${id} in the audit log`);
    return timeline;
  }
}

/** The audit listener's own answers: `/healthz`, and 404 for anything else. */
@ListenerController(Listener.Audit)
export class AuditListenerController {
  @All('healthz')
  @JsonNoStore()
  healthz(): unknown {
    return { ok: true };
  }

  @All('*')
  other(@Res() reply: FastifyReply): void {
    sendJson(reply, 404, { error: 'not_found', message: `GET ${REPLAY_API_PREFIX}<session id or Audit-Id>` });
  }
}

/** Opens the audit listener (`audit.listen`) with the process's TLS material. */
@Injectable()
export class AuditListener implements OnModuleInit {
  constructor(
    @Inject(CONFIG) private readonly config: PortcullisConfig,
    @Inject(HttpListeners) private readonly listeners: HttpListeners,
    @Inject(GATEWAY_TLS) private readonly tls: GatewayTls,
  ) {}

  onModuleInit(): void {
    const listen = this.config.audit.listen;
    if (listen !== undefined)
      this.listeners.serve({ listener: Listener.Audit, description: 'audit replay API', host: listen.host, port: listen.port, tls: this.tls });
  }
}
