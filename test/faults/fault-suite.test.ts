/**
 * The fault suite (`npm run test:faults`): the cluster as separate processes — two edges, two
 * policy, two approval, two audit writers, NATS, Redis, ClickHouse and the API-server fixture —
 * under a steady mixed load (reads, writes, watches, held deletes approved through the REST API as
 * they come). One at a time: SIGKILL and restart an edge, a policy, an approval and an audit
 * process; stop NATS; flush Redis; stop ClickHouse. Afterwards it checks and prints: nothing
 * reached the upstream without an acked audit record, ClickHouse holds every event in the stream
 * exactly once, approvals survived unchanged, the edges answered 503 Status while NATS was down and
 * recovered within 5 s of it returning, and no process died except those the suite killed.
 *
 * Environment (defaults in brackets): PORTCULLIS_FAULTS_NATS_DOWN_S [10],
 * PORTCULLIS_FAULTS_CLICKHOUSE_DOWN_S [30], PORTCULLIS_FAULTS_WORKERS [4] load loops.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { Redis } from 'ioredis';
import { auditMessageEvents, Streams } from '@portcullis/contracts';
import { connectNats } from '@portcullis/bus';
import { silentLogger } from '@portcullis/common';
import { startClickHouse, uniqueName, type TestClickHouse } from '../harness/services.js';
import { approvalIdIn, startCluster, type Cluster } from '../support/cluster.js';
import { eventually } from '../support/eventually.js';
import type { PortcullisProcess } from '../support/portcullis-process.js';
import { ResultTable } from '../support/result-table.js';

const seconds = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? fallback);
  return Number.isFinite(v) && v >= 0 ? v : fallback;
};
const NATS_DOWN_MS = seconds('PORTCULLIS_FAULTS_NATS_DOWN_S', 10) * 1000;
const CLICKHOUSE_DOWN_MS = seconds('PORTCULLIS_FAULTS_CLICKHOUSE_DOWN_S', 30) * 1000;
const WORKERS = Math.max(1, Math.floor(seconds('PORTCULLIS_FAULTS_WORKERS', 4)));
const CLIENT_TIMEOUT_MS = 15_000;
const RECOVERY_LIMIT_MS = 5_000;
const AUDIT_ID_TO_UPSTREAM = 'impersonate-extra-portcullis.dev%2faudit-id';

const POLICY = `apiVersion: portcullis.dev/v1
kind: Policy
metadata: { name: fault-suite, version: "f1" }
rules:
  - id: discovery
    match: { verbs: [get], nonResourcePaths: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"] }
    effect: allow
  - id: delete-configmap-needs-sre
    match: { verbs: [delete], resources: [configmaps] }
    effect: require_approval
    approval: { approverGroups: [sre], quorum: 1, scope: once, wait: 10s, channel: "#approvals" }
  - id: delete-secret-needs-sre
    match: { verbs: [delete], resources: [secrets] }
    effect: require_approval
    approval: { approverGroups: [sre], quorum: 1, scope: once, wait: 1s, channel: "#approvals" }
  - id: read
    match: { verbs: [get, list, watch] }
    effect: allow
  - id: write-default
    match: { verbs: [create, update, patch], namespaces: [default] }
    effect: allow
`;

type Op = 'read' | 'write' | 'watch' | 'held';

/** One request of the load and what came of it. */
interface Outcome {
  readonly op: Op;
  readonly edge: number;
  readonly t0: number;
  readonly t1: number;
  /** HTTP status; 0 when no response came. */
  readonly status: number;
  /** `timeout`, a socket error code, or '' */
  readonly error: string;
  readonly auditId: string;
  /** The body was a Kubernetes Status object. */
  readonly isStatus: boolean;
  readonly path: string;
}

