/**
 * Signed checkpoints of the hash chains: what makes deleting the **tail** of a chain visible.
 *
 * A chain proves that nothing between two stored events was removed or changed, but not that
 * nothing came after the last stored one. So every role that writes a chain (edge, approval,
 * policy, audit) signs its chains' heads — (chain id, seq, hash) as the log acknowledged them —
 * every `audit.checkpoints.interval` with its Ed25519 key and stores them apart from the log:
 * in cluster mode the JetStream stream `PORTCULLIS_CHECKPOINTS`, which refuses message deletes
 * and purges (deny_delete, deny_purge); in the embedded mode an append-only file in the state
 * directory. `audit verify` checks the log against the newest checkpoint of each chain and names
 * the missing sequence range.
 *
 * Signed bytes: `portcullis.checkpoint.v1\n<chain id>\n<seq>\n<hash>\n<signed at ms>\n<role>`.
 * Key id: the first 16 hex digits of the SHA-256 of the public key (SPKI DER).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import type { EventLog } from '@portcullis/bus/pure';
import type { ChainHead } from './chained-appender.js';

/** One signed chain head. */
export interface Checkpoint {
  v: 1;
  chainId: string;
  seq: number;
  hash: string;
  signedAtMs: number;
  /** The role that signed it: edge, approval, policy, audit, cli. */
  role: string;
  nodeId: string;
  /** Which key signed it (see {@link keyId}). */
  keyId: string;
  /** Ed25519 signature of {@link signedBytes}, base64. */
  sig: string;
}

/** The checkpoint stream (cluster mode): no message can be deleted from it, nor the stream purged. */
export const CHECKPOINT_STREAM = { name: 'PORTCULLIS_CHECKPOINTS', subjects: ['portcullis.checkpoints.>'] } as const;

function signedBytes(c: Pick<Checkpoint, 'chainId' | 'seq' | 'hash' | 'signedAtMs' | 'role'>): Buffer {
  return Buffer.from(`portcullis.checkpoint.v1\n${c.chainId}\n${c.seq}\n${c.hash}\n${c.signedAtMs}\n${c.role}`, 'utf8');
}

/** The key id of a public key: 16 hex digits of the SHA-256 of its SPKI DER encoding. */
export function keyId(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

/** A role's signing key: an Ed25519 private key read from a PEM file. */
export class CheckpointSigner {
  readonly keyId: string;
  readonly publicKey: KeyObject;

  constructor(
    private readonly privateKey: KeyObject,
    readonly role: string,
    readonly nodeId: string,
  ) {
    if (privateKey.asymmetricKeyType !== 'ed25519')
      throw new Error(`a checkpoint signing key must be Ed25519, got ${privateKey.asymmetricKeyType ?? 'unknown'}`);
    this.publicKey = createPublicKey(privateKey);
    this.keyId = keyId(this.publicKey);
  }

  sign(head: ChainHead, signedAtMs: number = Date.now()): Checkpoint {
    const unsigned = { chainId: head.chainId, seq: head.seq, hash: head.hash, signedAtMs, role: this.role };
    const sig = sign(null, signedBytes(unsigned), this.privateKey).toString('base64');
    return { v: 1, ...unsigned, nodeId: this.nodeId, keyId: this.keyId, sig };
  }
}

/**
 * Reads the Ed25519 private key (PEM, PKCS#8) at `file`; with `create`, generates one (mode 0600)
 * when the file does not exist — the embedded mode's and a first start's key. Throws naming the file.
 */
export function loadSigningKey(file: string, create: boolean): KeyObject {
  if (!existsSync(file)) {
    if (!create) throw new Error(`no checkpoint signing key at ${file} (audit.checkpoints.signingKeyFile)`);
    const { privateKey } = generateKeyPairSync('ed25519');
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    try {
      writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      // Another role of the same state directory wrote it first: use theirs.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  try {
    return createPrivateKey(readFileSync(file));
  } catch (err) {
    throw new Error(`cannot read the checkpoint signing key ${file} (audit.checkpoints.signingKeyFile): ${(err as Error).message}`, { cause: err });
  }
}

/** Reads trusted public keys (PEM files, or the public half of a private key file), by key id. */
export function loadTrustedKeys(files: readonly string[]): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  for (const file of files) {
    let key: KeyObject;
    try {
      const pem = readFileSync(file);
      key = pem.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(pem)) : createPublicKey(pem);
    } catch (err) {
      throw new Error(`cannot read the checkpoint public key ${file}: ${(err as Error).message}`, { cause: err });
    }
    keys.set(keyId(key), key);
  }
  return keys;
}

/** Why a checkpoint is refused, undefined when its signature verifies with a trusted key. */
export function checkpointProblem(c: Checkpoint, trusted: ReadonlyMap<string, KeyObject>): string | undefined {
  const key = trusted.get(c.keyId);
  if (key === undefined) return `signed by key ${c.keyId}, which is not a trusted checkpoint key (audit.checkpoints.publicKeys)`;
  let ok = false;
  try {
    ok = verify(null, signedBytes(c), key, Buffer.from(c.sig, 'base64'));
  } catch {
    ok = false;
  }
  return ok ? undefined : `its signature does not verify with key ${c.keyId}: the checkpoint was altered`;
}

