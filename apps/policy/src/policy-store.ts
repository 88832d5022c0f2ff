import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { formatPolicyError, parsePolicy, type CompiledPolicy } from '../../../libs/policy-engine/src/index.js';
import type { Logger } from '../../../libs/common/src/index.js';

/**
 * Holds the policy in force. A new version is built whole and swapped in one assignment;
 * an invalid version is logged and the last good one stays in force.
 */
export class PolicyStore {
  private current: CompiledPolicy | undefined;

  constructor(private readonly logger: Logger) {}

  /** The policy in force, undefined before the first valid load (then every decision fails closed). */
  get policy(): CompiledPolicy | undefined {
    return this.current;
  }

  /** Parses and swaps in a policy text; returns the problems when it is invalid. */
  load(text: string, source: string): readonly string[] {
    const result = parsePolicy(text, { source });
    if (!result.ok) {
      const problems = result.errors.map((e) => formatPolicyError(e, source));
      this.logger.error('policy rejected; keeping the last good version', {
        source,
        keeping: this.current?.version ?? null,
        problems,
      });
      return problems;
    }
    const previous = this.current?.version;
    this.current = result.policy;
    this.logger.info('policy in force', { source, version: result.policy.version, previous: previous ?? null });
    return [];
  }

  /** Loads a file now and again whenever it changes (the embedded mode's reload). */
  watchFile(file: string): () => void {
    const read = (): void => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        this.logger.error('cannot read policy file; keeping the last good version', { file, err });
        return;
      }
      this.load(text, file);
    };
    read();
    watchFile(file, { interval: 500, persistent: false }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size) read();
    });
    return () => unwatchFile(file);
  }
}
