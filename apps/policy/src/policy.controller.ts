import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { QueueGroups, Subjects } from '@portcullis/contracts';
import { PolicyService } from './policy.service.js';

/**
 * The policy role on the bus: decide and explain in queue group `portcullis-policy`, protobuf
 * bytes in and out (`DecisionRequest` → `DecisionReply`, `ExplainRequest` → `ExplainReply`).
 */
@Controller()
export class PolicyController {
  constructor(@Inject(PolicyService) private readonly policy: PolicyService) {}

  @MessagePattern(Subjects.policyDecide(), { queue: QueueGroups.policy })
  decide(@Payload() request: Uint8Array): Uint8Array {
    return this.policy.decide(request);
  }

  @MessagePattern(Subjects.policyExplain(), { queue: QueueGroups.policy })
  explain(@Payload() request: Uint8Array): Uint8Array {
    return this.policy.explain(request);
  }
}
