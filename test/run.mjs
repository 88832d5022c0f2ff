#!/usr/bin/env node
// `npm test`: build (scripts/build.mjs), check for import cycles, start one shared nats-server (JetStream),
// redis-server and clickhouse-server (installing them with apt-get if missing and root), run every
// compiled test file with node's test runner, stop the servers, exit with the runner's code.
//
//   npm test                      everything
//   npm test -- unit/ policy      only files whose path contains "unit/" or "policy"
//
// Environment:
//   PORTCULLIS_TEST_SERVICES      auto (default: start servers unless every selected file is under
//                                 test/unit/), all, or none
//   PORTCULLIS_TEST_LINT           0 skips eslint and the prettier check (default: run them)
//   PORTCULLIS_TEST_CONCURRENCY   test files run in parallel (default 2)
//   PORTCULLIS_TEST_TIMEOUT_MS    per-test timeout, which node 20 also applies to each test file as a
//                                 whole (default 300000: the fault suite's file runs ~2 minutes)
//   PORTCULLIS_TEST_RUN_TIMEOUT_MS  whole-run timeout (default 1500000 = 25 min)
// The servers reach test files as PORTCULLIS_TEST_NATS_URL, PORTCULLIS_TEST_REDIS_URL and
// PORTCULLIS_TEST_CLICKHOUSE_URL (see test/harness/services.ts: sharedNatsUrl() and friends).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from '../scripts/build.mjs';
import { reportImportCycles } from './harness/check-import-cycles.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const env = process.env;
const failures = [];
const log = (message) => console.log(`\n[npm test] ${message}`);

// 1. Build. A type error fails the run, but the emitted output is still tested so one broken
//    file does not hide every other result.
{
  const started = Date.now();
  log('building (scripts/build.mjs: tsc -p tsconfig.build.json, then the @portcullis/* links)');
  const status = build();
  if (status !== 0) failures.push(`build failed (tsc exit ${status})`);
  log(`build took ${Date.now() - started} ms`);
}

// Compiled files whose source was deleted linger in dist/: only take output that has a source.
const sourceOf = (distFile) => {
  const rel = relative(join(root, 'dist'), distFile).replace(/\.js$/, '');
  return ['.ts', '.mts', '.tsx'].map((ext) => join(root, rel + ext)).find((file) => existsSync(file));
};

// 1b. Lint (the type-checked typescript-eslint preset and the monorepo's boundaries) and the format check.
if (env.PORTCULLIS_TEST_LINT !== '0') {
  const eslint = join(root, 'node_modules', 'eslint', 'bin', 'eslint.js');
  const started = Date.now();
  log('linting (eslint) and checking the format (prettier)');
  const lint = spawnSync(process.execPath, [eslint, '--max-warnings', '0', '.'], { stdio: 'inherit' });
  if (lint.status !== 0) failures.push(`lint failed (eslint exit ${lint.status ?? lint.signal})`);
  // One formatter, applied once: code that drifts from it fails here (npm run format fixes it).
  const prettier = join(root, 'node_modules', 'prettier', 'bin', 'prettier.cjs');
  const format = spawnSync(process.execPath, [prettier, '--check', '--log-level', 'warn', '.'], { stdio: 'inherit' });
  if (format.status !== 0) failures.push(`format check failed (prettier exit ${format.status ?? format.signal}; npm run format fixes it)`);
  log(`lint and format check took ${Date.now() - started} ms`);
}

// 2. Circular imports.
if (!reportImportCycles('dist', { include: (file) => sourceOf(file) !== undefined })) {
  failures.push('import cycles (see above)');
}

// 3. Test files: every test/**/*.test.ts, compiled, filtered by the path fragments given.
function listTests(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) listTests(path, out);
    else if (entry.name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}
const fragments = process.argv.slice(2).map((arg) => arg.replace(/\.(?:ts|js)$/, '').replace(/^(?:\.\/)?(?:dist\/)?/, ''));
const sources = listTests(join(root, 'test'))
  .map((file) => relative(root, file))
  .filter((file) => fragments.length === 0 || fragments.some((fragment) => file.includes(fragment)))
  .sort();
if (sources.length === 0) {
  console.error(`[npm test] no test files match ${JSON.stringify(process.argv.slice(2))}`);
  process.exit(1);
}
const files = [];
for (const source of sources) {
  const compiled = join('dist', source.replace(/\.ts$/, '.js'));
  if (existsSync(compiled)) files.push(compiled);
  else failures.push(`${source} was not compiled to ${compiled}`);
}

