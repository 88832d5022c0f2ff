/**
 * Property: the path the edge decides on is the path it sends. For any generated raw path, the
 * protocol's reading either refuses it, or yields a canonical path that reads back to exactly the
 * same attributes, is its own canonical form, and that even a lenient upstream (`;params`
 * dropped, decoded until stable, look-alikes folded, dot segments resolved) reads as itself.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalKubePath, parseKubeRequest, RequestPathError } from '@portcullis/kube';
import { canonicalHttpPath, GatewayError, GatewayErrorCode } from '@portcullis/gateway';
import { lenientPath } from '@portcullis/kube-sandbox';

const HEX = '0123456789ABCDEF';
const pct = (s: string): string => [...Buffer.from(s, 'utf8')].map((b) => `%${HEX[b >> 4]}${HEX[b & 15]}`).join('');

// Segments that steer the parser, the tricks, and arbitrary text in raw and percent-encoded form.
const segment = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.constantFrom(
      'api',
      'apis',
      'v1',
      'apps',
      'watch',
      'proxy',
      'namespaces',
      'default',
      'pods',
      'secrets',
      'configmaps',
      'status',
      'exec',
      'web-0',
    ),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '..',
      '.',
      '',
      ';',
      'a;b',
      '%2F',
      '%2e',
      '%252F',
      '%25',
      '%EF%BC%8E',
      '%EF%BC%8F',
      '%C0%AE',
      '%E2%88%95',
      'SECRETS',
      '%73ecrets',
      'x:y@z',
      '~',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }).map((s) => encodeURIComponent(s)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 4 }).map(pct) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9._~:@;%+=-]{1,6}$/) },
);
const rawPath = fc.tuple(fc.array(segment, { minLength: 1, maxLength: 8 }), fc.boolean()).map(([s, slash]) => `/${s.join('/')}${slash ? '/' : ''}`);
const method = fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE');
const query = fc.constantFrom('', 'watch=1', 'labelSelector=app%3Dweb', 'fieldSelector=metadata.name%3Dx');

/** What a lenient upstream reads `path` as, compared without a trailing slash. */
const asLenient = (path: string): string => (path.length > 1 ? path.replace(/\/$/, '') : path);

describe('property: the path decided on is the path sent', () => {
  test('Kubernetes: refused, or a canonical path that reads back to the same attributes and that a lenient upstream reads as itself', () => {
    let served = 0;
    fc.assert(
      fc.property(method, rawPath, query, (m, raw, q) => {
        let info;
        try {
          info = parseKubeRequest(m, raw, new URLSearchParams(q));
        } catch (err) {
          if (err instanceof RequestPathError) return;
          throw err;
        }
        served++;
        const sent = info.path;
        assert.equal(canonicalKubePath(sent), sent, raw);
        assert.deepEqual(parseKubeRequest(m, sent, new URLSearchParams(q)), info, raw);
        assert.equal(lenientPath(sent), asLenient(sent), `${raw}: a lenient upstream reads ${sent} differently`);
      }),
      { numRuns: 5000 },
    );
    assert.ok(served > 500, `${served} of 5000 paths accepted: the generator must reach the parser`);
  });

  test('HTTP: refused (bad_path), or a canonical path that is its own canonical form and that a lenient upstream decodes once, to the same segments', () => {
    let served = 0;
    fc.assert(
      fc.property(rawPath, (raw) => {
        let sent: string;
        try {
          sent = canonicalHttpPath(raw);
        } catch (err) {
          if (err instanceof GatewayError && err.code === GatewayErrorCode.BadPath) return;
          throw err;
        }
        served++;
        assert.equal(canonicalHttpPath(sent), sent, raw);
        // Decoding segment by segment (the edge) and decoding until stable (a lenient upstream) agree.
        const once = sent.split('/').map(decodeURIComponent).join('/');
        assert.equal(lenientPath(sent), asLenient(once), `${raw}: a lenient upstream reads ${sent} differently`);
      }),
      { numRuns: 5000 },
    );
    assert.ok(served > 500, `${served} of 5000 paths accepted`);
  });
});

describe('canonicalHttpPath', () => {
  const CANONICAL: readonly [raw: string, canonical: string][] = [
    ['/tools/%61dmin', '/tools/admin'],
    ['/v1/users/a%20b', '/v1/users/a%20b'],
    ['/v1/users/a%7eb', '/v1/users/a~b'],
    ["/v1/x!$&'()*+,=:@", "/v1/x!$&'()*+,=:@"],
    ['/v1/a"b', '/v1/a%22b'],
    ['/v1/', '/v1/'],
    ['/', '/'],
  ];
  for (const [raw, canonical] of CANONICAL) {
    test(`${raw} → ${canonical}`, () => assert.equal(canonicalHttpPath(raw), canonical));
  }
  const REFUSED = [
    '/v1/users;jsessionid=1',
    '/v1/users/..;/admin',
    '/v1/a%3Bb',
    '/v1/a%2Fb',
    '/v1/a%5Cb',
    '/v1/a%252Fb',
    '/v1/a%3Fb',
    '/v1/%EF%BC%8E%EF%BC%8E/admin',
    '/v1/caf%C3%A9',
    '/v1/%C0%AE%C0%AE/admin',
    '/v1//admin',
    '/v1/./admin',
    '/v1/../admin',
    '/v1/%zz',
    '/v1/a%00',
  ];
  for (const raw of REFUSED) {
    test(`${raw} is refused`, () =>
      assert.throws(
        () => canonicalHttpPath(raw),
        (e: unknown) => e instanceof GatewayError && e.code === GatewayErrorCode.BadPath,
      ));
  }
});
