/**
 * Shared Nest wiring of every role: the tokens of the process's ports, the HTTP listener pieces
 * (listener-scoped controllers, guards, body pipe, responses), the bus transport's gate, and the
 * TLS and identity helpers. The process bootstrap that composes the roles is start-process.ts.
 */
export {
  CLOCK,
  CONFIG,
  DEV_ISSUER,
  EMBEDDED_AUDIT_STORE,
  EVENT_LOG,
  GATEWAY_TLS,
  KV_STORES,
  LOGGER,
  MESSAGE_BUS,
  METRICS,
  NATS_CONNECTION,
  PROCESS_BUS,
  READINESS,
  TOKEN_VERIFIER,
  EVIDENCE_READS,
} from './tokens.js';
export type { Clock, KvStores } from './tokens.js';
export { BusServeGate } from './bus-transport/bus-serve-gate.js';
export type { HeldQueue } from './bus-transport/bus-serve-gate.js';
export { BUS_TRANSPORT, BusContext, BusTransportStrategy } from './bus-transport/bus-transport.strategy.js';
export { BusRequest } from './bus-transport/bus-request.decorator.js';
export { HttpListeners } from './http/http-listeners.js';
export type { HostedListener, OwnListenerSpec, RequestHandler } from './http/http-listeners.js';
export { Listener, ListenerController, OnListener } from './http/listener.js';
export { BodyTooLargeError, ReadBodyPipe } from './http/request-body.js';
export { AuthenticationError, AuthenticationFailure, BearerAuthGuard, Caller, CallerForbiddenError, GroupsGuard } from './http/bearer-auth.guard.js';
export { CLOSE_CONNECTION, JsonNoStore, sendJson, sendText } from './http/admin-response.js';
export { ReadinessHealth } from './readiness-health.js';
export { ProcessExceptionFilter } from './process-exception.filter.js';
export { connectProcessBus } from './process-bus.js';
export { checkpointStore, startChainCheckpointer } from './chain-checkpoints.js';
export { natsConnectOptions } from './nats-options.js';
export type { ProcessBus } from './process-bus.js';
export {
  configuredEdgeUrl,
  createGatewayTokenVerifier,
  edgeClientTrust,
  edgeServedNames,
  gatewayTls,
  openDevIssuer,
  type GatewayTls,
} from './gateway-identity.js';
export { BODY_HASH_KEY_FILE, BodyHashKeyError, openBodyDigest } from './body-hash-key.js';
