import { All, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { APPROVAL_ID_PATTERN } from '@portcullis/approval';
import { JsonNoStore, Listener, ListenerController, sendJson } from '../../runtime/src/index.js';
import { APPROVAL_ROUTES } from './approvals.controller.js';

/** The approval listener's own answers: `/healthz`, and a known path with another method (405) or an unknown one (404). */
@ListenerController(Listener.Approval)
export class ApprovalListenerController {
  @All('healthz')
  @JsonNoStore()
  healthz(): unknown {
    return { ok: true };
  }

  @All('*')
  other(@Req() req: FastifyRequest, @Res() reply: FastifyReply): void {
    const allowed = allowedMethod((req.url.split('?')[0] ?? '/').split('/').slice(1));
    if (allowed !== undefined) return sendJson(reply, 405, { error: 'method_not_allowed', message: allowed });
    sendJson(reply, 404, { error: 'not_found', message: APPROVAL_ROUTES });
  }
}

/** What a route of this listener answers to, for the 405 of another method. */
function allowedMethod(segments: readonly string[]): string | undefined {
  const [first, id, action, ...rest] = segments;
  if (rest.length > 0) return undefined;
  if (first === 'slack' && id === 'interactions' && action === undefined) return 'POST only';
  if (first !== 'approvals') return undefined;
  if (id === undefined) return 'GET /approvals';
  if (!APPROVAL_ID_PATTERN.test(id)) return undefined;
  if (action === undefined) return 'GET /approvals/:id';
  return action === 'approve' || action === 'deny' ? `POST /approvals/:id/${action}` : undefined;
}