// 4. Shared servers.
const servicesMode = env['PORTCULLIS_TEST_SERVICES'] ?? 'auto';
if (!['auto', 'all', 'none'].includes(servicesMode)) {
  console.error(`[npm test] PORTCULLIS_TEST_SERVICES=${servicesMode}: expected auto, all or none`);
  process.exit(2);
}
const onlyUnit = sources.every((file) => file.startsWith(`test${sep}unit${sep}`));
const wantServices = servicesMode === 'all' || (servicesMode === 'auto' && !onlyUnit);
const childEnv = { ...env };
let services = [];
if (wantServices) {
  const harness = join(root, 'dist', 'test', 'harness', 'services.js');
  if (!existsSync(harness)) {
    console.error(`[npm test] ${harness} is missing: the build did not emit the test harness`);
    process.exit(1);
  }
  const { TEST_ENV, ensureBinaries, startClickHouse, startNats, startRedis } = await import(pathToFileURL(harness).href);
  const started = Date.now();
  await ensureBinaries(['nats-server', 'redis-server', 'clickhouse-server']);
  const [nats, redis, clickHouse] = await Promise.all([startNats({ jetstream: true }), startRedis(), startClickHouse()]);
  services = [nats, redis, clickHouse];
  childEnv[TEST_ENV.natsUrl] = nats.url;
  childEnv[TEST_ENV.redisUrl] = redis.url;
  childEnv[TEST_ENV.clickHouseUrl] = clickHouse.httpUrl;
  log(
    `servers up in ${Date.now() - started} ms: nats ${nats.url} (${nats.startMs} ms), ` +
      `redis ${redis.url} (${redis.startMs} ms), clickhouse ${clickHouse.httpUrl} (${clickHouse.startMs} ms)`,
  );
} else {
  log(`not starting servers (PORTCULLIS_TEST_SERVICES=${servicesMode}${onlyUnit ? ', unit tests only' : ''})`);
}

// 5. Run. Spec output for people; a TAP copy gives the "# pass N" summary printed at the end.
const tapDir = mkdtempSync(join(tmpdir(), 'portcullis-test-run-'));
const tapFile = join(tapDir, 'report.tap');
const concurrency = env['PORTCULLIS_TEST_CONCURRENCY'] ?? '2';
const testTimeout = env['PORTCULLIS_TEST_TIMEOUT_MS'] ?? '300000';
const runTimeout = Number(env['PORTCULLIS_TEST_RUN_TIMEOUT_MS'] ?? 25 * 60_000);
log(`running ${files.length} test file(s), concurrency ${concurrency}`);
const runner = spawn(
  process.execPath,
  [
    '--enable-source-maps',
    '--test',
    `--test-concurrency=${concurrency}`,
    `--test-timeout=${testTimeout}`,
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tapFile}`,
    ...files,
  ],
  { stdio: 'inherit', env: childEnv },
);
const forward = (signal) => runner.kill(signal);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
let timedOut = false;
const watchdog = setTimeout(() => {
  timedOut = true;
  console.error(`[npm test] the run exceeded ${runTimeout} ms: stopping the test runner`);
  runner.kill('SIGTERM');
  setTimeout(() => runner.kill('SIGKILL'), 10_000).unref();
}, runTimeout);
const [code, signal] = await new Promise((resolveExit) => runner.once('exit', (c, s) => resolveExit([c, s])));
clearTimeout(watchdog);
process.removeListener('SIGINT', forward);
process.removeListener('SIGTERM', forward);

// 6. Clean up and summarise.
await Promise.all(services.map((service) => service.stop()));
const tap = existsSync(tapFile) ? readFileSync(tapFile, 'utf8') : '';
rmSync(tapDir, { recursive: true, force: true });
const summary = tap.split('\n').filter((line) => /^# (?:tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) /.test(line));
if (timedOut) failures.push(`run timed out after ${runTimeout} ms`);
if (code !== 0) failures.push(`test runner exited with ${signal ?? code}`);
console.log('');
for (const line of summary) console.log(line);
for (const failure of failures) console.log(`# npm test: ${failure}`);
process.exitCode = code !== 0 && code !== null ? code : failures.length > 0 ? 1 : 0;
