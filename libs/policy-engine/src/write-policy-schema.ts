/**
 * Regenerates `libs/policy-engine/policy.schema.json` from the zod schema:
 * `npm run build && node dist/libs/policy-engine/src/write-policy-schema.js`.
 * A unit test fails when the committed file is out of date.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { policyJsonSchemaText } from './policy-schema.js';

const target = fileURLToPath(new URL('../../../../libs/policy-engine/policy.schema.json', import.meta.url));
writeFileSync(target, policyJsonSchemaText());
process.stdout.write(`wrote ${target}\n`);
