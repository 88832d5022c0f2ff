/**
 * The issuer key cache and the verifier's per-issuer and per-connection rules, with a JWKS served
 * from memory and a controllable clock: rotation (an unknown kid refetches once, then not again
 * inside the cooldown), the endpoint down with and without cached keys, discovery, required
 * claims, per-connection audiences, and the announce-once flag.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { JwksCache, TokenError, TokenErrorCode, TokenVerifier, type JsonFetcher } from '@portcullis/identity';
import { withClaims } from '@portcullis/policy-engine';
import { create, IdentitySchema } from '@portcullis/contracts';

const ISSUER = 'https://idp.test';

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function newKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

/** An issuer in memory: its published keys, whether it answers, and every fetched URL. */
class FakeIdp {
  published: SigningKey[] = [];
  up = true;
  readonly fetched: string[] = [];
  readonly fetch: JsonFetcher = (url) => {
    this.fetched.push(url.pathname);
    if (!this.up) return Promise.reject(new Error('connect ECONNREFUSED'));
    if (url.pathname === '/.well-known/openid-configuration') return Promise.resolve({ issuer: ISSUER, jwks_uri: `${ISSUER}/keys` });
    if (url.pathname === '/keys') return Promise.resolve({ keys: this.published.map((k) => k.publicJwk) });
    return Promise.reject(new Error('HTTP 404'));
  };
  jwksFetches(): number {
    return this.fetched.filter((p) => p === '/keys').length;
  }
}

const nowS = (ms: number): number => Math.floor(ms / 1000);

async function token(key: SigningKey, over: JWTPayload = {}, at = Date.now(), kid = key.kid): Promise<string> {
  const t = nowS(at);
  return new SignJWT({ iss: ISSUER, sub: 'bot', aud: 'portcullis', iat: t, exp: t + 300, ...over })
    .setProtectedHeader({ alg: 'ES256', kid })
    .sign(key.privateKey);
}

async function refusal(p: Promise<unknown>): Promise<TokenErrorCode> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TokenError, `expected a TokenError, got ${String(err)}`);
    return err.code;
  }
  assert.fail('expected a refusal');
}

function clock(start = Date.now()): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function cacheFor(idp: FakeIdp, c: { now: () => number }, source: 'discovery' | 'uri' = 'uri'): JwksCache {
  return new JwksCache({
    source: source === 'uri' ? { jwksUri: new URL(`${ISSUER}/keys`) } : { discoveryOf: ISSUER },
    fetchJson: idp.fetch,
    cacheLifetimeMs: 600_000,
    refetchCooldownMs: 30_000,
    retryAfterFailureMs: 1000,
    now: c.now,
  });
}

