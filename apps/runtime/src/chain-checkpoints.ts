import type { PortcullisConfig } from '@portcullis/config';
import type { Logger } from '@portcullis/common';
import type { EventLog } from '@portcullis/bus';
import {
  ChainCheckpointer,
  CheckpointSigner,
  FileCheckpointStore,
  StreamCheckpointStore,
  loadSigningKey,
  type ChainHead,
  type CheckpointStore,
} from '@portcullis/audit-store/pure';

/**
 * Where this process keeps its checkpoints: the append-only file in the embedded mode, the
 * `PORTCULLIS_CHECKPOINTS` stream (created with the other streams by connectProcessBus) in cluster mode.
 */
export function checkpointStore(config: PortcullisConfig, log: EventLog): CheckpointStore {
  return config.bus.mode === 'embedded' ? new FileCheckpointStore(config.audit.checkpoints.file) : new StreamCheckpointStore(log, config.edge.auditAckTimeout);
}

/**
 * Starts signing the heads of a role's chains every `audit.checkpoints.interval`, with the key in
 * `audit.checkpoints.signingKeyFile` (generated there when missing). Stop it after the role's last
 * event, so the final heads are signed too.
 */
export function startChainCheckpointer(
  config: PortcullisConfig,
  log: EventLog,
  logger: Logger,
  role: string,
  sources: readonly (() => ChainHead[])[],
): ChainCheckpointer {
  const c = config.audit.checkpoints;
  const signer = new CheckpointSigner(loadSigningKey(c.signingKeyFile, true), role, config.node.id);
  const checkpointer = new ChainCheckpointer({ store: checkpointStore(config, log), signer, sources, intervalMs: c.interval, logger });
  checkpointer.start();
  logger.info('chain checkpoints signed', {
    role,
    keyId: signer.keyId,
    everyMs: c.interval,
    store: config.bus.mode === 'embedded' ? c.file : 'PORTCULLIS_CHECKPOINTS',
  });
  return checkpointer;
}
