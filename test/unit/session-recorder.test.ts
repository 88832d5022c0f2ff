import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MaskedChannelRelay, SessionRecorder, WebSocketFrameError, WebSocketFrameReader, isRecordableProtocol } from '@portcullis/gateway';
import { MASK_MARKER, MaskingProfile } from '@portcullis/masking';
import type { SessionFrame } from '@portcullis/contracts';

/** One WebSocket frame as a client (masked) or a server (unmasked) writes it. */
function frame(opcode: number, payload: Buffer, opts: { masked?: boolean; fin?: boolean } = {}): Buffer {
  const masked = opts.masked ?? false;
  const len = payload.length;
  const head = [((opts.fin ?? true) ? 0x80 : 0) | opcode];
  const ext: number[] = [];
  if (len < 126) head.push((masked ? 0x80 : 0) | len);
  else if (len < 65536) {
    head.push((masked ? 0x80 : 0) | 126);
    ext.push(len >> 8, len & 0xff);
  } else {
    head.push((masked ? 0x80 : 0) | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(len));
    ext.push(...b);
  }
  if (!masked) return Buffer.concat([Buffer.from([...head, ...ext]), payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload.map((byte, i) => byte ^ (mask[i & 3] ?? 0)));
  return Buffer.concat([Buffer.from([...head, ...ext]), mask, body]);
}

const channel = (ch: number, text: string | Buffer): Buffer => Buffer.concat([Buffer.from([ch]), Buffer.isBuffer(text) ? text : Buffer.from(text)]);

describe('WebSocketFrameReader', () => {
  test('reads masked and unmasked messages split at every byte boundary, fragmented or not', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 70_000 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 1, max: 3 }),
        (bytes, masked, step, parts) => {
          const payload = Buffer.from(bytes);
          const cut = Math.floor(payload.length / parts);
          const frames: Buffer[] = [];
          for (let i = 0; i < parts; i++) {
            const piece = payload.subarray(i * cut, i === parts - 1 ? payload.length : (i + 1) * cut);
            frames.push(frame(i === 0 ? 2 : 0, piece, { masked, fin: i === parts - 1 }));
          }
          // A ping between fragments is allowed and must not disturb the message.
          frames.splice(1, 0, frame(9, Buffer.from('p'), { masked }));
          const stream = Buffer.concat(frames);
          const got: Buffer[] = [];
          const reader = new WebSocketFrameReader({ message: (_op, p) => got.push(p), close: () => undefined }, 1 << 20);
          for (let at = 0; at < stream.length; at += step) reader.push(stream.subarray(at, at + step));
          assert.equal(got.length, 1);
          assert.ok(got[0]?.equals(payload));
        },
      ),
      { numRuns: 200 },
    );
  });

  test('a frame with reserved bits (an extension) is refused', () => {
    const reader = new WebSocketFrameReader({ message: () => undefined, close: () => undefined }, 1024);
    assert.throws(() => reader.push(Buffer.from([0xc2, 0x01, 0x00])), WebSocketFrameError);
  });
});

describe('SessionRecorder', () => {
  const options = { maxBytes: 64, flushIntervalMs: 10_000, flushBytes: 1 << 20 };

  test('records stdin, stdout, stderr and the status; reads the exit code; skips the ready message and v5 close', () => {
    const batches: SessionFrame[][] = [];
    const rec = new SessionRecorder('v5.channel.k8s.io', performance.now(), options, (_s, f) => batches.push(f));
    rec.fromServer(frame(2, Buffer.from([1])));
    rec.fromClient(frame(2, channel(0, 'ls\n'), { masked: true }));
    rec.fromServer(frame(2, channel(1, 'a b\n')));
    rec.fromServer(frame(2, channel(2, 'oops\n')));
    rec.fromClient(frame(2, Buffer.from([255, 0]), { masked: true }));
    rec.fromServer(
      frame(
        2,
        channel(3, JSON.stringify({ metadata: {}, status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: '7' }] } })),
      ),
    );
    const summary = rec.finish();
    assert.equal(summary.exitCode, 7);
    assert.equal(summary.status, 'Failure');
    const frames = batches.flat();
    assert.deepEqual(
      frames.slice(0, 3).map((f) => [f.channel, Buffer.from(f.data).toString()]),
      [
        [0, 'ls\n'],
        [1, 'a b\n'],
        [2, 'oops\n'],
      ],
    );
    assert.equal(frames[3]?.channel, 3);
  });

  test('base64 channel protocols are decoded', () => {
    const batches: SessionFrame[][] = [];
    const rec = new SessionRecorder('base64.channel.k8s.io', performance.now(), options, (_s, f) => batches.push(f));
    rec.fromServer(frame(1, Buffer.from(`1${Buffer.from('hello\n').toString('base64')}`)));
    rec.finish();
    assert.deepEqual(
      batches.flat().map((f) => [f.channel, Buffer.from(f.data).toString()]),
      [[1, 'hello\n']],
    );
  });

  test('stops at the cap, marks the cut, still reads the exit status', () => {
    const batches: SessionFrame[][] = [];
    const rec = new SessionRecorder('v4.channel.k8s.io', performance.now(), options, (_s, f) => batches.push(f));
    rec.fromServer(frame(2, channel(1, 'x'.repeat(50))));
    rec.fromServer(frame(2, channel(1, 'y'.repeat(50))));
    rec.fromServer(frame(2, channel(1, 'z'.repeat(5000))));
    rec.fromServer(frame(2, channel(3, '{"metadata":{},"status":"Success"}')));
    const summary = rec.finish();
    assert.deepEqual([summary.recordedBytes, summary.truncated, summary.exitCode], [64, true, 0]);
    const frames = batches.flat();
    assert.equal(
      frames.reduce((n, f) => n + f.data.length, 0),
      64,
    );
    assert.equal(frames.at(-1)?.truncated, true);
  });

  test('batches by size', () => {
    const sequences: number[] = [];
    const rec = new SessionRecorder('v5.channel.k8s.io', performance.now(), { maxBytes: 1 << 20, flushIntervalMs: 10_000, flushBytes: 10 }, (s) =>
      sequences.push(s),
    );
    for (let i = 0; i < 5; i++) rec.fromServer(frame(2, channel(1, '0123456789')));
    rec.finish();
    assert.deepEqual(sequences, [1, 2, 3, 4, 5]);
  });

  test('only remotecommand channel protocols are recordable', () => {
    assert.ok(isRecordableProtocol('v5.channel.k8s.io'));
    assert.ok(isRecordableProtocol('base64.channel.k8s.io'));
    assert.ok(!isRecordableProtocol('SPDY/3.1+portforward.k8s.io'));
    assert.ok(!isRecordableProtocol(''));
  });
});

