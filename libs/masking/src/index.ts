/** Inline masking: profiles, value detectors, the streaming JSON masker and audited body excerpts. */
export { MaskingError, MaskingErrorCode } from './masking-error.js';
export {
  MaskingProfile,
  MaskingProfiles,
  Replacement,
  LastAppliedMode,
  MASK_MARKER,
  DEFAULT_ENV_NAME_PATTERNS,
  DEFAULT_CONFIGMAP_KEY_PATTERNS,
} from './masking-profile.js';
export type { MaskingProfileSpec, KubernetesMaskingSpec } from './masking-profile.js';
export { DetectorName, DEFAULT_DETECTORS, ValueDetectors, luhnValid, shannonEntropy, isSecretFieldName, looksSecret } from './value-detectors.js';
export type { Span } from './value-detectors.js';
export { JsonPathRule } from './json-path-rule.js';
export type { PathSegment } from './json-path-rule.js';
export { ValueMasker, LAST_APPLIED_ANNOTATION } from './value-masker.js';
export type { MaskTarget } from './value-masker.js';
export { StreamingJsonMasker } from './streaming-json-masker.js';
export { isExactNumber, parseJsonExact, stringifyJson } from './exact-json.js';
export { StreamingTextMasker, TextStreamDecoder, DEFAULT_TEXT_LOOK_BEHIND, DEFAULT_TEXT_MAX_HOLD } from './streaming-text-masker.js';
export type { StreamingTextOptions } from './streaming-text-masker.js';
export type { StreamingMaskOptions } from './streaming-json-masker.js';
export { decodeKubeProtobuf, KubeProtobufError, KUBE_PROTOBUF_MAGIC } from './kube-protobuf-decoder.js';
export { BodyRecorder, ResponseExcerpt, maskRequestBody, capText, BodyDecoding } from './body-capture.js';
export type { BodyExcerpt } from './body-capture.js';
export { BodyDigest, BODY_DIGEST_ALGORITHM, MIN_BODY_KEY_LENGTH } from './body-digest.js';
export type { BodyDigestRun } from './body-digest.js';
export { compileNamePatterns } from './name-pattern.js';
