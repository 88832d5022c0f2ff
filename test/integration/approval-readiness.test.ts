/**
 * An approval role on Redis reports its Redis in `/readyz`: ready while Redis answers, 503 with a
 * reason naming the server (and never the URL's password) once the redis-server this test started
 * is stopped, ready again after it is back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { freePort, startNats, startRedis, type TestNats, type TestRedis } from '../harness/services.js';
import { startPortcullis, tempDir, writeConfig, type PortcullisProcess } from '../support/portcullis-process.js';
import { eventually } from '../support/eventually.js';

interface ReadyAnswer {
  readonly status: number;
  readonly ready: boolean;
  readonly checks: Record<string, string>;
}

describe('approval role readiness follows Redis', { timeout: 120_000 }, () => {
  let nats: TestNats;
  let redis: TestRedis;
  let role: PortcullisProcess;
  let readyzUrl: string;

  before(async () => {
    [nats, redis] = await Promise.all([startNats({ jetstream: true }), startRedis()]);
    const dir = tempDir('approval-readiness');
    const [approvalPort, observabilityPort] = [await freePort(), await freePort()];
    // A URL with a user and password: the reason must name the server, never the credentials.
    const redisUrl = redis.url.replace('redis://', 'redis://default:@');
    const cfg = writeConfig(dir, 'approval.yaml', {
      node: { id: 'approval-readiness', stateDir: join(dir, 'state') },
      bus: { mode: 'nats', nats: { servers: [nats.url] } },
      approval: { listen: { host: '127.0.0.1', port: approvalPort }, redis: { url: redisUrl } },
      observability: { listen: { host: '127.0.0.1', port: observabilityPort } },
    });
    readyzUrl = `http://127.0.0.1:${observabilityPort}/readyz`;
    role = startPortcullis(['serve', 'approval', '--config', cfg]);
    await role.waitFor(/"ready":true/, 60_000);
  });

  after(async () => {
    await role?.stop();
    await redis?.stop();
    await nats?.stop();
  });

  const readyz = async (): Promise<ReadyAnswer> => {
    const res = await fetch(readyzUrl, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { ready: boolean; checks: Record<string, string> };
    return { status: res.status, ...body };
  };

  test('ready while Redis answers; the redis check is listed', async () => {
    const r = await eventually('the role to report ready', async () => {
      const a = await readyz();
      return a.status === 200 ? a : undefined;
    });
    assert.equal(r.ready, true);
    assert.equal(r.checks['redis'], 'ok');
  });

  test('Redis stopped: 503, the redis check names the server and why', async () => {
    await redis.stop();
    const r = await eventually('the role to report Redis down', async () => {
      const a = await readyz();
      return a.status === 503 ? a : undefined;
    });
    assert.equal(r.ready, false);
    assert.match(
      r.checks['redis'] ?? '',
      new RegExp(`^redis at 127\\.0\\.0\\.1:${redis.port} unreachable \\(.+\\): pending approvals can be neither read nor written$`),
    );
    // The other checks are still what they were: only Redis is to blame.
    assert.equal(r.checks['bus'], 'ok');
    assert.equal(r.checks['jetstream'], 'ok');
    assert.ok(!JSON.stringify(r).includes('default:'), 'no credentials in the reason');
  });

  test('Redis back: ready again without a restart of the role', async () => {
    await redis.restart();
    const r = await eventually(
      'the role to report ready again',
      async () => {
        const a = await readyz();
        return a.status === 200 ? a : undefined;
      },
      30_000,
    );
    assert.equal(r.checks['redis'], 'ok');
  });
});
