/**
 * The exec credential plugin's parts that need no server: its hot path loads node builtins and
 * its own few files only (the reason it is fast), the refresh margin, the cache key, token files
 * and its arguments. The end-to-end behaviour (kubectl, an IdP, the cache on disk) is in
 * test/e2e/credential-plugin.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parsePluginArgs, tokenFromFile } from '../../../apps/cli/src/credential-plugin/plugin.js';
import { cacheDir, cacheFile, readCachedToken, refreshMarginMs, writeCachedToken, type CacheKey } from '../../../apps/cli/src/credential-plugin/token-cache.js';

const PLUGIN_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../apps/cli/src/credential-plugin');

/** The static imports of a compiled module (import … from, export … from, bare import). */
function staticImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^(?:import|export)\s(?:[^'"]*?\sfrom\s)?['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
}

describe('credential plugin', () => {
  test('its entry point loads node builtins (not node:crypto) and its own files only; the token endpoint and the config only on a miss', () => {
    const seen = new Set<string>();
    const walk = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const spec of staticImports(file)) {
        // node:crypto alone costs a tenth of a node start: the cache names its files without it.
        assert.notEqual(spec, 'node:crypto', `${file} imports node:crypto on the hot path`);
        if (spec.startsWith('node:')) continue;
        assert.ok(spec.startsWith('./'), `${file} imports ${spec}: the hot path may import only node: builtins and the plugin's own files`);
        walk(join(dirname(file), spec));
      }
    };
    walk(join(PLUGIN_DIR, 'main.js'));
    assert.deepEqual([...seen].map((f) => f.slice(PLUGIN_DIR.length + 1)).sort(), ['main.js', 'plugin-request.js', 'plugin.js', 'token-cache.js']);
    const dynamic = [...readFileSync(join(PLUGIN_DIR, 'plugin.js'), 'utf8').matchAll(/import\(['"]([^'"]+)['"]\)/g)].map((m) => m[1]);
    assert.deepEqual(dynamic, ['./token-endpoint.js']);
    const bin = readFileSync(resolve(PLUGIN_DIR, '../../../../../bin/portcullis.js'), 'utf8');
    assert.match(bin, /process\.argv\[2\] === 'credential' \? '\.\.\/dist\/apps\/cli\/src\/credential-plugin\/main\.js'/);
  });

  test('a token is refreshed a tenth of its lifetime before expiry, at most 60 s before', () => {
    const t = (lifetimeMs: number) => refreshMarginMs({ accessToken: 'x', issuedAtMs: 1_000_000, expiresAtMs: 1_000_000 + lifetimeMs });
    assert.equal(t(3_000), 300);
    assert.equal(t(300_000), 30_000);
    assert.equal(t(3_600_000), 60_000);
    assert.equal(t(-5), 0);
  });

  test('the cache key: one file per issuer, client, audience, scopes and trust; no part of it in the name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cred-unit-'));
    const key: CacheKey = { issuer: 'https://idp.example', client: 'ci-bot', audience: 'prod', scopes: ['b', 'a'], trust: '' };
    const name = cacheFile(dir, key);
    assert.doesNotMatch(name, /idp|ci-bot|prod/);
    assert.equal(cacheFile(dir, { ...key, scopes: ['a', 'b'] }), name, 'scope order does not matter');
    for (const other of [{ issuer: 'https://idp2.example' }, { client: 'x' }, { audience: 'staging' }, { scopes: ['a'] }, { trust: 'ab' }]) {
      assert.notEqual(cacheFile(dir, { ...key, ...other }), name, JSON.stringify(other));
    }
    const now = Date.now();
    writeCachedToken(dir, key, { accessToken: 'tok', issuedAtMs: now, expiresAtMs: now + 300_000 });
    assert.equal(readCachedToken(dir, key, now)?.accessToken, 'tok');
    assert.equal(readCachedToken(dir, key, now + 269_000)?.accessToken, 'tok');
    assert.equal(readCachedToken(dir, key, now + 271_000), undefined, 'stale within the last tenth');
    // A file for another key that landed under this name (a collision, a copy) is not used.
    const body = JSON.parse(readFileSync(name, 'utf8')) as Record<string, unknown>;
    writeFileSync(name, JSON.stringify({ ...body, key: { ...key, client: 'someone-else' } }), { mode: 0o600 });
    assert.equal(readCachedToken(dir, key, now), undefined);
  });

  test('$XDG_CACHE_HOME/portcullis, else ~/.cache/portcullis (a relative XDG_CACHE_HOME is ignored, as the spec says)', () => {
    assert.equal(cacheDir({ XDG_CACHE_HOME: '/tmp/x' }), '/tmp/x/portcullis');
    assert.match(cacheDir({}), /\/\.cache\/portcullis$/);
    assert.match(cacheDir({ XDG_CACHE_HOME: 'rel' }), /\/\.cache\/portcullis$/);
  });

  test('a token file: kubectl asks again within a minute or at exp; opaque tokens work; expired and empty ones are errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cred-unit-'));
    const file = join(dir, 'token');
    const jwt = (exp: number) => `e30.${Buffer.from(JSON.stringify({ exp })).toString('base64url')}.sig`;
    const now = 1_800_000_000_000;
    writeFileSync(file, `${jwt(now / 1000 + 600)}\n`);
    assert.deepEqual(tokenFromFile(file, now), { accessToken: jwt(now / 1000 + 600), expirationMs: now + 60_000 });
    writeFileSync(file, jwt(now / 1000 + 20));
    assert.equal(tokenFromFile(file, now).expirationMs, now + 20_000);
    writeFileSync(file, 'opaque-token');
    assert.equal(tokenFromFile(file, now).accessToken, 'opaque-token');
    writeFileSync(file, jwt(now / 1000 - 1));
    assert.throws(() => tokenFromFile(file, now), /the token in .*token expired at 2027-01-15T07:59:59\.000Z/);
    writeFileSync(file, '\n');
    assert.throws(() => tokenFromFile(file, now), /the token file .* is empty/);
    assert.throws(() => tokenFromFile(join(dir, 'missing'), now), /cannot read the token file .*missing: ENOENT/);
  });

  test('arguments: one mode, one secret source; the env variable defaults to PORTCULLIS_CLIENT_SECRET', () => {
    assert.deepEqual(parsePluginArgs(['--token-file', '/t']), { mode: 'token-file', tokenFile: '/t' });
    const cc = parsePluginArgs(['--issuer', 'https://i', '--client', 'c', '--scope', 'a', '--scope', 'b']);
    assert.ok(cc !== 'help' && cc.mode === 'client-credentials');
    assert.deepEqual(cc.secret, { kind: 'env', name: 'PORTCULLIS_CLIENT_SECRET' });
    assert.deepEqual(cc.scopes, ['a', 'b']);
    assert.equal(parsePluginArgs(['--help']), 'help');
    assert.throws(() => parsePluginArgs([]), /give --token-file, or --issuer and --client/);
    assert.throws(() => parsePluginArgs(['--token-file', '/t', '--issuer', 'https://i']), /--token-file cannot be combined with --issuer/);
    assert.throws(
      () => parsePluginArgs(['--issuer', 'https://i', '--client', 'c', '--client-secret-env', 'A', '--client-secret-file', '/s']),
      /give one of --client-secret-env, --client-secret-file and --dev-config/,
    );
    assert.throws(() => parsePluginArgs(['--bogus']), /Unknown option '--bogus'/);
  });
});