/** Parses one stored checkpoint; throws naming what is wrong. */
export function parseCheckpoint(text: string): Checkpoint {
  const value = JSON.parse(text) as Record<string, unknown>;
  const str = (k: string): string => {
    if (typeof value[k] !== 'string') throw new Error(`field ${k} is not a string`);
    return value[k];
  };
  const num = (k: string): number => {
    if (typeof value[k] !== 'number' || !Number.isSafeInteger(value[k])) throw new Error(`field ${k} is not an integer`);
    return value[k];
  };
  if (value['v'] !== 1) throw new Error(`unknown checkpoint version ${JSON.stringify(value['v'])}`);
  return {
    v: 1,
    chainId: str('chainId'),
    seq: num('seq'),
    hash: str('hash'),
    signedAtMs: num('signedAtMs'),
    role: str('role'),
    nodeId: str('nodeId'),
    keyId: str('keyId'),
    sig: str('sig'),
  };
}

/** Checkpoints as read back: the parsed ones, and a line per record that could not be parsed. */
export interface CheckpointSet {
  checkpoints: Checkpoint[];
  unreadable: string[];
}

/** Where checkpoints are kept apart from the log. */
export interface CheckpointStore {
  append(checkpoint: Checkpoint): Promise<void>;
  list(): Promise<CheckpointSet>;
}

/** The embedded mode's store: one JSON line per checkpoint, appended and synced (the file is never rewritten). */
export class FileCheckpointStore implements CheckpointStore {
  constructor(readonly file: string) {}

  async append(checkpoint: Checkpoint): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    const fh = await open(this.file, 'a', 0o600);
    try {
      await fh.write(`${JSON.stringify(checkpoint)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async list(): Promise<CheckpointSet> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { checkpoints: [], unreadable: [] };
      throw err;
    }
    return parseCheckpointLines(text, this.file);
  }
}

/** Parses checkpoint JSON lines (a file, or an export); blank lines are skipped. */
export function parseCheckpointLines(text: string, source: string): CheckpointSet {
  const out: CheckpointSet = { checkpoints: [], unreadable: [] };
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.checkpoints.push(parseCheckpoint(line));
    } catch (err) {
      out.unreadable.push(`${source} line ${i + 1}: ${(err as Error).message}`);
    }
  });
  return out;
}

/** The cluster's store: the {@link CHECKPOINT_STREAM} JetStream stream. */
export class StreamCheckpointStore implements CheckpointStore {
  constructor(
    private readonly log: Pick<EventLog, 'append' | 'snapshot' | 'ensureStream'>,
    private readonly ackTimeoutMs = 5000,
  ) {}

  /** Creates the stream (deny_delete, deny_purge; kept for ever); `updateExisting` false leaves an existing one as it is. */
  ensure(replicas: number, updateExisting = true): Promise<void> {
    return this.log.ensureStream({
      name: CHECKPOINT_STREAM.name,
      subjects: CHECKPOINT_STREAM.subjects,
      maxAgeMs: 0,
      duplicateWindowMs: 120_000,
      replicas,
      denyDelete: true,
      denyPurge: true,
      updateExisting,
    });
  }

  async append(checkpoint: Checkpoint): Promise<void> {
    const subject = `portcullis.checkpoints.${checkpoint.role}`;
    const msgId = createHash('sha256').update(`${checkpoint.chainId}\n${checkpoint.seq}\n${checkpoint.keyId}`).digest('hex').slice(0, 40);
    await this.log.append(subject, new TextEncoder().encode(JSON.stringify(checkpoint)), msgId, { timeoutMs: this.ackTimeoutMs });
  }

  async list(): Promise<CheckpointSet> {
    const out: CheckpointSet = { checkpoints: [], unreadable: [] };
    for (const m of await this.log.snapshot(CHECKPOINT_STREAM.name, {})) {
      try {
        out.checkpoints.push(parseCheckpoint(new TextDecoder().decode(m.data)));
      } catch (err) {
        out.unreadable.push(`${CHECKPOINT_STREAM.name} message ${m.seq}: ${(err as Error).message}`);
      }
    }
    return out;
  }
}

/** Logs what a checkpointer could not do (structured, no secrets). */
export interface CheckpointerLogger {
  warn(message: string, fields?: Record<string, unknown>): void;
}

/**
 * Signs the heads its sources acknowledged since the last round, every `intervalMs` and once more
 * on {@link stop}. A head that could not be stored is kept for the next round (the newest per chain).
 */
export class ChainCheckpointer {
  readonly #pending = new Map<string, ChainHead>();
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> = Promise.resolve();

  constructor(
    private readonly opts: {
      store: CheckpointStore;
      signer: CheckpointSigner;
      sources: readonly (() => ChainHead[])[];
      intervalMs: number;
      logger: CheckpointerLogger;
    },
  ) {}

  start(): void {
    this.#timer ??= setInterval(() => void this.checkpoint(), this.opts.intervalMs);
    this.#timer.unref();
  }

  /** Signs and stores the heads acknowledged since the last round (rounds never overlap). */
  checkpoint(): Promise<void> {
    this.#round = this.#round.then(() => this.#runRound());
    return this.#round;
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.checkpoint();
  }

  async #runRound(): Promise<void> {
    for (const source of this.opts.sources) {
      for (const head of source()) {
        const known = this.#pending.get(head.chainId);
        if (known === undefined || known.seq < head.seq) this.#pending.set(head.chainId, head);
      }
    }
    for (const [chainId, head] of [...this.#pending]) {
      try {
        await this.opts.store.append(this.opts.signer.sign(head));
        if (this.#pending.get(chainId) === head) this.#pending.delete(chainId);
      } catch (err) {
        this.opts.logger.warn('chain checkpoint not stored; retrying next round', { chainId, seq: head.seq, err: (err as Error).message });
      }
    }
  }
}
