import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import {
  decisionReply,
  decodeDecisionRequest,
  encodeDecisionReply,
  QueueGroups,
  Subjects,
} from '../../../libs/contracts/src/index.js';
import { evaluate } from '../../../libs/policy-engine/src/index.js';
import type { BusSubscription, MessageBus } from '../../../libs/bus/src/index.js';
import type { PortcullisConfig } from '../../../libs/config/src/index.js';
import type { Logger } from '../../../libs/common/src/index.js';
import { CONFIG, LOGGER, MESSAGE_BUS, PLATFORM, type Platform } from '../../runtime/src/index.js';
import { PolicyStore } from './policy-store.js';

/** The policy role: answers decision requests in a queue group, from the policy in force. */
@Injectable()
export class PolicyService implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly store: PolicyStore;
  private subscription: BusSubscription | undefined;
  private stopWatching: (() => void) | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: PortcullisConfig,
    @Inject(MESSAGE_BUS) private readonly bus: MessageBus,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PLATFORM) private readonly platform: Platform,
  ) {
    this.store = new PolicyStore(logger);
  }

  onApplicationBootstrap(): void {
    this.stopWatching = this.store.watchFile(this.config.policy.file);
    this.subscription = this.bus.serve(Subjects.policyDecide(), QueueGroups.policy, (msg) => {
      const m = this.platform.observability.metrics.policy;
      const policy = this.store.policy;
      if (policy === undefined) {
        m.decisions.inc(['error']);
        return encodeDecisionReply(decisionReply({ error: 'no valid policy loaded' }));
      }
      const req = decodeDecisionRequest(msg.data);
      if (req.identity === undefined || req.attributes === undefined) {
        m.decisions.inc(['error']);
        return encodeDecisionReply(decisionReply({ error: 'decision request without identity or attributes' }));
      }
      const started = performance.now();
      const decision = evaluate(policy, req.identity, req.attributes, new Date());
      m.evaluationDuration.observe([], (performance.now() - started) / 1000);
      m.decisions.inc([decision.effect]);
      return encodeDecisionReply(decisionReply({ decision }));
    });
    this.logger.info('policy role serving decisions', { subject: Subjects.policyDecide(), queue: QueueGroups.policy });
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopWatching?.();
    await this.subscription?.unsubscribe();
  }
}
