/**
 * Property: whatever JSON goes in, masking yields valid JSON with the same structure — the same
 * keys, the same JSON types, the same array lengths — at any chunking; and a Secret's data
 * values never come out.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MaskingProfile, StreamingJsonMasker } from '@portcullis/masking';

type Shape = string | { [k: string]: Shape } | Shape[];

/** The structure of a JSON value: types, keys and lengths, without the values. */
function shape(v: unknown): Shape {
  if (Array.isArray(v)) return v.map(shape);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shape(x)]));
  return v === null ? 'null' : typeof v;
}

function mask(profile: MaskingProfile, text: string, chunk: number, kindHint: string | undefined): { out: string; count: number } {
  const m = new StreamingJsonMasker(profile, { mode: 'kubernetes', kindHint, maxObjectBytes: 1 << 22 });
  const b = Buffer.from(text);
  let out = '';
  for (let i = 0; i < b.length; i += chunk) out += m.push(b.subarray(i, i + chunk));
  return { out: out + m.end(), count: m.maskedFields };
}

// Keys that steer the masker into its rules, mixed with arbitrary ones.
const key = fc.oneof(
  fc.constantFrom(
    'kind',
    'data',
    'stringData',
    'items',
    'rows',
    'object',
    'env',
    'name',
    'value',
    'password',
    'token',
    'metadata',
    'annotations',
    'kubectl.kubernetes.io/last-applied-configuration',
    'binaryData',
    'status',
  ),
  fc.string({ maxLength: 8 }),
);
const secretish = fc.oneof(
  fc.string(),
  fc.constantFrom(
    'Secret',
    'ConfigMap',
    'Pod',
    'SecretList',
    'Bearer abcdefghijklmnopqrstuvwx',
    'ghp_0123456789abcdefghijABCDEFGHIJ0123456789',
    '{"kind":"Secret","apiVersion":"v1","data":{"a":"b"}}',
  ),
);
const { json } = fc.letrec((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    secretish,
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('json'), { maxLength: 4 }),
    fc.dictionary(key, tie('json'), { maxKeys: 5 }),
  ),
}));

describe('masking property', () => {
  const profile = new MaskingProfile('p', {});
  it('any JSON: valid JSON out, same keys, types and array lengths, at any chunking', () => {
    fc.assert(
      fc.property(json, fc.integer({ min: 1, max: 40 }), fc.constantFrom(undefined, 'Secret', 'ConfigMap', 'Pod'), (value, chunk, hint) => {
        const text = JSON.stringify(value);
        const { out } = mask(profile, text, chunk, hint);
        const parsed = JSON.parse(out) as unknown;
        assert.deepEqual(shape(parsed), shape(JSON.parse(text)));
        assert.equal(mask(profile, text, 1_000_000, hint).out, out, 'chunking does not change the output');
      }),
      { numRuns: 400 },
    );
  });

  it('regression: an escape straddling a chunk boundary at the end of one unit does not leak into the next', () => {
    // fast-check found it: the first element ends `\"b\"}}"}` split after the backslash; the next
    // element `[""]` then saw its closing quote as escaped and the body as truncated.
    const text = JSON.stringify([{ '   ': false, '    ': '{"kind":"Secret","apiVersion":"v1","data":{"a":"b"}}' }, ['']]);
    for (let chunk = 1; chunk <= text.length; chunk++) {
      const { out } = mask(profile, text, chunk, undefined);
      assert.deepEqual(shape(JSON.parse(out)), shape(JSON.parse(text)), `chunk ${chunk}`);
    }
  });

  it('any SecretList: no data value survives, and the structure is unchanged', () => {
    const secretValue = fc.string({ minLength: 6, maxLength: 40 }).map((s) => `S!${s}`);
    const item = fc.record({
      metadata: fc.record({ name: fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/) }),
      data: fc.dictionary(
        fc.string({ minLength: 1, maxLength: 6 }),
        secretValue.map((s) => Buffer.from(s).toString('base64')),
        { minKeys: 1, maxKeys: 4 },
      ),
    });
    fc.assert(
      fc.property(fc.array(item, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 30 }), (items, chunk) => {
        const text = JSON.stringify({ kind: 'SecretList', apiVersion: 'v1', metadata: {}, items });
        const { out, count } = mask(profile, text, chunk, 'Secret');
        for (const i of items) for (const v of Object.values(i.data)) assert.ok(!out.includes(`"${v}"`), 'a data value leaked');
        assert.equal(
          count,
          items.reduce((n, i) => n + Object.keys(i.data).length, 0),
        );
        assert.deepEqual(shape(JSON.parse(out)), shape(JSON.parse(text)));
      }),
      { numRuns: 200 },
    );
  });
});
