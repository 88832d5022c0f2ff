import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import type { Logger } from '../../../libs/common/src/index.js';
import { LOGGER } from '../../runtime/src/index.js';

/**
 * The approval role. Until just-in-time approval lands, the policy effect require_approval is
 * answered by the edge with a 403 (fail closed); this role only announces itself.
 */
@Injectable()
export class ApprovalService implements OnApplicationBootstrap {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  onApplicationBootstrap(): void {
    this.logger.info('approval role started (approvals are not enabled yet: require_approval is refused)');
  }
}
