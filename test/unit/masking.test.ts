/**
 * Masking: the leak corpus through the streaming masker at every chunking, the value detectors
 * (each with what it must and must not catch), profiles and JSON paths, the request-body audit
 * copies (JSON, YAML, JSON Patch, Kubernetes protobuf, undecodable), and the masker's refusals.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  BodyDigest,
  BodyRecorder,
  decodeKubeProtobuf,
  DetectorName,
  JsonPathRule,
  luhnValid,
  MASK_MARKER,
  MaskingError,
  MaskingProfile,
  MaskingProfiles,
  maskRequestBody,
  StreamingJsonMasker,
  StreamingTextMasker,
  TextStreamDecoder,
  ValueDetectors,
  ValueMasker,
} from '@portcullis/masking';
import { rewriteAcceptForMasking } from '@portcullis/gateway';
import { LEAK_CORPUS, leaksIn, P } from '../support/leak-corpus.js';

const bodyDigest = new BodyDigest('masking-test-body-key-0123456789abcdef');

const CHUNK_SIZES = [1, 2, 3, 7, 64, 1000, Number.MAX_SAFE_INTEGER];

function maskStream(
  profile: MaskingProfile,
  body: Buffer,
  chunk: number,
  opts: { mode: 'kubernetes' | 'generic'; kindHint?: string | undefined; maxObjectBytes?: number },
): { out: string; count: number } {
  const m = new StreamingJsonMasker(profile, { mode: opts.mode, kindHint: opts.kindHint, maxObjectBytes: opts.maxObjectBytes ?? 8 * 1024 * 1024 });
  let out = '';
  for (let i = 0; i < body.length; i += chunk) out += m.push(body.subarray(i, i + chunk));
  out += m.end();
  return { out, count: m.maskedFields };
}

/** Parses a body of one or more newline-delimited JSON documents. */
function parseDocuments(text: string): unknown[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as unknown);
}

describe('leak corpus: every planted secret comes out masked', () => {
  it('has at least 40 leak attempts', () => assert.ok(LEAK_CORPUS.length >= 40, `${LEAK_CORPUS.length} cases`));
  for (const c of LEAK_CORPUS) {
    it(c.name, () => {
      const profile = new MaskingProfile('t', { jsonPaths: c.jsonPaths ?? [] });
      const body = Buffer.from(c.body, 'utf8');
      const sizes = body.length > 100_000 ? [1, 4096, Number.MAX_SAFE_INTEGER] : CHUNK_SIZES;
      let reference: string | undefined;
      for (const size of sizes) {
        const { out, count } = maskStream(profile, body, size, c);
        assert.deepEqual(leaksIn(out, c.planted), [], `chunk size ${size}: leaked`);
        assert.ok(count > 0, `chunk size ${size}: something was counted`);
        for (const k of c.kept ?? []) assert.ok(out.includes(k), `chunk size ${size}: kept ${k}`);
        assert.doesNotThrow(() => parseDocuments(out), 'valid JSON out');
        // Chunking never changes the result.
        reference ??= out;
        assert.equal(out, reference, `chunk size ${size} gives the same output`);
      }
    });
  }
});

