import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import {
  BucketKeys,
  Buckets,
  create,
  decodeDecisionReply,
  encodePolicyChanged,
  PolicyChangedSchema,
  QueueGroups,
  Subjects,
} from '@portcullis/contracts';
import { answerDecisionRequest, answerExplainRequest } from '@portcullis/policy-engine';
import type { BusSubscription } from '@portcullis/bus';
import { PLATFORM, type Platform } from '../../runtime/src/index.js';
import { PolicyStore } from './policy-store.js';

/**
 * The policy role: follows the policy source (the KV bundle in cluster mode, the file in the
 * embedded mode), answers decision and explain requests in a queue group from the policy in
 * force, and tells every edge when it swaps in a new version. It joins the queue group only once
 * it holds a valid policy, so a process that cannot load one never takes a share of the requests.
 */
@Injectable()
export class PolicyService implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly store: PolicyStore;
  private subscriptions: BusSubscription[] = [];
  private stopWatching: (() => unknown) | undefined;

  constructor(@Inject(PLATFORM) private readonly platform: Platform) {
    this.store = new PolicyStore(platform.logger);
  }

  async onApplicationBootstrap(): Promise<void> {
    const { config, bus, logger } = this.platform;
    this.store.onSwap((policy) => {
      if (this.subscriptions.length === 0) this.serve();
      bus.publish(
        Subjects.policyChanged(),
        encodePolicyChanged(create(PolicyChangedSchema, { policyVersion: policy.version, policySource: policy.source, nodeId: config.node.id })),
      );
    });
    if (config.policy.source === 'kv') {
      const kv = await this.platform.handle.kv(Buckets.policy);
      this.stopWatching = await this.store.watchBundle(kv, Buckets.policy, BucketKeys.policyBundle, config.policy.file);
    } else {
      this.stopWatching = this.store.watchFile(config.policy.file);
    }
    if (this.store.policy === undefined) {
      logger.error('no valid policy: this process does not serve decisions until one is loaded', { source: config.policy.source });
    }
    // Other processes' requests reach this member only once the server has the subscription.
    await this.platform.handle.flush();
  }

  private serve(): void {
    const { bus, logger } = this.platform;
    this.subscriptions = [
      bus.serve(Subjects.policyDecide(), QueueGroups.policy, (msg) => {
        const m = this.platform.observability.metrics.policy;
        const started = performance.now();
        const reply = answerDecisionRequest(this.store.policy, msg.data, new Date());
        m.evaluationDuration.observe([], (performance.now() - started) / 1000);
        m.decisions.inc([decodeDecisionReply(reply).decision?.effect || 'error']);
        return reply;
      }),
      bus.serve(Subjects.policyExplain(), QueueGroups.policy, (msg) => answerExplainRequest(this.store.policy, msg.data, new Date())),
    ];
    logger.info('policy role serving decisions', { subject: Subjects.policyDecide(), queue: QueueGroups.policy });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.stopWatching?.();
    await Promise.all(this.subscriptions.map((s) => s.unsubscribe()));
  }
}
