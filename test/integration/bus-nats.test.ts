import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BusError, connectNats } from '@portcullis/bus';
import type { NatsBus } from '@portcullis/bus';
import { createLogger, silentLogger, type Logger } from '@portcullis/common';
import { freePort, sharedNatsUrl, startNats } from '../harness/services.js';
import type { TestNats } from '../harness/services.js';
import { describeBusConformance, rejectsWithBusError, uniqueStream, uniqueToken } from '../support/bus-conformance.js';
import { eventually } from '../support/eventually.js';
import { generateKeyPairSync } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { CHECKPOINT_STREAM, CheckpointSigner, StreamCheckpointStore } from '@portcullis/audit-store/pure';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

let url: string | undefined;
const open = async (name: string, servers?: string[], logger: Logger = silentLogger): Promise<NatsBus> =>
  connectNats({ servers: servers ?? [(url ??= await sharedNatsUrl())], name, logger, reconnectWaitMs: 100, eventLog: { nakDelayMs: 100 } });

describeBusConformance({
  name: 'NATS',
  connect: () => open(uniqueToken('conf')),
  standalone: () => open(uniqueToken('conf')),
});

describe('NATS bus: outages', () => {
  let nats: TestNats;
  const clients: NatsBus[] = [];
  const client = async (logger?: Logger): Promise<NatsBus> => {
    const c = await open(uniqueToken('outage'), [nats.url], logger);
    clients.push(c);
    return c;
  };
  before(async () => {
    nats = await startNats({ jetstream: true });
  });
  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await nats.stop();
  });

  it('fails start-up clearly when NATS is unreachable', async () => {
    const port = await freePort();
    const error = await rejectsWithBusError(
      connectNats({ servers: [`nats://127.0.0.1:${port}`], name: 'nobody', logger: silentLogger, connectTimeoutMs: 1000 }),
      'unavailable',
    );
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
  });

  it('a wrong password or credentials in the URL: a clear error that shows neither', async () => {
    const secured = await startNats({ jetstream: false, roles: ['edge'] });
    try {
      const login = secured.users.get('edge')!;
      const wrong = await rejectsWithBusError(
        connectNats({ servers: [secured.url], name: 'wrong-pass', logger: silentLogger, user: login.user, pass: 'not-the-password-0451' }),
        'unavailable',
      );
      assert.match(wrong.message, /cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: .*Authorization Violation/i);
      assert.doesNotMatch(wrong.message, /not-the-password-0451/);
      const port = await freePort();
      const inUrl = await rejectsWithBusError(
        connectNats({ servers: [`nats://someone:url-secret-7731@127.0.0.1:${port}`], name: 'url-creds', logger: silentLogger, connectTimeoutMs: 1000 }),
        'unavailable',
      );
      assert.match(inUrl.message, new RegExp(`nats://127\\.0\\.0\\.1:${port}`));
      assert.doesNotMatch(inUrl.message, /url-secret-7731/);
    } finally {
      await secured.stop();
    }
  });

  it('request and append while NATS is down fail with a BusError within the timeout, then work again', async () => {
    // The client's status goes through the process's (pino) logger: one JSON line per event.
    const lines: Record<string, unknown>[] = [];
    const c = await client(createLogger({ level: 'debug', base: { role: 'test' }, write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }));
    const spec = uniqueStream('outage_down');
    await c.log.ensureStream(spec);
    const subject = `${uniqueToken('down')}.x`;
    c.bus.serve(subject, 'q', (m) => m.data);
    await c.flush();
    await nats.kill();
    await eventually('the client to notice', () => !c.bus.isConnected());
    const started = Date.now();
    const results = await Promise.allSettled([
      c.bus.request(subject, enc('x'), { timeoutMs: 500 }),
      c.log.append(`${spec.subjectRoot}.x`, enc('x'), uniqueToken('id'), { timeoutMs: 500 }),
    ]);
    assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`);
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.ok(r.reason instanceof BusError && r.reason.code === 'unavailable', String(r.reason));
    }
    await nats.restart();
    await eventually('the reconnect', () => c.bus.isConnected(), 15_000);
    assert.equal(dec((await c.bus.request(subject, enc('back'), { timeoutMs: 2000 })).data), 'back');
    const ack = await c.log.append(`${spec.subjectRoot}.x`, enc('x'), uniqueToken('id'), { timeoutMs: 2000 });
    assert.equal(ack.duplicate, false);
    const status = lines.filter((l) => l['msg'] === 'NATS disconnected' || l['msg'] === 'NATS reconnected');
    assert.deepEqual(
      status.map((l) => [l['level'], l['msg'], l['component'], l['role']]),
      [
        ['warn', 'NATS disconnected', 'bus', 'test'],
        ['info', 'NATS reconnected', 'bus', 'test'],
      ],
    );
    assert.ok(
      lines.some((l) => l['msg'] === 'NATS reconnecting' && l['level'] === 'debug'),
      'reconnect attempts are logged at debug',
    );
  });

  it('a request in flight when NATS dies fails within its timeout (no hang)', async () => {
    const [server, c] = [await client(), await client()];
    const subject = `${uniqueToken('inflight')}.x`;
    server.bus.serve(subject, 'q', () => new Promise<Uint8Array>(() => undefined));
    await server.flush();
    const started = Date.now();
    const pending = c.bus.request(subject, enc('x'), { timeoutMs: 800 });
    await nats.kill();
    const error = await rejectsWithBusError(pending, 'unavailable').catch(() => rejectsWithBusError(pending, 'timeout'));
    assert.ok(error instanceof BusError);
    assert.ok(Date.now() - started < 2000);
    await nats.restart();
    await eventually('the reconnect', () => c.bus.isConnected() && server.bus.isConnected(), 15_000);
  });

  it('a durable consumer survives a NATS restart: messages appended afterwards come through', async () => {
    const [consumerSide, producer] = [await client(), await client()];
    const spec = uniqueStream('outage_consume');
    await producer.log.ensureStream(spec);
    const seen: string[] = [];
    const consumer = consumerSide.log.consume(spec.name, { durable: uniqueToken('dur'), batchSize: 10, maxWaitMs: 50 }, (batch) => {
      for (const m of batch) {
        seen.push(dec(m.data));
        m.ack();
      }
      return Promise.resolve();
    });
    await producer.log.append(`${spec.subjectRoot}.e`, enc('before'), uniqueToken('id'));
    await eventually('the message before the restart', () => seen.includes('before'));
    await nats.kill();
    await nats.restart();
    await eventually('both clients back', () => producer.bus.isConnected() && consumerSide.bus.isConnected(), 15_000);
    // The stream may need a moment after a crash to accept writes again: retry with a deadline.
    await eventually(
      'the stream to accept an append after the restart',
      () => producer.log.append(`${spec.subjectRoot}.e`, enc('after'), 'after-restart', { timeoutMs: 1000 }),
      15_000,
    );
    await eventually('the message after the restart', () => seen.includes('after'), 30_000);
    await consumer.stop();
    assert.deepEqual(
      seen.filter((s) => s === 'after'),
      ['after'],
    );
  });
});

describe('NATS event log: what a refused append says', () => {
  let c: NatsBus;
  before(async () => {
    c = await open(uniqueToken('refusals'));
  });
  after(async () => {
    await c.close();
  });

  it('table: no stream, a JetStream API error, a subject answered by no stream — each a BusError naming why', async () => {
    const spec = uniqueStream('refusals');
    await c.log.ensureStream(spec);
    // A core subscriber that never replies: the publish reaches a listener, but no ack ever comes.
    const silent = c.bus.subscribe(`${spec.subjectRoot}_silent.x`, () => undefined);
    await c.connection.flush(); // the subscription is registered at the server
    const cases: { name: string; append: Promise<unknown>; code: BusError['code']; message: RegExp }[] = [
      {
        name: 'no stream captures the subject',
        append: c.log.append(`${uniqueToken('nostream')}.x`, enc('x'), uniqueToken('id'), { timeoutMs: 2000 }),
        code: 'unavailable',
        message: /no JetStream stream answers/,
      },
      {
        name: 'the stream refuses (expected stream mismatch)',
        append: c.log.append(`${spec.subjectRoot}.x`, enc('x'), uniqueToken('id'), { timeoutMs: 2000, headers: { 'Nats-Expected-Stream': 'NOT_THIS_ONE' } }),
        code: 'unavailable',
        message: /JetStream error 10060/,
      },
      {
        name: 'a listener that is not a stream never acks',
        append: c.log.append(`${spec.subjectRoot}_silent.x`, enc('x'), uniqueToken('id'), { timeoutMs: 300 }),
        code: 'timeout',
        message: /timed out after 300 ms/,
      },
    ];
    for (const k of cases) {
      const error = await rejectsWithBusError(k.append, k.code);
      assert.match(error.message, k.message, k.name);
      assert.match(error.message, /^append to /, `${k.name}: names the operation`);
    }
    await silent.unsubscribe();
    // And the log still works after the refusals.
    const ack = await c.log.append(`${spec.subjectRoot}.x`, enc('ok'), uniqueToken('id'));
    assert.equal(ack.stream, spec.name);
    assert.equal(ack.duplicate, false);
  });
});

describe('the checkpoint stream (PORTCULLIS_CHECKPOINTS)', () => {
  it('nats-server refuses purging it, deleting a checkpoint, and turning deny_delete/deny_purge off again', async () => {
    const server = await startNats({ jetstream: true });
    const c = await connectNats({ servers: [server.url], name: 'checkpoint-stream-test', logger: silentLogger });
    try {
      const store = new StreamCheckpointStore(c.log);
      await store.ensure(1);
      await store.ensure(1); // every role ensures it at start-up: idempotent
      const signer = new CheckpointSigner(generateKeyPairSync('ed25519').privateKey, 'edge', 'edge-1');
      await store.append(signer.sign({ chainId: 'edge-1/2026-01-01T00:00:00.000Z/00000000', seq: 5, hash: 'a'.repeat(64) }));
      const jsm = await jetstreamManager(c.connection);
      const info = await jsm.streams.info(CHECKPOINT_STREAM.name);
      assert.equal(info.config.deny_delete, true);
      assert.equal(info.config.deny_purge, true);
      await assert.rejects(jsm.streams.purge(CHECKPOINT_STREAM.name), /purge/i);
      await assert.rejects(jsm.streams.deleteMessage(CHECKPOINT_STREAM.name, 1), /delete/i);
      await assert.rejects(jsm.streams.update(CHECKPOINT_STREAM.name, { ...info.config, deny_delete: false, deny_purge: false }), /deny|delete|purge/i);
      const { checkpoints, unreadable } = await store.list();
      assert.deepEqual(
        checkpoints.map((k) => k.seq),
        [5],
      );
      assert.deepEqual(unreadable, []);
    } finally {
      await c.close();
      await server.stop();
    }
  });
});
