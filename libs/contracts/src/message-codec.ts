/**
 * A protobuf binary codec for our event messages, compiled once per message descriptor.
 *
 * Why: protobuf-es' generic `toBinary` / `fromBinary` were the largest CPU cost of sealing audit
 * events on the edge and of decoding them in the audit writer. This codec covers exactly the field
 * kinds `proto/portcullis/v1` uses — proto3 implicit-presence `string`, `bool`, `double`, `int32`,
 * `uint32`, `sint32`, `bytes`; unpacked `repeated string` / `repeated bytes`; singular and repeated
 * message fields; message members of a oneof — and hands any other descriptor to protobuf-es whole.
 *
 * Contract (the audit hash chain depends on it; see test/unit/message-codec.property.test.ts):
 * - {@link encodeMessage} returns exactly the bytes `toBinary` returns: fields in field-number
 *   order, implicit-presence zeros left out (`-0` is written, like protobuf-es), message fields
 *   written when set even if empty, strings as `TextEncoder` writes them (lone surrogates become
 *   U+FFFD). A message it cannot vouch for (unknown fields kept in `$unknown`, a value of the wrong
 *   type, a foreign message) is encoded by `toBinary`, which also throws protobuf-es' errors.
 * - {@link decodeMessage} returns what `fromBinary` returns (`$typeName`, fields in the order
 *   `create` lays them out), sharing `bytes` fields with the input like `fromBinary`. Input with a
 *   field this schema does not know, a repeated singular message, or a multi-byte bool is decoded
 *   by `fromBinary`. Malformed input throws {@link MessageDecodeError} — also some that
 *   `fromBinary` would half-read without complaint (a known field with the wrong wire type, a
 *   field running past the end of its message): fail closed.
 */
import { fromBinary, ScalarType, toBinary, type DescField, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { FeatureSet_FieldPresence } from '@bufbuild/protobuf/wkt';
import { endianness } from 'node:os';

/** Bytes that are not a well-formed encoding of the message (the codec's own checks). */
export class MessageDecodeError extends Error {
  override readonly name = 'MessageDecodeError';
}

type Msg = Record<string, unknown>;

/**
 * Thrown inside the codec to hand the whole message to protobuf-es; never escapes. One shared
 * instance: the stack is captured once here, not on every throw.
 */
const FALLBACK = new Error('protobuf-es fallback');

const WIRE_VARINT = 0;
const WIRE_BIT64 = 1;
const WIRE_LEN = 2;

// ---------------------------------------------------------------------------------------------
// Encoder: one module-level scratch buffer, grown by doubling, copied out once per message.

const INITIAL_SCRATCH = 8192;
/** A scratch grown past this by one huge message is dropped afterwards rather than kept. */
const KEEP_SCRATCH_MAX = 1 << 20;
let buf = new Uint8Array(INITIAL_SCRATCH);
let view = new DataView(buf.buffer);
let pos = 0;
const textEncoder = new TextEncoder();

function ensure(n: number): void {
  const need = pos + n;
  if (need <= buf.length) return;
  let size = buf.length * 2;
  while (size < need) size *= 2;
  const grown = new Uint8Array(size);
  grown.set(buf.subarray(0, pos));
  buf = grown;
  view = new DataView(buf.buffer);
}

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** An unsigned 32-bit varint; the caller ensured 5 bytes of room. */
function putVarint(v: number): void {
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
}

/** A negative int32: sign-extended to 64 bits, always 10 bytes (as protobuf-es and protoc write it). */
function putNegativeInt32(v: number): void {
  ensure(10);
  for (let i = 0; i < 9; i++) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>= 7;
  }
  buf[pos++] = 1;
}

