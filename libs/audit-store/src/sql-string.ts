/**
 * Literal quoting for ClickHouse SQL. ClickHouse 18.16 has no query parameters (`{id:String}`
 * is a syntax error there), so every value that goes into a query text passes through here.
 */

const ESCAPES: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  "'": "\\'",
  '\0': '\\0',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

// Backslash, quote and every C0 control character plus DEL; all else (UTF-8 included) is literal.

const NEEDS_ESCAPE = /[\\'\x00-\x1f\x7f]/g;

/**
 * Quotes a string as a ClickHouse string literal: `'` and `\` are backslash-escaped and control
 * characters become `\n`-style or `\xHH` escapes, so the value can neither end the literal nor
 * smuggle line breaks into the query text. Lone UTF-16 surrogates become U+FFFD on the wire
 * (the HTTP body is UTF-8), as they would in any inserted row.
 */
export function sqlString(value: string): string {
  return `'${value.replace(NEEDS_ESCAPE, (c) => ESCAPES[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}'`;
}

/**
 * A non-negative integer literal; rejects anything else (NaN, fractions, beyond 2^53) rather
 * than let it reach a query.
 */
export function sqlUInt(value: number): string {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`not a non-negative safe integer for SQL: ${String(value)}`);
  }
  return String(value);
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * A database or table name, back-quoted. Only plain identifiers are accepted (no quoting games):
 * names come from configuration, and a bad one should stop start-up with a clear message.
 */
export function sqlIdentifier(name: string): string {
  if (!IDENTIFIER.test(name)) {
    throw new RangeError(`invalid ClickHouse identifier ${JSON.stringify(name)}: expected letters, digits and _ (not first), at most 63 characters`);
  }
  return `\`${name}\``;
}
