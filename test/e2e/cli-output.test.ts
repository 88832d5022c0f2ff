/**
 * What the CLI prints, against a running embedded gateway, as a user runs it: kubectl-style
 * tables (a header row, aligned columns) for `approvals list` and `audit tail`, `-o json|yaml`
 * (the same data; `--json` kept as an alias), and errors that name the thing — an unknown
 * approval id, a refused token, a refused decision, an approval service that does not answer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { freePort } from '../harness/services.js';
import { REPO_ROOT, runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from '../support/portcullis-process.js';
import { edgeRequest } from '../support/gateway-https.js';
import { eventually } from '../support/eventually.js';

/**
 * Checks a kubectl-style table: upper-case headers three or more spaces apart, and every row's
 * cells starting exactly under their header (each preceded by the three-space gap). Returns the
 * rows as header → cell.
 */
function alignedTable(text: string, headers: readonly string[]): Record<string, string>[] {
  const [header, ...rows] = text.trimEnd().split('\n');
  assert.ok(header !== undefined && rows.length > 0, `a header and rows:\n${text}`);
  const columns = [...header.matchAll(/\S+/g)].map((m) => ({ name: m[0], start: m.index }));
  assert.deepEqual(
    columns.map((c) => c.name),
    headers,
    `the header row:\n${header}`,
  );
  return rows.map((row) => {
    assert.equal(row, row.trimEnd(), 'no trailing spaces');
    for (const { name, start } of columns.slice(1)) {
      assert.equal(row.slice(start - 3, start), '   ', `column ${name} starts at ${start} after the gap in:\n${header}\n${row}`);
      assert.notEqual(row[start] ?? ' ', ' ', `column ${name} has a cell at ${start} in:\n${header}\n${row}`);
    }
    return Object.fromEntries(columns.map(({ name, start }, i) => [name, row.slice(start, columns[i + 1]?.start ?? row.length).trim()]));
  });
}