describe('JwksCache', () => {
  test('keys are fetched once and reused within their lifetime', async () => {
    const idp = new FakeIdp();
    const k1 = await newKey('k1');
    idp.published = [k1];
    const c = clock();
    const cache = cacheFor(idp, c);
    const header = { alg: 'ES256', kid: 'k1' };
    await cache.getKey(header, { payload: '', signature: '' });
    c.advance(599_000);
    await cache.getKey(header, { payload: '', signature: '' });
    assert.equal(idp.jwksFetches(), 1);
    c.advance(2000);
    await cache.getKey(header, { payload: '', signature: '' });
    assert.equal(idp.jwksFetches(), 2, 'past the cache lifetime the keys are refetched');
  });

  test('rotation: an unknown kid triggers exactly one refetch; more unknown kids inside the cooldown do not', async () => {
    const idp = new FakeIdp();
    const k1 = await newKey('k1');
    const k2 = await newKey('k2');
    idp.published = [k1];
    const c = clock();
    const v = verifierWith(idp, c);
    await v.verify(await token(k1, {}, c.now()), c.now());
    assert.equal(idp.jwksFetches(), 1);
    c.advance(31_000);
    idp.published = [k1, k2]; // the issuer rotates in a new key
    const id = await v.verify(await token(k2, {}, c.now()), c.now());
    assert.equal(id.subject, 'bot');
    assert.equal(idp.jwksFetches(), 2, 'one refetch found the new key');
    // A flood of unknown kids inside the cooldown: refused without any fetch.
    const codes = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => refusal(v.verify(await token(k2, { jti: `x${i}` }, c.now(), `nope-${i}`), c.now()))),
    );
    assert.deepEqual(new Set(codes), new Set([TokenErrorCode.UnknownKey]));
    assert.equal(idp.jwksFetches(), 2);
    c.advance(31_000);
    // After the cooldown, concurrent unknown kids share one refetch.
    await Promise.all(Array.from({ length: 5 }, async (_, i) => refusal(v.verify(await token(k2, { jti: `y${i}` }, c.now(), 'still-unknown'), c.now()))));
    assert.equal(idp.jwksFetches(), 3);
  });

  test('endpoint down: cached keys keep working until their lifetime; then 503-class unavailable, never a 401 code', async () => {
    const idp = new FakeIdp();
    const k1 = await newKey('k1');
    idp.published = [k1];
    const c = clock();
    const v = verifierWith(idp, c);
    await v.verify(await token(k1, { jti: 'a' }, c.now()), c.now());
    idp.up = false;
    c.advance(500_000);
    assert.equal((await v.verify(await token(k1, { jti: 'b' }, c.now()), c.now())).subject, 'bot', 'cached keys still verify');
    // An unknown kid while down: cannot tell a rotated key from a bad one → unavailable.
    assert.equal(await refusal(v.verify(await token(k1, { jti: 'c' }, c.now(), 'rotated'), c.now())), TokenErrorCode.Unavailable);
    c.advance(200_000); // past the 600 s lifetime
    assert.equal(await refusal(v.verify(await token(k1, { jti: 'd' }, c.now()), c.now())), TokenErrorCode.Unavailable);
    const before = idp.jwksFetches();
    // Inside the failure retry interval nothing is fetched: the IdP is not hammered.
    for (let i = 0; i < 10; i++) assert.equal(await refusal(v.verify(await token(k1, { jti: `e${i}` }, c.now()), c.now())), TokenErrorCode.Unavailable);
    assert.equal(idp.jwksFetches(), before);
    idp.up = true;
    c.advance(1000);
    assert.equal((await v.verify(await token(k1, { jti: 'f' }, c.now()), c.now())).subject, 'bot', 'recovers once the endpoint answers');
  });

  test('nothing cached and the endpoint down → unavailable; discovery is retried later', async () => {
    const idp = new FakeIdp();
    const k1 = await newKey('k1');
    idp.published = [k1];
    idp.up = false;
    const c = clock();
    const v = verifierWith(idp, c, 'discovery');
    assert.equal(await refusal(v.verify(await token(k1, {}, c.now()), c.now())), TokenErrorCode.Unavailable);
    idp.up = true;
    c.advance(1000);
    assert.equal((await v.verify(await token(k1, { jti: 'g' }, c.now()), c.now())).subject, 'bot');
    assert.deepEqual(idp.fetched, ['/.well-known/openid-configuration', '/.well-known/openid-configuration', '/keys']);
  });

  test('a discovery document naming another issuer is refused (unavailable, nothing trusted)', async () => {
    const k1 = await newKey('k1');
    const idp = new FakeIdp();
    idp.published = [k1];
    const lying: JsonFetcher = (url) =>
      url.pathname === '/.well-known/openid-configuration' ? Promise.resolve({ issuer: 'https://evil.test', jwks_uri: `${ISSUER}/keys` }) : idp.fetch(url);
    const c = clock();
    const v = new TokenVerifier({
      issuers: [{ issuer: ISSUER, audiences: ['portcullis'], algorithms: ['ES256'], keys: { discovery: true } }],
      maxTokenLifetimeMs: 3_600_000,
      clockSkewMs: 0,
      fetchJson: () => lying,
    });
    void c;
    assert.equal(await refusal(v.verify(await token(k1))), TokenErrorCode.Unavailable);
  });
});

function verifierWith(
  idp: FakeIdp,
  c: { now: () => number },
  source: 'discovery' | 'uri' = 'uri',
  over: Partial<ConstructorParameters<typeof TokenVerifier>[0]> = {},
): TokenVerifier {
  return new TokenVerifier({
    issuers: [
      {
        issuer: ISSUER,
        audiences: ['portcullis'],
        algorithms: ['ES256'],
        keys: source === 'uri' ? { jwksUri: `${ISSUER}/keys` } : { discovery: true },
        jwksCacheLifetimeMs: 600_000,
        jwksRefetchCooldownMs: 30_000,
      },
    ],
    maxTokenLifetimeMs: 3_600_000,
    clockSkewMs: 0,
    fetchJson: () => idp.fetch,
    now: c.now,
    ...over,
  });
}

