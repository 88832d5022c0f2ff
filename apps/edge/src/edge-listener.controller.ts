import { All, Inject, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { EDGE_NOT_FOUND, POLICY_EXPLAIN_PATH } from '@portcullis/gateway';
import { CLOSE_CONNECTION, Listener, ListenerController, ReadinessHealth, sendJson, sendText } from '../../runtime/src/index.js';

/**
 * The edge listener's own answers off the data path: `/healthz` (the process runs), `/readyz`
 * (the bus connected and the last full readiness report ready: what a load balancer asks), the
 * 405 of policy explain, and the edge's 404 for every other path.
 */
@ListenerController(Listener.Edge)
export class EdgeListenerController {
  constructor(@Inject(ReadinessHealth) private readonly health: ReadinessHealth) {}

  @All('healthz')
  healthz(@Res() reply: FastifyReply): void {
    sendText(reply, 200, 'ok');
  }

  @All('readyz')
  async readyz(@Res() reply: FastifyReply): Promise<void> {
    if (await this.health.quick()) return sendText(reply, 200, 'ok');
    sendText(reply, 503, 'not ready');
  }

  @All('*')
  other(@Req() req: FastifyRequest, @Res() reply: FastifyReply): void {
    if ((req.url.split('?')[0] ?? '') === POLICY_EXPLAIN_PATH) {
      return sendJson(reply, 405, { error: 'method_not_allowed', message: 'use POST with a JSON body' }, { allow: 'POST', ...CLOSE_CONNECTION });
    }
    sendText(reply, 404, EDGE_NOT_FOUND);
  }
}
