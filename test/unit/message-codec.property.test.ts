/**
 * Property: the compiled codec (libs/contracts/src/message-codec.ts) encodes every message type
 * reachable from EventEnvelope to exactly protobuf-es' bytes, and decodes to objects equal to
 * fromBinary's — the audit hash chain depends on the bytes. Malformed input throws (or, where it
 * is a valid message after all, decodes like fromBinary); it never hangs.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create, equals, fromBinary, toBinary, ScalarType, type DescField, type DescMessage } from '@bufbuild/protobuf';
import {
  auditMessageEvents,
  decodeEvent,
  decodeMessage,
  encodeEvent,
  encodeEventBatch,
  encodeMessage,
  EventBatchSchema,
  EventEnvelopeSchema,
  MessageDecodeError,
  AUDIT_BATCH_SUBJECT,
} from '@portcullis/contracts';
import { AuditChain, eventHash } from '@portcullis/audit-store';

/** mulberry32: a fixed seed makes every run check the same cases. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Msg = Record<string, unknown>;

class Gen {
  constructor(readonly rand: () => number) {}
  int(n: number): number {
    return Math.floor(this.rand() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.rand() < p;
  }

  string(): string {
    switch (this.int(12)) {
      case 0:
      case 1:
        return '';
      case 2:
        return this.ascii(this.int(20));
      case 3:
        return this.ascii(this.pick([126, 127, 128, 129, 200, 16383, 16384, 16385, 3000]));
      case 4:
        return 'x'.repeat(this.int(3)) + '中'.repeat(this.pick([1, 42, 43, 44, 50, 5462])); // UTF-16 < 128, UTF-8 ≥ 128
      case 5:
        return this.pick([
          '😀',
          '\u{10FFFF}',
          '\uD800',
          '\uDC00',
          'a\uD83D',
          '\uDE00b',
          '\uFEFFbom',
          '\u0000nul',
          '\uFFFD',
          'é',
          'ÿ',
          '\u0080',
          '\u07FF',
          '\u0800',
        ]);
      default: {
        let s = '';
        const n = this.int(this.chance(0.1) ? 400 : 24);
        for (let i = 0; i < n; i++) {
          const k = this.int(10);
          if (k < 5) s += String.fromCharCode(0x20 + this.int(95));
          else if (k === 5) s += String.fromCharCode(0x80 + this.int(0x780));
          else if (k === 6) s += String.fromCharCode(0x800 + this.int(0xd000));
          else if (k === 7) s += String.fromCodePoint(0x10000 + this.int(0xfffff));
          else if (k === 8)
            s += String.fromCharCode(0xd800 + this.int(0x800)); // lone surrogate
          else s += String.fromCharCode(this.int(0x80));
        }
        return s;
      }
    }
  }
  ascii(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.int(0x80));
    return s;
  }
  double(): number {
    const view = new DataView(new ArrayBuffer(8));
    switch (this.int(14)) {
      case 0:
      case 1:
      case 2:
        return 0;
      case 3:
        return -0;
      case 4:
        return NaN;
      case 5:
        return this.pick([Infinity, -Infinity, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, -Number.MIN_VALUE, 2 ** 53 + 2, 1e308]);
      case 6:
        view.setUint32(0, 0x7ff00000 | this.int(0x100000), true); // NaN with a payload (high word last: LE)
        view.setUint32(4, 0x7ff00000 | 1 | this.int(0x100000), true);
        return view.getFloat64(0, true);
      case 7:
        return Date.now() + this.int(1e6);
      case 8:
        return -this.rand() * 10 ** this.int(300);
      default:
        return this.int(2) ? this.int(1 << 30) : this.rand() * 10 ** this.int(300);
    }
  }
  int32(): number {
    return this.pick([0, 0, 1, -1, 127, 128, -128, 0x7fffffff, -0x80000000, this.int(2 ** 31), -this.int(2 ** 31), -0]);
  }
  uint32(): number {
    return this.pick([0, 0, 1, 127, 128, 16383, 16384, 0xffffffff, 0x80000000, this.int(2 ** 32), this.int(300), -0]);
  }
  bytes(): Uint8Array {
    const n = this.pick([0, 0, 1, 5, 127, 128, 300, 16384, this.int(64)]);
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  scalar(type: ScalarType): unknown {
    switch (type) {
      case ScalarType.STRING:
        return this.string();
      case ScalarType.BOOL:
        return this.chance(0.5);
      case ScalarType.DOUBLE:
        return this.double();
      case ScalarType.INT32:
      case ScalarType.SINT32:
        return this.int32();
      case ScalarType.UINT32:
        return this.uint32();
      case ScalarType.BYTES:
        return this.bytes();
      default:
        throw new Error(`the generator has no values for scalar type ${type}: extend it with the codec`);
    }
  }
  listLength(): number {
    return this.pick([0, 0, 0, 1, 2, 3, 5, this.chance(0.1) ? 150 : 4]);
  }

  /** A random message; `depth` bounds nesting, `payloadCase` forces the oneof member. */
  message(desc: DescMessage, depth: number, payloadCase?: string): Msg {
    const m = create(desc) as unknown as Msg;
    for (const f of desc.fields) {
      if (f.oneof !== undefined) continue;
      if (!this.chance(0.7)) continue;
      this.setField(m, f, depth);
    }
    for (const oneof of desc.oneofs) {
      const field = payloadCase !== undefined ? oneof.fields.find((f) => f.localName === payloadCase) : this.chance(0.8) ? this.pick(oneof.fields) : undefined;
      if (field?.fieldKind === 'message') {
        m[oneof.localName] = { case: field.localName, value: this.child(field.message, depth) };
      }
    }
    return m;
  }
  child(desc: DescMessage, depth: number): Msg {
    return depth <= 0 || this.chance(0.25) ? create(desc) : this.message(desc, depth - 1);
  }
  setField(m: Msg, f: DescField, depth: number): void {
    switch (f.fieldKind) {
      case 'scalar':
        m[f.localName] = this.scalar(f.scalar);
        return;
      case 'message':
        m[f.localName] = this.child(f.message, depth);
        return;
      case 'list': {
        const n = this.listLength();
        const items: unknown[] = [];
        for (let i = 0; i < n; i++) {
          items.push(f.listKind === 'message' ? this.child(f.message, depth) : f.listKind === 'scalar' ? this.scalar(f.scalar) : 0);
        }
        m[f.localName] = items;
        return;
      }
      default:
        throw new Error(`the generator has no values for ${f.fieldKind} field ${f.name}`);
    }
  }
}

