/**
 * Signed checkpoints of the chains' heads: a chain's deleted tail is named by `audit verify` from
 * the newest checkpoint; a checkpoint altered, signed by an unknown key or unreadable is refused;
 * heads acknowledged out of order (the edge's batches and retries) are checkpointed only up to the
 * first position not yet acknowledged.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ApprovalApprovedSchema, buildEvent, create, decodeEvent, type EventEnvelope } from '@portcullis/contracts';
import {
  AuditChain,
  ChainCheckpointer,
  CheckpointSigner,
  FileCheckpointStore,
  FindingKind,
  SettledHeads,
  SqliteAuditSink,
  formatVerifyReport,
  loadSigningKey,
  loadTrustedKeys,
  toAuditRowOfWire,
  verifyAuditLog,
  type AuditRow,
  type Checkpoint,
  type VerifyReport,
} from '@portcullis/audit-store';
import { silentLogger } from '@portcullis/common';

const T0 = Date.UTC(2026, 5, 1, 12, 0, 0, 0);

function events(n: number): EventEnvelope[] {
  return Array.from({ length: n }, (_, i) =>
    buildEvent('approval.approved', create(ApprovalApprovedSchema, { approvalId: `a-${i}`, approver: { subject: 'sre-alice' }, reason: 'ok' }), {
      correlationId: `r-${i}`,
      nodeId: 'approval-1',
      connection: 'prod',
      occurredAtMs: T0 + i,
    }),
  );
}

function sealed(n: number): AuditRow[] {
  const chain = new AuditChain('approval-1', T0, 'c0ffee00');
  return events(n).map((e) => {
    const wire = chain.seal(e);
    return toAuditRowOfWire(decodeEvent(wire), wire);
  });
}

async function sinkOf(rows: AuditRow[]): Promise<SqliteAuditSink> {
  const sink = new SqliteAuditSink({ path: join(mkdtempSync(join(tmpdir(), 'checkpoint-')), 'audit.db') });
  await sink.migrate();
  await sink.insert(rows);
  return sink;
}

function setup(): { dir: string; signer: CheckpointSigner; trusted: ReturnType<typeof loadTrustedKeys> } {
  const dir = mkdtempSync(join(tmpdir(), 'checkpoint-keys-'));
  const keyFile = join(dir, 'checkpoint-signing.key');
  const signer = new CheckpointSigner(loadSigningKey(keyFile, true), 'approval', 'approval-1');
  assert.equal((readFileSync(keyFile, 'utf8').match(/BEGIN PRIVATE KEY/) ?? []).length, 1);
  return { dir, signer, trusted: loadTrustedKeys([keyFile]) };
}

async function verifyWith(
  rows: AuditRow[],
  checkpoints: Checkpoint[],
  trusted: ReturnType<typeof loadTrustedKeys>,
  unreadable: string[] = [],
): Promise<VerifyReport> {
  return verifyAuditLog(await sinkOf(rows), { checkpoints: { set: { checkpoints, unreadable }, trusted } });
}

describe('signed chain checkpoints', () => {
  it('the intact log agrees with its checkpoint; deleting the last events is named from it', async () => {
    const { signer, trusted } = setup();
    const rows = sealed(10);
    const checkpoint = signer.sign({ chainId: rows[0]!.chain_id, seq: 10, hash: rows[9]!.hash });
    const intact = await verifyWith(rows, [checkpoint], trusted);
    assert.deepEqual(intact.findings, []);
    assert.equal(intact.checkpointedChains, 1);
    assert.match(formatVerifyReport(intact).join('\n'), /the end of 1 chain checked against signed checkpoints/);

    // Without the checkpoint the cut-off log still passes: that is what the checkpoint is for.
    const cut = rows.slice(0, 7);
    assert.deepEqual((await verifyAuditLog(await sinkOf(cut))).findings, []);
    const report = await verifyWith(cut, [checkpoint], trusted);
    assert.deepEqual(
      report.findings.map((f) => [f.kind, f.seq]),
      [[FindingKind.Gap, 8]],
    );
    assert.match(
      report.findings[0]!.message,
      /^gap: 3 events missing at seq 8\.\.10 of chain approval-1\/\S+ \(its tail\): the store ends at seq 7, but the checkpoint signed by approval approval-1 at \S+ says the chain reached seq 10/,
    );
    // The whole chain deleted.
    const gone = await verifyWith(sealed(0), [checkpoint], trusted);
    assert.match(gone.findings[0]!.message, /^gap: 10 events missing at seq 1\.\.10 of chain approval-1\/\S+: none is stored/);
  });

  it('the newest checkpoint counts; a head replaced by another event is edited', async () => {
    const { signer, trusted } = setup();
    const rows = sealed(6);
    const older = signer.sign({ chainId: rows[0]!.chain_id, seq: 3, hash: rows[2]!.hash });
    const newer = signer.sign({ chainId: rows[0]!.chain_id, seq: 6, hash: rows[5]!.hash });
    const report = await verifyWith(rows.slice(0, 4), [newer, older], trusted);
    assert.match(report.findings[0]!.message, /2 events missing at seq 5\.\.6/);
    const forged = signer.sign({ chainId: rows[0]!.chain_id, seq: 6, hash: 'f'.repeat(64) });
    const edited = await verifyWith(rows, [forged], trusted);
    assert.deepEqual(
      edited.findings.map((f) => f.kind),
      [FindingKind.Edited],
    );
  });

  it('a tampered, foreign-key or unreadable checkpoint is refused', async () => {
    const { signer, trusted } = setup();
    const rows = sealed(4);
    const good = signer.sign({ chainId: rows[0]!.chain_id, seq: 4, hash: rows[3]!.hash });
    // Moved back to seq 2 to hide a deleted tail: the signature no longer matches.
    const tampered = { ...good, seq: 2, hash: rows[1]!.hash };
    const r1 = await verifyWith(rows.slice(0, 2), [tampered], trusted);
    assert.deepEqual(
      r1.findings.map((f) => f.kind),
      [FindingKind.Checkpoint],
    );
    assert.match(
      r1.findings[0]!.message,
      /^checkpoint: refused the checkpoint of chain \S+ at seq 2 .*its signature does not verify with key [0-9a-f]{16}: the checkpoint was altered/,
    );
    const { privateKey } = generateKeyPairSync('ed25519');
    const foreign = new CheckpointSigner(privateKey, 'approval', 'approval-1').sign({ chainId: rows[0]!.chain_id, seq: 2, hash: rows[1]!.hash });
    const r2 = await verifyWith(rows.slice(0, 2), [foreign], trusted);
    assert.match(r2.findings[0]!.message, /signed by key [0-9a-f]{16}, which is not a trusted checkpoint key/);
    const r3 = await verifyWith(rows, [good], trusted, ['checkpoints.jsonl line 3: Unexpected token']);
    assert.deepEqual(
      r3.findings.map((f) => f.kind),
      [FindingKind.Checkpoint],
    );
  });

  it('the checkpointer signs the heads its sources acknowledged into the append-only file, and keeps a head it could not store', async () => {
    const { dir, signer, trusted } = setup();
    const file = join(dir, 'audit-checkpoints.jsonl');
    const heads = new SettledHeads();
    const rows = sealed(5);
    const evs = rows.map((r) => ({ chainId: r.chain_id, chainSeq: r.chain_seq, hash: r.hash }));
    // Acknowledged out of order: 1, 3, 2 → head 3; 5 waits for 4.
    heads.settled([evs[0]!, evs[2]!]);
    heads.settled([evs[1]!]);
    heads.settled([evs[4]!]);
    let failing = true;
    const store = new FileCheckpointStore(file);
    const flaky = { append: (c: Checkpoint) => (failing ? Promise.reject(new Error('disk full')) : store.append(c)), list: () => store.list() };
    const checkpointer = new ChainCheckpointer({ store: flaky, signer, sources: [() => heads.takeHeads()], intervalMs: 60_000, logger: silentLogger });
    await checkpointer.checkpoint();
    failing = false;
    heads.settled([evs[3]!]);
    await checkpointer.stop();
    const { checkpoints } = await store.list();
    assert.deepEqual(
      checkpoints.map((c) => [c.chainId, c.seq, c.hash]),
      [[rows[0]!.chain_id, 5, rows[4]!.hash]],
    );
    assert.deepEqual((await verifyWith(rows, checkpoints, trusted)).findings, []);
    // A line appended by hand that is not a checkpoint is reported, not skipped.
    appendFileSync(file, 'not json\n');
    assert.equal((await store.list()).unreadable.length, 1);
  });
});