/** One request with its own connection and a client timeout; never throws. */
function send(c: Cluster, tokenValue: string, op: Op, edge: number, method: string, path: string, body?: string): Promise<Outcome> {
  const url = new URL(c.edges[edge]!);
  const t0 = Date.now();
  return new Promise((resolve) => {
    let settled = false;
    const done = (status: number, error: string, auditId: string, text: string): void => {
      if (settled) return;
      settled = true;
      resolve({ op, edge, t0, t1: Date.now(), status, error, auditId, isStatus: text.includes('"kind":"Status"'), path });
    };
    const req = httpsRequest(
      {
        hostname: url.hostname,
        port: Number(url.port),
        path: `/k8s/prod${path}`,
        method,
        ca: c.caPem,
        agent: false,
        headers: { authorization: `Bearer ${tokenValue}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => done(res.statusCode ?? 0, '', String(res.headers['audit-id'] ?? ''), Buffer.concat(chunks).toString('utf8')));
        res.on('error', (err: NodeJS.ErrnoException) => done(res.statusCode ?? 0, err.code ?? 'error', String(res.headers['audit-id'] ?? ''), ''));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      done(0, 'timeout', '', '');
    }, CLIENT_TIMEOUT_MS);
    req.on('close', () => clearTimeout(timer));
    req.on('error', (err: NodeJS.ErrnoException) => done(0, err.code ?? 'error', '', ''));
    req.end(body);
  });
}

describe('fault suite: components killed, NATS, Redis and ClickHouse lost under load', { timeout: 600_000 }, () => {
  const table = new ResultTable();
  const database = uniqueName('faults');
  const outcomes: Outcome[] = [];
  const killed = new Set<PortcullisProcess>();
  const approvedByLoop = new Set<string>();
  let approverErrors = 0;
  let clickhouse: TestClickHouse;
  let c: Cluster;
  let stop = false;
  let n = 0;

  const chCount = async (sql: string): Promise<number> => Number((await clickhouse.query(`${sql} FORMAT TSV`)).trim());

  before(async () => {
    clickhouse = await startClickHouse();
    c = await startCluster({
      pendingTtl: '30m',
      grantTtl: '30m',
      policy: POLICY,
      policies: 2,
      audit: { clickHouseUrl: clickhouse.httpUrl, database, writers: 2 },
    });
  });

  after(async () => {
    stop = true;
    await c?.stop();
    await clickhouse?.stop();
  });

  /** A load loop: reads, writes, watches and held deletes, alternating edges. */
  const worker = async (w: number): Promise<void> => {
    const botToken = await c.token('ci-bot');
    while (!stop) {
      const i = n++;
      const edge = (i + w) % 2;
      const kind = i % 10;
      let o: Outcome;
      if (kind <= 4) {
        o = await send(c, botToken, 'read', edge, 'GET', kind % 2 === 0 ? '/api/v1/namespaces/default/pods' : '/api/v1/namespaces/default/configmaps');
      } else if (kind <= 6) {
        o = await send(
          c,
          botToken,
          'write',
          edge,
          'POST',
          '/api/v1/namespaces/default/configmaps',
          JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `load-w-${i}` }, data: { i: String(i) } }),
        );
      } else if (kind === 7) {
        o = await send(c, botToken, 'watch', edge, 'GET', '/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=2');
      } else {
        c.putConfigMap('default', `load-d-${i}`);
        o = await send(c, botToken, 'held', edge, 'DELETE', `/api/v1/namespaces/default/configmaps/load-d-${i}`);
      }
      outcomes.push(o);
      // A refusal (a killed edge, a 503) comes back at once: keep the offered load steady rather than spin.
      if (o.status === 0 || o.status >= 500) await new Promise((r) => setTimeout(r, 100));
    }
  };

  /** Approves the load's held deletes through the approvals REST API as they appear. */
  const approver = async (): Promise<void> => {
    let i = 0;
    while (!stop) {
      const which = i++ % 2;
      try {
        const list = await c.api(which, 'GET', '/approvals', 'sre-alice');
        for (const a of (list.body['approvals'] as { id: string; what: string; state: string }[] | undefined) ?? []) {
          if (a.state !== 'pending' || !a.what.includes('load-d-') || approvedByLoop.has(a.id)) continue;
          const r = await c.api(which, 'POST', `/approvals/${a.id}/approve`, 'sre-alice', { reason: 'fault suite load' });
          if (r.status === 200) approvedByLoop.add(a.id);
        }
      } catch {
        approverErrors++;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  };

  /** Resolves once both edges have answered a 200 to the load after `since`. */
  const healthy = (what: string, since: number, timeoutMs = 45_000): Promise<true> =>
    eventually(
      `both edges serving again after ${what}`,
      () => ([0, 1].every((e) => outcomes.some((o) => o.edge === e && o.t0 >= since && o.status === 200)) ? true : undefined),
      timeoutMs,
    );

  const killAndRestart = async (name: string, role: string): Promise<number> => {
    const p = c.procs.get(name)!;
    killed.add(p);
    await p.kill();
    const t = Date.now();
    await c.start(name, role);
    return Date.now() - t;
  };

  const approvalStates = async (ids: readonly string[]): Promise<string[]> => {
    const states: string[] = [];
    for (const id of ids) {
      const r = await c.api(0, 'GET', `/approvals/${id}`, 'sre-alice');
      states.push(`${String(r.body['state'])}/${String(r.body['uses'])}`);
    }
    return states;
  };

  test('faults one at a time under load; every invariant holds; prints the table', async () => {
    const suiteStart = Date.now();
    // Sentinel approvals, decided before the faults: three pending, two granted and unused.
    const sentinels: string[] = [];
    for (const name of ['sentinel-p-1', 'sentinel-p-2', 'sentinel-p-3', 'sentinel-g-1', 'sentinel-g-2']) {
      c.fixture.store.put('secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: 'default' }, data: {} });
      const r = await c.raw('ci-bot', 0, 'DELETE', `/api/v1/namespaces/default/secrets/${name}`);
      sentinels.push(approvalIdIn(r.body));
    }
    for (const id of sentinels.slice(3)) assert.equal((await c.api(0, 'POST', `/approvals/${id}/approve`, 'sre-alice', { reason: 'sentinel' })).status, 200);
    const statesBefore = await approvalStates(sentinels);

    const loops = [...Array.from({ length: WORKERS }, (_, w) => worker(w)), approver()];
    const phases: { name: string; ms: number }[] = [];
    const phase = async (name: string, run: () => Promise<void>): Promise<void> => {
      const t = Date.now();
      await run();
      await healthy(name, Date.now());
      phases.push({ name, ms: Date.now() - t });
    };
    let natsStoppedAt = 0;
    let natsRestartAt = 0;
    const recovery: number[] = [];
    try {
      await healthy('start', suiteStart);
      await phase('edge-a SIGKILL + restart', async () => void (await killAndRestart('edge-a', 'edge')));
      await phase('policy SIGKILL + restart', async () => void (await killAndRestart('policy', 'policy')));
      await phase('approval-1 SIGKILL + restart', async () => void (await killAndRestart('approval-1', 'approval')));
      await phase('audit-1 SIGKILL + restart', async () => void (await killAndRestart('audit-1', 'audit')));
      await phase(`NATS stopped ${NATS_DOWN_MS / 1000} s`, async () => {
        await c.nats.stop();
        natsStoppedAt = Date.now();
        await new Promise((r) => setTimeout(r, NATS_DOWN_MS));
        natsRestartAt = Date.now();
        await c.nats.restart();
        const back = Date.now();
        const botToken = await c.token('ci-bot');
        // Probe each edge until it serves again; measured from the moment NATS answers (-1: not within a minute).
        await Promise.all(
          [0, 1].map(async (e) => {
            const served = await eventually(
              `edge ${e} to serve again after NATS came back`,
              async () => {
                const o = await send(c, botToken, 'read', e, 'GET', '/api/v1/namespaces/default/pods');
                return o.status === 200 ? o : undefined;
              },
              { timeoutMs: 60_000, intervalMs: 100 },
            ).catch(() => undefined);
            recovery[e] = served === undefined ? -1 : served.t1 - back;
          }),
        );
      });
      await phase('Redis FLUSHALL', async () => {
        const redis = new Redis(c.redis.url);
        await redis.flushall();
        await redis.quit();
      });
      await phase(`ClickHouse stopped ${CLICKHOUSE_DOWN_MS / 1000} s`, async () => {
        await clickhouse.stop();
        await new Promise((r) => setTimeout(r, CLICKHOUSE_DOWN_MS));
        await clickhouse.restart();
      });
    } finally {
      stop = true;
      await Promise.all(loops);
    }
    const loadEnd = Date.now();

    // 1. Load accounting.
    const by = (pred: (o: Outcome) => boolean): string => {
      const counts = new Map<string, number>();
      for (const o of outcomes.filter(pred)) {
        const k = o.status === 0 ? o.error : String(o.status);
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
      return [...counts]
        .sort()
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ');
    };
    for (const op of ['read', 'write', 'watch', 'held'] as const) {
      table.add(
        `load: ${op} responses by status`,
        'counted, none timed out',
        by((o) => o.op === op),
        !outcomes.some((o) => o.op === op && o.error === 'timeout'),
      );
    }
    const timeouts = outcomes.filter((o) => o.error === 'timeout').length;
    table.add('load: requests with no answer within the client timeout', `0 (client timeout ${CLIENT_TIMEOUT_MS / 1000} s)`, String(timeouts), timeouts === 0);
    for (const p of phases) table.add(`fault: ${p.name}`, 'both edges serving again', `after ${(p.ms / 1000).toFixed(1)} s`, true);

    // 2. NATS down: only 503 Status, never 200, and back within 5 s.
    const inOutage = outcomes.filter((o) => o.t0 >= natsStoppedAt && o.t1 <= natsRestartAt);
    const okDuring = inOutage.filter((o) => o.status === 503 && o.isStatus).length;
    table.add(
      'NATS down: answers to requests sent while it was down',
      'all 503 Status (no 200, no hang)',
      `${inOutage.length} requests: ${by((o) => o.t0 >= natsStoppedAt && o.t1 <= natsRestartAt) || 'none'}`,
      inOutage.length > 0 && okDuring === inOutage.length,
    );
    table.add(
      'NATS down: recovery after NATS answers again',
      `≤ ${RECOVERY_LIMIT_MS} ms on each edge`,
      `edge-a ${recovery[0] ?? '?'} ms, edge-b ${recovery[1] ?? '?'} ms`,
      recovery.length === 2 && recovery.every((ms) => ms >= 0 && ms <= RECOVERY_LIMIT_MS),
    );

    // 3. Approvals: the load's held deletes, and the sentinels unchanged through every fault.
    const released = outcomes.filter((o) => o.op === 'held' && o.status === 200);
    const deletedTwice = [...new Set(c.fixture.requests.filter((r) => r.method === 'DELETE').map((r) => r.path))].filter((p) => c.deletes(p) > 1);
    const unforwarded = released.filter((o) => c.deletes(`/api/v1/namespaces/default/configmaps/${o.path.split('/').pop()!}`) !== 1);
    table.add(
      'approvals: held deletes approved via the REST API as they came',
      'released ones forwarded exactly once',
      `${approvedByLoop.size} approved, ${released.length} released, ${unforwarded.length} not forwarded once, ${deletedTwice.length} deleted twice (approver loop errors: ${approverErrors})`,
      released.length > 0 && unforwarded.length === 0 && deletedTwice.length === 0,
    );
    const statesAfter = await approvalStates(sentinels);
    table.add(
      'approvals: 3 pending + 2 granted sentinels, before vs after',
      statesBefore.join(' '),
      statesAfter.join(' '),
      statesAfter.join(' ') === statesBefore.join(' '),
    );

    // 4. Audit: every forwarded request has acked events; ClickHouse holds the stream exactly once.
    const bus = await connectNats({ servers: [c.nats.url], name: 'fault-suite-audit-count', logger: silentLogger, ...c.nats.admin });
    let published = 0;
    let stored = -1;
    try {
      // Events, not messages: group commit puts the events of many requests in one message.
      const countEvents = async (): Promise<number> =>
        (await bus.log.snapshot(Streams.audit.name, {})).reduce((n, m) => n + auditMessageEvents(m.subject, m.data).length, 0);
      let last = -1;
      // Background re-appends (events refused during the NATS outage) can still arrive: wait until stable and equal.
      await eventually(
        'ClickHouse to hold exactly the stream',
        async () => {
          published = await countEvents();
          stored = await chCount(`SELECT count() FROM ${database}.audit_events FINAL`);
          const settled = stored === published && published === last;
          last = published;
          return settled ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 100 },
      ).catch(() => undefined);
    } finally {
      await bus.close();
    }
    const distinct = await chCount(`SELECT uniqExact(event_id) FROM ${database}.audit_events FINAL`);
    const physical = await chCount(`SELECT count() FROM ${database}.audit_events`);
    table.add(
      'audit: events in the stream vs in ClickHouse (FINAL)',
      String(published),
      `${stored} (${physical - stored} redelivered copies collapsed)`,
      stored === published && published > 0,
    );
    table.add('audit: distinct event ids vs rows under FINAL (none visible twice)', String(stored), String(distinct), distinct === stored);

    const received = new Set(
      (await clickhouse.query(`SELECT DISTINCT correlation_id FROM ${database}.audit_events FINAL WHERE type = 'request.received' FORMAT TSV`))
        .split('\n')
        .filter((l) => l !== ''),
    );
    const decided = new Set(
      (await clickhouse.query(`SELECT DISTINCT correlation_id FROM ${database}.audit_events FINAL WHERE type = 'request.decided' FORMAT TSV`))
        .split('\n')
        .filter((l) => l !== ''),
    );
    const upstreamIds = c.fixture.requests.map((r) => String(r.headers[AUDIT_ID_TO_UPSTREAM] ?? ''));
    const recorded = upstreamIds.filter((id) => received.has(id) && decided.has(id));
    table.add(
      'audit: requests the fixture received vs those with acked received+decided events',
      String(upstreamIds.length),
      String(recorded.length),
      recorded.length === upstreamIds.length && upstreamIds.length > 0,
    );
    const acknowledged = outcomes.filter((o) => o.status >= 200 && o.status < 300);
    const acknowledgedRecorded = acknowledged.filter((o) => received.has(o.auditId) && decided.has(o.auditId));
    table.add(
      'audit: 2xx answers the edges gave vs those recorded',
      String(acknowledged.length),
      String(acknowledgedRecorded.length),
      acknowledgedRecorded.length === acknowledged.length,
    );

    // 5. Processes: only the killed ones died, the rest exit cleanly when stopped.
    const alive = c.history.filter((h) => !killed.has(h.proc));
    const died = alive.filter((h) => h.proc.child.exitCode !== null || h.proc.child.signalCode !== null);
    table.add(
      'processes: running at the end (not killed by the suite)',
      `${alive.length} running`,
      died.length === 0 ? `${alive.length} running` : `died: ${died.map((h) => `${h.name} (${h.proc.child.exitCode ?? h.proc.child.signalCode})`).join(', ')}`,
      died.length === 0,
    );
    for (const h of c.history.filter((x) => killed.has(x.proc))) {
      table.add(
        `processes: ${h.name} (pid ${h.proc.child.pid ?? '?'}) killed by the suite`,
        'SIGKILL',
        String(h.proc.child.signalCode ?? h.proc.child.exitCode),
        h.proc.child.signalCode === 'SIGKILL',
      );
    }
    const codes = await Promise.all(alive.map(async (h) => [h.name, await h.proc.stop()] as const));
    const unclean = codes.filter(([, code]) => code !== 0);
    table.add(
      'processes: exit codes after SIGTERM',
      `0 for all ${codes.length}`,
      unclean.length === 0 ? `0 for all ${codes.length}` : unclean.map(([name, code]) => `${name}: ${String(code)}`).join(', '),
      unclean.length === 0,
    );

    console.log(
      table.render(
        `fault suite (${outcomes.length} requests, load ${((loadEnd - suiteStart) / 1000).toFixed(0)} s, NATS down ${NATS_DOWN_MS / 1000} s, ClickHouse down ${CLICKHOUSE_DOWN_MS / 1000} s, ${WORKERS} load loops)`,
      ),
    );
    assert.deepEqual(
      table.failed.map((r) => `${r.name}: expected ${r.expected}, observed ${r.observed}`),
      [],
      'every fault survived',
    );
  });
});
