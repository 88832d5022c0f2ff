/**
 * Case-insensitive glob patterns (`*` = any run of characters) for env-var names, ConfigMap keys
 * and field names, compiled once into one RegExp per list.
 */

/** Compiles a list of globs into one anchored, case-insensitive RegExp (never matches when empty). */
export function compileNamePatterns(patterns: readonly string[]): RegExp {
  if (patterns.length === 0) return /(?!)/;
  const alternatives = patterns.map((p) => p.split('*').map(escapeRegExp).join('.*'));
  return new RegExp(`^(?:${alternatives.join('|')})$`, 'i');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
