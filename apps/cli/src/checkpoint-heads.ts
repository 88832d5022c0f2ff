import { existsSync } from 'node:fs';
import type { PortcullisConfig } from '@portcullis/config';
import type { EventLog } from '@portcullis/bus/pure';
import { CheckpointSigner, FileCheckpointStore, loadSigningKey, StreamCheckpointStore, type ChainHead } from '@portcullis/audit-store/pure';

/**
 * Signs the heads of the CLI's own one-event chains (a `policy.pushed` record, an `evidence.read`)
 * when this host has the checkpoint signing key (a host running the roles, or the embedded mode's
 * state directory), so deleting such a record is detected; without the key the segment is
 * unanchored and `audit verify` notes it. A checkpoint that cannot be stored does not undo the
 * recorded event: it is a warning on stderr naming `what`.
 */
export async function checkpointCliHeads(config: PortcullisConfig, log: EventLog, heads: readonly ChainHead[], what: string): Promise<void> {
  const keyFile = config.audit.checkpoints.signingKeyFile;
  if (heads.length === 0 || !existsSync(keyFile)) return;
  try {
    const signer = new CheckpointSigner(loadSigningKey(keyFile, false), 'cli', config.node.id);
    const store =
      config.bus.mode === 'embedded' ? new FileCheckpointStore(config.audit.checkpoints.file) : new StreamCheckpointStore(log, config.edge.auditAckTimeout);
    for (const head of heads) await store.append(signer.sign(head));
  } catch (err) {
    process.stderr.write(`warning: ${what}'s checkpoint was not stored: ${(err as Error).message}\n`);
  }
}
