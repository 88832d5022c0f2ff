import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { create, IdentitySchema, RequestAttributesSchema } from '@portcullis/contracts';
import {
  bodyExcerpt,
  MAX_EXCERPT_CHARS,
  MemoryApprovalStore,
  requestFingerprint,
  slackSignature,
  verifySlackSignature,
  type ApprovalStore,
} from '@portcullis/approval';
import { describeApprovalConformance, type FakeClock } from '../support/approval-conformance.js';
import { BodyDigest } from '@portcullis/masking';

const bodyDigest = new BodyDigest('k'.repeat(32));

describeApprovalConformance({
  name: 'the in-memory store',
  open: (clock: FakeClock) => Promise.resolve(new MemoryApprovalStore(clock.now)),
  wipe: (store: ApprovalStore) => {
    // A restart of the embedded process: everything in memory is gone.
    const s = store as unknown as { records: Map<string, unknown>; fingerprints: Map<string, unknown>; built: boolean };
    s.records.clear();
    s.fingerprints.clear();
    s.built = false;
    return Promise.resolve();
  },
});

describe('requestFingerprint', () => {
  const identity = create(IdentitySchema, { subject: 'ci-bot', issuer: 'https://a', groups: ['bots'] });
  const attrs = (kube: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    create(RequestAttributesSchema, {
      connection: 'prod',
      connectionType: 'kubernetes',
      method: 'DELETE',
      kube: { isResourceRequest: true, verb: 'delete', apiGroup: '', apiVersion: 'v1', resource: 'configmaps', namespace: 'ns', name: 'a', ...kube },
      ...extra,
    });
  const base = requestFingerprint(identity, attrs({}), '', bodyDigest.of(Buffer.from('')));

  it('is stable for the same request and ignores what does not make it another request', () => {
    const same = requestFingerprint(
      create(IdentitySchema, { subject: 'ci-bot', issuer: 'https://a', groups: ['other'], tokenId: 'new-token' }),
      attrs({}, { userAgent: 'kubectl/v1.32', sourceIp: '10.0.0.9' }),
      '',
      bodyDigest.of(new Uint8Array()),
    );
    assert.equal(same, base, 'a new token, another source address or user agent: the same request');
    assert.match(base, /^[0-9a-f]{64}$/);
  });

  it('changes with every field an approval is bound to', () => {
    const variants: [string, string][] = [
      ['subject', requestFingerprint(create(IdentitySchema, { subject: 'ci-bot2', issuer: 'https://a' }), attrs({}), '', bodyDigest.of(Buffer.from('')))],
      ['issuer', requestFingerprint(create(IdentitySchema, { subject: 'ci-bot', issuer: 'https://b' }), attrs({}), '', bodyDigest.of(Buffer.from('')))],
      ['connection', requestFingerprint(identity, attrs({}, { connection: 'staging' }), '', bodyDigest.of(Buffer.from('')))],
      ['verb', requestFingerprint(identity, attrs({ verb: 'deletecollection' }), '', bodyDigest.of(Buffer.from('')))],
      ['api group', requestFingerprint(identity, attrs({ apiGroup: 'apps' }), '', bodyDigest.of(Buffer.from('')))],
      ['resource', requestFingerprint(identity, attrs({ resource: 'secrets' }), '', bodyDigest.of(Buffer.from('')))],
      ['subresource', requestFingerprint(identity, attrs({ subresource: 'status' }), '', bodyDigest.of(Buffer.from('')))],
      ['namespace', requestFingerprint(identity, attrs({ namespace: 'ns2' }), '', bodyDigest.of(Buffer.from('')))],
      ['name', requestFingerprint(identity, attrs({ name: 'b' }), '', bodyDigest.of(Buffer.from('')))],
      ['query', requestFingerprint(identity, attrs({}), 'gracePeriodSeconds=0', bodyDigest.of(Buffer.from('')))],
      ['body', requestFingerprint(identity, attrs({}), '', bodyDigest.of(Buffer.from('{"propagationPolicy":"Orphan"}')))],
      ['field boundaries', requestFingerprint(identity, attrs({ namespace: 'n', name: 'sa' }), '', bodyDigest.of(Buffer.from('')))],
    ];
    const seen = new Set([base]);
    for (const [name, fp] of variants) {
      assert.ok(!seen.has(fp), `${name} changes the fingerprint`);
      seen.add(fp);
    }
  });
});

describe('bodyExcerpt', () => {
  it('never shows Secret values: data and stringData are masked, keys kept', () => {
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'db' },
      data: { password: 'UzNjcjN0', user: 'YXBw' },
      stringData: { token: 'plain-token-value' },
    };
    const text = bodyExcerpt(Buffer.from(JSON.stringify(secret)), 'secrets', 'application/json');
    for (const leaked of ['UzNjcjN0', 'YXBw', 'plain-token-value']) assert.ok(!text.includes(leaked), `${leaked} leaked: ${text}`);
    assert.ok(text.includes('"password":"***"') && text.includes('"user":"***"') && text.includes('"name":"db"'));
  });

  it('masks a Secret inside a list and credential-looking keys anywhere', () => {
    const list = { kind: 'List', items: [{ kind: 'Secret', data: { k: 'dmFsdWU=' } }], spec: { apiKey: 'abc123', nested: { clientSecret: 'xyz' } } };
    const text = bodyExcerpt(Buffer.from(JSON.stringify(list)), 'lists', 'application/json');
    for (const leaked of ['dmFsdWU=', 'abc123', 'xyz']) assert.ok(!text.includes(leaked), `${leaked} leaked: ${text}`);
  });

  it('shows nothing of a body it cannot parse, and bounds the length', () => {
    assert.equal(bodyExcerpt(Buffer.from('password: hunter2\n'), 'secrets', 'application/yaml'), '(18 bytes of application/yaml, not shown)');
    assert.equal(bodyExcerpt(Buffer.alloc(0), 'pods', ''), '');
    const long = bodyExcerpt(Buffer.from(JSON.stringify({ data: 'x'.repeat(5000) })), 'configmaps', 'application/json');
    assert.equal(long.length, MAX_EXCERPT_CHARS);
    assert.ok(long.endsWith('…'));
  });
});

