/**
 * The approval service's behaviour over a projection store: run against the in-memory store
 * (unit) and the Redis store (integration), with the in-process bus and event log and a fake clock.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ApprovalGateRequestSchema,
  ApprovalGateState,
  create,
  decodeApprovalDecisionNotice,
  DecisionSchema,
  IdentitySchema,
  RequestAttributesSchema,
  Streams,
  type ApprovalGateRequest,
} from '@portcullis/contracts';
import { createInProcessBus, type BusHandle } from '@portcullis/bus';
import { silentLogger } from '@portcullis/common';
import { ApprovalError, ApprovalJournal, ApprovalService, requestFingerprint, type ApprovalStore, type ApprovalServiceOptions } from '@portcullis/approval';

/** A clock tests move by hand. */
export class FakeClock {
  constructor(public ms = Date.UTC(2026, 10, 26, 9, 0, 0)) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** What a conformance run needs from a store implementation. */
export interface StoreTarget {
  name: string;
  /** A fresh, empty store (its own key space) on the given clock. */
  open(clock: FakeClock): Promise<ApprovalStore>;
  /** Drops everything the store holds (a Redis flush), keeping the store usable. */
  wipe(store: ApprovalStore): Promise<void>;
}

const bot = create(IdentitySchema, { subject: 'ci-bot', groups: ['bots'], clientId: 'ci-bot', issuer: 'https://issuer.test' });

function gateRequest(
  name: string,
  opts: { quorum?: number; scope?: string; windowSeconds?: number; reasonRequired?: boolean; subject?: string } = {},
): ApprovalGateRequest {
  const identity = opts.subject === undefined ? bot : create(IdentitySchema, { ...bot, subject: opts.subject });
  const attributes = create(RequestAttributesSchema, {
    connection: 'prod',
    connectionType: 'kubernetes',
    method: 'DELETE',
    kube: { isResourceRequest: true, verb: 'delete', apiVersion: 'v1', resource: 'namespaces', name, namespace: name },
  });
  return create(ApprovalGateRequestSchema, {
    requestId: `req-${name}-${Math.random()}`,
    identity,
    attributes,
    decision: create(DecisionSchema, {
      effect: 'require_approval',
      ruleId: 'r1',
      policyVersion: 'v1',
      message: 'needs sre',
      approval: {
        approverGroups: ['sre'],
        quorum: opts.quorum ?? 1,
        scope: opts.scope ?? 'once',
        windowSeconds: opts.windowSeconds ?? 0,
        waitSeconds: 30,
        reasonRequired: opts.reasonRequired ?? false,
        channel: '',
      },
    }),
    fingerprint: requestFingerprint(identity, attributes, '', 'e3b0c442'),
    bodySha256: 'e3b0c442',
  });
}

const alice = { subject: 'alice', groups: ['sre'], via: 'api' };
const carol = { subject: 'carol', groups: ['sre'], via: 'api' };

/** Registers the cases for one store. */
export function describeApprovalConformance(target: StoreTarget): void {
  describe(`approval service over ${target.name}`, () => {
    const setup = async (extra: Partial<ApprovalServiceOptions> = {}) => {
      const clock = new FakeClock();
      const handle: BusHandle = createInProcessBus();
      await handle.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 0, duplicateWindowMs: 60_000, replicas: 1 });
      const store = await target.open(clock);
      const journal = new ApprovalJournal(handle.log, 2000, 'approval-test');
      const make = (s: ApprovalStore) =>
        new ApprovalService({
          store: s,
          journal,
          bus: handle.bus,
          nodeId: 'test',
          logger: silentLogger,
          pendingTtlMs: 60_000,
          grantTtlMs: 120_000,
          retentionMs: 300_000,
          rebuildLookbackMs: 86_400_000,
          breakGlassGroups: ['breakglass'],
          now: clock.now,
          ...extra,
        });
      const service = make(store);
      return {
        clock,
        handle,
        store,
        service,
        make,
        close: async () => {
          await store.close();
          await handle.close();
        },
      };
    };

    it('identical requests share one approval; any difference opens another', async () => {
      const t = await setup();
      const a = await t.service.gate(gateRequest('same'));
      const b = await t.service.gate(gateRequest('same'));
      const c = await t.service.gate(gateRequest('other'));
      const d = await t.service.gate(gateRequest('same', { subject: 'someone-else' }));
      assert.equal(a.state, ApprovalGateState.Pending);
      assert.equal(b.approvalId, a.approvalId);
      assert.notEqual(c.approvalId, a.approvalId);
      assert.notEqual(d.approvalId, a.approvalId);
      const concurrent = await Promise.all(Array.from({ length: 20 }, () => t.service.gate(gateRequest('burst'))));
      assert.equal(new Set(concurrent.map((r) => r.approvalId)).size, 1, 'a burst of identical requests opens one approval');
      await t.close();
    });

    it('who may decide: not the requester, only approver groups or break-glass, with a reason when required', async () => {
      const t = await setup();
      const { approvalId } = await t.service.gate(gateRequest('who', { reasonRequired: true, quorum: 3 }));
      const refusals: [string, Parameters<ApprovalService['decide']>[1], string, string][] = [
        ['the requester itself', { subject: 'ci-bot', groups: ['sre'], via: 'api' }, 'ok', 'self_approval'],
        ['no approver group', { subject: 'dave', groups: ['dev', 'bots'], via: 'api' }, 'ok', 'not_an_approver'],
        ['no groups at all', { subject: 'eve', groups: [], via: 'slack' }, 'ok', 'not_an_approver'],
        ['a group that only looks alike', { subject: 'sam', groups: ['sre-readonly', 'SRE'], via: 'api' }, 'ok', 'not_an_approver'],
        ['no reason', alice, '', 'reason_required'],
        ['a blank reason', alice, '   ', 'reason_required'],
      ];
      for (const [name, who, reason, code] of refusals) {
        await assert.rejects(t.service.decide(approvalId, who, 'approve', reason), (e: unknown) => e instanceof ApprovalError && e.code === code, name);
      }
      assert.equal((await t.service.get(approvalId))?.approvals.length, 0);
      const r = await t.service.decide(approvalId, { subject: 'bg', groups: ['breakglass'], via: 'api' }, 'approve', 'INC-1 outage');
      assert.equal(r.state, 'granted', 'break-glass approves alone, whatever the quorum');
      assert.equal(r.approvals[0]!.breakGlass, true);
      await t.close();
    });

    it('a quorum of two distinct approvers; a denial is final', async () => {
      const decided: [string, number][] = [];
      const t = await setup({ onDecided: (outcome, waitedMs) => decided.push([outcome, waitedMs]) });
      const { approvalId } = await t.service.gate(gateRequest('quorum', { quorum: 2 }));
      const notices: string[] = [];
      t.handle.bus.subscribe('portcullis.approval.decided.>', (m) => notices.push(decodeApprovalDecisionNotice(m.data).state));
      assert.equal((await t.service.decide(approvalId, alice, 'approve', 'one')).state, 'pending');
      await assert.rejects(
        t.service.decide(approvalId, alice, 'approve', 'again'),
        (e: unknown) => e instanceof ApprovalError && e.code === 'already_approved',
      );
      assert.equal((await t.service.gate(gateRequest('quorum', { quorum: 2 }))).state, ApprovalGateState.Pending);
      assert.equal((await t.service.decide(approvalId, carol, 'approve', 'two')).state, 'granted');
      assert.equal((await t.service.gate(gateRequest('quorum', { quorum: 2 }))).state, ApprovalGateState.Admitted);
      const denied = await t.service.gate(gateRequest('deny-me'));
      await t.service.decide(denied.approvalId, alice, 'deny', 'not today');
      await assert.rejects(
        t.service.decide(denied.approvalId, carol, 'approve', 'x'),
        (e: unknown) => e instanceof ApprovalError && e.code === 'already_decided',
      );
      const retry = await t.service.gate(gateRequest('deny-me'));
      assert.deepEqual([retry.state, retry.approvalId, retry.decidedBy, retry.reason], [ApprovalGateState.Denied, denied.approvalId, 'alice', 'not today']);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(notices, ['granted', 'denied']);
      // Timed for portcullis_approval_wait_duration_seconds: the partial approval ends nothing.
      assert.deepEqual(
        decided.map(([o]) => o),
        ['approved', 'denied'],
      );
      await t.close();
    });

    it('a once-grant is consumed by exactly one of 50 concurrent requests; the next identical request opens a new approval', async () => {
      const t = await setup();
      const { approvalId } = await t.service.gate(gateRequest('once'));
      await t.service.decide(approvalId, alice, 'approve', 'go');
      const withId = (): ApprovalGateRequest => ({ ...gateRequest('once'), approvalId, noOpen: true });
      const results = await Promise.all(Array.from({ length: 50 }, () => t.service.gate(withId())));
      assert.equal(results.filter((r) => r.state === ApprovalGateState.Admitted).length, 1);
      assert.equal(results.filter((r) => r.state === ApprovalGateState.Used).length, 49);
      const fresh = await t.service.gate(gateRequest('once'));
      assert.equal(fresh.state, ApprovalGateState.Pending);
      assert.notEqual(fresh.approvalId, approvalId);
      await t.close();
    });

    it('a window grant admits identical requests until its ttl, then a new approval is needed', async () => {
      const t = await setup();
      const req = () => gateRequest('window', { scope: 'window', windowSeconds: 600 });
      const { approvalId } = await t.service.gate(req());
      await t.service.decide(approvalId, alice, 'approve', 'maintenance');
      for (let i = 0; i < 5; i++) assert.equal((await t.service.gate(req())).state, ApprovalGateState.Admitted);
      assert.equal((await t.service.get(approvalId))?.uses, 5);
      t.clock.advance(601_000);
      const after = await t.service.gate(req());
      assert.equal(after.state, ApprovalGateState.Pending);
      assert.notEqual(after.approvalId, approvalId);
      await t.close();
    });

    it('pending approvals expire: the sweep records approval.expired and retries are refused', async () => {
      const decided: [string, number][] = [];
      const t = await setup({ onDecided: (outcome, waitedMs) => decided.push([outcome, waitedMs]) });
      const { approvalId } = await t.service.gate(gateRequest('slow'));
      t.clock.advance(59_000);
      assert.equal(await t.service.expireDue(), 0);
      t.clock.advance(2_000);
      assert.equal(await t.service.expireDue(), 1);
      assert.deepEqual(decided, [['expired', 61_000]], 'the wait is timed from the request to the expiry');
      assert.equal((await t.service.gate(gateRequest('slow'))).state, ApprovalGateState.Expired);
      await assert.rejects(t.service.decide(approvalId, alice, 'approve', 'late'), (e: unknown) => e instanceof ApprovalError && e.code === 'already_decided');
      await t.close();
    });

    it('the projection is rebuilt from the stream after it is wiped: pending, granted and used survive', async () => {
      const t = await setup();
      const pending = await t.service.gate(gateRequest('p'));
      const granted = await t.service.gate(gateRequest('g'));
      await t.service.decide(granted.approvalId, alice, 'approve', 'ok');
      const used = await t.service.gate(gateRequest('u'));
      await t.service.decide(used.approvalId, alice, 'approve', 'ok');
      assert.equal((await t.service.gate(gateRequest('u'))).state, ApprovalGateState.Admitted);
      const quorum = await t.service.gate(gateRequest('q', { quorum: 2 }));
      await t.service.decide(quorum.approvalId, alice, 'approve', 'half');

      await target.wipe(t.store);
      assert.equal(await t.store.needsRebuild(), true);
      // Another process (a new service over the same store) notices and rebuilds before answering.
      const other = t.make(t.store);
      assert.equal((await other.gate(gateRequest('p'))).approvalId, pending.approvalId);
      assert.equal((await other.gate(gateRequest('g'))).state, ApprovalGateState.Admitted);
      assert.equal((await other.gate({ ...gateRequest('u'), approvalId: used.approvalId, noOpen: true })).state, ApprovalGateState.Used);
      const q = await other.get(quorum.approvalId);
      assert.deepEqual(
        q?.approvals.map((a) => a.subject),
        ['alice'],
      );
      assert.equal((await other.decide(quorum.approvalId, carol, 'approve', 'other half')).state, 'granted');
      await t.close();
    });
  });
}
