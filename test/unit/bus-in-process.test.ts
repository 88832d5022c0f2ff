import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createInProcessBus } from '@portcullis/bus';
import type { BusHandle } from '@portcullis/bus';
import { silentLogger } from '@portcullis/common';
import { describeBusConformance, rejectsWithBusError, uniqueStream, uniqueToken } from '../support/bus-conformance.js';
import { eventually } from '../support/eventually.js';

const world = createInProcessBus({ logger: silentLogger, eventLog: { nakDelayMs: 100 } });

describeBusConformance({
  name: 'in-process',
  // Every "process" shares one world; only the suite's teardown closes it.
  connect: () => Promise.resolve<BusHandle>({ ...world, close: () => Promise.resolve() }),
  standalone: () => Promise.resolve(createInProcessBus({ logger: silentLogger })),
  teardown: () => world.close(),
});

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('in-process bus specifics', () => {
  it('round-robins a queue group strictly', async () => {
    const h = createInProcessBus({ logger: silentLogger });
    const subject = `${uniqueToken('rr')}.x`;
    const seen: string[] = [];
    h.bus.serve(subject, 'q', () => (seen.push('a'), enc('a')));
    h.bus.serve(subject, 'q', () => (seen.push('b'), enc('b')));
    for (let i = 0; i < 4; i++) await h.bus.request(subject, enc('x'), { timeoutMs: 1000 });
    assert.deepEqual(seen, ['a', 'b', 'a', 'b']);
    await h.close();
  });

  it('expires the de-duplication window', async () => {
    const h = createInProcessBus({ logger: silentLogger });
    const spec = { ...uniqueStream('dupwin'), duplicateWindowMs: 50 };
    await h.log.ensureStream(spec);
    const first = await h.log.append(`${spec.subjectRoot}.x`, enc('x'), 'same');
    const windowEnds = Date.now() + 60;
    await eventually('the 50 ms de-duplication window to pass', () => Date.now() >= windowEnds);
    const second = await h.log.append(`${spec.subjectRoot}.x`, enc('x'), 'same');
    assert.equal(second.duplicate, false);
    assert.equal(second.seq, first.seq + 1);
    await h.close();
  });

  it('rejects a pending request when closed and keeps nothing running', async () => {
    const h = createInProcessBus({ logger: silentLogger });
    const subject = `${uniqueToken('close')}.x`;
    h.bus.serve(subject, 'q', () => new Promise<Uint8Array>(() => undefined));
    const pending = h.bus.request(subject, enc('x'), { timeoutMs: 60_000 });
    const consumer = h.log.consume('NOPE', { durable: 'd', batchSize: 1, maxWaitMs: 10 }, () => Promise.resolve());
    const rejected = rejectsWithBusError(pending, 'closed');
    await h.close();
    await rejected;
    await consumer.stop();
  });
});
