/**
 * Issue 8's acceptance check, in cluster mode as separate processes: a steady load through an edge
 * while the audit writer is SIGKILLed mid-stream and ClickHouse is stopped for a while. Afterwards
 * every request the upstream saw has its events in ClickHouse exactly once, no request reached the
 * upstream without its acked events, the hash chains verify, and the replay API answers auditors only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startKubeApiServer, type KubeApiServer } from '@portcullis/kube-sandbox';
import { freePort, startClickHouse, startNats, uniqueName, type TestClickHouse, type TestNats } from '../harness/services.js';
import { runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from '../support/portcullis-process.js';
import { edgeRequest } from '../support/gateway-https.js';
import { eventually } from '../support/eventually.js';

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: durability, version: "d1" }
rules:
  - id: no-secrets
    match: { resources: [secrets] }
    effect: deny
  - id: bots-read
    match: { groups: [bots], verbs: [get, list] }
    effect: allow
`;

const AUDIT_ID_TO_UPSTREAM = 'impersonate-extra-portcullis.dev%2faudit-id';

interface Sent {
  status: number;
  auditId: string;
}

describe('audit durability: writer SIGKILLed and ClickHouse stopped under load', { timeout: 600_000 }, () => {
  let nats: TestNats;
  let clickhouse: TestClickHouse;
  let fixture: KubeApiServer;
  const database = uniqueName('durable');
  const dir = tempDir('durability');
  const procs: PortcullisProcess[] = [];
  let writer: PortcullisProcess;
  let roleConfig = '';
  let edgeUrl = '';
  let apiUrl = '';
  let caPem = '';
  const tokens: Record<string, string> = {};
  const sent: Sent[] = [];

  const ch = async <T>(sql: string): Promise<T[]> => {
    const text = await clickhouse.query(`${sql} FORMAT JSON`);
    return (JSON.parse(text) as { data: T[] }).data;
  };
  const chCount = async (sql: string): Promise<number> => Number((await ch<{ n: string | number }>(sql))[0]?.n ?? 0);

  /** `workers` loops sending requests (1 in 5 to a denied resource) until `done()` says stop. */
  const load = async (workers: number, done: () => boolean): Promise<void> => {
    let i = 0;
    await Promise.all(
      Array.from({ length: workers }, async () => {
        while (!done()) {
          const n = i++;
          const path = n % 5 === 0 ? '/k8s/prod/api/v1/namespaces/default/secrets' : '/k8s/prod/api/v1/namespaces/default/pods';
          const r = await edgeRequest(`${edgeUrl}${path}`, { ca: caPem, headers: { authorization: `Bearer ${tokens['ci-bot']}` } });
          sent.push({ status: r.status, auditId: String(r.headers['audit-id']) });
        }
      }),
    );
  };
  const startWriter = async (): Promise<PortcullisProcess> => {
    const p = startPortcullis(['serve', 'audit', '--config', roleConfig]);
    procs.push(p);
    await p.waitFor(/"ready":true/, 60_000);
    return p;
  };

  before(async () => {
    [nats, clickhouse, fixture] = await Promise.all([startNats({ jetstream: true }), startClickHouse(), startKubeApiServer({ requestLog: { max: 100_000 } })]);
    const tokenFile = join(dir, 'upstream-token');
    const caFile = join(dir, 'upstream-ca.pem');
    writeFileSync(tokenFile, fixture.token, { mode: 0o600 });
    writeFileSync(caFile, fixture.caPem);
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(policyFile, POLICY);
    const [edgePort, apiPort] = [await freePort(), await freePort()];
    const base = (id: string): Record<string, unknown> => ({
      node: { id, stateDir: join(dir, 'state') },
      edge: { listen: { host: '127.0.0.1', port: edgePort }, decisionTimeout: '2s', auditAckTimeout: '2s' },
      bus: { mode: 'nats', nats: { servers: [nats.url] } },
      identity: {
        devIssuer: {
          enabled: true,
          issuerUrl: `https://127.0.0.1:${edgePort}/oidc/dev`,
          clients: [
            { id: 'ci-bot', secret: 'ci-bot-secret-123', subject: 'ci-bot', groups: ['bots'] },
            { id: 'auditor', secret: 'auditor-secret-123', subject: 'sec-team', groups: ['auditors'] },
          ],
        },
      },
      connections: [{ name: 'prod', type: 'kubernetes', server: fixture.url, caFile, tokenFile }],
      policy: { file: policyFile },
      audit: {
        sink: 'clickhouse',
        clickhouse: { url: clickhouse.httpUrl, database, batchSize: 200, flushInterval: '100ms' },
        listen: { host: '127.0.0.1', port: apiPort },
        auditorGroups: ['auditors'],
      },
    });
    const edgeConfig = writeConfig(dir, 'edge.yaml', base('edge-1'));
    roleConfig = writeConfig(dir, 'roles.yaml', base('roles-1'));
    const policy = startPortcullis(['serve', 'policy', '--config', roleConfig]);
    procs.push(policy);
    await policy.waitFor(/"ready":true/, 60_000);
    writer = await startWriter();
    const edge = startPortcullis(['serve', 'edge', '--config', edgeConfig]);
    procs.push(edge);
    edgeUrl = (JSON.parse(await edge.waitFor(/"ready":true/, 60_000)) as { url: string }).url;
    apiUrl = `https://127.0.0.1:${apiPort}`;
    caPem = readFileSync(join(dir, 'state', 'tls', 'ca.pem'), 'utf8');
    for (const client of ['ci-bot', 'auditor']) {
      const t = await runPortcullis(['token', '--client', client, '--config', edgeConfig]);
      assert.equal(t.code, 0, t.stderr);
      tokens[client] = t.stdout.trim();
    }
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await fixture?.close();
    await Promise.all([nats?.stop(), clickhouse?.stop()]);
  });

  test('every forwarded request has its events in ClickHouse exactly once; nothing reached the upstream unrecorded', async (t) => {
    // Request events only: each token's first use adds one identity.authenticated event besides.
    const total = (): Promise<number> => chCount(`SELECT count() AS n FROM ${database}.audit_events FINAL WHERE type LIKE 'request.%'`);
    let stop = false;
    const running = load(6, () => stop);
    try {
      // Phase 1: the writer is inserting under load — kill it without warning.
      await eventually('the writer to be storing events', async () => ((await total()) >= 300 ? true : undefined), 60_000);
      await writer.kill();
      const atKill = sent.length;
      await eventually('200 more requests with no writer', () => (sent.length >= atKill + 200 ? true : undefined), 60_000);
      writer = await startWriter();
      const resumed = await total();
      await eventually('the new writer to catch up', async () => ((await total()) > resumed ? true : undefined), 60_000);

      // Phase 2: ClickHouse away while requests keep coming (JetStream holds the events).
      await clickhouse.stop();
      const atStop = sent.length;
      await eventually('300 requests while ClickHouse is down', () => (sent.length >= atStop + 300 ? true : undefined), 60_000);
      await clickhouse.restart();
    } finally {
      stop = true;
      await running;
    }

    assert.ok(sent.length >= 700, `load ran (${sent.length} requests)`);
    assert.deepEqual([...new Set(sent.map((s) => s.status))].sort(), [200, 403], 'JetStream acked throughout: no 503');
    const expectedEvents = sent.length * 3; // received, decided, completed for every request
    await eventually(`all ${expectedEvents} events in ClickHouse`, async () => ((await total()) === expectedEvents ? true : undefined), 120_000);

    // Exactly once: each event id, and each (request, type), once in every query.
    assert.equal(await chCount(`SELECT uniqExact(event_id) AS n FROM ${database}.audit_events FINAL WHERE type LIKE 'request.%'`), expectedEvents);
    const identityEvents = await chCount(`SELECT count() AS n FROM ${database}.audit_events FINAL WHERE type = 'identity.authenticated'`);
    assert.ok(identityEvents >= 1, "the token's first uses are on the record as identity.authenticated");
    assert.deepEqual(
      await ch(`SELECT correlation_id, type, count() AS c FROM ${database}.audit_events FINAL GROUP BY correlation_id, type HAVING c != 1 LIMIT 5`),
      [],
    );
    const stored = new Set(
      (await ch<{ correlation_id: string }>(`SELECT DISTINCT correlation_id FROM ${database}.audit_events FINAL WHERE type = 'request.completed'`)).map(
        (r) => r.correlation_id,
      ),
    );
    assert.equal(stored.size, sent.length);
    for (const s of sent) assert.ok(stored.has(s.auditId), `request ${s.auditId} has its events`);

    // What reached the upstream: exactly the allowed requests, each recorded as received + decided (allow).
    const upstreamIds = fixture.requests.map((r) => String(r.headers[AUDIT_ID_TO_UPSTREAM] ?? ''));
    const allowed = sent.filter((s) => s.status === 200).map((s) => s.auditId);
    assert.deepEqual([...upstreamIds].sort(), [...allowed].sort(), 'the fixture saw exactly the allowed requests, once each');
    const decidedAllow = new Set(
      (
        await ch<{ correlation_id: string }>(`SELECT correlation_id FROM ${database}.audit_events FINAL WHERE type = 'request.decided' AND effect = 'allow'`)
      ).map((r) => r.correlation_id),
    );
    const received = new Set(
      (await ch<{ correlation_id: string }>(`SELECT correlation_id FROM ${database}.audit_events FINAL WHERE type = 'request.received'`)).map(
        (r) => r.correlation_id,
      ),
    );
    for (const id of upstreamIds) {
      assert.ok(received.has(id) && decidedAllow.has(id), `forwarded request ${id} has its acked received and allow events`);
    }
    const physical = await chCount(`SELECT count() AS n FROM ${database}.audit_events`);
    assert.ok(physical >= expectedEvents + identityEvents, 'physical rows include any redelivered copies');
    t.diagnostic(
      `${sent.length} requests, ${expectedEvents} events; ${physical - expectedEvents - identityEvents} redelivered copies stored physically and hidden by FINAL`,
    );

    // The hash chains are intact through the kill and the outage.
    const verify = await runPortcullis(['audit', 'verify', '--config', roleConfig]);
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /^OK — \d+ events in \d+ chains? checked$/m);
    // The edge's chain holds every request event; other segments are reads of the log (evidence.read).
    const n = expectedEvents + identityEvents;
    assert.match(verify.stdout, new RegExp(`chain edge-1/\\d{4}-\\d{2}-\\d{2}T[\\d:.]+Z/[0-9a-f]{8}: seq 1\\.\\.${n}, ${n} events,`));
  });

  test('the replay API: 401 without a token, 403 outside the auditor groups, the timeline for auditors (same as the CLI)', async () => {
    const id = sent.find((s) => s.status === 200)!.auditId;
    const anonymous = await edgeRequest(`${apiUrl}/v1/audit/replay/${id}`, { ca: caPem });
    assert.equal(anonymous.status, 401);
    assert.match(String(anonymous.headers['www-authenticate']), /Bearer/);
    const forged = await edgeRequest(`${apiUrl}/v1/audit/replay/${id}`, {
      ca: caPem,
      headers: { authorization: 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' },
    });
    assert.equal(forged.status, 401);
    const bot = await edgeRequest(`${apiUrl}/v1/audit/replay/${id}`, { ca: caPem, headers: { authorization: `Bearer ${tokens['ci-bot']}` } });
    assert.equal(bot.status, 403);
    assert.doesNotMatch(bot.body, new RegExp(id), 'a refused caller learns nothing about the request');
    const auditor = await edgeRequest(`${apiUrl}/v1/audit/replay/${id}`, { ca: caPem, headers: { authorization: `Bearer ${tokens['auditor']}` } });
    assert.equal(auditor.status, 200, auditor.body);
    const timeline = JSON.parse(auditor.body) as { kind: string; events: { type: string; offsetMs: number; correlationId: string }[] };
    assert.equal(timeline.kind, 'request');
    assert.deepEqual(
      timeline.events.map((e) => e.type).filter((t) => t.startsWith('request.')),
      ['request.received', 'request.decided', 'request.completed'],
    );
    assert.ok(timeline.events.every((e) => e.correlationId === id && e.offsetMs >= 0));
    const cli = await runPortcullis(['audit', 'replay', id, '--json', '--config', roleConfig]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.deepEqual(JSON.parse(cli.stdout), timeline);
    const missing = await edgeRequest(`${apiUrl}/v1/audit/replay/no-such-session`, { ca: caPem, headers: { authorization: `Bearer ${tokens['auditor']}` } });
    assert.equal(missing.status, 404);
  });
});