function putString(s: string): void {
  const n = s.length;
  ensure(n * 3 + 5);
  // Guess the prefix from the UTF-16 length (exact for ASCII), write the text after it, and move
  // the text only if the UTF-8 length needs a longer prefix.
  const guess = varintSize(n);
  const start = pos + guess;
  let p = start;
  let i = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) break;
    buf[p++] = c;
  }
  let written = n;
  if (i < n) written = textEncoder.encodeInto(s, buf.subarray(start)).written;
  const size = varintSize(written);
  if (size !== guess) buf.copyWithin(pos + size, start, start + written);
  putVarint(written);
  pos += written;
}

function putBytes(b: Uint8Array): void {
  ensure(b.length + 5);
  putVarint(b.length);
  buf.set(b, pos);
  pos += b.length;
}

/** Writes `tag`, a length-delimited child message, and its length (one byte reserved, moved if longer). */
function putChild(tag: number, enc: MessageEncoder, child: unknown): void {
  ensure(6);
  putVarint(tag);
  const start = pos++;
  encodeBody(enc, child as Msg);
  const len = pos - start - 1;
  if (len < 0x80) {
    buf[start] = len;
    return;
  }
  const size = varintSize(len);
  ensure(size - 1);
  buf.copyWithin(start + size, start + 1, pos);
  const end = pos + size - 1;
  pos = start;
  putVarint(len);
  pos = end;
}

type FieldWriter = (msg: Msg) => void;
interface MessageEncoder {
  readonly typeName: string;
  readonly writers: FieldWriter[];
}

function encodeBody(enc: MessageEncoder, msg: Msg): void {
  if (msg['$typeName'] !== enc.typeName) throw FALLBACK;
  const unknown = msg['$unknown'] as unknown[] | undefined;
  if (unknown !== undefined && unknown.length > 0) throw FALLBACK;
  const writers = enc.writers;
  for (let i = 0; i < writers.length; i++) writers[i]!(msg);
}

function scalarWriter(type: ScalarType, tag: number): ((v: unknown) => void) | undefined {
  switch (type) {
    case ScalarType.STRING:
      return (v) => {
        if (typeof v !== 'string') throw FALLBACK;
        if (v === '') return;
        ensure(5);
        putVarint(tag);
        putString(v);
      };
    case ScalarType.BOOL:
      return (v) => {
        if (typeof v !== 'boolean') throw FALLBACK;
        if (!v) return;
        ensure(6);
        putVarint(tag);
        buf[pos++] = 1;
      };
    case ScalarType.DOUBLE:
      return (v) => {
        if (typeof v !== 'number') throw FALLBACK;
        if (v === 0 && 1 / v > 0) return; // -0 is not the zero value: protobuf-es writes it
        ensure(13);
        putVarint(tag);
        view.setFloat64(pos, v, true);
        pos += 8;
      };
    case ScalarType.INT32:
      return (v) => {
        if (((v as number) | 0) !== v) throw FALLBACK; // not an int32: protobuf-es throws
        if (v === 0) return;
        ensure(15);
        putVarint(tag);
        if (v > 0) putVarint(v);
        else putNegativeInt32(v);
      };
    case ScalarType.UINT32:
      return (v) => {
        if ((v as number) >>> 0 !== v) throw FALLBACK;
        if (v === 0) return;
        ensure(10);
        putVarint(tag);
        putVarint(v);
      };
    case ScalarType.SINT32:
      return (v) => {
        if (((v as number) | 0) !== v) throw FALLBACK;
        if (v === 0) return;
        ensure(10);
        putVarint(tag);
        putVarint(((v << 1) ^ (v >> 31)) >>> 0);
      };
    case ScalarType.BYTES:
      return (v) => {
        if (!(v instanceof Uint8Array)) throw FALLBACK;
        if (v.length === 0) return;
        ensure(5);
        putVarint(tag);
        putBytes(v);
      };
    default:
      return undefined; // 64-bit integers, float, fixed32/64: not in our protos
  }
}

/** Descriptors the codec cannot handle (they go to protobuf-es whole), remembered as `null`. */
const encoders = new WeakMap<DescMessage, MessageEncoder | null>();

