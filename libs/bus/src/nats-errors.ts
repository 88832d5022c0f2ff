import { errors as natsErrors, RequestError } from '@nats-io/nats-core';
import { JetStreamApiError } from '@nats-io/jetstream';
import { BusError } from './bus.port.js';
import { errorMessage } from './error-message.js';

/** What the error mapper needs to know about the connection at the time of failure. */
export interface ConnectionFacts {
  /** The connection is up right now. */
  isConnected(): boolean;
  /** We closed it ourselves (`close()`), as opposed to losing it. */
  closedByUs(): boolean;
}

/**
 * Maps any nats.js failure to a {@link BusError}. `what` names the operation for the message
 * (e.g. `request to portcullis.policy.decide`).
 */
export function toBusError(error: unknown, what: string, facts: ConnectionFacts, timeoutMs?: number): BusError {
  if (error instanceof BusError) return error;
  if (error instanceof natsErrors.ClosedConnectionError || error instanceof natsErrors.DrainingConnectionError) {
    return facts.closedByUs()
      ? new BusError('closed', `${what} failed: the bus connection is closed`, { cause: error })
      : new BusError('unavailable', `${what} failed: the NATS connection is closed`, { cause: error });
  }
  if (error instanceof natsErrors.TimeoutError) {
    // A timeout while disconnected is an outage, not a slow responder.
    return facts.isConnected()
      ? new BusError('timeout', `${what} timed out after ${timeoutMs ?? '?'} ms`, { cause: error })
      : new BusError('unavailable', `${what} failed: NATS is disconnected`, { cause: error });
  }
  if (error instanceof RequestError && error.isNoResponders()) {
    return new BusError('no_responders', `${what} failed: no responders`, { cause: error });
  }
  // js.publish turns "no responders" into JetStreamNotEnabled: no stream listens or JS is off.
  if (error instanceof Error && error.name === 'JetStreamNotEnabled') {
    return new BusError('unavailable', `${what} failed: no JetStream stream answers (JetStream disabled or no stream for the subject)`, {
      cause: error,
    });
  }
  if (error instanceof JetStreamApiError) {
    return new BusError('unavailable', `${what} failed: JetStream error ${error.code}: ${error.message}`, { cause: error });
  }
  return new BusError('unavailable', `${what} failed: ${errorMessage(error)}`, { cause: error });
}
