/**
 * Audit event codec figures: CPU µs per event for sealing (encode + SHA-256 + wire copy) and for
 * decoding, protobuf-es (`toBinary` / `fromBinary`) against the compiled codec
 * (libs/contracts/src/message-codec.ts), side by side in one process. Each round runs every
 * variant in turn on the same events (a request's received / decided / completed, as the edge
 * builds them); figures are medians of the rounds' CPU time (process.cpuUsage) per event.
 * Run: `npm run bench:codec` (BENCH_ROUNDS, BENCH_OPS to change the sizes).
 */
import { createHash } from 'node:crypto';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  auditMessageEvents,
  AUDIT_BATCH_SUBJECT,
  buildEvent,
  decodeEvent,
  decodeMessage,
  encodeEventBatch,
  encodeMessage,
  EventBatchSchema,
  EventEnvelopeSchema,
  EventType,
  RequestCompletedSchema,
  RequestDecidedSchema,
  RequestReceivedSchema,
  type EventEnvelope,
} from '@portcullis/contracts';
import { AuditChain } from '@portcullis/audit-store';
import { reportFigures } from './bench-result.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 15);
const OPS = Number(process.env['BENCH_OPS'] ?? 3000);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The three events of one forwarded request, shaped like edge-pipeline.ts builds them. */
function requestEvents(i: number): EventEnvelope[] {
  const requestId = `019a${String(i).padStart(4, '0')}-7c1e-7abc-8def-0123456789ab`;
  const meta = { id: requestId, correlationId: requestId, nodeId: 'edge-7f9c2', connection: 'prod-eu' };
  const identity = {
    subject: 'system:serviceaccount:ci:deploy-bot',
    groups: ['system:serviceaccounts', 'system:serviceaccounts:ci', 'platform-deployers'],
    clientId: 'deploy-bot',
    issuer: 'https://token.actions.githubusercontent.com',
    scopes: ['kube:write'],
    audiences: ['portcullis'],
    tokenId: 'c0ffee00-1234-4abc-9def-000000000042',
    tokenLifetimeSeconds: 300,
  };
  const attributes = {
    connection: 'prod-eu',
    connectionType: 'kubernetes',
    kube: {
      isResourceRequest: true,
      verb: 'patch',
      apiPrefix: 'apis',
      apiGroup: 'apps',
      apiVersion: 'v1',
      namespace: 'payments',
      resource: 'deployments',
      name: 'checkout-api',
      path: '/apis/apps/v1/namespaces/payments/deployments/checkout-api',
    },
    method: 'PATCH',
    sourceIp: '10.42.7.19',
    userAgent: 'kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46',
    bodyBytes: 412,
  };
  const decision = { effect: 'allow', ruleId: 'deployers-may-patch', policyVersion: 'v42-9c1d2e', message: '', maskProfile: 'default' };
  return [
    buildEvent(EventType.RequestReceived, create(RequestReceivedSchema, { identity, attributes }), meta),
    buildEvent(EventType.RequestDecided, create(RequestDecidedSchema, { decision, cached: true, decisionLatencyUs: 182 }), {
      ...meta,
      id: `${requestId}-d`,
      causationId: requestId,
    }),
    buildEvent(
      EventType.RequestCompleted,
      create(RequestCompletedSchema, {
        status: 200,
        bytesOut: 412,
        bytesIn: 5821,
        durationMs: 38,
        forwarded: true,
        requestBody: {
          bytes: 412,
          sha256: 'a'.repeat(64),
          contentType: 'application/strategic-merge-patch+json',
          excerpt: '{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-26T10:00:00Z"}}}}}',
        },
        responseBody: {
          bytes: 5821,
          sha256: 'b'.repeat(64),
          contentType: 'application/json',
          excerpt: '{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"checkout-api","namespace":"payments"}}',
          truncated: true,
        },
      }),
      { ...meta, id: `${requestId}-c`, causationId: requestId },
    ),
  ];
}

/** AuditChain.seal as it was before the codec: toBinary, SHA-256, copy with the hash appended. */
function sealWithProtobufEs(event: EventEnvelope, seq: number, prev: string): { wire: Uint8Array; hash: string } {
  event.chainId = 'edge-7f9c2/2026-11-26T10:00:00.000Z/0badf00d';
  event.chainSeq = seq;
  event.prevHash = prev;
  event.hash = '';
  const canonical = toBinary(EventEnvelopeSchema, event);
  const hash = createHash('sha256').update(canonical).digest('hex');
  event.hash = hash;
  const wire = new Uint8Array(canonical.length + 66);
  wire.set(canonical, 0);
  wire[canonical.length] = (11 << 3) | 2;
  wire[canonical.length + 1] = 64;
  for (let i = 0; i < 64; i++) wire[canonical.length + 2 + i] = hash.charCodeAt(i);
  return { wire, hash };
}

const events = Array.from({ length: 64 }, (_, i) => requestEvents(i)).flat();
const chain = new AuditChain('edge-7f9c2', Date.parse('2026-11-26T10:00:00Z'), '0badf00d');
const wires = events.map((e) => chain.seal(e));
const batches = Array.from({ length: events.length / 2 }, (_, i) => encodeEventBatch([wires[2 * i]!, wires[2 * i + 1]!]));
for (const [i, e] of events.entries()) {
  if (Buffer.compare(toBinary(EventEnvelopeSchema, e), encodeMessage(EventEnvelopeSchema, e)) !== 0)
    throw new Error(`event ${i}: the codec's bytes differ from toBinary`);
}

