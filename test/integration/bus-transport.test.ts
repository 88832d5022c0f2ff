/**
 * @nestjs/microservices on the bus port (BusTransportStrategy), on the in-process bus and on a
 * real nats-server: bytes in and out of @MessagePattern handlers, a handler's error reaching the
 * requester as the bus reports a responder failure, queue groups shared between applications, a
 * queue group held until its role opens it, and a drain on close that answers requests in flight.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { BusError, connectNats, createInProcessBus, type BusHandle } from '@portcullis/bus';
import { silentLogger } from '@portcullis/common';
import { decodeDecisionRequest, Subjects } from '@portcullis/contracts';
import { BusRequest, BusServeGate, BusTransportStrategy, ProcessExceptionFilter, type BusContext } from '../../apps/runtime/src/index.js';
import { sharedNatsUrl } from '../harness/services.js';
import { uniqueToken } from '../support/bus-conformance.js';
import { eventually } from '../support/eventually.js';
import { Role, startTestProcess, testConfig } from '../support/nest-process.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** A slow handler's gate: the test sees it start and decides when it ends. */
interface Slow {
  started: () => void;
  release: Promise<void>;
}

/** A controller on subjects under `prefix` (decorators need the subjects when the class is made). */
function busController(prefix: string, slow: { current: Slow | undefined }, served: string[]) {
  @Controller()
  class TestBusController {
    @MessagePattern(`${prefix}.echo`, { queue: `${prefix}-q` })
    echo(@Payload() request: Uint8Array, @Ctx() ctx: BusContext): Uint8Array {
      served.push(ctx.getSubject());
      return enc(`echo:${dec(request)}:${ctx.getHeaders()['x-test'] ?? ''}`);
    }

    @MessagePattern(`${prefix}.fail`, { queue: `${prefix}-q` })
    fail(): Uint8Array {
      throw new Error('the handler refused: bad request bytes');
    }

    @MessagePattern(`${prefix}.slow`, { queue: `${prefix}-q` })
    async slowOne(@Payload() request: Uint8Array): Promise<Uint8Array> {
      const s = slow.current!;
      s.started();
      await s.release;
      return enc(`late:${dec(request)}`);
    }

    @MessagePattern(`${prefix}.held`, { queue: `${prefix}-held` })
    held(): Uint8Array {
      return enc('held no more');
    }

    // What the roles use: the raw arguments, no pipes pass.
    @BusRequest(`${prefix}.raw`, `${prefix}-q`)
    raw(request: Uint8Array, ctx: BusContext): Uint8Array {
      return enc(`raw:${dec(request)}:${ctx.getSubject()}`);
    }
  }
  return TestBusController;
}

interface App {
  readonly app: INestMicroservice;
  readonly gate: BusServeGate;
  readonly served: string[];
  readonly slow: { current: Slow | undefined };
}

async function startApp(handle: BusHandle, prefix: string, holdQueue?: string): Promise<App> {
  const slow: { current: Slow | undefined } = { current: undefined };
  const served: string[] = [];
  @Module({ controllers: [busController(prefix, slow, served)] })
  class TestBusModule {}
  const gate = new BusServeGate();
  if (holdQueue !== undefined) gate.hold(holdQueue);
  const app = await NestFactory.createMicroservice(TestBusModule, {
    strategy: new BusTransportStrategy({ bus: handle.bus, flush: () => handle.flush(), gate, logger: silentLogger }),
    logger: false,
  });
  app.useGlobalFilters(new ProcessExceptionFilter(silentLogger));
  await app.listen();
  return { app, gate, served, slow };
}

const kinds: { name: string; connect(name: string): Promise<BusHandle> }[] = [
  { name: 'in-process', connect: () => Promise.resolve(inProcess) },
  { name: 'NATS', connect: async (name) => connectNats({ servers: [await sharedNatsUrl()], name, logger: silentLogger }) },
];
let inProcess: BusHandle;

