/**
 * The structure-aware walker: masks a parsed JSON value in place, following a profile's
 * Kubernetes rules, JSON paths and value detectors. Every masked value keeps its JSON type (a
 * string stays a string of the same encoding, a number becomes 0, a boolean false, an object or
 * array keeps its keys and length), so the result always has the input's structure.
 */
import type { PathSegment } from './json-path-rule.js';
import { LastAppliedMode, type MaskingProfile } from './masking-profile.js';
import { isSecretFieldName, looksSecret } from './value-detectors.js';
import { isExactNumber, parseJsonExact, stringifyJson } from './exact-json.js';

/** The annotation kubectl apply writes: the whole applied object, Secret data included. */
export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

/** How to read the value being masked. */
export interface MaskTarget {
  /** `kubernetes`: apply the Kubernetes rules; `generic`: JSON paths and detectors only. */
  readonly mode: 'kubernetes' | 'generic';
  /**
   * The kind of the objects when they do not say (list items, patches, request bodies), e.g.
   * `Secret` for a request on `secrets`. Unknown → Secret rules apply to `data` (fail safe).
   */
  readonly kindHint?: string | undefined;
}

const enum Hit {
  None = 0,
  Plain = 1,
  Base64 = 2,
}

/** A Kubernetes object root while walking: where it starts in the path, and its kind. */
interface Frame {
  readonly depth: number;
  readonly kind: string | undefined;
}

const BASE64_TEXT = /^[A-Za-z0-9+/_-]{16,}={0,2}$/;
const MAX_NESTED_DEPTH = 4;

/**
 * Masks values for one profile and one target. Not reentrant across threads but holds no state
 * between calls except the running {@link count}.
 */
export class ValueMasker {
  /** Values masked so far. */
  count = 0;
  private readonly kube: boolean;

  constructor(
    private readonly profile: MaskingProfile,
    private readonly target: MaskTarget,
  ) {
    this.kube = target.mode === 'kubernetes';
  }

  /**
   * Masks `value`, found at `path` of the document, and returns it (objects and arrays are
   * changed in place). `objectRoot` is where the Kubernetes object containing `value` starts
   * (`path.slice(0, depth)`), with its kind if known.
   */
  maskAt(value: unknown, path: PathSegment[], objectRoot?: { depth: number; kind: string | undefined }): unknown {
    const frame: Frame | undefined = this.kube ? (objectRoot ?? { depth: 0, kind: this.target.kindHint }) : undefined;
    return this.walk(value, path, frame, keyOf(path), 0);
  }

  /** Masks a whole document (a request body): the root is a Kubernetes object of the hinted kind. */
  maskDocument(value: unknown): unknown {
    const path: PathSegment[] = [];
    if (this.kube && Array.isArray(value) && value.every(isJsonPatchOp)) return this.maskJsonPatch(value);
    return this.walk(value, path, this.kube ? { depth: 0, kind: kindOf(value) ?? this.target.kindHint } : undefined, undefined, 0);
  }

  private walk(node: unknown, path: PathSegment[], frame: Frame | undefined, key: string | undefined, nest: number): unknown {
    if (typeof node === 'string') return this.maskString(node, path, frame, key, nest);
    if (node === null || typeof node !== 'object') {
      const hit = this.hit(path, frame);
      return hit === Hit.None ? node : this.maskLeaf(node, false);
    }
    const hit = this.hit(path, frame);
    if (hit !== Hit.None) return this.maskLeaf(node, hit === Hit.Base64);
    if (Array.isArray(node)) {
      if (frame !== undefined && key === 'env') this.maskEnv(node);
      for (let i = 0; i < node.length; i++) {
        path.push(i);
        node[i] = this.walk(node[i], path, frame, undefined, nest);
        path.pop();
      }
      return node;
    }
    const obj = node as Record<string, unknown>;
    let inner = frame;
    if (frame !== undefined && path.length > frame.depth) {
      const kind = kindOf(obj);
      if (kind !== undefined && typeof obj['apiVersion'] === 'string') inner = { depth: path.length, kind };
      // A Table row's embedded object: a Kubernetes object even when it does not say its kind.
      else if (key === 'object') inner = { depth: path.length, kind: kind ?? this.target.kindHint };
    }
    for (const k of Object.keys(obj)) {
      path.push(k);
      obj[k] = this.walk(obj[k], path, inner, k, nest);
      path.pop();
    }
    return obj;
  }

