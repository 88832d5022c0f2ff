/** Nest injection tokens for the platform's ports; inject only what a class uses. */
export const CONFIG = Symbol('portcullis.config');
export const LOGGER = Symbol('portcullis.logger');
export const MESSAGE_BUS = Symbol('portcullis.bus');
export const EVENT_LOG = Symbol('portcullis.event-log');
export const PLATFORM = Symbol('portcullis.platform');
