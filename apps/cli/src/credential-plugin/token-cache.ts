/**
 * The credential plugin's token cache on disk: one 0600 file per (issuer, client, audience,
 * scopes, trust anchor) in a 0700 directory, written atomically (temporary file + rename). A file
 * that is unreadable, corrupt, for another key, or readable by others is ignored and replaced.
 * Node builtins only, and not node:crypto (loading it costs a tenth of a node start): this is the
 * hot path of every kubectl call. The names are a 64-bit FNV-1a of the key; a file is used only if
 * the whole key stored in it matches, so a collision costs a fetch, never the wrong token.
 */
import { chmodSync, closeSync, fstatSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** What a cached token is for; every field is part of the key. */
export interface CacheKey {
  readonly issuer: string;
  readonly client: string;
  readonly audience: string;
  readonly scopes: readonly string[];
  /** A digest of the CA the plugin trusts for the token endpoint ('' for the system roots). */
  readonly trust: string;
}

/** A cached token. */
export interface CachedToken {
  readonly accessToken: string;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
}

interface CacheFile extends CachedToken {
  readonly v: 1;
  readonly key: CacheKey;
}

/** $XDG_CACHE_HOME/portcullis, else ~/.cache/portcullis. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg !== undefined && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'portcullis');
}

/** The file a key's token lives in: a digest of the whole key, so no part of it shows in the name. */
export function cacheFile(dir: string, key: CacheKey): string {
  return join(dir, 'tokens', `${fnv64(JSON.stringify(keyFields(key)))}.json`);
}

/** FNV-1a over UTF-16 code units in two 32-bit lanes: 16 hex digits. An identifier, not a MAC. */
export function fnv64(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c ^ (a >>> 15), 0x01000193);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}

/**
 * How long before expiry a token counts as stale: a tenth of its lifetime, at most 60 s. kubectl is
 * told the same moment (expirationTimestamp), so it runs the plugin again exactly when a refresh is due.
 */
export function refreshMarginMs(token: CachedToken): number {
  return Math.min(60_000, Math.max(0, token.expiresAtMs - token.issuedAtMs) / 10);
}

/** When the token should be replaced. */
export function staleAtMs(token: CachedToken): number {
  return token.expiresAtMs - refreshMarginMs(token);
}

/** The cached token for `key` if it is still fresh at `now`, else undefined (never throws). */
export function readCachedToken(dir: string, key: CacheKey, now: number = Date.now()): CachedToken | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(cacheFile(dir, key), 'r');
    const st = fstatSync(fd);
    // Someone else's file, or one others can read or write: not trusted, it gets replaced.
    if (!st.isFile() || (st.mode & 0o077) !== 0 || (typeof process.getuid === 'function' && st.uid !== process.getuid())) return undefined;
    const parsed = JSON.parse(readFileSync(fd, 'utf8')) as Partial<CacheFile>;
    if (parsed.v !== 1 || typeof parsed.accessToken !== 'string' || parsed.accessToken === '') return undefined;
    if (typeof parsed.expiresAtMs !== 'number' || typeof parsed.issuedAtMs !== 'number') return undefined;
    if (JSON.stringify(parsed.key === undefined ? null : keyFields(parsed.key)) !== JSON.stringify(keyFields(key))) return undefined;
    const token = { accessToken: parsed.accessToken, issuedAtMs: parsed.issuedAtMs, expiresAtMs: parsed.expiresAtMs };
    return now < staleAtMs(token) ? token : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Stores a token: 0700 directory, 0600 file, temporary file + rename so a reader never sees half a file. */
export function writeCachedToken(dir: string, key: CacheKey, token: CachedToken): string {
  const file = cacheFile(dir, key);
  const tokensDir = join(dir, 'tokens');
  for (const d of [dir, tokensDir]) {
    mkdirSync(d, { recursive: true, mode: 0o700 });
    if ((statSync(d).mode & 0o077) !== 0) chmodSync(d, 0o700);
  }
  const body: CacheFile = { v: 1, key: keyFields(key), ...token };
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(body), { mode: 0o600, flag: 'wx' });
    renameSync(tmp, file);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw err;
  }
  return file;
}

function keyFields(key: CacheKey): CacheKey {
  return { issuer: key.issuer, client: key.client, audience: key.audience, scopes: [...key.scopes].sort(), trust: key.trust };
}
