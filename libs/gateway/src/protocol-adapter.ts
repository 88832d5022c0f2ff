/**
 * What differs from one protocol the edge serves to the next, behind one small interface: the
 * server routes by an adapter's prefix, the pipeline asks the request's adapter what the request
 * asks for, how to name it and word a refusal, and what the masker reads. Neither holds a per-protocol branch,
 * so a new protocol (MCP is next) is one adapter file and a line in {@link DEFAULT_PROTOCOLS}.
 */
import type { RequestAttributes } from '@portcullis/contracts';
import type { MaskTarget } from '@portcullis/masking';
import type { ConnectionKind } from './connection-kind.js';
import type { GatewayError } from './gateway-error.js';
import { httpProtocol } from './http-protocol.js';
import { kubernetesProtocol } from './kubernetes-protocol.js';

/** One protocol the edge serves. */
export interface ProtocolAdapter {
  /** The connections it reaches (their `type`); also the request's `connectionType` for the policy. */
  readonly kind: ConnectionKind;
  /** The path prefix the connection's name follows, both slashes included: `/k8s/` serves `/k8s/<connection>/…`. */
  readonly prefix: string;
  /**
   * Reads what the request asks for into `attributes` (the policy's input) from the upstream path
   * without its query (raw, still percent-encoded), and the query. Returns the path to send
   * upstream: the canonical form of what it read, so the upstream serves exactly what the policy
   * decided on (the query is sent as received). A path the protocol refuses — anything its path
   * grammar does not allow — is a GatewayError (`bad_path`), never a "fix".
   */
  readAttributes(attributes: RequestAttributes, path: string, query: URLSearchParams): string;
  /** What the request does, for the messages that name it (`delete pods web-1 in namespace prod`, `POST /v1/users`). */
  describe(attributes: RequestAttributes): string;
  /** The media type of a refusal's body. */
  readonly refusalContentType: string;
  /** A refusal's body; `message` is the error's message, starting with `portcullis:`. */
  refusalBody(err: GatewayError, message: string, requestId: string): string;
  /** What the masker reads this request's bodies as. */
  maskTarget(attributes: RequestAttributes): MaskTarget;
}

/** The protocols an edge serves unless told otherwise. */
export const DEFAULT_PROTOCOLS: readonly ProtocolAdapter[] = [kubernetesProtocol, httpProtocol];

/** An edge's protocols, looked up by path prefix (the server's routing) and by connection kind (host routing). */
export class ProtocolTable {
  private readonly adapters: readonly ProtocolAdapter[];

  constructor(adapters: readonly ProtocolAdapter[]) {
    if (adapters.length === 0) throw new TypeError('an edge serves at least one protocol');
    const prefixes = new Set<string>();
    for (const a of adapters) {
      if (!/^\/[^/?]+\/$/.test(a.prefix)) throw new TypeError(`protocol prefix ${JSON.stringify(a.prefix)} is not of the form /<name>/`);
      if (prefixes.has(a.prefix)) throw new TypeError(`two protocols share the prefix ${a.prefix}`);
      prefixes.add(a.prefix);
    }
    this.adapters = [...adapters];
  }

  /** Every protocol, in the order given. */
  get all(): readonly ProtocolAdapter[] {
    return this.adapters;
  }

  /** The protocol whose prefix starts `url`, undefined when none does. */
  byPath(url: string): ProtocolAdapter | undefined {
    for (let i = 0; i < this.adapters.length; i++) {
      const a = this.adapters[i]!;
      if (url.startsWith(a.prefix)) return a;
    }
    return undefined;
  }

  /**
   * The first protocol serving connections of `kind`; for a kind none serves (an unknown host-routed
   * name), the first protocol, which refuses the unknown connection in its own format.
   */
  forKind(kind: ConnectionKind | undefined): ProtocolAdapter {
    for (let i = 0; i < this.adapters.length; i++) {
      const a = this.adapters[i]!;
      if (a.kind === kind) return a;
    }
    return this.adapters[0]!;
  }
}
