import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { throwError, type Observable } from 'rxjs';
import type { Logger } from '@portcullis/common';
import { sendJson } from './http/admin-response.js';

/**
 * The process's last-resort exception filter, for what no controller's own filter mapped (global
 * to the HTTP adapter and, through `inheritAppConfig`, to the bus transport).
 *
 * - On the bus: what the handler threw goes back to the transport as it is, so the requester
 *   sees the responder's own message (`BusError` `remote`), exactly as with `bus.serve`.
 * - Over HTTP: Nest's and Fastify's own refusals keep their status; anything else is a 500 that
 *   says nothing more.
 */
@Catch()
export class ProcessExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): Observable<never> | undefined {
    if (host.getType() === 'rpc') return throwError(() => exception);
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    if (reply.sent) return undefined;
    if (exception instanceof HttpException) {
      sendJson(reply, exception.getStatus(), { error: errorSlug(exception.getStatus()), message: exception.message });
      return undefined;
    }
    const status = (exception as { statusCode?: unknown } | null)?.statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      sendJson(reply, status, { error: errorSlug(status), message: (exception as Error).message });
      return undefined;
    }
    this.logger.error('admin request failed', { err: exception });
    sendJson(reply, 500, { error: 'internal', message: 'internal error' });
    return undefined;
  }
}

function errorSlug(status: number): string {
  if (status === 404) return 'not_found';
  if (status === 405) return 'method_not_allowed';
  if (status === 413) return 'too_large';
  return status >= 500 ? 'internal' : 'bad_request';
}