describe('CLI output against the embedded gateway', { timeout: 240_000 }, () => {
  const dir = tempDir('cli-output');
  let gateway: PortcullisProcess;
  let config = '';
  let caPem = '';
  let edgeUrl = '';
  let podsAuditId = '';
  let approvalId = '';
  let held: Promise<unknown> = Promise.resolve();

  const cli = (...args: string[]): ReturnType<typeof runPortcullis> => runPortcullis([...args, '--config', config]);

  before(async () => {
    const port = await freePort();
    config = writeConfig(dir, 'portcullis.yaml', {
      node: { id: 'cli-output-1', stateDir: join(dir, 'state') },
      edge: { listen: { host: '127.0.0.1', port } },
      identity: {
        devIssuer: {
          enabled: true,
          clients: [
            { id: 'ci-bot', secret: 'ci-bot-secret-123', subject: 'ci-bot', groups: ['bots'] },
            { id: 'sre-alice', secret: 'sre-alice-secret-123', subject: 'alice', groups: ['sre'] },
          ],
        },
      },
      policy: { file: join(REPO_ROOT, 'examples', 'policy.yaml') },
      approval: { listen: { host: '127.0.0.1', port: await freePort() } },
    });
    gateway = startPortcullis(['start', '--config', config]);
    await gateway.waitFor(/Stop with Ctrl-C/, 60_000);
    edgeUrl = `https://127.0.0.1:${port}`;
    caPem = readFileSync(join(dir, 'state', 'tls', 'ca.pem'), 'utf8');
    const t = await cli('token', '--client', 'ci-bot');
    assert.equal(t.code, 0, t.stderr);
    const auth = { authorization: `Bearer ${t.stdout.trim()}` };
    // The token's first request also carries its identity.authenticated event: the pods list below has exactly 3.
    await edgeRequest(`${edgeUrl}/k8s/sandbox/version`, { ca: caPem, headers: auth });
    const pods = await edgeRequest(`${edgeUrl}/k8s/sandbox/api/v1/namespaces/default/pods`, { ca: caPem, headers: auth });
    assert.equal(pods.status, 200, pods.body);
    podsAuditId = String(pods.headers['audit-id']);
    // Held for an approval (the example policy: deleting a namespace needs sre); released by the deny below.
    held = edgeRequest(`${edgeUrl}/k8s/sandbox/api/v1/namespaces/staging`, { method: 'DELETE', ca: caPem, headers: auth }).catch(() => undefined);
    // request.completed is stored after the response has gone.
    await eventually('the pods request completed in the audit log', async () => {
      const r = await cli('audit', 'tail', '-o', 'json', '--request', podsAuditId);
      return r.stdout.includes('"request.completed"') ? true : undefined;
    });
    approvalId = await eventually('the pending approval', async () => {
      const r = await cli('approvals', 'list', '-o', 'json', '--as-client', 'sre-alice');
      const list = (JSON.parse(r.stdout) as { approvals: { id: string; what: string }[] }).approvals;
      return list.find((a) => a.what === 'delete namespaces staging')?.id;
    });
  });

  after(async () => {
    await gateway?.stop();
    await held;
  });

  test('approvals list: an aligned table with a header row; wide adds columns', async () => {
    const [table, wide] = await Promise.all([
      cli('approvals', 'list', '--as-client', 'sre-alice'),
      cli('approvals', 'list', '-o', 'wide', '--as-client', 'sre-alice'),
    ]);
    assert.equal(table.code, 0, table.stderr);
    const rows = alignedTable(table.stdout, ['ID', 'STATE', 'REQUESTER', 'REQUEST', 'RULE', 'APPROVALS', 'EXPIRES']);
    const row = rows.find((r) => r['ID'] === approvalId);
    assert.ok(row, table.stdout);
    assert.deepEqual(
      { ...row, EXPIRES: undefined },
      {
        ID: approvalId,
        STATE: 'pending',
        REQUESTER: 'ci-bot',
        REQUEST: 'delete namespaces staging',
        RULE: 'delete-namespace-needs-sre',
        APPROVALS: '0/1',
        EXPIRES: undefined,
      },
    );
    assert.match(row['EXPIRES']!, /^in \d+(m\d+)?s$/);
    assert.equal(wide.code, 0, wide.stderr);
    const wideRow = alignedTable(wide.stdout, [
      'ID',
      'STATE',
      'REQUESTER',
      'REQUEST',
      'RULE',
      'APPROVALS',
      'EXPIRES',
      'REQUESTED-AT',
      'EXPIRES-AT',
      'CLIENT',
      'APPROVERS',
      'POLICY',
      'MESSAGE',
    ]).find((r) => r['ID'] === approvalId);
    assert.equal(wideRow?.['APPROVERS'], 'sre');
    assert.equal(wideRow?.['CLIENT'], 'ci-bot');
    assert.match(wideRow?.['EXPIRES-AT'] ?? '', /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    assert.equal(wideRow?.['MESSAGE'], 'deleting a namespace needs an approval from sre');
  });

  test('approvals list: -o json is what --json always printed; -o yaml is the same data', async () => {
    const [json, alias, yaml] = await Promise.all([
      cli('approvals', 'list', '-o', 'json', '--as-client', 'sre-alice'),
      cli('approvals', 'list', '--json', '--as-client', 'sre-alice'),
      cli('approvals', 'list', '-o', 'yaml', '--as-client', 'sre-alice'),
    ]);
    for (const r of [json, alias, yaml]) assert.equal(r.code, 0, r.stderr);
    assert.equal(json.stdout.trimEnd().split('\n').length, 1, 'one line of JSON, as before');
    const data = JSON.parse(json.stdout) as { approvals: { id: string; state: string }[] };
    assert.deepEqual(JSON.parse(alias.stdout), data);
    assert.deepEqual(parseYaml(yaml.stdout), data);
    assert.ok(data.approvals.some((a) => a.id === approvalId && a.state === 'pending'));
  });

  test('approvals approve: an unknown id is named (never the API routes); refusals say what and why', async () => {
    const unknown = randomUUID();
    const [missing, self, badToken] = await Promise.all([
      cli('approvals', 'approve', unknown, '--reason', 'x', '--as-client', 'sre-alice'),
      cli('approvals', 'approve', approvalId, '--reason', 'me', '--as-client', 'ci-bot'),
      cli('approvals', 'list', '--token', 'not-a-token'),
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, new RegExp(`^portcullis: no approval ${unknown} \\(or you may not see it\\)`, 'm'));
    assert.doesNotMatch(missing.stderr, /routes|GET \/approvals/);
    assert.equal(self.code, 1);
    assert.match(self.stderr, new RegExp(`^portcullis: approving ${approvalId} refused \\(403 \\w+\\): .*cannot decide it`, 'm'));
    assert.equal(badToken.code, 1);
    assert.match(
      badToken.stderr,
      /^portcullis: listing approvals refused: the approval service did not accept the token \(401\): .+; authenticate as an approver with --as-client ID/m,
    );
  });

  test('an approval service that does not answer: the URL and the config key that sets it', async () => {
    const [listenPort, publicPort] = [await freePort(), await freePort()];
    const viaListen = writeConfig(dir, 'listen.yaml', {
      node: { id: 'n', stateDir: join(dir, 'state') },
      approval: { listen: { host: '127.0.0.1', port: listenPort } },
    });
    const viaPublic = writeConfig(dir, 'public.yaml', {
      node: { id: 'n', stateDir: join(dir, 'state') },
      approval: { listen: { host: '127.0.0.1', port: listenPort }, publicUrl: `https://127.0.0.1:${publicPort}` },
    });
    const [listen, publicUrl] = await Promise.all([
      runPortcullis(['approvals', 'list', '--token', 't', '--config', viaListen]),
      runPortcullis(['approvals', 'approve', approvalId, '--token', 't', '--config', viaPublic]),
    ]);
    assert.equal(listen.code, 1);
    assert.ok(
      listen.stderr.includes(`cannot reach the approval service at https://127.0.0.1:${listenPort} (set by approval.listen in ${viaListen})`),
      listen.stderr,
    );
    assert.match(listen.stderr, /ECONNREFUSED/);
    assert.equal(publicUrl.code, 1);
    assert.ok(
      publicUrl.stderr.includes(`cannot reach the approval service at https://127.0.0.1:${publicPort} (set by approval.publicUrl in ${viaPublic})`),
      publicUrl.stderr,
    );
  });

  test('audit tail: an aligned table with a header row; wide adds columns', async () => {
    const [table, wide] = await Promise.all([cli('audit', 'tail'), cli('audit', 'tail', '-o', 'wide', '--request', podsAuditId)]);
    assert.equal(table.code, 0, table.stderr);
    const rows = alignedTable(table.stdout, ['TIME', 'TYPE', 'CONNECTION', 'SUBJECT', 'REQUEST', 'RESULT', 'AUDIT-ID']);
    const pods = rows.filter((r) => r['AUDIT-ID'] === podsAuditId);
    assert.deepEqual(
      pods.map((r) => r['TYPE']),
      ['request.received', 'request.decided', 'request.completed'],
    );
    assert.deepEqual(pods.map((r) => [r['CONNECTION'], r['SUBJECT'], r['REQUEST']])[0], ['sandbox', 'ci-bot', 'list pods default']);
    assert.equal(pods[1]!['RESULT'], 'allow (bots-read)');
    assert.equal(pods[2]!['RESULT'], '200');
    assert.ok(pods.every((r) => /^\d{4}-\d\d-\d\dT[\d:.]+Z$/.test(r['TIME']!)));
    assert.ok(
      rows.some((r) => r['TYPE'] === 'approval.requested'),
      'other event types line up in the same table',
    );
    assert.equal(wide.code, 0, wide.stderr);
    const completed = alignedTable(wide.stdout, [
      'TIME',
      'TYPE',
      'CONNECTION',
      'SUBJECT',
      'REQUEST',
      'RESULT',
      'AUDIT-ID',
      'CLIENT',
      'SOURCE',
      'BYTES-IN',
      'BYTES-OUT',
      'DURATION',
      'NODE',
      'DETAIL',
    ]).find((r) => r['TYPE'] === 'request.completed');
    assert.match(completed?.['DURATION'] ?? '', /^\d+ ms$/);
    assert.match(completed?.['BYTES-OUT'] ?? '', /^[\d.]+ k?B$/);
    assert.equal(completed?.['NODE'], 'cli-output-1');
    const none = await cli('audit', 'tail', '--request', 'no-such-request');
    assert.equal(none.code, 0, none.stderr);
    assert.equal(none.stdout, '', 'no table when there is nothing to show');
    assert.match(none.stderr, /^no audit events since \d{4}-\d\d-\d\dT[\d:.]+Z for request no-such-request$/m);
  });

  test('audit tail, replay, verify: -o json as before (--json), -o yaml the same data', async () => {
    const [json, alias, yaml] = await Promise.all([
      cli('audit', 'tail', '-o', 'json', '--request', podsAuditId),
      cli('audit', 'tail', '--json', '--request', podsAuditId),
      cli('audit', 'tail', '-o', 'yaml', '--request', podsAuditId),
    ]);
    for (const r of [json, alias, yaml]) assert.equal(r.code, 0, r.stderr);
    assert.equal(alias.stdout, json.stdout);
    const rows = json.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      rows.map((r) => r['type']),
      ['request.received', 'request.decided', 'request.completed'],
    );
    const docs = parseAllDocuments(yaml.stdout);
    assert.ok(Array.isArray(docs), 'a YAML stream');
    assert.deepEqual(
      docs.map((d) => d.toJSON() as unknown),
      rows,
    );

    const [replayJson, replayYaml, verifyJson, verifyYaml, verifyText] = await Promise.all([
      cli('audit', 'replay', podsAuditId, '-o', 'json'),
      cli('audit', 'replay', podsAuditId, '-o', 'yaml'),
      cli('audit', 'verify', '--request', podsAuditId, '-o', 'json'),
      cli('audit', 'verify', '--request', podsAuditId, '-o', 'yaml'),
      cli('audit', 'verify', '--since', '1h', '--until', 'now'),
    ]);
    for (const r of [replayJson, replayYaml, verifyJson, verifyYaml, verifyText]) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(parseYaml(replayYaml.stdout), JSON.parse(replayJson.stdout));
    assert.equal((JSON.parse(replayJson.stdout) as { events: unknown[] }).events.length, 3);
    for (const report of [JSON.parse(verifyJson.stdout), parseYaml(verifyYaml.stdout)] as { findings: unknown[]; eventsChecked: number }[]) {
      assert.deepEqual(report.findings, []);
      assert.ok(report.eventsChecked >= 3);
    }
    // The edge's chain, and one segment per earlier CLI read of the log (evidence.read).
    assert.match(verifyText.stdout, /^OK — \d+ events in \d+ chains? checked$/m);
  });

  test('token and kubeconfig: -o json and yaml', async () => {
    const [json, yaml, kc] = await Promise.all([
      cli('token', '--client', 'ci-bot', '--ttl', '1m30s', '-o', 'json'),
      cli('token', '--client', 'ci-bot', '-o', 'yaml'),
      cli('kubeconfig', '--connection', 'sandbox', '--client', 'ci-bot', '-o', 'json'),
    ]);
    for (const r of [json, yaml, kc]) assert.equal(r.code, 0, r.stderr);
    const token = JSON.parse(json.stdout) as { access_token: string; token_type: string; expires_in: number };
    assert.equal(token.token_type, 'Bearer');
    assert.equal(token.expires_in, 90, 'a compound --ttl');
    assert.match(token.access_token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.equal((parseYaml(yaml.stdout) as { token_type: string }).token_type, 'Bearer');
    const kubeconfig = JSON.parse(kc.stdout) as { clusters: { cluster: { server: string } }[]; users: { user: { exec: { args: string[] } } }[] };
    assert.equal(kubeconfig.clusters[0]!.cluster.server, `${edgeUrl}/k8s/sandbox`);
    // The exec plugin: `portcullis credential` for the development issuer's client.
    const args = kubeconfig.users[0]!.user.exec.args;
    assert.equal(args[1], 'credential');
    assert.equal(args[args.indexOf('--client') + 1], 'ci-bot');
  });

  test('approvals deny -o yaml: the decided approval; its retry gets the reason', async () => {
    const r = await cli('approvals', 'deny', approvalId.toUpperCase(), '--reason', 'not during the freeze', '--as-client', 'sre-alice', '-o', 'yaml');
    assert.equal(r.code, 0, r.stderr);
    const denied = parseYaml(r.stdout) as { id: string; state: string; denial: { subject: string; reason: string } };
    assert.equal(denied.id, approvalId, 'an id in capitals is the same approval');
    assert.equal(denied.state, 'denied');
    assert.deepEqual([denied.denial.subject, denied.denial.reason], ['alice', 'not during the freeze']);
    const again = await cli('approvals', 'deny', approvalId, '--reason', 'twice', '--as-client', 'sre-alice');
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`^portcullis: denying ${approvalId} refused \\(409 already_decided\\): `, 'm'));
  });
});