for (const kind of kinds) {
  describe(`BusTransportStrategy on the ${kind.name} bus`, { timeout: 60_000 }, () => {
    let server: BusHandle;
    let client: BusHandle;
    const apps: INestMicroservice[] = [];
    const start = async (prefix: string, holdQueue?: string): Promise<App> => {
      const a = await startApp(server, prefix, holdQueue);
      apps.push(a.app);
      return a;
    };

    before(async () => {
      inProcess ??= createInProcessBus({ logger: silentLogger });
      server = await kind.connect(uniqueToken('transport-server'));
      client = kind.name === 'NATS' ? await kind.connect(uniqueToken('transport-client')) : server;
    });
    after(async () => {
      await Promise.allSettled(apps.map((a) => a.close()));
      await client.close();
      if (server !== client) await server.close();
    });

    test('request bytes in, reply bytes out (headers readable, @BusRequest gets them raw); a thrown error reaches the requester as `remote` with its message', async () => {
      const prefix = uniqueToken('t');
      await start(prefix);
      const reply = await client.bus.request(`${prefix}.echo`, enc('hello'), { timeoutMs: 2000, headers: { 'x-test': 'h1' } });
      assert.equal(dec(reply.data), 'echo:hello:h1');
      assert.equal(dec((await client.bus.request(`${prefix}.raw`, enc('bytes'), { timeoutMs: 2000 })).data), `raw:bytes:${prefix}.raw`);
      await assert.rejects(client.bus.request(`${prefix}.fail`, enc('x'), { timeoutMs: 2000 }), (err: unknown) => {
        assert.ok(err instanceof BusError, String(err));
        assert.equal(err.code, 'remote');
        assert.equal(err.message, 'the handler refused: bad request bytes');
        return true;
      });
    });

    test('two applications in one queue group share the requests, each answered exactly once', async () => {
      const prefix = uniqueToken('t');
      const a = await start(prefix);
      const b = await start(prefix);
      const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => client.bus.request(`${prefix}.echo`, enc(String(i)), { timeoutMs: 2000 })));
      assert.deepEqual(
        replies.map((r) => dec(r.data)),
        Array.from({ length: 40 }, (_, i) => `echo:${i}:`),
      );
      assert.equal(a.served.length + b.served.length, 40, 'each request served once');
      assert.ok(a.served.length > 0 && b.served.length > 0, `both members served (${a.served.length} + ${b.served.length})`);
    });

    test('a queue group held at the gate is not served until its role opens it', async () => {
      const prefix = uniqueToken('t');
      const app = await start(prefix, `${prefix}-held`);
      // The other queue group of the same application is served at once.
      assert.equal(dec((await client.bus.request(`${prefix}.echo`, enc('a'), { timeoutMs: 2000 })).data), 'echo:a:');
      await assert.rejects(
        client.bus.request(`${prefix}.held`, enc('x'), { timeoutMs: 300 }),
        (err: unknown) => err instanceof BusError && (err.code === 'no_responders' || err.code === 'timeout'),
      );
      assert.equal(app.gate.isOpen(`${prefix}-held`), false);
      app.gate.hold(`${prefix}-held`).open();
      // The transport subscribes (and flushes) once the gate opens: ask until someone answers.
      const answer = await eventually(
        'the held queue group to answer',
        () => client.bus.request(`${prefix}.held`, enc('x'), { timeoutMs: 300 }).then((r) => dec(r.data)),
        5000,
      );
      assert.equal(answer, 'held no more');
    });

    test('close() drains: the request in flight is answered before close resolves, then nobody serves the subject', async () => {
      const prefix = uniqueToken('t');
      const a = await start(prefix);
      let release: () => void = () => undefined;
      let started = false;
      a.slow.current = { started: () => void (started = true), release: new Promise<void>((r) => (release = r)) };
      const inFlight = client.bus.request(`${prefix}.slow`, enc('in flight'), { timeoutMs: 5000 });
      await eventually('the slow handler to start', () => started);
      let closed = false;
      const closing = a.app.close().then(() => void (closed = true));
      // A few turns of the event loop: a close that did not wait for the handler would have resolved.
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      assert.equal(closed, false, 'close waits for the request in flight');
      release();
      assert.equal(dec((await inFlight).data), 'late:in flight');
      await closing;
      await assert.rejects(
        client.bus.request(`${prefix}.echo`, enc('after'), { timeoutMs: 300 }),
        (err: unknown) => err instanceof BusError && (err.code === 'no_responders' || err.code === 'timeout'),
      );
    });
  });
}

describe('the bus transport in a process (hybrid application, the process-wide exception filter)', { timeout: 60_000 }, () => {
  test('a role handler that throws (undecodable request bytes) reaches the requester as `remote` with its own message, as bus.serve did', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bus-transport-'));
    writeFileSync(join(dir, 'policy.yaml'), 'apiVersion: portcullis.dev/v1\nkind: Policy\nmetadata: { name: t, version: "1" }\nrules: []\n');
    const bus = createInProcessBus({ logger: silentLogger });
    const proc = await startTestProcess({ config: testConfig({ policy: { file: join(dir, 'policy.yaml') } }, dir), roles: [Role.Policy], bus });
    try {
      const garbage = new Uint8Array([0xff, 0xff, 0xff, 0xff]);
      let expected = '';
      try {
        decodeDecisionRequest(garbage);
      } catch (err) {
        expected = (err as Error).message;
      }
      assert.notEqual(expected, '', 'the bytes do not decode');
      await assert.rejects(bus.bus.request(Subjects.policyDecide(), garbage, { timeoutMs: 2000 }), (err: unknown) => {
        assert.ok(err instanceof BusError, String(err));
        assert.equal(err.code, 'remote');
        assert.equal(err.message, expected);
        return true;
      });
    } finally {
      await proc.close();
      await bus.close();
    }
  });
});
