/**
 * Value detectors: find secrets inside any string, whatever field it sits in. Each detector names
 * the spans to mask; the masker replaces only those spans, so the rest of a log line or a
 * connection string stays readable. All patterns are compiled once, at module load.
 */

/** Detector names, as used in `masking.profiles.<name>.detectors`. */
export const DetectorName = {
  /** Three base64url segments whose first two decode to JSON objects (`eyJ…`): JWTs and JWS. */
  Jwt: 'jwt',
  /** PEM private keys (PKCS#1, PKCS#8, EC, DSA, OpenSSH, encrypted), with or without the END line. */
  PemPrivateKey: 'pem-private-key',
  /** AWS access key ids: AKIA/ASIA/… followed by 16 upper-case letters or digits. */
  AwsAccessKeyId: 'aws-access-key-id',
  /** AWS secret access keys: 40 base64 characters after an `aws_secret_access_key`-style label. */
  AwsSecretAccessKey: 'aws-secret-access-key',
  /** GitHub tokens: ghp_/gho_/ghu_/ghs_/ghr_ and fine-grained github_pat_ tokens. */
  GithubToken: 'github-token',
  /** Slack tokens (xoxb-, xoxp-, xoxa-, xoxr-, xoxs-, xoxe-) and incoming-webhook URLs. */
  SlackToken: 'slack-token',
  /** The credential after `Bearer`, `Basic` or `token` inside any string (headers, curl lines, logs). */
  BearerToken: 'bearer-token',
  /** Any value of a password/token/secret-named field that looks like a secret (see {@link looksSecret}). */
  SecretNamedField: 'secret-named-field',
  /** Opt-in: e-mail addresses. */
  Email: 'email',
  /** Opt-in: payment card numbers of 13–19 digits that pass the Luhn check. */
  CardNumber: 'card-number',
} as const;
export type DetectorName = (typeof DetectorName)[keyof typeof DetectorName];

/** The detectors a profile gets when it does not list its own (emails and cards are opt-in). */
export const DEFAULT_DETECTORS: readonly DetectorName[] = [
  DetectorName.Jwt,
  DetectorName.PemPrivateKey,
  DetectorName.AwsAccessKeyId,
  DetectorName.AwsSecretAccessKey,
  DetectorName.GithubToken,
  DetectorName.SlackToken,
  DetectorName.BearerToken,
  DetectorName.SecretNamedField,
];

/** A span `[start, end)` of a string to mask. */
export interface Span {
  start: number;
  end: number;
}

interface SpanDetector {
  readonly name: DetectorName;
  /** A global RegExp; `group` names the capture group to mask (0 = the whole match). */
  readonly pattern: RegExp;
  readonly group: number;
  readonly accept?: (match: string) => boolean;
}

const SPAN_DETECTORS: readonly SpanDetector[] = [
  { name: DetectorName.Jwt, pattern: /eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, group: 0 },
  {
    name: DetectorName.PemPrivateKey,
    pattern: /-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END \1PRIVATE KEY(?: BLOCK)?-----|$)/g,
    group: 0,
  },
  { name: DetectorName.AwsAccessKeyId, pattern: /(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}(?![A-Z0-9])/g, group: 0 },
  {
    name: DetectorName.AwsSecretAccessKey,
    pattern: /aws_?secret(?:_?access)?_?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])/gi,
    group: 1,
  },
  { name: DetectorName.GithubToken, pattern: /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})/g, group: 0 },
  {
    name: DetectorName.SlackToken,
    pattern: /(?<![A-Za-z0-9])xox[abposre]-[A-Za-z0-9-]{10,}|https:\/\/hooks\.slack\.com\/(?:services|workflows)\/[A-Za-z0-9/_-]+/g,
    group: 0,
  },
  { name: DetectorName.BearerToken, pattern: /\b(?:Bearer|Basic|token)\s+([A-Za-z0-9._~+/-]{12,}=*)/gi, group: 1 },
  { name: DetectorName.Email, pattern: /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g, group: 0 },
  { name: DetectorName.CardNumber, pattern: /(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])/g, group: 0, accept: luhnValid },
];

/**
 * A cheap pre-filter: a string that matches none of these substrings cannot match any detector,
 * so most strings (names, timestamps, images) cost one scan.
 */
