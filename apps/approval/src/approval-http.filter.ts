import { Catch, Inject, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { Logger } from '@portcullis/common';
import { ApprovalError } from '@portcullis/approval';
import { AuthenticationError, AuthenticationFailure, BodyTooLargeError, LOGGER, sendJson } from '../../runtime/src/index.js';
import { SlackInteractionError } from './slack-interactions.service.js';

const CHALLENGE = { 'www-authenticate': 'Bearer realm="portcullis"' } as const;

/** The approval listener's typed errors as the status and JSON body its clients (CLI, Slack) read. */
@Catch()
export class ApprovalHttpFilter implements ExceptionFilter {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    if (err instanceof AuthenticationError) {
      const missing = err.failure === AuthenticationFailure.Missing || err.failure === AuthenticationFailure.NotBearer;
      const message = missing ? 'send an approver token: Authorization: Bearer <token>' : `the token was refused: ${err.message}`;
      return sendJson(reply, 401, { error: 'unauthenticated', message }, CHALLENGE);
    }
    if (err instanceof ApprovalError) return sendJson(reply, err.httpStatus, { error: err.code, message: err.message });
    if (err instanceof SlackInteractionError) return sendJson(reply, err.httpStatus, { error: err.error, message: err.message });
    if (err instanceof BodyTooLargeError) return sendJson(reply, 413, { error: 'too_large', message: `body over ${err.limitBytes} bytes` });
    this.logger.error('approval API request failed', { err });
    if (!reply.sent) sendJson(reply, 500, { error: 'internal', message: 'internal error' });
  }
}
