import { Body, HttpCode, Inject, Injectable, Post, Req, UseFilters, UseGuards, type PipeTransform } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { EvidenceAction, type EvidenceReadRecorder } from '@portcullis/audit-store/pure';
import type { PortcullisConfig } from '@portcullis/config';
import type { Logger } from '@portcullis/common';
import type { Identity } from '@portcullis/contracts';
import { DecisionClient, GatewayError, GatewayErrorCode, POLICY_EXPLAIN_PATH } from '@portcullis/gateway';
import { explainInput, explainView, parseExplainSpec, type ExplainSpec } from '@portcullis/policy-engine';
import {
  BearerAuthGuard,
  Caller,
  CONFIG,
  EVIDENCE_READS,
  GroupsGuard,
  JsonNoStore,
  Listener,
  ListenerController,
  LOGGER,
  ReadBodyPipe,
} from '../../runtime/src/index.js';
import { EdgeAdminFilter, ExplainBodyError } from './edge-admin.filter.js';

/** Largest explain request the edge reads. */
const MAX_EXPLAIN_BODY_BYTES = 64 * 1024;

/** Members of `edge.admin.groups` only (nobody when it is empty). */
@Injectable()
export class AdminGroupsGuard extends GroupsGuard {
  protected readonly missing = 'an admin group (edge.admin.groups)';
  constructor(@Inject(CONFIG) private readonly config: PortcullisConfig) {
    super();
  }

  protected groups(): readonly string[] {
    return this.config.edge.admin.groups;
  }
}

/** The explain request in the body: JSON, then the explain schema (unknown keys are errors). */
class ExplainSpecPipe implements PipeTransform<Buffer, ExplainSpec> {
  transform(raw: Buffer): ExplainSpec {
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw new ExplainBodyError(`the body is not JSON: ${(err as Error).message}`);
    }
    const parsed = parseExplainSpec(json);
    if (!parsed.ok) throw new ExplainBodyError(parsed.problems.join('; '), parsed.problems);
    return parsed.spec;
  }
}

/**
 * Asks the policy role (over the bus) to explain a decision, and records who asked what as an
 * `evidence.read` event before answering (no record, no answer).
 */
@Injectable()
export class PolicyExplainer {
  constructor(
    @Inject(DecisionClient) private readonly decisions: DecisionClient,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(EVIDENCE_READS) private readonly reads: EvidenceReadRecorder,
  ) {}

  /** The explain answer for `spec`, asked by `by` from `source`; a GatewayError when the policy role cannot answer. */
  async explain(spec: ExplainSpec, by: Identity, source = ''): Promise<Record<string, unknown>> {
    const input = explainInput(spec);
    let reply;
    try {
      reply = await this.decisions.explain(input.identity, input.attributes, input.at);
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      throw new GatewayError(GatewayErrorCode.DecisionUnavailable, 'policy service unavailable', { cause: err });
    }
    const decision = reply.decision!;
    this.logger.info('policy explained', { by: by.subject, request: reply.request, ruleId: decision.ruleId, version: decision.policyVersion });
    await this.reads.record({ reader: by, action: EvidenceAction.PolicyExplain, via: 'api', query: { ...spec }, results: reply.trace.length, source });
    return explainView({ ...reply, decision });
  }
}

/**
 * `POST /admin/policy/explain` on the edge listener: JSON in (an explain request: subject,
 * groups, connection, verb, resource, …), JSON out (the decision, the deciding rule and every
 * rule's outcome) from the policy in force at the policy role. Administrative: anonymous callers
 * get 401, callers outside `edge.admin.groups` 403, before the body is read.
 */
@ListenerController(Listener.Edge)
@UseFilters(EdgeAdminFilter)
export class PolicyExplainController {
  constructor(@Inject(PolicyExplainer) private readonly explainer: PolicyExplainer) {}

  @Post(POLICY_EXPLAIN_PATH)
  @HttpCode(200)
  @UseGuards(BearerAuthGuard, AdminGroupsGuard)
  @JsonNoStore()
  explain(
    @Body(new ReadBodyPipe(MAX_EXPLAIN_BODY_BYTES), new ExplainSpecPipe()) spec: ExplainSpec,
    @Caller() caller: Identity,
    @Req() req: FastifyRequest,
  ): Promise<Record<string, unknown>> {
    return this.explainer.explain(spec, caller, req.ip);
  }
}