function encoderOf(desc: DescMessage): MessageEncoder | null {
  const known = encoders.get(desc);
  if (known !== undefined) return known;
  const enc: MessageEncoder = { typeName: desc.typeName, writers: [] };
  encoders.set(desc, enc); // before the fields: a recursive message finds itself
  for (const field of [...desc.fields].sort((a, b) => a.number - b.number)) {
    const writer = fieldWriter(field);
    if (writer === undefined) {
      encoders.set(desc, null);
      return null;
    }
    enc.writers.push(writer);
  }
  return enc;
}

/** Well-known types have special local shapes (wrappers unwrap, Struct is JSON): not ours. */
function plainMessage(desc: DescMessage): boolean {
  return !desc.typeName.startsWith('google.protobuf.');
}

function fieldWriter(field: DescField): FieldWriter | undefined {
  const name = field.localName;
  const lenTag = ((field.number << 3) | WIRE_LEN) >>> 0;
  switch (field.fieldKind) {
    case 'scalar': {
      if (field.oneof !== undefined || field.presence !== FeatureSet_FieldPresence.IMPLICIT) return undefined;
      const tag = ((field.number << 3) | wireTypeOf(field.scalar)) >>> 0;
      const write = scalarWriter(field.scalar, tag);
      if (write === undefined) return undefined;
      return (msg) => write(msg[name]);
    }
    case 'message': {
      if (field.delimitedEncoding || !plainMessage(field.message)) return undefined;
      const child = encoderOf(field.message);
      if (child === null) return undefined;
      if (field.oneof !== undefined) {
        const oneofName = field.oneof.localName;
        return (msg) => {
          const oneof = msg[oneofName] as { case: unknown; value: unknown };
          if (oneof.case === name) putChild(lenTag, child, oneof.value);
        };
      }
      return (msg) => {
        const v = msg[name];
        if (v !== undefined && Object.hasOwn(msg, name)) putChild(lenTag, child, v);
      };
    }
    case 'list': {
      if (field.listKind === 'message') {
        if (field.delimitedEncoding || !plainMessage(field.message)) return undefined;
        const child = encoderOf(field.message);
        if (child === null) return undefined;
        return (msg) => {
          const items = msg[name];
          if (!Array.isArray(items)) throw FALLBACK;
          for (let i = 0; i < items.length; i++) putChild(lenTag, child, items[i]);
        };
      }
      if (field.listKind !== 'scalar' || field.packed) return undefined;
      if (field.scalar === ScalarType.STRING) {
        return (msg) => {
          const items = msg[name];
          if (!Array.isArray(items)) throw FALLBACK;
          for (let i = 0; i < items.length; i++) {
            const s: unknown = items[i];
            if (typeof s !== 'string') throw FALLBACK;
            ensure(5);
            putVarint(lenTag);
            putString(s);
          }
        };
      }
      if (field.scalar === ScalarType.BYTES) {
        return (msg) => {
          const items = msg[name];
          if (!Array.isArray(items)) throw FALLBACK;
          for (let i = 0; i < items.length; i++) {
            const b: unknown = items[i];
            if (!(b instanceof Uint8Array)) throw FALLBACK;
            ensure(5);
            putVarint(lenTag);
            putBytes(b);
          }
        };
      }
      return undefined;
    }
    default:
      return undefined; // enum, map
  }
}

function wireTypeOf(type: ScalarType): number {
  switch (type) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WIRE_LEN;
    case ScalarType.DOUBLE:
      return WIRE_BIT64;
    default:
      return WIRE_VARINT;
  }
}

/** Encodes into the scratch buffer; false when protobuf-es has to do it. */
function encodeToScratch(desc: DescMessage, message: Msg): boolean {
  const enc = encoderOf(desc);
  if (enc === null) return false;
  pos = 0;
  try {
    encodeBody(enc, message);
    return true;
  } catch {
    // FALLBACK, or a value protobuf-es rejects: let it encode the message or throw its own error.
    pos = 0;
    return false;
  }
}