const TRIGGER =
  /eyJ|-----BEGIN|A[KSBCGIRPN][A-Z][A-Z][A-Z0-9]{16}|secret|gh[pousr]_|github_pat_|xox|hooks\.slack|bearer|basic|token|@|[0-9](?:[ -]?[0-9]){12}/i;

/** Luhn checksum over the digits of `text` (spaces and dashes ignored). */
export function luhnValid(text: string): boolean {
  let sum = 0;
  let double = false;
  let digits = 0;
  for (let i = text.length - 1; i >= 0; i--) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) continue;
    let d = c - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
    digits++;
  }
  return digits >= 13 && sum % 10 === 0;
}

/** Shannon entropy of `text` in bits per character. */
export function shannonEntropy(text: string): number {
  if (text.length === 0) return 0;
  const counts = new Map<number, number>();
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  let h = 0;
  for (const n of counts.values()) {
    const p = n / text.length;
    h -= p * Math.log2(p);
  }
  return h;
}

/**
 * Field names that hold secrets (password, token, secret, api key, credential, private key…) —
 * but not the fields that only *name* or *point to* one (`secretName`, `tokenFile`, `secretKeyRef`).
 */
const SECRET_FIELD =
  /pass(?:word|wd|phrase)?$|^pwd$|secret|token|api[-_]?key|access[-_]?key|credential|private[-_]?key|client[-_]?key|auth(?:orization)?$|session[-_]?key|signing[-_]?key|encryption[-_]?key|salt$|cookie$/i;
const REFERENCE_FIELD = /(?:name|names|ref|refs|file|path|type|id|ids|ttl|expir\w*|count|length|enabled|url|uri|namespace|key[-_]?id|secrets)$/i;
const PASSWORD_FIELD = /pass(?:word|wd|phrase)?$|^pwd$/i;

/** True when a field called `key` holds secrets by its name. */
export function isSecretFieldName(key: string): boolean {
  return SECRET_FIELD.test(key) && !REFERENCE_FIELD.test(key);
}

/**
 * Whether the value of a secret-named field is a secret: any non-empty password; otherwise a
 * string of at least 8 characters with at least 3 bits of entropy per character (so `true`,
 * `enabled`, `none` and short labels stay readable).
 */
export function looksSecret(key: string, value: string): boolean {
  if (value.length === 0) return false;
  if (PASSWORD_FIELD.test(key)) return true;
  return value.length >= 8 && shannonEntropy(value) >= 3;
}

/** A compiled set of span detectors. */
export class ValueDetectors {
  private readonly detectors: readonly SpanDetector[];
  /** Whether the secret-named-field rule is on. */
  readonly secretNamedFields: boolean;

  constructor(names: readonly DetectorName[]) {
    const enabled = new Set(names);
    this.detectors = SPAN_DETECTORS.filter((d) => enabled.has(d.name));
    this.secretNamedFields = enabled.has(DetectorName.SecretNamedField);
  }

  /** Whether the detector `name` is on. */
  has(name: DetectorName): boolean {
    return name === DetectorName.SecretNamedField ? this.secretNamedFields : this.detectors.some((d) => d.name === name);
  }

  /** The spans of `text` to mask, sorted and merged; empty when nothing was found. */
  find(text: string): Span[] {
    if (text.length < 8 || this.detectors.length === 0 || !TRIGGER.test(text)) return [];
    let spans: Span[] | undefined;
    for (const d of this.detectors) {
      d.pattern.lastIndex = 0;
      for (let m = d.pattern.exec(text); m !== null; m = d.pattern.exec(text)) {
        if (m[0].length === 0) {
          d.pattern.lastIndex++;
          continue;
        }
        const part = m[d.group];
        if (part === undefined || part.length === 0) continue;
        if (d.accept !== undefined && !d.accept(part)) continue;
        const start = m.index + (d.group === 0 ? 0 : m[0].indexOf(part));
        (spans ??= []).push({ start, end: start + part.length });
      }
    }
    if (spans === undefined) return [];
    spans.sort((a, b) => a.start - b.start);
    const merged: Span[] = [spans[0]!];
    for (let i = 1; i < spans.length; i++) {
      const last = merged[merged.length - 1]!;
      const s = spans[i]!;
      if (s.start <= last.end) last.end = Math.max(last.end, s.end);
      else merged.push(s);
    }
    return merged;
  }
}