  /** Which rule selects the value at `path`, if any. */
  private hit(path: readonly PathSegment[], frame: Frame | undefined): Hit {
    for (const rule of this.profile.jsonPaths) if (rule.matches(path)) return Hit.Plain;
    if (frame === undefined || path.length - frame.depth !== 2) return Hit.None;
    const field = path[frame.depth];
    const name = path[frame.depth + 1];
    if (typeof name !== 'string') return Hit.None;
    const kind = frame.kind;
    if ((kind === 'Secret' || kind === undefined) && this.profile.secretData) {
      if (field === 'data') return Hit.Base64;
      if (field === 'stringData') return Hit.Plain;
    }
    if (kind === 'ConfigMap' && this.profile.configMapKeys.test(name)) {
      if (field === 'data') return Hit.Plain;
      if (field === 'binaryData') return Hit.Base64;
    }
    if (kind === 'TokenRequest' && this.profile.serviceAccountTokens && field === 'status' && name === 'token') return Hit.Plain;
    return Hit.None;
  }

  private maskEnv(env: unknown[]): void {
    for (const e of env) {
      if (e === null || typeof e !== 'object' || Array.isArray(e)) continue;
      const v = e as Record<string, unknown>;
      if (typeof v['name'] === 'string' && 'value' in v && this.profile.envNames.test(v['name'])) {
        v['value'] = this.maskLeaf(v['value'], false);
      }
    }
  }

