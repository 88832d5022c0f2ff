import { Controller, Inject } from '@nestjs/common';
import { QueueGroups, Subjects } from '@portcullis/contracts';
import { BusRequest } from '../../runtime/src/index.js';
import { PolicyService } from './policy.service.js';

/**
 * The policy role on the bus: decide and explain in queue group `portcullis-policy`, protobuf
 * bytes in and out (`DecisionRequest` → `DecisionReply`, `ExplainRequest` → `ExplainReply`).
 */
@Controller()
export class PolicyController {
  constructor(@Inject(PolicyService) private readonly policy: PolicyService) {}

  @BusRequest(Subjects.policyDecide(), QueueGroups.policy)
  decide(request: Uint8Array): Uint8Array {
    return this.policy.decide(request);
  }

  @BusRequest(Subjects.policyExplain(), QueueGroups.policy)
  explain(request: Uint8Array): Uint8Array {
    return this.policy.explain(request);
  }
}
