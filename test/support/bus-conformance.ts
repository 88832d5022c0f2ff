/**
 * One behaviour suite for every bus implementation (NATS and in-process), so they cannot drift:
 * each target runs exactly these cases. Its event log part runs against every {@link EventLog}
 * too (the embedded SQLite audit log), with the capabilities each declares: a capability a log
 * does not offer is not skipped, its documented refusal is checked instead.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { BusError, FULL_EVENT_LOG_CAPABILITIES } from '@portcullis/bus';
import type { BusHandle, EventLog, EventLogCapabilities, LogMessage, StreamSpec } from '@portcullis/bus';
import { EventDecodeError } from '@portcullis/contracts';
import { eventually } from './eventually.js';

/** A bus implementation under test. */
export interface ConformanceTarget {
  readonly name: string;
  /** A new client of the same bus: a new connection for NATS, a view of the same world in-process. */
  connect(): Promise<BusHandle>;
  /** A client whose `close()` affects no other client (a separate in-process world). */
  standalone(): Promise<BusHandle>;
  /** Runs once after the suite. */
  teardown?(): Promise<void>;
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** A token unique to this call, safe in subjects, stream and durable names. */
export function uniqueToken(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** Asserts that `promise` rejects with a BusError of `code`; returns it. */
export async function rejectsWithBusError(promise: Promise<unknown>, code: BusError['code']): Promise<BusError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BusError, `expected a BusError, got ${String(error)}`);
    assert.equal(error.code, code, `expected code ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  return assert.fail(`expected a BusError ${code}, but it resolved`);
}

/** A stream spec with unique name and subjects. */
export function uniqueStream(prefix: string): StreamSpec & { subjectRoot: string } {
  const token = uniqueToken(prefix);
  return { name: token.toUpperCase(), subjects: [`${token}.>`], subjectRoot: token, maxAgeMs: 3_600_000, duplicateWindowMs: 60_000, replicas: 1 };
}

/** Registers the shared behaviour cases for `target`. */
export function describeBusConformance(target: ConformanceTarget): void {
  describe(`bus conformance: ${target.name}`, () => {
    const opened: BusHandle[] = [];
    const connect = async (): Promise<BusHandle> => {
      const handle = await target.connect();
      opened.push(handle);
      return handle;
    };
    after(async () => {
      await Promise.allSettled(opened.map((h) => h.close()));
      await target.teardown?.();
    });

    it('request-reply: a queue group of two shares the work and every reply answers its own request', async () => {
      const [a, b, client] = [await connect(), await connect(), await connect()];
      const subject = `${uniqueToken('conf')}.echo`;
      const handled = { a: 0, b: 0 };
      const serve = (h: BusHandle, name: 'a' | 'b') =>
        h.bus.serve(subject, 'workers', async (m) => {
          handled[name]++;
          await new Promise((resolve) => setImmediate(resolve));
          return enc(`${name}:${dec(m.data)}:${m.headers['X-Req'] ?? ''}`);
        });
      const subs = [serve(a, 'a'), serve(b, 'b')];
      await Promise.all([a.flush(), b.flush()]);
      const n = 60;
      const replies = await Promise.all(
        Array.from({ length: n }, (_, i) => client.bus.request(subject, enc(`req-${i}`), { timeoutMs: 5000, headers: { 'X-Req': `h${i}` } })),
      );
      replies.forEach((reply, i) => assert.match(dec(reply.data), new RegExp(`^[ab]:req-${i}:h${i}$`)));
      assert.equal(handled.a + handled.b, n);
      assert.ok(handled.a > 0 && handled.b > 0, `both members must get work: ${JSON.stringify(handled)}`);
      await Promise.all(subs.map((s) => s.unsubscribe()));
    });

    it('request-reply: serves requests concurrently, not one after another', async () => {
      const [server, client] = [await connect(), await connect()];
      const subject = `${uniqueToken('conf')}.slow`;
      let inFlight = 0;
      let maxInFlight = 0;
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const sub = server.bus.serve(subject, 'slow', async () => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        if (maxInFlight >= 5) release();
        await gate;
        inFlight--;
        return enc('ok');
      });
      await server.flush();
      await Promise.all(Array.from({ length: 5 }, () => client.bus.request(subject, enc('x'), { timeoutMs: 5000 })));
      assert.equal(maxInFlight, 5);
      await sub.unsubscribe();
    });

    it('request: no responders is reported as no_responders', async () => {
      const client = await connect();
      await rejectsWithBusError(client.bus.request(`${uniqueToken('conf')}.nobody`, enc('x'), { timeoutMs: 2000 }), 'no_responders');
    });

    it('request: a responder that never answers times out within the timeout', async () => {
      const [server, client] = [await connect(), await connect()];
      const subject = `${uniqueToken('conf')}.hang`;
      let release!: () => void;
      const never = new Promise<Uint8Array>((resolve) => (release = () => resolve(enc('late'))));
      const sub = server.bus.serve(subject, 'hang', () => never);
      await server.flush();
      const started = Date.now();
      await rejectsWithBusError(client.bus.request(subject, enc('x'), { timeoutMs: 300 }), 'timeout');
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 250 && elapsed < 2000, `timed out after ${elapsed} ms`);
      release();
      await sub.unsubscribe();
    });

    it('request: a responder that throws answers with a remote error carrying its message', async () => {
      const [server, client] = [await connect(), await connect()];
      const subject = `${uniqueToken('conf')}.fail`;
      const sub = server.bus.serve(subject, 'fail', () => {
        throw new Error('policy exploded\non two lines');
      });
      await server.flush();
      const error = await rejectsWithBusError(client.bus.request(subject, enc('x'), { timeoutMs: 2000 }), 'remote');
      assert.match(error.message, /policy exploded/);
      // The responder survives its failure.
      await rejectsWithBusError(client.bus.request(subject, enc('x'), { timeoutMs: 2000 }), 'remote');
      await sub.unsubscribe();
    });

    it('publish/subscribe: broadcasts reach every subscriber whose wildcard matches', async () => {
      const [sender, receiver] = [await connect(), await connect()];
      const root = uniqueToken('conf');
      const star: string[] = [];
      const tail: string[] = [];
      const s1 = receiver.bus.subscribe(`${root}.*.decided`, (m) => star.push(m.subject));
      const s2 = receiver.bus.subscribe(`${root}.>`, (m) => tail.push(`${m.subject}=${dec(m.data)}=${m.headers['K'] ?? ''}`));
      await receiver.flush();
      sender.bus.publish(`${root}.a1.decided`, enc('one'), { K: 'v' });
      sender.bus.publish(`${root}.a2.x.decided`, enc('two'));
      await eventually('broadcasts', () => tail.length === 2);
      assert.deepEqual(star, [`${root}.a1.decided`]);
      assert.deepEqual(tail, [`${root}.a1.decided=one=v`, `${root}.a2.x.decided=two=`]);
      await Promise.all([s1.unsubscribe(), s2.unsubscribe()]);
      assert.equal(receiver.bus.isConnected(), true);
    });

    describeEventLogConformance({
      name: target.name,
      capabilities: FULL_EVENT_LOG_CAPABILITIES,
      connect: async () => (await connect()).log,
      stream: uniqueStream,
      ...textPayloads,
    });

    it('kv: put, get and watch (current value first, then changes)', async () => {
      const [a, b] = [await connect(), await connect()];
      const bucket = uniqueToken('conf_kv');
      const [kvA, kvB] = [await a.kv(bucket), await b.kv(bucket)];
      assert.equal(await kvA.get('policy'), undefined);
      const r1 = await kvA.put('policy', enc('v1'));
      const got = await kvB.get('policy');
      assert.equal(got?.revision, r1);
      assert.equal(dec(got?.value ?? new Uint8Array()), 'v1');

      const seen: Array<string | undefined> = [];
      const w = kvB.watch('policy', (e) => seen.push(e === undefined ? undefined : `${dec(e.value)}@${e.revision}`));
      await eventually('the current value', () => seen.length === 1);
      const r2 = await kvA.put('policy', enc('v2'));
      await eventually('the change', () => seen.length === 2);
      assert.deepEqual(seen, [`v1@${r1}`, `v2@${r2}`]);
      assert.ok(r2 > r1);

      const missing: Array<string | undefined> = [];
      const w2 = kvB.watch('absent', (e) => missing.push(e === undefined ? undefined : dec(e.value)));
      await eventually('the empty current value', () => missing.length === 1);
      await kvA.put('absent', enc('now'));
      await eventually('the first value', () => missing.length === 2);
      assert.deepEqual(missing, [undefined, 'now']);
      await Promise.all([w.unsubscribe(), w2.unsubscribe()]);
    });

    it('close: later calls fail with a BusError instead of hanging', async () => {
      const h = await target.standalone();
      await h.close();
      assert.equal(h.bus.isConnected(), false);
      await rejectsWithBusError(h.bus.request(`${uniqueToken('conf')}.x`, enc('x'), { timeoutMs: 1000 }), 'closed');
      await rejectsWithBusError(h.log.append(`${uniqueToken('conf')}.x`, enc('x'), 'id', { timeoutMs: 1000 }), 'closed');
    });
  });
}

/** An event log implementation under test, with the capabilities it declares. */
export interface EventLogTarget {
  readonly name: string;
  /**
   * What the implementation offers (`EventLog.capabilities`): the suite checks the log declares
   * exactly this, runs the cases of what it offers and checks the documented refusal of the rest.
   */
  readonly capabilities: EventLogCapabilities;
  /** A new client of the same log (a new connection, another process's view). */
  connect(): Promise<EventLog>;
  /** A stream to append to and a subject root (under its subjects) unique to this call. */
  stream(prefix: string): StreamSpec & { subjectRoot: string };
  /** Bytes the log stores, carrying `label` (any bytes, or an event envelope where only those are stored). */
  readonly payload: (label: string) => Uint8Array;
  /** The label stored bytes carry. */
  readonly label: (data: Uint8Array) => string;
  /** Runs once after the suite. */
  teardown?(): Promise<void>;
}

/** Payloads of a log that stores any bytes: the label is the text. */
export const textPayloads: Pick<EventLogTarget, 'payload' | 'label'> = { payload: enc, label: dec };

/** Registers the shared {@link EventLog} cases for `target` (the bus suite runs them for its targets). */
export function describeEventLogConformance(target: EventLogTarget): void {
  const caps = target.capabilities;
  const { payload, label } = target;
  describe(`event log conformance: ${target.name}`, () => {
    after(async () => {
      await target.teardown?.();
    });

    it(`declares its capabilities: durable consumers ${caps.durableConsumers}, streams ${JSON.stringify(caps.streams)}, payloads ${caps.payloads}`, async () => {
      const log = await target.connect();
      assert.deepEqual(log.capabilities ?? FULL_EVENT_LOG_CAPABILITIES, caps);
    });

    it('ensureStream: idempotent and safe when several processes call it at once', async () => {
      const [a, b] = [await target.connect(), await target.connect()];
      const spec = target.stream('conf_ens');
      await Promise.all([a.ensureStream(spec), b.ensureStream(spec), a.ensureStream(spec), b.ensureStream(spec)]);
      await a.ensureStream({ ...spec, maxAgeMs: 7_200_000 });
      const ack = await b.append(`${spec.subjectRoot}.x`, payload('x'), uniqueToken('id'));
      assert.equal(ack.stream, spec.name);
    });

    const fixedStreams = caps.streams;
    if (fixedStreams !== 'any') {
      it(`ensureStream: a stream other than ${fixedStreams.join(', ')} is refused with a BusError`, async () => {
        const log = await target.connect();
        const error = await rejectsWithBusError(log.ensureStream(uniqueStream('conf_other')), 'unavailable');
        assert.match(error.message, new RegExp(fixedStreams.join('|')));
      });
    }

    if (caps.payloads === 'event-envelopes') {
      it('append: bytes that are not an event envelope are refused with an EventDecodeError, nothing stored', async () => {
        const log = await target.connect();
        const spec = target.stream('conf_bytes');
        const id = uniqueToken('id');
        await assert.rejects(
          log.append(`${spec.subjectRoot}.x`, enc('not an event'), id),
          (error: unknown) => error instanceof EventDecodeError && error.message.includes(id),
        );
        assert.deepEqual(await log.snapshot(spec.name, { filterSubject: `${spec.subjectRoot}.>` }), []);
      });
    }

    it('append: a duplicate msgId returns the original sequence and stores nothing', async () => {
      const h = await target.connect();
      const spec = target.stream('conf_dup');
      await h.ensureStream(spec);
      const id = uniqueToken('evt');
      const first = await h.append(`${spec.subjectRoot}.a`, payload('one'), id, { headers: { 'X-Kind': 'first' } });
      const again = await h.append(`${spec.subjectRoot}.a`, payload('one-again'), id, { timeoutMs: 2000 });
      const next = await h.append(`${spec.subjectRoot}.b`, payload('two'), uniqueToken('evt'));
      assert.deepEqual(first, { stream: spec.name, seq: first.seq, duplicate: false });
      assert.deepEqual(again, { stream: spec.name, seq: first.seq, duplicate: true });
      assert.equal(next.seq, first.seq + 1);
      const seen: Array<{ seq: number; data: string; kind: string | undefined; msgId: string | undefined }> = [];
      const reader = h.read(spec.name, { startSeq: first.seq, filterSubject: `${spec.subjectRoot}.>` }, (m) =>
        seen.push({ seq: m.seq, data: label(m.data), kind: m.headers['X-Kind'], msgId: m.headers['Nats-Msg-Id'] }),
      );
      await eventually('both messages', () => seen.length >= 2);
      await reader.unsubscribe();
      assert.deepEqual(seen, [
        { seq: first.seq, data: 'one', kind: 'first', msgId: id },
        { seq: next.seq, data: 'two', kind: undefined, msgId: seen[1]?.msgId },
      ]);
    });

    it('append: a subject no stream captures fails with a BusError, not a hang', async () => {
      const h = await target.connect();
      const started = Date.now();
      await rejectsWithBusError(h.append(`${uniqueToken('nostream')}.x`, payload('x'), uniqueToken('id'), { timeoutMs: 1000 }), 'unavailable');
      assert.ok(Date.now() - started < 3000);
    });

    it('read: from a start sequence and from a start time, with a subject filter', async () => {
      const h = await target.connect();
      const spec = target.stream('conf_read');
      await h.ensureStream(spec);
      const seqs: number[] = [];
      const append = async (token: string, body: string): Promise<void> => {
        seqs.push((await h.append(`${spec.subjectRoot}.${token}`, payload(body), uniqueToken('id'))).seq);
      };
      for (let i = 1; i <= 3; i++) await append('a', `a${i}`);
      await new Promise((resolve) => setTimeout(resolve, 20)); // a measurable gap between the batches' timestamps
      const cut = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 20));
      await append('b', 'b1');
      await append('a', 'a4');

      const fromSeq: string[] = [];
      const r1 = h.read(spec.name, { startSeq: seqs[1]!, filterSubject: `${spec.subjectRoot}.a` }, (m) => fromSeq.push(`${m.seq}:${label(m.data)}`));
      await eventually('reads from the second message', () => fromSeq.length >= 3);
      const fromTime: string[] = [];
      const r2 = h.read(spec.name, { startTimeMs: cut, filterSubject: `${spec.subjectRoot}.>` }, (m) => fromTime.push(label(m.data)));
      await eventually('reads from the cut', () => fromTime.length >= 2);
      // Live: a reader keeps following the stream.
      await append('a', 'a5');
      await eventually('the live message', () => fromSeq.length >= 4 && fromTime.length >= 3);
      await Promise.all([r1.unsubscribe(), r2.unsubscribe()]);
      assert.deepEqual(fromSeq, [`${seqs[1]}:a2`, `${seqs[2]}:a3`, `${seqs[4]}:a4`, `${seqs[5]}:a5`]);
      assert.deepEqual(fromTime, ['b1', 'a4', 'a5']);
    });

    it('snapshot: every stored message matching the filter, in order, then it returns (empty too)', async () => {
      const h = await target.connect();
      const spec = target.stream('conf_snap');
      await h.ensureStream(spec);
      assert.deepEqual(await h.snapshot(spec.name, { filterSubject: `${spec.subjectRoot}.*.approval.>` }), []);
      for (let i = 0; i < 1205; i++) {
        const kind = i % 3 === 0 ? 'approval.requested' : 'request.received';
        await h.append(`${spec.subjectRoot}.c${i % 2}.${kind}`, payload(`m${i}`), uniqueToken('id'));
      }
      const got = await h.snapshot(spec.name, { filterSubject: `${spec.subjectRoot}.*.approval.>` });
      assert.equal(got.length, 402);
      assert.deepEqual(got.map((m) => label(m.data)).slice(0, 3), ['m0', 'm3', 'm6']);
      assert.equal(label(got.at(-1)!.data), 'm1203');
      assert.ok(got.every((m, i) => i === 0 || m.seq > got[i - 1]!.seq));
    });

    if (!caps.durableConsumers) {
      it('consume: not offered — refused with a BusError unavailable naming the stream', async () => {
        const log = await target.connect();
        const spec = target.stream('conf_noconsume');
        assert.throws(
          () => log.consume(spec.name, { durable: uniqueToken('dur'), batchSize: 1, maxWaitMs: 10 }, () => Promise.resolve()),
          (error: unknown) => error instanceof BusError && error.code === 'unavailable' && error.message.includes(spec.name),
        );
      });
      return;
    }

    it('consume: two members of one durable handle every message exactly once when all ack', async () => {
      const [a, b, producer] = [await target.connect(), await target.connect(), await target.connect()];
      const spec = target.stream('conf_shared');
      await producer.ensureStream(spec);
      const durable = uniqueToken('dur');
      const handled = new Map<number, number>();
      const byMember = { a: 0, b: 0 };
      const member = (h: EventLog, name: 'a' | 'b') =>
        h.consume(spec.name, { durable, batchSize: 5, maxWaitMs: 30 }, async (batch) => {
          for (const m of batch) {
            handled.set(m.seq, (handled.get(m.seq) ?? 0) + 1);
            byMember[name]++;
            m.ack();
          }
          await new Promise((resolve) => setTimeout(resolve, 5)); // let the other member take a turn
        });
      const consumers = [member(a, 'a'), member(b, 'b')];
      const n = 100;
      await Promise.all(Array.from({ length: n }, (_, i) => producer.append(`${spec.subjectRoot}.e`, payload(`m${i}`), uniqueToken('id'))));
      await eventually('every message handled', () => handled.size === n, 20_000);
      await Promise.all(consumers.map((c) => c.stop()));
      assert.deepEqual(
        [...handled.values()].filter((count) => count !== 1),
        [],
        'each message exactly once',
      );
      assert.equal(byMember.a + byMember.b, n);
    });

    it('consume: a handler that throws gets the unacked messages again; acked ones stay done', async () => {
      const h = await target.connect();
      const spec = target.stream('conf_nak');
      await h.ensureStream(spec);
      for (const body of ['ok-1', 'poison', 'ok-2']) await h.append(`${spec.subjectRoot}.e`, payload(body), uniqueToken('id'));
      const done: Array<{ body: string; deliveryCount: number }> = [];
      let failures = 0;
      const consumer = h.consume(spec.name, { durable: uniqueToken('dur'), batchSize: 10, maxWaitMs: 100 }, (batch: readonly LogMessage[]) => {
        for (const m of batch) {
          const body = label(m.data);
          if (body === 'poison' && m.deliveryCount === 1) {
            failures++;
            return Promise.reject(new Error('cannot decode'));
          }
          done.push({ body, deliveryCount: m.deliveryCount });
          m.ack();
        }
        return Promise.resolve();
      });
      await eventually('redelivery', () => done.length === 3, 15_000);
      await consumer.stop();
      assert.equal(failures, 1);
      assert.deepEqual(done[0], { body: 'ok-1', deliveryCount: 1 });
      assert.deepEqual(
        done.slice(1).map((d) => d.body),
        ['poison', 'ok-2'],
      );
      assert.ok(
        done.slice(1).every((d) => d.deliveryCount === 2),
        JSON.stringify(done),
      );
    });

    it('consume: an unacked message comes back after the ack wait', async () => {
      const h = await target.connect();
      const spec = target.stream('conf_ackwait');
      await h.ensureStream(spec);
      await h.append(`${spec.subjectRoot}.e`, payload('x'), uniqueToken('id'));
      const deliveries: number[] = [];
      const consumer = h.consume(spec.name, { durable: uniqueToken('dur'), batchSize: 1, maxWaitMs: 10, ackWaitMs: 1000 }, ([m]) => {
        if (m !== undefined) {
          deliveries.push(m.deliveryCount);
          if (m.deliveryCount >= 2) m.ack(); // the first delivery is "lost"
        }
        return Promise.resolve();
      });
      await eventually('the redelivery', () => deliveries.length >= 2, 10_000);
      await consumer.stop();
      assert.deepEqual(deliveries, [1, 2]);
    });

    it('consume: full batches under load, and a lone message within about maxWaitMs when idle', async () => {
      const h = await target.connect();
      const spec = target.stream('conf_batch');
      await h.ensureStream(spec);
      for (let i = 0; i < 10; i++) await h.append(`${spec.subjectRoot}.e`, payload(`m${i}`), uniqueToken('id'));
      const sizes: number[] = [];
      let lastHandledAt = 0;
      const consumer = h.consume(spec.name, { durable: uniqueToken('dur'), batchSize: 4, maxWaitMs: 100 }, (batch) => {
        sizes.push(batch.length);
        for (const m of batch) m.ack();
        lastHandledAt = Date.now();
        return Promise.resolve();
      });
      await eventually('the backlog', () => sizes.reduce((a, b) => a + b, 0) === 10);
      assert.ok(
        sizes.every((s) => s <= 4),
        `batches ${sizes.join(',')}`,
      );
      assert.equal(sizes[0], 4, `the backlog fills the first batch: ${sizes.join(',')}`);
      const sentAt = Date.now();
      await h.append(`${spec.subjectRoot}.e`, payload('lone'), uniqueToken('id'));
      await eventually('the lone message', () => sizes.reduce((a, b) => a + b, 0) === 11);
      const latency = lastHandledAt - sentAt;
      assert.ok(latency < 1000, `idle latency ${latency} ms`);
      await consumer.stop();
    });

    it('consume: stop waits for the batch in hand', async () => {
      const h = await target.connect();
      const spec = target.stream('conf_stop');
      await h.ensureStream(spec);
      await h.append(`${spec.subjectRoot}.e`, payload('x'), uniqueToken('id'));
      let started = false;
      let finished = false;
      const consumer = h.consume(spec.name, { durable: uniqueToken('dur'), batchSize: 1, maxWaitMs: 10 }, async (batch) => {
        started = true;
        await new Promise((resolve) => setTimeout(resolve, 200));
        for (const m of batch) m.ack();
        finished = true;
      });
      await eventually('the handler to start', () => started);
      await consumer.stop();
      assert.equal(finished, true);
    });
  });
}
