/** Every way masking refuses: the edge answers each with a clear Status and never the raw bytes. */
export const MaskingErrorCode = {
  /** The decision names a profile this gateway has no configuration for. */
  UnknownProfile: 'unknown_profile',
  /** The upstream answered with a content type the masker cannot read (protobuf, YAML, text, …). */
  UnmaskableContentType: 'unmaskable_content_type',
  /** The upstream used a content encoding the masker cannot decode. */
  UnmaskableEncoding: 'unmaskable_encoding',
  /** Text (a log, exec output) that is not UTF-8 or holds NUL bytes: binary output cannot be masked. */
  NotText: 'not_text',
  /** The body is not the JSON its content type promised. */
  InvalidJson: 'invalid_json',
  /** One object (a list item, a watch event) exceeds the per-object buffer. */
  ObjectTooLarge: 'object_too_large',
  /** The body ended in the middle of a JSON value. */
  Truncated: 'truncated',
  /** A masking profile's configuration is invalid (bad JSON path, bad pattern). */
  InvalidProfile: 'invalid_profile',
} as const;
export type MaskingErrorCode = (typeof MaskingErrorCode)[keyof typeof MaskingErrorCode];

/** A masking failure; its message never contains body bytes. */
export class MaskingError extends Error {
  override readonly name = 'MaskingError';
  constructor(
    readonly code: MaskingErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
