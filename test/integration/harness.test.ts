/** The test harness itself: each server starts, answers, survives kill + restart on its port. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { ClickHouseQueryError, startClickHouse, startNats, startRedis, uniqueName } from '../harness/services.js';

describe('test harness: nats-server', () => {
  it('round-trips a message and keeps JetStream data across kill + restart on the same port', async () => {
    const nats = await startNats({ jetstream: true });
    after(() => nats.stop());
    const subject = uniqueName('harness.subject').replace(/_/g, '.');
    const stream = uniqueName('HARNESS');

    const nc = await connect({ servers: nats.url });
    try {
      const sub = nc.subscribe(subject, { max: 1 });
      nc.publish(subject, 'hello');
      for await (const msg of sub) assert.equal(msg.string(), 'hello');

      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`${subject}.js`] });
      const js = jetstream(nc);
      for (const n of [1, 2, 3]) await js.publish(`${subject}.js`, `event-${n}`);
    } finally {
      await nc.close();
    }

    const port = nats.port;
    await nats.kill();
    assert.equal(nats.pid, undefined);
    await nats.restart();
    assert.equal(nats.port, port);

    const nc2 = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc2);
      const info = await jsm.streams.info(stream);
      assert.equal(info.state.messages, 3);
      const third = await jsm.streams.getMessage(stream, { seq: 3 });
      assert.equal(third?.string(), 'event-3');
    } finally {
      await nc2.close();
    }
  });

  it('runs without JetStream when asked', async () => {
    const nats = await startNats({ jetstream: false });
    after(() => nats.stop());
    const nc = await connect({ servers: nats.url });
    try {
      assert.equal(nc.info?.jetstream ?? false, false);
    } finally {
      await nc.close();
    }
  });
});

describe('test harness: redis-server', () => {
  it('answers PING and comes back on the same port after kill + restart', async () => {
    const redis = await startRedis();
    after(() => redis.stop());
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await client.connect();
      assert.equal(await client.ping(), 'PONG');
    } finally {
      client.disconnect();
    }

    const port = redis.port;
    await redis.kill();
    await redis.restart();
    assert.equal(redis.port, port);

    const again = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await again.connect();
      assert.equal(await again.ping(), 'PONG');
    } finally {
      again.disconnect();
    }
  });
});

describe('test harness: clickhouse-server', () => {
  it('creates, inserts and selects over HTTP, and keeps data across kill + restart', async () => {
    const ch = await startClickHouse();
    after(() => ch.stop());
    const db = uniqueName('harness');
    await ch.query(`CREATE DATABASE ${db}`);
    await ch.query(`CREATE TABLE ${db}.events (id UInt32, at DateTime, body String) ENGINE = MergeTree ORDER BY id`);
    await ch.query(`INSERT INTO ${db}.events VALUES (1, '2026-01-01 00:00:00', 'a'), (2, '2026-01-01 00:00:01', 'b')`);
    assert.equal(await ch.query(`SELECT count(), groupArray(body) FROM ${db}.events FORMAT TSV`), "2\t['a','b']\n");

    await assert.rejects(ch.query('SELECT nope FROM nowhere'), ClickHouseQueryError);

    const port = ch.port;
    await ch.kill();
    await ch.restart();
    assert.equal(ch.port, port);
    assert.equal(await ch.query(`SELECT sum(id) FROM ${db}.events FORMAT TSV`), '3\n');
  });
});
