#!/usr/bin/env node
// The portcullis CLI: runs the compiled TypeScript (npm ci builds it through the prepare script).
// `portcullis credential` (the exec credential plugin kubectl runs on every call) loads only its own
// small entry point: no commander, no config, no Nest.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL(process.argv[2] === 'credential' ? '../dist/apps/cli/src/credential-plugin/main.js' : '../dist/apps/cli/src/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('portcullis: the project is not built yet: run "npm ci" (or "npm run build") in the repository first\n');
  process.exit(1);
}
await import(entry.href);
