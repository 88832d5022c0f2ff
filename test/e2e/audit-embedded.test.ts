/**
 * `audit verify`, `replay`, `tail`, `export` and `retention` against the embedded mode's SQLite
 * store, through the CLI as a user runs it, while the gateway runs; then a row edited in the
 * SQLite file is found by verify. The replay API works in the embedded mode too.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { freePort } from '../harness/services.js';
import { REPO_ROOT, runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from '../support/portcullis-process.js';
import { edgeRequest } from '../support/gateway-https.js';
import { eventually } from '../support/eventually.js';

/** The fields of an exported OCSF API Activity record that these tests read. */
interface OcsfApiActivity {
  class_uid: number;
  category_uid: number;
  type_uid: number;
  activity_id: number;
  status: string;
  status_id: number;
  status_code: string;
  metadata: { correlation_uid: string };
  unmapped: { decision: { effect: string } };
  actor: { user: { name: string } };
  resources: unknown;
}

describe('audit commands on the embedded store', { timeout: 300_000 }, () => {
  const dir = tempDir('audit-embedded');
  let gateway: PortcullisProcess;
  let config = '';
  let edgeUrl = '';
  let apiUrl = '';
  let caPem = '';
  const tokens: Record<string, string> = {};
  const ids: { pods: string; secrets: string; denied: string } = { pods: '', secrets: '', denied: '' };

  const cli = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => runPortcullis([...args, '--config', config]);

  before(async () => {
    const [port, apiPort] = [await freePort(), await freePort()];
    config = writeConfig(dir, 'portcullis.yaml', {
      node: { id: 'embedded-1', stateDir: join(dir, 'state') },
      edge: { listen: { host: '127.0.0.1', port } },
      identity: {
        devIssuer: {
          enabled: true,
          clients: [
            { id: 'ci-bot', secret: 'ci-bot-secret-123', subject: 'ci-bot', groups: ['bots'] },
            { id: 'auditor', secret: 'auditor-secret-123', subject: 'sec-team', groups: ['auditors'] },
          ],
        },
      },
      policy: { file: join(REPO_ROOT, 'examples', 'policy.yaml') },
      audit: { retention: '400d', listen: { host: '127.0.0.1', port: apiPort }, auditorGroups: ['auditors'] },
      // Not the default 8444: another embedded test may hold it at the same time.
      approval: { listen: { host: '127.0.0.1', port: await freePort() } },
    });
    gateway = startPortcullis(['start', '--config', config]);
    await gateway.waitFor(/Stop with Ctrl-C/, 60_000);
    edgeUrl = `https://127.0.0.1:${port}`;
    apiUrl = `https://127.0.0.1:${apiPort}`;
    caPem = readFileSync(join(dir, 'state', 'tls', 'ca.pem'), 'utf8');
    for (const client of ['ci-bot', 'auditor']) {
      const t = await cli('token', '--client', client);
      assert.equal(t.code, 0, t.stderr);
      tokens[client] = t.stdout.trim();
    }
    const get = async (path: string): Promise<string> => {
      const r = await edgeRequest(`${edgeUrl}${path}`, { ca: caPem, headers: { authorization: `Bearer ${tokens['ci-bot']}` } });
      return String(r.headers['audit-id']);
    };
    // A first request carries the token's one identity.authenticated event, so the requests below have 3 events each.
    await get('/k8s/sandbox/version');
    // Concurrent requests: the chain order is the order the edge handled them.
    [ids.pods, ids.secrets, ids.denied] = await Promise.all([
      get('/k8s/sandbox/api/v1/namespaces/default/pods'),
      get('/k8s/sandbox/api/v1/namespaces/default/secrets'),
      get('/k8s/sandbox/api/v1/namespaces/default/pods/x/exec?command=sh'),
    ]);
    for (let i = 0; i < 10; i++) await get('/k8s/sandbox/api/v1/namespaces/default/configmaps');
  });

  after(async () => {
    await gateway?.stop();
  });

  test('verify: the untouched embedded log passes', async () => {
    // Completions are appended after the responses: wait for all 14 × 3 events + identity.authenticated,
    // and the policy role's policy.activated (its own chain).
    const r = await eventually('every completion stored', async () => {
      const v = await cli('audit', 'verify');
      // Each verify is an evidence.read of its own (a one-event segment): the edge's chain is the one counted.
      return v.code === 0 && /^OK — /m.test(v.stdout) && /: seq 1\.\.43, 43 events,/.test(v.stdout) ? v : undefined;
    });
    assert.match(r.stdout, /chain embedded-1\/\S+: seq 1\.\.43, 43 events, head [0-9a-f]{64}/);
    assert.match(r.stdout, /chain embedded-1\/\S+: seq 1\.\.1, 1 events, head [0-9a-f]{64}/);
  });

  test('replay prints the request timeline; --json is what the replay API returns', async () => {
    const r = await cli('audit', 'replay', ids.pods);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, new RegExp(`^request ${ids.pods}: 3 events from `));
    assert.match(lines[1]!, /^\+0\.000s {2}\S+ {2}request\.received .*ci-bot {2}list pods default/);
    assert.match(lines[2]!, /^\+\d+\.\d{3}s .*request\.decided .*allow \(rule bots-read\)/);
    assert.match(lines[3]!, /^\+\d+\.\d{3}s .*request\.completed .*200/);
    const json = await cli('audit', 'replay', ids.pods, '--json');
    const api = await edgeRequest(`${apiUrl}/v1/audit/replay/${ids.pods}`, { ca: caPem, headers: { authorization: `Bearer ${tokens['auditor']}` } });
    assert.equal(api.status, 200, api.body);
    assert.deepEqual(JSON.parse(api.body), JSON.parse(json.stdout));
    const bot = await edgeRequest(`${apiUrl}/v1/audit/replay/${ids.pods}`, { ca: caPem, headers: { authorization: `Bearer ${tokens['ci-bot']}` } });
    assert.equal(bot.status, 403);
    const unknown = await cli('audit', 'replay', 'no-such-id');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no session or request "no-such-id"/);
  });

  test('tail and export (ndjson, ocsf) read the same store', async () => {
    const tail = await cli('audit', 'tail', '--json', '--request', ids.denied);
    assert.equal(tail.code, 0, tail.stderr);
    const tailed = tail.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      tailed.map((r) => r['type']),
      ['request.received', 'request.decided', 'request.completed'],
    );
    assert.equal(tailed[1]!['effect'], 'deny');

    const ndjson = await cli('audit', 'export', '--since', '1h', '--format', 'ndjson');
    assert.equal(ndjson.code, 0, ndjson.stderr);
    const rows = ndjson.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    // Every read of the log is on the record (evidence.read): the earlier verify, replays and tail, and this export itself, before its first row.
    const reads = rows.filter((r) => r['type'] === 'evidence.read');
    assert.equal(rows.length - reads.length, 44);
    assert.equal(rows.filter((r) => r['type'] === 'policy.activated').length, 1);
    assert.deepEqual(
      ['audit.verify', 'audit.replay', 'audit.tail', 'audit.export'].filter((action) => !reads.some((r) => r['reason'] === action)),
      [],
      JSON.stringify(reads.map((r) => r['reason'])),
    );
    const own = reads.find((r) => r['reason'] === 'audit.export')!;
    assert.match(String(own['subject']), /^os:.+@/);
    assert.match(String(own['decision_message']), /^audit\.export via cli: \{"sinceMs":\d+,"format":"ndjson"\} \(streamed\)$/);
    assert.ok(rows.every((r) => typeof r['hash'] === 'string' && r['hash'].length === 64 && typeof r['chain_seq'] === 'number'));

    const ocsf = await cli('audit', 'export', '--since', '1h', '--format', 'ocsf');
    assert.equal(ocsf.code, 0, ocsf.stderr);
    const records = ocsf.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as OcsfApiActivity);
    assert.equal(records.length, 14, 'one API Activity per request');
    assert.ok(records.every((r) => r['class_uid'] === 6003 && r['category_uid'] === 6 && r['type_uid'] === 600300 + r['activity_id']));
    const denied = records.find((r) => r['metadata']['correlation_uid'] === ids.denied)!;
    assert.equal(denied['status'], 'Failure');
    assert.equal(denied['unmapped']['decision']['effect'], 'deny');
    assert.equal(denied['actor']['user']['name'], 'ci-bot');
    const secrets = records.find((r) => r['metadata']['correlation_uid'] === ids.secrets)!;
    assert.deepEqual([secrets['activity_id'], secrets['status_id'], secrets['status_code']], [2, 1, '200']);
    assert.deepEqual(secrets['resources'], [{ type: 'secrets', namespace: 'default' }]);

    const bad = await cli('audit', 'export', '--since', 'yesterday');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--since: expected a duration/);
  });

  test('retention --dry-run shows the plan and drops nothing', async () => {
    const r = await cli('audit', 'retention', '--dry-run');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /nothing to drop: no month lies entirely before/);
  });

  test('verify finds a row edited in the SQLite file, naming the event and the values', async () => {
    const db = new Database(join(dir, 'state', 'audit.db'));
    db.pragma('busy_timeout = 5000');
    db.prepare(`UPDATE audit_events SET effect = 'allow', rule_id = 'bots-read' WHERE correlation_id = ? AND type = 'request.decided'`).run(ids.denied);
    db.close();
    const r = await cli('audit', 'verify');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^edited: event \S+ \(request\.decided, chain embedded-1\/\S+ seq \d+\): column effect is "allow", the signed event says "deny"/m);
    // The 43 request events in the edge's chain, the policy role's policy.activated (its own chain),
    // plus one evidence.read per earlier CLI read, each in a segment of its own.
    const counted = /FAILED: 1 problem — (\d+) events in (\d+) chains checked/.exec(r.stderr);
    assert.ok(counted !== null, r.stderr);
    assert.equal(Number(counted[1]) - 44, Number(counted[2]) - 2, 'one event per read segment');
    assert.match(r.stderr, /seq 1\.\.43, 43 events/);
    // As data, the report goes to stdout (for jq); the exit code still says it failed.
    const json = await cli('audit', 'verify', '-o', 'json');
    assert.equal(json.code, 1);
    const report = JSON.parse(json.stdout) as { findings: { kind: string }[]; eventsChecked: number };
    assert.equal(report.findings.length, 1);
    assert.equal(report.eventsChecked, Number(counted[1]) + 1, 'the previous verify is on the record too');
  });
});
