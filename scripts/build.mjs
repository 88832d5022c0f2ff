#!/usr/bin/env node
// `npm run build`: compiles the monorepo with tsc into dist/, then makes the libraries resolvable
// as packages at run time. Sources import each other as `@portcullis/<lib>` (tsconfig `paths`
// for the compiler); tsc leaves those specifiers as they are, so the compiled tree gets what Node
// resolves them with: dist/node_modules/@portcullis/<lib> → dist/libs/<lib>, whose package.json
// (copied from libs/<lib>/package.json) lists the lib's entry points — and nothing else is
// importable from outside the lib.
//
//   node scripts/build.mjs            build (exit code of tsc; the links are made either way)
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Links dist/node_modules/@portcullis/<lib> to each compiled lib and copies its package.json. */
export function linkLibraries(dist = join(root, 'dist')) {
  const scope = join(dist, 'node_modules', '@portcullis');
  mkdirSync(scope, { recursive: true });
  const libs = readdirSync(join(root, 'libs'), { withFileTypes: true }).filter(
    (e) => e.isDirectory() && existsSync(join(root, 'libs', e.name, 'package.json')),
  );
  const names = new Set(libs.map((e) => e.name));
  for (const stale of readdirSync(scope)) if (!names.has(stale)) rmSync(join(scope, stale), { force: true, recursive: true });
  for (const { name } of libs) {
    const compiled = join(dist, 'libs', name);
    mkdirSync(compiled, { recursive: true });
    copyFileSync(join(root, 'libs', name, 'package.json'), join(compiled, 'package.json'));
    const link = join(scope, name);
    const target = relative(scope, compiled);
    let current;
    try {
      current = readlinkSync(link);
    } catch {
      current = undefined;
    }
    if (current === target) continue;
    rmSync(link, { force: true, recursive: true });
    symlinkSync(target, link, 'dir');
  }
  return libs.length;
}

/** Runs tsc on tsconfig.build.json and links the libraries; returns tsc's exit status. */
export function build({ stdio = 'inherit' } = {}) {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio, cwd: root });
  linkLibraries();
  return result.status ?? 1;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = build();
}
