import { create, KubeAttributesSchema, type KubeAttributes } from '@portcullis/contracts';

/** Longest request path (with query) the gateway accepts. */
export const MAX_PATH_BYTES = 8192;

const API_PREFIXES = new Set(['api', 'apis']);
const GROUPLESS_PREFIXES = new Set(['api']);
const SPECIAL_VERBS = new Set(['proxy', 'watch']);
const SPECIAL_VERBS_NO_SUBRESOURCES = new Set(['proxy']);
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);
/** Verbs whose label and field selectors the API server honours (requestinfo.go verbsWithSelectors). */
const VERBS_WITH_SELECTORS = new Set(['list', 'watch', 'deletecollection']);
/** Streaming subresources that open a session: authorised as create, even over a WebSocket GET. */
const CONNECT_SUBRESOURCES = new Set(['exec', 'attach', 'portforward', 'proxy']);
const METHOD_VERBS: Readonly<Record<string, string>> = {
  POST: 'create',
  GET: 'get',
  HEAD: 'get',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};
// Path-segment names the API server refuses (k8s.io/apimachinery path.IsValidPathSegmentName).
const INVALID_SEGMENT_NAME = /[/%]/;
/**
 * What one segment of a Kubernetes API path may hold, decoded: the characters of API paths, DNS
 * names, `system:`-style RBAC names and `https:web:443` proxy names. Everything else — `;`
 * (path parameters), `%` (double encoding), backslashes, spaces, non-ASCII look-alikes of "." and "/" —
 * is refused, so no upstream can read the segment as something else.
 */
const KUBE_SEGMENT = /^[A-Za-z0-9._~:@-]+$/;
/** The grammar's lower-case names: API group and version, namespace, resource, subresource, and every segment of a non-resource path. */
const LOWER_NAME = /^[a-z0-9._~:@-]+$/;

// Own properties only: a method named "constructor" or "valueOf" must not find Object.prototype's.
function methodVerb(method: string): string | undefined {
  return Object.hasOwn(METHOD_VERBS, method) ? METHOD_VERBS[method] : undefined;
}

/** A request path the gateway refuses rather than "fixes". */
export class RequestPathError extends Error {
  override readonly name = 'RequestPathError';
}

/**
 * Rejects path tricks before anything interprets the path: dot segments, empty segments,
 * encoded slashes, dots, backslashes or NUL, control characters, and overlong paths.
 */
export function assertCleanPath(rawPath: string): void {
  if (rawPath.length > MAX_PATH_BYTES) throw new RequestPathError(`the request path is longer than ${MAX_PATH_BYTES} bytes`);
  const q = rawPath.indexOf('?');
  const path = q === -1 ? rawPath : rawPath.slice(0, q);
  if (!path.startsWith('/')) throw new RequestPathError('the request path must start with "/"');
  if (/%(2[fFeE]|5[cC]|00)/.test(path)) throw new RequestPathError('the request path contains an encoded "/", ".", "\\" or NUL');

  if (/[\x00-\x1f\x7f\\]/.test(rawPath)) throw new RequestPathError('the request path contains a control character or "\\"');
  if (path.includes('//')) throw new RequestPathError('the request path contains an empty segment ("//")');
  for (const seg of path.split('/')) {
    if (seg === '.' || seg === '..') throw new RequestPathError('the request path contains a "." or ".." segment');
  }
}

/**
 * Parses a Kubernetes API request the way the API server does (k8s.io/apiserver requestinfo):
 * verb from method and path, group, version, namespace, resource, subresource and name.
 * `path` is the raw (still percent-encoded) path relative to the API server root (no
 * /k8s/<connection> prefix); it is decoded here, as the API server decodes it, so that
 * `kube-%73ystem` is the namespace kube-system, and must be in the path grammar
 * ({@link canonicalKubePath}). The attributes' `path` is the canonical path: the one to send.
 * Call {@link assertCleanPath} first.
 */
export function parseKubeRequest(method: string, rawPath: string, query: URLSearchParams): KubeAttributes {
  const path = canonicalKubePath(rawPath);
  const info = readKubeRequest(method, path, query);
  assertLowerCaseNames(info);
  return info;
}

function readKubeRequest(method: string, path: string, query: URLSearchParams): KubeAttributes {
  const info = create(KubeAttributesSchema, {
    path,
    verb: methodVerb(method) ?? method.toLowerCase(),
  });
  let parts = splitPath(path);
  if (parts.length < 3 || !API_PREFIXES.has(parts[0]!)) return nonResource(info, method);
  info.apiPrefix = parts[0]!;
  parts = parts.slice(1);
  if (!GROUPLESS_PREFIXES.has(info.apiPrefix)) {
    if (parts.length < 3) return nonResource(info, method);
    info.apiGroup = parts[0]!;
    parts = parts.slice(1);
  }
  info.isResourceRequest = true;
  info.apiVersion = parts[0]!;
  parts = parts.slice(1);

  const verbViaPathPrefix = parts.length > 0 && SPECIAL_VERBS.has(parts[0]!);
  if (verbViaPathPrefix) {
    if (parts.length < 2) throw new RequestPathError(`unable to determine kind and namespace from ${path}`);
    info.verb = parts[0]!;
    parts = parts.slice(1);
  } else {
    info.verb = methodVerb(method) ?? '';
  }

  if (parts[0] === 'namespaces') {
    if (parts.length > 1) {
      info.namespace = parts[1]!;
      if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2]!)) parts = parts.slice(2);
    }
  }
  if (parts.length >= 3 && !SPECIAL_VERBS_NO_SUBRESOURCES.has(info.verb)) info.subresource = parts[2]!;
  if (parts.length >= 2) info.name = parts[1]!;
  if (parts.length >= 1) info.resource = parts[0]!;

  if (info.name === '' && info.verb === 'get') {
    info.verb = isWatch(query) ? 'watch' : 'list';
    const name = exactNameSelector(query.get('fieldSelector') ?? '');
    if (name !== undefined && name !== '.' && name !== '..' && !INVALID_SEGMENT_NAME.test(name)) info.name = name;
  }
  if (info.name === '' && info.verb === 'delete') info.verb = 'deletecollection';
  // Only where the API server honours them; the /watch/ prefix form does not, consistently.
  if (!verbViaPathPrefix && VERBS_WITH_SELECTORS.has(info.verb)) {
    info.labelSelector = query.get('labelSelector') ?? '';
    info.fieldSelector = query.get('fieldSelector') ?? '';
  }
  if (CONNECT_SUBRESOURCES.has(info.subresource)) info.verb = 'create';
  return info;
}

