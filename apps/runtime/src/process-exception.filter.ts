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

const ERROR_SLUGS: Readonly<Record<number, string>> = {
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'too_large',
  415: 'unsupported_media_type',
  429: 'too_many_requests',
  502: 'bad_gateway',
  503: 'unavailable',
  504: 'timeout',
};

/** The `error` of an admin answer: it names the status it goes with (a 403 never says bad_request). */
export function errorSlug(status: number): string {
  return ERROR_SLUGS[status] ?? (status >= 500 ? 'internal' : 'bad_request');
}
