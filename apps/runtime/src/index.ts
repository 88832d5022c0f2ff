/** Shared Nest wiring of every role: the platform (config, logger, bus, log) and its tokens. */
export { CONFIG, LOGGER, MESSAGE_BUS, EVENT_LOG, PLATFORM } from './tokens.js';
export { createPlatform, PlatformMode } from './platform.js';
export type { Platform } from './platform.js';
export type { Observability } from './observability.js';
export { PlatformModule } from './platform.module.js';
export { configuredEdgeUrl, createGatewayTokenVerifier, edgeClientTrust, gatewayTls, openDevIssuer, type GatewayTls } from './gateway-identity.js';