describe('streaming masker', () => {
  const profile = new MaskingProfile('t', {});
  it('keeps the shape of Secret data: base64 marker, same keys', () => {
    const { out } = maskStream(profile, Buffer.from(JSON.stringify({ kind: 'Secret', apiVersion: 'v1', data: { a: 'YQ==', b: 'Yg==' } })), 5, {
      mode: 'kubernetes',
      kindHint: 'Secret',
    });
    const s = JSON.parse(out) as { data: Record<string, string> };
    assert.deepEqual(Object.keys(s.data), ['a', 'b']);
    assert.equal(Buffer.from(s.data['a']!, 'base64').toString(), MASK_MARKER);
  });

  it('writes a watch event as soon as it is complete, before the next one arrives', () => {
    const m = new StreamingJsonMasker(profile, { mode: 'kubernetes', kindHint: 'Secret', maxObjectBytes: 1 << 20 });
    const first = `${JSON.stringify({ type: 'ADDED', object: { kind: 'Secret', apiVersion: 'v1', data: { p: Buffer.from(P.pw1).toString('base64') } } })}\n`;
    const out = m.push(Buffer.from(`${first}{"type":"MODIFIED","object":{"kind":"Sec`));
    const lines = out.split('\n');
    const event = JSON.parse(lines[0]!) as { type: string; object: { data: { p: string } } };
    assert.equal(event.type, 'ADDED');
    assert.deepEqual(leaksIn(out, [P.pw1]), []);
  });

  it('bounds the per-object buffer: an object over maxObjectBytes is refused, not passed on', () => {
    const body = Buffer.from(JSON.stringify({ kind: 'SecretList', items: [{ data: { a: 'x'.repeat(5000) } }] }));
    assert.throws(
      () => maskStream(profile, body, 100, { mode: 'kubernetes', kindHint: 'Secret', maxObjectBytes: 2048 }),
      (e: unknown) => e instanceof MaskingError && e.code === 'object_too_large',
    );
  });

  it('refuses a body that is not JSON, and a truncated body', () => {
    assert.throws(
      () => maskStream(profile, Buffer.from('k8s\0\x0a\x02v1'), 3, { mode: 'kubernetes' }),
      (e: unknown) => e instanceof MaskingError && e.code === 'invalid_json',
    );
    assert.throws(
      () => maskStream(profile, Buffer.from('{"kind":"Secret","data":{"a":"b'), 3, { mode: 'kubernetes' }),
      (e: unknown) => e instanceof MaskingError && e.code === 'truncated',
    );
    assert.throws(
      () => maskStream(profile, Buffer.from('{"a" 1}'), 3, { mode: 'kubernetes' }),
      (e: unknown) => e instanceof MaskingError && e.code === 'invalid_json',
    );
  });

  it('hmac replacement: equal secrets get equal tags, different secrets different ones, never the value', () => {
    const p = new MaskingProfile('h', { replacement: 'hmac' }, 'a-test-key-of-32-characters-long');
    const body = JSON.stringify({
      kind: 'SecretList',
      items: [
        { data: { a: Buffer.from(P.pw1).toString('base64') } },
        { data: { a: Buffer.from(P.pw1).toString('base64') } },
        { stringData: { a: P.pw1 } },
        { data: { a: Buffer.from(P.pw2).toString('base64') } },
      ],
    });
    const { out } = maskStream(p, Buffer.from(body), 11, { mode: 'kubernetes', kindHint: 'Secret' });
    const items = (JSON.parse(out) as { items: { data?: { a: string }; stringData?: { a: string } }[] }).items;
    const tags = items.map((i) => (i.data ? Buffer.from(i.data.a, 'base64').toString() : i.stringData!.a));
    assert.match(tags[0]!, /^\*\*\*masked:[0-9a-f]{16}\*\*\*$/);
    assert.equal(tags[0], tags[1]);
    assert.equal(tags[0], tags[2], 'data and stringData of the same value correlate');
    assert.notEqual(tags[0], tags[3]);
    assert.deepEqual(leaksIn(out, [P.pw1, P.pw2]), []);
    assert.throws(() => new MaskingProfile('h', { replacement: 'hmac' }), /hmacKey/);
  });

  it('last-applied mode replace: the whole annotation becomes the marker', () => {
    const p = new MaskingProfile('r', { kubernetes: { lastAppliedConfiguration: 'replace' } });
    const body = JSON.stringify({
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: { annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"kind":"Pod"}' } },
    });
    const { out } = maskStream(p, Buffer.from(body), 9, { mode: 'kubernetes', kindHint: 'Pod' });
    assert.match(out, /"kubectl.kubernetes.io\/last-applied-configuration":"\*\*\*masked\*\*\*"/);
  });

  it('an unknown profile is a clear error naming the configured ones', () => {
    const profiles = new MaskingProfiles({ secrets: {} });
    assert.throws(() => profiles.get('nope'), /masking profile "nope" is not configured on this gateway \(masking.profiles has: secrets\)/);
  });

  it('keeps non-secret values readable', () => {
    const body = JSON.stringify({
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: { name: 'web', annotations: { note: 'deploy at 10:00, see ticket OPS-1234' } },
      spec: {
        volumes: [{ name: 'v', secret: { secretName: 'db-credentials' } }],
        containers: [
          {
            env: [
              { name: 'LOG_LEVEL', value: 'debug' },
              { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
            ],
          },
        ],
      },
    });
    const { out, count } = maskStream(profile, Buffer.from(body), 13, { mode: 'kubernetes', kindHint: 'Pod' });
    assert.equal(count, 0);
    assert.deepEqual(JSON.parse(out), JSON.parse(body));
  });
});

describe('numbers in masked bodies keep their exact text', () => {
  const profile = new MaskingProfile('secrets', {});
  // Every number a double would print back differently, beside one that is masked.
  const NUMBERS = ['12345678901234567890', '-9223372036854775808', '9007199254740993', '1.0', '1.50', '1e3', '2.5E-7', '-0', '0.1', '1e400'];
  const secret = (n: string): string =>
    `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"big","generation":${n},"annotations":{"a":"x"}},"data":{"n":${n},"pw":"cHc="},"spare":[${n},{"deep":${n}}],"count":${n}}`;

  for (const n of NUMBERS) {
    it(`${n}: unmasked numbers survive exactly, at every chunking`, () => {
      for (const chunk of CHUNK_SIZES) {
        const { out } = maskStream(profile, Buffer.from(secret(n)), chunk, { mode: 'kubernetes', kindHint: 'Secret' });
        assert.equal(out.trim(), secret(n).replace(`"n":${n}`, '"n":0').replace('"pw":"cHc="', `"pw":"${b64Marker()}"`), `chunk ${chunk}`);
      }
    });
  }

  it('a list, a watch event, a root number and numbers inside strings of JSON', () => {
    const big = '12345678901234567890';
    const list = `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"a","generation":${big}},"spec":{"x":${big}}}]}`;
    assert.equal(maskStream(profile, Buffer.from(list), 5, { mode: 'kubernetes' }).out.trim(), list);
    const events = `{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"w","generation":${big}}}}\n${big}\n1.0\n`;
    assert.equal(maskStream(profile, Buffer.from(events), 3, { mode: 'kubernetes' }).out, events);
    // The applied annotation is parsed, masked inside and written back: its numbers too.
    const applied = JSON.stringify({ kind: 'Secret', apiVersion: 'v1', metadata: { name: 's' }, stringData: { pw: 'p' } }).replace('}}', `},"n":${big}}`);
    const body = JSON.stringify({
      kind: 'Secret',
      apiVersion: 'v1',
      metadata: { name: 's', annotations: { 'kubectl.kubernetes.io/last-applied-configuration': applied } },
    });
    const out = JSON.parse(maskStream(profile, Buffer.from(body), 64, { mode: 'kubernetes' }).out) as { metadata: { annotations: Record<string, string> } };
    assert.match(out.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']!, new RegExp(`"n":${big}}$`));
    assert.doesNotMatch(out.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']!, /"pw":"p"/);
  });

  it('invalid numbers are still refused', () => {
    for (const bad of ['{"a":01}', '{"a":1.}', '{"a":-}', '{"a":1e}', '{"a":12345678901234567890.}']) {
      assert.throws(() => maskStream(profile, Buffer.from(bad), 64, { mode: 'generic' }), MaskingError, bad);
    }
  });

  it('the audit copy of a request body keeps its numbers too', () => {
    const body = Buffer.from('{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c"},"n":12345678901234567890}');
    const recorded = { bytes: body.length, sha256: '', body };
    const excerpt = maskRequestBody(recorded, 'application/json', profile, { mode: 'kubernetes' }, 4096);
    assert.equal(excerpt.excerpt, body.toString());
  });
});

const b64Marker = (): string => Buffer.from(MASK_MARKER).toString('base64');

describe('streaming text masker (logs, exec output)', () => {
  const profile = new MaskingProfile('secrets', {});
  const pushAll = (m: StreamingTextMasker, text: string, chunk: number): string => {
    let out = '';
    for (let i = 0; i < text.length; i += chunk) out += m.push(text.slice(i, i + chunk));
    return out + m.flush();
  };
  const log = `2026-12-08T00:00:00Z starting\nusing token ${P.ghp} for the API\nAuthorization: Bearer ${P.ghp}x\nkey id AKIAIOSFODNN7EXAMPLE ok\nplain line, nothing here\n`;

  it('masks each detector hit in place and keeps every other byte, at every chunking', () => {
    const expected = pushAll(new StreamingTextMasker(profile), log, log.length);
    assert.equal(
      expected,
      `2026-12-08T00:00:00Z starting\nusing token ${MASK_MARKER} for the API\nAuthorization: Bearer ${MASK_MARKER}\nkey id ${MASK_MARKER} ok\nplain line, nothing here\n`,
    );
    for (const chunk of CHUNK_SIZES) assert.equal(pushAll(new StreamingTextMasker(profile), log, chunk), expected, `chunk ${chunk}`);
  });

  it('releases whole lines and holds a partial one until its newline or a flush', () => {
    const m = new StreamingTextMasker(profile);
    assert.equal(m.push('first line\nsecond '), 'first line\n');
    assert.equal(m.holding, true);
    assert.equal(m.push(P.ghp.slice(0, 10)), '');
    assert.equal(m.push(`${P.ghp.slice(10)} end\n`), `second ${MASK_MARKER} end\n`);
    assert.equal(m.holding, false);
    assert.equal(m.push('a prompt $ '), '');
    assert.equal(m.flushWords(), 'a prompt $ ');
    // After TEXT_FLUSH_MS the edge releases up to the last whitespace: a word being written waits.
    assert.equal(m.push(`typing ${P.ghp.slice(0, 12)}`), '');
    assert.equal(m.flushWords(), 'typing ');
    assert.equal(m.push(`${P.ghp.slice(12)}\n`), `${MASK_MARKER}\n`);
    assert.equal(m.push('$ '), '');
    assert.equal(m.flush(), '$ ');
  });

  it('a secret whose head was already released (flushed by time) is masked from there on', () => {
    const m = new StreamingTextMasker(profile);
    let out = m.push(`token ${P.ghp.slice(0, 20)}`);
    out += m.flush(); // the edge flushes held text after TEXT_FLUSH_MS
    out += m.push(`${P.ghp.slice(20)} done\n`);
    assert.ok(!out.includes(P.ghp.slice(20)), out);
    assert.ok(out.endsWith(`${MASK_MARKER} done\n`), out);
  });

  it('a line longer than the hold is released in parts, the look-behind catching a secret across the cut', () => {
    const m = new StreamingTextMasker(profile, { lookBehindChars: 64, maxHoldChars: 256 });
    const line = `${'x '.repeat(300)}${P.ghp} ${'y '.repeat(300)}`;
    let out = '';
    let most = 0;
    for (let i = 0; i < line.length; i += 7) {
      out += m.push(line.slice(i, i + 7));
      const shorter = out.includes(MASK_MARKER) ? P.ghp.length - MASK_MARKER.length : 0;
      most = Math.max(most, Math.min(line.length, i + 7) - out.length - shorter);
    }
    out += m.flush();
    assert.ok(most <= 256 + 7, `held at most the hold and one chunk (held ${most})`);
    assert.equal(out, line.replace(P.ghp, MASK_MARKER));
  });

  it('a PEM private key longer than the look-behind is masked line by line to its END line', () => {
    const key = `-----BEGIN RSA PRIVATE KEY-----\n${Array.from({ length: 60 }, (_, i) => `MIIEpAIBAAKCAQEA${String(i).padStart(48, 'Q')}`).join('\n')}\n-----END RSA PRIVATE KEY-----\n`;
    const text = `before\n${key}after\n`;
    for (const chunk of [1, 17, 64, 4096]) {
      const out = pushAll(new StreamingTextMasker(profile, { lookBehindChars: 128, maxHoldChars: 256 }), text, chunk);
      assert.ok(out.startsWith('before\n') && out.endsWith('after\n'), `chunk ${chunk}: ${out.slice(0, 80)}`);
      assert.doesNotMatch(out, /MIIEpAIB|QQQQ/, `chunk ${chunk}`);
    }
  });

  it('text that is not UTF-8, or holds NUL bytes, is refused (not_text); split characters are fine', () => {
    const d = new TextStreamDecoder();
    const euro = Buffer.from('€ ok\n');
    assert.equal(d.decode(euro.subarray(0, 1)) + d.decode(euro.subarray(1)) + d.end(), '€ ok\n');
    assert.throws(
      () => new TextStreamDecoder().decode(Buffer.from([0x61, 0xff, 0x62])),
      (e: MaskingError) => e.code === 'not_text',
    );
    assert.throws(
      () => new TextStreamDecoder().decode(Buffer.from('g\u0000h\u0000p\u0000')),
      (e: MaskingError) => e.code === 'not_text',
    );
    const cut = new TextStreamDecoder();
    cut.decode(euro.subarray(0, 2));
    assert.throws(
      () => cut.end(),
      (e: MaskingError) => e.code === 'not_text',
    );
  });
});

describe('value detectors', () => {
  const all = new ValueDetectors(Object.values(DetectorName));
  const cases: { detector: DetectorName; hit: string[]; miss: string[] }[] = [
    { detector: 'jwt', hit: [P.tokenJwt], miss: ['eyJ is how base64 of {" starts', 'a.b.c version 1.2.3'] },
    {
      detector: 'pem-private-key',
      hit: [P.pem, '-----BEGIN PRIVATE KEY-----\nMIIE', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----'],
      miss: ['-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----', '-----BEGIN PUBLIC KEY-----\nMFkw'],
    },
    { detector: 'aws-access-key-id', hit: [P.akid, 'ASIAY34FZKBOKMUTVV7A'], miss: ['AKIA-too-short', 'XAKIAPLANTEDFOXTROT12X'] },
    {
      detector: 'aws-secret-access-key',
      hit: [`aws_secret_access_key = ${P.awsSecret}`, `AWS_SECRET_ACCESS_KEY: "${P.awsSecret}"`],
      miss: [P.awsSecret.slice(0, 30), 'aws_secret_access_key = short'],
    },
    {
      detector: 'github-token',
      hit: [P.ghp, 'github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJK'],
      miss: ['ghp_short', 'github.com/ghp'],
    },
    { detector: 'slack-token', hit: [P.slack, P.webhook], miss: ['xoxo hugs', 'https://hooks.example.com/services/x'] },
    {
      detector: 'bearer-token',
      hit: [`Authorization: Bearer ${P.bearer}`, 'Basic dXNlcjpwYXNzd29yZDEyMw==', `token ${P.bearer}`],
      miss: ['Bearer short', 'the bearer of bad news'],
    },
    { detector: 'email', hit: ['mail alice@example.com now'], miss: ['not-an-email@', 'user at example dot com'] },
    { detector: 'card-number', hit: ['4111 1111 1111 1111', 'card: 5500-0000-0000-0004'], miss: ['4111 1111 1111 1112', '1234567890123'] },
  ];
  for (const c of cases) {
    it(`${c.detector}: finds what it should and nothing else`, () => {
      const only = new ValueDetectors([c.detector]);
      for (const h of c.hit) assert.ok(only.find(h).length > 0, `finds ${JSON.stringify(h)}`);
      for (const m of c.miss) assert.deepEqual(only.find(m), [], `ignores ${JSON.stringify(m)}`);
    });
  }
  it('emails and card numbers are opt-in', () => {
    const profile = new MaskingProfile('t', {});
    const m = new ValueMasker(profile, { mode: 'generic' });
    assert.deepEqual(m.maskDocument({ note: 'alice@example.com paid with 4111 1111 1111 1111' }), { note: 'alice@example.com paid with 4111 1111 1111 1111' });
    const optIn = new ValueMasker(new MaskingProfile('t', { detectors: ['email', 'card-number'] }), { mode: 'generic' });
    assert.deepEqual(optIn.maskDocument({ note: 'alice@example.com paid with 4111 1111 1111 1111' }), { note: `${MASK_MARKER} paid with ${MASK_MARKER}` });
  });
  it('masks only the detected span inside a longer string', () => {
    const spans = all.find(`curl -H "Authorization: Bearer ${P.bearer}" https://x`);
    assert.equal(spans.length, 1);
  });
  it('luhn', () => {
    assert.equal(luhnValid('4111111111111111'), true);
    assert.equal(luhnValid('4111111111111112'), false);
  });
  it('secret-named fields: secrets masked, references and short flags kept', () => {
    const m = new ValueMasker(new MaskingProfile('t', {}), { mode: 'generic' });
    const out = m.maskDocument({
      password: 'hunter2',
      secretName: 'db-credentials',
      tokenFile: '/var/run/token',
      api_key: P.apiKey,
      token: 'true',
      client_secret: P.generic,
    });
    assert.deepEqual(out, {
      password: MASK_MARKER,
      secretName: 'db-credentials',
      tokenFile: '/var/run/token',
      api_key: MASK_MARKER,
      token: 'true',
      client_secret: MASK_MARKER,
    });
  });
});

describe('JSON path rules', () => {
  const table: [string, (string | number)[], boolean][] = [
    ['$.a.b', ['a', 'b'], true],
    ['$.a.b', ['a', 'c'], false],
    ['$.a.*', ['a', 'zz'], true],
    ['$.items[*].token', ['items', 3, 'token'], true],
    ['$.items[0].token', ['items', 3, 'token'], false],
    ["$['odd key'].x", ['odd key', 'x'], true],
    ['$..password', ['a', 0, 'b', 'password'], true],
    ['$..password', ['password', 'x'], false],
  ];
  for (const [expr, path, expected] of table)
    it(`${expr} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(path)}`, () => assert.equal(new JsonPathRule(expr).matches(path), expected));
  it('refuses what it does not support, naming the expression', () => {
    for (const bad of ['a.b', '$', '$.a[?(@.x)]', '$..', '$.a['])
      assert.throws(
        () => new JsonPathRule(bad),
        (e: unknown) => e instanceof MaskingError && e.message.includes(JSON.stringify(bad)),
      );
  });
});

/** A minimal protobuf writer for the tests' Kubernetes bodies. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
function field(num: number, bytes: Uint8Array | string): Buffer {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : Buffer.from(bytes);
  return Buffer.concat([Buffer.from(varint((num << 3) | 2)), Buffer.from(varint(b.length)), b]);
}
function kubeProtobuf(apiVersion: string, kind: string, raw: Buffer): Buffer {
  return Buffer.concat([Buffer.from('k8s\0', 'binary'), field(1, Buffer.concat([field(1, apiVersion), field(2, kind)])), field(2, raw)]);
}
function secretMessage(name: string, data: Record<string, string>, stringData: Record<string, string> = {}): Buffer {
  const meta = Buffer.concat([field(1, name), field(3, 'default'), field(12, Buffer.concat([field(1, 'note'), field(2, 'hello')]))]);
  const parts = [field(1, meta)];
  for (const [k, v] of Object.entries(data)) parts.push(field(2, Buffer.concat([field(1, k), field(2, v)])));
  parts.push(field(3, 'Opaque'));
  for (const [k, v] of Object.entries(stringData)) parts.push(field(4, Buffer.concat([field(1, k), field(2, v)])));
  return Buffer.concat(parts);
}

describe('request bodies for the audit log', () => {
  const profile = new MaskingProfile('secrets', {});
  const record = (body: Buffer | string, cap = 1 << 20) => {
    const r = new BodyRecorder(cap, bodyDigest);
    const b = Buffer.from(body);
    for (let i = 0; i < b.length; i += 5) r.add(b.subarray(i, i + 5));
    return r.finish();
  };
  const sha = (b: Buffer | string) => bodyDigest.of(b);
  const secretTarget = { mode: 'kubernetes', kindHint: 'Secret' } as const;

  const cases: {
    name: string;
    body: Buffer | string;
    contentType: string;
    decoding: string;
    planted: string[];
    target?: { mode: 'kubernetes' | 'generic'; kindHint?: string };
  }[] = [
    {
      name: 'JSON Secret create',
      body: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'x' }, data: { password: Buffer.from(P.pw1).toString('base64') } }),
      contentType: 'application/json',
      decoding: 'json',
      planted: [P.pw1],
    },
    {
      name: 'YAML Secret with stringData',
      body: `apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  password: ${P.sd1}\n`,
      contentType: 'application/yaml',
      decoding: 'yaml',
      planted: [P.sd1],
    },
    {
      name: 'server-side apply YAML',
      body: `apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ndata:\n  k: ${Buffer.from(P.pw2).toString('base64')}\n`,
      contentType: 'application/apply-patch+yaml',
      decoding: 'yaml',
      planted: [P.pw2],
    },
    {
      name: 'merge patch on a Secret (no kind in the body)',
      body: JSON.stringify({ data: { password: Buffer.from(P.pw1).toString('base64') } }),
      contentType: 'application/merge-patch+json',
      decoding: 'json',
      planted: [P.pw1],
    },
    {
      name: 'strategic merge patch on a Secret',
      body: JSON.stringify({ stringData: { password: P.sd1 } }),
      contentType: 'application/strategic-merge-patch+json',
      decoding: 'json',
      planted: [P.sd1],
    },
    {
      name: 'JSON Patch on a Secret',
      body: JSON.stringify([
        { op: 'replace', path: '/data/password', value: Buffer.from(P.pw1).toString('base64') },
        { op: 'add', path: '/metadata/labels/a', value: P.pw2 },
      ]),
      contentType: 'application/json-patch+json',
      decoding: 'json',
      planted: [P.pw1, P.pw2],
    },
    {
      name: 'protobuf Secret (kubectl create secret generic --from-literal)',
      body: kubeProtobuf('v1', 'Secret', secretMessage('x', { password: P.pw1 }, { token: P.sd1 })),
      contentType: 'application/vnd.kubernetes.protobuf',
      decoding: 'protobuf',
      planted: [P.pw1, P.sd1],
    },
    {
      name: 'protobuf ConfigMap with a secret-looking key',
      body: kubeProtobuf('v1', 'ConfigMap', Buffer.concat([field(1, field(1, 'cm')), field(2, Buffer.concat([field(1, 'db-password'), field(2, P.cmPw)]))])),
      contentType: 'application/vnd.kubernetes.protobuf',
      decoding: 'protobuf',
      planted: [P.cmPw],
      target: { mode: 'kubernetes', kindHint: 'ConfigMap' },
    },
    {
      name: 'generic HTTP JSON',
      body: JSON.stringify({ user: 'svc', password: P.pw1 }),
      contentType: 'application/json; charset=utf-8',
      decoding: 'json',
      planted: [P.pw1],
      target: { mode: 'generic' },
    },
  ];
  for (const c of cases) {
    it(`${c.name}: decoded as ${c.decoding}, masked, hashed in full`, () => {
      const ex = maskRequestBody(record(c.body), c.contentType, profile, c.target ?? secretTarget, 8192);
      assert.equal(ex.decoding, c.decoding, ex.note);
      assert.equal(ex.sha256, sha(c.body));
      assert.equal(ex.bytes, Buffer.byteLength(c.body));
      assert.ok(ex.maskedFields > 0);
      assert.deepEqual(leaksIn(ex.excerpt, c.planted), []);
      assert.doesNotThrow(() => JSON.parse(ex.excerpt));
    });
  }

  const opaque: { name: string; body: Buffer | string; contentType: string; cap?: number; note: RegExp }[] = [
    {
      name: 'protobuf of a kind the reader does not decode',
      body: kubeProtobuf('apps/v1', 'Deployment', field(1, field(1, P.pw1))),
      contentType: 'application/vnd.kubernetes.protobuf',
      note: /not decodable/,
    },
    {
      name: 'protobuf without the k8s magic',
      body: Buffer.concat([Buffer.from('k9s\0'), Buffer.from(P.pw1)]),
      contentType: 'application/vnd.kubernetes.protobuf',
      note: /not decodable/,
    },
    {
      name: 'truncated protobuf',
      body: kubeProtobuf('v1', 'Secret', secretMessage('x', { password: P.pw1 })).subarray(0, 40),
      contentType: 'application/vnd.kubernetes.protobuf',
      note: /not decodable/,
    },
    { name: 'JSON that is not JSON', body: `{"password": "${P.pw1}"`, contentType: 'application/json', note: /not decodable/ },
    { name: 'form data', body: `password=${P.pw1}`, contentType: 'application/x-www-form-urlencoded', note: /not decoded/ },
    {
      name: 'a body over the capture limit',
      body: JSON.stringify({ password: P.pw1, pad: 'x'.repeat(200) }),
      contentType: 'application/json',
      cap: 64,
      note: /capture limit/,
    },
  ];
  for (const c of opaque) {
    it(`${c.name}: size and hash only, never bytes`, () => {
      const ex = maskRequestBody(record(c.body, c.cap), c.contentType, profile, secretTarget, 8192);
      assert.equal(ex.decoding, 'none');
      assert.equal(ex.excerpt, '');
      assert.match(ex.note, c.note);
      assert.equal(ex.sha256, sha(c.body));
      assert.ok(!JSON.stringify(ex).includes(P.pw1));
    });
  }

  it('cuts the excerpt at the cap and says so', () => {
    const body = JSON.stringify({ kind: 'ConfigMap', apiVersion: 'v1', data: { big: 'y'.repeat(10_000) } });
    const ex = maskRequestBody(record(body), 'application/json', profile, { mode: 'kubernetes', kindHint: 'ConfigMap' }, 100);
    assert.equal(ex.truncated, true);
    assert.ok(Buffer.byteLength(ex.excerpt) <= 100);
  });

  it('decodes a protobuf Secret into its JSON form', () => {
    const obj = decodeKubeProtobuf(kubeProtobuf('v1', 'Secret', secretMessage('x', { a: 'b' })));
    assert.deepEqual(obj, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'x', namespace: 'default', annotations: { note: 'hello' } },
      data: { a: 'Yg==' },
      type: 'Opaque',
    });
  });
});

describe('Accept rewriting for masked requests', () => {
  const table: [string | undefined, string][] = [
    [undefined, 'application/json'],
    ['application/vnd.kubernetes.protobuf', 'application/json'],
    ['application/vnd.kubernetes.protobuf, */*', 'application/json'],
    [
      'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json',
      'application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json',
    ],
    ['application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io', 'application/json;as=Table;v=v1;g=meta.k8s.io, application/json'],
    ['application/yaml', 'application/json'],
    ['text/html, image/png', 'application/json'],
    ['application/json;q=0.5, application/vnd.kubernetes.protobuf;q=1', 'application/json'],
  ];
  for (const [accept, expected] of table) {
    it(`${accept ?? '(none)'} → ${expected}; identity encoding`, () => {
      const headers: Record<string, string | string[]> = { 'Accept-Encoding': 'gzip, br' };
      if (accept !== undefined) headers['Accept'] = accept;
      rewriteAcceptForMasking(headers);
      assert.equal(headers['accept'], expected);
      assert.equal(headers['accept-encoding'], 'identity');
      assert.equal(headers['Accept-Encoding'], undefined);
      assert.equal(headers['Accept'], undefined);
    });
  }
});

describe('keyed body digests (audit)', () => {
  // A one-word Secret value in a request body whose every other byte a reader of the log knows (the masked excerpt).
  const template = (word: string): string => JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' }, stringData: { password: word } });
  const dictionary = ['password', '123456', 'letmein', 'hunter2', 'qwerty', 'admin', 'secret', 'dragon'];

  it('a dictionary tried against the recorded digest finds nothing without the key; the key holder can check a body', () => {
    const r = new BodyRecorder(1 << 20, bodyDigest);
    r.add(Buffer.from(template('hunter2')));
    const recorded = r.finish().sha256;
    assert.match(recorded, new RegExp(`^hmac-sha256:${bodyDigest.keyId}:[0-9a-f]{64}$`));
    const plain = (w: string): string => createHash('sha256').update(template(w)).digest('hex');
    assert.deepEqual(
      dictionary.filter((w) => recorded.includes(plain(w))),
      [],
      'a plain SHA-256 of a candidate body never matches',
    );
    assert.deepEqual(
      dictionary.filter((w) => bodyDigest.matches(template(w), recorded)),
      ['hunter2'],
    );
    const other = new BodyDigest('another-key-0123456789-abcdefghijkl');
    assert.notEqual(other.keyId, bodyDigest.keyId);
    assert.equal(other.matches(template('hunter2'), recorded), false, 'another key does not recognise it');
  });

  it('the key is never shown: JSON, inspect and errors carry the key id only; short keys are refused', async () => {
    const key = 'never-print-this-key-0123456789-abcdef';
    const d = new BodyDigest(key);
    const { inspect } = await import('node:util');
    assert.doesNotMatch(`${JSON.stringify(d)} ${inspect(d, { showHidden: true, depth: 5 })}`, /never-print-this-key/);
    assert.throws(() => new BodyDigest('short'), /at least 32 bytes/);
  });

  it('streamed and whole digests agree (the response excerpt and the recorder use the same digest)', () => {
    const run = bodyDigest.start();
    for (const part of ['{"a":', '1}']) run.update(part);
    assert.equal(run.finish(), bodyDigest.of('{"a":1}'));
  });
});
