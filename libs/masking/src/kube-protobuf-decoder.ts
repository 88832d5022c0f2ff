/**
 * Reads Kubernetes protobuf request bodies for the audit copy: the `k8s\0` magic, the
 * `runtime.Unknown` envelope, and the messages of the kinds whose values are masked (core/v1
 * Secret and ConfigMap). Anything else is not decoded: the caller then audits size and hash only.
 */

/** The 4-byte prefix of every Kubernetes protobuf payload. */
export const KUBE_PROTOBUF_MAGIC: readonly number[] = [0x6b, 0x38, 0x73, 0x00];

/** Why a protobuf body could not be read. */
export class KubeProtobufError extends Error {
  override readonly name = 'KubeProtobufError';
}

class Reader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.buf[this.pos++];
      if (b === undefined) throw new KubeProtobufError('truncated varint');
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
    throw new KubeProtobufError('varint longer than 10 bytes');
  }

  bytes(): Uint8Array {
    const len = this.varint();
    const end = this.pos + len;
    if (end > this.buf.length) throw new KubeProtobufError('field runs past the end');
    const out = this.buf.subarray(this.pos, end);
    this.pos = end;
    return out;
  }

  string(): string {
    return Buffer.from(this.bytes()).toString('utf8');
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 2) this.bytes();
    else if (wire === 1 || wire === 5) {
      this.pos += wire === 1 ? 8 : 4;
      if (this.pos > this.buf.length) throw new KubeProtobufError('fixed field runs past the end');
    } else throw new KubeProtobufError(`unsupported wire type ${wire}`);
  }
}

type Visit = (r: Reader, field: number, wire: number) => boolean;

function each(bytes: Uint8Array, visit: Visit): void {
  const r = new Reader(bytes);
  while (!r.done) {
    const key = r.varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (!visit(r, field, wire)) r.skip(wire);
  }
}

function mapEntry(bytes: Uint8Array, base64: boolean): [string, string] {
  let k = '';
  let v = '';
  each(bytes, (r, f, w) => {
    if (w !== 2) return false;
    if (f === 1) k = r.string();
    else if (f === 2) v = base64 ? Buffer.from(r.bytes()).toString('base64') : r.string();
    else return false;
    return true;
  });
  return [k, v];
}

function objectMeta(bytes: Uint8Array): Record<string, unknown> {
  const meta: Record<string, unknown> = {};
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  each(bytes, (r, f, w) => {
    if (w !== 2) return false;
    switch (f) {
      case 1:
        meta['name'] = r.string();
        return true;
      case 2:
        meta['generateName'] = r.string();
        return true;
      case 3:
        meta['namespace'] = r.string();
        return true;
      case 5:
        meta['uid'] = r.string();
        return true;
      case 6:
        meta['resourceVersion'] = r.string();
        return true;
      case 11: {
        const [k, v] = mapEntry(r.bytes(), false);
        labels[k] = v;
        return true;
      }
      case 12: {
        const [k, v] = mapEntry(r.bytes(), false);
        annotations[k] = v;
        return true;
      }
      default:
        return false;
    }
  });
  if (Object.keys(labels).length > 0) meta['labels'] = labels;
  if (Object.keys(annotations).length > 0) meta['annotations'] = annotations;
  for (const k of Object.keys(meta)) if (meta[k] === '') delete meta[k];
  return meta;
}

function secret(bytes: Uint8Array): Record<string, unknown> {
  const out: Record<string, unknown> = { apiVersion: 'v1', kind: 'Secret', metadata: {} };
  const data: Record<string, string> = {};
  const stringData: Record<string, string> = {};
  each(bytes, (r, f, w) => {
    if (f === 5 && w === 0) {
      out['immutable'] = r.varint() !== 0;
      return true;
    }
    if (w !== 2) return false;
    switch (f) {
      case 1:
        out['metadata'] = objectMeta(r.bytes());
        return true;
      case 2: {
        const [k, v] = mapEntry(r.bytes(), true);
        data[k] = v;
        return true;
      }
      case 3:
        out['type'] = r.string();
        return true;
      case 4: {
        const [k, v] = mapEntry(r.bytes(), false);
        stringData[k] = v;
        return true;
      }
      default:
        return false;
    }
  });
  if (Object.keys(data).length > 0) out['data'] = data;
  if (Object.keys(stringData).length > 0) out['stringData'] = stringData;
  return out;
}

function configMap(bytes: Uint8Array): Record<string, unknown> {
  const out: Record<string, unknown> = { apiVersion: 'v1', kind: 'ConfigMap', metadata: {} };
  const data: Record<string, string> = {};
  const binaryData: Record<string, string> = {};
  each(bytes, (r, f, w) => {
    if (f === 4 && w === 0) {
      out['immutable'] = r.varint() !== 0;
      return true;
    }
    if (w !== 2) return false;
    switch (f) {
      case 1:
        out['metadata'] = objectMeta(r.bytes());
        return true;
      case 2: {
        const [k, v] = mapEntry(r.bytes(), false);
        data[k] = v;
        return true;
      }
      case 3: {
        const [k, v] = mapEntry(r.bytes(), true);
        binaryData[k] = v;
        return true;
      }
      default:
        return false;
    }
  });
  if (Object.keys(data).length > 0) out['data'] = data;
  if (Object.keys(binaryData).length > 0) out['binaryData'] = binaryData;
  return out;
}

const DECODERS: Readonly<Record<string, (raw: Uint8Array) => Record<string, unknown>>> = {
  'v1/Secret': secret,
  'v1/ConfigMap': configMap,
};

/**
 * Decodes a Kubernetes protobuf body into the object's JSON form. Throws
 * {@link KubeProtobufError} when the envelope is malformed, the raw payload is encoded, or the
 * kind is not one this reader knows.
 */
export function decodeKubeProtobuf(body: Uint8Array): Record<string, unknown> {
  if (body.length < 4 || KUBE_PROTOBUF_MAGIC.some((b, i) => body[i] !== b)) {
    throw new KubeProtobufError('not a Kubernetes protobuf payload (no k8s\\0 prefix)');
  }
  let apiVersion = '';
  let kind = '';
  let raw: Uint8Array | undefined;
  let contentEncoding = '';
  each(body.subarray(4), (r, f, w) => {
    if (w !== 2) return false;
    if (f === 1) {
      each(r.bytes(), (t, tf, tw) => {
        if (tw !== 2) return false;
        if (tf === 1) apiVersion = t.string();
        else if (tf === 2) kind = t.string();
        else return false;
        return true;
      });
    } else if (f === 2) raw = r.bytes();
    else if (f === 3) contentEncoding = r.string();
    else return false;
    return true;
  });
  if (contentEncoding !== '') throw new KubeProtobufError(`encoded protobuf payloads (${contentEncoding}) are not read`);
  const decode = DECODERS[`${apiVersion}/${kind}`];
  if (decode === undefined) throw new KubeProtobufError(`protobuf ${apiVersion}/${kind} is not a kind this reader decodes`);
  return decode(raw ?? new Uint8Array());
}