describe('verifySlackSignature', () => {
  const secret = 'signing-secret';
  const body = Buffer.from('payload=%7B%22type%22%3A%22block_actions%22%7D');
  const now = 1_800_000_000_000;
  const ts = String(now / 1000);
  const sig = slackSignature(secret, ts, body);

  it('accepts the signature Slack documents (their example)', () => {
    // https://api.slack.com/authentication/verifying-requests-from-slack
    const slackBody = Buffer.from(
      'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c',
    );
    const problem = verifySlackSignature({
      signingSecret: '8f742231b10e8888abcd99yyyzzz85a5',
      timestamp: '1531420618',
      signature: 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503',
      rawBody: slackBody,
      nowMs: 1531420618_000 + 1000,
    });
    assert.equal(problem, undefined);
  });

  const cases: [string, Partial<Parameters<typeof verifySlackSignature>[0]>, string | undefined][] = [
    ['genuine', {}, undefined],
    ['4m59s old', { nowMs: now + 299_000 }, undefined],
    ['5m01s old', { nowMs: now + 301_000 }, 'stale'],
    ['5m01s ahead', { nowMs: now - 301_000 }, 'stale'],
    ['other secret', { signingSecret: 'other' }, 'mismatch'],
    ['body with a trailing newline', { rawBody: Buffer.concat([body, Buffer.from('\n')]) }, 'mismatch'],
    ['re-encoded body', { rawBody: Buffer.from(decodeURIComponent(body.toString())) }, 'mismatch'],
    ['no timestamp', { timestamp: undefined }, 'missing'],
    ['empty signature', { signature: '' }, 'missing'],
    ['timestamp with a fraction', { timestamp: `${ts}.5` }, 'malformed'],
    ['negative timestamp', { timestamp: `-${ts}` }, 'malformed'],
    ['signature without v0=', { signature: sig.slice(3) }, 'malformed'],
    ['signature with spaces', { signature: ` ${sig}` }, 'malformed'],
    ['signature one char short', { signature: sig.slice(0, -1) }, 'malformed'],
    ['last hex digit changed', { signature: sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0') }, 'mismatch'],
  ];
  for (const [name, change, expected] of cases) {
    it(`${name} → ${expected ?? 'accepted'}`, () => {
      assert.equal(verifySlackSignature({ signingSecret: secret, timestamp: ts, signature: sig, rawBody: body, nowMs: now, ...change }), expected);
    });
  }
});
