// Lint rules that catch what the compiler does not — typescript-eslint's type-checked recommended
// set (floating promises, misused async callbacks, unsafe any, thrown non-Errors, String() of
// objects, async functions that await nothing), non-exhaustive switches over unions, type-only
// imports written as value imports — and the monorepo's boundaries: a lib is used through its
// package name and entry points (libs/<lib>/package.json), never by a path into its src/; libs are
// plain TypeScript (no Nest); product code never imports test code.
import tseslint from 'typescript-eslint';

const intoAnotherLib = {
  regex: '(^|/)libs/[a-z0-9-]+/src(/|$)',
  message: 'import the lib by name (@portcullis/<lib>, or an entry point its package.json exports), not by a path into its src/',
};
const outOfThisLib = {
  regex: '^(\\.\\./){2,}[a-z0-9-]+/src(/|$)',
  message: 'another lib is imported by name (@portcullis/<lib>), not by a path into its src/',
};
const testCode = { regex: '^(\\.\\./)+test/', message: 'product code (apps/, libs/) never imports from test/' };
const nest = { regex: '^@nestjs/', message: 'libs are plain TypeScript: Nest wiring lives in apps/' };

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'libs/contracts/src/gen/**', '**/*.js', '**/*.mjs'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test registers tests synchronously; their returned promises are the runner's.
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false, attributes: false } }],
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unnecessary-type-assertion': 'error',
      // As in tsc's noUnused* checks, a leading _ marks a binding unused on purpose (an interface's parameter, a field left out of a rest copy).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // A let that a closure reads before its one assignment (a signal handler during start-up) must stay let: as const it would throw there.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      'no-restricted-imports': ['error', { patterns: [intoAnotherLib] }],
    },
  },
  {
    files: ['apps/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [intoAnotherLib, testCode] }] },
  },
  {
    // libs/contracts/src/gen is generated and nested: its own relative imports stay inside the lib.
    files: ['libs/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [intoAnotherLib, outOfThisLib, testCode, nest] }] },
  },
  {
    // The SQLite sink implements the promise-returning AuditSink port with synchronous calls: async turns their throws into the port's rejections.
    files: ['libs/audit-store/src/sqlite-audit-sink.ts'],
    rules: { '@typescript-eslint/require-await': 'off' },
  },
  {
    // The edge's hot path reads as named steps: a function that outgrows a screen is split into them.
    files: ['libs/gateway/**/*.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true }] },
  },
);
