/**
 * Nest injection tokens: one per port, each registered once per process (CoreModule) and
 * injected by what uses it. A role service names the few ports it needs, never the whole
 * process; the types each token stands for are below.
 */
import type { KeyValueStore } from '@portcullis/bus';

/** The validated, frozen configuration (`PortcullisConfig`). */
export const CONFIG = Symbol('portcullis.config');
/** The process's pino logger (`Logger` of @portcullis/common); Nest's own output goes through it too. */
export const LOGGER = Symbol('portcullis.logger');
/** The wall clock ({@link Clock}). */
export const CLOCK = Symbol('portcullis.clock');
/** Core request-reply and broadcast (`MessageBus`): NATS in cluster mode, in-process when embedded. */
export const MESSAGE_BUS = Symbol('portcullis.message-bus');
/** The durable event log (`EventLog`): JetStream in cluster mode, the SQLite audit store when embedded. */
export const EVENT_LOG = Symbol('portcullis.event-log');
/** Key-value buckets ({@link KvStores}): NATS KV in cluster mode, in-process when embedded. */
export const KV_STORES = Symbol('portcullis.kv-stores');
/** The NATS connection in cluster mode (for JetStream health and consumer metrics), undefined when embedded. */
export const NATS_CONNECTION = Symbol('portcullis.nats-connection');
/** The embedded mode's audit store (`AuditSink`, the SQLite log's own), undefined in cluster mode. */
export const EMBEDDED_AUDIT_STORE = Symbol('portcullis.embedded-audit-store');
/** The one bearer-token verifier (`TokenVerifier`): one JWKS key cache per process. */
export const TOKEN_VERIFIER = Symbol('portcullis.token-verifier');
/** The development issuer (`DevIssuer`), undefined unless `identity.devIssuer.enabled`. */
export const DEV_ISSUER = Symbol('portcullis.dev-issuer');
/** The certificate every HTTPS listener presents (`GatewayTls`). */
export const GATEWAY_TLS = Symbol('portcullis.gateway-tls');
/** The process's metric handles (`PortcullisMetrics`). */
export const METRICS = Symbol('portcullis.metrics');
/** The process's readiness checks (`Readiness`); roles add theirs while they start. */
export const READINESS = Symbol('portcullis.readiness');
/**
 * The process's recorder of reads of the evidence (`EvidenceReadRecorder`): one chain of
 * `evidence.read` events per process, whose heads the roles' checkpointers sign.
 */
export const EVIDENCE_READS = Symbol('portcullis.evidence-reads');
/**
 * The process's bus connection ({@link ProcessBus}): what the other bus tokens are read from, and
 * what is flushed after subscribing and closed last. Roles do not inject it; tests replace it.
 */
export const PROCESS_BUS = Symbol('portcullis.process-bus');

/** Milliseconds since the epoch, now. */
export type Clock = () => number;

/** Opens key-value buckets (creating them when missing). */
export interface KvStores {
  bucket(name: string): Promise<KeyValueStore>;
}