/** Every message type reachable from EventEnvelope. */
function reachable(root: DescMessage): DescMessage[] {
  const seen = new Map<string, DescMessage>();
  const walk = (d: DescMessage): void => {
    if (seen.has(d.typeName)) return;
    seen.set(d.typeName, d);
    for (const f of d.fields) if (f.message !== undefined) walk(f.message);
  };
  walk(root);
  return [...seen.values()];
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function containsNaN(v: unknown): boolean {
  if (typeof v === 'number') return Number.isNaN(v);
  if (Array.isArray(v)) return v.some(containsNaN);
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) return Object.values(v).some(containsNaN);
  return false;
}

/** Same keys in the same order, recursively (fromBinary's objects, not just equal values). */
function keyOrder(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(keyOrder);
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) return Object.entries(v).map(([k, x]) => [k, keyOrder(x)]);
  return null;
}

function assertCodecAgrees(desc: DescMessage, m: Msg, label: string): Uint8Array {
  const reference = toBinary(desc, m as never);
  const ours = encodeMessage(desc, m as never);
  if (hex(ours) !== hex(reference)) {
    assert.fail(`${label}: encodeMessage differs from toBinary\n ours ${hex(ours).slice(0, 400)}\n  ref ${hex(reference).slice(0, 400)}`);
  }
  const expected = fromBinary(desc, reference);
  const decoded = decodeMessage(desc, reference);
  assert.deepStrictEqual(decoded, expected, `${label}: decodeMessage differs from fromBinary`);
  if (!containsNaN(expected)) assert.ok(equals(desc, decoded as never, expected as never), `${label}: not equals()`);
  assert.deepStrictEqual(keyOrder(decoded), keyOrder(expected), `${label}: key order`);
  assert.equal(hex(encodeMessage(desc, decoded)), hex(reference), `${label}: re-encoding the decoded message`);
  return reference;
}