function releaseScratch(): void {
  if (buf.length > KEEP_SCRATCH_MAX) {
    buf = new Uint8Array(INITIAL_SCRATCH);
    view = new DataView(buf.buffer);
  }
}

/** The protobuf binary encoding of `message`, byte for byte what protobuf-es' `toBinary` returns. */
export function encodeMessage<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Uint8Array {
  if (!encodeToScratch(schema, message)) return toBinary(schema, message);
  const out = buf.slice(0, pos);
  releaseScratch();
  return out;
}

/**
 * Encodes `message` and passes the encoding to `use` as a view of the scratch buffer, valid only
 * during the call: for callers that hash or copy the bytes anyway (the audit chain's seal), which
 * saves the copy {@link encodeMessage} makes.
 */
export function withEncodedMessage<Desc extends DescMessage, R>(schema: Desc, message: MessageShape<Desc>, use: (bytes: Uint8Array) => R): R {
  if (!encodeToScratch(schema, message)) return use(toBinary(schema, message));
  const bytes = buf.subarray(0, pos);
  try {
    return use(bytes);
  } finally {
    releaseScratch();
  }
}

// ---------------------------------------------------------------------------------------------
// Decoder: reads the input in place (module-level cursor); one compiled reader per descriptor.

const EMPTY = new Uint8Array(0);
let rbuf: Uint8Array = EMPTY;
let rpos = 0;
let rlen = 0;
let rview: DataView | undefined;
const LITTLE_ENDIAN = endianness() === 'LE';
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Short ASCII strings are built in JS; past this the native decoder was cheaper (bench:codec). */
const ASCII_JS_MAX = 12;

function truncated(): never {
  throw new MessageDecodeError('premature end of data');
}

/** protobuf-es' uint32 varint read: up to 10 bytes, low 32 bits kept. */
function readVarint32(): number {
  let b = rbuf[rpos++]!;
  if (b < 0x80) {
    if (rpos > rlen) truncated();
    return b;
  }
  let result = b & 0x7f;
  b = rbuf[rpos++]!;
  result |= (b & 0x7f) << 7;
  if (b < 0x80) {
    if (rpos > rlen) truncated();
    return result;
  }
  b = rbuf[rpos++]!;
  result |= (b & 0x7f) << 14;
  if (b < 0x80) {
    if (rpos > rlen) truncated();
    return result;
  }
  b = rbuf[rpos++]!;
  result |= (b & 0x7f) << 21;
  if (b < 0x80) {
    if (rpos > rlen) truncated();
    return result >>> 0;
  }
  b = rbuf[rpos++]!;
  result |= (b & 0x0f) << 28;
  for (let read = 5; (b & 0x80) !== 0 && read < 10; read++) b = rbuf[rpos++]!;
  if ((b & 0x80) !== 0) throw new MessageDecodeError('invalid varint: longer than 10 bytes');
  if (rpos > rlen) truncated();
  return result >>> 0;
}

/** The length of a length-delimited field, checked against the input. */
function readLength(): number {
  const len = readVarint32();
  if (rpos + len > rlen) truncated();
  return len;
}

function readString(): string {
  const len = readLength();
  const start = rpos;
  const end = start + len;
  rpos = end;
  if (len <= ASCII_JS_MAX) {
    let s = '';
    for (let i = start; i < end; i++) {
      const c = rbuf[i]!;
      if (c > 0x7f) return utf8Decoder.decode(rbuf.subarray(start, end));
      s += String.fromCharCode(c);
    }
    return s;
  }
  // Throws a TypeError on invalid UTF-8, as protobuf-es does for proto3 strings.
  return utf8Decoder.decode(rbuf.subarray(start, end));
}

function readBytes(): Uint8Array {
  const len = readLength();
  const start = rpos;
  rpos += len;
  return rbuf.subarray(start, rpos);
}

function readDouble(): number {
  if (rpos + 8 > rlen) truncated();
  rview ??= new DataView(rbuf.buffer, rbuf.byteOffset, rbuf.byteLength);
  const v = rview.getFloat64(rpos, true);
  rpos += 8;
  return v;
}