function nonResource(info: KubeAttributes, method: string): KubeAttributes {
  info.isResourceRequest = false;
  info.verb = method.toLowerCase();
  return info;
}

/**
 * The canonical form of a raw (percent-encoded) Kubernetes API path: each segment decoded, as Go's
 * url.URL.Path decodes it, and checked against the path grammar, then joined again. Every segment
 * it keeps is plain unreserved ASCII (or `:` `@`), so the canonical form is also its own encoding:
 * it is what the upstream is sent, and it decodes to exactly what the policy saw. A path that is
 * not in the grammar — an empty, "." or ".." segment, a `;` parameter, a malformed or overlong
 * escape, a character no API path holds — is a {@link RequestPathError}, never a "fix".
 */
export function canonicalKubePath(rawPath: string): string {
  if (!rawPath.startsWith('/')) throw new RequestPathError('the request path must start with "/"');
  if (rawPath === '/') return '/';
  // One trailing slash is part of some paths (`/api/`, a service proxy's root); it is kept as is.
  const trailing = rawPath.endsWith('/');
  const segments = rawPath.slice(1, trailing ? -1 : undefined).split('/');
  const out: string[] = [];
  for (const raw of segments) out.push(kubeSegment(raw));
  return `/${out.join('/')}${trailing ? '/' : ''}`;
}

function kubeSegment(raw: string): string {
  if (raw === '') throw new RequestPathError('the request path contains an empty segment ("//")');
  if (raw.includes(';')) throw new RequestPathError(`the request path segment ${quote(raw)} carries a ";" parameter, which Kubernetes API paths do not have`);
  const segment = decodeSegment(raw);
  if (segment === '.' || segment === '..') throw new RequestPathError('the request path contains a "." or ".." segment');
  if (!KUBE_SEGMENT.test(segment)) {
    const bad = [...segment].find((c) => !KUBE_SEGMENT.test(c)) ?? '';
    throw new RequestPathError(
      `the request path segment ${quote(segment)} contains ${quote(bad)}, which Kubernetes API paths do not allow (letters, digits and - . _ ~ : @ only)`,
    );
  }
  return segment;
}

/** Percent-decodes one segment like Go's url.URL.Path; a malformed or non-UTF-8 (overlong) escape is refused (Go answers 400). */
function decodeSegment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new RequestPathError('the request path contains a malformed percent-encoding');
  }
}

/** A piece of the path for a message: quoted, escaped, and short. */
function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

/**
 * The API server's names are lower-case wherever the grammar puts one (only an object's name, and
 * what follows a `proxy`, may hold capitals): `SECRETS` is no resource, and an upstream that folds
 * case must not be handed one the policy did not see.
 */
function assertLowerCaseNames(info: KubeAttributes): void {
  const names = info.isResourceRequest ? [info.apiGroup, info.apiVersion, info.namespace, info.resource, info.subresource] : [info.path];
  for (const name of names) {
    if (name !== '' && !LOWER_NAME.test(name.replaceAll('/', '-'))) {
      throw new RequestPathError(`${quote(name)} is not lower-case; Kubernetes API groups, versions, namespaces, resources and paths are`);
    }
  }
}

function splitPath(path: string): string[] {
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? [] : trimmed.split('/');
}

function isWatch(query: URLSearchParams): boolean {
  const v = query.get('watch');
  if (v === null) return false;
  const l = v.toLowerCase();
  return l !== 'false' && l !== '0';
}

/**
 * The value `metadata.name` must equal, as fields.ParseSelector + RequiresExactMatch compute it:
 * terms split on unescaped commas and sorted, no trimming, values unescaped (`\,` `\=` `\\`);
 * a selector that does not parse gives no name.
 */
function exactNameSelector(selector: string): string | undefined {
  const terms: string[] = [];
  let start = 0;
  let inSlash = false;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (inSlash) inSlash = false;
    else if (c === '\\') inSlash = true;
    else if (c === ',') {
      terms.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(selector.slice(start));
  terms.sort();
  let found: string | undefined;
  for (const term of terms) {
    if (term === '') continue;
    const m = /^(.*?)(!=|==|=)(.*)$/s.exec(term);
    if (!m) return undefined;
    const value = unescapeFieldValue(m[3]!);
    if (value === undefined) return undefined;
    if (m[2] !== '!=' && m[1] === 'metadata.name' && found === undefined) found = value;
  }
  return found;
}

/** fields.UnescapeValue: undefined for an unknown escape or an unescaped "," or "=". */
function unescapeFieldValue(s: string): string | undefined {
  let out = '';
  let inSlash = false;
  for (const c of s) {
    if (inSlash) {
      if (c !== '\\' && c !== ',' && c !== '=') return undefined;
      out += c;
      inSlash = false;
    } else if (c === '\\') inSlash = true;
    else if (c === ',' || c === '=') return undefined;
    else out += c;
  }
  return inSlash ? undefined : out;
}
