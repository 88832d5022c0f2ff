/**
 * The bus library's pure entry point (`@portcullis/bus/pure`): the ports, their error type and
 * NATS subject matching, for code that implements or calls a port without loading the NATS client.
 */
export { BusError, BusErrorCode, FULL_EVENT_LOG_CAPABILITIES } from './bus.port.js';
export { isPublishSubject, subjectMatches } from './subject-match.js';
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
