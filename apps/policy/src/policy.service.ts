import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import type { PortcullisConfig } from '@portcullis/config';
import type { Logger } from '@portcullis/common';
import type { EventLog, MessageBus } from '@portcullis/bus';
import {
  BucketKeys,
  Buckets,
  buildEvent,
  create,
  encodePolicyChanged,
  EventType,
  PolicyActivatedSchema,
  PolicyChangedSchema,
  PolicyRejectedSchema,
  QueueGroups,
  Subjects,
  type EventEnvelope,
} from '@portcullis/contracts';
import { ChainedAppender, SYSTEM_CONNECTION } from '@portcullis/audit-store/pure';
import { answerDecision, answerExplainRequest, PolicyStore } from '@portcullis/policy-engine';
import type { PortcullisMetrics } from '@portcullis/observability';
import {
  BusServeGate,
  CLOCK,
  CONFIG,
  EVENT_LOG,
  KV_STORES,
  LOGGER,
  MESSAGE_BUS,
  METRICS,
  type Clock,
  type HeldQueue,
  type KvStores,
  startChainCheckpointer,
} from '../../runtime/src/index.js';
import type { ChainCheckpointer } from '@portcullis/audit-store/pure';

/**
 * The policy role: follows the policy source (the KV bundle in cluster mode, the file in the
 * embedded mode), answers decision and explain requests from the policy in force, and tells
 * every edge when it swaps in a new version. Every version it puts in force and every policy text
 * it refuses is an event (`policy.activated`, `policy.rejected`) in the role's own hash chain
 * segments, so policy changes are in the tamper-evident audit log. Its queue group is held at the transport until it
 * holds a valid policy, so a process that cannot load one never takes a share of the requests.
 */
@Injectable()
export class PolicyService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  readonly store: PolicyStore;
  private readonly serving: HeldQueue;
  private stopWatching: (() => unknown) | undefined;
  /** The role's own chain segments for its policy change events. */
  readonly recorder: ChainedAppender;
  private readonly log: EventLog;
  private checkpointer: ChainCheckpointer | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: PortcullisConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(MESSAGE_BUS) private readonly bus: MessageBus,
    @Inject(KV_STORES) private readonly kv: KvStores,
    @Inject(METRICS) private readonly metrics: PortcullisMetrics,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(BusServeGate) gate: BusServeGate,
    @Inject(EVENT_LOG) log: EventLog,
  ) {
    this.store = new PolicyStore(logger);
    this.log = log;
    this.recorder = new ChainedAppender(log, config.node.id, config.edge.auditAckTimeout);
    this.serving = gate.hold(QueueGroups.policy);
  }

  async onApplicationBootstrap(): Promise<void> {
    const { config } = this;
    this.checkpointer = startChainCheckpointer(config, this.log, this.logger, 'policy', [() => this.recorder.takeHeads()]);
    this.store.onSwap((policy, swap) => {
      this.record(
        buildEvent(
          EventType.PolicyActivated,
          create(PolicyActivatedSchema, {
            policyName: policy.name,
            policyVersion: policy.version,
            bundleSha256: swap.sha256,
            source: policy.source,
            previousVersion: swap.previous ?? '',
            rules: policy.rules.length,
          }),
          { correlationId: '', nodeId: config.node.id, connection: SYSTEM_CONNECTION, occurredAtMs: this.clock() },
        ),
      );
      this.serving.open();
      this.bus.publish(
        Subjects.policyChanged(),
        encodePolicyChanged(create(PolicyChangedSchema, { policyVersion: policy.version, policySource: policy.source, nodeId: config.node.id })),
      );
    });
    this.store.onReject((r) => {
      this.record(
        buildEvent(
          EventType.PolicyRejected,
          create(PolicyRejectedSchema, {
            claimedVersion: r.claimedVersion ?? '',
            bundleSha256: r.sha256,
            source: r.source,
            problems: [...r.problems],
            keepingVersion: r.keeping ?? '',
          }),
          { correlationId: '', nodeId: config.node.id, connection: SYSTEM_CONNECTION, occurredAtMs: this.clock() },
        ),
      );
    });
    if (config.policy.source === 'kv') {
      this.stopWatching = await this.store.watchBundle(await this.kv.bucket(Buckets.policy), Buckets.policy, BucketKeys.policyBundle, config.policy.file);
    } else {
      this.stopWatching = this.store.watchFile(config.policy.file);
    }
    if (this.store.policy === undefined) {
      this.logger.error('no valid policy: this process does not serve decisions until one is loaded', { source: config.policy.source });
    }
  }

  /**
   * Records a policy change in the audit log. The change itself is not held back when the log is
   * unavailable (the policy text is in the bucket or the file either way): the failure is logged.
   */
  private record(event: EventEnvelope): void {
    event.correlationId = event.id;
    this.recorder.append(event).catch((err: unknown) => {
      this.logger.error('policy change not recorded in the audit log', { type: event.type, err });
    });
  }

  /** Answers a `DecisionRequest` (bytes in, `DecisionReply` bytes out) from the policy in force. */
  decide(request: Uint8Array): Uint8Array {
    const m = this.metrics.policy;
    const started = performance.now();
    const { reply, effect } = answerDecision(this.store.policy, request, new Date(this.clock()));
    m.evaluationDuration.observe([], (performance.now() - started) / 1000);
    m.decisions.inc([effect]);
    return reply;
  }

  /** Answers an `ExplainRequest` from the policy in force. */
  explain(request: Uint8Array): Uint8Array {
    return answerExplainRequest(this.store.policy, request, new Date(this.clock()));
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.stopWatching?.();
    await this.checkpointer?.stop();
  }
}
