/**
 * The bus library: the ports (core messaging, the durable event log, KV), their NATS
 * implementations and the in-process ones for the embedded mode. Every export is listed by name.
 */
// Everything the pure entry point exports (./pure.ts lists it), then what needs the heavier dependencies.
export * from './pure.js';
export { BusWireHeaders } from './bus-handle.js';
export type { BusHandle } from './bus-handle.js';
export { connectNats, withoutCredentials } from './nats-connection.js';
export type { NatsBus, NatsBusOptions } from './nats-connection.js';
export type { NatsEventLogOptions } from './nats-event-log.js';
export { createInProcessBus } from './in-process-bus.js';
export type { InProcessBusOptions } from './in-process-bus.js';
export type { InProcessEventLogOptions } from './in-process-event-log.js';
