import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PortcullisConfig } from '@portcullis/config';
import { BodyDigest } from '@portcullis/masking';

/** The file under node.stateDir that holds the generated key when audit.bodyHashSecret is not set. */
export const BODY_HASH_KEY_FILE = 'audit-body-key';

/** Why the body key cannot be had (the CLI does not create one: only a gateway does). */
export class BodyHashKeyError extends Error {
  override readonly name = 'BodyHashKeyError';
}

/**
 * The key of the audited bodies' digests: `audit.bodyHashSecret` when set (a cluster sets the same
 * one on every edge, and gives it to its auditors), else a key generated once into
 * `<node.stateDir>/audit-body-key` (mode 0600) and shared by every role of that directory — the
 * embedded mode. With `create: false` (the CLI) a missing file is an error instead.
 */
export function openBodyDigest(config: PortcullisConfig, opts: { create: boolean }): BodyDigest {
  const configured = config.audit.bodyHashSecret;
  if (configured !== '') return new BodyDigest(configured);
  const file = join(config.node.stateDir, BODY_HASH_KEY_FILE);
  if (!existsSync(file)) {
    if (!opts.create) {
      throw new BodyHashKeyError(`no audit body key: audit.bodyHashSecret is not set and ${file} does not exist (a gateway creates it on first start)`);
    }
    mkdirSync(config.node.stateDir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    // link() fails when the file exists: of several roles starting together, the first key wins.
    try {
      linkSync(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      unlinkSync(tmp);
    }
  }
  return new BodyDigest(readFileSync(file, 'utf8').trim());
}
