/**
 * The audit hash chain: tamper evidence for the audit log.
 *
 * One chain per producing process (each edge process, and the audit role for its own events),
 * cut into **segments**: a process starts a new segment every time it starts, and keeps no chain
 * state on disk. Each event carries its segment (`chain_id`), its position (`chain_seq`, from 1),
 * the hash of the previous event of the segment (`prev_hash`, empty for seq 1: the genesis) and
 * its own hash:
 *
 *   hash = lowercase hex SHA-256 of the protobuf binary encoding of the EventEnvelope with
 *          `hash` cleared (every other field, `prev_hash`, `chain_seq` and `chain_id` included).
 *
 * protobuf-es writes fields in field-number order and omits proto3 defaults, so the encoding is a
 * function of the envelope's content: the verifier rebuilds the envelope from the stored
 * `payload_json` (canonical protobuf JSON), clears `hash`, encodes and hashes again.
 *
 * Only this module may depend on the chain's layout; the edge uses {@link AuditChain.seal} on its
 * hot path (one encode, one SHA-256, one copy). seal encodes with the contracts' compiled codec
 * (`withEncodedMessage`: the same bytes as `toBinary`, a fraction of the CPU); {@link eventHash},
 * which the verifier uses, keeps protobuf-es' `toBinary` as the independent reference.
 */
import { createHash, randomBytes } from 'node:crypto';
import { clone, fromJsonString, toBinary } from '@bufbuild/protobuf';
import { EventEnvelopeSchema, withEncodedMessage, type EventEnvelope } from '@portcullis/contracts';

/** Field number of `EventEnvelope.hash` (appended to the canonical bytes on the wire). */
const HASH_FIELD_TAG = (11 << 3) | 2;
/** A SHA-256 in hex is 64 characters: the length fits in one varint byte. */
const HASH_HEX_LENGTH = 64;

/** SHA-256 (hex) of an envelope's canonical encoding: its protobuf binary with `hash` cleared. */
export function eventHash(event: EventEnvelope): string {
  // protobuf-es' own encoder on purpose: the verifier stays the reference for the codec that
  // seal() uses, so a divergence shows up as findings instead of agreeing with itself.
  if (event.hash === '') return sha256Hex(toBinary(EventEnvelopeSchema, event));
  const copy = clone(EventEnvelopeSchema, event);
  copy.hash = '';
  return sha256Hex(toBinary(EventEnvelopeSchema, copy));
}

/** The hash an envelope stored as canonical protobuf JSON should carry (`payload_json` of a row). */
export function eventHashOfJson(payloadJson: string): { event: EventEnvelope; hash: string } {
  const event = fromJsonString(EventEnvelopeSchema, payloadJson);
  return { event, hash: eventHash(event) };
}

/** Hex SHA-256 (createHash: the one-shot `crypto.hash` is Node ≥ 21.7). */
function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** What a chain segment id says: the producing node and when the segment began. */
export interface ChainIdParts {
  nodeId: string;
  startedAtMs: number;
}

/** Splits `<node>/<ISO start>/<random>`; undefined for anything else. */
export function parseChainId(chainId: string): ChainIdParts | undefined {
  const parts = chainId.split('/');
  if (parts.length !== 3) return undefined;
  const startedAtMs = Date.parse(parts[1]!);
  if (!Number.isFinite(startedAtMs) || parts[0] === '') return undefined;
  return { nodeId: parts[0]!, startedAtMs };
}

/**
 * One producer's chain segment. {@link seal} assigns the next position synchronously, so the
 * chain order is the order in which the process sealed its events — concurrent requests
 * interleave in the order the edge handled them, whatever order JetStream later stores them in.
 */
export class AuditChain {
  /** `<node id>/<segment start, ISO 8601 UTC>/<8 hex random>`: the genesis marker of the segment. */
  readonly chainId: string;
  #seq = 0;
  #lastHash = '';

  constructor(nodeId: string, startedAtMs: number = Date.now(), random: string = randomSuffix()) {
    if (nodeId === '' || nodeId.includes('/')) throw new RangeError(`invalid node id for an audit chain: ${JSON.stringify(nodeId)}`);
    this.chainId = `${nodeId}/${new Date(startedAtMs).toISOString()}/${random}`;
  }

  /** Events sealed so far (the last position assigned). */
  get length(): number {
    return this.#seq;
  }

  /** The hash of the last sealed event (the chain head), empty before the first. */
  get head(): string {
    return this.#lastHash;
  }

  /**
   * Links the event into the chain: sets `chainId`, `chainSeq`, `prevHash` and `hash` on it and
   * returns its wire encoding. The canonical bytes (hash cleared) are encoded once, hashed, and
   * the hash field is appended to them: protobuf decoders accept fields in any order, so the
   * bytes decode to exactly the sealed envelope.
   */
  seal(event: EventEnvelope): Uint8Array {
    event.chainId = this.chainId;
    event.chainSeq = ++this.#seq;
    event.prevHash = this.#lastHash;
    event.hash = '';
    // The canonical bytes are a view of the codec's scratch buffer: hashed, then copied once into
    // the wire message.
    const wire = withEncodedMessage(EventEnvelopeSchema, event, (canonical) => {
      const hash = sha256Hex(canonical);
      event.hash = hash;
      const out = new Uint8Array(canonical.length + 2 + HASH_HEX_LENGTH);
      out.set(canonical, 0);
      out[canonical.length] = HASH_FIELD_TAG;
      out[canonical.length + 1] = HASH_HEX_LENGTH;
      for (let i = 0; i < HASH_HEX_LENGTH; i++) out[canonical.length + 2 + i] = hash.charCodeAt(i);
      return out;
    });
    this.#lastHash = event.hash;
    return wire;
  }
}

function randomSuffix(): string {
  return randomBytes(4).toString('hex');
}
