/**
 * Entry point of `portcullis credential` (bin/portcullis.js loads this file, and nothing else of
 * the CLI, when its first argument is `credential`).
 */
import { runCredentialPlugin } from './plugin.js';

process.exitCode = await runCredentialPlugin(process.argv.slice(3));