  private maskString(s: string, path: PathSegment[], frame: Frame | undefined, key: string | undefined, nest: number): string | number {
    const hit = this.hit(path, frame);
    if (isExactNumber(s)) {
      // A number kept as written (exact-json.ts): a number to every rule.
      if (hit === Hit.None) return s;
      this.count++;
      return 0;
    }
    if (hit !== Hit.None) {
      this.count++;
      return this.profile.replace(s, hit === Hit.Base64);
    }
    if (key !== undefined && this.profile.detectors.secretNamedFields && isSecretFieldName(key) && looksSecret(key, s)) {
      this.count++;
      return this.profile.replace(s, false);
    }
    if (s.length < 8) return s;
    if (key === LAST_APPLIED_ANNOTATION && this.kube) return this.maskLastApplied(s, nest);
    if (this.profile.decodeNested && nest < MAX_NESTED_DEPTH) {
      const c = s.charCodeAt(0);
      if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
        const nested = this.maskNestedJson(s, nest);
        if (nested !== undefined) return nested;
      } else if (BASE64_TEXT.test(s) && this.base64HidesSecret(s, nest)) {
        this.count++;
        return this.profile.replace(s, true);
      }
    }
    const spans = this.profile.detectors.find(s);
    if (spans.length === 0) return s;
    this.count += spans.length;
    let out = '';
    let at = 0;
    for (const span of spans) {
      out += s.slice(at, span.start) + this.profile.replace(s.slice(span.start, span.end), false);
      at = span.end;
    }
    return out + s.slice(at);
  }

  /** The applied object, masked inside; replaced wholesale when it is not JSON or the profile says so. */
  private maskLastApplied(s: string, nest: number): string {
    if (this.profile.lastApplied === LastAppliedMode.MaskInside) {
      const { value: parsed, exact } = tryParseJson(s);
      if (parsed !== undefined && typeof parsed === 'object' && parsed !== null) {
        this.walk(parsed, [], { depth: 0, kind: kindOf(parsed) ?? this.target.kindHint }, undefined, nest + 1);
        return stringifyJson(parsed, exact) + (s.endsWith('\n') ? '\n' : '');
      }
    }
    this.count++;
    return this.profile.replace(s, false);
  }

  /** Escaped JSON inside a string: masked inside and re-serialised when anything was masked. */
  private maskNestedJson(s: string, nest: number): string | undefined {
    const { value: parsed, exact } = tryParseJson(s);
    if (parsed === undefined || typeof parsed !== 'object' || parsed === null) return undefined;
    const before = this.count;
    const kind = kindOf(parsed);
    this.walk(parsed, [], this.kube && kind !== undefined ? { depth: 0, kind } : undefined, undefined, nest + 1);
    return this.count === before ? s : stringifyJson(parsed, exact);
  }

  /** Whether base64 text decodes to text that holds a secret (detectors, nested JSON, base64 again). */
  private base64HidesSecret(s: string, nest: number): boolean {
    const decoded = Buffer.from(s, s.includes('-') || s.includes('_') ? 'base64url' : 'base64').toString('utf8');
    if (!isMostlyText(decoded)) return false;
    if (this.profile.detectors.find(decoded).length > 0) return true;
    const probe = new ValueMasker(this.profile, { mode: this.target.mode, kindHint: undefined });
    const t = decoded.trim();
    if (t.startsWith('{') || t.startsWith('[')) {
      const parsed = tryParseJson(t).value;
      if (parsed !== undefined) {
        probe.walk(parsed, [], undefined, undefined, nest + 1);
        if (probe.count > 0) return true;
      }
    }
    return BASE64_TEXT.test(t) && nest + 1 < MAX_NESTED_DEPTH && this.base64HidesSecret(t, nest + 1);
  }

  /** Replaces a value keeping its type; containers keep their keys and lengths. */
  private maskLeaf(v: unknown, base64: boolean): unknown {
    if (typeof v === 'string') {
      this.count++;
      return isExactNumber(v) ? 0 : this.profile.replace(v, base64);
    }
    if (typeof v === 'number') {
      this.count++;
      return 0;
    }
    if (typeof v === 'boolean') {
      this.count++;
      return false;
    }
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) v[i] = this.maskLeaf(v[i], base64);
      return v;
    }
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = this.maskLeaf(o[k], base64);
    return o;
  }

  /** A JSON Patch on a masked kind: every operation's value is masked (its path decides nothing). */
  private maskJsonPatch(ops: Record<string, unknown>[]): unknown {
    const kind = this.target.kindHint;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (!('value' in op)) continue;
      const p = typeof op['path'] === 'string' ? op['path'] : '';
      const secretish = kind === 'Secret' || kind === undefined || /^\/(data|stringData|binaryData)(\/|$)/.test(p);
      if (secretish) op['value'] = this.maskLeaf(op['value'], /^\/(data|binaryData)\//.test(p));
      else op['value'] = this.walk(op['value'], [i, 'value'], undefined, lastPointerToken(p), 0);
    }
    return ops;
  }
}

function keyOf(path: readonly PathSegment[]): string | undefined {
  const last = path[path.length - 1];
  return typeof last === 'string' ? last : undefined;
}

function kindOf(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const k = (v as Record<string, unknown>)['kind'];
  return typeof k === 'string' && k !== '' ? k : undefined;
}

function isJsonPatchOp(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && typeof (v as Record<string, unknown>)['op'] === 'string';
}

function lastPointerToken(p: string): string | undefined {
  const i = p.lastIndexOf('/');
  return i === -1
    ? undefined
    : p
        .slice(i + 1)
        .replace(/~1/g, '/')
        .replace(/~0/g, '~');
}

function tryParseJson(s: string): { value: unknown; exact: boolean } {
  try {
    return parseJsonExact(s);
  } catch {
    return { value: undefined, exact: false };
  }
}

/** True when `s` is readable text: no replacement characters and few control characters. */
function isMostlyText(s: string): boolean {
  if (s.length === 0 || s.includes('\uFFFD')) return false;
  let control = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 32 && c !== 9 && c !== 10 && c !== 13) control++;
  }
  return control * 20 < s.length;
}
