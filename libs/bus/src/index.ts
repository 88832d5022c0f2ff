/**
 * The bus library: the ports (core messaging, the durable event log, KV), their NATS
 * implementations and the in-process ones for the embedded mode. Every export is listed by name.
 */
export { BusError, BusErrorCode, FULL_EVENT_LOG_CAPABILITIES } from './bus.port.js';
export type {
  AppendAck,
  BusHeaders,
  BusMessage,
  BusSubscription,
  ConsumeOptions,
  EventLog,
  EventLogCapabilities,
  KeyValueStore,
  LogConsumer,
  LogMessage,
  MessageBus,
  Responder,
  StreamSpec,
} from './bus.port.js';
export { isPublishSubject, subjectMatches } from './subject-match.js';
export { BusWireHeaders } from './bus-handle.js';
export type { BusHandle } from './bus-handle.js';
export { connectNats } from './nats-connection.js';
export type { NatsBus, NatsBusOptions } from './nats-connection.js';
export type { NatsEventLogOptions } from './nats-event-log.js';
export { createInProcessBus } from './in-process-bus.js';
export type { InProcessBusOptions } from './in-process-bus.js';
export type { InProcessEventLogOptions } from './in-process-event-log.js';
