import { createHash } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { formatPolicyError, formatPolicyWarning, parsePolicy } from './policy-parser.js';
import type { CompiledPolicy } from './compiled-policy.js';
import type { KeyValueStore } from '@portcullis/bus';
import type { Logger } from '@portcullis/common';

/** What a swap listener is told besides the policy: the text's digest and the version it replaced. */
export interface PolicySwap {
  /** Hex SHA-256 of the policy text. */
  sha256: string;
  /** The version in force before, undefined for the first. */
  previous: string | undefined;
}

/** A policy text that was refused (the version in force stays). */
export interface PolicyRejection {
  source: string;
  /** The `metadata.version` the text claims, when readable. */
  claimedVersion: string | undefined;
  sha256: string;
  problems: readonly string[];
  /** The version still in force, undefined when none. */
  keeping: string | undefined;
}

/** Longest wait at start-up for the bucket's current value before serving without it. */
const FIRST_BUNDLE_TIMEOUT_MS = 10_000;

/**
 * Holds the policy in force. A new version is built whole and swapped in one assignment;
 * an invalid version is logged (with the version it claims) and the last good one stays in force.
 */
export class PolicyStore {
  private current: CompiledPolicy | undefined;
  private readonly listeners = new Set<(policy: CompiledPolicy, swap: PolicySwap) => void>();
  private readonly rejectListeners = new Set<(rejection: PolicyRejection) => void>();

  constructor(private readonly logger: Logger) {}

  /** The policy in force, undefined before the first valid load (then every decision fails closed). */
  get policy(): CompiledPolicy | undefined {
    return this.current;
  }

  /** Calls `listener` after every swap (not for rejected versions). */
  onSwap(listener: (policy: CompiledPolicy, swap: PolicySwap) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Calls `listener` for every text refused as invalid. */
  onReject(listener: (rejection: PolicyRejection) => void): () => void {
    this.rejectListeners.add(listener);
    return () => this.rejectListeners.delete(listener);
  }

  /** Parses and swaps in a policy text; returns the problems when it is invalid. */
  load(text: string, source: string): readonly string[] {
    const result = parsePolicy(text, { source });
    const sha256 = createHash('sha256').update(text).digest('hex');
    if (!result.ok) {
      const problems = result.errors.map((e) => formatPolicyError(e, source));
      const rejection: PolicyRejection = { source, claimedVersion: claimedVersion(text), sha256, problems, keeping: this.current?.version };
      this.logger.error('policy rejected; keeping the last good version', {
        source,
        rejectedVersion: rejection.claimedVersion ?? null,
        keeping: rejection.keeping ?? null,
        problems,
      });
      this.notify(this.rejectListeners, (listener) => listener(rejection));
      return problems;
    }
    if (result.warnings.length > 0) {
      this.logger.warn('policy warnings (loaded anyway)', {
        source,
        version: result.policy.version,
        warnings: result.warnings.map((w) => formatPolicyWarning(w, source)),
      });
    }
    const previous = this.current?.version;
    this.current = result.policy;
    this.logger.info('policy in force', { source, version: result.policy.version, previous: previous ?? null });
    this.notify(this.listeners, (listener) => listener(result.policy, { sha256, previous }));
    return [];
  }

  private notify<L>(listeners: Set<L>, call: (listener: L) => void): void {
    for (const listener of listeners) {
      try {
        call(listener);
      } catch (err) {
        this.logger.error('policy listener failed', { err });
      }
    }
  }

  /** Reads and loads a file once; false when it cannot be read or is invalid. */
  loadFile(file: string): boolean {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      this.logger.error('cannot read policy file; keeping the last good version', { file, err });
      return false;
    }
    return this.load(text, file).length === 0;
  }

  /** Loads a file now and again whenever it changes (the embedded mode's reload). */
  watchFile(file: string): () => void {
    this.loadFile(file);
    watchFile(file, { interval: 500, persistent: false }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size) this.loadFile(file);
    });
    return () => unwatchFile(file);
  }

  /**
   * Follows the policy bundle in a KV bucket: every new revision is built and swapped in (or
   * rejected, keeping the version in force). At start-up the bucket's current value is loaded;
   * only when the bucket has no bundle yet is `fallbackFile` loaded instead (once, not watched:
   * once a bundle is pushed, the bucket is the source of truth). Resolves after that first load.
   */
  async watchBundle(kv: KeyValueStore, bucket: string, key: string, fallbackFile: string): Promise<() => Promise<void>> {
    let first = true;
    let firstDone: () => void = () => undefined;
    const loaded = new Promise<void>((resolve) => (firstDone = resolve));
    const sub = kv.watch(key, (entry) => {
      const wasFirst = first;
      first = false;
      if (entry === undefined) {
        if (wasFirst) {
          this.logger.info('policy bucket has no bundle yet: serving the configured file until one is pushed', { bucket, key, file: fallbackFile });
          this.loadFile(fallbackFile);
        } else {
          this.logger.warn('policy bundle deleted from the bucket; keeping the version in force', { bucket, key, keeping: this.current?.version ?? null });
        }
      } else {
        this.load(new TextDecoder().decode(entry.value), `kv ${bucket}/${key} revision ${entry.revision}`);
      }
      if (wasFirst) firstDone();
    });
    const timer = setTimeout(() => {
      this.logger.error('no answer from the policy bucket at start-up; serving nothing until a bundle arrives', { bucket, key });
      firstDone();
    }, FIRST_BUNDLE_TIMEOUT_MS);
    await loaded;
    clearTimeout(timer);
    return () => sub.unsubscribe();
  }
}

/** The `metadata.version` a policy text claims, when it is readable YAML, for log lines about rejected bundles. */
export function claimedVersion(text: string): string | undefined {
  try {
    const doc = parseYaml(text) as unknown;
    if (doc === null || typeof doc !== 'object') return undefined;
    const metadata = (doc as Record<string, unknown>)['metadata'];
    if (metadata === null || typeof metadata !== 'object') return undefined;
    const version = (metadata as Record<string, unknown>)['version'];
    return typeof version === 'string' || typeof version === 'number' ? String(version) : undefined;
  } catch {
    return undefined;
  }
}
