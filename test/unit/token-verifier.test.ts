import assert from 'node:assert/strict';
import { createPrivateKey, sign as cryptoSign, type JsonWebKey } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, exportJWK, generateKeyPair, importJWK, SignJWT, UnsecuredJWT, type JWK, type JWTHeaderParameters, type JWTPayload } from 'jose';
import { DevIssuer, DevIssuerError, TokenError, TokenErrorCode, TokenVerifier, type DevIssuerClient, type DevIssuerOptions } from '@portcullis/identity';

const ISSUER = 'https://127.0.0.1:8443/oidc/dev';
const AUDIENCE = 'portcullis';
const MAX_LIFETIME_MS = 3_600_000;
const CLOCK_SKEW_MS = 30_000;
const CLIENTS: readonly DevIssuerClient[] = [
  { id: 'ci-bot', secret: 'dev-secret-ci-bot', subject: 'ci-bot', groups: ['bots', 'deployers'], scopes: ['k8s:read', 'k8s:write'] },
  { id: 'sre-alice', secret: 'dev-secret-sre-alice', subject: 'alice', groups: ['sre'], scopes: [] },
];

const root = mkdtempSync(join(tmpdir(), 'portcullis-identity-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = (): string => join(root, `state-${++dirCount}`);

function issuerOptions(stateDir: string, over: Partial<DevIssuerOptions> = {}): DevIssuerOptions {
  return { issuer: ISSUER, audience: AUDIENCE, tokenLifetimeMs: 300_000, maxTokenLifetimeMs: MAX_LIFETIME_MS, clients: CLIENTS, stateDir, ...over };
}

let dev: DevIssuer;
let verifier: TokenVerifier;
/** The dev issuer's own signing key, read from its state dir, to forge tokens it could have signed. */
let trustedKey: CryptoKey | Uint8Array;
let trustedKid: string;
let trustedPrivateJwk: JWK;
let publicJwk: JWK;

before(async () => {
  const stateDir = freshDir();
  dev = await DevIssuer.open(issuerOptions(stateDir));
  verifier = newVerifier();
  const stored = JSON.parse(readFileSync(join(stateDir, 'dev-issuer-key.json'), 'utf8')) as { kid: string; privateJwk: JWK };
  trustedKey = await importJWK(stored.privateJwk, 'ES256');
  trustedKid = stored.kid;
  trustedPrivateJwk = stored.privateJwk;
  publicJwk = dev.jwks().keys[0]!;
});

function newVerifier(): TokenVerifier {
  return new TokenVerifier({
    issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], algorithms: ['ES256'], keys: { jwks: dev.jwks() } }],
    maxTokenLifetimeMs: MAX_LIFETIME_MS,
    clockSkewMs: CLOCK_SKEW_MS,
  });
}

const b64 = (s: string): string => Buffer.from(s).toString('base64url');
const nowS = (): number => Math.floor(Date.now() / 1000);

/** Claims of a token the dev issuer would mint, with overrides; `undefined` removes a claim. */
function claims(over: Record<string, unknown> = {}): JWTPayload {
  const t = nowS();
  const base: Record<string, unknown> = {
    iss: ISSUER,
    sub: 'ci-bot',
    aud: AUDIENCE,
    iat: t,
    nbf: t,
    exp: t + 300,
    jti: 'forged-1',
    client_id: 'ci-bot',
    groups: ['bots'],
  };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete base[k];
    else base[k] = v;
  }
  return base;
}

/** Signs `payload` as given (no defaults added by SignJWT). */
async function sign(payload: JWTPayload, opts: { key?: CryptoKey | Uint8Array; header?: Partial<JWTHeaderParameters> } = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: trustedKid, typ: 'JWT', ...opts.header }).sign(opts.key ?? trustedKey);
}