/** Decoding malformed or mutated bytes: succeeds only as fromBinary does, else throws. */
function assertDecodeSafe(desc: DescMessage, bytes: Uint8Array, label: string): 'ok' | 'both-throw' | 'stricter' {
  let expected: unknown;
  let referenceThrew = false;
  try {
    expected = fromBinary(desc, bytes);
  } catch {
    referenceThrew = true;
  }
  let decoded: unknown;
  try {
    decoded = decodeMessage(desc, bytes);
  } catch (error) {
    assert.ok(error instanceof Error, `${label}: throws an Error`);
    return referenceThrew ? 'both-throw' : 'stricter';
  }
  assert.ok(!referenceThrew, `${label}: decodeMessage accepted bytes fromBinary rejects: ${hex(bytes).slice(0, 200)}`);
  assert.deepStrictEqual(decoded, expected, `${label}: decodes unlike fromBinary: ${hex(bytes).slice(0, 200)}`);
  return 'ok';
}

const types = reachable(EventEnvelopeSchema);
const payloadCases = EventEnvelopeSchema.oneofs[0]!.fields.map((f) => f.localName);

describe('message codec (property, fixed seed)', () => {
  test('covers every message type reachable from EventEnvelope', () => {
    // The policy change events (PolicyPushed, PolicyActivated, PolicyRejected) and EvidenceRead included.
    assert.equal(types.length, 29, types.map((t) => t.typeName).join(', '));
    assert.equal(payloadCases.length, 19);
  });

  test('every message type: encodeMessage == toBinary byte for byte, decodeMessage equals fromBinary', () => {
    const g = new Gen(prng(0x5eed));
    let cases = 0;
    for (let round = 0; round < 120; round++) {
      for (const desc of types) {
        assertCodecAgrees(desc, g.message(desc, 3), `${desc.typeName} #${round}`);
        cases++;
      }
    }
    assert.ok(cases >= 3000);
  });

  test('envelopes of every payload case (plus none), sealed and not', () => {
    const g = new Gen(prng(42));
    const chain = new AuditChain('edge-prop');
    for (let round = 0; round < 200; round++) {
      for (const c of [...payloadCases, undefined]) {
        const m = g.message(EventEnvelopeSchema, 4, c);
        if (c === undefined) m['payload'] = { case: undefined };
        const bytes = assertCodecAgrees(EventEnvelopeSchema, m, `envelope ${c ?? '(no payload)'} #${round}`);
        assert.equal(hex(encodeEvent(m as never)), hex(bytes));
        if (round % 10 === 0) {
          // seal() hashes the codec's bytes; the verifier's eventHash uses toBinary: they must agree.
          const event = create(EventEnvelopeSchema, m as never);
          const wire = chain.seal(event);
          const stored = fromBinary(EventEnvelopeSchema, wire);
          assert.equal(eventHash(stored), event.hash, `seal of ${c ?? '(no payload)'} #${round}`);
        }
      }
    }
  });

  test('unknown fields and values protobuf-es rejects go to protobuf-es', () => {
    const g = new Gen(prng(7));
    const m = g.message(EventEnvelopeSchema, 3, 'requestReceived');
    const bytes = toBinary(EventEnvelopeSchema, m as never);
    // Field 99 (varint 5) and field 500 (bytes) are unknown to EventEnvelope.
    const withUnknown = new Uint8Array([...bytes, 0x98, 0x06, 0x05, 0xa2, 0x1f, 0x02, 0x61, 0x62]);
    const decoded = decodeMessage(EventEnvelopeSchema, withUnknown);
    assert.deepStrictEqual(decoded, fromBinary(EventEnvelopeSchema, withUnknown));
    assert.equal(decoded.$unknown?.length, 2);
    assert.equal(hex(encodeMessage(EventEnvelopeSchema, decoded)), hex(toBinary(EventEnvelopeSchema, decoded)));

    const bad = create(EventEnvelopeSchema, { id: 'x' });
    bad.schemaVersion = 1.5;
    assert.throws(() => toBinary(EventEnvelopeSchema, bad), /invalid int32/);
    assert.throws(() => encodeMessage(EventEnvelopeSchema, bad), /invalid int32/);
  });

  test('malformed input throws and never hangs; any accepted input decodes like fromBinary', () => {
    const g = new Gen(prng(99));
    const tally = { ok: 0, 'both-throw': 0, stricter: 0 };
    for (let round = 0; round < 150; round++) {
      const bytes = toBinary(EventEnvelopeSchema, g.message(EventEnvelopeSchema, 3, g.pick(payloadCases)) as never);
      // Every truncation point of a few messages, random ones of the rest.
      const cuts = round < 5 ? bytes.length : 20;
      for (let i = 0; i < cuts; i++) {
        const at = round < 5 ? i : g.int(bytes.length);
        tally[assertDecodeSafe(EventEnvelopeSchema, bytes.subarray(0, at), `truncated at ${at}`)]++;
      }
      for (let i = 0; i < 20; i++) {
        const mutated = new Uint8Array(bytes);
        for (let k = 1 + g.int(3); k > 0; k--) mutated[g.int(mutated.length)] = g.pick([0, 0x80, 0xff, g.int(256)]);
        tally[assertDecodeSafe(EventEnvelopeSchema, mutated, `mutated #${round}.${i}`)]++;
      }
    }
    assert.ok(tally['both-throw'] > 100, JSON.stringify(tally));
  });

  test('named malformations throw', () => {
    const decode = (bytes: number[]): unknown => decodeMessage(EventEnvelopeSchema, new Uint8Array(bytes));
    // id (field 1, a string) sent as a varint
    assert.throws(
      () => decode([0x08, 0x01]),
      (e: Error) => e instanceof MessageDecodeError && /wire type 0/.test(e.message),
    );
    // schema_version with an 11-byte varint
    assert.throws(() => decode([0x18, ...Array<number>(10).fill(0x80), 0x01]), /invalid varint/);
    // a string longer than the data
    assert.throws(() => decode([0x0a, 0x05, 0x61]), /premature end/);
    // a double cut short
    assert.throws(() => decode([0x21, 0, 0, 0]), /premature end/);
    // field 0 / wire type 7
    assert.throws(() => decode([0x00]));
    assert.throws(() => decode([0x0f]));
    // a payload whose inner string runs past the payload's own length
    assert.throws(() => decode([0xa2, 0x01, 0x02, 0x0a, 0x05, 0x0a, 0x03, 0x61, 0x62, 0x63]), MessageDecodeError);
    // invalid UTF-8 in a proto3 string, as fromBinary refuses it
    assert.throws(() => decode([0x0a, 0x02, 0xc3, 0x28]));
    assert.throws(() => fromBinary(EventEnvelopeSchema, new Uint8Array([0x0a, 0x02, 0xc3, 0x28])));
  });

  test('EventBatch: encodeEventBatch == toBinary, auditMessageEvents reads it like fromBinary', () => {
    const g = new Gen(prng(3));
    for (let round = 0; round < 300; round++) {
      const entries = Array.from({ length: g.pick([0, 1, 2, 3, 32, 100]) }, () => g.bytes());
      const ours = encodeEventBatch(entries);
      const reference = toBinary(EventBatchSchema, create(EventBatchSchema, { events: entries }));
      assert.equal(hex(ours), hex(reference));
      assert.deepStrictEqual(auditMessageEvents(AUDIT_BATCH_SUBJECT, ours), fromBinary(EventBatchSchema, reference).events);
    }
    // An envelope on the batch subject reads as protobuf-es reads it (its id as an entry, the rest
    // unknown); garbage throws EventDecodeError.
    const envelope = encodeEvent(create(EventEnvelopeSchema, { id: 'e1', type: 't' }));
    assert.deepStrictEqual(auditMessageEvents(AUDIT_BATCH_SUBJECT, envelope), fromBinary(EventBatchSchema, envelope).events);
    assert.throws(() => auditMessageEvents(AUDIT_BATCH_SUBJECT, new Uint8Array([0x0a, 0x09, 0x01])), { name: 'EventDecodeError' });
    assert.throws(() => auditMessageEvents(AUDIT_BATCH_SUBJECT, new Uint8Array([0xff, 0xff])), { name: 'EventDecodeError' });
    assert.throws(() => decodeEvent(new Uint8Array([0x0a, 0x09, 0x01])), { name: 'EventDecodeError' });
  });
});
