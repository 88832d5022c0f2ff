/**
 * deploy/Dockerfile, checked structurally (Docker cannot run on the development machines):
 * multi-stage, pinned base, production dependencies only, non-root, and everything the runtime
 * stage copies is enough for the CLI to load — every module the compiled CLI reaches is in the
 * copied dist/ directories, and every package it imports is a production dependency — and no test
 * or bench code reaches the image (the sandbox API server is product code in libs/kube-sandbox).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { REPO_ROOT } from '../support/portcullis-process.js';

interface Stage {
  name: string;
  from: string;
  lines: string[];
}

function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  // Join continuation lines, drop comments and blanks.
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of logical) {
    const [instr = '', ...rest] = line.split(/\s+/);
    const upper = instr.toUpperCase();
    if (upper === 'ARG' && stages.length === 0) {
      const [k, v = ''] = rest.join(' ').split('=');
      args.set(k!, v);
    } else if (upper === 'FROM') {
      const m = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
      assert.ok(m, `cannot read ${line}`);
      stages.push({ from: m[1]!, name: m[2] ?? String(stages.length), lines: [] });
    } else {
      assert.ok(stages.length > 0, `${line} before the first FROM`);
      stages.at(-1)!.lines.push(line);
    }
  }
  return { args, stages };
}

const dockerfile = readFileSync(join(REPO_ROOT, 'deploy/Dockerfile'), 'utf8');
const { args, stages } = parseDockerfile(dockerfile);
const runtime = stages.at(-1)!;

describe('deploy/Dockerfile', () => {
  test('is multi-stage with a pinned Node 20 base image', () => {
    assert.deepEqual(
      stages.map((s) => s.name),
      ['build', 'prod-deps', 'runtime'],
    );
    for (const s of stages) {
      const image = s.from.replace(/^\$\{(\w+)\}$/, (_m, k: string) => args.get(k) ?? '');
      assert.match(image, /^node:20\.\d+\.\d+-[a-z-]+$/, `stage ${s.name}: base ${image} pinned to a Node 20 patch release`);
    }
    assert.doesNotMatch(dockerfile, /:latest\b/);
  });

  test('the runtime stage runs non-root without npm, compilers or dev dependencies', () => {
    const user = runtime.lines.filter((l) => /^USER\s/i.test(l)).at(-1);
    assert.ok(user, 'a USER instruction');
    const uid = /^USER\s+(\d+)(?::(\d+))?$/i.exec(user);
    assert.ok(uid && Number(uid[1]) > 0, `runs as a numeric non-root uid (${user}): runAsNonRoot can verify it`);
    const run = runtime.lines.filter((l) => /^RUN\s/i.test(l)).join('\n');
    assert.doesNotMatch(run, /npm (ci|install)|apt-get install/, 'nothing is installed in the runtime stage');
    assert.match(run, /rm -rf [^\n]*\/npm\b/, 'npm is removed from the runtime image');

    const copies = runtime.lines.filter((l) => /^COPY\s/i.test(l));
    const modules = copies.find((l) => /\snode_modules\s|\.\/node_modules$/.test(l) || / \.\/node_modules/.test(l));
    assert.ok(modules !== undefined && /--from=prod-deps\b/.test(modules), `node_modules comes from prod-deps: ${modules}`);
    const prod = stages.find((s) => s.name === 'prod-deps')!;
    assert.ok(prod.lines.some((l) => /npm ci --omit=dev --ignore-scripts/.test(l) && /npm rebuild better-sqlite3/.test(l)));
    const build = stages.find((s) => s.name === 'build')!;
    assert.ok(
      build.lines.some((l) => /node scripts\/build\.mjs/.test(l)),
      'the build stage runs scripts/build.mjs (tsc, then the library links)',
    );
    assert.match(runtime.lines.find((l) => /^ENTRYPOINT/i.test(l)) ?? '', /"node", "\/app\/bin\/portcullis\.js"/);
    assert.ok(runtime.lines.some((l) => /^ENV NODE_ENV=production$/.test(l)));
  });

  test('what the runtime stage copies from the context exists, and .dockerignore keeps local builds out', () => {
    for (const l of runtime.lines.filter((x) => /^COPY\s/i.test(x) && !/--from=/.test(x))) {
      const parts = l
        .split(/\s+/)
        .slice(1)
        .filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) assert.ok(existsSync(join(REPO_ROOT, src)), `COPY source ${src} exists`);
    }
    const ignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim());
    for (const entry of ['node_modules', 'dist', '.portcullis', '.git']) assert.ok(ignore.includes(entry), `.dockerignore lists ${entry}`);
  });

  test('no test or bench code reaches the image: neither stage copies test/ or bench/, the runtime stage nothing under dist/test or dist/bench', () => {
    const copies = stages.flatMap((s) =>
      s.lines
        .filter((l) => /^COPY\s/i.test(l))
        .map((l) => ({
          stage: s.name,
          parts: l
            .split(/\s+/)
            .slice(1)
            .filter((p) => !p.startsWith('--')),
        })),
    );
    for (const { stage, parts } of copies) {
      for (const src of parts.slice(0, -1)) {
        const path = src.replace(/^\/src\//, '').replace(/^\.\//, '');
        assert.doesNotMatch(path, /^(dist\/)?(test|bench)(\/|$)/, `stage ${stage} copies ${src}: test and bench code stay out of the image`);
        assert.ok(!['.', 'dist', 'dist/'].includes(path), `stage ${stage} copies all of ${src}, test code included`);
      }
    }
    const ignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim());
    for (const entry of ['test', 'bench']) assert.ok(ignore.includes(entry), `.dockerignore lists ${entry}: the build context carries no ${entry} code`);
  });

  test('the copied dist/ directories hold every module the CLI loads, and its packages are production dependencies', () => {
    const copiedDist = runtime.lines.filter((l) => /^COPY --from=build \/src\/dist\//.test(l)).map((l) => l.split(/\s+/)[2]!.replace('/src/', ''));
    assert.ok(copiedDist.length > 0);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const seen = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const rel = relative(REPO_ROOT, file);
      assert.ok(
        copiedDist.some((d) => rel.startsWith(`${d}/`)),
        `${rel} is loaded by the CLI but not copied into the image`,
      );
      const src = readFileSync(file, 'utf8');
      for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\('([^']+)'\)|^import\s+'([^']+)'/gm)) {
        const spec = m[1] ?? m[2] ?? m[3]!;
        if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
        else if (spec.startsWith('@portcullis/')) visit(libraryEntry(spec));
        else if (!spec.startsWith('node:')) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    };
    // A library by name resolves through dist/node_modules/@portcullis/<lib> (which must be copied
    // too) to an entry point its package.json exports.
    const libraryEntry = (spec: string): string => {
      const [, lib = '', ...sub] = spec.split('/');
      const link = `dist/node_modules/@portcullis/${lib}`;
      assert.ok(
        copiedDist.some((d) => link.startsWith(`${d}/`)),
        `${spec} resolves through ${link}, which is not copied into the image`,
      );
      const pkgFile = join(REPO_ROOT, 'dist/libs', lib, 'package.json');
      const exportsMap = (JSON.parse(readFileSync(pkgFile, 'utf8')) as { exports: Record<string, string> }).exports;
      const target = exportsMap[sub.length === 0 ? '.' : `./${sub.join('/')}`];
      assert.ok(target !== undefined, `${spec} is not an entry point of ${pkgFile}`);
      return resolve(dirname(pkgFile), target);
    };
    visit(join(REPO_ROOT, 'dist/apps/cli/src/main.js'));
    assert.ok(seen.size > 50, `followed ${seen.size} modules`);
    const loaded = [...seen].map((f) => relative(REPO_ROOT, f));
    assert.deepEqual(
      loaded.filter((f) => /^dist\/(test|bench)\//.test(f)),
      [],
      'the CLI loads no test or bench module',
    );
    assert.ok(
      loaded.includes('dist/libs/kube-sandbox/src/kube-apiserver.js'),
      'the CLI reaches the embedded sandbox through dist/libs (@portcullis/kube-sandbox)',
    );
    for (const p of packages) assert.ok(p in pkg.dependencies, `${p} is imported at run time, so it must be in dependencies (the image omits devDependencies)`);
  });
});
