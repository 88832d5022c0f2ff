/**
 * nest-cli.json names what exists: every application's entry file (`sourceRoot/entryFile.ts`),
 * every library's source root, and every lib under libs/ as a library project.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/portcullis-process.js';

interface NestProject {
  readonly type: 'application' | 'library';
  readonly root: string;
  readonly sourceRoot: string;
  readonly entryFile?: string;
}

const nestCli = JSON.parse(readFileSync(join(REPO_ROOT, 'nest-cli.json'), 'utf8')) as { projects: Record<string, NestProject> };
const projects = Object.entries(nestCli.projects);

describe('nest-cli.json', () => {
  for (const [name, p] of projects.filter(([, p]) => p.type === 'application')) {
    // A project whose directory is not in this tree yet (another change adds it) is skipped, not passed.
    test(
      `application ${name}: ${p.sourceRoot}/${p.entryFile ?? 'main'}.ts exists`,
      { skip: existsSync(join(REPO_ROOT, p.root)) ? false : `${p.root} does not exist in this tree` },
      () => {
        assert.ok(p.sourceRoot.startsWith(`${p.root}/`), `${name}: sourceRoot ${p.sourceRoot} is under root ${p.root}`);
        const entry = join(REPO_ROOT, p.sourceRoot, `${p.entryFile ?? 'main'}.ts`);
        assert.ok(existsSync(entry), `${name}: ${entry} does not exist`);
      },
    );
  }

  test('every library project has its source root, and every lib under libs/ is a library project', () => {
    const libraries = projects.filter(([, p]) => p.type === 'library');
    for (const [name, p] of libraries) assert.ok(existsSync(join(REPO_ROOT, p.sourceRoot, 'index.ts')), `${name}: ${p.sourceRoot}/index.ts`);
    const listed = new Set(libraries.map(([, p]) => p.root));
    const libs = readdirSync(join(REPO_ROOT, 'libs'), { withFileTypes: true }).filter(
      (e) => e.isDirectory() && existsSync(join(REPO_ROOT, 'libs', e.name, 'package.json')),
    );
    assert.deepEqual(
      libs.map((e) => `libs/${e.name}`).filter((root) => !listed.has(root)),
      [],
      'libs missing from nest-cli.json',
    );
  });
});