describe('TokenVerifier: per-connection audiences, required claims, announce once', () => {
  test('a token for connection A is refused on connection B, and on connections without own audiences only the issuer audience counts', async () => {
    const idp = new FakeIdp();
    const k1 = await newKey('k1');
    idp.published = [k1];
    const c = clock();
    const v = verifierWith(idp, c, 'uri', { connectionAudiences: { a: ['aud-a'], b: ['aud-b'] } });
    const forA = await token(k1, { aud: 'aud-a' }, c.now());
    assert.equal((await v.authenticate(forA, 'a', c.now())).identity.subject, 'bot');
    assert.equal(await refusal(v.authenticate(forA, 'b', c.now())), TokenErrorCode.BadAudience);
    assert.equal(await refusal(v.authenticate(forA, 'plain', c.now())), TokenErrorCode.BadAudience);
    const general = await token(k1, { aud: 'portcullis' }, c.now());
    assert.equal((await v.authenticate(general, 'plain', c.now())).identity.subject, 'bot');
    assert.equal(await refusal(v.authenticate(general, 'a', c.now())), TokenErrorCode.BadAudience);
    // An audience accepted nowhere is refused before the token is cached.
    assert.equal(await refusal(v.authenticate(await token(k1, { aud: 'elsewhere' }, c.now()), 'a', c.now())), TokenErrorCode.BadAudience);
  });

  test('required claims: exact values, any of a list, array claims, absent claims refused; the value is not echoed', async () => {
    const idp = new FakeIdp();
    const k1 = await newKey('k1');
    idp.published = [k1];
    const c = clock();
    const v = new TokenVerifier({
      issuers: [
        {
          issuer: ISSUER,
          audiences: ['portcullis'],
          algorithms: ['ES256'],
          keys: { jwks: { keys: [k1.publicJwk] } },
          requiredClaims: { repository: ['acme/deploy'], ref: ['refs/heads/main', 'refs/tags/v1'] },
        },
      ],
      maxTokenLifetimeMs: 3_600_000,
      clockSkewMs: 0,
    });
    const ok = await token(k1, { repository: 'acme/deploy', ref: 'refs/tags/v1' }, c.now());
    assert.equal((await v.verify(ok, c.now())).subject, 'bot');
    assert.equal((await v.verify(await token(k1, { repository: ['x', 'acme/deploy'], ref: 'refs/heads/main' }, c.now()), c.now())).subject, 'bot');
    for (const bad of [
      { repository: 'acme/deploy-evil', ref: 'refs/heads/main' },
      { repository: 'acme/deploy' },
      { repository: 'ACME/deploy', ref: 'refs/heads/main' },
      { repository: { x: 1 }, ref: 'refs/heads/main' },
    ]) {
      const err = await v.verify(await token(k1, bad, c.now()), c.now()).then(
        () => assert.fail(`accepted ${JSON.stringify(bad)}`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof TokenError);
      assert.equal(err.code, TokenErrorCode.RequiredClaim);
      assert.doesNotMatch(err.message, /deploy-evil|ACME/);
    }
  });

  test('first is true once per token; claims JSON carries every claim; control characters in names are refused', async () => {
    const k1 = await newKey('k1');
    const v = new TokenVerifier({
      issuers: [{ issuer: ISSUER, audiences: ['portcullis'], algorithms: ['ES256'], keys: { jwks: { keys: [k1.publicJwk] } } }],
      maxTokenLifetimeMs: 3_600_000,
      clockSkewMs: 0,
    });
    const t = await token(k1, { repository: 'acme/deploy', kubernetes: { namespace: 'ci' } });
    const a = await v.authenticate(t, undefined);
    const b = await v.authenticate(t, undefined);
    assert.equal(a.first, true);
    assert.equal(b.first, false);
    assert.deepEqual((JSON.parse(a.claimsJson) as Record<string, unknown>)['kubernetes'], { namespace: 'ci' });
    for (const over of [{ sub: 'bot\r\nImpersonate-Group: system:masters' }, { groups: ['ok', 'x\u0000'] }, { jti: 'a\nb' }, { sub: '' }]) {
      assert.equal(await refusal(v.verify(await token(k1, over))), TokenErrorCode.BadClaims, JSON.stringify(over));
    }
  });

  test('policy sees claims lazily; bad claims JSON means no claims (fail closed)', () => {
    const id = create(IdentitySchema, { subject: 's' });
    assert.equal(withClaims(id, ''), id);
    assert.deepEqual(withClaims(id, '{"repository":"acme/x"}').claims, { repository: 'acme/x' });
    assert.deepEqual(withClaims(id, '[1]').claims, {});
    assert.deepEqual(withClaims(id, '{').claims, {});
    assert.equal(withClaims(id, '{"a":1}').subject, 's');
  });
});
