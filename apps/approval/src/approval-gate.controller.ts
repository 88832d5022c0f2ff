import { Catch, Controller, Inject, UseFilters, type ArgumentsHost, type RpcExceptionFilter } from '@nestjs/common';
import { of, type Observable } from 'rxjs';
import { ApprovalGateReplySchema, create, decodeApprovalGateRequest, encodeApprovalGateReply, QueueGroups, Subjects } from '@portcullis/contracts';
import type { Logger } from '@portcullis/common';
import { ApprovalError, ApprovalService } from '@portcullis/approval';
import { BusRequest, LOGGER } from '../../runtime/src/index.js';

/**
 * The gate's typed errors as the reply the edge reads (`error`, the edge fails closed): an
 * ApprovalError's message is safe to show; anything else is logged and answered `internal error`.
 */
@Catch()
export class ApprovalGateErrorFilter implements RpcExceptionFilter<unknown> {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  catch(err: unknown, _host: ArgumentsHost): Observable<Uint8Array> {
    if (!(err instanceof ApprovalError)) this.logger.error('approval gate failed', { err });
    const why = err instanceof ApprovalError ? err.message : 'internal error';
    return of(encodeApprovalGateReply(create(ApprovalGateReplySchema, { error: why })));
  }
}

/** The edge's gate questions (`ApprovalGateRequest` → `ApprovalGateReply`) in queue group `portcullis-approval`. */
@Controller()
@UseFilters(ApprovalGateErrorFilter)
export class ApprovalGateController {
  constructor(@Inject(ApprovalService) private readonly approvals: ApprovalService) {}

  @BusRequest(Subjects.approvalGate(), QueueGroups.approval)
  async gate(request: Uint8Array): Promise<Uint8Array> {
    return encodeApprovalGateReply(await this.approvals.gate(decodeApprovalGateRequest(request)));
  }
}