let sink = 0; // keeps results alive so no variant is optimised away
const variants: Record<string, () => void> = {
  'encode protobuf-es': () => {
    for (let i = 0; i < OPS; i++) sink += toBinary(EventEnvelopeSchema, events[i % events.length]!).length;
  },
  'encode codec': () => {
    for (let i = 0; i < OPS; i++) sink += encodeMessage(EventEnvelopeSchema, events[i % events.length]!).length;
  },
  'seal protobuf-es': () => {
    let prev = '';
    for (let i = 0; i < OPS; i++) {
      const r = sealWithProtobufEs(events[i % events.length]!, i + 1, prev);
      prev = r.hash;
      sink += r.wire.length;
    }
  },
  'seal codec': () => {
    for (let i = 0; i < OPS; i++) sink += chain.seal(events[i % events.length]!).length;
  },
  'decode protobuf-es': () => {
    for (let i = 0; i < OPS; i++) sink += fromBinary(EventEnvelopeSchema, wires[i % wires.length]!).id.length;
  },
  'decode codec': () => {
    for (let i = 0; i < OPS; i++) sink += decodeMessage(EventEnvelopeSchema, wires[i % wires.length]!).id.length;
  },
  'decodeEvent (codec + checks)': () => {
    for (let i = 0; i < OPS; i++) sink += decodeEvent(wires[i % wires.length]!).id.length;
  },
  'batch of 2 encode protobuf-es': () => {
    for (let i = 0; i < OPS; i++)
      sink += toBinary(EventBatchSchema, create(EventBatchSchema, { events: [wires[i % wires.length]!, wires[(i + 1) % wires.length]!] })).length;
  },
  'batch of 2 encode codec': () => {
    for (let i = 0; i < OPS; i++) sink += encodeEventBatch([wires[i % wires.length]!, wires[(i + 1) % wires.length]!]).length;
  },
  'batch of 2 read protobuf-es': () => {
    for (let i = 0; i < OPS; i++) sink += fromBinary(EventBatchSchema, batches[i % batches.length]!).events.length;
  },
  'batch of 2 read codec': () => {
    for (let i = 0; i < OPS; i++) sink += auditMessageEvents(AUDIT_BATCH_SUBJECT, batches[i % batches.length]!).length;
  },
};

function cpuMicros(run: () => void): number {
  const start = process.cpuUsage();
  run();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / OPS;
}

// Warm up every variant (JIT) before measuring.
for (const run of Object.values(variants)) run();
const samples: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, run] of Object.entries(variants)) samples[name]!.push(cpuMicros(run));
}

const us = (name: string): number => median(samples[name]!);
const sizes = wires.slice(0, 3).map((w) => w.length);
console.log(`audit event codec: CPU µs per event (median of ${ROUNDS} rounds × ${OPS} ops; events of ${sizes.join('/')} bytes sealed)`);
const rows: [string, string, string][] = [
  ['encode (toBinary)', 'encode protobuf-es', 'encode codec'],
  ['seal (encode + SHA-256 + copy)', 'seal protobuf-es', 'seal codec'],
  ['decode (fromBinary)', 'decode protobuf-es', 'decode codec'],
  ['EventBatch of 2: encode', 'batch of 2 encode protobuf-es', 'batch of 2 encode codec'],
  ['EventBatch of 2: read', 'batch of 2 read protobuf-es', 'batch of 2 read codec'],
];
const figures: Record<string, unknown> = {};
console.log(`${'operation'.padEnd(34)}${'protobuf-es'.padStart(13)}${'codec'.padStart(10)}${'ratio'.padStart(9)}`);
for (const [label, base, ours] of rows) {
  const ratio = us(base) / us(ours);
  console.log(`${label.padEnd(34)}${us(base).toFixed(2).padStart(13)}${us(ours).toFixed(2).padStart(10)}${`${ratio.toFixed(1)}×`.padStart(9)}`);
  figures[label] = { protobufEsUs: us(base), codecUs: us(ours), ratio };
}
const plainBase = us('encode protobuf-es') + us('decode protobuf-es');
const plainOurs = us('encode codec') + us('decode codec');
console.log(
  `${'encode + decode'.padEnd(34)}${plainBase.toFixed(2).padStart(13)}${plainOurs.toFixed(2).padStart(10)}${`${(plainBase / plainOurs).toFixed(1)}×`.padStart(9)}`,
);
figures['encode + decode'] = { protobufEsUs: plainBase, codecUs: plainOurs, ratio: plainBase / plainOurs };
const encDecBase = us('seal protobuf-es') + us('decode protobuf-es');
const encDecOurs = us('seal codec') + us('decode codec');
console.log(
  `${'seal + decode'.padEnd(34)}${encDecBase.toFixed(2).padStart(13)}${encDecOurs.toFixed(2).padStart(10)}${`${(encDecBase / encDecOurs).toFixed(1)}×`.padStart(9)}`,
);
console.log(`decodeEvent (codec + its checks): ${us('decodeEvent (codec + checks)').toFixed(2)} µs`);
figures['seal + decode'] = { protobufEsUs: encDecBase, codecUs: encDecOurs, ratio: encDecBase / encDecOurs };
reportFigures('event-codec', figures);
if (sink === -1) console.log(sink);