/** Signs with the trusted key without jose's header checks (it will not sign an unknown `crit`). */
function signRaw(header: Record<string, unknown>, payload: JWTPayload): string {
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(payload))}`;
  const signature = cryptoSign('sha256', Buffer.from(input), {
    key: createPrivateKey({ key: trustedPrivateJwk as JsonWebKey, format: 'jwk' }),
    dsaEncoding: 'ieee-p1363',
  });
  return `${input}.${signature.toString('base64url')}`;
}

async function refusal(token: string, now?: number): Promise<TokenError> {
  try {
    await verifier.verify(token, now);
  } catch (err) {
    assert.ok(err instanceof TokenError, `expected a TokenError, got ${String(err)}`);
    if (token !== '') assert.ok(!err.message.includes(token), 'the message must never contain the token');
    return err;
  }
  assert.fail('the token was accepted');
}

interface Attack {
  readonly name: string;
  readonly token: () => string | Promise<string>;
  readonly code: TokenErrorCode;
}

const ATTACKS: readonly Attack[] = [
  { name: 'empty token', token: () => '', code: TokenErrorCode.Missing },
  { name: 'alg none (unsecured JWT, empty signature)', token: () => new UnsecuredJWT(claims()).encode(), code: TokenErrorCode.Malformed },
  {
    name: 'alg none with a made-up signature',
    token: () => `${b64(JSON.stringify({ alg: 'none', kid: trustedKid }))}.${b64(JSON.stringify(claims()))}.${b64('sig')}`,
    code: TokenErrorCode.BadSignature,
  },
  {
    name: 'alg "None" (case variant) with a signature',
    token: () => `${b64(JSON.stringify({ alg: 'None', kid: trustedKid }))}.${b64(JSON.stringify(claims()))}.${b64('sig')}`,
    code: TokenErrorCode.BadSignature,
  },
  {
    name: 'HS256 signed with the issuer public JWK (JSON) as HMAC secret',
    token: async () => sign(claims(), { header: { alg: 'HS256' }, key: new TextEncoder().encode(JSON.stringify(publicJwk)) }),
    code: TokenErrorCode.BadSignature,
  },
  {
    name: 'HS256 signed with the issuer public key x coordinate as HMAC secret',
    token: async () => sign(claims(), { header: { alg: 'HS256' }, key: Buffer.from(publicJwk.x ?? '', 'base64url') }),
    code: TokenErrorCode.BadSignature,
  },
  {
    name: 'RS256 from an attacker key, with the trusted kid',
    token: async () => sign(claims(), { header: { alg: 'RS256' }, key: (await generateKeyPair('RS256')).privateKey }),
    code: TokenErrorCode.BadSignature,
  },
  {
    name: 'expired (beyond the clock skew)',
    token: async () => sign(claims({ iat: nowS() - 600, nbf: nowS() - 600, exp: nowS() - 60 })),
    code: TokenErrorCode.Expired,
  },
  { name: 'nbf in the future', token: async () => sign(claims({ nbf: nowS() + 600, exp: nowS() + 900 })), code: TokenErrorCode.NotYetValid },
  { name: 'iat in the future', token: async () => sign(claims({ iat: nowS() + 600, nbf: undefined, exp: nowS() + 900 })), code: TokenErrorCode.NotYetValid },
  {
    name: 'iat a year ahead, 1h exp - iat (would dodge the lifetime cap)',
    token: async () => sign(claims({ iat: nowS() + 365 * 86_400, nbf: undefined, exp: nowS() + 365 * 86_400 + 3600 })),
    code: TokenErrorCode.NotYetValid,
  },
  {
    name: 'wrong iss: a second, unconfigured issuer with its own key',
    token: async () => {
      const rogue = await DevIssuer.open(issuerOptions(freshDir(), { issuer: 'https://evil.example.com/oidc/dev' }));
      return (await rogue.issue({ clientId: 'ci-bot', clientSecret: 'dev-secret-ci-bot' })).accessToken;
    },
    code: TokenErrorCode.UnknownIssuer,
  },
  { name: 'wrong iss signed with the trusted key', token: async () => sign(claims({ iss: 'https://evil.example.com' })), code: TokenErrorCode.UnknownIssuer },
  { name: 'iss with a trailing slash', token: async () => sign(claims({ iss: `${ISSUER}/` })), code: TokenErrorCode.UnknownIssuer },
  { name: 'no iss', token: async () => sign(claims({ iss: undefined })), code: TokenErrorCode.UnknownIssuer },
  { name: 'wrong aud', token: async () => sign(claims({ aud: 'kubernetes' })), code: TokenErrorCode.BadAudience },
  { name: 'aud list without ours', token: async () => sign(claims({ aud: ['a', 'b'] })), code: TokenErrorCode.BadAudience },
  { name: 'no aud', token: async () => sign(claims({ aud: undefined })), code: TokenErrorCode.BadAudience },
  { name: 'lifetime over the cap (exp - iat = 2h)', token: async () => sign(claims({ exp: nowS() + 7200 })), code: TokenErrorCode.LifetimeTooLong },
  { name: 'lifetime one second over the cap', token: async () => sign(claims({ exp: nowS() + 3601 })), code: TokenErrorCode.LifetimeTooLong },
  { name: 'no exp', token: async () => sign(claims({ exp: undefined })), code: TokenErrorCode.BadClaims },
  { name: 'no iat', token: async () => sign(claims({ iat: undefined })), code: TokenErrorCode.BadClaims },
  { name: 'no sub', token: async () => sign(claims({ sub: undefined })), code: TokenErrorCode.BadClaims },
  { name: 'sub an object (not the subject "[object Object]")', token: async () => sign(claims({ sub: { name: 'ci-bot' } })), code: TokenErrorCode.BadClaims },
  { name: 'sub a list (not the subject its item spells)', token: async () => sign(claims({ sub: ['admin'] })), code: TokenErrorCode.BadClaims },
  { name: 'exp as a string', token: async () => sign(claims({ exp: String(nowS() + 300) })), code: TokenErrorCode.BadClaims },
  {
    name: 'unknown kid, signed by another key',
    token: async () => sign(claims(), { header: { kid: 'attacker-key-1' }, key: (await generateKeyPair('ES256')).privateKey }),
    code: TokenErrorCode.UnknownKey,
  },
  { name: 'kid with path characters', token: async () => sign(claims(), { header: { kid: '../../etc/passwd' } }), code: TokenErrorCode.UnknownKey },
  {
    name: 'embedded jwk header naming an attacker key',
    token: async () => {
      const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
      return sign(claims(), { header: { kid: 'x', jwk: await exportJWK(publicKey) }, key: privateKey });
    },
    code: TokenErrorCode.UnknownKey,
  },
  {
    name: 'valid-looking token signed by a different ES256 key with the right kid',
    token: async () => sign(claims(), { key: (await generateKeyPair('ES256')).privateKey }),
    code: TokenErrorCode.BadSignature,
  },
  {
    name: 'payload tampered after signing (sub changed)',
    token: async () => {
      const [h, , s] = (await sign(claims())).split('.');
      return `${h}.${b64(JSON.stringify(claims({ sub: 'admin' })))}.${s}`;
    },
    code: TokenErrorCode.BadSignature,
  },
  { name: 'truncated signature', token: async () => (await sign(claims())).slice(0, -10), code: TokenErrorCode.BadSignature },
  {
    name: 'truncated to header.payload.',
    token: async () => {
      const [h, p] = (await sign(claims())).split('.');
      return `${h}.${p}.`;
    },
    code: TokenErrorCode.Malformed,
  },
  { name: 'truncated in the payload', token: async () => (await sign(claims())).split('.')[0]! + '.eyJpc3MiOiJodHRwczovL', code: TokenErrorCode.Malformed },
  { name: 'oversized (20 kB)', token: async () => sign(claims({ pad: 'x'.repeat(20_000) })), code: TokenErrorCode.Malformed },
  { name: 'garbage', token: () => 'this is not a token', code: TokenErrorCode.Malformed },
  { name: 'three garbage segments', token: () => 'aaa.bbb.ccc', code: TokenErrorCode.Malformed },
  { name: '"Bearer " prefix left on', token: async () => `Bearer ${await sign(claims())}`, code: TokenErrorCode.Malformed },
  { name: 'JWE-shaped (five segments)', token: () => 'a.b.c.d.e', code: TokenErrorCode.Malformed },
  {
    name: 'payload is JSON but not an object',
    token: () => `${b64(JSON.stringify({ alg: 'ES256' }))}.${b64('"just a string"')}.${b64('sig')}`,
    code: TokenErrorCode.UnknownIssuer,
  },
  {
    name: 'unknown critical header, signed with the trusted key',
    token: () => signRaw({ alg: 'ES256', kid: trustedKid, crit: ['x-portcullis'], 'x-portcullis': 1 }, claims()),
    code: TokenErrorCode.BadSignature,
  },
];

describe('TokenVerifier refuses attack tokens', () => {
  for (const attack of ATTACKS) {
    test(`${attack.name} → ${attack.code}`, async () => {
      const err = await refusal(await attack.token());
      assert.equal(err.code, attack.code, `${err.code}: ${err.message}`);
    });
  }
});

describe('TokenVerifier accepts good tokens', () => {
  test('a dev-issuer token maps to the full identity', async () => {
    const issued = await dev.issue({ clientId: 'ci-bot', clientSecret: 'dev-secret-ci-bot', scopes: ['k8s:read'] });
    const identity = await verifier.verify(issued.accessToken);
    const payload = decodeJwt(issued.accessToken);
    assert.equal(typeof payload.jti, 'string');
    assert.deepEqual(
      {
        subject: identity.subject,
        groups: identity.groups,
        clientId: identity.clientId,
        issuer: identity.issuer,
        scopes: identity.scopes,
        audiences: identity.audiences,
        tokenId: identity.tokenId,
        tokenLifetimeSeconds: identity.tokenLifetimeSeconds,
      },
      {
        subject: 'ci-bot',
        groups: ['bots', 'deployers'],
        clientId: 'ci-bot',
        issuer: ISSUER,
        scopes: ['k8s:read'],
        audiences: [AUDIENCE],
        tokenId: payload.jti,
        tokenLifetimeSeconds: 300,
      },
    );
    assert.equal(issued.expiresInSeconds, 300);
    assert.equal(issued.scope, 'k8s:read');
  });

  test('the subject defaults to the client id; no scope claim means no scopes', async () => {
    const rest = { id: 'bare', secret: 'bare-secret-1', groups: [], scopes: [] };
    const issuer = await DevIssuer.open(issuerOptions(freshDir(), { clients: [rest] }));
    const v = new TokenVerifier({
      issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], algorithms: ['ES256'], keys: { jwks: issuer.jwks() } }],
      maxTokenLifetimeMs: MAX_LIFETIME_MS,
      clockSkewMs: CLOCK_SKEW_MS,
    });
    const identity = await v.verify((await issuer.issue({ clientId: 'bare', clientSecret: 'bare-secret-1' })).accessToken);
    assert.equal(identity.subject, 'bare');
    assert.deepEqual(identity.scopes, []);
    assert.deepEqual(identity.groups, []);
  });

  test('a forged-but-valid token: space-separated scope, array aud, exactly the max lifetime', async () => {
    const t = nowS();
    const identity = await verifier.verify(await sign(claims({ scope: 'a b  c', aud: ['other', AUDIENCE], iat: t, exp: t + 3600, jti: undefined })));
    assert.deepEqual(identity.scopes, ['a', 'b', 'c']);
    assert.deepEqual(identity.audiences, ['other', AUDIENCE]);
    assert.equal(identity.tokenLifetimeSeconds, 3600);
    assert.match(identity.tokenId, /^[0-9a-f]{32}$/, 'without jti the token id is a hash of the token');
  });

  test('the raw signer used for the crit attack makes tokens that verify without crit', async () => {
    const identity = await verifier.verify(signRaw({ alg: 'ES256', kid: trustedKid }, claims({ sub: 'raw' })));
    assert.equal(identity.subject, 'raw');
  });

  test('expired, but within the clock skew, is accepted', async () => {
    const identity = await verifier.verify(await sign(claims({ iat: nowS() - 300, nbf: nowS() - 300, exp: nowS() - 10 })));
    assert.equal(identity.subject, 'ci-bot');
  });
});

describe('TokenVerifier cache', () => {
  test('a second verify is served from the cache (same identity object)', async () => {
    const v = newVerifier();
    const token = (await dev.issue({ clientId: 'ci-bot', clientSecret: 'dev-secret-ci-bot' })).accessToken;
    const first = await v.verify(token);
    assert.equal(await v.verify(token), first);
  });

  test('a cached token is refused once now passes exp + skew', async () => {
    const v = newVerifier();
    const issued = await dev.issue({ clientId: 'ci-bot', clientSecret: 'dev-secret-ci-bot' });
    const exp = decodeJwt(issued.accessToken).exp! * 1000;
    await v.verify(issued.accessToken);
    assert.equal((await v.verify(issued.accessToken, exp + CLOCK_SKEW_MS - 1000)).subject, 'ci-bot');
    await assert.rejects(v.verify(issued.accessToken, exp + CLOCK_SKEW_MS), (err: unknown) => err instanceof TokenError && err.code === TokenErrorCode.Expired);
    // Still refused afterwards: the expired entry did not come back.
    await assert.rejects(
      v.verify(issued.accessToken, exp + CLOCK_SKEW_MS + 60_000),
      (err: unknown) => err instanceof TokenError && err.code === TokenErrorCode.Expired,
    );
  });

  test('the cache is bounded: the oldest entry is evicted', async () => {
    const v = new TokenVerifier({
      issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], algorithms: ['ES256'], keys: { jwks: dev.jwks() } }],
      maxTokenLifetimeMs: MAX_LIFETIME_MS,
      clockSkewMs: CLOCK_SKEW_MS,
      cacheSize: 2,
    });
    const tokens = await Promise.all([1, 2, 3].map((i) => sign(claims({ jti: `t-${i}` }))));
    const first = await v.verify(tokens[0]!);
    await v.verify(tokens[1]!);
    await v.verify(tokens[2]!);
    const again = await v.verify(tokens[0]!);
    assert.notEqual(again, first, 'token 1 was evicted and verified afresh');
    assert.equal(again.tokenId, 't-1');
  });
});

describe('DevIssuer', () => {
  const devErr = (oauthError: string) => (err: unknown) => err instanceof DevIssuerError && err.oauthError === oauthError;

  test('a wrong secret is invalid_client', async () => {
    await assert.rejects(dev.issue({ clientId: 'ci-bot', clientSecret: 'dev-secret-sre-alice' }), devErr('invalid_client'));
    await assert.rejects(dev.issue({ clientId: 'ci-bot', clientSecret: '' }), devErr('invalid_client'));
    await assert.rejects(dev.issue({ clientId: 'ci-bot', clientSecret: 'dev-secret-ci-bot ' }), devErr('invalid_client'));
  });

  test('an unknown client is invalid_client', async () => {
    await assert.rejects(dev.issue({ clientId: 'nobody', clientSecret: 'dev-secret-ci-bot' }), devErr('invalid_client'));
  });

  test('a ttl over the cap is refused; at the cap it is granted', async () => {
    await assert.rejects(dev.issue({ clientId: 'ci-bot', clientSecret: 'dev-secret-ci-bot', ttlMs: MAX_LIFETIME_MS + 1000 }), devErr('invalid_request'));
    const t = await dev.issue({ clientId: 'ci-bot', clientSecret: 'dev-secret-ci-bot', ttlMs: MAX_LIFETIME_MS });
    assert.equal(t.expiresInSeconds, 3600);
    assert.equal((await verifier.verify(t.accessToken)).tokenLifetimeSeconds, 3600);
  });

  test('a scope the client is not allowed is refused', async () => {
    await assert.rejects(dev.issue({ clientId: 'ci-bot', clientSecret: 'dev-secret-ci-bot', scopes: ['k8s:read', 'k8s:admin'] }), devErr('invalid_scope'));
  });

  test('a client configured with no scopes cannot ask for one', async () => {
    await assert.rejects(dev.issue({ clientId: 'sre-alice', clientSecret: 'dev-secret-sre-alice', scopes: ['k8s:write'] }), devErr('invalid_scope'));
    const t = await dev.issue({ clientId: 'sre-alice', clientSecret: 'dev-secret-sre-alice' });
    assert.equal(t.scope, '');
  });

  test('no scopes requested means all the client is allowed', async () => {
    const t = await dev.issue({ clientId: 'ci-bot', clientSecret: 'dev-secret-ci-bot' });
    assert.equal(t.scope, 'k8s:read k8s:write');
  });

  test('the key is persisted (0600) and reused across open calls', async () => {
    const dir = freshDir();
    const a = await DevIssuer.open(issuerOptions(dir));
    const b = await DevIssuer.open(issuerOptions(dir));
    const kid = a.jwks().keys[0]?.kid;
    assert.ok(kid);
    assert.equal(b.jwks().keys[0]?.kid, kid);
    assert.deepEqual(b.jwks(), a.jwks());
    assert.equal(statSync(join(dir, 'dev-issuer-key.json')).mode & 0o777, 0o600);
    assert.equal(a.jwks().keys[0]?.d, undefined, 'the JWKS carries no private key');
    // A token from the first instance verifies against the second one's keys.
    const v = new TokenVerifier({
      issuers: [{ issuer: ISSUER, audiences: [AUDIENCE], algorithms: ['ES256'], keys: { jwks: b.jwks() } }],
      maxTokenLifetimeMs: MAX_LIFETIME_MS,
      clockSkewMs: CLOCK_SKEW_MS,
    });
    const token = (await a.issue({ clientId: 'ci-bot', clientSecret: 'dev-secret-ci-bot' })).accessToken;
    assert.equal((await v.verify(token)).subject, 'ci-bot');
  });

  test('concurrent open calls on an empty dir agree on one key', async () => {
    const dir = freshDir();
    const issuers = await Promise.all(Array.from({ length: 5 }, () => DevIssuer.open(issuerOptions(dir))));
    const kids = new Set(issuers.map((i) => i.jwks().keys[0]?.kid));
    assert.equal(kids.size, 1, [...kids].join(', '));
    assert.deepEqual(readdirSync(dir), ['dev-issuer-key.json'], 'no temporary files left behind');
    const stored = JSON.parse(readFileSync(join(dir, 'dev-issuer-key.json'), 'utf8')) as { kid: string };
    assert.equal(stored.kid, [...kids][0]);
  });
});