type FieldReader = (msg: Msg) => void;
interface MessageDecoder {
  readonly typeName: string;
  /** Zero values in `create`'s key order; scalars only (lists and oneofs are fresh per message). */
  readonly template: Msg;
  readonly fresh: { name: string; kind: 'list' | 'oneof' | 'bytes' }[];
  /** Indexed by tag (field number << 3 | wire type). */
  readonly readers: (FieldReader | undefined)[];
  /** Field numbers of the message, to tell a wrong wire type from an unknown field. */
  readonly numbers: Set<number>;
}

function decodeBody(dec: MessageDecoder, end: number): Msg {
  const msg: Msg = { ...dec.template };
  const fresh = dec.fresh;
  for (let i = 0; i < fresh.length; i++) {
    const f = fresh[i]!;
    msg[f.name] = f.kind === 'list' ? [] : f.kind === 'oneof' ? { case: undefined } : new Uint8Array(0);
  }
  const readers = dec.readers;
  while (rpos < end) {
    let tag = rbuf[rpos++]!;
    if (tag >= 0x80) {
      const b = rbuf[rpos++]!;
      if (b >= 0x80 || rpos > end) throw FALLBACK; // field numbers ≥ 2048 are none of ours
      tag = (tag & 0x7f) | (b << 7);
    }
    const reader = readers[tag];
    if (reader === undefined) {
      const no = tag >>> 3;
      if (dec.numbers.has(no)) {
        throw new MessageDecodeError(`${dec.typeName} field ${no} has wire type ${tag & 7}, which does not fit the field`);
      }
      throw FALLBACK; // an unknown field (kept by fromBinary in $unknown) or an illegal tag
    }
    reader(msg);
  }
  if (rpos !== end) throw new MessageDecodeError(`a field of ${dec.typeName} runs past the end of the message`);
  return msg;
}

const decoders = new WeakMap<DescMessage, MessageDecoder | null>();

function decoderOf(desc: DescMessage): MessageDecoder | null {
  const known = decoders.get(desc);
  if (known !== undefined) return known;
  const dec: MessageDecoder = { typeName: desc.typeName, template: { $typeName: desc.typeName }, fresh: [], readers: [], numbers: new Set() };
  decoders.set(desc, dec);
  const fail = (): null => {
    decoders.set(desc, null);
    return null;
  };
  // Keys in the order create() sets them (desc.members), so decoded objects look like fromBinary's.
  for (const member of desc.members) {
    if (member.kind === 'oneof') {
      dec.template[member.localName] = undefined; // placeholder keeps the key order
      dec.fresh.push({ name: member.localName, kind: 'oneof' });
      continue;
    }
    if (member.fieldKind === 'list') {
      dec.template[member.localName] = undefined;
      dec.fresh.push({ name: member.localName, kind: 'list' });
    } else if (member.fieldKind === 'scalar' && member.oneof === undefined) {
      const zero = zeroOf(member.scalar);
      if (zero === undefined) return fail();
      dec.template[member.localName] = zero;
      if (member.scalar === ScalarType.BYTES) dec.fresh.push({ name: member.localName, kind: 'bytes' });
    }
  }
  for (const field of desc.fields) {
    dec.numbers.add(field.number);
    const r = fieldReader(field);
    if (r === undefined) return fail();
    if (r.tag >= 1 << 14) return fail(); // tags longer than two varint bytes: not read here
    dec.readers[r.tag] = r.read;
  }
  for (let t = 0; t < dec.readers.length; t++) dec.readers[t] ??= undefined; // no holes
  return dec;
}

function zeroOf(type: ScalarType): unknown {
  switch (type) {
    case ScalarType.STRING:
      return '';
    case ScalarType.BOOL:
      return false;
    case ScalarType.DOUBLE:
    case ScalarType.INT32:
    case ScalarType.UINT32:
    case ScalarType.SINT32:
      return 0;
    case ScalarType.BYTES:
      return EMPTY;
    default:
      return undefined;
  }
}

