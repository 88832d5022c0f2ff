import { Catch, Inject, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { Logger } from '@portcullis/common';
import { EvidenceReadUnrecordedError } from '@portcullis/audit-store/pure';
import { GatewayError } from '@portcullis/gateway';
import { failureStatus } from '@portcullis/kube';
import {
  AuthenticationError,
  AuthenticationFailure,
  BodyTooLargeError,
  CallerForbiddenError,
  CLOSE_CONNECTION,
  LOGGER,
  sendJson,
} from '../../runtime/src/index.js';

/** An explain body that is not JSON or not an explain request; `problems` name each field. */
export class ExplainBodyError extends Error {
  override readonly name = 'ExplainBodyError';
  constructor(
    message: string,
    readonly problems?: readonly string[],
  ) {
    super(message);
  }
}

/** What the edge answers for an error nothing else maps, as its data path does: a Kubernetes Status. */
export function sendEdgeInternalError(reply: FastifyReply): void {
  sendJson(reply, 500, failureStatus(500, 'portcullis: internal error'));
}

/**
 * The edge's administrative errors (policy explain) as the status and JSON its clients read.
 * Refusals before the body was read close the connection.
 */
@Catch()
export class EdgeAdminFilter implements ExceptionFilter {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    if (err instanceof AuthenticationError) {
      if (err.failure === AuthenticationFailure.Unavailable) {
        return sendJson(reply, 503, { error: 'identity_unavailable', message: `cannot verify tokens right now: ${err.message}` }, CLOSE_CONNECTION);
      }
      return sendJson(
        reply,
        401,
        { error: 'unauthenticated', message: `portcullis: unauthorized: ${err.message}` },
        { 'www-authenticate': 'Bearer realm="portcullis"', ...CLOSE_CONNECTION },
      );
    }
    if (err instanceof CallerForbiddenError) {
      this.logger.warn('policy explain refused: caller not in an admin group', { subject: err.caller.subject, groups: err.caller.groups });
      return sendJson(reply, 403, { error: 'forbidden', message: err.message }, CLOSE_CONNECTION);
    }
    if (err instanceof BodyTooLargeError) return sendJson(reply, 413, { error: 'body_too_large', message: err.message }, CLOSE_CONNECTION);
    if (err instanceof ExplainBodyError)
      return sendJson(reply, 400, { error: 'bad_request', message: err.message, ...(err.problems === undefined ? {} : { problems: err.problems }) });
    if (err instanceof GatewayError) return sendJson(reply, 503, { error: 'policy_unavailable', message: err.message });
    if (err instanceof EvidenceReadUnrecordedError) {
      this.logger.error('policy explain refused: the read could not be recorded', { err: err.cause });
      return sendJson(reply, 503, {
        error: 'audit_unavailable',
        message: 'portcullis: audit log unavailable: the explanation is given only once it is recorded',
      });
    }
    this.logger.error('unhandled error in request', { err });
    if (!reply.sent) sendEdgeInternalError(reply);
  }
}
