/**
 * A JSONPath subset for generic HTTP connections: `$`, `.name`, `['name']`, `.*`, `[*]`, `[3]`
 * and recursive descent `..name` / `..*`. Matched against the path of every value in a body.
 */
import { MaskingError, MaskingErrorCode } from './masking-error.js';

/** One step of a value's location: an object key or an array index. */
export type PathSegment = string | number;

type Step = { t: 'key'; name: string } | { t: 'any' } | { t: 'index'; n: number } | { t: 'desc' };

/** A compiled JSONPath expression. */
export class JsonPathRule {
  private readonly steps: readonly Step[];

  constructor(readonly source: string) {
    this.steps = parse(source);
  }

  /** True when `path` (root first) is selected by this expression. */
  matches(path: readonly PathSegment[]): boolean {
    return match(this.steps, 0, path, 0);
  }
}

function match(steps: readonly Step[], si: number, path: readonly PathSegment[], pi: number): boolean {
  if (si === steps.length) return pi === path.length;
  const step = steps[si]!;
  if (step.t === 'desc') {
    for (let p = pi; p < path.length; p++) if (match(steps, si + 1, path, p)) return true;
    return false;
  }
  if (pi >= path.length) return false;
  const seg = path[pi]!;
  const ok = step.t === 'any' || (step.t === 'key' && typeof seg === 'string' && seg === step.name) || (step.t === 'index' && seg === step.n);
  return ok && match(steps, si + 1, path, pi + 1);
}

function parse(source: string): Step[] {
  const fail = (why: string): never => {
    throw new MaskingError(MaskingErrorCode.InvalidProfile, `invalid JSON path ${JSON.stringify(source)}: ${why}`);
  };
  if (!source.startsWith('$')) fail('it must start with $');
  const steps: Step[] = [];
  let i = 1;
  while (i < source.length) {
    const c = source[i];
    if (c === '.') {
      if (source[i + 1] === '.') {
        steps.push({ t: 'desc' });
        i += 2;
      } else i += 1;
      if (source[i] === '*') {
        steps.push({ t: 'any' });
        i += 1;
        continue;
      }
      if (source[i] === '[') continue;
      const m = /^[A-Za-z0-9_$@-]+/.exec(source.slice(i));
      if (m === null) return fail(`expected a name at offset ${i}`);
      steps.push({ t: 'key', name: m[0] });
      i += m[0].length;
    } else if (c === '[') {
      const close = source.indexOf(']', i);
      if (close === -1) return fail(`unclosed [ at offset ${i}`);
      const inner = source.slice(i + 1, close).trim();
      if (inner === '*') steps.push({ t: 'any' });
      else if (/^[0-9]+$/.test(inner)) steps.push({ t: 'index', n: Number(inner) });
      else if (/^'[^']*'$|^"[^"]*"$/.test(inner)) steps.push({ t: 'key', name: inner.slice(1, -1) });
      else return fail(`unsupported selector [${inner}]`);
      i = close + 1;
    } else return fail(`unexpected ${JSON.stringify(c)} at offset ${i}`);
  }
  if (steps.length === 0) fail('it selects the whole body; mask fields, not the document');
  if (steps[steps.length - 1]!.t === 'desc') fail('it ends in ..');
  return steps;
}
