/**
 * Masking profiles: what to mask (structure-aware Kubernetes rules, JSON paths, value detectors)
 * and how (a fixed marker, or a keyed hash tag). A profile is compiled once from its config.
 */
import { createHmac } from 'node:crypto';
import { JsonPathRule } from './json-path-rule.js';
import { MaskingError, MaskingErrorCode } from './masking-error.js';
import { compileNamePatterns } from './name-pattern.js';
import { DEFAULT_DETECTORS, DetectorName, ValueDetectors } from './value-detectors.js';

/** How a masked value is written. */
export const Replacement = {
  /** The fixed marker (`***masked***`); equal secrets are indistinguishable. */
  Marker: 'marker',
  /** `***masked:<16 hex>***`, an HMAC-SHA256 of the value under the configured key: equal secrets correlate. */
  Hmac: 'hmac',
} as const;
export type Replacement = (typeof Replacement)[keyof typeof Replacement];

/** What to do with `kubectl.kubernetes.io/last-applied-configuration`. */
export const LastAppliedMode = {
  /** Parse the applied object, mask inside it like any object, write it back (kubectl apply still diffs). */
  MaskInside: 'mask-inside',
  /** Replace the whole annotation with the marker. */
  Replace: 'replace',
} as const;
export type LastAppliedMode = (typeof LastAppliedMode)[keyof typeof LastAppliedMode];

/** The Kubernetes rules of a profile. */
export interface KubernetesMaskingSpec {
  /** Secret `.data` and `.stringData` values. Default true. */
  secretData?: boolean;
  /** Default `mask-inside`; an annotation that is not JSON is replaced wholesale. */
  lastAppliedConfiguration?: LastAppliedMode;
  /** Container `env[].value` whose `name` matches one of these globs (case-insensitive). */
  envNamePatterns?: readonly string[];
  /** ConfigMap `data` / `binaryData` keys matching these globs (case-insensitive). */
  configMapKeyPatterns?: readonly string[];
  /** TokenRequest `status.token` (the service-account token subresource). Default true. */
  serviceAccountTokens?: boolean;
}

/** One profile as configured under `masking.profiles.<name>`. */
export interface MaskingProfileSpec {
  replacement?: Replacement;
  kubernetes?: KubernetesMaskingSpec;
  /** JSONPath expressions whose values are masked (generic HTTP connections and Kubernetes alike). */
  jsonPaths?: readonly string[];
  /** Value detectors; default {@link DEFAULT_DETECTORS} (emails and card numbers are opt-in). */
  detectors?: readonly DetectorName[];
  /** Look inside strings that hold JSON or base64 text and mask the whole string when a secret is inside. Default true. */
  decodeNestedStrings?: boolean;
}

/** Env-var names masked by default. */
export const DEFAULT_ENV_NAME_PATTERNS: readonly string[] = [
  '*PASSWORD*',
  '*PASSWD*',
  '*SECRET*',
  '*TOKEN*',
  '*KEY*',
  '*CREDENTIAL*',
  '*AUTH*',
  '*PRIVATE*',
  '*DSN*',
  '*CONNECTION_STRING*',
];

/** ConfigMap keys masked by default. */
export const DEFAULT_CONFIGMAP_KEY_PATTERNS: readonly string[] = [
  '*password*',
  '*passwd*',
  '*secret*',
  '*token*',
  '*credential*',
  '*apikey*',
  '*api_key*',
  '*api-key*',
  '*private*',
  '*.key',
  '*.pem',
  '*.p12',
  '*.pfx',
  '*.jks',
];

/** The fixed marker. */
export const MASK_MARKER = '***masked***';
const MARKER_BASE64 = Buffer.from(MASK_MARKER).toString('base64');

/** A compiled, immutable masking profile. */
export class MaskingProfile {
  readonly replacement: Replacement;
  readonly secretData: boolean;
  readonly lastApplied: LastAppliedMode;
  readonly envNames: RegExp;
  readonly configMapKeys: RegExp;
  readonly serviceAccountTokens: boolean;
  readonly jsonPaths: readonly JsonPathRule[];
  readonly detectors: ValueDetectors;
  readonly decodeNested: boolean;
  private readonly key: Buffer | undefined;

  /** @param hmacKey the key for `replacement: hmac` (required then). */
  constructor(
    readonly name: string,
    spec: MaskingProfileSpec,
    hmacKey?: string,
  ) {
    this.replacement = spec.replacement ?? Replacement.Marker;
    if (this.replacement === Replacement.Hmac && (hmacKey === undefined || hmacKey.length < 16)) {
      throw new MaskingError(MaskingErrorCode.InvalidProfile, `masking profile ${name}: replacement hmac needs masking.hmacKey (at least 16 characters)`);
    }
    this.key = hmacKey === undefined ? undefined : Buffer.from(hmacKey, 'utf8');
    const k = spec.kubernetes ?? {};
    this.secretData = k.secretData ?? true;
    this.lastApplied = k.lastAppliedConfiguration ?? LastAppliedMode.MaskInside;
    this.envNames = compileNamePatterns(k.envNamePatterns ?? DEFAULT_ENV_NAME_PATTERNS);
    this.configMapKeys = compileNamePatterns(k.configMapKeyPatterns ?? DEFAULT_CONFIGMAP_KEY_PATTERNS);
    this.serviceAccountTokens = k.serviceAccountTokens ?? true;
    this.jsonPaths = (spec.jsonPaths ?? []).map((p) => new JsonPathRule(p));
    for (const d of spec.detectors ?? []) {
      if (!Object.values(DetectorName).includes(d)) {
        throw new MaskingError(MaskingErrorCode.InvalidProfile, `masking profile ${name}: unknown detector ${JSON.stringify(d)}`);
      }
    }
    this.detectors = new ValueDetectors(spec.detectors ?? DEFAULT_DETECTORS);
    this.decodeNested = spec.decodeNestedStrings ?? true;
  }

  /**
   * The replacement for a secret string. `base64` fields (Secret `.data`, ConfigMap `.binaryData`)
   * get a base64 replacement, so typed clients still decode the object.
   */
  replace(value: string, base64: boolean): string {
    if (this.replacement === Replacement.Marker || this.key === undefined) return base64 ? MARKER_BASE64 : MASK_MARKER;
    // Hash the decoded bytes of base64 fields, so data and stringData of one secret correlate.
    const bytes = base64 ? Buffer.from(value, 'base64') : Buffer.from(value, 'utf8');
    const tag = `***masked:${createHmac('sha256', this.key).update(bytes).digest('hex').slice(0, 16)}***`;
    return base64 ? Buffer.from(tag).toString('base64') : tag;
  }
}

/** The compiled profiles of one gateway, by name. */
export class MaskingProfiles {
  private readonly byName = new Map<string, MaskingProfile>();

  constructor(specs: Readonly<Record<string, MaskingProfileSpec>>, hmacKey?: string) {
    for (const [name, spec] of Object.entries(specs)) this.byName.set(name, new MaskingProfile(name, spec, hmacKey));
  }

  /** The profile named `name`; throws {@link MaskingError} `unknown_profile` when it is not configured. */
  get(name: string): MaskingProfile {
    const p = this.byName.get(name);
    if (p === undefined) {
      throw new MaskingError(
        MaskingErrorCode.UnknownProfile,
        `masking profile ${JSON.stringify(name)} is not configured on this gateway (masking.profiles has: ${[...this.byName.keys()].join(', ') || 'none'})`,
      );
    }
    return p;
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}
