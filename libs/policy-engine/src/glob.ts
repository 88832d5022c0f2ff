/**
 * Glob patterns for policy match fields, compiled once into plain predicates so that evaluation
 * never builds a regular expression per request.
 *
 * Syntax: `*` matches any run of characters (including `/` and the empty string), `?` matches
 * exactly one character, `\` escapes the next character. `[`, `]`, `{` and `}` are reserved
 * (character classes and alternation are not supported) and must be escaped to be literal.
 */

/** A compiled glob: true when the value matches. */
export type StringPredicate = (value: string) => boolean;

/** Why a glob is invalid, or `undefined` when it is valid. */
export function globError(pattern: string): string | undefined {
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      if (i === pattern.length - 1) return `glob "${pattern}" ends with an unfinished escape "\\"`;
      i++;
    } else if (c === '[' || c === ']' || c === '{' || c === '}') {
      return `glob "${pattern}" uses reserved character "${c}" (only * and ? are wildcards; escape it as \\${c})`;
    }
  }
  if (pattern.includes('**')) return `glob "${pattern}" has "**": a single * already matches across "/"`;
  return undefined;
}

/** The literal a pattern stands for when it has no wildcard, else `undefined`. */
export function globLiteral(pattern: string): string | undefined {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' || c === '?') return undefined;
    if (c === '\\') {
      i++;
      out += pattern[i] ?? '';
    } else {
      out += c;
    }
  }
  return out;
}

const REGEX_SPECIAL = /[.*+?^${}()|[\]\\/]/g;

/** Compiles one valid glob into the cheapest predicate that implements it. */
export function compileGlob(pattern: string): StringPredicate {
  const literal = globLiteral(pattern);
  if (literal !== undefined) return (v) => v === literal;
  if (pattern === '*') return () => true;
  // prefix* and *suffix cover almost every real policy; plain string ops beat a regex there.
  if (pattern.endsWith('*') && !pattern.startsWith('*')) {
    const prefix = globLiteral(pattern.slice(0, -1));
    if (prefix !== undefined) return (v) => v.startsWith(prefix);
  }
  if (pattern.startsWith('*') && !pattern.endsWith('*')) {
    const suffix = globLiteral(pattern.slice(1));
    if (suffix !== undefined) return (v) => v.endsWith(suffix);
  }
  let source = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    if (c === '\\') {
      i++;
      source += (pattern[i] ?? '').replace(REGEX_SPECIAL, '\\$&');
    } else if (c === '*') {
      source += '[\\s\\S]*';
    } else if (c === '?') {
      source += '[\\s\\S]';
    } else {
      source += c.replace(REGEX_SPECIAL, '\\$&');
    }
  }
  const re = new RegExp(source + '$');
  return (v) => re.test(v);
}

/**
 * A set of globs compiled into one predicate: literals go into a `Set`, the rest are tried in
 * order. `normalize` is applied to patterns' literals and must also be applied to values.
 */
export class GlobSet {
  /** Literal entries (after normalization), used by the rule index. */
  readonly literals: ReadonlySet<string>;
  /** True when every entry is a literal (the rule can be indexed on this field). */
  readonly allLiteral: boolean;
  readonly #wildcards: readonly StringPredicate[];
  readonly #literals: Set<string>;

  constructor(readonly patterns: readonly string[]) {
    const literals = new Set<string>();
    const wildcards: StringPredicate[] = [];
    for (const p of patterns) {
      const lit = globLiteral(p);
      if (lit !== undefined) literals.add(lit);
      else wildcards.push(compileGlob(p));
    }
    this.#literals = literals;
    this.literals = literals;
    this.#wildcards = wildcards;
    this.allLiteral = wildcards.length === 0;
  }

  /** True when any entry matches the value. */
  test(value: string): boolean {
    if (this.#literals.has(value)) return true;
    const w = this.#wildcards;
    for (let i = 0; i < w.length; i++) if ((w[i] as StringPredicate)(value)) return true;
    return false;
  }

  /** True when any entry matches any of the values. */
  testAny(values: readonly string[]): boolean {
    for (let i = 0; i < values.length; i++) if (this.test(values[i] as string)) return true;
    return false;
  }
}