function scalarReader(type: ScalarType): (() => unknown) | undefined {
  switch (type) {
    case ScalarType.STRING:
      return readString;
    case ScalarType.BYTES:
      return readBytes;
    case ScalarType.DOUBLE:
      return readDouble;
    case ScalarType.INT32:
      return () => readVarint32() | 0;
    case ScalarType.UINT32:
      return readVarint32;
    case ScalarType.SINT32:
      return () => {
        const z = readVarint32();
        return (z >>> 1) ^ -(z & 1);
      };
    case ScalarType.BOOL:
      return () => {
        const b = rbuf[rpos++]!;
        if (rpos > rlen) truncated();
        if (b > 1) throw FALLBACK; // a multi-byte or non-canonical bool: protobuf-es' rules
        return b === 1;
      };
    default:
      return undefined;
  }
}

function fieldReader(field: DescField): { tag: number; read: FieldReader } | undefined {
  const name = field.localName;
  const lenTag = (field.number << 3) | WIRE_LEN;
  switch (field.fieldKind) {
    case 'scalar': {
      if (field.oneof !== undefined || field.presence !== FeatureSet_FieldPresence.IMPLICIT) return undefined;
      const read = scalarReader(field.scalar);
      if (read === undefined) return undefined;
      return { tag: (field.number << 3) | wireTypeOf(field.scalar), read: (msg) => void (msg[name] = read()) };
    }
    case 'message': {
      if (field.delimitedEncoding || !plainMessage(field.message)) return undefined;
      const child = decoderOf(field.message);
      if (child === null) return undefined;
      if (field.oneof !== undefined) {
        const oneofName = field.oneof.localName;
        return {
          tag: lenTag,
          read: (msg) => {
            // A second member (or the same one again) merges or replaces in protobuf-es: its rules.
            if ((msg[oneofName] as { case: unknown }).case !== undefined) throw FALLBACK;
            const len = readLength();
            msg[oneofName] = { case: name, value: decodeBody(child, rpos + len) };
          },
        };
      }
      return {
        tag: lenTag,
        read: (msg) => {
          if (msg[name] !== undefined) throw FALLBACK; // a repeated singular message merges: protobuf-es' rules
          const len = readLength();
          msg[name] = decodeBody(child, rpos + len);
        },
      };
    }
    case 'list': {
      if (field.listKind === 'message') {
        if (field.delimitedEncoding || !plainMessage(field.message)) return undefined;
        const child = decoderOf(field.message);
        if (child === null) return undefined;
        return {
          tag: lenTag,
          read: (msg) => {
            const len = readLength();
            (msg[name] as unknown[]).push(decodeBody(child, rpos + len));
          },
        };
      }
      if (field.listKind !== 'scalar') return undefined;
      if (field.scalar === ScalarType.STRING) return { tag: lenTag, read: (msg) => void (msg[name] as unknown[]).push(readString()) };
      if (field.scalar === ScalarType.BYTES) return { tag: lenTag, read: (msg) => void (msg[name] as unknown[]).push(readBytes()) };
      return undefined; // packed numbers: not in our protos
    }
    default:
      return undefined;
  }
}

/**
 * Decodes `bytes` as `schema`: an object equal to what protobuf-es' `fromBinary` returns (it
 * decodes input with unknown fields itself). Throws on malformed input.
 */
export function decodeMessage<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  const dec = LITTLE_ENDIAN ? decoderOf(schema) : null;
  if (dec === null) return fromBinary(schema, bytes);
  rbuf = bytes;
  rpos = 0;
  rlen = bytes.length;
  rview = undefined;
  try {
    return decodeBody(dec, rlen) as MessageShape<Desc>;
  } catch (error) {
    if (error === FALLBACK) return fromBinary(schema, bytes);
    throw error;
  } finally {
    rbuf = EMPTY; // do not keep the caller's buffer alive
    rview = undefined;
  }
}
