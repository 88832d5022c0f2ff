/**
 * The audit store's pure entry point (`@portcullis/audit-store/pure`): the hash chain every
 * recorder seals events into, the audit row mapping and the recorder of evidence reads, without
 * loading SQLite or ClickHouse.
 */
export { AuditChain, eventHash, eventHashOfJson, parseChainId } from './audit-chain.js';
export type { ChainIdParts } from './audit-chain.js';
export { ChainedAppender, SettledHeads } from './chained-appender.js';
export { SYSTEM_CONNECTION } from './audit-retention.js';
export type { ChainHead } from './chained-appender.js';
export {
  CHECKPOINT_STREAM,
  ChainCheckpointer,
  CheckpointSigner,
  FileCheckpointStore,
  StreamCheckpointStore,
  checkpointProblem,
  keyId,
  loadSigningKey,
  loadTrustedKeys,
  parseCheckpoint,
  parseCheckpointLines,
} from './audit-checkpoint.js';
export type { Checkpoint, CheckpointSet, CheckpointStore, CheckpointerLogger } from './audit-checkpoint.js';
export {
  AUDIT_COLUMNS,
  ColumnKind,
  columnsAddedIn,
  columnsOfVersion,
  rowEnvelope,
  rowForJson,
  toAuditRow,
  toAuditRowOfWire,
  withPayloadJson,
} from './audit-row.js';
export type { AuditRow, AuditColumnName } from './audit-row.js';
export { encodeRowBinary } from './clickhouse-row-binary.js';
export { EvidenceAction, EvidenceReadRecorder, EvidenceReadUnrecordedError, cliReader } from './evidence-read.js';
export type { EvidenceReadInput } from './evidence-read.js';
