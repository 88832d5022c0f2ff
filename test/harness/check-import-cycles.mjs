// Circular-import check over compiled output (STYLE.md 8). Plain JS so it runs without a build
// step of its own. Static relative imports and the libraries' package names (`@portcullis/<lib>`
// and its entry points, resolved through dist/libs/<lib>/package.json) count: `import type` is
// already erased in dist/, and a dynamic import() does not take part in module-evaluation order.
//
// Usage: node test/harness/check-import-cycles.mjs [dir=dist]   (exit 1 and print cycles if any)
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// `import x from './a.js'`, `import './a.js'`, `import {\n a \n} from "../b.js"`, `export * from '@portcullis/bus'`
const STATIC_SPECIFIER = /(?:^|[\n;}])[ \t]*(?:import|export)\b(?:[\s\w*{},$]*?\bfrom)?\s*(['"])(\.{1,2}\/[^'"\n]+|@portcullis\/[^'"\n]+)\1/g;

/** Relative and `@portcullis/…` specifiers imported statically by a module's source text. */
export function staticRelativeImports(source) {
  const found = [];
  for (const match of source.matchAll(STATIC_SPECIFIER)) found.push(match[2]);
  return found;
}

/** The file a specifier names: relative to the importer, or a lib entry point from its package.json exports. */
function resolveSpecifier(dir, importer, spec) {
  const bare = spec.split(/[?#]/)[0];
  if (!bare.startsWith('@portcullis/')) return resolve(dirname(importer), bare);
  const [, lib, ...sub] = bare.split('/');
  const pkgFile = join(resolve(dir), 'libs', lib, 'package.json');
  if (!existsSync(pkgFile)) return undefined;
  const target = JSON.parse(readFileSync(pkgFile, 'utf8')).exports?.[sub.length === 0 ? '.' : `./${sub.join('/')}`];
  return typeof target === 'string' ? resolve(dirname(pkgFile), target) : undefined;
}

function listJs(dir, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) listJs(path, out);
    else if (/\.(?:m?js)$/.test(entry.name)) out.push(path);
  }
  return out;
}

/**
 * Finds import cycles among the .js files under `dir`.
 * @param {string} dir
 * @param {{ include?: (file: string) => boolean }} [options] which files take part (e.g. skip stale output)
 * @returns {string[][]} each cycle as a list of paths relative to `dir`, first file repeated at the end
 */
export function findImportCycles(dir, options = {}) {
  const include = options.include ?? (() => true);
  const files = listJs(resolve(dir)).filter(include);
  const known = new Set(files);
  const edges = new Map();
  for (const file of files) {
    const targets = staticRelativeImports(readFileSync(file, 'utf8'))
      .map((spec) => resolveSpecifier(dir, file, spec))
      .filter((target) => target !== undefined && known.has(target));
    edges.set(file, [...new Set(targets)]);
  }

  // Iterative DFS; a back edge to a node on the stack closes a cycle.
  const state = new Map(); // file -> 1 (on stack) | 2 (done)
  const cycles = [];
  const seen = new Set();
  for (const start of files) {
    if (state.has(start)) continue;
    const stack = [{ file: start, next: 0 }];
    const path = [start];
    state.set(start, 1);
    while (stack.length > 0) {
      const frame = stack[stack.length - 1];
      const targets = edges.get(frame.file) ?? [];
      if (frame.next >= targets.length) {
        state.set(frame.file, 2);
        stack.pop();
        path.pop();
        continue;
      }
      const target = targets[frame.next++];
      const status = state.get(target);
      if (status === 1) {
        const cycle = path.slice(path.indexOf(target));
        // Same cycle found from another entry point: compare a rotation-independent key.
        const key = [...cycle].sort().join('\0');
        if (!seen.has(key)) {
          seen.add(key);
          cycles.push([...cycle, target].map((file) => relative(resolve(dir), file)));
        }
      } else if (status === undefined) {
        state.set(target, 1);
        stack.push({ file: target, next: 0 });
        path.push(target);
      }
    }
  }
  return cycles;
}

/** Prints cycles in a readable form; returns true when there were none. */
export function reportImportCycles(dir, options) {
  if (!existsSync(dir)) {
    console.error(`import-cycle check: ${dir} does not exist (build first)`);
    return false;
  }
  const cycles = findImportCycles(dir, options);
  if (cycles.length === 0) {
    console.log(`import-cycle check: no cycles in ${dir}/`);
    return true;
  }
  console.error(`import-cycle check: ${cycles.length} cycle(s) in ${dir}/:`);
  for (const cycle of cycles) console.error(`  ${cycle.join('\n    -> ')}`);
  return false;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = reportImportCycles(process.argv[2] ?? 'dist') ? 0 : 1;
}
