/**
 * How the CLI prints data: kubectl-style tables (aligned, headers, no trailing spaces, control
 * characters escaped), `--json` as an alias of `-o json`, approval ids checked before any request.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CliError, ExitCode } from '../../../apps/cli/src/cli-error.js';
import { OutputFormat, outputFormat, renderTable, renderTableRows } from '../../../apps/cli/src/output.js';
import { approvalsTable, parseApprovalId } from '../../../apps/cli/src/commands/approvals.command.js';

describe('renderTable', () => {
  test('columns as wide as their widest cell, three spaces apart, empty cells shown as -', () => {
    const { lines, widths } = renderTable(
      ['NAME', 'STATE', 'WHAT'],
      [
        ['a', 'pending', 'delete namespaces staging'],
        ['longer-name', '', 'get pods'],
      ],
    );
    assert.deepEqual(lines, [
      'NAME          STATE     WHAT', //
      'a             pending   delete namespaces staging',
      'longer-name   -         get pods',
    ]);
    assert.deepEqual(widths, [11, 7, 25]);
    assert.ok(
      lines.every((l) => l === l.trimEnd()),
      'no trailing spaces',
    );
  });

  test('control characters from clients cannot drive the terminal', () => {
    const { lines } = renderTable(['SUBJECT'], [['evil\x1b[2Jbot\n']]);
    assert.equal(lines[1], 'evil\\x1b[2Jbot\\x0a');
  });

  test('rows after the header keep its widths; a wider cell pushes only its own row', () => {
    const { widths } = renderTable(['A', 'B'], [['xx', 'y']]);
    assert.deepEqual(
      renderTableRows(
        ['A', 'B'],
        [
          ['z', 'y'],
          ['wider', 'y'],
        ],
        widths,
      ),
      ['z    y', 'wider   y'],
    );
  });
});

describe('outputFormat', () => {
  test('--json is -o json; -o alone is taken as it is', () => {
    assert.equal(outputFormat({ output: 'table', json: true }, false), OutputFormat.Json);
    assert.equal(outputFormat({ output: 'json', json: true }, true), OutputFormat.Json);
    assert.equal(outputFormat({ output: 'yaml' }, true), OutputFormat.Yaml);
    assert.equal(outputFormat({ output: 'table' }, false), OutputFormat.Table);
  });

  test('--json with another -o is a usage error', () => {
    assert.throws(
      () => outputFormat({ output: 'yaml', json: true }, true),
      (err: unknown) => err instanceof CliError && err.exitCode === ExitCode.Usage && /--json is -o json/.test(err.message),
    );
  });
});

describe('approvals', () => {
  test('an approval id is a UUID, in lower case; anything else is a usage error naming it', () => {
    assert.equal(parseApprovalId('0193C5E2-7D1A-7C3E-9A4B-2F6D8E1A0B3C'), '0193c5e2-7d1a-7c3e-9a4b-2f6d8e1a0b3c');
    for (const bad of ['abc', '0193c5e2', '0193c5e2-7d1a-7c3e-9a4b-2f6d8e1a0b3', '../approvals', '0193c5e2-7d1a-7c3e-9a4b-2f6d8e1a0b3g']) {
      assert.throws(
        () => parseApprovalId(bad),
        (err: unknown) => err instanceof CliError && err.exitCode === ExitCode.Usage && err.message.startsWith(`not an approval id: ${JSON.stringify(bad)}`),
        bad,
      );
    }
  });

  test('list: a table with the time left; wide adds the absolute times and the rest', () => {
    const now = Date.parse('2026-06-01T12:00:00Z');
    const approval = {
      id: '0193c5e2-7d1a-7c3e-9a4b-2f6d8e1a0b3c',
      state: 'pending',
      what: 'delete namespaces staging',
      rule: 'delete-namespace-needs-sre',
      policyVersion: 'v7',
      message: 'needs sre',
      requester: { subject: 'ci-bot', clientId: 'ci-bot' },
      requirement: { quorum: 2, approverGroups: ['sre', 'platform'] },
      requestedAt: '2026-06-01T11:59:00.000Z',
      expiresAt: '2026-06-01T12:04:12.000Z',
      approvals: [{}],
    };
    const table = approvalsTable([approval], false, now).trimEnd().split('\n');
    assert.match(table[0]!, /^ID +STATE +REQUESTER +REQUEST +RULE +APPROVALS +EXPIRES$/);
    assert.match(table[1]!, /^0193c5e2-7d1a-7c3e-9a4b-2f6d8e1a0b3c +pending +ci-bot +delete namespaces staging +delete-namespace-needs-sre +1\/2 +in 4m12s$/);
    const wide = approvalsTable([approval], true, now).trimEnd().split('\n');
    assert.match(wide[0]!, /EXPIRES +REQUESTED-AT +EXPIRES-AT +CLIENT +APPROVERS +POLICY +MESSAGE$/);
    assert.match(wide[1]!, /in 4m12s +2026-06-01T11:59:00.000Z +2026-06-01T12:04:12.000Z +ci-bot +sre,platform +v7 +needs sre$/);
    assert.match(approvalsTable([{ ...approval, expiresAt: '2026-06-01T11:00:00Z' }], false, now), /expired$/m);
    assert.equal(approvalsTable([], false, now), 'no pending approvals you can decide\n');
  });
});