describe('MaskedChannelRelay (exec/attach output under a masking decision)', () => {
  const profile = new MaskingProfile('secrets', {});
  const TOKEN = 'ghp_PlantedExecToken0123456789abcdefABCDEF';

  /** Feeds upstream frames to a relay; returns the messages the client gets, as [opcode, channel, text]. */
  function relayed(protocol: string, frames: Buffer[], step = 5): { out: [number, number, string][]; withheld: string[]; relay: MaskedChannelRelay } {
    const out: [number, number, string][] = [];
    const withheld: string[] = [];
    const reader = new WebSocketFrameReader(
      {
        message: (op, p) => {
          const base64 = op === 1;
          out.push([
            op,
            base64 ? (p[0] ?? 0) - 48 : (p[0] ?? -1),
            base64 ? Buffer.from(p.subarray(1).toString(), 'base64').toString() : p.subarray(1).toString(),
          ]);
        },
        close: (code) => out.push([8, -1, String(code)]),
      },
      1 << 20,
    );
    const relay = new MaskedChannelRelay(
      protocol,
      profile,
      (b) => reader.push(b),
      (why) => withheld.push(why),
    );
    const stream = Buffer.concat(frames);
    for (let at = 0; at < stream.length; at += step) relay.push(stream.subarray(at, at + step));
    return { out, withheld, relay };
  }

  test('a secret split across two stdout frames arrives masked; other lines and the status pass unchanged, in order', () => {
    const status = JSON.stringify({ metadata: {}, status: 'Success' });
    const { out, relay } = relayed('v5.channel.k8s.io', [
      frame(2, Buffer.from([1])),
      frame(2, channel(1, `hello\ntoken=${TOKEN.slice(0, 15)}`)),
      frame(2, channel(1, `${TOKEN.slice(15)} bye\n`)),
      frame(2, channel(2, 'warn: almost\n')),
      frame(9, Buffer.from('ping')),
      frame(2, channel(3, status)),
      frame(8, Buffer.from([0x03, 0xe8])),
    ]);
    assert.deepEqual(out, [
      [2, 1, ''],
      [2, 1, 'hello\n'],
      [2, 1, `token=${MASK_MARKER} bye\n`],
      [2, 2, 'warn: almost\n'],
      [2, 3, status],
      [8, -1, '1000'],
    ]);
    assert.equal(relay.maskedFields, 1);
  });

  test('held text (no newline yet) is released by flush, and before the status that follows it', () => {
    const { out, relay } = relayed('v4.base64.channel.k8s.io', [frame(1, Buffer.from(`1${Buffer.from('$ prompt ').toString('base64')}`))]);
    assert.deepEqual(out, []);
    assert.equal(relay.holding, true);
    relay.flush();
    assert.deepEqual(out, [[1, 1, '$ prompt ']]);
  });

  test('binary output (not UTF-8) is withheld: a Failure Status naming why, a close, nothing after', () => {
    const { out, withheld } = relayed('v5.channel.k8s.io', [
      frame(2, channel(1, 'text first\n')),
      frame(2, channel(1, Buffer.from([0xff, 0xfe, 0x00, 0x41]))),
      frame(2, channel(1, `${TOKEN}\n`)),
    ]);
    assert.equal(out.length, 3, JSON.stringify(out));
    assert.deepEqual(out[0], [2, 1, 'text first\n']);
    assert.equal(out[1]![1], 3);
    const st = JSON.parse(out[1]![2]) as { status: string; message: string };
    assert.equal(st.status, 'Failure');
    assert.match(st.message, /not valid UTF-8.*withheld/);
    assert.deepEqual(out[2], [8, -1, '1011']);
    assert.equal(withheld.length, 1);
  });

  test('the recorder of a masked session masks its copy of stdin, a secret split across frames included', () => {
    const batches: SessionFrame[][] = [];
    const rec = new SessionRecorder(
      'v5.channel.k8s.io',
      performance.now(),
      { maxBytes: 1 << 20, flushIntervalMs: 10_000, flushBytes: 1 << 20 },
      (_s, f) => batches.push(f),
      profile,
    );
    rec.fromClient(frame(2, channel(0, `echo ${TOKEN.slice(0, 9)}`), { masked: true }));
    rec.fromClient(frame(2, channel(0, `${TOKEN.slice(9)}\nls`), { masked: true }));
    rec.finish();
    const stdin = batches
      .flat()
      .filter((f) => f.channel === 0)
      .map((f) => Buffer.from(f.data).toString())
      .join('');
    assert.equal(stdin, `echo ${MASK_MARKER}\nls`);
  });
});
